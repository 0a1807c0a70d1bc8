"""End to end: registration within minutes for every way a cluster joins Teleport.

A dynamic `kube_cluster` emits `kube.create` before its agent heartbeats it (reference
teleport-events.md, "Which enrolment emits what"); an agent-enrolled cluster emits nothing
and is found by the discovery schedule.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from standins.handlers import event, invoke, load_handler
from standins.stack import ARGOCD_NAMESPACE, CONFIG_PARAMETER, STATE_TABLE, LocalStack
from teleport_argocd.argocd import secret_name
from teleport_argocd.errors import ClusterNotListed
from teleport_argocd.runtime import keeper
from teleport_argocd.state import StateStore


@pytest.fixture
def stack(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    monkeypatch.setenv("EVENT_LISTING_WAIT_SECONDS", "4")
    return stack


def kube_event(name: str, labels: dict[str, str], event_type: str = "kube.create") -> dict[str, Any]:
    payload = copy.deepcopy(event("kube_create.json"))
    payload["detail-type"] = event_type
    payload["detail"].update(event=event_type, uid=str(uuid.uuid4()), name=name, kube_labels=labels)
    return payload


def secret(stack: LocalStack, cluster: str) -> dict[str, Any] | None:
    assert stack.kube is not None
    return stack.kube.secret(ARGOCD_NAMESPACE, secret_name("teleport.argocd-cluster", "root", cluster))


def kube_writes(stack: LocalStack) -> list[Any]:
    assert stack.kube is not None
    return [r for r in stack.kube.requests if r.verb in ("create", "update", "patch", "delete")]


def test_an_event_that_arrives_before_its_cluster_is_listed_waits_for_it(stack: LocalStack) -> None:
    assert stack.teleport is not None
    invoke("renew", event("schedule.json"))
    before = len(kube_writes(stack))
    labels = {"env": "prod", "team": "platform"}
    heartbeat = threading.Timer(1.5, stack.teleport.add_kube_cluster, ("late-prod",), {"labels": labels})
    heartbeat.start()

    result = invoke("audit_event", kube_event("late-prod", labels))

    heartbeat.join()
    assert [(c["kube_cluster"], c["action"]) for c in result["outputs"][0]["clusters"]] == [
        ("late-prod", "created")
    ]
    assert secret(stack, "late-prod") is not None
    assert len(kube_writes(stack)) == before + 1  # that cluster alone


def test_an_event_whose_cluster_never_appears_fails_for_a_retry_which_then_registers_it(
    stack: LocalStack,
) -> None:
    assert stack.teleport is not None
    payload = kube_event("slow-prod", {"env": "prod"})

    with pytest.raises(ClusterNotListed, match="slow-prod"):
        invoke("audit_event", payload)  # Lambda retries a failed asynchronous invocation

    runs = StateStore(STATE_TABLE, client=stack.aws.client("dynamodb")).runs("production", limit=1)
    assert "slow-prod" in runs[0].errors[0]
    stack.teleport.add_kube_cluster("slow-prod", labels={"env": "prod"})
    retried = invoke("audit_event", payload)  # the same event: idempotency let the retry through
    assert retried["outputs"][0]["clusters"][0]["action"] == "created"


def test_an_agent_enrolled_cluster_without_any_event_is_registered_by_discovery(stack: LocalStack) -> None:
    assert stack.teleport is not None
    invoke("renew", event("schedule.json"))
    quiet = invoke("renew", event("discovery.json"))
    assert quiet["outputs"][0]["status"] == "idle"
    before = len(kube_writes(stack))
    stack.teleport.add_kube_cluster("agent-prod", labels={"env": "prod"})  # heartbeats only, no event

    found = invoke("renew", event("discovery.json"))

    assert [(c["kube_cluster"], c["action"]) for c in found["outputs"][0]["clusters"]] == [
        ("agent-prod", "created")
    ]
    assert len(kube_writes(stack)) == before + 1


def test_warm_invocations_keep_one_bot_instance(stack: LocalStack) -> None:
    assert stack.teleport is not None
    # The keeper lives as long as the process, like a warm execution environment: earlier tests
    # may have joined this stand-in already (or, with another token, made another instance).
    invoke("renew", event("schedule.json"))
    instances = len(stack.teleport.bot_instances())
    joins = keeper().joins_in_last_hour(datetime.now(UTC))
    for trigger in ("discovery.json", "schedule.json", "discovery.json"):
        invoke("renew", event(trigger))
    invoke("reload", event("reload.json"))
    status = invoke("reload", {"status_only": True})["status"]

    assert len(stack.teleport.bot_instances()) == instances  # no join made a new one
    assert status["teleport"]["joins_in_last_hour"] == joins  # the kept bot served every run
    [current] = [i for i in stack.teleport.bot_instances() if i.id == status["teleport"]["bot_instance_id"]]
    assert current.bot_name == "argocd"


def test_an_event_nested_beyond_the_limit_is_dropped_not_retried(stack: LocalStack) -> None:
    payload = kube_event("prod-us-east", {"env": "prod"})
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(500):
        node["x"] = {}
        node = node["x"]
    payload["detail"]["extra"] = deep

    result = invoke("audit_event", payload)

    assert result["status"] == "dropped" and "deeper" in result["problems"][0]
    assert kube_writes(stack) == []


def test_before_the_configuration_exists_runs_end_quietly(stack: LocalStack) -> None:
    stack.aws.client("ssm").delete_parameter(Name=CONFIG_PARAMETER)
    assert invoke("renew", event("schedule.json")) == {"status": "not configured"}
    assert invoke("audit_event", kube_event("prod-us-east", {"env": "prod"})) == {"status": "not configured"}
    assert kube_writes(stack) == []


@pytest.mark.parametrize(
    ("event_type", "name", "runs"),
    [
        ("role.updated", "someone-elses-role", False),
        ("bot.update", "another-bot", False),
        ("role.updated", "argocd-clusters", True),  # a role our bot impersonates
        ("role.created", "bot-argocd", True),  # the bot's own role
        ("bot.update", "argocd", True),
    ],
)
def test_role_and_bot_events_run_everything_only_when_they_concern_our_bot(
    stack: LocalStack, event_type: str, name: str, runs: bool
) -> None:
    invoke("renew", event("schedule.json"))
    before = len(kube_writes(stack))
    payload = kube_event(name, {}, event_type)

    result = invoke("audit_event", payload)

    assert bool(result["outputs"]) is runs
    assert len(kube_writes(stack)) - before == (2 if runs else 0)  # a full run rewrites both Secrets


def test_an_event_recreating_our_bot_makes_the_next_run_join_afresh(stack: LocalStack) -> None:
    invoke("renew", event("schedule.json"))
    joins = keeper().joins_in_last_hour(datetime.now(UTC))

    result = invoke("audit_event", kube_event("argocd", {}, "bot.create"))

    assert result["outputs"] and keeper().joins_in_last_hour(datetime.now(UTC)) == joins + 1
    invoke("renew", event("discovery.json"))
    assert keeper().joins_in_last_hour(datetime.now(UTC)) == joins + 1  # kept again afterwards


def test_a_kube_create_delivered_after_a_later_kube_delete_is_not_waited_for(stack: LocalStack) -> None:
    """The Event Handler delivers at least once, with retries, so order is not kept: a kube.create
    can arrive after the kube.delete that followed it. The cluster is gone; the create is stale."""
    assert stack.teleport is not None
    invoke("renew", event("schedule.json"))
    created = kube_event("prod-us-east", {"env": "prod"})
    created["detail"]["time"] = "2020-01-01T00:00:00.000Z"  # emitted long before the delete below
    stack.teleport.remove_kube_cluster("prod-us-east")
    deleted = invoke("audit_event", kube_event("prod-us-east", {"env": "prod"}, "kube.delete"))
    assert deleted["outputs"][0]["clusters"][0]["action"] == "unmatched"
    before = len(kube_writes(stack))

    late = invoke("audit_event", created)  # would wait and then fail for a retry if not recognised

    assert late["status"] == "processed" and late["outputs"][0]["clusters"] == []
    assert len(kube_writes(stack)) == before


def test_a_genuine_update_after_a_stale_delete_is_carried_out(stack: LocalStack) -> None:
    """A stale (or forged) kube.delete timed after a genuine kube.update used to shadow it until the
    next full run: what Teleport lists decides now, so the update is written at once."""
    assert stack.teleport is not None
    invoke("renew", event("schedule.json"))
    forged = kube_event("prod-us-east", {"env": "prod"}, "kube.delete")
    forged["detail"]["time"] = "2030-01-01T00:00:00.000Z"
    ignored = invoke("audit_event", forged)  # Teleport still lists it: the delete changes nothing
    assert ignored["outputs"][0]["status"] == "idle" and ignored["outputs"][0]["clusters"] == []
    stack.teleport.update_kube_cluster("prod-us-east", labels={"env": "prod", "team": "search"})
    update = kube_event("prod-us-east", {"env": "prod", "team": "search"}, "kube.update")
    update["detail"]["time"] = "2029-01-01T00:00:00.000Z"  # before the forged delete's time

    result = invoke("audit_event", update)

    assert [(c["kube_cluster"], c["action"]) for c in result["outputs"][0]["clusters"]] == [
        ("prod-us-east", "updated")
    ]
    written = secret(stack, "prod-us-east")
    assert written is not None and written["metadata"]["labels"]["team"] == "search"


def test_an_event_reads_only_the_registrations_of_its_cluster(stack: LocalStack) -> None:
    """With the Teleport cluster the event names (`cluster_name`), the audit function reads the named
    cluster's items (BatchGetItem), never the whole registry (Query), and still finds a cluster it
    must unregister; an event without `cluster_name` reads the whole registry, as before."""
    assert stack.teleport is not None
    invoke("renew", event("schedule.json"))
    session = load_handler("audit_event").session
    reads: list[str] = []

    def count(request: Any, **_: Any) -> None:
        body = json.loads(request.body or b"{}")
        if STATE_TABLE in (body.get("TableName"), *body.get("RequestItems", {})):
            reads.append(request.headers["X-Amz-Target"].decode().rpartition(".")[2])

    session.events.register("before-send.dynamodb", count)
    try:
        stack.teleport.remove_kube_cluster("prod-us-east")
        deleted = invoke("audit_event", kube_event("prod-us-east", {"env": "prod"}, "kube.delete"))
        targeted, reads[:] = list(reads), []
        stack.teleport.add_kube_cluster("prod-ap-south", labels={"env": "prod"})
        anonymous = kube_event("prod-ap-south", {"env": "prod"})
        del anonymous["detail"]["cluster_name"]
        created = invoke("audit_event", anonymous)
    finally:
        session.events.unregister("before-send.dynamodb", count)

    assert [(c["kube_cluster"], c["action"]) for c in deleted["outputs"][0]["clusters"]] == [
        ("prod-us-east", "unmatched")
    ]
    assert "Query" not in targeted and targeted.count("BatchGetItem") == 2  # the event's choice, the run
    assert [(c["kube_cluster"], c["action"]) for c in created["outputs"][0]["clusters"]] == [
        ("prod-ap-south", "created")
    ]
    assert "Query" in reads
    regs = {
        r.kube_cluster: r.matches
        for r in StateStore(STATE_TABLE, client=stack.aws.client("dynamodb")).registrations("production")
    }
    assert regs == {"prod-us-east": False, "prod-eu-west": True, "prod-ap-south": True}
