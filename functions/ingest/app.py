"""Teleport audit events in, EventBridge out: the Event Handler plugin's POSTs and the audit table's stream.

`http_handler` sits behind an API Gateway HTTP API whose custom domain requires mutual TLS, so only
a client with a certificate from the plugin's CA reaches it. The plugin counts only HTTP 200 as
delivered and retries anything else (`integrations/event-handler/fluentd_client.go`): 200 means the
event is on the bus or is not one we forward, 400/413 means it can never be, 503 means try again.

`stream_handler` reads a DynamoDB stream of Teleport's audit table (filtered to reacted inserts by
the event source mapping) and reports the records whose put failed, so only those are retried.
Powertools' BatchProcessor is not used: it handles one record per call, and PutEvents takes ten.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from teleport_argocd import tracing
from teleport_argocd.audit import AuditEvent
from teleport_argocd.errors import EventTooLarge, MalformedEvent
from teleport_argocd.handlers import prologue
from teleport_argocd.ingest import Forwarder, from_stream_record, parse_event, read_post, stream_records

# The routes template.yaml declares on the HTTP API. The plugin posts session recordings to
# `<session-url>.<session id>.log`; with session-url `https://<domain>/sessions/teleport` they land
# on the second route, which keeps nothing.
EVENTS_ROUTE = "POST /events"
SESSIONS_ROUTE = "POST /sessions/{proxy+}"

logger, metrics, session = prologue()  # reused across warm invocations
forwarder = Forwarder(
    client=session.client("events"),
    bus_name=os.environ["EVENT_BUS_NAME"],
    source=os.environ["EVENT_SOURCE"],
)


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracing.capture
@metrics.log_metrics(capture_cold_start_metric=True)
def http_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    try:
        post = read_post(event)
        logger.append_keys(client_subject=post.subject)
        if post.route == SESSIONS_ROUTE:
            metrics.add_metric("SessionEventsDropped", "Count", 1)
            return _response(200, "ignored", "session recordings are not kept")
        audit_event = parse_event(post.body())
    except MalformedEvent as exc:
        logger.warning("rejecting malformed audit event", extra={"reason": str(exc)})
        metrics.add_metric("EventsMalformed", "Count", 1)
        return _response(413 if isinstance(exc, EventTooLarge) else 400, "malformed", str(exc))
    logger.append_keys(event_type=audit_event.type, uid=audit_event.uid)
    if not audit_event.reacted:
        metrics.add_metric("EventsIgnored", "Count", 1)
        return _response(200, "ignored", "event type is not forwarded")
    outcome = forwarder.put([audit_event])
    if not outcome.ok:
        metrics.add_metric("PutFailures", "Count", 1)
        return _response(503, "failed", outcome.failed[0].code)
    metrics.add_metric("EventsForwarded", "Count", 1)
    logger.info("audit event forwarded")
    return _response(200, "forwarded", "")


@logger.inject_lambda_context(clear_state=True)
@tracing.capture
@metrics.log_metrics(capture_cold_start_metric=True)
def stream_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    events: list[AuditEvent] = []
    sequence_numbers: list[str | None] = []
    for number, record in stream_records(event):
        try:
            if record is None:
                raise MalformedEvent("stream record is not an object")
            audit_event = from_stream_record(record)
        except MalformedEvent as exc:
            # Retrying cannot fix it; failing the batch would only block the shard.
            logger.warning("skipping malformed audit record", extra={"sequence": number, "reason": str(exc)})
            metrics.add_metric("EventsMalformed", "Count", 1)
            continue
        if not audit_event.reacted:
            metrics.add_metric("EventsIgnored", "Count", 1)
            continue
        events.append(audit_event)
        sequence_numbers.append(number)
    outcome = forwarder.put(events)
    metrics.add_metric("EventsForwarded", "Count", outcome.sent)
    if outcome.failed:
        metrics.add_metric("PutFailures", "Count", len(outcome.failed))
    return {"batchItemFailures": [{"itemIdentifier": sequence_numbers[f.index]} for f in outcome.failed]}


def _response(status: int, outcome: str, detail: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"status": outcome, "detail": detail}),
    }
