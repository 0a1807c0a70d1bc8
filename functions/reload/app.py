"""Manual reload: reconcile now (optionally a dry run) and return every registration's status.

sam remote invoke ReloadFunction --event-file events/reload.json
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from teleport_argocd import responses, tracing
from teleport_argocd.errors import ConfigError, NotConfigured, UnknownOutput
from teleport_argocd.handlers import prologue
from teleport_argocd.metrics import record_metrics
from teleport_argocd.plan import Renewal, Scope
from teleport_argocd.reconcile import Trigger
from teleport_argocd.runtime import open_runtime

logger, metrics, session = prologue()  # reused across warm invocations


@logger.inject_lambda_context(clear_state=True)
@tracing.capture
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from teleport_argocd.reload_request import read_request  # pydantic: see that module

    request = read_request(event)
    if isinstance(request, list):
        return {"error": "invalid reload request", "problems": request}
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
