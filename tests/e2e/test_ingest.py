"""End to end: the ingest handlers put Teleport audit events on an EventBridge bus (moto in server mode).

What reaches the bus is observed the way the audit function would see it: through a rule on the bus
with the pattern of `AuditEventFunction`'s `TeleportAudit` rule exactly as template.yaml writes it,
targeting an SQS queue. So a template pattern that stops matching what the ingest code puts fails
here. (moto does not implement TestEventPattern; its rule matching is what EventBridge delivery uses.)
"""

from __future__ import annotations

import base64
import copy
import json
from types import ModuleType
from typing import Any

import pytest

from standins.aws import REGION, MotoServer
from standins.handlers import LambdaContext, emitted_metrics, event, load_handler, unload_handlers
from standins.template import audit_rule, load_template
from teleport_argocd.audit import REACTED_EVENTS

BUS = "teleport-audit"


class Bus:
    """The audit bus with the template's rule, and a rule for everything from our source, each to a queue."""

    def __init__(self, moto: MotoServer) -> None:
        self.events = moto.client("events")
        self.sqs = moto.client("sqs")
        self.events.create_event_bus(Name=BUS)
        self.audit_queue = self._rule("teleport-audit", audit_rule()["pattern"])
        self.all_queue = self._rule("everything", {"source": [audit_rule()["source"]]})

    def _rule(self, name: str, pattern: dict[str, Any]) -> str:
        queue_url: str = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        self.events.put_rule(Name=name, EventBusName=BUS, EventPattern=json.dumps(pattern))
        self.events.put_targets(
            Rule=name, EventBusName=BUS, Targets=[{"Id": name, "Arn": arn["Attributes"]["QueueArn"]}]
        )
        return queue_url

    def delivered(self, queue: str | None = None) -> list[dict[str, Any]]:
        """What the audit rule (or another rule's queue) got so far; moto delivers within PutEvents."""
        got = self.sqs.receive_message(
            QueueUrl=queue or self.audit_queue, MaxNumberOfMessages=10, WaitTimeSeconds=0
        )
        return [json.loads(m["Body"]) for m in got.get("Messages", [])]

    def nothing_put(self) -> bool:
        return self.delivered(self.all_queue) == []


@pytest.fixture
def bus(moto: MotoServer) -> Bus:
    moto.reset()
    return Bus(moto)


def ingest(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, bus_name: str = BUS) -> ModuleType:
    """functions/ingest/app.py loaded with the environment template.yaml gives it."""
    for key, value in {
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "EVENT_BUS_NAME": bus_name,
        "EVENT_SOURCE": audit_rule()["source"],
        "POWERTOOLS_SERVICE_NAME": "teleport-argocd",
        "POWERTOOLS_METRICS_NAMESPACE": "TeleportArgoCD",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    unload_handlers()
    return load_handler("ingest")


def post(app: ModuleType, body: str, *, route: str = "POST /events", b64: bool = False) -> dict[str, Any]:
    """The sample HTTP API v2.0 payload (mutual-TLS context included) with another body or route."""
    payload = copy.deepcopy(event("ingest_http.json"))
    payload["body"] = base64.b64encode(body.encode()).decode() if b64 else body
    payload["isBase64Encoded"] = b64
    payload["routeKey"] = payload["requestContext"]["routeKey"] = route
    return app.http_handler(payload, LambdaContext(function_name="teleport-argocd-ingest"))


def sample_event() -> dict[str, Any]:
    return json.loads(event("ingest_http.json")["body"])


# -- the template agrees with the code ------------------------------------------------


def test_audit_rule_lists_exactly_the_reacted_events() -> None:
    assert sorted(audit_rule()["pattern"]["detail-type"]) == sorted(REACTED_EVENTS)


def test_stream_filter_lists_exactly_the_reacted_events() -> None:
    mapping = load_template()["Resources"]["IngestStreamMapping"]["Properties"]
    [rule] = mapping["FilterCriteria"]["Filters"]
    pattern = json.loads(rule["Pattern"])
    assert pattern["eventName"] == ["INSERT"]
    assert sorted(pattern["dynamodb"]["NewImage"]["EventType"]["S"]) == sorted(REACTED_EVENTS)
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_http_routes_are_the_ones_the_handler_answers(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = ingest(moto, monkeypatch)
    events = load_template()["Resources"]["IngestFunction"]["Properties"]["Events"]
    routes = {f"{e['Properties']['Method']} {e['Properties']['Path']}" for e in events.values()}
    assert routes == {app.EVENTS_ROUTE, app.SESSIONS_ROUTE}


# -- Event Handler plugin POSTs ---------------------------------------------------------


def test_posted_event_reaches_the_audit_rule(
    bus: Bus, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = ingest(moto, monkeypatch)
    response = app.http_handler(
        event("ingest_http.json"), LambdaContext(function_name="teleport-argocd-ingest")
    )

    assert response["statusCode"] == 200
    assert json.loads(response["body"])["status"] == "forwarded"
    [delivered] = bus.delivered()
    assert delivered["source"] == audit_rule()["source"]
    assert delivered["detail-type"] == "kube.create"
    assert delivered["detail"] == sample_event()
    assert emitted_metrics(capsys.readouterr().out)["EventsForwarded"] == 1


def test_base64_body_is_decoded(bus: Bus, moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    app = ingest(moto, monkeypatch)
    body = json.dumps({**sample_event(), "event": "role.updated", "name": "bot-argocd"})
    assert post(app, body, b64=True)["statusCode"] == 200
    [delivered] = bus.delivered()
    assert delivered["detail-type"] == "role.updated"
    assert delivered["detail"]["name"] == "bot-argocd"


@pytest.mark.parametrize(
    ("body", "b64", "status"),
    [
        ("this is not json", False, 400),
        ("[]", False, 400),
        ("@@not base64@@", True, 400),
        (json.dumps({"event": "kube.create", "time": "2025-06-02T09:14:07.512Z"}), False, 400),
        (json.dumps({"event": "kube.create", "uid": "u", "time": "t", "pad": "x" * 300_000}), False, 413),
    ],
    ids=["not-json", "not-object", "bad-base64", "missing-uid", "oversized"],
)
def test_bodies_that_can_never_be_valid_are_refused(
    bus: Bus,
    moto: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    body: str,
    b64: bool,
    status: int,
) -> None:
    app = ingest(moto, monkeypatch)
    payload = copy.deepcopy(event("ingest_http.json"))
    payload.update(body=body, isBase64Encoded=b64)
    response = app.http_handler(payload, LambdaContext(function_name="teleport-argocd-ingest"))
    assert response["statusCode"] == status
    assert json.loads(response["body"])["status"] == "malformed"
    assert bus.nothing_put()
    assert emitted_metrics(capsys.readouterr().out)["EventsMalformed"] == 1


def test_ignored_type_is_acknowledged_and_not_put(
    bus: Bus, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = ingest(moto, monkeypatch)
    response = post(app, json.dumps({**sample_event(), "event": "kube.request"}))
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["status"] == "ignored"
    assert bus.nothing_put()
    assert emitted_metrics(capsys.readouterr().out)["EventsIgnored"] == 1


def test_session_recordings_are_acknowledged_and_dropped(
    bus: Bus, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = ingest(moto, monkeypatch)
    body = json.dumps({"event": "print", "uid": "u", "time": "2025-06-02T09:14:07.512Z", "data": "bHM="})
    response = post(app, body, route="POST /sessions/{proxy+}")
    assert response["statusCode"] == 200
    assert bus.nothing_put()
    assert emitted_metrics(capsys.readouterr().out)["SessionEventsDropped"] == 1


def test_failed_put_answers_5xx_so_the_plugin_retries(
    bus: Bus, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # moto refuses the whole PutEvents request with ResourceNotFoundException for a bus that does
    # not exist; the forwarder treats that and a per-entry ErrorCode alike (unit tests cover both).
    app = ingest(moto, monkeypatch, bus_name="no-such-bus")
    response = post(app, json.dumps(sample_event()))
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["detail"] == "ResourceNotFoundException"
    assert emitted_metrics(capsys.readouterr().out)["PutFailures"] == 1


# -- DynamoDB stream of Teleport's audit table -------------------------------------------


def stream(app: ModuleType, records: list[dict[str, Any]]) -> dict[str, Any]:
    return app.stream_handler(
        {"Records": records}, LambdaContext(function_name="teleport-argocd-ingest-stream")
    )


def test_stream_batch_reaches_the_audit_rule(
    bus: Bus, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = ingest(moto, monkeypatch)
    assert stream(app, event("ingest_stream.json")["Records"]) == {"batchItemFailures": []}
    delivered = sorted(bus.delivered(), key=lambda e: e["detail-type"])
    assert [e["detail-type"] for e in delivered] == ["kube.create", "role.created"]
    assert delivered[0]["detail"]["kube_labels"]["env"] == "prod"
    assert delivered[1]["detail"]["name"] == "bot-argocd"  # from the legacy `Fields` string


def test_stream_reports_only_records_whose_put_failed(
    bus: Bus, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = ingest(moto, monkeypatch, bus_name="no-such-bus")
    good, legacy = event("ingest_stream.json")["Records"]
    ignored = copy.deepcopy(good)
    ignored["dynamodb"]["SequenceNumber"] = "900"
    ignored["dynamodb"]["NewImage"]["FieldsMap"]["M"]["event"] = {"S": "kube.request"}
    malformed = copy.deepcopy(good)
    malformed["dynamodb"]["SequenceNumber"] = "901"
    del malformed["dynamodb"]["NewImage"]["FieldsMap"]

    result = stream(app, [ignored, good, malformed, legacy])

    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": good["dynamodb"]["SequenceNumber"]},
            {"itemIdentifier": legacy["dynamodb"]["SequenceNumber"]},
        ]
    }
