"""The audit event model both ways in share (`teleport_argocd.audit`)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from teleport_argocd.audit import AuditEvent
from teleport_argocd.errors import MalformedEvent

EVENTS = Path(__file__).resolve().parents[2] / "events"


def envelope() -> dict[str, Any]:
    return json.loads((EVENTS / "kube_create.json").read_text())


def test_reads_the_fields_the_policy_uses_and_keeps_the_whole_event() -> None:
    event = AuditEvent.from_envelope(envelope())
    assert (event.type, event.uid, event.name) == (
        "kube.create",
        "b5e2f7a4-3c1d-4e8f-9a6b-0d2c4e6f8a1b",
        "staging-eu",
    )
    assert event.kube_labels == {"env": "staging", "team": "platform"}
    assert event.happened == datetime(2026, 11, 21, 10, 15, 42, 318000, tzinfo=UTC)
    assert event.fields == envelope()["detail"]  # forwarded whole, fields we do not read included
    assert event.reacted


@pytest.mark.parametrize("missing", ["event", "uid", "time"])
def test_event_uid_and_time_are_required_as_teleport_always_sets_them(missing: str) -> None:
    """Teleport's emitter refuses an event without a type and stamps every other with a `uid` and,
    when unset, its clock's `time` (`lib/events/emitter.go`, `checkAndSetEventFields`); `Metadata.Time`
    is encoded as `time` without `omitempty` (`api/proto/teleport/legacy/types/events/events.proto`).
    An event without one of them did not come from Teleport: both ways in refuse it alike."""
    detail = {k: v for k, v in envelope()["detail"].items() if k != missing}
    with pytest.raises(MalformedEvent, match=f"'{missing}' must be a non-empty string"):
        AuditEvent.parse(detail)
    whole = envelope()
    del whole["detail"][missing]
    with pytest.raises(MalformedEvent) as raised:
        AuditEvent.from_envelope(whole)
    assert raised.value.problems == [f"detail: field '{missing}' must be a non-empty string"]


@pytest.mark.parametrize("time", ["yesterday", "2026-11-21T10:15:42"])  # no offset: not RFC 3339
def test_a_time_that_does_not_read_is_kept_but_orders_nothing(time: str) -> None:
    event = AuditEvent.parse({**envelope()["detail"], "time": time})
    assert event.time == time and event.happened is None


def test_every_problem_is_named_with_its_path() -> None:
    whole = envelope()
    whole["region"] = 7
    whole["resources"] = ["arn", 1]
    whole["detail"].update(uid="", name=["x"], kube_labels={"env": 1})
    with pytest.raises(MalformedEvent) as raised:
        AuditEvent.from_envelope(whole)
    assert raised.value.problems == [
        "region: must be a string",
        "resources: must be a list of strings",
        "detail: field 'uid' must be a non-empty string",
        "detail: field 'name' must be a string",
        "detail: field 'kube_labels' must be an object of strings",
    ]


def test_fields_of_events_we_do_not_react_to_are_not_ours_to_judge() -> None:
    """Only the types we react to are read past `event`, `uid` and `time`; any other is forwarded or
    ignored as it is."""
    event = AuditEvent.parse({"event": "user.login", "uid": "u", "time": "t", "name": {"x": 1}})
    assert not event.reacted and event.name == ""


def test_absent_or_null_kube_labels_are_none() -> None:
    detail = copy.deepcopy(envelope()["detail"])
    detail["kube_labels"] = None  # Go encodes a nil map without omitempty as null
    assert AuditEvent.parse(detail).kube_labels == {}
    del detail["kube_labels"]
    assert AuditEvent.parse(detail).kube_labels == {}


@pytest.mark.parametrize(
    "payload", [None, [], "kube.create", {"detail": "x"}, {"detail": {"event": [], "uid": "u", "time": "t"}}]
)
def test_what_is_not_an_envelope_is_malformed(payload: Any) -> None:
    with pytest.raises(MalformedEvent):
        AuditEvent.from_envelope(payload)
