"""Teleport audit events onto the EventBridge bus: parse and bound one event, decide, put in batches.

Two ways in share this module. The Event Handler plugin POSTs each event as its flat JSON body
(`integrations/event-handler/fluentd_client.go`). Self-hosted Teleport on the DynamoDB audit backend
writes one item per event (`lib/events/dynamoevents/dynamoevents.go`), which a table stream carries
here. Either way the event becomes one PutEvents entry: `Source` the configured source, `DetailType`
the event type, `Detail` the event JSON, `Time` the event time. No Lambda types here.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from teleport_argocd.audit import MAX_DEPTH, MAX_DETAIL_BYTES, AuditEvent, to_json
from teleport_argocd.errors import EventTooLarge, MalformedEvent

log = logging.getLogger(__name__)

# PutEvents takes at most 10 entries per request.
PUT_BATCH_SIZE = 10

_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class Post:
    """What the HTTP function uses of an API Gateway HTTP API request (payload format 2.0)."""

    route: str
    subject: str | None  # the mutual-TLS client certificate's subject DN, when there is one
    raw_body: str
    base64_encoded: bool

    def body(self) -> bytes:
        """The raw body; API Gateway base64-encodes bodies it does not take for text."""
        if not self.base64_encoded:
            return self.raw_body.encode("utf-8", "surrogatepass")
        try:
            return base64.b64decode(self.raw_body, validate=True)
        except (binascii.Error, ValueError):  # ValueError: non-ASCII text
            raise MalformedEvent("body is not valid base64") from None


def read_post(event: object) -> Post:
    """The request's route, client subject and body, each checked for its type: API Gateway never
    sends another shape, but whatever arrives gets a 400 rather than a crash."""
    if not isinstance(event, dict):
        raise MalformedEvent(f"request is a JSON {type(event).__name__}, not an object")
    context = _optional_object(event, "requestContext")
    route = event.get("routeKey", context.get("routeKey", ""))
    body = event.get("body") or ""
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(route, str):
        raise MalformedEvent("routeKey is not a string")
    if not isinstance(body, str):
        raise MalformedEvent(f"body is a JSON {type(body).__name__}, not a string")
    if not isinstance(encoded, bool):
        raise MalformedEvent("isBase64Encoded is not true or false")
    cert = _optional_object(_optional_object(context, "authentication"), "clientCert")
    subject = cert.get("subjectDN")
    if cert and not isinstance(subject, str):  # API Gateway names every certificate it verified
        raise MalformedEvent("client certificate without a subjectDN")
    return Post(route, subject, body, encoded)


def stream_records(event: object) -> list[tuple[str | None, Mapping[str, Any] | None]]:
    """Each record of a DynamoDB stream event as (its sequence number, the record), the record None
    when it is not an object. A batch of another shape has no records."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        return []
    out: list[tuple[str | None, Mapping[str, Any] | None]] = []
    for record in records:
        if not isinstance(record, dict):
            out.append((None, None))
            continue
        change = record.get("dynamodb")
        number = change.get("SequenceNumber") if isinstance(change, dict) else None
        out.append((number if isinstance(number, str) else None, record))
    return out


def _optional_object(container: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """`container[key]` when it is an object, {} when it is absent or null; MalformedEvent otherwise."""
    value = container.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedEvent(f"{key} is a JSON {type(value).__name__}, not an object")
    return value


def parse_event(body: bytes | str) -> AuditEvent:
    """Decode a posted body into an audit event; raises `MalformedEvent` if it can never be valid."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_DETAIL_BYTES:
        raise EventTooLarge(f"body of {len(raw)} bytes exceeds {MAX_DETAIL_BYTES}")
    try:
        decoded = json.loads(raw)
    except RecursionError:
        # The C decoder recurses per nesting level; a deep enough body hits the interpreter's limit.
        raise MalformedEvent(f"body nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise MalformedEvent(f"body is not JSON: {type(exc).__name__}") from None
    return AuditEvent.parse(decoded)


def from_stream_record(record: Mapping[str, Any]) -> AuditEvent:
    """The audit event in a DynamoDB stream record (NEW_IMAGE) of Teleport's audit table.

    Teleport writes `SessionID`, `EventIndex`, `EventType`, `CreatedAt`, `Expires`, `EventNamespace`,
    `CreatedAtDate` and the event itself: `FieldsMap`, a native map, in current releases; `Fields`, a
    JSON string, in older ones (`lib/events/dynamoevents/dynamoevents.go`, `event` struct).
    """
    change = record.get("dynamodb")
    image = change.get("NewImage") if isinstance(change, dict) else None
    if not isinstance(image, dict):
        raise MalformedEvent("stream record has no NewImage")
    try:
        if "FieldsMap" in image:
            return AuditEvent.parse(_plain(_deserializer.deserialize(image["FieldsMap"])))
        if "Fields" in image:
            fields = _deserializer.deserialize(image["Fields"])
        else:
            raise MalformedEvent("item has neither FieldsMap nor Fields")
    except (TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as exc:
        # boto3's deserializer reports a malformed attribute value with any of these, and recurses
        # once per level of a value nested deeper than DynamoDB allows.
        raise MalformedEvent(f"item attribute is not a DynamoDB value: {type(exc).__name__}") from None
    if not isinstance(fields, str):
        raise MalformedEvent("item attribute Fields is not a string")
    return parse_event(fields)


@dataclass(frozen=True)
class FailedEntry:
    """One entry EventBridge did not take: its index in the `put` call, and EventBridge's reason."""

    index: int
    code: str
    message: str


@dataclass(frozen=True)
class PutOutcome:
    sent: int
    failed: tuple[FailedEntry, ...]

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class Forwarder:
    """Puts audit events on one bus under one source through a boto3 `events` client."""

    client: Any
    bus_name: str
    source: str

    def entry(self, event: AuditEvent) -> dict[str, Any]:
        """The PutEvents entry: the event whole as `Detail`; its time, when readable, as `Time`
        (else EventBridge stamps the time it receives the entry)."""
        entry: dict[str, Any] = {
            "Source": self.source,
            "DetailType": event.type,
            "Detail": to_json(event.fields),
            "EventBusName": self.bus_name,
        }
        if event.happened is not None:
            entry["Time"] = event.happened
        return entry

    def put(self, events: Sequence[AuditEvent]) -> PutOutcome:
        """Put every event, 10 per request; a failed request fails each of its entries, not the rest."""
        failed: list[FailedEntry] = []
        for start in range(0, len(events), PUT_BATCH_SIZE):
            batch = [self.entry(e) for e in events[start : start + PUT_BATCH_SIZE]]
            try:
                response = self.client.put_events(Entries=batch)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code, message = error.get("Code", "ClientError"), error.get("Message", "")
                failed += [FailedEntry(start + i, code, message) for i in range(len(batch))]
                continue
            except BotoCoreError as exc:
                failed += [FailedEntry(start + i, type(exc).__name__, str(exc)) for i in range(len(batch))]
                continue
            for i, result in enumerate(response.get("Entries", [])):
                if result.get("ErrorCode"):
                    failed.append(FailedEntry(start + i, result["ErrorCode"], result.get("ErrorMessage", "")))
        for f in failed:
            log.warning(
                "event not put on the bus",
                extra={
                    "event_type": events[f.index].type,
                    "uid": events[f.index].uid,
                    "error_code": f.code,
                    "error_message": f.message,
                },
            )
        return PutOutcome(sent=len(events) - len(failed), failed=tuple(failed))


def _plain(value: Any) -> Any:
    """Turn the deserializer's Decimals into int or float so the event encodes as JSON numbers.

    Recursion is bounded: DynamoDB stores at most 32 levels of nesting.
    """
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
