"""What carrying out one step did, and what follows from it: pure functions of a step and its outcome.

Applying a step returns a frozen `StepOutcome` (what the request returned, or the error it raised);
`registration_after` turns the step and its outcome into the registration to store, and
`cluster_result` into the line of the run report. Nothing here makes a request or reads a clock, so
each rule is tested as a table of step by outcome (tests/unit/test_outcomes.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from teleport_argocd.model import Absence, Outcome, Registration, SecretVersion
from teleport_argocd.plan import Plan, Step
from teleport_argocd.probe import ConnectionCheck
from teleport_argocd.report import COMPLETED, ClusterResult, OutputReport, run_status

# Runs in a row that find a cluster's Secret replaced by someone else (or someone else's in the
# way) before it is relinquished: reported once, then left alone instead of failing every run.
RELINQUISH_AFTER = 3

# What a step the plan foresaw comes to when it needs no request: recorded as planned.
_WITHOUT_REQUEST = {
    Outcome.UNCHANGED: Outcome.UNCHANGED,
    Outcome.FAILED: Outcome.FAILED,  # could not be rendered
    Outcome.WOULD_UNMATCH: Outcome.UNMATCHED,
    Outcome.WAITING: Outcome.WAITING,
}


@dataclass(frozen=True)
class StepOutcome:
    """One step carried out (or recorded without a request) at `at`.

    `version`: the Secret written (created, updated). `check`: the connection check made after the
    write, or alone for an unchanged registration whose check was due. `error`: why it failed or was
    refused, key-free.
    """

    outcome: Outcome
    at: datetime
    version: SecretVersion | None = None
    check: ConnectionCheck | None = None
    error: str | None = None
    # Only labels and annotations were written: the Secret keeps the certificate it had.
    relabeled: bool = False


@dataclass(frozen=True)
class Where:
    """The run's facts a new registration carries: the output, the Teleport cluster, and the
    certificate the run writes (its expiry and `Identity.cert_id`)."""

    output: str
    teleport_cluster: str
    cert_expires: datetime | None
    cert_id: str = ""


@dataclass
class Tally:
    """One pass's outcomes as they arrive: each cluster's latest, in the place it first took (a
    connection check due on an unchanged cluster lands where its unchanged line stood). The
    report is built from it once, when the pass ends or fails."""

    steps: dict[str, Step] = field(default_factory=dict)
    outcomes: dict[str, StepOutcome] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @classmethod
    def foreseen(cls, decided: Plan, at: datetime) -> Tally:
        """A plan not carried out (a dry run, an idle run): each step with the outcome it foresees."""
        tally = cls(notes=tuple(decided.notes))
        for step in decided.steps:
            tally.add(step, StepOutcome(step.action, at, error=step.error))
        return tally

    def add(self, step: Step, done: StepOutcome) -> None:
        self.steps[step.kube_cluster] = step
        self.outcomes[step.kube_cluster] = done

    def without_requests(self, decided: Plan, at: datetime, where: Where) -> list[Registration]:
        """Add the outcome of each step that takes no request; the registrations they leave to store."""
        records = []
        for step in decided.steps:
            if not needs_request(step):
                done = without_request(step, at)
                self.add(step, done)
                record = registration_after(step, done, where)
                if record is not None:
                    records.append(record)
        return records

    def report(
        self,
        base: OutputReport,
        errors: Sequence[str],
        cert_expires: datetime | None,
        finished: datetime,
        otherwise: str = COMPLETED,
    ) -> OutputReport:
        """`base` (the run's facts) with these clusters, errors and notes; its status is failed when a
        cluster or the run failed, or else `otherwise`."""
        clusters = tuple(cluster_result(self.steps[name], done) for name, done in self.outcomes.items())
        return replace(
            base,
            status=run_status(clusters, errors, otherwise),
            cert_expires=cert_expires,
            finished=finished,
            clusters=clusters,
            errors=tuple(errors),
            notes=self.notes,
        )


def needs_request(step: Step) -> bool:
    """Whether carrying out the step takes a Kubernetes request (a write or a delete)."""
    return step.writes or step.action is Outcome.WOULD_DELETE


def without_request(step: Step, at: datetime) -> StepOutcome:
    """The outcome of a step that takes no request: unchanged, not rendered, unmatched or waiting."""
    return StepOutcome(_WITHOUT_REQUEST[step.action], at, error=step.error)


def relinquishes(step: Step) -> bool:
    """Whether a refusal now is the `RELINQUISH_AFTER`th in a row, so the Secret is left alone."""
    refusals = step.registration.refusals if step.registration is not None else 0
    return refusals + 1 >= RELINQUISH_AFTER


def cluster_result(step: Step, done: StepOutcome) -> ClusterResult:
    """The report's line for one cluster: a refusal reads failed, or relinquished at the last one."""
    outcome = done.outcome
    if outcome is Outcome.REFUSED:
        outcome = Outcome.RELINQUISHED if relinquishes(step) else Outcome.FAILED
    return _line(step, outcome, done.error)


def _line(step: Step, outcome: Outcome, error: str | None) -> ClusterResult:
    secret, reg = step.secret, step.registration
    return ClusterResult(
        step.kube_cluster,
        outcome,
        reason=step.reason,
        secret_namespace=secret.namespace if secret else (reg.secret_namespace if reg else ""),
        secret_name=secret.name if secret else (reg.secret_name if reg else ""),
        server=secret.server if secret else (reg.server if reg else ""),
        error=error,
        prune=step.clock,
    )


def registration_after(step: Step, done: StepOutcome, where: Where) -> Registration | None:
    """The registration to store after `done`, or None when there is nothing to store."""
    now = done.at
    match done.outcome:
        case Outcome.UNCHANGED:  # a check alone, when one was due
            return _with_check(step.registration, done.check) if step.registration and done.check else None
        case Outcome.UNMATCHED | Outcome.WAITING:
            return step.record
        case Outcome.FAILED:
            return _failed(step, done.error or "not rendered", now, where)
        case Outcome.REFUSED:
            return _refused(step, _failed(step, done.error or "refused", now, where), now)
        case Outcome.DELETED:
            assert step.registration is not None
            reg = step.registration
            return replace(reg, deleted_at=now, version=None, last_attempt=now, held_by=())
        case Outcome.CREATED | Outcome.UPDATED:
            return _with_check(_written(step, done, where), done.check)
        case _:  # what a dry run foresees stores nothing
            return None


def _written(step: Step, done: StepOutcome, where: Where) -> Registration:
    assert step.secret is not None and done.version is not None
    now, reg = done.at, step.registration
    # A relabel left the certificate the Secret held; any other write carries the step's or the run's.
    kept = reg if done.relabeled and reg else None
    return Registration(
        output=where.output,
        teleport_cluster=where.teleport_cluster,
        kube_cluster=step.kube_cluster,
        secret_namespace=step.secret.namespace,
        secret_name=step.secret.name,
        server=step.secret.server,
        labels=step.labels,
        fingerprint=step.fingerprint,
        data_fingerprint=step.data_fingerprint,
        version=done.version,
        matches=True,
        first_written=reg.first_written if reg and reg.first_written and reg.deleted_at is None else now,
        last_written=now,
        last_attempt=now,
        cert_expires=kept.cert_expires if kept else step.cert_expires or where.cert_expires,
        cert_id=kept.cert_id if kept else step.cert_id or where.cert_id,
        cluster_name=step.secret.argocd_name,
        # A write that was not checked keeps the last check.
        connection=reg.connection if reg else "",
        connection_at=reg.connection_at if reg else None,
        connection_message=reg.connection_message if reg else "",
    )


def _failed(step: Step, message: str, now: datetime, where: Where) -> Registration:
    """A failed attempt: what was written before stays as it was, the error is added."""
    if step.action is Outcome.WOULD_DELETE:  # the registration stays unmatched; the deletion is retried
        assert step.registration is not None
        return replace(step.registration, last_error=message, last_error_at=now, last_attempt=now)
    base = step.registration or Registration(
        output=where.output, teleport_cluster=where.teleport_cluster, kube_cluster=step.kube_cluster
    )
    if step.secret is not None:
        base = replace(base, secret_namespace=step.secret.namespace, secret_name=step.secret.name)
    return replace(
        base,
        labels=step.labels or base.labels,
        matches=True,
        unmatched_since=None,
        absence=Absence.NONE,
        absence_banked=timedelta(0),
        absence_seen=None,
        held_by=(),
        last_error=message,
        last_error_at=now,
        last_attempt=now,
    )


def _refused(step: Step, failed: Registration, now: datetime) -> Registration:
    """One more run that found the Secret not ours; relinquished after `RELINQUISH_AFTER` in a row,
    remembering what was rendered so an unchanged rendering is not tried again."""
    refusals = failed.refusals + 1
    if not relinquishes(step):
        return replace(failed, refusals=refusals)
    fingerprint = step.fingerprint if step.secret is not None else failed.fingerprint
    return replace(failed, refusals=refusals, relinquished_at=now, fingerprint=fingerprint)


def _with_check(reg: Registration, checked: ConnectionCheck | None) -> Registration:
    if checked is None:
        return reg
    return replace(
        reg, connection=checked.status, connection_at=checked.at, connection_message=checked.message
    )
