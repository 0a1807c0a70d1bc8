"""Parsing, bounds, stream-record conversion and PutEvents batching of the ingest path."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from teleport_argocd.audit import MAX_DEPTH, MAX_DETAIL_BYTES, MAX_ENTRY_BYTES, AuditEvent, check_bounds
from teleport_argocd.errors import EventTooLarge, MalformedEvent
from teleport_argocd.ingest import Forwarder, from_stream_record, parse_event

EVENTS = Path(__file__).resolve().parents[2] / "events"
KUBE_CREATE = {
    "ei": 0,
    "event": "kube.create",
    "uid": "3c2c2f0e-4d0b-4b8e-9a0e-2f4c8d7e1a55",
    "code": "T3010I",
    "time": "2025-06-02T09:14:07.512Z",
    "cluster_name": "teleport.example.com",
    "name": "prod-eu-west",
    "kube_labels": {"env": "prod", "team": "platform"},
}


def nested(depth: int) -> dict[str, Any]:
    """An object whose `deep` field holds `depth - 1` further levels of nesting."""
    inner: dict[str, Any] = {}
    for _ in range(depth - 2):
        inner = {"x": inner}
    return {**KUBE_CREATE, "deep": inner}


def stream_records() -> list[dict[str, Any]]:
    return json.loads((EVENTS / "ingest_stream.json").read_text())["Records"]


# -- parsing and bounds ----------------------------------------------------------


def test_parses_a_posted_event() -> None:
    assert parse_event(json.dumps(KUBE_CREATE).encode()).fields == KUBE_CREATE


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe{}", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'"kube.create"', "not an object"),
        (json.dumps({**KUBE_CREATE, "uid": ""}).encode(), "'uid'"),
        (json.dumps({k: v for k, v in KUBE_CREATE.items() if k != "time"}).encode(), "'time'"),
        (json.dumps({**KUBE_CREATE, "event": 7}).encode(), "'event'"),
        (b'{"event": "kube.create", "uid": "u", "time": "t", "x": NaN}', "not JSON-serialisable"),
    ],
)
def test_rejects_bodies_that_can_never_be_valid(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        parse_event(body)


def test_rejects_an_oversized_body_before_decoding() -> None:
    body = json.dumps({**KUBE_CREATE, "pad": "x" * MAX_DETAIL_BYTES}).encode()
    with pytest.raises(EventTooLarge):
        parse_event(body)


def test_detail_limit_leaves_room_for_the_longest_source_and_detail_type() -> None:
    assert MAX_DETAIL_BYTES + 256 + 128 + 14 <= MAX_ENTRY_BYTES


def test_500_deep_field_is_rejected_without_recursion_error() -> None:
    with pytest.raises(MalformedEvent, match="nested deeper"):
        check_bounds(nested(500))
    with pytest.raises(MalformedEvent, match="nested deeper"):
        parse_event(json.dumps(nested(500)))


def test_body_deeper_than_the_interpreter_can_decode_is_malformed() -> None:
    depth = 100_000
    body = '{"event":"kube.create","uid":"u","time":"t","x":' + "[" * depth + "]" * depth + "}"
    with pytest.raises(MalformedEvent, match="nested deeper"):
        parse_event(body)


def test_depth_limit_is_inclusive() -> None:
    check_bounds(nested(MAX_DEPTH))
    with pytest.raises(MalformedEvent):
        check_bounds(nested(MAX_DEPTH + 1))


def test_check_bounds_measures_the_encoded_size() -> None:
    check_bounds({"pad": "x" * (MAX_DETAIL_BYTES - 20)})
    # Three UTF-8 bytes per character: the limit is on bytes, not characters.
    with pytest.raises(EventTooLarge):
        check_bounds({"pad": "€" * (MAX_DETAIL_BYTES // 3 + 1)})


def test_only_reacted_events_are_forwarded() -> None:
    assert AuditEvent.parse(KUBE_CREATE).reacted
    assert not AuditEvent.parse({**KUBE_CREATE, "event": "kube.request"}).reacted
    assert not AuditEvent.parse({**KUBE_CREATE, "event": "cert.create"}).reacted


# -- DynamoDB stream records ------------------------------------------------------


def test_fields_map_record_becomes_the_event_with_json_numbers() -> None:
    event = from_stream_record(stream_records()[0]).fields
    assert event["event"] == "kube.create"
    assert event["kube_labels"] == {"env": "prod", "team": "platform", "teleport.dev/origin": "dynamic"}
    assert event["ei"] == 0 and type(event["ei"]) is int
    assert event["user_kind"] == 3 and type(event["user_kind"]) is int
    json.dumps(event)  # no Decimal left


def test_fractional_number_becomes_a_float() -> None:
    record = copy.deepcopy(stream_records()[0])
    record["dynamodb"]["NewImage"]["FieldsMap"]["M"]["ratio"] = {"N": "0.25"}
    assert from_stream_record(record).fields["ratio"] == 0.25


def test_legacy_fields_string_record_becomes_the_event() -> None:
    record = stream_records()[1]
    assert "Fields" in record["dynamodb"]["NewImage"]
    event = from_stream_record(record)
    assert event.type == "role.created"
    assert event.name == "bot-argocd"


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (None, "no NewImage"),
        ({"EventType": {"S": "kube.create"}}, "neither FieldsMap nor Fields"),
        ({"FieldsMap": {"M": "oops"}}, "not a DynamoDB value"),
        ({"FieldsMap": {"Q": "x"}}, "not a DynamoDB value"),
        # boto3 reads this as Decimal NaN, which JSON cannot carry.
        ({"FieldsMap": {"M": {"n": {"N": "not-a-number"}}}}, "not JSON-serialisable"),
        ({"Fields": {"N": "1"}}, "not a string"),
        ({"Fields": {"S": "{not json"}}, "not JSON"),
        ({"FieldsMap": {"M": {"event": {"S": "kube.create"}}}}, "'uid'"),
    ],
)
def test_malformed_stream_records(image: dict[str, Any] | None, reason: str) -> None:
    dynamodb: dict[str, Any] = {"SequenceNumber": "1"}
    if image is not None:
        dynamodb["NewImage"] = image
    record = {"eventName": "INSERT", "dynamodb": dynamodb}
    with pytest.raises(MalformedEvent, match=reason):
        from_stream_record(record)


# -- the PutEvents entry and batching ---------------------------------------------


def events_client() -> Any:
    return boto3.client(
        "events", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def many(n: int) -> list[AuditEvent]:
    return [AuditEvent.parse({**KUBE_CREATE, "uid": f"uid-{i}"}) for i in range(n)]


def test_entry_carries_source_type_detail_time_and_bus() -> None:
    entry = Forwarder(events_client(), bus_name="teleport-audit", source="teleport.audit").entry(
        AuditEvent.parse(KUBE_CREATE)
    )
    assert entry["Source"] == "teleport.audit"
    assert entry["DetailType"] == "kube.create"
    assert entry["EventBusName"] == "teleport-audit"
    assert json.loads(entry["Detail"]) == KUBE_CREATE
    assert entry["Time"] == datetime(2025, 6, 2, 9, 14, 7, 512000, tzinfo=UTC)


def test_unparseable_time_is_left_to_eventbridge() -> None:
    entry = Forwarder(events_client(), "bus", "src").entry(
        AuditEvent.parse({**KUBE_CREATE, "time": "yesterday"})
    )
    assert "Time" not in entry


def test_puts_ten_entries_per_request_and_reports_failed_entries_by_index() -> None:
    client = events_client()
    forwarder = Forwarder(client, bus_name="teleport-audit", source="teleport.audit")
    events = many(23)
    with Stubber(client) as stub:
        for start, size in ((0, 10), (10, 10), (20, 3)):
            results: list[dict[str, str]] = [{"EventId": f"id-{start + i}"} for i in range(size)]
            if start == 10:
                results[4] = {"ErrorCode": "ThrottlingException", "ErrorMessage": "Rate exceeded"}
            stub.add_response(
                "put_events",
                {"FailedEntryCount": int(start == 10), "Entries": results},
                {"Entries": [forwarder.entry(e) for e in events[start : start + size]]},
            )
        outcome = forwarder.put(events)
        stub.assert_no_pending_responses()
    assert outcome.sent == 22
    assert [(f.index, f.code) for f in outcome.failed] == [(14, "ThrottlingException")]
    assert not outcome.ok


def test_a_failed_request_fails_its_entries_only() -> None:
    client = events_client()
    forwarder = Forwarder(client, bus_name="gone", source="teleport.audit")
    with Stubber(client) as stub:
        stub.add_client_error(
            "put_events", service_error_code="ResourceNotFoundException", expected_params={"Entries": ANY}
        )
        stub.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "a"}] * 2})
        outcome = forwarder.put(many(12))
    assert outcome.sent == 2
    assert [f.index for f in outcome.failed] == list(range(10))
    assert {f.code for f in outcome.failed} == {"ResourceNotFoundException"}


def test_nothing_to_put_makes_no_request() -> None:
    client = events_client()
    with Stubber(client):  # any request would fail: no response is queued
        outcome = Forwarder(client, "bus", "src").put([])
    assert outcome.ok and outcome.sent == 0
