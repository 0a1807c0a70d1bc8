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
Every other action a statement grants must be used by some path here (`every_statement_used`): a
statement no path uses is either a path the suite does not run or a permission nothing needs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

import pytest

from standins.aws import ACCOUNT_ID, REGION
from standins.deployed import DeployedStack, as_list
from standins.handlers import event, sqs_record
from standins.lambdas import FunctionError
from teleport_argocd.argocd import secret_name

CLUSTERS = {
    "prod-us-east": {"env": "prod", "team": "payments"},
    "prod-eu-west": {"env": "prod", "team": "platform"},
    "dev-sandbox": {"env": "dev", "team": "payments"},
}
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# The audit function waits a second, not the deployed ten, for a cluster to be listed before it
# queues the run again: a wait changes no call.
SHORT_WAIT = {"AuditEventFunction": {"EVENT_LISTING_WAIT_SECONDS": "1"}}
# Actions moto never sees: used by Lambda itself (logs, X-Ray, ENIs) or inside SSM and Secrets
# Manager (kms:Decrypt); the template's statements for them are checked by tests/unit/test_template.
NOT_CALLED_BY_HANDLERS = ("logs:", "xray:", "ec2:", "kms:")


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
            environment=SHORT_WAIT,
            kubeconfig_secrets=(),
            eks_clusters=("argocd",),
            parameters={"DestinationEksCluster": "argocd"},
        ),
        lambda s: [output("main", eks("argocd"))],
    ),
    "kubeconfig-only": Case(
        lambda: DeployedStack(
            CLUSTERS,
            environment=SHORT_WAIT,
            derive=lambda s: {"DestinationKubeconfigSecretArn": s.secret_arns["argocd-kubeconfig"]},
        ),
        lambda s: [output("main", kubeconfig(s, "argocd-kubeconfig"))],
    ),
    "several-destinations-kms": Case(
        lambda: DeployedStack(
            CLUSTERS,
            environment=SHORT_WAIT,
            kubeconfig_secrets=("kc-a", "kc-b"),
            eks_clusters=("argocd",),
            derive=lambda s: {
                # The EKS destination is reached through the allowed list alone (DescribeAllowedClusters);
                # "defaults" reaches it as DestinationEksCluster (DescribeDestinationCluster).
                "AllowedEksClusters": f"{REGION}/argocd,eu-west-1/argocd-dr",
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
            environment=SHORT_WAIT,
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
            environment=SHORT_WAIT,
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
    """A dry run, then a forced reload: every certificate renewed (recorded in the renewal ledgers,
    PutItem) and one cluster whose labels changed since (its registration written whole,
    BatchWriteItem), then a status report."""
    function = stack.function("ReloadFunction")
    dry = function.invoke(event("reload_dry_run.json"))
    assert [o["output"] for o in dry["outputs"]] == names
    stack.teleport.update_kube_cluster("prod-eu-west", labels={**CLUSTERS["prod-eu-west"], "tier": "1"})
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


def put_audit_event(stack: DeployedStack, detail: Mapping[str, Any]) -> None:
    """An event on the bus as the ingest puts it there."""
    entry = {"Source": "teleport.audit", "DetailType": detail["event"], "Detail": json.dumps(detail)}
    entry["EventBusName"] = stack.deployment.ref("AuditEventBus")
    stack.client("events").put_events(Entries=[entry])


def delayed_runs(stack: DeployedStack) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_url("OutputRunsQueue"), AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def events_waiting_in_the_queue(stack: DeployedStack, names: list[str]) -> None:
    """kube.create of two clusters Teleport does not list yet: the audit function queues each run
    again with a delay (its RequeueEventRuns); one cluster is listed meanwhile, and the worker reads
    each run's named registrations (its ReadNamedRegistrations: one BatchGetItem), writes that
    cluster's Secret and queues the other run again (its RequeueEventRuns)."""
    late, never = "prod-late", "prod-never"
    for cluster in (late, never):
        base = event("kube_create.json")["detail"]
        put_audit_event(
            stack, {**base, "name": cluster, "uid": f"{cluster}-create", "kube_labels": {"env": "prod"}}
        )
    answers = deliver_audit_events(stack)
    assert [(a["status"], a["retry_in_seconds"]) for a in answers] == [("waiting", 15)] * 2, answers
    assert delayed_runs(stack) == 2 * len(names)
    assert run_queued(stack) == []  # delayed: nothing to receive yet
    stack.teleport.add_kube_cluster(late, labels={"env": "prod", "team": "platform"})
    stack.advance_sqs_clock(15)
    assert run_queued(stack) == [{"batchItemFailures": []}] * (2 * len(names))
    for name in names:
        written = {
            cluster
            for cluster in (late, never)
            if stack.kube.secret("argocd", secret_name(f"{name}-cluster", "root", cluster)) is not None
        }
        assert written == {late}, name
    assert delayed_runs(stack) == len(names)  # the run of the cluster still not listed, queued again
    assert_no_denials(stack, "an event's run waiting in the queue")


def role_event_and_failed_event(stack: DeployedStack, outputs: list[dict[str, Any]]) -> None:
    """A role event naming a role our bot impersonates runs every output in full, so the audit
    function reads whole registries (its Query); an event that fails (the configuration no longer
    parses) releases its idempotency record, so Lambda's retry runs it again (its DeleteItem)."""
    detail = {**event("kube_create.json")["detail"], "event": "role.updated", "code": "T9001I"}
    put_audit_event(stack, {**detail, "name": "argocd-clusters", "uid": "role-updated"})
    [answer] = deliver_audit_events(stack)
    assert answer["status"] == "processed"
    assert [o["status"] for o in answer["outputs"]] == ["completed"] * len(outputs), answer
    stack.client("ssm").put_parameter(
        Name=stack.deployment.cfn.params["ConfigParameterName"], Value="outputs: [", Overwrite=True
    )
    retried = {**event("kube_create.json")["detail"], "name": "prod-eu-west", "uid": "bad-config"}
    put_audit_event(stack, retried)
    with pytest.raises(FunctionError, match="ConfigError"):
        deliver_audit_events(stack)
    stack.put_config(outputs)
    put_audit_event(stack, retried)  # Lambda's retry: run afresh, not refused as still in progress
    [answer] = deliver_audit_events(stack)
    assert answer["status"] == "processed", answer
    assert_no_denials(stack, "role event and failed event")


# Granted, and used by no path that can be driven here: Powertools reads an idempotency record with
# GetItem only when DynamoDB's ConditionalCheckFailed comes without the item
# (ReturnValuesOnConditionCheckFailure, which DynamoDB and moto both honour); its documentation
# lists GetItem among the permissions the idempotency utility needs.
UNUSED_BY_DESIGN = {("AuditEventFunction", "IdempotencyRecords", "dynamodb:GetItem")}


def every_statement_used(stack: DeployedStack) -> None:
    """Each action of each statement of each function's role was allowed, on one of the statement's
    resources, to some call the paths made with that role (`NOT_CALLED_BY_HANDLERS` aside)."""
    d = stack.deployment
    calls = stack.granted()
    unused = []
    for function in d.functions():
        role = f":assumed-role/{d.ref(d.role(function))}/"
        made = [(c["action"], c["resource"]) for c in calls if role in c["principal"]]
        for statement in d.statements(function):
            resources = as_list(statement["Resource"])
            for action in as_list(statement["Action"]):
                if action.startswith(NOT_CALLED_BY_HANDLERS):
                    continue
                if (function, statement.get("Sid"), action) in UNUSED_BY_DESIGN:
                    continue
                if not any(a == action and any(fnmatchcase(r, p) for p in resources) for a, r in made):
                    unused.append(f"{function} {statement.get('Sid', '?')} {action} on {resources}")
    assert unused == [], "granted but used by no path:\n" + "\n".join(unused)


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
    events_waiting_in_the_queue(stack, names)
    role_event_and_failed_event(stack, outputs)
    if "IngestStreamFunction" in stack.deployment.functions():
        stream_ingest(stack)
    pruning(stack, outputs)
    failure_destinations(stack)
    every_statement_used(stack)


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


def test_the_worker_without_batch_get_item_cannot_run_a_queued_event() -> None:
    """The worker's ReadNamedRegistrations is what an event's run queued again needs: without it the
    worker's read of the cluster's registration is refused and the Secret is not written."""
    with DeployedStack(
        CLUSTERS,
        environment=SHORT_WAIT,
        revoke={"WorkerFunction": "dynamodb:BatchGetItem"},
        derive=lambda s: {"DestinationKubeconfigSecretArn": s.secret_arns["argocd-kubeconfig"]},
    ) as stack:
        stack.put_config([output("main", kubeconfig(stack, "argocd-kubeconfig"))])
        detail = {**event("kube_create.json")["detail"], "name": "prod-late", "kube_labels": {"env": "prod"}}
        put_audit_event(stack, detail)
        [answer] = deliver_audit_events(stack)
        assert answer["status"] == "waiting"
        assert stack.denials() == []  # the audit function's own BatchGetItem is granted
        stack.teleport.add_kube_cluster("prod-late", labels={"env": "prod"})
        stack.advance_sqs_clock(15)
        assert len(run_queued(stack)) == 1
        assert stack.kube.secret("argocd", secret_name("main-cluster", "root", "prod-late")) is None
        [denial] = stack.denials()
        assert denial["action"] == "dynamodb:BatchGetItem"
        assert denial["resource"] == stack.deployment.attribute("StateTable", "Arn")
        assert "WorkerFunction" in denial["principal"]
