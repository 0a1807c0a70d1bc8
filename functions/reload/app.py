"""Manual reload: reconcile now (optionally a dry run) and return every registration's status.

sam remote invoke ReloadFunction --event-file events/reload.json
"""

from __future__ import annotations

from typing import Annotated, Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.parser import BaseModel, ValidationError, parse
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ConfigDict, Field

from teleport_argocd import logs, responses, tracing
from teleport_argocd.errors import ConfigError, NotConfigured, UnknownOutput
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
MAX_OUTPUTS = 100
MAX_NAME = 253


class ReloadRequest(BaseModel):
    """`outputs` empty means all; `force` rewrites every Secret (else only what is new, changed,
    failed or due for renewal); `dry_run` writes nothing; `unchanged` lists unchanged clusters too."""

    model_config = ConfigDict(extra="forbid")

    # Output names are unique and few: a longer list is a mistake, never a reason to run long.
    outputs: list[Annotated[str, Field(max_length=MAX_NAME)]] = Field(default=[], max_length=MAX_OUTPUTS)
    force: bool = True
    dry_run: bool = False
    status_only: bool = False
    unchanged: bool = False


@logger.inject_lambda_context(clear_state=True)
@tracing.capture
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        request = parse(event=event or {}, model=ReloadRequest)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return {"error": "invalid reload request", "problems": problems}
    try:
        runtime = open_runtime(session=session)
    except NotConfigured as exc:
        return {"error": str(exc)}
    except ConfigError as exc:  # the person invoking this wants every problem, with its path
        return {"error": "invalid configuration", "problems": [str(p) for p in exc.problems]}
    with runtime:
        try:
            outputs = runtime.outputs(request.outputs)
        except UnknownOutput as exc:
            return {"error": str(exc)}
        reports = []
        if not request.status_only:
            renew = Renewal.ALL if request.force else Renewal.DUE
            trigger = Trigger(
                kind="reload", reason="manual reload", scope=Scope(renew=renew), dry_run=request.dry_run
            )
            reports = runtime.reconcile(outputs, trigger)
            record_metrics(
                reports, metrics.add_metric, runtime.clock(), lifecycle_failures=runtime.lifecycle_failures
            )
        return responses.fit(
            {
                "outputs": [r.to_dict(unchanged=request.unchanged) for r in reports],
                "status": runtime.status(outputs),
            }
        )
