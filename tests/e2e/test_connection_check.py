"""End to end: a run checks that each Secret it writes connects through the Teleport proxy as Argo CD
will; the status report shows the outcome per registration and the metrics count what does not connect."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from standins.handlers import drain_runs, emitted_metrics, event, invoke, unload_handlers
from standins.stack import LocalStack

CLUSTERS = ("prod-eu-west", "prod-us-east")  # what the stack's output selects
ROLE = "argocd-clusters"  # the role the stack's bot impersonates


def test_written_secrets_are_checked_and_the_status_shows_it(
    stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stack.teleport is not None and stack.kube is not None
    capsys.readouterr()
    kube_writes = len(stack.kube.requests)
    proxy_requests = len(stack.teleport.kube_requests)

    [output] = invoke("renew", event("schedule.json"))["outputs"]

    written = sorted(c["kube_cluster"] for c in output["clusters"] if c["action"] == "created")
    assert written == ["prod-eu-west", "prod-us-east"]
    # One GET /version per written Secret, through Teleport's proxy, with the Secret's identity.
    checks = [(r.kube_cluster, r.method, r.path) for r in stack.teleport.kube_requests[proxy_requests:]]
    assert sorted(checks) == [(c, "GET", "/version") for c in written]
    # And nothing more than the writes reached the Argo CD cluster.
    assert len(stack.kube.requests) - kube_writes == len(written)
    assert emitted_metrics(capsys.readouterr().out)["ClustersUnreachable"] == 0

    status = invoke("reload", {"outputs": [], "status_only": True})["status"]
    [registrations] = [o["registrations"] for o in status["outputs"]]
    assert {r["kube_cluster"]: (r["connection"], r["connection_message"]) for r in registrations} == {
        c: ("ok", "") for c in written
    }
    assert all(r["connection_at"] for r in registrations)


@pytest.fixture
def fanned_out() -> Iterator[LocalStack]:
    """A stack whose schedule queues each output's run for the worker function, as deployed."""
    with LocalStack(fan_out=True) as stack, stack.environment():
        unload_handlers()
        yield stack


def _run_through_the_worker(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """One schedule, its queued run delivered to the worker: the worker's metrics."""
    assert invoke("renew", event("schedule.json"))["status"] == "queued"
    capsys.readouterr()
    assert drain_runs(stack.queue_url, stack.aws.client("sqs")) == [{"batchItemFailures": []}]
    return emitted_metrics(capsys.readouterr().out)


def _connections() -> dict[str, tuple[str, str]]:
    status = invoke("reload", {"outputs": [], "status_only": True})["status"]
    [registrations] = [o["registrations"] for o in status["outputs"]]
    return {r["kube_cluster"]: (r["connection"], r["connection_message"]) for r in registrations}


def test_a_role_without_kubernetes_groups_shows_forbidden(
    fanned_out: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    teleport = fanned_out.teleport
    assert teleport is not None
    # The role still allows the clusters' labels, so Teleport lists them and the Secrets are written,
    # but its Kubernetes proxy refuses every request: no kubernetes_groups, no kubernetes_users.
    teleport.add_role(ROLE, kubernetes_labels={"*": "*"}, kubernetes_groups=())

    metrics = _run_through_the_worker(fanned_out, capsys)

    shown = _connections()
    assert set(shown) == set(CLUSTERS)
    for cluster, (connection, message) in shown.items():
        assert connection == "forbidden", cluster
        # Teleport's own explanation, as its proxy answers GET /version (HTTP 500, plain text).
        assert message.startswith("HTTP 500: Your user's Teleport role does not allow Kubernetes access")
    assert metrics["ClustersUnreachable"] == len(CLUSTERS)

    teleport.add_role(ROLE, kubernetes_labels={"*": "*"})  # kubernetes_groups given: access works again
    # A manual reload rewrites and checks at once, rather than after the failed checks' 10 minutes.
    invoke("reload", event("reload.json"))
    assert {c: s for c, (s, _) in _connections().items()} == dict.fromkeys(CLUSTERS, "ok")


def test_a_cluster_whose_agent_is_down_shows_unreachable_and_is_counted(
    fanned_out: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    teleport = fanned_out.teleport
    assert teleport is not None
    # Its kube_server is still listed (the heartbeat has not expired), but no agent tunnel serves it.
    teleport.set_agent_down("prod-us-east")

    metrics = _run_through_the_worker(fanned_out, capsys)

    shown = _connections()
    assert shown["prod-eu-west"] == ("ok", "")
    connection, message = shown["prod-us-east"]
    assert connection == "unreachable" and message.startswith("HTTP 504: failed to dial"), message
    assert metrics["ClustersUnreachable"] == 1
