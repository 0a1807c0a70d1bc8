"""End to end: a run checks that each Secret it writes connects through the Teleport proxy as Argo CD
will; the status report shows the outcome per registration and the metrics count what does not connect."""

from __future__ import annotations

import pytest

from standins.handlers import emitted_metrics, event, invoke
from standins.stack import LocalStack


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
