"""moto's server with IAM enforced on the resource of every call the functions make.

moto checks a caller's policies when auth is on (`/moto-api/reset-auth`), but it hands the policy
matcher a resource only for SQS, IAM and STS; for every other service it asks about resource `*`,
which no statement scoped to an ARN matches, so a least-privilege role is denied everything there.
This launcher gives moto's own matcher the ARN a real service would authorize (the ARN formats of
the Service Authorization Reference, "Actions, resources, and condition keys" for each service):

- DynamoDB: `table/<TableName>` (BatchWriteItem: its one table); streams: the `StreamArn`.
- SSM: `parameter/<name without its leading slash>` (GetParameter).
- Secrets Manager: the secret's full ARN, looked up when called by name.
- EventBridge: `event-bus/<EventBusName>` of the entries (PutEvents; `default` when unnamed).
- EKS: `cluster/<name>` (DescribeCluster).

SQS authorizes its batch calls by the single action (SendMessageBatch needs `sqs:SendMessage`, SQS
developer guide, "Amazon SQS API permissions: actions and resource reference"); moto asks for
the batch action's own name, so the names are mapped back here. moto also miscomputes the signature
of a request without a body that it has parsed parameters for (EKS's GET): that is mended too.

Every refusal is appended as a JSON line to the file named by `MOTO_DENIALS`, so a suite can fail
on any AccessDenied even where the function under test only logs it; every call allowed, to the file
named by `MOTO_GRANTED`, so a suite can tell which of a role's statements its paths used.
SQS reads its clock with an offset of the seconds written in the file named by `MOTO_CLOCK`: a test
moves SQS's time forward instead of sleeping through a message's DelaySeconds (delays, visibility
timeouts and retention all follow the one clock, as they would had the time really passed).

An EKS cluster created with the tags `standin:endpoint` and `standin:ca` describes itself with that
endpoint and CA (moto's are random), so a destination reached through DescribeCluster can be the
Kubernetes stand-in.

Run as `python moto_iam.py -H 127.0.0.1 -p PORT` (the arguments of moto's own server).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import Any

import moto.sqs.models as sqs_models
from moto.core.responses import BaseResponse
from moto.core.utils import unix_time
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.eks.models import EKSBackend
from moto.eks.responses import EKSResponse
from moto.events.responses import EventsHandler
from moto.iam.access_control import IAMRequestBase
from moto.secretsmanager.models import secretsmanager_backends
from moto.secretsmanager.responses import SecretsManagerResponse
from moto.server import main
from moto.ssm.responses import SimpleSystemManagerResponse

BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
}


def _arn(response: BaseResponse, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{response.region}:{response.current_account}:{resource}"


def _body(response: BaseResponse) -> dict[str, Any]:
    """The request's JSON body (some handlers have parsed it already)."""
    body = response.body
    if isinstance(body, dict):
        return body
    return dict(json.loads(body or "{}"))


def _dynamodb_table(self: BaseResponse) -> str:
    body = _body(self)
    table = body.get("TableName") or next(iter(body.get("RequestItems") or {}), None)
    return _arn(self, "dynamodb", f"table/{table}") if table else "*"


def _dynamodb_stream(self: BaseResponse) -> str:
    body = _body(self)
    if "StreamArn" in body:
        return str(body["StreamArn"])
    # GetRecords names only its iterator, which AWS authorizes as the stream it reads; moto's
    # iterators are "<stream ARN>|1|<id>".
    iterator = str(body.get("ShardIterator") or "")
    return iterator.split("|", 1)[0] if "|" in iterator else "*"


def _ssm_parameter(self: BaseResponse) -> str:
    name = str(_body(self).get("Name") or "")
    if name.startswith("arn:"):
        return name
    return _arn(self, "ssm", "parameter/" + name.lstrip("/")) if name else "*"


def _secret(self: BaseResponse) -> str:
    secret_id = str(_body(self).get("SecretId") or "")
    if not secret_id or secret_id.startswith("arn:"):
        return secret_id or "*"
    backend = secretsmanager_backends[self.current_account][self.region]
    try:
        return str(backend.describe_secret(secret_id).arn)
    except Exception:  # a missing secret: let moto answer ResourceNotFound for its own resource
        return _arn(self, "secretsmanager", f"secret:{secret_id}")


def _event_bus(self: BaseResponse) -> str:
    entries = _body(self).get("Entries") or [{}]
    bus = str(entries[0].get("EventBusName") or "default")
    return bus if bus.startswith("arn:") else _arn(self, "events", f"event-bus/{bus}")


def _eks_cluster(self: BaseResponse) -> str:
    parts = self.path.strip("/").split("/")
    return _arn(self, "eks", f"cluster/{parts[1]}") if len(parts) >= 2 and parts[0] == "clusters" else "*"


def _install() -> None:
    DynamoHandler._determine_resource = _dynamodb_table  # type: ignore[attr-defined]
    DynamoDBStreamsHandler._determine_resource = _dynamodb_stream  # type: ignore[attr-defined]
    SimpleSystemManagerResponse._determine_resource = _ssm_parameter  # type: ignore[attr-defined]
    SecretsManagerResponse._determine_resource = _secret  # type: ignore[attr-defined]
    EventsHandler._determine_resource = _event_bus  # type: ignore[attr-defined]
    EKSResponse._determine_resource = _eks_cluster  # type: ignore[attr-defined]

    original_init = IAMRequestBase.__init__
    original_check = IAMRequestBase.check_action_permitted
    denials = os.environ.get("MOTO_DENIALS")
    granted = os.environ.get("MOTO_GRANTED")

    def init(self: IAMRequestBase, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._action = BATCH_ACTIONS.get(self._action, self._action)

    def check(self: IAMRequestBase, resource: str) -> None:
        try:
            original_check(self, resource)
        except Exception:
            _record(denials, self, resource)
            raise
        _record(granted, self, resource)

    original_request = IAMRequestBase._create_aws_request

    def aws_request(self: IAMRequestBase) -> Any:
        # moto signs a bodiless request (EKS's GET /clusters/<name>) over its parsed parameters
        # as if they were the body, and then refuses the client's correct signature.
        request = original_request(self)
        if self._method in ("GET", "HEAD", "DELETE") and not self._body:
            request.data = b""
        return request

    IAMRequestBase._create_aws_request = aws_request  # type: ignore[method-assign]
    IAMRequestBase.__init__ = init  # type: ignore[method-assign]
    IAMRequestBase.check_action_permitted = check  # type: ignore[method-assign]

    original_create = EKSBackend.create_cluster

    def create_cluster(self: EKSBackend, *args: Any, **kwargs: Any) -> Any:
        cluster = original_create(self, *args, **kwargs)
        tags = kwargs.get("tags") or {}
        if "standin:endpoint" in tags:
            cluster.endpoint = tags["standin:endpoint"]
            cluster.certificate_authority = {"data": tags["standin:ca"]}
        return cluster

    EKSBackend.create_cluster = create_cluster  # type: ignore[method-assign]
    _offset_sqs_clock(os.environ.get("MOTO_CLOCK"))


def _record(path: str | None, request: IAMRequestBase, resource: str) -> None:
    """Append one authorization decision (action, resource, principal) to `path` as a JSON line."""
    if path:
        line = {"action": request._action, "resource": resource, "principal": request._access_key.arn}
        with open(path, "a") as out:
            out.write(json.dumps(line) + "\n")


def _offset_sqs_clock(path: str | None) -> None:
    """SQS's clock, `path`'s seconds ahead of the machine's (none while the file is absent)."""
    if not path:
        return

    def offset() -> float:
        try:
            with open(path) as f:
                return float(f.read() or 0)
        except FileNotFoundError:
            return 0.0

    def seconds(dt: datetime | None = None) -> float:
        return unix_time(dt) + (offset() if dt is None else 0.0)

    def millis(dt: datetime | None = None) -> float:
        return seconds(dt) * 1000.0

    sqs_models.unix_time = seconds  # type: ignore[attr-defined]
    sqs_models.unix_time_millis = millis  # type: ignore[attr-defined]


if __name__ == "__main__":
    _install()
    main(sys.argv[1:])
