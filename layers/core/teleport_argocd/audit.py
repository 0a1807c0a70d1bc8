"""A Teleport audit event: which events we react to, and the one model both ways in read.

The ingest function checks an event with `AuditEvent.parse` before it puts it on the bus; the audit
function checks the bus's envelope and the same event with `from_envelope`, then hands the model to
the event policy (`triggers.runs_for`). Plain dataclasses, no pydantic: the audit function's cold
start paid about 60-90 ms for a parser model of six fields.

What is required follows Teleport's own event metadata (`api/proto/teleport/legacy/types/events/
events.proto`, `Metadata`): `event` (the type) is always set, and the emitter refuses an event
without one (`lib/events/emitter.go`, `checkAndSetEventFields`); that function also gives every
event but session prints a `uid` and stamps a zero `time` with its clock, and `time` is encoded
without `omitempty`. So every event we react to carries all three; one without is not Teleport's.
A `time` that does not read as RFC 3339 is kept as it came: it only orders events, and an
unreadable one means "unknown" (`happened` is None), as EventBridge then stamps its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from teleport_argocd.errors import EventTooLarge, MalformedEvent

# Events about one dynamic `kube_cluster` resource (T3010I/T3011I/T3012I): a targeted run.
KUBE_EVENTS = frozenset({"kube.create", "kube.update", "kube.delete"})
# Changes to a role or a bot (T9000I-T9002I, TB001I-TB003I): a full run, but only when the role
# or bot is ours (`triggers.runs_for`).
ROLE_EVENTS = frozenset({"role.created", "role.updated", "role.deleted"})
BOT_EVENTS = frozenset({"bot.create", "bot.update", "bot.delete"})
# What the ingest function forwards, the template's rule and stream filter pass, and the audit
# function acts on: one set, so they cannot disagree (tests check the template against it).
REACTED_EVENTS = KUBE_EVENTS | ROLE_EVENTS | BOT_EVENTS

REQUIRED_FIELDS = ("event", "uid", "time")
# The EventBridge envelope's string fields (EventBridge's event structure reference).
ENVELOPE_FIELDS = ("version", "id", "detail-type", "source", "account", "time", "region")

# Deeper than any Teleport event (DynamoDB itself stops at 32 levels); a deeper body is hostile.
MAX_DEPTH = 32
# EventBridge counts Source + DetailType + Detail in UTF-8 bytes, plus 14 when Time is set, against
# 256 KB per entry (eb-putevent-size.html). Source is at most 256 characters and DetailType 128, so a
# Detail under this bound always fits, whatever the configured source.
MAX_ENTRY_BYTES = 256 * 1024
MAX_DETAIL_BYTES = MAX_ENTRY_BYTES - 256 - 128 - 14


@dataclass(frozen=True)
class AuditEvent:
    """One audit event: the fields the policy reads, typed, and the whole event as Teleport wrote it
    (`fields`), which is what goes on the bus."""

    type: str
    uid: str
    time: str
    name: str = ""
    kube_labels: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def happened(self) -> datetime | None:
        """When Teleport emitted the event (its `time`, RFC 3339 with an offset), or None if unreadable."""
        try:
            happened = datetime.fromisoformat(self.time)
        except ValueError:
            return None
        return happened if happened.tzinfo is not None else None

    @property
    def reacted(self) -> bool:
        """Whether the event can change what is registered."""
        return self.type in REACTED_EVENTS

    @classmethod
    def parse(cls, obj: object, path: str = "") -> AuditEvent:
        """Check a decoded event: a bounded JSON object with non-empty string `event`, `uid` and `time`;
        on an event we react to, also a string `name` and string `kube_labels` where present.
        Raises `MalformedEvent` naming every problem, each with its path."""
        where = f"{path}: " if path else ""
        if not isinstance(obj, dict):
            raise MalformedEvent(f"{where}event is a JSON {type(obj).__name__}, not an object")
        check_bounds(obj)
        problems = [
            f"{where}field {key!r} must be a non-empty string"
            for key in REQUIRED_FIELDS
            if not isinstance(obj.get(key), str) or not obj[key]
        ]
        kind, name, labels = obj.get("event"), obj.get("name", ""), obj.get("kube_labels") or {}
        if isinstance(kind, str) and kind in REACTED_EVENTS:
            # ResourceMetadata.Name is a string; KubeLabels a map<string, string>, null when empty.
            if not isinstance(name, str):
                problems.append(f"{where}field 'name' must be a string")
            if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                problems.append(f"{where}field 'kube_labels' must be an object of strings")
        if problems:
            raise MalformedEvent("; ".join(problems), problems)
        return cls(
            type=obj["event"],
            uid=obj["uid"],
            time=obj["time"],
            name=name if isinstance(name, str) else "",
            kube_labels=dict(labels) if isinstance(labels, dict) else {},
            fields=obj,
        )

    @classmethod
    def from_envelope(cls, envelope: object) -> AuditEvent:
        """The event in an EventBridge envelope (`detail`), after checking the envelope's own fields."""
        if not isinstance(envelope, dict):
            raise MalformedEvent(f"envelope is a JSON {type(envelope).__name__}, not an object")
        problems = [f"{k}: must be a string" for k in ENVELOPE_FIELDS if not isinstance(envelope.get(k), str)]
        resources = envelope.get("resources")
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            problems.append("resources: must be a list of strings")
        try:
            event = cls.parse(envelope.get("detail"), path="detail")
        except MalformedEvent as exc:
            problems += exc.problems
        if problems:
            raise MalformedEvent("; ".join(problems), problems)
        return event


def check_bounds(obj: object) -> None:
    """Raise `MalformedEvent` if `obj` nests deeper than `MAX_DEPTH` or its JSON exceeds `MAX_DETAIL_BYTES`.

    Depth is walked with an explicit stack, so a hostile nesting cannot hit the recursion limit, and
    it is checked before the JSON encoder (which recurses) sees the object.
    """
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    raise MalformedEvent(f"event nested deeper than {MAX_DEPTH} levels")
                stack.append((child, depth + 1))
    try:
        size = len(to_json(obj).encode())
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no UTF-8, no EventBridge entry
        raise MalformedEvent("event holds a string that is not valid Unicode") from None
    if size > MAX_DETAIL_BYTES:
        raise EventTooLarge(f"event JSON of {size} bytes exceeds {MAX_DETAIL_BYTES}")


def to_json(obj: object) -> str:
    """Compact JSON as EventBridge carries it; `MalformedEvent` for what JSON cannot hold."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:  # NaN/Infinity, or a value JSON cannot carry
        raise MalformedEvent(f"event is not JSON-serialisable: {exc}") from None
