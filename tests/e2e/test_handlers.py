"""End to end: the real handlers, driven with the files in events/, against every stand-in."""

from __future__ import annotations

import base64
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from standins.handlers import event, invoke, load_handler, unload_handlers
from standins.kubeapi import APPLICATIONS, KubeApiServer
from standins.stack import (
    ARGOCD_NAMESPACE,
    KUBECONFIG_SECRET,
    STATE_TABLE,
    WRITER,
    LocalStack,
    default_outputs,
    rbac,
    writer_kubeconfig,
)
from teleport_argocd.argocd import secret_name
from teleport_argocd.state import StateStore

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running(lease_seconds: int) -> Iterator[LocalStack]:
    with LocalStack(lease_seconds=lease_seconds) as stack, stack.environment():
        unload_handlers()
        yield stack


@pytest.fixture
def short_lease_stack() -> Iterator[LocalStack]:
    """Leases of 3 s, so a dead run's lease expires within the test."""
    with running(lease_seconds=3) as stack:
        yield stack


def state(stack: LocalStack) -> StateStore:
    return StateStore(STATE_TABLE, client=stack.aws.client("dynamodb"))


def argocd_secret(stack: LocalStack, kube_cluster: str) -> dict[str, Any] | None:
    assert stack.kube is not None
    return stack.kube.secret(ARGOCD_NAMESPACE, secret_name("teleport.argocd-cluster", "root", kube_cluster))


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def audit_event(name: str, labels: dict[str, str], event_type: str = "kube.create") -> dict[str, Any]:
    payload = copy.deepcopy(event("kube_create.json"))
    payload["detail-type"] = event_type
    payload["detail"].update(event=event_type, uid=str(uuid.uuid4()), name=name, kube_labels=labels)
    return payload


def writes(stack: LocalStack) -> list[Any]:
    assert stack.kube is not None
    return [r for r in stack.kube.requests if r.verb in ("create", "update", "patch", "delete")]


def test_scheduled_run_registers_matching_clusters(stack: LocalStack) -> None:
    result = invoke("renew", event("schedule.json"))

    [output] = result["outputs"]
    assert output["status"] == "completed"
    assert sorted(c["kube_cluster"] for c in output["clusters"]) == ["prod-eu-west", "prod-us-east"]
    assert {c["action"] for c in output["clusters"]} == {"created"}
    secret = argocd_secret(stack, "prod-us-east")
    assert secret is not None
    data = decoded(secret)
    assert data["name"] == "root-prod-us-east"
    assert data["project"] == "platform"
    assert data["server"].endswith("/v1/teleport/cm9vdA/cHJvZC11cy1lYXN0")
    assert secret["metadata"]["labels"]["team"] == "payments"
    assert argocd_secret(stack, "dev-sandbox") is None
    regs = {r.kube_cluster: r for r in state(stack).registrations("production")}
    assert set(regs) == {"prod-us-east", "prod-eu-west"}
    assert all(r.matches and r.last_error is None and r.cert_expires for r in regs.values())
    assert stack.kube is not None
    assert not [r for r in stack.kube.requests if r.verb in ("list", "watch")]


def test_a_scheduled_run_with_nothing_due_writes_nothing_but_reload_forces(stack: LocalStack) -> None:
    invoke("renew", event("schedule.json"))
    before = len(writes(stack))
    ddb_items = stack.aws.client("dynamodb").scan(TableName=STATE_TABLE)["Items"]

    again = invoke("renew", event("schedule.json"))
    assert again["outputs"][0]["status"] == "idle"
    assert again["outputs"][0]["counts"]["unchanged"] == 2
    assert len(writes(stack)) == before
    assert stack.aws.client("dynamodb").scan(TableName=STATE_TABLE)["Items"] == ddb_items

    forced = invoke("reload", event("reload.json"))
    assert forced["outputs"][0]["status"] == "completed"
    assert {c["action"] for c in forced["outputs"][0]["clusters"]} == {"updated"}
    assert len(writes(stack)) == before + 2


def test_kube_create_event_registers_the_new_cluster_once(stack: LocalStack) -> None:
    assert stack.teleport is not None
    invoke("renew", event("schedule.json"))
    stack.teleport.add_kube_cluster("staging-eu", labels={"env": "staging", "team": "platform"})

    result = invoke("audit_event", event("kube_create.json"))

    assert result["status"] == "processed"
    clusters = {c["kube_cluster"]: c["action"] for c in result["outputs"][0]["clusters"]}
    assert clusters["staging-eu"] == "created"
    assert argocd_secret(stack, "staging-eu") is not None
    before = len(writes(stack))
    duplicate = invoke("audit_event", event("kube_create.json"))  # the forwarder delivers at least once
    assert duplicate == result
    assert len(writes(stack)) == before


def test_event_for_a_cluster_no_output_selects_runs_nothing(stack: LocalStack) -> None:
    result = invoke("audit_event", audit_event("qa-1", {"env": "qa"}))
    assert result == {"status": "processed", "event": "kube.create", "outputs": []}
    assert writes(stack) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (event("malformed.json"), "malformed"),
        ({"not": "an eventbridge event"}, "malformed"),
        (
            {
                **event("kube_create.json"),
                "detail": {**event("kube_create.json")["detail"], "event": "cert.create"},
            },
            "irrelevant event type cert.create",
        ),
    ],
)
def test_malformed_or_irrelevant_events_are_dropped_not_retried(
    stack: LocalStack, payload: dict[str, Any], reason: str
) -> None:
    result = invoke("audit_event", payload)
    assert result["status"] == "dropped"
    assert result["reason"] == reason
    assert writes(stack) == []


def test_dry_run_reports_the_plan_and_writes_nothing(stack: LocalStack) -> None:
    assert stack.teleport is not None
    invoke("renew", event("schedule.json"))
    stack.teleport.update_kube_cluster("prod-us-east", labels={"env": "retired", "team": "payments"})
    stack.teleport.add_kube_cluster("staging-eu", labels={"env": "staging", "team": "platform"})
    before_writes = len(writes(stack))
    before_runs = len(state(stack).runs("production", limit=50))

    result = invoke("reload", event("reload_dry_run.json"))

    plan = {c["kube_cluster"]: c["action"] for c in result["outputs"][0]["clusters"]}
    assert plan == {
        "prod-eu-west": "would-update",
        "staging-eu": "would-create",
        "prod-us-east": "would-unmatch",
    }
    assert len(writes(stack)) == before_writes
    assert len(state(stack).runs("production", limit=50)) == before_runs
    regs = {r["kube_cluster"]: r for r in result["status"]["outputs"][0]["registrations"]}
    assert regs["prod-us-east"]["matches"] is True  # the dry run recorded nothing


def test_reload_rejects_unknown_outputs_and_bad_requests(stack: LocalStack) -> None:
    assert invoke("reload", {"outputs": ["nope"]}) == {
        "error": "unknown output(s): nope; configured: production"
    }
    bad = invoke("reload", {"dry_run": "maybe", "extra": 1})
    assert bad["error"] == "invalid reload request"
    assert any(p.startswith("dry_run") for p in bad["problems"])
    assert any(p.startswith("extra") for p in bad["problems"])


def test_cluster_that_stops_matching_is_marked_unmatched(stack: LocalStack) -> None:
    assert stack.teleport is not None
    invoke("renew", event("schedule.json"))
    stack.teleport.update_kube_cluster("prod-us-east", labels={"env": "retired", "team": "payments"})

    result = invoke("audit_event", audit_event("prod-us-east", {"env": "retired"}, "kube.update"))

    actions = {c["kube_cluster"]: c["action"] for c in result["outputs"][0]["clusters"]}
    assert actions == {"prod-us-east": "unmatched"}  # the event concerns that cluster alone
    regs = {r.kube_cluster: r for r in state(stack).registrations("production")}
    assert regs["prod-us-east"].matches is False
    assert argocd_secret(stack, "prod-us-east") is not None  # never deleted without pruning


def test_overlapping_triggers_are_not_lost_and_a_burst_costs_two_runs(stack: LocalStack) -> None:
    assert stack.kube is not None and stack.teleport is not None
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(600)

    stack.kube.before("patch", hold)
    results: dict[str, Any] = {}
    first = threading.Thread(target=lambda: results.update(first=invoke("reload", event("reload.json"))))
    first.start()
    assert entered.wait(30)

    # While the first run is stuck in its first write: a new cluster and a burst of events.
    stack.teleport.add_kube_cluster("staging-eu", labels={"env": "staging", "team": "platform"})
    # Kept well inside the destination client's request timeout, which would end the held write.
    burst = [invoke("audit_event", audit_event("staging-eu", {"team": "platform"})) for _ in range(20)]
    release.set()
    first.join(60)

    assert {b["outputs"][0]["status"] for b in burst} == {"queued"}
    report = results["first"]["outputs"][0]
    assert report["status"] == "completed"
    assert report["passes"] == 2
    assert "staging-eu" in {c["kube_cluster"] for c in report["clusters"]}
    assert len(state(stack).runs("production", limit=50)) == 2
    assert state(stack).lease_status("production").get("holder") in (None, "")


def test_a_run_killed_midway_leaves_a_lease_that_expires_and_the_next_run_completes(
    short_lease_stack: LocalStack,
) -> None:
    stack = short_lease_stack
    assert stack.kube is not None
    load_handler("reload")  # warm, so the check below runs well inside the 3 s lease
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        entered.set()
        release.wait(30)

    stack.kube.before("patch", hold)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers/core"), str(ROOT / "tests")])}
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from standins.handlers import event, invoke; invoke('reload', event('reload.json'))",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert entered.wait(60), "the child run never reached its first write"
        child.send_signal(signal.SIGKILL)  # the Lambda dies mid-run: no cleanup at all
    finally:
        child.wait(30)
        release.set()

    assert invoke("reload", event("reload.json"))["outputs"][0]["status"] == "queued"
    time.sleep(3.5)  # LEASE_SECONDS=3 in this stack
    result = invoke("reload", event("reload.json"))["outputs"][0]

    assert result["status"] == "completed"
    assert argocd_secret(stack, "prod-us-east") is not None
    assert argocd_secret(stack, "prod-eu-west") is not None
    assert json.loads(decoded(argocd_secret(stack, "prod-eu-west") or {})["config"])["tlsClientConfig"][
        "certData"
    ]


def test_one_cluster_failing_never_stops_the_others(stack: LocalStack) -> None:
    assert stack.teleport is not None
    # Its `team` label cannot be a Kubernetes label value, so its Secret cannot be rendered.
    stack.teleport.add_kube_cluster("prod-odd", labels={"env": "prod", "team": "not a valid value!"})

    result = invoke("reload", event("reload.json"))["outputs"][0]

    actions = {c["kube_cluster"]: c["action"] for c in result["clusters"]}
    assert actions == {"prod-eu-west": "created", "prod-us-east": "created", "prod-odd": "failed"}
    assert result["status"] == "failed"
    [odd] = [c for c in result["clusters"] if c["kube_cluster"] == "prod-odd"]
    assert "team" in odd["error"]
    regs = {r.kube_cluster: r for r in state(stack).registrations("production")}
    assert regs["prod-odd"].last_error and regs["prod-odd"].last_written is None
    assert regs["prod-us-east"].last_error is None


def test_a_refused_join_fails_the_run_with_teleports_reason_and_writes_nothing(stack: LocalStack) -> None:
    os.environ["TELEPORT_JOIN_TOKEN"] = "no-such-token"

    result = invoke("renew", event("schedule.json"))["outputs"][0]

    assert result["status"] == "failed"
    assert "no-such-token" in result["errors"][0]
    assert result["clusters"] == []
    assert writes(stack) == []
    assert state(stack).lease_status("production")["holder"] in (None, "")


def test_reload_reports_every_configuration_problem_with_its_path(stack: LocalStack) -> None:
    stack.put_config(
        [
            {"type": "kubernetes/argo-cd", "name": "ok", "selectors": [{"name": "a"}]},
            {"type": "kubernetes/argo-cd", "selectors": [{}], "secret_name_prefix": "bad-"},
        ]
    )

    result = invoke("reload", event("reload.json"))

    assert result["error"] == "invalid configuration"
    paths = [p.split(":")[0] for p in result["problems"]]
    assert "outputs[1].selectors[0]" in paths
    assert "outputs[1].secret_name_prefix" in paths
    assert writes(stack) == []


def test_a_name_selector_that_matches_nothing_fails_the_run_but_not_the_others(stack: LocalStack) -> None:
    outputs = default_outputs()
    outputs[0]["selectors"] = [{"name": "no-such-cluster"}, {"labels": {"env": "prod"}}]
    stack.put_config(outputs)

    result = invoke("reload", event("reload.json"))["outputs"][0]

    assert result["status"] == "failed"
    assert result["errors"] == [
        'selector name=no-such-cluster: kubernetes cluster "no-such-cluster" not found'
    ]
    assert {c["kube_cluster"]: c["action"] for c in result["clusters"]} == {
        "prod-us-east": "created",
        "prod-eu-west": "created",
    }


def test_a_warm_process_writes_to_where_the_kubeconfig_now_points_not_through_its_kept_connections(
    stack: LocalStack,
) -> None:
    """A warm process keeps the destination's store and its open connections for the next invocation
    (`destination.connect.connect_kept`) only while the kubeconfig it was made from is unchanged.
    Between two warm invocations the kubeconfig is moved to another API server (another address and
    CA): the second renewal writes every Secret there and sends nothing through the kept connections."""
    assert stack.kube is not None
    first = invoke("reload", event("reload.json"))["outputs"][0]
    assert first["status"] == "completed"
    old_requests = len(stack.kube.requests)
    with KubeApiServer() as moved:
        moved.allow(user=WRITER, verbs=rbac.VERBS["apply"], namespaces=(ARGOCD_NAMESPACE,))
        moved.allow(user=WRITER, verbs=("list",), resources=(APPLICATIONS,), namespaces=(ARGOCD_NAMESPACE,))
        stack.aws.client("secretsmanager").put_secret_value(
            SecretId=KUBECONFIG_SECRET, SecretString=writer_kubeconfig(moved)
        )
        second = invoke("reload", event("reload.json"))["outputs"][0]
        written = {r.name for r in moved.requests if r.verb == "patch" and r.status < 300}

    assert second["status"] == "completed", second
    assert len(stack.kube.requests) == old_requests  # not one request to the old server
    assert written == {
        secret_name("teleport.argocd-cluster", "root", k) for k in ("prod-us-east", "prod-eu-west")
    }


def test_a_destination_dropped_from_the_configuration_has_its_kept_connections_closed(
    stack: LocalStack,
) -> None:
    """Between two warm invocations the output is moved to another destination (another kubeconfig
    secret, another API server): the next invocation closes the connections the process kept to the
    old one instead of holding them until the execution environment ends."""
    assert stack.kube is not None
    assert invoke("reload", event("reload.json"))["outputs"][0]["status"] == "completed"
    assert stack.kube.open_connections > 0  # kept for the next invocation
    with KubeApiServer() as moved:
        moved.allow(user=WRITER, verbs=rbac.VERBS["apply"], namespaces=(ARGOCD_NAMESPACE,))
        moved.allow(user=WRITER, verbs=("list",), resources=(APPLICATIONS,), namespaces=(ARGOCD_NAMESPACE,))
        stack.aws.client("secretsmanager").create_secret(
            Name="teleport-argocd/moved-kubeconfig", SecretString=writer_kubeconfig(moved)
        )
        outputs = default_outputs()
        outputs[0]["destination"] = {"kubeconfig_secret": {"secret_id": "teleport-argocd/moved-kubeconfig"}}
        stack.put_config(outputs)
        second = invoke("reload", event("reload.json"))["outputs"][0]

        deadline = time.monotonic() + 5
        while stack.kube.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert second["status"] == "completed", second
        assert stack.kube.open_connections == 0
