"""What one run must do for each cluster of one output, decided from reads alone.

Pure: the listing (already selected and rendered), the registry read at the start of the
run, the output's configuration and the trigger's scope go in; one step per cluster comes
out, each with the outcome it foresees (`model.Outcome`). Apply carries the steps out; a dry
run shows them. Both use this one function, so what a dry run promises is what a run does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from teleport_argocd.applications import ApplicationCheck
from teleport_argocd.argocd import RenderedSecret
from teleport_argocd.config.types import OutputConfig, PruneConfig
from teleport_argocd.model import (
    Absence,
    KubeCluster,
    Outcome,
    Registration,
    SecretVersion,
    shard_of,
)
from teleport_argocd.pruning import (
    absent_for,
    delete_budget,
    prune_base,
    prune_clock,
    prune_due_at,
    prune_guard,
)
from teleport_argocd.renewal import data_fingerprint, fingerprint, renewal_due

# Why an unchanged Secret is written: a new certificate and nothing else. Routine, so each such
# write is logged at DEBUG; the run's summary counts them.
FORCED = "forced"
RENEWAL_DUE = "renewal due"
RENEWALS = frozenset({FORCED, RENEWAL_DUE})


class Renewal(StrEnum):
    """Which unchanged, healthy registrations a run rewrites with a fresh certificate."""

    ALL = "all"  # a forced reload
    DUE = "due"  # a scheduled renewal: those whose certificate is due (see `renewal_due`)
    NONE = "none"  # discovery: only what is new, changed or failed


@dataclass(frozen=True)
class Scope:
    """How much of an output a trigger concerns.

    `clusters` None is the whole output; otherwise only those kube clusters (an audit event),
    and `removed` says an event reported them deleted: those the listing no longer has are
    unmatched with that evidence.
    `shard` (i, n): only the clusters whose name hashes to i of n, when a schedule splits a
    large output into runs side by side.
    """

    renew: Renewal = Renewal.DUE
    clusters: frozenset[str] | None = None
    removed: bool = False
    shard: tuple[int, int] = (0, 1)

    def covers(self, kube_cluster: str) -> bool:
        if self.clusters is not None and kube_cluster not in self.clusters:
            return False
        index, count = self.shard
        return count == 1 or shard_of(kube_cluster, count) == index

    @property
    def shard_id(self) -> str:
        """The shard's name in state ("" for a whole output)."""
        index, count = self.shard
        return "" if count == 1 else f"{index}/{count}"


@dataclass(frozen=True)
class Step:
    """One cluster's part of a run: what to do, why, and what to do it with."""

    kube_cluster: str
    action: Outcome  # what the plan foresees: would-…, or an outcome that needs no request
    reason: str
    secret: RenderedSecret | None = None
    registration: Registration | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    error: str | None = None
    # WOULD_UNMATCH and WAITING: the registration to store (no Kubernetes request), None when nothing changed.
    record: Registration | None = None
    # When pruning is on, an unmatched cluster's evidence and grace clock (see `prune_clock`).
    clock: Mapping[str, Any] | None = None
    # Its grace ran out in a run that could prune: deleted now unless Applications or the budget hold it.
    due: bool = False
    # The certificate `secret` carries when it is not the run's own (`kept_identity`): expiry, digest.
    cert_expires: datetime | None = None
    cert_id: str = ""
    # `fingerprint` without labels and annotations; and whether only those changed, so the write
    # changes them alone and the Secret keeps its certificate (`SecretStore.relabel`).
    data_fingerprint: str = ""
    relabel: bool = False

    @property
    def writes(self) -> bool:
        return self.action in (Outcome.WOULD_CREATE, Outcome.WOULD_UPDATE)

    @property
    def known(self) -> SecretVersion | None:
        """The precondition for the write: our last write of this same Secret, if there is one."""
        reg, secret = self.registration, self.secret
        if reg is None or secret is None or reg.deleted_at is not None:
            return None
        if (reg.secret_namespace, reg.secret_name) != (secret.namespace, secret.name):
            return None
        return reg.version


@dataclass(frozen=True)
class Plan:
    """The steps, why pruning was held back this run if it was (None when it was not), how many
    due deletions `max_deletes_per_run` deferred to later runs, and what the Applications guard
    held (`applications_held`)."""

    steps: tuple[Step, ...]
    prune_held: str | None = None
    deferred: int = 0
    applications_held: str | None = None

    @property
    def notes(self) -> list[str]:
        notes = [n for n in (self.prune_held, self.applications_held) if n]
        if self.deferred:
            notes.append(
                f"{self.deferred} deletion(s) due but deferred to later runs (prune.max_deletes_per_run)"
            )
        return notes

    @property
    def writes(self) -> list[Step]:
        return [s for s in self.steps if s.writes]

    @property
    def deletes(self) -> list[Step]:
        return [s for s in self.steps if s.action is Outcome.WOULD_DELETE]

    @property
    def due(self) -> frozenset[str]:
        """The clusters whose deletion is due this run, before the Applications guard and the budget."""
        return frozenset(s.kube_cluster for s in self.steps if s.due)

    @property
    def idle(self) -> bool:
        """Nothing to write to Kubernetes and nothing to record."""
        return all(_quiet(s) for s in self.steps)


def _quiet(step: Step) -> bool:
    return step.action is Outcome.UNCHANGED or (step.action is Outcome.WAITING and step.record is None)


def plan(
    output: OutputConfig,
    *,
    teleport_cluster: str,
    rendered: Sequence[RenderedSecret],
    failures: Sequence[tuple[KubeCluster, str]],
    registrations: Sequence[Registration],
    now: datetime,
    scope: Scope,
    complete: bool = True,
    still_listed: frozenset[str] = frozenset(),
    applications: ApplicationCheck | None = None,
) -> Plan:
    """One step per selected cluster, per cluster that failed to render, and per registration
    of this Teleport cluster that the selectors no longer pick (within the scope).

    `complete`: every selector's listing succeeded. `still_listed`: registered clusters the
    selectors no longer pick that Teleport still lists by name (deselected, not vanished).
    `applications`: what the Applications guard found for the clusters due (`Plan.due`); without
    it no Secret is deleted, so a caller plans, checks the due clusters, and plans again with it.
    """
    known = {
        r.kube_cluster: r
        for r in registrations
        if r.teleport_cluster == teleport_cluster and scope.covers(r.kube_cluster)
    }
    steps: list[Step] = []
    seen: set[str] = set()
    for secret in rendered:
        name = secret.cluster.name
        seen.add(name)
        if scope.covers(name):
            steps.append(_write_step(output, secret, known.get(name), now, scope.renew))
    for cluster, message in failures:
        seen.add(cluster.name)
        if scope.covers(cluster.name):
            steps.append(
                Step(
                    cluster.name,
                    Outcome.FAILED,
                    "cannot render",
                    registration=known.get(cluster.name),
                    labels=dict(cluster.labels),
                    error=message,
                )
            )
    # Events concern one cluster each: only a run over the whole output (or shard) prunes.
    prune, full = output.prune, scope.clusters is None
    base = prune_base(prune, known.values(), now)
    held = prune_guard(prune, complete, len(seen | still_listed), base) if prune.enabled and full else None
    trusted = prune.enabled and full and held is None
    absent = {n: r for n, r in known.items() if n not in seen and r.deleted_at is None}
    steps += _absence_steps(prune, absent, now, scope, trusted, still_listed, applications)
    decided = _with_budget(prune, steps, base, now)
    if trusted and not decided.idle:
        decided = replace(decided, steps=tuple(_saved(s, now) for s in decided.steps))
    return replace(decided, prune_held=held, applications_held=_applications_note(decided, applications))


def _applications_note(decided: Plan, applications: ApplicationCheck | None) -> str | None:
    """What the Applications guard held this run, for the run's notes (None when it held nothing)."""
    if not decided.due or applications is None:
        return None
    if applications.failed:
        return applications.failed
    held = sorted(c for c in decided.due if applications.hold(c))
    if not held:
        return None
    return (
        f"{len(held)} deletion(s) due but held: Argo CD Applications still target "
        f"{', '.join(held[:10])}{' and more' if len(held) > 10 else ''} (see each cluster)"
    )


def _absence_steps(
    prune: PruneConfig,
    absent: Mapping[str, Registration],
    now: datetime,
    scope: Scope,
    trusted: bool,
    still_listed: frozenset[str],
    applications: ApplicationCheck | None,
) -> list[Step]:
    """A step for each registration the listing did not select: newly unmatched, waiting, or
    (provisionally) due. Its clock starts or resumes only in a run that could prune (`trusted`),
    and a held run over the whole output pauses it. A due deletion waits while the Applications
    guard holds it (or has not checked it), and the Applications it found are recorded."""
    full = scope.clusters is None
    steps: list[Step] = []
    for name, reg in sorted(absent.items()):
        if scope.removed:
            observed = Absence.DELETED
        elif not full:
            observed = Absence.NONE  # an event names the cluster but says nothing of why it is gone
        else:
            observed = Absence.DESELECTED if name in still_listed else Absence.VANISHED
        evidence = max(reg.absence, observed, key=lambda a: a.strength)
        if reg.matches:
            reason = "deleted in Teleport" if scope.removed else "no longer selected"
            record = replace(
                reg,
                matches=False,
                unmatched_since=now,
                absence=evidence,
                absence_banked=timedelta(0),
                absence_seen=now if trusted else None,
            )
            steps.append(
                Step(
                    name,
                    Outcome.WOULD_UNMATCH,
                    reason,
                    registration=reg,
                    labels=dict(reg.labels),
                    record=record,
                )
            )
            continue
        if not prune.enabled or reg.relinquished_at is not None:
            continue
        updated: Registration | None = None
        if trusted and reg.absence_seen is None:
            updated = replace(reg, absence=evidence, absence_seen=now)  # the clock starts or resumes
        elif full and not trusted and reg.absence_seen is not None:
            updated = replace(reg, absence=evidence, absence_seen=None)  # held: the clock pauses
        elif evidence is not reg.absence:
            updated = replace(reg, absence=evidence)
        current = updated or reg
        due = prune_due_at(prune, current, now)
        if trusted and due is not None and due <= now:
            reason = f"{evidence.value or 'vanished'}, absent for its grace period"
            hold = applications.hold(name) if applications else "waiting for the Applications check"
            if applications and not applications.failed:  # what this check found replaces the last
                found = applications.holders.get(name, ())
                if found != current.held_by:
                    updated = current = replace(current, held_by=found)
            action, reason = (
                (Outcome.WOULD_DELETE, reason) if hold is None else (Outcome.WAITING, f"{reason}; {hold}")
            )
            steps.append(Step(name, action, reason, registration=current, record=updated, due=True))
        else:
            reason = (
                f"{current.absence.value or 'vanished'}, grace clock {'running' if trusted else 'paused'}"
            )
            steps.append(Step(name, Outcome.WAITING, reason, registration=current, record=updated))
    return [
        replace(s, clock=prune_clock(prune, s.record or s.registration, now))
        if prune.enabled and s.registration
        else s
        for s in steps
    ]


def _with_budget(prune: PruneConfig, steps: list[Step], base: int, now: datetime) -> Plan:
    """The plan, with at most `max_deletes_per_run` deletions (earliest due first; the rest wait)."""
    due = sorted(
        (s for s in steps if s.action is Outcome.WOULD_DELETE),
        key=lambda s: (prune_due_at(prune, s.registration, now) if s.registration else now, s.kube_cluster),
    )
    deferred = {s.kube_cluster for s in due[delete_budget(prune, base) :]}
    steps = [
        replace(s, action=Outcome.WAITING, reason=f"{s.reason}; deferred (prune.max_deletes_per_run)")
        if s.action is Outcome.WOULD_DELETE and s.kube_cluster in deferred
        else s
        for s in steps
    ]
    return Plan(tuple(steps), deferred=len(deferred))


def _saved(step: Step, now: datetime) -> Step:
    """A waiting step whose running clock is saved now (banked up to now), when a run that could
    prune stores anything anyway: a later held run then loses none of the absence counted so far."""
    reg = step.record or step.registration
    if step.action is not Outcome.WAITING or reg is None or reg.absence_seen is None:
        return step
    return replace(step, record=replace(reg, absence_banked=absent_for(reg, now), absence_seen=now))


def _write_step(
    output: OutputConfig,
    secret: RenderedSecret,
    reg: Registration | None,
    now: datetime,
    renew: Renewal,
) -> Step:
    digest = fingerprint(secret)
    # Unchanged with the fingerprint, so only worked out again when the fingerprint changed.
    data = reg.data_fingerprint if reg and reg.fingerprint == digest and reg.data_fingerprint else ""
    data = data or data_fingerprint(secret)
    labels = dict(secret.cluster.labels)

    def step(action: Outcome, reason: str, relabel: bool = False) -> Step:
        return Step(
            secret.cluster.name,
            action,
            reason,
            secret,
            reg,
            labels,
            digest,
            data_fingerprint=data,
            relabel=relabel,
        )

    # A relinquished Secret is left alone until its rendering changes or a forced reload tries again.
    if (
        reg is not None
        and reg.relinquished_at is not None
        and renew is not Renewal.ALL
        and reg.fingerprint == digest
    ):
        return step(Outcome.UNCHANGED, "relinquished: the Secret there is not ours")
    if reg is None or reg.version is None or reg.deleted_at is not None:
        return step(Outcome.WOULD_CREATE, "new")
    if reg.last_error is not None:
        return step(Outcome.WOULD_UPDATE, "failed last time")
    if not reg.matches:
        return step(Outcome.WOULD_UPDATE, "selected again")
    if reg.fingerprint != digest:
        # Labels or annotations alone, and a certificate nothing renews now: the Secret keeps it.
        if (
            reg.data_fingerprint == data
            and renew is not Renewal.ALL
            and not renewal_due(output, reg.cert_expires, now)
        ):
            return step(Outcome.WOULD_UPDATE, "labels or annotations changed", relabel=True)
        return step(Outcome.WOULD_UPDATE, "changed")
    if renew is Renewal.ALL:
        return step(Outcome.WOULD_UPDATE, FORCED)
    if renew is Renewal.DUE and renewal_due(output, reg.cert_expires, now):
        return step(Outcome.WOULD_UPDATE, RENEWAL_DUE)
    return step(Outcome.UNCHANGED, "up to date")
