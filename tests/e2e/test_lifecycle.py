"""End to end: the bot's lifecycle changed in Teleport between warm invocations of the real handlers.

For each of a lock, a deleted bot, a join token whose allow rules stop matching the functions' role
and a role whose max_session_ttl caps the certificates below credential_ttl: the run's errors name
it and its fix, the status report shows it, `TeleportLifecycleFailures` is published once across
two warm ticks, and the first run after the cause is removed recovers. The shared stack keeps its
Teleport bot, role and token across tests, so each test puts back what it changed.
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from standins.aws import ACCOUNT_ID
from standins.handlers import emitted_metrics, event, invoke
from standins.stack import ARGOCD_NAMESPACE, BOT_NAME, JOIN_TOKEN, ROLE_NAME, STATE_TABLE, LocalStack
from teleport_argocd import runtime
from teleport_argocd.botstanding import StandingStore

METRIC = "TeleportLifecycleFailures"
ROLE = "argocd-clusters"  # the role the stack's bot impersonates
JOIN_RPC = "/teleport.join.v1.JoinService/Join"
ALLOW = [{"aws_account": ACCOUNT_ID, "aws_arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE_NAME}/*"}]


def tick(capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], dict[str, float]]:
    """One scheduled run (the renew function runs it inline here): its output's report and metrics."""
    capsys.readouterr()
    [output] = invoke("renew", event("schedule.json"))["outputs"]
    return output, emitted_metrics(capsys.readouterr().out)


def lifecycle() -> dict[str, Any]:
    status: dict[str, Any] = invoke("reload", {"outputs": [], "status_only": True})["status"]
    return dict(status["teleport"]["lifecycle"])


@pytest.fixture
def teleport(stack: LocalStack) -> Iterator[Any]:
    """The stack's Teleport stand-in, put back as `LocalStack.start` made it afterwards."""
    assert stack.teleport is not None
    try:
        yield stack.teleport
    finally:
        stack.teleport.add_role(ROLE, kubernetes_labels={"*": "*"})
        stack.teleport.add_bot(BOT_NAME, roles=[ROLE])
        stack.teleport.add_iam_token(JOIN_TOKEN, bot_name=BOT_NAME, allow=ALLOW)
        with contextlib.suppress(KeyError):
            stack.teleport.unlock("incident")


@pytest.mark.parametrize("target", ["user", "bot_instance_id", "role"])
def test_a_lock_on_the_bot_is_named_alarmed_once_and_lifted_at_the_next_run(
    teleport: Any, target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ok, _ = tick(capsys)
    assert ok["status"] == "completed" and not ok["errors"]
    # The bot's user, its instance, or the role it impersonates (refused when the run asks for it).
    value = {"user": f"bot-{BOT_NAME}", "bot_instance_id": runtime.keeper().bot_instance_id, "role": ROLE}[
        target
    ]
    teleport.lock("incident", **{target: value}, message="runner compromised")

    first, metrics = tick(capsys)
    assert first["status"] == "failed"
    [error] = first["errors"]
    assert "is in force (runner compromised)" in error
    assert "Fix: find the lock with `tctl get locks`" in error and "tctl rm locks/" in error
    assert metrics[METRIC] == 1
    second, metrics = tick(capsys)
    assert second["status"] == "failed" and "is in force" in second["errors"][0]
    assert METRIC not in metrics
    shown = lifecycle()
    assert shown["state"] == "bot-locked" and "tctl rm locks/" in shown["fix"]
    assert "runner compromised" in shown["reason"]

    teleport.unlock("incident")
    resumed, metrics = tick(capsys)
    assert resumed["status"] in ("completed", "idle") and not resumed["errors"]
    assert METRIC not in metrics
    assert lifecycle()["state"] == "ok"


def test_a_deleted_bot_is_named_alarmed_once_and_a_recreated_one_serves_again(
    teleport: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    tick(capsys)
    teleport.remove_bot(BOT_NAME)  # `tctl bots rm`: the token still names it

    first, metrics = tick(capsys)
    assert first["status"] == "failed"
    assert f"no longer knows user bot-{BOT_NAME}" in first["errors"][0]
    assert f"Fix: recreate the bot with `tctl bots add {BOT_NAME}" in first["errors"][0]
    assert metrics[METRIC] == 1
    second, metrics = tick(capsys)
    assert second["status"] == "failed" and METRIC not in metrics
    assert lifecycle()["state"] == "bot-deleted"

    teleport.add_bot(BOT_NAME, roles=[ROLE])  # `tctl bots add`
    resumed, _ = tick(capsys)
    assert resumed["status"] in ("completed", "idle") and not resumed["errors"]
    assert lifecycle()["state"] == "ok"


def audit(kind: str, name: str) -> dict[str, Any]:
    """An audit event of `kind` naming `name`, as the Event Handler delivers it."""
    payload = copy.deepcopy(event("kube_create.json"))
    payload["detail-type"] = kind
    payload["detail"].update(event=kind, uid=str(uuid.uuid4()), name=name, kube_labels={})
    return payload


@pytest.mark.parametrize(
    ("kind", "name", "refused_cold", "event_cold"),
    [
        # `tctl bots add`: the refusal came from the kept identity, which the event drops.
        ("bot.create", BOT_NAME, False, False),
        # A new execution environment whose first join was refused: it knows no bot name.
        ("bot.create", BOT_NAME, True, True),
        # The bot's own role written again, seen by a new environment: the name comes from the record.
        ("role.created", f"bot-{BOT_NAME}", False, True),
    ],
)
def test_an_event_recreating_the_deleted_bot_joins_and_writes_at_once_despite_the_backoff(
    stack: LocalStack,
    teleport: Any,
    kind: str,
    name: str,
    refused_cold: bool,
    event_cold: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert stack.kube is not None
    tick(capsys)
    teleport.remove_bot(BOT_NAME)
    if refused_cold:
        runtime.keeper().forget()  # the refusal meets a join
    failed, _ = tick(capsys)
    assert failed["status"] == "failed" and lifecycle()["state"] == "bot-deleted"
    assert lifecycle()["retry_after"] > datetime.now(UTC).isoformat()  # the backoff holds joins back
    if event_cold:
        runtime.keeper().forget()  # no kept identity to try: only a join can serve
    teleport.add_bot(BOT_NAME, roles=[ROLE])
    joins = teleport.rpc_calls[JOIN_RPC]
    writes = len(stack.kube.requests)

    result = invoke("audit_event", audit(kind, name))

    assert [o["status"] for o in result["outputs"]] == ["completed"]
    assert teleport.rpc_calls[JOIN_RPC] == joins + 1  # joined at once, not after the backoff
    written = [r for r in stack.kube.requests[writes:] if r.verb in ("create", "update", "patch")]
    assert {r.namespace for r in written} == {ARGOCD_NAMESPACE} and len(written) == 2
    assert lifecycle()["state"] == "ok"
    again, _ = tick(capsys)
    assert not again["errors"] and teleport.rpc_calls[JOIN_RPC] == joins + 1  # the new identity is kept


def test_a_token_that_stops_allowing_the_role_is_named_and_not_joined_again_before_its_backoff(
    stack: LocalStack, teleport: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    tick(capsys)
    teleport.add_iam_token(JOIN_TOKEN, bot_name=BOT_NAME, allow=[{"aws_account": "999999999999"}])
    # Teleport still honours the kept identity; the refusal comes with the next join, here a cold
    # environment's.
    runtime.keeper().forget()

    first, metrics = tick(capsys)
    assert first["status"] == "failed"
    assert f"join token {JOIN_TOKEN} has no allow rule matching this function's role" in first["errors"][0]
    assert f"tctl edit token/{JOIN_TOKEN}" in first["errors"][0]
    assert f'aws_arn: "arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE_NAME}/*"' in first["errors"][0]
    assert metrics[METRIC] == 1
    joins = teleport.rpc_calls[JOIN_RPC]
    second, metrics = tick(capsys)
    assert "no join is tried before" in second["errors"][0] and METRIC not in metrics
    assert teleport.rpc_calls[JOIN_RPC] == joins  # the join was not retried
    shown = lifecycle()
    assert shown["state"] == "join-not-allowed" and shown["attempts"] == 1 and shown["retry_after"]

    teleport.add_iam_token(JOIN_TOKEN, bot_name=BOT_NAME, allow=ALLOW)
    # Time passes: the backoff ends (its retry_after moves into the past), and the next run joins.
    store = StandingStore(STATE_TABLE, client=stack.aws.client("dynamodb"))
    store.write(replace(store.read(), retry_after=datetime.now(UTC) - timedelta(seconds=1)))
    resumed, _ = tick(capsys)
    assert resumed["status"] in ("completed", "idle") and not resumed["errors"]
    assert teleport.rpc_calls[JOIN_RPC] == joins + 1
    assert lifecycle()["state"] == "ok"


def test_a_max_session_ttl_below_credential_ttl_is_named_once_and_runs_still_write(
    teleport: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    teleport.add_role(ROLE, kubernetes_labels={"*": "*"}, max_session_ttl=timedelta(minutes=30))

    first, metrics = tick(capsys)
    assert {c["action"] for c in first["clusters"]} == {"created"}  # written, with 30-minute certificates
    [error] = first["errors"]
    assert "Teleport issued certificates for 30m, not the 1h of credential_ttl" in error
    assert f"Fix: raise max_session_ttl of role {ROLE} to at least 1h" in error
    assert metrics[METRIC] == 1
    second, metrics = tick(capsys)
    assert "not the 1h of credential_ttl" in second["errors"][0] and METRIC not in metrics
    assert lifecycle()["state"] == "credential-ttl-capped"

    teleport.add_role(ROLE, kubernetes_labels={"*": "*"})
    resumed, _ = tick(capsys)
    assert not resumed["errors"]
    assert lifecycle()["state"] == "ok"
