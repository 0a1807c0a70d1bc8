"""End to end: each fault of the README's "Failure modes" table, through the real handlers.

Every test starts from the shared, reset LocalStack (tests/e2e/conftest.py), injects one fault with
the stand-ins' own switches (the Kubernetes API's `fail` and `before` hooks, the Teleport stand-in's
listing ceiling) or with a botocore event hook on a handler's module-level `session`, and checks
three things: what was written (Secrets in the Kubernetes stand-in), what was recorded (the state
table: registrations, run records, the lease) and what was reported (the handler's answer, and the
EMF metrics Powertools prints).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from botocore.awsrequest import AWSResponse

from standins.handlers import emitted_metrics, event, invoke, load_handler
from standins.kubeapi import ApiError
from standins.stack import ARGOCD_NAMESPACE, STATE_TABLE, LocalStack
from teleport_argocd import responses
from teleport_argocd.argocd import secret_name
from teleport_argocd.destination import http
from teleport_argocd.model import Registration
from teleport_argocd.state import StateStore
from teleport_argocd.state import registry as state_registry

PROD = ("prod-eu-west", "prod-us-east")  # what the default output selects from the demo clusters

# The handlers' Powertools Logger keeps the stream it first saw; made here, outside any test's
# `capsys`, it writes to pytest's session-wide capture rather than to a buffer closed after that test.
Logger(service="teleport-argocd")


# -- helpers ------------------------------------------------------------------------------


def state(stack: LocalStack) -> StateStore:
    return StateStore(STATE_TABLE, client=stack.aws.client("dynamodb"))


def registrations(stack: LocalStack) -> dict[str, Registration]:
    return {r.kube_cluster: r for r in state(stack).registrations("production")}


def secret(stack: LocalStack, cluster: str) -> dict[str, Any] | None:
    assert stack.kube is not None
    return stack.kube.secret(ARGOCD_NAMESPACE, secret_name("teleport.argocd-cluster", "root", cluster))


def cert_data(stack: LocalStack, cluster: str) -> str:
    found = secret(stack, cluster)
    assert found is not None, cluster
    config = json.loads(base64.b64decode(found["data"]["config"]))
    return str(config["tlsClientConfig"]["certData"])


def requests(stack: LocalStack, *verbs: str) -> list[Any]:
    assert stack.kube is not None
    return [r for r in stack.kube.requests if r.verb in verbs]


def writes(stack: LocalStack) -> list[Any]:
    return requests(stack, "create", "update", "patch", "delete")


def lease_free(stack: LocalStack) -> bool:
    return state(stack).lease_status("production")["holder"] in (None, "")


@contextmanager
def logged(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records a logger emits meanwhile (the handlers' Powertools Logger is `teleport-argocd`)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logging.getLogger(name).addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger(name).removeHandler(handler)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def add_prod_clusters(stack: LocalStack, count: int) -> list[str]:
    assert stack.teleport is not None
    names = [f"prod-extra-{i}" for i in range(count)]
    for name in names:
        stack.teleport.add_kube_cluster(name, labels={"env": "prod", "team": "payments"})
    return names


@pytest.fixture
def listing_refused(stack: LocalStack) -> Iterator[LocalStack]:
    """The Teleport stand-in answers every ListResources with RESOURCE_EXHAUSTED, whatever the page
    size (its ceiling at 0), so the client's halving gives up: an Auth RPC failing after the join.
    Restored afterwards, since `LocalStack.reset` leaves the stand-in's switches alone."""
    assert stack.teleport is not None
    stack.teleport.list_limit_exceeded_above = 0
    try:
        yield stack
    finally:
        stack.teleport.list_limit_exceeded_above = None


# -- Teleport down, or the join refused ----------------------------------------------------


def test_teleport_unreachable_fails_the_run_before_the_lease_and_writes_nothing(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    invoke("renew", event("schedule.json"))
    before = {c: cert_data(stack, c) for c in PROD}
    runs_before = len(state(stack).runs("production", limit=50))
    written_before = len(writes(stack))
    capsys.readouterr()
    port = closed_port()
    monkeypatch.setenv("TELEPORT_PROXY_ADDR", f"127.0.0.1:{port}")

    result = invoke("reload", event("reload.json"))["outputs"][0]

    assert result["status"] == "failed"
    [error] = result["errors"]
    assert f"127.0.0.1:{port}" in error and "unreachable" in error
    assert result["clusters"] == []
    assert len(writes(stack)) == written_before  # no Secret touched
    assert {c: cert_data(stack, c) for c in PROD} == before
    assert lease_free(stack)
    runs = state(stack).runs("production", limit=50)
    assert len(runs) == runs_before + 1 and runs[0].errors == (error,)
    assert all(r.last_error is None and r.matches for r in registrations(stack).values())
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["RunsFailed"] == 1 and metrics["SecretsWritten"] == 0

    monkeypatch.undo()  # Teleport is back: the next run renews both
    again = invoke("reload", event("reload.json"))["outputs"][0]
    assert again["status"] == "completed"
    assert all(cert_data(stack, c) != before[c] for c in PROD)


# -- Listing fails (an Auth RPC failing after the join) ------------------------------------


def test_listing_failing_after_the_join_fails_the_run_and_touches_no_secret(
    listing_refused: LocalStack,
) -> None:
    stack = listing_refused

    result = invoke("reload", event("reload.json"))["outputs"][0]

    assert result["status"] == "failed"
    assert result["errors"], result
    assert all("ListResources failed: RESOURCE_EXHAUSTED" in e for e in result["errors"]), result
    assert result["clusters"] == []
    assert writes(stack) == []
    assert all(secret(stack, c) is None for c in PROD)
    assert lease_free(stack)
    [run] = state(stack).runs("production", limit=50)
    assert list(run.errors) == result["errors"]
    assert registrations(stack) == {}


def test_listing_failing_after_the_join_leaves_what_is_registered_as_it_was(
    listing_refused: LocalStack,
) -> None:
    """A failed listing says nothing about which clusters are selected: a run that could not list
    must not mark the registered clusters unmatched (which would start their pruning grace period)."""
    stack = listing_refused
    assert stack.teleport is not None
    stack.teleport.list_limit_exceeded_above = None
    invoke("renew", event("schedule.json"))
    registered = registrations(stack)
    stack.teleport.list_limit_exceeded_above = 0

    result = invoke("reload", event("reload.json"))["outputs"][0]

    assert result["status"] == "failed" and result["clusters"] == []
    assert [r.status for r in writes(stack)] == [201, 201]  # the first run's two creates, nothing since
    assert registrations(stack) == registered
    assert lease_free(stack)


# -- Destination 5xx and 429: retried with backoff ------------------------------------------


def test_a_500_on_every_third_write_is_retried_within_the_run(stack: LocalStack) -> None:
    assert stack.kube is not None
    extra = add_prod_clusters(stack, 4)
    clusters = sorted([*PROD, *extra])
    counter = {"creates": 0}
    lock = threading.Lock()

    def every_third() -> None:
        with lock:
            counter["creates"] += 1
            failing = counter["creates"] % 3 == 0
        if failing:
            raise ApiError(500, "InternalError", "Internal error occurred: etcdserver: leader changed")

    stack.kube.before("patch", every_third, times=1000)

    result = invoke("reload", event("reload.json"))["outputs"][0]

    assert result["status"] == "completed", result
    assert {c["kube_cluster"]: c["action"] for c in result["clusters"]} == dict.fromkeys(clusters, "created")
    creates = requests(stack, "patch")
    # 6 Secrets, every third apply refused: requests 3 and 6 fail and are retried, 8 in all; no
    # request is needed beyond the first success of each Secret, and nothing is read first.
    assert [r.status for r in creates].count(500) == 2
    assert [r.status for r in creates].count(201) == len(clusters) == 6
    assert len(creates) == 8
    assert requests(stack, "get", "update", "list") == []
    assert all(secret(stack, c) is not None for c in clusters)
    regs = registrations(stack)
    assert sorted(regs) == clusters
    assert all(r.last_error is None and r.version is not None for r in regs.values())
    assert lease_free(stack)


def test_a_429_with_retry_after_is_honoured(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    assert stack.kube is not None
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    # Only the destination client's clock: record each backoff it chooses, and still wait it out.
    monkeypatch.setattr(http, "time", SimpleNamespace(sleep=sleep, monotonic=time.monotonic))
    stack.kube.fail(429, times=1, retry_after=1)

    result = invoke("reload", event("reload.json"))["outputs"][0]

    assert result["status"] == "completed"
    assert {c["kube_cluster"] for c in result["clusters"]} == set(PROD)
    statuses = [r.status for r in requests(stack, "patch")]
    assert statuses.count(429) == 1 and statuses.count(201) == 2
    # The first backoff is at most 0.25 s of jitter; the 429 asked for a whole second and got it.
    assert slept == [1.0]
    assert all(r.last_error is None for r in registrations(stack).values())


@pytest.mark.parametrize(
    ("header", "waits"),
    [("-5", None), ("nan", None), ("-inf", None), ("inf", 5.0), ("1e9", 5.0), ("soon", None), ("", None)],
)
def test_a_retry_after_that_is_not_a_sane_number_is_bounded_or_ignored(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, header: str, waits: float | None
) -> None:
    """A negative or NaN `Retry-After` once crashed the write (`time.sleep` raises): now it is ignored
    for the usual backoff, and a huge one is capped, so the Secret is still written."""
    assert stack.kube is not None
    slept: list[float] = []
    monkeypatch.setattr(http, "time", SimpleNamespace(sleep=slept.append, monotonic=time.monotonic))
    stack.kube.fail(429, times=1, retry_after=header)

    result = invoke("reload", event("reload.json"))["outputs"][0]

    assert result["status"] == "completed"
    assert {c["kube_cluster"] for c in result["clusters"]} == set(PROD)
    [delay] = slept  # one 429, one wait
    if waits is None:
        assert 0 <= delay <= http.Retry().base_delay  # the first step of the usual jittered backoff
    else:
        assert delay == waits


def test_a_destination_that_keeps_answering_503_fails_each_cluster_and_not_the_run_loop(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.kube is not None
    monkeypatch.setattr(http, "time", SimpleNamespace(sleep=lambda s: None, monotonic=time.monotonic))
    stack.kube.fail(503, times=8)  # 2 Secrets x 4 attempts

    result = invoke("reload", event("reload.json"))["outputs"][0]

    assert result["status"] == "failed"
    failed = {c["kube_cluster"]: c["error"] for c in result["clusters"]}
    assert set(failed) == set(PROD)
    assert all("503" in e and "after 4 attempts" in e for e in failed.values()), failed
    assert [r.status for r in requests(stack, "patch")] == [503] * 8
    regs = registrations(stack)
    assert all(regs[c].last_error == failed[c] and regs[c].last_written is None for c in PROD)
    assert lease_free(stack)

    again = invoke("renew", event("discovery.json"))["outputs"][0]  # discovery retries failed clusters
    assert {c["kube_cluster"]: c["action"] for c in again["clusters"]} == dict.fromkeys(PROD, "created")
    assert all(r.last_error is None for r in registrations(stack).values())


# -- other writers ---------------------------------------------------------------------------


def edit_ours(stack: LocalStack, clusters: tuple[str, ...], edits: list[int]) -> Callable[[], None]:
    """Another writer (Argo CD, a person) relabelling our Secrets, each time a write is about to land."""
    assert stack.kube is not None
    kube_api = stack.kube

    def edit() -> None:
        edits.append(1)
        for cluster in clusters:
            name = secret_name("teleport.argocd-cluster", "root", cluster)

            def change(found: dict[str, Any]) -> None:
                found["metadata"].setdefault("labels", {})["example.com/theirs"] = str(len(edits))
                found["metadata"].setdefault("annotations", {})["example.com/note"] = "kept"

            kube_api.edit_secret(ARGOCD_NAMESPACE, name, change)

    return edit


def test_edits_by_another_writer_are_kept_without_a_conflict_or_a_read(stack: LocalStack) -> None:
    """Server-side apply: their keys are theirs, so an edit just before each of our writes costs
    nothing (the update-based writer met a 409 and read the Secret again each time)."""
    assert stack.kube is not None
    invoke("renew", event("schedule.json"))
    before = {c: cert_data(stack, c) for c in PROD}
    stack.kube.requests.clear()
    edits: list[int] = []
    stack.kube.before("patch", edit_ours(stack, PROD, edits), times=4)

    result = invoke("reload", event("reload.json"))["outputs"][0]

    assert result["status"] == "completed", result
    assert {c["kube_cluster"]: c["action"] for c in result["clusters"]} == dict.fromkeys(PROD, "updated")
    assert [r.status for r in requests(stack, "patch")] == [200, 200]
    assert requests(stack, "get", "update", "create") == []
    for cluster in PROD:
        found = secret(stack, cluster)
        assert found is not None
        assert found["metadata"]["labels"]["example.com/theirs"] == str(len(edits))  # theirs, kept
        assert found["metadata"]["labels"]["team"]  # and ours
        assert found["metadata"]["annotations"]["example.com/note"] == "kept"
        assert cert_data(stack, cluster) != before[cluster]  # with the new certificate
    assert all(r.last_error is None for r in registrations(stack).values())


def test_a_tbot_still_running_fails_that_cluster_until_the_next_run(stack: LocalStack) -> None:
    """tbot left running rewrites its Secret before each of our requests: the takeover gives up
    after its attempts, that cluster fails with the reason, and the next run (tbot stopped) takes
    it over."""
    assert stack.kube is not None
    kube_api = stack.kube
    name = secret_name("teleport.argocd-cluster", "root", "prod-us-east")
    tbots = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ARGOCD_NAMESPACE,
            "labels": {"argocd.argoproj.io/secret-type": "cluster", "stale": "x"},
            "annotations": {
                "teleport.dev/kubernetes-cluster-name": "prod-us-east",
                "teleport.dev/teleport-cluster-name": "root",
                "teleport.dev/tbot-version": "18.2.0",
            },
        },
        "data": {"config": "e30="},
    }
    kube_api.put_secret(tbots, manager="tbot")
    storming = threading.Event()
    storming.set()
    kube_api.before(
        "patch", lambda: kube_api.put_secret(tbots, manager="tbot") if storming.is_set() else None, times=1000
    )
    payload = event("kube_create.json")
    payload["detail"].update(event="kube.update", name="prod-us-east", kube_labels={"env": "prod"})
    payload["detail-type"] = "kube.update"

    result = invoke("audit_event", payload)  # an event: a run of that one cluster

    [cluster] = result["outputs"][0]["clusters"]
    assert cluster["kube_cluster"] == "prod-us-east" and cluster["action"] == "failed"
    assert "still modified by someone else after 5 attempts" in cluster["error"]
    assert registrations(stack)["prod-us-east"].last_error == cluster["error"]
    assert lease_free(stack)

    storming.clear()
    again = invoke("renew", event("discovery.json"))["outputs"][0]  # the failed cluster is retried
    assert ("prod-us-east", "updated") in [(c["kube_cluster"], c["action"]) for c in again["clusters"]]
    found = secret(stack, "prod-us-east")
    assert found is not None and "stale" not in found["metadata"]["labels"]
    assert "teleport.dev/tbot-version" not in found["metadata"]["annotations"]
    assert registrations(stack)["prod-us-east"].last_error is None


# -- DynamoDB throttled or failing -----------------------------------------------------------


def _throttled(operation: str) -> AWSResponse:
    """DynamoDB's answer to a request over the table's throughput: HTTP 400 with that error type
    (DynamoDB API reference, "Error handling": ProvisionedThroughputExceededException, retryable)."""
    body = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "message": "The level of configured provisioned throughput for the table was exceeded.",
        }
    ).encode()
    raw = SimpleNamespace(stream=lambda **_: iter([body]))
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": f"throttled-{operation}"}
    return AWSResponse("https://dynamodb.local/", 400, headers, raw)  # type: ignore[arg-type]


def test_batch_write_throttled_outright_is_retried_by_botocore_and_nothing_is_lost(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When none of a BatchWriteItem's items can be written for lack of throughput, DynamoDB answers
    ProvisionedThroughputExceededException for the whole call (API reference, BatchWriteItem). That is
    a throttling error the SDK retries itself, so the hook answers it in place of the HTTP request
    (`before-send`): botocore's retry handler sees it exactly as if DynamoDB had sent it."""
    session = load_handler("reload").session
    sent: list[str] = []

    def throttle_twice(request: Any, **_: Any) -> AWSResponse | None:
        sent.append("throttled" if len(sent) < 2 else "sent")
        return _throttled("BatchWriteItem") if sent[-1] == "throttled" else None

    session.events.register("before-send.dynamodb.BatchWriteItem", throttle_twice)
    try:
        result = invoke("reload", event("reload.json"))["outputs"][0]
    finally:
        session.events.unregister("before-send.dynamodb.BatchWriteItem", throttle_twice)

    assert sent == ["throttled", "throttled", "sent"]
    assert result["status"] == "completed"
    regs = registrations(stack)
    assert sorted(regs) == sorted(PROD)
    assert all(r.version is not None and r.last_error is None and r.cert_expires for r in regs.values())
    assert lease_free(stack)


def test_batch_write_leaving_items_unprocessed_is_retried_and_nothing_is_lost(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When only some items are throttled, BatchWriteItem succeeds and returns the rest in
    `UnprocessedItems` for the caller to send again (API reference, BatchWriteItem: "If DynamoDB
    returns any unprocessed items, you should retry the batch operation on those items"); the SDK
    does not retry those. So the hook lets the first item of the batch through to DynamoDB and hands
    the others back unprocessed, twice, as a partly throttled table would."""
    extra = add_prod_clusters(stack, 3)
    session = load_handler("reload").session
    calls: list[int] = []

    def partly_throttled(params: dict[str, Any], **_: Any) -> Any:
        # `params` is the serialized request; DynamoDB's JSON body carries the items as sent.
        [(table, items)] = json.loads(params["body"])["RequestItems"].items()
        calls.append(len(items))
        if len(calls) > 2 or len(items) < 2:
            return None  # the real request
        stack.aws.client("dynamodb").batch_write_item(RequestItems={table: items[:1]})
        http = SimpleNamespace(status_code=200, headers={}, content=b"")
        return http, {"UnprocessedItems": {table: items[1:]}, "ResponseMetadata": {"HTTPStatusCode": 200}}

    session.events.register("before-call.dynamodb.BatchWriteItem", partly_throttled)
    try:
        result = invoke("reload", event("reload.json"))["outputs"][0]
    finally:
        session.events.unregister("before-call.dynamodb.BatchWriteItem", partly_throttled)

    assert calls == [5, 4, 3]  # each retry carries exactly what was left unprocessed
    assert result["status"] == "completed"
    regs = registrations(stack)
    assert sorted(regs) == sorted([*PROD, *extra])
    assert all(r.version is not None and r.last_error is None for r in regs.values())
    assert lease_free(stack)


def queued_run(message_id: str) -> dict[str, Any]:
    """The worker's SQS event for one scheduled run of the output, as the renewal schedule queues it."""
    body = {"output": "production", "kind": "schedule", "reason": "schedule", "renew": "due", "shard": "0/1"}
    record = {"messageId": message_id, "body": json.dumps(body), "eventSource": "aws:sqs"}
    return {"Records": [record]}


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # a crashed run reports none
def test_dynamodb_unreachable_fails_the_run_and_the_next_delivery_recovers(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scheduled runs reach the worker through SQS (template.yaml). With the state table unreachable
    the run cannot read its registry or record itself: the invocation reports the message failed, so
    SQS delivers it again, and nothing was written to Argo CD meanwhile."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # boto3 retries (kept short here), then gives up

    with logged("teleport-argocd") as records:
        answer = invoke("worker", queued_run("m-1"))

    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    [crash] = [r for r in records if r.getMessage().startswith("queued run crashed")]
    assert crash.exc_info is not None
    error = crash.exc_info[1]
    assert type(error).__name__ == "StateError"
    assert f"on table {STATE_TABLE} failed: Could not connect" in str(error)
    assert writes(stack) == []  # nothing written without the registry
    assert emitted_metrics(capsys.readouterr().out).get("RunsFailed") is None  # no run to report

    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")
    assert invoke("worker", queued_run("m-1")) == {"batchItemFailures": []}  # SQS delivers it again
    [run] = state(stack).runs("production", limit=50)
    assert run.trigger == "schedule" and run.errors == ()
    assert sorted(registrations(stack)) == sorted(PROD)
    assert all(secret(stack, c) is not None for c in PROD)
    assert lease_free(stack)


def test_dynamodb_throttling_writes_mid_run_fails_it_and_leaves_the_lease_to_expire(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the lease is taken and the first Secret is being written, every write to the state table
    is throttled beyond boto3's retries (reads still answer): the run ends `failed` with the state
    error, the Secrets it wrote stay, its lease is left to expire, and the next run finds those
    Secrets (ours, by their annotation), updates them and records them."""
    assert stack.kube is not None
    monkeypatch.setenv("LEASE_SECONDS", "1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    session = load_handler("reload").session
    throttling = threading.Event()
    throttled: list[str] = []

    def throttle_writes(request: Any, **_: Any) -> AWSResponse | None:
        operation = request.headers.get("X-Amz-Target", b"")
        operation = (operation.decode() if isinstance(operation, bytes) else operation).split(".")[-1]
        if throttling.is_set() and operation in ("BatchWriteItem", "PutItem", "UpdateItem"):
            throttled.append(operation)
            return _throttled(operation)
        return None

    stack.kube.before("patch", throttling.set, times=1)
    session.events.register("before-send.dynamodb", throttle_writes)
    try:
        result = invoke("reload", event("reload.json"))["outputs"][0]
    finally:
        session.events.unregister("before-send.dynamodb", throttle_writes)

    assert result["status"] == "failed"
    assert result["errors"] and all("ProvisionedThroughputExceededException" in e for e in result["errors"])
    assert any("batch_write_item" in e for e in result["errors"]), result["errors"]
    assert throttled[:2] == ["BatchWriteItem", "BatchWriteItem"]  # boto3 retried it once (2 attempts)
    assert all(secret(stack, c) is not None for c in PROD)  # written before the table refused
    assert registrations(stack) == {}  # but not recorded
    assert not lease_free(stack)  # left to expire
    time.sleep(1.2)  # LEASE_SECONDS=1

    again = invoke("reload", event("reload.json"))["outputs"][0]

    assert again["status"] == "completed", again
    assert {c["kube_cluster"]: c["action"] for c in again["clusters"]} == dict.fromkeys(PROD, "updated")
    regs = registrations(stack)
    assert sorted(regs) == sorted(PROD) and all(r.last_error is None for r in regs.values())
    assert lease_free(stack)


# -- A certificate near expiry ---------------------------------------------------------------


def test_a_certificate_near_expiry_is_renewed_by_the_next_scheduled_run(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    invoke("renew", event("schedule.json"))
    untouched = cert_data(stack, "prod-eu-west")
    old = cert_data(stack, "prod-us-east")
    # Ten minutes left on one of them, as if 50 of its 60 minutes had gone by.
    near = datetime.now(UTC) + timedelta(minutes=10)
    regs = registrations(stack)
    state(stack).put_registrations([replace(regs["prod-us-east"], cert_expires=near)])
    # Registrations are only written under the lease, so a warm process trusts what it read while
    # the lease's release stamp is unchanged; this edit bypassed the lease, so start cold.
    state_registry._REGISTRY.clear()
    capsys.readouterr()

    result = invoke("renew", event("schedule.json"))["outputs"][0]  # a renewal, not forced

    assert result["status"] == "completed"
    assert [(c["kube_cluster"], c["action"], c["reason"]) for c in result["clusters"]] == [
        ("prod-us-east", "updated", "renewal due")
    ]
    assert cert_data(stack, "prod-us-east") != old
    assert cert_data(stack, "prod-eu-west") == untouched
    renewed = registrations(stack)["prod-us-east"].cert_expires
    assert renewed is not None and renewed > near + timedelta(minutes=40)
    earliest = min(r.cert_expires for r in registrations(stack).values() if r.cert_expires)
    metrics = emitted_metrics(capsys.readouterr().out)
    # The metric is the earliest expiry of what is registered now, counted from the run's end:
    # no longer the ten minutes left before the run.
    assert metrics["SecretsWritten"] == 1
    expiry_seconds = metrics["CertificateExpirySeconds"]
    assert expiry_seconds > 41 * 60
    assert abs(expiry_seconds - (earliest - datetime.now(UTC)).total_seconds()) < 60


# -- reload requests a careless or hostile caller sends --------------------------------------------


def test_a_reload_naming_one_output_fifty_times_runs_it_once(stack: LocalStack) -> None:
    result = invoke("reload", {"outputs": ["production"] * 50, "dry_run": True})
    assert [o["output"] for o in result["outputs"]] == ["production"]
    assert [o["output"] for o in result["status"]["outputs"]] == ["production"]


def test_a_reload_naming_fifty_thousand_unknown_outputs_gets_a_short_answer(stack: LocalStack) -> None:
    result = invoke("reload", {"outputs": [f"nope-{i}" for i in range(50_000)]})
    assert result["error"] == "invalid reload request"
    assert result["problems"] == ["outputs: List should have at most 100 items after validation, not 50000"]
    unknown = invoke("reload", {"outputs": [f"nope-{i}" for i in range(60)]})
    assert unknown["error"].startswith("unknown output(s): nope-0, nope-1,")
    assert "and 50 more; configured: production" in unknown["error"]
    assert len(json.dumps(unknown)) < 1000


def test_a_reload_answer_over_the_response_limit_is_cut_with_a_count(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda refuses a synchronous response over 6 MB; the answer is cut to fit, saying how much."""
    invoke("renew", event("schedule.json"))
    whole = invoke("reload", {"dry_run": True, "unchanged": True})
    assert len(whole["status"]["outputs"][0]["registrations"]) == len(PROD)
    limit = len(json.dumps(whole)) - 200
    monkeypatch.setattr(responses, "MAX_RESPONSE_BYTES", limit)

    cut = invoke("reload", {"dry_run": True, "unchanged": True})

    assert len(json.dumps(cut)) <= limit
    [report] = cut["outputs"]
    [status] = cut["status"]["outputs"]
    left_out = report.get("clusters_left_out", 0) + status.get("registrations_left_out", 0)
    assert left_out >= 1
    assert len(report["clusters"]) + report.get("clusters_left_out", 0) == len(PROD)
    assert len(status["registrations"]) + status.get("registrations_left_out", 0) == len(PROD)


def test_another_event_reusing_a_uid_is_not_answered_from_the_cache(stack: LocalStack) -> None:
    """Idempotency keys on the uid, the event type and the time: a retry of the same event is a
    duplicate, a different event that reuses its uid (a bug or a forgery upstream) is not."""
    assert stack.teleport is not None
    invoke("renew", event("schedule.json"))
    stack.teleport.add_kube_cluster("staging-eu", labels={"env": "staging", "team": "platform"})
    created = invoke("audit_event", event("kube_create.json"))
    assert created["status"] == "processed" and created["event"] == "kube.create"
    assert invoke("audit_event", event("kube_create.json")) == created  # a retry: the cached answer

    stack.teleport.remove_kube_cluster("staging-eu")
    delete = event("kube_create.json")
    delete["detail-type"] = delete["detail"]["event"] = "kube.delete"
    delete["detail"]["time"] = delete["time"] = "2030-01-01T00:00:00Z"
    deleted = invoke("audit_event", delete)

    assert deleted["status"] == "processed" and deleted["event"] == "kube.delete"
    actions = {c["kube_cluster"]: c["action"] for c in deleted["outputs"][0]["clusters"]}
    assert actions == {"staging-eu": "unmatched"}


def test_a_secret_someone_else_put_in_the_way_is_relinquished_once_and_then_left_alone(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refusing to write over it is right; failing every run for it drowns real failures. After a few
    runs it is reported relinquished (report, status, metric) and later runs leave it alone, until a
    forced reload tries again (an operator acted)."""
    assert stack.kube is not None
    name = secret_name("teleport.argocd-cluster", "root", "prod-us-east")
    stack.kube.put_secret(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ARGOCD_NAMESPACE, "labels": {"owner": "me"}},
            "data": {"token": "c2VjcmV0"},
        }
    )
    actions = []
    for _ in range(3):
        result = invoke("renew", event("discovery.json"))["outputs"][0]
        actions.append({c["kube_cluster"]: c["action"] for c in result["clusters"]}.get("prod-us-east"))
    assert actions == ["failed", "failed", "relinquished"]
    assert result["status"] == "completed" and result["counts"]["relinquished"] == 1
    assert emitted_metrics(capsys.readouterr().out)["SecretsRelinquished"] == 1

    requests_before = len(stack.kube.requests)
    quiet = invoke("renew", event("discovery.json"))["outputs"][0]
    assert quiet["status"] == "idle" and quiet["counts"]["failed"] == 0
    assert len(stack.kube.requests) == requests_before  # not even a read of it
    assert emitted_metrics(capsys.readouterr().out).get("SecretsRelinquished", 0) == 0
    status = invoke("reload", {"status_only": True})["status"]["outputs"][0]
    [reg] = [r for r in status["registrations"] if r["kube_cluster"] == "prod-us-east"]
    assert reg["relinquished_at"] and "tbot" in reg["last_error"]  # the refusal names whose we take over

    stack.kube.remove_secret(ARGOCD_NAMESPACE, name)  # the operator clears the way and reloads
    reloaded = invoke("reload", event("reload.json"))["outputs"][0]
    assert {c["kube_cluster"]: c["action"] for c in reloaded["clusters"]}["prod-us-east"] == "created"
    assert registrations(stack)["prod-us-east"].relinquished_at is None
