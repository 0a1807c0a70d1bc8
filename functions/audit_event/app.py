"""Teleport audit events from EventBridge: reconcile what an event concerns, at once.

`kube.*` events run only the named cluster, in the outputs that can select it; role and bot
events run everything, but only when they concern our bot. Duplicates (the Event Handler
plugin delivers at least once) are dropped by Powertools idempotency keyed on the Teleport
event's `uid`, type and time (a uid alone, reused by another event, would return the cached
answer); malformed or irrelevant events are logged and dropped without an error, so they are
never retried. An event for a cluster Teleport does not list yet waits a few seconds, then its
run is queued again with a delay for the worker (`fanout.requeue`); without a queue it fails the
invocation, so Lambda's asynchronous retries try again (the idempotency record is released).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from teleport_argocd import tracing
from teleport_argocd.audit import AuditEvent
from teleport_argocd.errors import ClusterNotListed, MalformedEvent, NotConfigured
from teleport_argocd.handlers import prologue
from teleport_argocd.metrics import record_metrics
from teleport_argocd.runtime import open_runtime

logger, metrics, session = prologue()  # reused across warm invocations
idempotency = IdempotencyConfig(
    event_key_jmespath="[detail.uid, detail.event, detail.time]", raise_on_no_idempotency_key=True
)


@logger.inject_lambda_context(correlation_id_path="detail.uid", clear_state=True)
@tracing.capture
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        # Bounds first (AuditEvent.parse): a hostile nesting must not reach a recursion limit.
        audit_event = AuditEvent.from_envelope(event)
    except MalformedEvent as exc:
        logger.warning("dropping malformed audit event", extra={"problems": exc.problems})
        metrics.add_metric("EventsDropped", "Count", 1)
        return {"status": "dropped", "reason": "malformed", "problems": exc.problems}
    if not audit_event.reacted:
        logger.info("dropping irrelevant audit event", extra={"event_type": audit_event.type})
        metrics.add_metric("EventsDropped", "Count", 1)
        return {"status": "dropped", "reason": f"irrelevant event type {audit_event.type}"}
    idempotency.register_lambda_context(context)
    try:
        return idempotent_process()(event=event)
    except NotConfigured as exc:  # a fresh deploy: nothing to reconcile yet, nothing to retry
        logger.info(str(exc))
        return {"status": "not configured"}


@functools.cache
def idempotent_process() -> Callable[..., dict[str, Any]]:
    """`process` under Powertools idempotency, built at the first event that gets that far.

    Its store's DynamoDB client cost about 60 ms of every cold start when made at import, events
    dropped as malformed or irrelevant included; made from the handler's session, it shares the
    service model with the run's own DynamoDB client instead of loading it a second time.
    """
    persistence = DynamoDBPersistenceLayer(
        table_name=os.environ.get("IDEMPOTENCY_TABLE", "idempotency"), boto3_session=session
    )
    return idempotent_function(
        data_keyword_argument="event", config=idempotency, persistence_store=persistence
    )(process)


def process(event: dict[str, Any]) -> dict[str, Any]:
    audit_event = AuditEvent.from_envelope(event)  # checked by the handler; the key is the whole envelope
    with open_runtime(session=session) as runtime:
        outputs, trigger = runtime.event_runs(audit_event)
        reports = runtime.reconcile(outputs, trigger)
        record_metrics(
            reports, metrics.add_metric, runtime.clock(), lifecycle_failures=runtime.lifecycle_failures
        )
        waiting = [e for r in reports if r.retriable for e in r.errors]
        # Waiting for the cluster to be listed goes on in the queue, without holding an invocation.
        delay = runtime.requeue(reports, trigger) if waiting else None
    if waiting and delay is None:  # no queue to wait in: Lambda's asynchronous retries wait instead
        raise ClusterNotListed("; ".join(waiting))
    answers = [r.to_dict() for r in reports]
    if waiting:
        metrics.add_metric("EventRunsRequeued", "Count", 1)
        return {"status": "waiting", "event": audit_event.type, "retry_in_seconds": delay, "outputs": answers}
    return {"status": "processed", "event": audit_event.type, "outputs": answers}
