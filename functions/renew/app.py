"""Scheduled runs: renewal (rewrite what each certificate's expiry says is due) and discovery
(frequent: write only new, changed or failed clusters; nothing at all when nothing changed).

With OUTPUT_RUNS_QUEUE set (the template sets it), each output's run is queued for the worker
function (teleport_argocd.fanout); without it, the outputs run here one after the other.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import BaseModel, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from teleport_argocd import fanout, logs, tracing
from teleport_argocd.errors import NotConfigured
from teleport_argocd.metrics import record_metrics
from teleport_argocd.plan import Renewal, Scope
from teleport_argocd.reconcile import Trigger
from teleport_argocd.runtime import open_runtime

logger = Logger()
# The core logs through the standard library; give it the same JSON format and correlation id.
copy_config_to_registered_loggers(source_logger=logger, include={"teleport_argocd"})
logs.configure(logger.log_level)  # our loggers only: libraries log credentials at DEBUG
metrics = Metrics()
session = boto3.Session()  # reused across warm invocations


# What each schedule's Input asks for (template.yaml).
RENEWAL = {"schedule": Renewal.DUE, "discovery": Renewal.NONE}


class ScheduleEvent(BaseModel):
    """The Input the EventBridge Scheduler target delivers (template.yaml)."""

    trigger: Literal["schedule", "discovery"] = "schedule"
    schedule_arn: str = ""
    scheduled_time: str = ""


@logger.inject_lambda_context(correlation_id_path="scheduled_time", clear_state=True)
@tracing.capture
@metrics.log_metrics(capture_cold_start_metric=True)
@event_parser(model=ScheduleEvent)
def handler(event: ScheduleEvent, context: LambdaContext) -> dict[str, Any]:
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
