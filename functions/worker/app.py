"""One output's run, taken from the queue the schedules fill (teleport_argocd.fanout), or an event's
run queued again, with a delay, to wait for Teleport to list its cluster.

Batch size 1 in the template: one invocation, one output. A malformed message is dropped (it
can never succeed); a run that crashed is reported as a batch item failure, so SQS delivers it
again and, after the queue's maxReceiveCount, moves it to the failed-invocations queue.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from teleport_argocd import fanout, tracing
from teleport_argocd.errors import MalformedRunMessage, NotConfigured, UnknownOutput
from teleport_argocd.handlers import prologue
from teleport_argocd.metrics import record_metrics
from teleport_argocd.runtime import open_runtime

logger, metrics, session = prologue()  # reused across warm invocations


@logger.inject_lambda_context(clear_state=True)
@tracing.capture
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    failures = []
    for record in event.get("Records", []):
        try:
            run(record["body"])
        except (MalformedRunMessage, UnknownOutput, NotConfigured) as exc:
            # Retrying cannot help: an unreadable message, or an output removed since it was queued.
            logger.warning("dropping queued run", extra={"reason": str(exc)})
            metrics.add_metric("RunsDropped", "Count", 1)
        except Exception:
            logger.exception("queued run crashed; SQS will deliver it again")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def run(body: str) -> None:
    name, trigger = fanout.parse(body)
    with open_runtime(session=session) as runtime:
        if trigger.scope.clusters is not None:  # an event's run, queued again to wait for its cluster
            trigger = replace(
                trigger, wait_for_listing=min(runtime.listing_wait(), fanout.REQUEUED_LISTING_WAIT)
            )
        outputs = runtime.outputs([name])
        reports = runtime.reconcile(outputs, trigger)
        record_metrics(
            reports,
            metrics.add_metric,
            runtime.clock(),
            *runtime.registry_metrics(outputs),
            lifecycle_failures=runtime.lifecycle_failures,
        )
        if any(r.retriable for r in reports) and runtime.requeue(reports, trigger) is None:
            # Waited long enough: the discovery schedule registers the cluster if it ever appears.
            logger.warning(
                "cluster still not listed; giving up on the event", extra={"reason": trigger.reason}
            )
            metrics.add_metric("EventRunsAbandoned", "Count", 1)
