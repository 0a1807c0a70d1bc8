"""Teleport's answers that mean a lifecycle failure (teleport.lifecycle), and the bot's recorded
standing that keeps one from being retried blindly (botstanding)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from teleport_argocd.botstanding import BACKOFF_FIRST, BACKOFF_MAX, Gate, Standing
from teleport_argocd.errors import (
    BotDeleted,
    BotLocked,
    CredentialTTLCapped,
    JoinNotAllowed,
    LifecycleFailure,
)
from teleport_argocd.teleport.lifecycle import classify, ttl_capped

ARN = "arn:aws:sts::123456789012:assumed-role/teleport-argocd-worker/teleport-argocd-worker-fn"


@pytest.mark.parametrize(
    ("code", "details", "kind", "in_reason", "in_fix"),
    [
        # lib/services/lock.go LockInForceAccessDenied, with and without the lock's message.
        (
            "PERMISSION_DENIED",
            'lock targeting User:"bot-argocd" is in force: compromised runner',
            BotLocked,
            'lock targeting User:"bot-argocd" is in force (compromised runner)',
            "tctl rm locks/",
        ),
        (
            "PERMISSION_DENIED",
            'lock targeting BotInstanceID:"6f1c" is in force',
            BotLocked,
            'BotInstanceID:"6f1c"',
            "tctl get locks",
        ),
        # ContextForLocalUser: the deleted bot's user is looked up before any RPC.
        (
            "NOT_FOUND",
            'user "bot-argocd" is not found',
            BotDeleted,
            "(argocd) no longer exists",
            "tctl bots add argocd",
        ),
        # generateInitialBotCerts hides the failed lookup behind a bare AccessDenied.
        (
            "PERMISSION_DENIED",
            "access denied",
            BotDeleted,
            "of join token argocd-iam",
            "tctl bots add <bot name>",
        ),
        # lib/auth/join_iam.go checkIAMAllowRules.
        (
            "PERMISSION_DENIED",
            f"instance {ARN} did not match any allow rules in token argocd-iam",
            JoinNotAllowed,
            f"join token argocd-iam has no allow rule matching this function's role ({ARN})",
            'aws_arn: "arn:aws:sts::123456789012:assumed-role/teleport-argocd-worker/*"',
        ),
    ],
)
def test_teleports_refusals_are_named_with_their_fix(
    code: str, details: str, kind: type[LifecycleFailure], in_reason: str, in_fix: str
) -> None:
    failure = classify(
        code, details, token="argocd-iam", bot_user="bot-argocd" if code == "NOT_FOUND" else ""
    )
    assert isinstance(failure, kind)
    assert in_reason in failure.reason
    assert in_fix in failure.fix
    assert str(failure) == f"{failure.reason}. Fix: {failure.fix}"


@pytest.mark.parametrize(
    ("code", "details"),
    [
        ("PERMISSION_DENIED", 'access denied to perform action "read" on "role"'),
        ("NOT_FOUND", 'user "alice" is not found'),  # not a bot
        ("NOT_FOUND", 'kubernetes cluster "prod" not found'),
        ("UNAVAILABLE", 'lock targeting User:"bot-argocd" is in force'),  # not Teleport's answer
        ("PERMISSION_DENIED", '"" can not join the cluster with role "Bot", token expired or not found'),
    ],
)
def test_other_failures_are_left_as_they_are(code: str, details: str) -> None:
    assert classify(code, details, token="argocd-iam") is None


def test_a_capped_certificate_names_the_roles_and_both_fixes() -> None:
    finding = ttl_capped(timedelta(hours=1), timedelta(minutes=30), "role argocd-clusters")
    assert finding.reason == (
        "Teleport issued certificates for 30m, not the 1h of credential_ttl: "
        "the max_session_ttl of role argocd-clusters caps them"
    )
    assert "raise max_session_ttl of role argocd-clusters to at least 1h" in finding.fix
    assert "lower credential_ttl (and renewal_interval) to 30m or less" in finding.fix


class MemoryStore:
    """The one item StandingStore keeps, in memory, counting writes."""

    def __init__(self, standing: Standing | None = None) -> None:
        self.standing = standing or Standing()
        self.writes = 0

    def read(self) -> Standing:
        return self.standing

    def write(self, standing: Standing) -> None:
        self.standing = standing
        self.writes += 1


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


LOCKED = BotLocked('a lock targeting User:"bot-argocd" is in force', "remove it")
DENIED = JoinNotAllowed("join token argocd-iam has no allow rule matching", "add one")


def gate(store: MemoryStore, clock: Clock) -> Gate:
    return Gate(store, clock)  # type: ignore[arg-type]


def refuse(failure: LifecycleFailure) -> object:
    raise failure


def test_a_refused_join_is_recorded_once_and_not_tried_again_before_its_backoff() -> None:
    store, clock, joins = MemoryStore(), Clock(), []

    def join() -> object:
        joins.append(clock.now)
        raise DENIED

    first = gate(store, clock)
    with pytest.raises(JoinNotAllowed):
        first.connect("s1", join=join, reuse=lambda: None)
    assert first.recorded == 1
    assert store.standing.retry_after == clock.now + BACKOFF_FIRST
    # The next tick, no kept identity: no join, the recorded failure, nothing recorded afresh.
    clock.now += timedelta(minutes=2)
    second = gate(store, clock)
    with pytest.raises(JoinNotAllowed, match="no join is tried before"):
        second.connect("s1", join=join, reuse=lambda: None)
    assert (len(joins), second.recorded, store.writes) == (1, 0, 1)
    # Past the backoff the join is tried again, and refused again: twice as long this time.
    clock.now += BACKOFF_FIRST
    third = gate(store, clock)
    with pytest.raises(JoinNotAllowed):
        third.connect("s1", join=join, reuse=lambda: None)
    assert (len(joins), third.recorded, store.standing.attempts) == (2, 0, 2)
    assert store.standing.retry_after == clock.now + 2 * BACKOFF_FIRST


def test_changed_settings_or_a_manual_reload_join_at_once_and_a_success_clears_the_record() -> None:
    store, clock = MemoryStore(), Clock()
    with pytest.raises(JoinNotAllowed):
        gate(store, clock).connect("s1", join=lambda: refuse(DENIED), reuse=lambda: None)
    ok = gate(store, clock)
    assert ok.connect("s2", join=lambda: "session", reuse=lambda: None) == "session"
    ok.after_run("s2", refused=None, capped=None, checked=True)
    assert store.standing.kind == "" and store.standing.recovered_at == clock.now
    with pytest.raises(JoinNotAllowed):
        gate(store, clock).connect("s1", join=lambda: refuse(DENIED), reuse=lambda: None)
    forced = gate(store, clock)
    assert forced.connect("s1", join=lambda: "session", reuse=lambda: None, force=True) == "session"


def test_while_blocked_the_kept_identity_sees_a_lock_lifted_but_not_a_token_fixed() -> None:
    clock = Clock()
    store = MemoryStore()
    with pytest.raises(BotLocked):
        gate(store, clock).connect("s1", join=lambda: refuse(LOCKED), reuse=lambda: None)
    # Still locked, seen through the kept identity: nothing new is written or counted.
    still = gate(store, clock)
    with pytest.raises(BotLocked):
        still.connect("s1", join=lambda: pytest.fail("joined"), reuse=lambda: refuse(LOCKED))
    assert (still.recorded, store.writes) == (0, 1)
    # Unlocked: the kept identity is accepted and the run completes, which clears the lock.
    lifted = gate(store, clock)
    lifted.connect("s1", join=lambda: pytest.fail("joined"), reuse=lambda: "kept")
    lifted.after_run("s1", refused=None, capped=None, checked=True)
    assert store.standing.kind == ""
    # A token refusal is not healed by the kept identity: only a join proves the rules match again.
    with pytest.raises(JoinNotAllowed):
        gate(store, clock).connect("s1", join=lambda: refuse(DENIED), reuse=lambda: None)
    kept = gate(store, clock)
    assert kept.connect("s1", join=lambda: pytest.fail("joined"), reuse=lambda: "kept") == "kept"
    kept.after_run("s1", refused=None, capped=None, checked=True)
    assert store.standing.kind == JoinNotAllowed.kind


def test_a_lock_met_during_a_run_is_recorded_and_a_capped_certificate_once() -> None:
    store, clock = MemoryStore(), Clock()
    run = gate(store, clock)
    run.connect("s1", join=lambda: "session", reuse=lambda: None)
    run.after_run("s1", refused=LOCKED, capped=None, checked=False)
    assert (store.standing.kind, run.recorded) == (BotLocked.kind, 1)
    capped = ttl_capped(timedelta(hours=1), timedelta(minutes=30), "role r")
    store.standing = Standing()
    for _ in range(2):
        warm = gate(store, clock)
        warm.connect("s1", join=lambda: "session", reuse=lambda: None)
        warm.after_run("s1", refused=None, capped=capped, checked=True)
    assert store.standing.kind == CredentialTTLCapped.kind and store.standing.retry_after is None
    assert store.writes == 2  # the lock, then the cap once
    healed = gate(store, clock)
    healed.connect("s1", join=lambda: "session", reuse=lambda: None)
    healed.after_run("s1", refused=None, capped=None, checked=False)  # no certificate asked: no news
    assert store.standing.kind == CredentialTTLCapped.kind
    healed.after_run("s1", refused=None, capped=None, checked=True)
    assert store.standing.kind == ""


def test_the_backoff_is_capped() -> None:
    store = MemoryStore(Standing(kind=JoinNotAllowed.kind, settings="s1", attempts=20, since=Clock().now))
    clock = Clock()
    with pytest.raises(JoinNotAllowed):
        gate(store, clock).connect("s1", join=lambda: refuse(DENIED), reuse=lambda: None, force=True)
    assert store.standing.retry_after == clock.now + BACKOFF_MAX


def test_the_status_names_the_failure_and_its_fix() -> None:
    clock = Clock()
    standing = Standing(
        kind=BotLocked.kind,
        reason=LOCKED.reason,
        fix=LOCKED.fix,
        settings="s1",
        since=clock.now,
        seen=clock.now,
        attempts=1,
        retry_after=clock.now + BACKOFF_FIRST,
    )
    assert standing.status() == {
        "state": "bot-locked",
        "reason": LOCKED.reason,
        "fix": "remove it",
        "attempts": 1,
        "since": clock.now.isoformat(),
        "seen": clock.now.isoformat(),
        "retry_after": (clock.now + BACKOFF_FIRST).isoformat(),
    }
    assert Standing().status() == {"state": "ok"}
