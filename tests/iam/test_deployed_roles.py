"""Every function's real paths under exactly the IAM statements template.yaml gives its role.

For each parameter set the template is translated by `aws-sam-translator`, its resources are
created on a moto that enforces IAM on the resource of every call (standins/moto_iam.py), and each
function runs in a process of its own with the credentials of a role holding exactly its
statements. Any refusal fails the test, even one a handler only logs. Lambda's own calls with a
function's role are made with that role too: the SQS poller of the worker's event source
(GetQueueAttributes, ReceiveMessage, DeleteMessage), the stream poller of the stream ingest
(ListStreams, DescribeStream, GetShardIterator, GetRecords) and the on-failure destinations
(SendMessage), as the Lambda developer guide describes them ("Execution role permissions" of each
event source, "Adding a destination").

What moto cannot check is checked from the translated template instead: kms:Decrypt happens inside
SSM and Secrets Manager (kms:ViaService), and logs, X-Ray and ENIs are used by Lambda itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import pytest

from standins.aws import ACCOUNT_ID, REGION
from standins.deployed import DeployedStack
from standins.handlers import event, sqs_record
from teleport_argocd.argocd import secret_name

CLUSTERS = {
    "prod-us-east": {"env": "prod", "team": "payments"},
    "prod-eu-west": {"env": "prod", "team": "platform"},
    "dev-sandbox": {"env": "dev", "team": "payments"},
}
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def output(name: str, destination: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "kubernetes/argo-cd",
        "name": name,
        "destination": dict(destination),
        "selectors": [{"labels": {"env": "prod"}}],
        "secret_namespace": "argocd",
        "secret_name_prefix": f"{name}-cluster",
        **extra,
    }


def eks(name: str) -> dict[str, Any]:
    return {"eks": {"cluster_name": name, "region": REGION}}


def kubeconfig(stack: DeployedStack, secret: str) -> dict[str, Any]:
    return {"kubeconfig_secret": {"secret_id": stack.secret_arns[secret]}}


class Case:
    """A parameter set: how to build the stack, and the outputs its configuration holds."""

    def __init__(
        self,
        stack: Callable[[], DeployedStack],
        outputs: Callable[[DeployedStack], list[dict[str, Any]]],
    ) -> None:
        self.stack = stack
        self.outputs = outputs


CASES: dict[str, Case] = {
    # The README's minimal deploy: the proxy address and one EKS destination, all else default.
    "defaults": Case(
        lambda: DeployedStack(
            CLUSTERS,
            kubeconfig_secrets=(),
            eks_clusters=("argocd",),
            parameters={"DestinationEksCluster": "argocd"},
        ),
        lambda s: [output("main", eks("argocd"))],
    ),
    "kubeconfig-only": Case(
        lambda: DeployedStack(
            CLUSTERS, derive=lambda s: {"DestinationKubeconfigSecretArn": s.secret_arns["argocd-kubeconfig"]}
        ),
        lambda s: [output("main", kubeconfig(s, "argocd-kubeconfig"))],
    ),
    "several-destinations-kms": Case(
        lambda: DeployedStack(
            CLUSTERS,
            kubeconfig_secrets=("kc-a", "kc-b"),
            eks_clusters=("argocd",),
            derive=lambda s: {
                "DestinationEksCluster": "argocd",
                "AllowedEksClusters": f"{REGION}/argocd-dr,eu-west-1/argocd",
                "AllowedKubeconfigSecretArns": f"{s.secret_arns['kc-a']},{s.secret_arns['kc-b']}",
                "KmsKeyArns": KMS_KEY,
                "ConfigKmsKeyArn": KMS_KEY,
            },
        ),
        lambda s: [
            output("main", eks("argocd")),
            output("second", kubeconfig(s, "kc-a")),
            output("third", kubeconfig(s, "kc-b")),
        ],
    ),
    "ingest-and-stream": Case(
        lambda: DeployedStack(
            CLUSTERS,
            audit_table=True,
            derive=lambda s: {
                "DestinationKubeconfigSecretArn": s.secret_arns["argocd-kubeconfig"],
                "IngestDomainName": "teleport-events.example.com",
                "IngestCertificateArn": f"arn:aws:acm:{REGION}:{ACCOUNT_ID}:certificate/0a1b2c3d",
                "IngestTruststoreUri": "s3://truststore/teleport-event-handler/ca.crt",
                "AuditEventsStreamArn": s.audit_stream_arn,
            },
        ),
        lambda s: [output("main", kubeconfig(s, "argocd-kubeconfig"))],
    ),
    "vpc-and-tracing": Case(
        lambda: DeployedStack(
            CLUSTERS,
            derive=lambda s: {
                "DestinationKubeconfigSecretArn": s.secret_arns["argocd-kubeconfig"],
                "SubnetIds": "subnet-0a1b,subnet-0c2d",
                "SecurityGroupIds": "sg-0e3f",
                "EnableTracing": "true",
            },
        ),
        lambda s: [output("main", kubeconfig(s, "argocd-kubeconfig"))],
    ),
}


def secrets_in_argocd(stack: DeployedStack, output_name: str) -> set[str]:
    return {
        cluster
        for cluster in [*CLUSTERS, "prod-ap-south"]
        if stack.kube.secret("argocd", secret_name(f"{output_name}-cluster", "root", cluster)) is not None
    }


def run_queued(stack: DeployedStack) -> list[Any]:
    """The worker's event source: the poller reads with the worker's role, one message a batch."""
    queue = stack.queue_url("OutputRunsQueue")
    stack.client("sqs", "WorkerFunction").get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])
    answers = []
    for message in stack.messages(queue, "WorkerFunction"):
        record = sqs_record(message, stack.deployment.attribute("OutputRunsQueue", "Arn"))
        answers.append(stack.function("WorkerFunction").invoke({"Records": [record]}))
    return answers


def deliver_audit_events(stack: DeployedStack) -> list[Any]:
    """What the audit rule matched, handed to the audit function as EventBridge invokes it."""
    queue = f"{stack.moto.endpoint}/{ACCOUNT_ID}/AuditEventFunctionTeleportAudit-target"
    answers = []
    for message in stack.messages(queue):
        envelope = json.loads(message["Body"])
        envelope.setdefault("account", ACCOUNT_ID)  # moto's SQS target leaves it out
        answers.append(stack.function("AuditEventFunction").invoke(envelope))
    return answers


def assert_no_denials(stack: DeployedStack, path: str) -> None:
    assert stack.denials() == [], f"{path}: refused by IAM"


def schedule_and_discovery(stack: DeployedStack, names: list[str]) -> None:
    renew = stack.function("RenewFunction")
    assert renew.invoke(event("schedule.json")) == {"status": "queued", "outputs": len(names)}
    answers = run_queued(stack)
    assert answers == [{"batchItemFailures": []}] * len(names)
    for name in names:
        assert secrets_in_argocd(stack, name) == {"prod-us-east", "prod-eu-west"}, name
    assert renew.invoke(event("discovery.json"))["status"] == "queued"
    assert run_queued(stack) == [{"batchItemFailures": []}] * len(names)
    assert_no_denials(stack, "schedule and discovery")


def pruning(stack: DeployedStack, outputs: list[dict[str, Any]]) -> None:
    first = outputs[0]["name"]
    stack.put_config([{**o, "prune": {"enabled": True, "grace_period": "0s"}} for o in outputs])
    stack.teleport.update_kube_cluster("prod-us-east", labels={"env": "retired"})
    for _ in range(4):  # unmatched, then pruned once the grace period has passed in trusted runs
        stack.function("RenewFunction").invoke(event("discovery.json"))
        run_queued(stack)
        if "prod-us-east" not in secrets_in_argocd(stack, first):
            break
    assert secrets_in_argocd(stack, first) == {"prod-eu-west", "prod-ap-south"}
    stack.put_config(outputs)
    assert_no_denials(stack, "pruning")


def reload(stack: DeployedStack, names: list[str]) -> None:
    function = stack.function("ReloadFunction")
    dry = function.invoke(event("reload_dry_run.json"))
    assert [o["output"] for o in dry["outputs"]] == names
    applied = function.invoke(event("reload.json"))
    assert [o["status"] for o in applied["outputs"]] == ["completed"] * len(names), applied
    status = function.invoke({"status_only": True})
    assert [o["output"] for o in status["status"]["outputs"]] == names
    assert all(o["registrations"] for o in status["status"]["outputs"])
    assert_no_denials(stack, "reload")


def audit_event(stack: DeployedStack, names: list[str]) -> None:
    stack.teleport.add_kube_cluster("prod-ap-south", labels={"env": "prod", "team": "platform"})
    detail = {**event("kube_create.json")["detail"], "name": "prod-ap-south", "kube_labels": {"env": "prod"}}
    if "IngestFunction" in stack.deployment.functions():
        request = {**event("ingest_http.json"), "body": json.dumps(detail)}
        http = stack.function("IngestFunction")
        assert http.invoke(request)["statusCode"] == 200
        assert http.invoke(request)["statusCode"] == 200  # the plugin delivers at least once
    else:  # the bus as the ingest puts on it
        entry = {"Source": "teleport.audit", "DetailType": "kube.create", "Detail": json.dumps(detail)}
        entry["EventBusName"] = stack.deployment.ref("AuditEventBus")
        for _ in range(2):
            stack.client("events").put_events(Entries=[entry])
    answers = deliver_audit_events(stack)
    assert len(answers) == 2
    assert answers[0] == answers[1]  # the duplicate is answered from the idempotency record
    for name in names:
        assert "prod-ap-south" in secrets_in_argocd(stack, name), name
    assert_no_denials(stack, "audit event")


def stream_ingest(stack: DeployedStack) -> None:
    """A kube.update written to Teleport's audit table, read as the stream's event source mapping reads it."""
    record = event("ingest_stream.json")["Records"][0]
    image = record["dynamodb"]["NewImage"]
    image["EventType"] = {"S": "kube.update"}
    image["FieldsMap"]["M"]["event"] = {"S": "kube.update"}
    image["FieldsMap"]["M"]["uid"] = {"S": "0f7a7e52-stream-update"}
    stack.client("dynamodb").put_item(TableName="teleport-audit-events", Item=image)
    streams = stack.client("dynamodbstreams", "IngestStreamFunction")
    assert streams.list_streams(TableName="teleport-audit-events")["Streams"]
    shards = streams.describe_stream(StreamArn=stack.audit_stream_arn)["StreamDescription"]["Shards"]
    records = []
    for shard in shards:
        iterator = streams.get_shard_iterator(
            StreamArn=stack.audit_stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += streams.get_records(ShardIterator=iterator)["Records"]
    lambda_records = [
        {**r, "eventSourceARN": stack.audit_stream_arn, "dynamodb": as_event_image(r["dynamodb"])}
        for r in records
    ]
    answer = stack.function("IngestStreamFunction").invoke({"Records": lambda_records})
    assert answer == {"batchItemFailures": []}
    assert [a["outputs"] if isinstance(a, dict) else a for a in deliver_audit_events(stack)]
    assert_no_denials(stack, "stream ingest")


def as_event_image(image: dict[str, Any]) -> dict[str, Any]:
    """GetRecords' `dynamodb` as Lambda's event carries it (the creation time in epoch seconds)."""
    created = image.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        image = {**image, "ApproximateCreationDateTime": int(created.timestamp())}
    return image


def failure_destinations(stack: DeployedStack) -> None:
    """Lambda sends a failed async invocation, or a stream batch that ran out of retries, to the
    on-failure destination with the function's own role."""
    d = stack.deployment
    by_arn = {d.attribute(q, "Arn"): q for q in d.resources("AWS::SQS::Queue")}
    sent = 0
    for kind, function_key in (
        ("AWS::Lambda::EventInvokeConfig", "FunctionName"),
        ("AWS::Lambda::EventSourceMapping", "FunctionName"),
    ):
        for logical_id in d.resources(kind):
            props = d.props(logical_id)
            destination = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            if destination is None:
                continue
            function = next(f for f in d.functions() if d.ref(f) == props[function_key])
            stack.client("sqs", function).send_message(
                QueueUrl=stack.queue_url(by_arn[destination]), MessageBody=json.dumps({"failed": function})
            )
            sent += 1
    assert sent >= 3
    assert_no_denials(stack, "on-failure destinations")


@pytest.fixture(params=sorted(CASES), scope="module")
def case(request: pytest.FixtureRequest) -> Iterator[tuple[DeployedStack, Case]]:
    chosen = CASES[request.param]
    with chosen.stack() as stack:
        yield stack, chosen


def test_every_path_runs_under_exactly_the_template_statements(case: tuple[DeployedStack, Case]) -> None:
    stack, chosen = case
    outputs = chosen.outputs(stack)
    names = [o["name"] for o in outputs]
    stack.put_config(outputs)
    schedule_and_discovery(stack, names)
    reload(stack, names)
    audit_event(stack, names)
    if "IngestStreamFunction" in stack.deployment.functions():
        stream_ingest(stack)
    pruning(stack, outputs)
    failure_destinations(stack)


def test_a_role_without_one_needed_action_is_refused() -> None:
    """The enforcement is on: the renewal role without dynamodb:GetItem (the lease's release stamp
    it reads before queueing) is refused, and the refusal is what the suite sees."""
    with DeployedStack(
        CLUSTERS,
        revoke={"RenewFunction": "dynamodb:GetItem"},
        derive=lambda s: {"DestinationKubeconfigSecretArn": s.secret_arns["argocd-kubeconfig"]},
    ) as stack:
        stack.put_config([output("main", kubeconfig(stack, "argocd-kubeconfig"))])
        with pytest.raises(Exception, match="AccessDenied"):
            stack.function("RenewFunction").invoke(event("schedule.json"))
        [denial] = stack.denials()
        assert denial["action"] == "dynamodb:GetItem"
        assert denial["resource"] == stack.deployment.attribute("StateTable", "Arn")
        assert "RenewFunction" in denial["principal"]
