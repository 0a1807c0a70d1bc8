"""Which registration changes a renewal ledger records, and how an entry reads back (state.renewals)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from teleport_argocd.model import Registration, SecretVersion
from teleport_argocd.state.renewals import Ledger, bucket_of, entry_key, recorded, renewal_only, renewed

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=20)

BEFORE = Registration(
    output="main",
    teleport_cluster="example.teleport.sh",
    kube_cluster="prod",
    secret_namespace="argocd",
    secret_name="cluster-prod",
    labels={"env": "prod"},
    fingerprint="f" * 32,
    version=SecretVersion("uid-1", "41"),
    first_written=T0,
    last_written=T0,
    last_attempt=T0,
    cert_expires=T0 + timedelta(hours=1),
    cert_id="a" * 32,
    connection="ok",
    connection_at=T0,
)
RENEWED = replace(
    BEFORE,
    last_written=LATER,
    last_attempt=LATER,
    cert_expires=LATER + timedelta(hours=1),
    cert_id="b" * 32,
    version=SecretVersion("uid-1", "42"),
)


def ledger_with(*regs: Registration) -> dict[int, Ledger]:
    ledgers: dict[int, Ledger] = {}
    for reg in regs:
        bucket = bucket_of(entry_key(reg))
        recorded(ledgers.setdefault(bucket, Ledger(bucket)), reg)
    return ledgers


@pytest.mark.parametrize(
    "after",
    [
        RENEWED,
        replace(RENEWED, connection_at=LATER),  # checked with the renewal, and it passed
        replace(RENEWED, connection="", connection_at=None),  # a check never made
    ],
)
def test_a_renewal_is_recorded_and_reads_back_as_written(after: Registration) -> None:
    assert renewal_only(BEFORE, after)
    assert renewed(BEFORE, ledger_with(after)) == after


@pytest.mark.parametrize(
    ("after", "why"),
    [
        (replace(RENEWED, labels={"env": "staging"}), "labels changed"),
        (replace(RENEWED, fingerprint="e" * 32), "rendering changed"),
        (replace(RENEWED, version=SecretVersion("uid-2", "1")), "another Secret (uid)"),
        (replace(RENEWED, last_error="boom"), "a failure"),
        (
            replace(RENEWED, connection="forbidden", connection_at=LATER, connection_message="HTTP 403"),
            "failed check",
        ),
        (replace(BEFORE, connection_at=LATER), "a check alone: nothing written"),
        (replace(RENEWED, last_attempt=T0, last_written=T0), "not later than what it replaces"),
        (replace(RENEWED, version=SecretVersion("uid-1", "4|2")), "a separator in the resourceVersion"),
    ],
)
def test_anything_else_is_written_whole(after: Registration, why: str) -> None:
    assert not renewal_only(BEFORE, after), why


def test_an_entry_no_newer_than_the_item_is_ignored() -> None:
    """The item was written whole after the renewal (a failure, a relabel): the item wins."""
    failed = replace(RENEWED, last_error="boom", last_attempt=LATER + timedelta(minutes=1))
    assert renewed(failed, ledger_with(RENEWED)) == failed
    assert renewed(BEFORE, ledger_with(replace(RENEWED, last_written=T0, last_attempt=T0))) == BEFORE


def test_a_later_renewal_replaces_the_entry_and_an_earlier_one_does_not() -> None:
    ledgers = ledger_with(RENEWED)
    [ledger] = ledgers.values()
    latest = replace(
        RENEWED, last_written=LATER + timedelta(minutes=20), last_attempt=LATER + timedelta(minutes=20)
    )
    recorded(ledger, latest)
    recorded(ledger, RENEWED)  # a slower run's older renewal, merged after
    assert renewed(BEFORE, ledgers) == latest


def test_a_failed_check_keeps_the_items_message_under_a_later_renewal() -> None:
    """A check that left a message is in the item (written whole); a renewal without a new check
    does not overwrite it."""
    failing = replace(RENEWED, connection="unreachable", connection_message="timed out", connection_at=LATER)
    later = LATER + timedelta(minutes=20)
    renewal = replace(failing, last_written=later, last_attempt=later, version=SecretVersion("uid-1", "43"))
    assert renewal_only(failing, renewal)
    assert renewed(failing, ledger_with(renewal)) == renewal
