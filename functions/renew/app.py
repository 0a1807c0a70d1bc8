"""Scheduled runs: renewal (rewrite what each certificate's expiry says is due) and discovery
(frequent: write only new, changed or failed clusters; nothing at all when nothing changed).

With OUTPUT_RUNS_QUEUE set (the template sets it), each output's run is queued for the worker
function (teleport_argocd.fanout); without it, the outputs run here one after the other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from teleport_argocd import fanout, tracing
from teleport_argocd.errors import NotConfigured
from teleport_argocd.handlers import prologue
from teleport_argocd.metrics import record_metrics
from teleport_argocd.plan import Renewal, Scope
from teleport_argocd.reconcile import Trigger
from teleport_argocd.runtime import open_runtime

logger, metrics, session = prologue()  # reused across warm invocations


# What each schedule's Input asks for (template.yaml).
RENEWAL = {"schedule": Renewal.DUE, "discovery": Renewal.NONE}


@dataclass(frozen=True)
class ScheduleEvent:
    """The Input the EventBridge Scheduler target delivers (template.yaml).

    Read by hand: a parser model cost this function about 60 ms of pydantic at every cold start.
    """

    trigger: str = "schedule"
    schedule_arn: str = ""
    scheduled_time: str = ""

    @classmethod
    def parse(cls, event: object) -> ScheduleEvent:
        """Only the template sends this: anything else fails the invocation, naming what is wrong."""
        if not isinstance(event, dict):
            raise ValueError(f"schedule input is a JSON {type(event).__name__}, not an object")
        fields = {k: event[k] for k in ("trigger", "schedule_arn", "scheduled_time") if k in event}
        wrong = [k for k, v in fields.items() if not isinstance(v, str)]
        if wrong:
            raise ValueError(f"schedule input: {', '.join(wrong)} must be strings")
        if fields.get("trigger", "schedule") not in RENEWAL:
            raise ValueError(f"schedule input: trigger must be one of {', '.join(RENEWAL)}")
        return cls(**fields)


@logger.inject_lambda_context(correlation_id_path="scheduled_time", clear_state=True)
@tracing.capture
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(payload: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = ScheduleEvent.parse(payload)
    when = event.scheduled_time or "unknown time"
    trigger = Trigger(
        kind=event.trigger,
        reason=f"{event.trigger} at {when}",
        scope=Scope(renew=RENEWAL[event.trigger]),
    )
    try:
        runtime = open_runtime(session=session)
    except NotConfigured as exc:  # a fresh deploy: quiet until the configuration exists
        logger.info(str(exc))
        metrics.add_metric("NotConfigured", "Count", 1)  # keeps the expiry alarm quiet (template.yaml)
        return {"status": "not configured"}
    with runtime:
        outputs = runtime.outputs()
        if queue := os.environ.get("OUTPUT_RUNS_QUEUE"):
            shards = runtime.shards(outputs)
            queued = fanout.enqueue(session.client("sqs"), queue, outputs, trigger, shards)
            metrics.add_metric("RunsQueued", "Count", queued)
            return {"status": "queued", "outputs": queued}
        reports = runtime.reconcile(outputs, trigger)
        record_metrics(
            reports,
            metrics.add_metric,
            runtime.clock(),
            *runtime.registry_metrics(outputs),
            lifecycle_failures=runtime.lifecycle_failures,
        )
    return {"outputs": [r.to_dict() for r in reports]}
