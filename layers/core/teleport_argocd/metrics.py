"""The numbers a run publishes (EMF through Powertools in the handlers; any callable here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from teleport_argocd.model import Outcome
from teleport_argocd.report import COMPLETED, FAILED, IDLE, OutputReport

AddMetric = Callable[[str, str, float], None]


def record_metrics(
    reports: Sequence[OutputReport],
    add_metric: AddMetric,
    now: datetime,
    earliest_expiry: datetime | None = None,
    unreachable: int | None = None,
    *,
    lifecycle_failures: int = 0,
) -> None:
    """Publish a run's numbers: Secrets written and pruned, failures, failed runs, time to earliest expiry,
    how many registered clusters did not connect at their last check (`ClustersUnreachable`), and the
    Teleport lifecycle failures (a lock, a deleted bot, a token that no longer allows the role, a
    capped certificate lifetime) recorded afresh (`TeleportLifecycleFailures`: once per failure, not
    once per run it lasts, so its alarm fires once; `teleport_argocd.botstanding`).

    The expiry and the unreachable count come from the state table when given, so a run with
    nothing to do still reports them (the expiry alarm treats missing data as breaching).
    """
    ran = [r for r in reports if r.status in (COMPLETED, FAILED, IDLE) and not r.dry_run]
    if ran:
        add_metric("SecretsWritten", "Count", sum(r.count(Outcome.CREATED, Outcome.UPDATED) for r in ran))
        add_metric("SecretsDeleted", "Count", sum(r.count(Outcome.DELETED) for r in ran))
        add_metric("SecretsRelinquished", "Count", sum(r.count(Outcome.RELINQUISHED) for r in ran))
        add_metric("Failures", "Count", sum(r.count(Outcome.FAILED) + len(r.errors) for r in ran))
        add_metric("RunsFailed", "Count", sum(1 for r in ran if r.status == FAILED))
    expiries = [e for e in [earliest_expiry, *(r.cert_expires for r in ran)] if e]
    if expiries:
        add_metric("CertificateExpirySeconds", "Seconds", max(0.0, (min(expiries) - now).total_seconds()))
    if unreachable is not None:
        add_metric("ClustersUnreachable", "Count", unreachable)
    if lifecycle_failures:
        add_metric("TeleportLifecycleFailures", "Count", lifecycle_failures)
