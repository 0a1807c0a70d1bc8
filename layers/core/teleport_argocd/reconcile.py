"""One run for one output: list, plan, then apply under the output's lease.

Every trigger (schedule, discovery, audit event, manual reload) ends here. A run lists and
renders what the selectors pick, plans against the registry (`plan`), and when the plan
has anything to do takes the output's lease and applies it: the Secrets to write go through
a bounded pool, one request each, and the registry is written back in batches as results
come in. Runs of one output never overlap; a trigger that finds the lease held marks the
output pending and the holder goes round once more. A failure for one cluster is recorded
against that cluster and never stops the others; a failure before writing (join, listing)
fails the run and touches no Secret.
"""

from __future__ import annotations

import functools
import logging
import queue
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from teleport_argocd import __version__
from teleport_argocd.applications import Application, ApplicationCheck, Target, check
from teleport_argocd.argocd import RenderedSecret, argocd_cluster_name, render_secrets
from teleport_argocd.config.types import Destination, OutputConfig
from teleport_argocd.errors import ClusterNotListed, ForeignSecretError, NotManagedError, TeleportArgoCDError
from teleport_argocd.model import Absence, Identity, KubeCluster, KubeEndpoint, Registration, SecretVersion
from teleport_argocd.plan import Action, Plan, Renewal, Scope, Step, plan
from teleport_argocd.probe import OK, ConnectionCheck, check_due
from teleport_argocd.selectors import ClusterQuery, matches, select
from teleport_argocd.state import Lease, RunRecord

logger = logging.getLogger(__name__)

# What a run may say about one cluster.
CREATED, UPDATED, UNCHANGED, FAILED, UNMATCHED = "created", "updated", "unchanged", "failed", "unmatched"
DELETED, WAITING, RELINQUISHED = "deleted", "waiting", "relinquished"
WOULD_CREATE, WOULD_UPDATE, WOULD_UNMATCH, WOULD_DELETE = (
    "would-create",
    "would-update",
    "would-unmatch",
    "would-delete",
)
_DRY = {
    Action.CREATE: WOULD_CREATE,
    Action.UPDATE: WOULD_UPDATE,
    Action.UNMATCHED: WOULD_UNMATCH,
    Action.PRUNE: WOULD_DELETE,
    Action.WAIT: WAITING,
}
# Runs in a row that find a cluster's Secret replaced by someone else (or someone else's in the
# way) before it is relinquished: reported once, then left alone instead of failing every run.
RELINQUISH_AFTER = 3
# At most this many unselected clusters are looked up by name in one run, to tell a deselected
# cluster from one that vanished; the rest keep their evidence (vanished: the longer grace).
MAX_LISTED_CHECKS = 50
CheckConnection = Callable[[RenderedSecret, datetime], ConnectionCheck]
# A step carried out: what the write or delete returned (None for a check alone), and the check.
_Done = tuple["WriteResultLike | bool | None", "ConnectionCheck | None"]

# Registrations are written back in batches of this many as results arrive, so a run killed
# half-way keeps what it did.
FLUSH_EVERY = 25
# Batches in flight at once: sent one after another, the write-back was most of a warm renewal's
# wall time (bench/renewal_bench.py: 2.66 s of 3.52 s at 1,000 clusters waited on BatchWriteItem).
FLUSH_CONCURRENCY = 4


class TeleportSessionLike(Protocol):
    """What a run needs from a joined Teleport session (teleport_argocd.teleport.TeleportSession)."""

    @property
    def host_ca_pems(self) -> list[bytes]: ...

    def impersonate(self, ttl: timedelta) -> Identity: ...

    def list_kube_clusters(
        self, identity: Identity, *, name: str | None = None, labels: Any = None
    ) -> list[KubeCluster]: ...


class WriteResultLike(Protocol):
    @property
    def action(self) -> str: ...

    @property
    def version(self) -> SecretVersion: ...


class SecretStoreLike(Protocol):
    """What a run needs from a destination (teleport_argocd.kube.SecretStore); thread-safe."""

    def write(self, manifest: dict[str, Any], known: SecretVersion | None) -> WriteResultLike: ...

    def delete(self, namespace: str, name: str, known: SecretVersion) -> bool: ...

    def list_applications(self, namespace: str) -> list[Application]: ...


class StateLike(Protocol):
    """What a run needs from the state table (teleport_argocd.state.StateStore)."""

    def try_acquire(
        self, output: str, *, run_id: str, duration: timedelta, reason: str, shard: str = ""
    ) -> Lease | None: ...

    def extend(self, lease: Lease, duration: timedelta) -> Lease: ...

    def finish(self, lease: Lease) -> bool: ...

    def registrations(self, output: str) -> list[Registration]: ...

    def named_registrations(
        self, outputs: Sequence[str], teleport_cluster: str, kube_clusters: Collection[str]
    ) -> dict[str, list[Registration]]: ...

    def put_registrations(self, registrations: Sequence[Registration]) -> None: ...

    def put_run(self, record: RunRecord) -> None: ...


@dataclass(frozen=True)
class Connection:
    """A joined Teleport session with the proxy facts rendering needs."""

    session: TeleportSessionLike
    teleport_cluster: str
    endpoint: KubeEndpoint


@dataclass(frozen=True)
class Trigger:
    """Why a run happens and how much it covers; `dry_run` plans and writes nothing.

    `wait_for_listing`: for a targeted run, how long to wait for Teleport to list a cluster an
    event announced (the agent heartbeats only after it picks the resource up). `attempt`: how
    many times the targeted run has been queued again to wait longer (see `fanout.requeue`).
    """

    kind: str
    reason: str
    scope: Scope = field(default_factory=Scope)
    dry_run: bool = False
    wait_for_listing: timedelta = timedelta(0)
    attempt: int = 0


@dataclass(frozen=True)
class ClusterResult:
    """The outcome for one kube cluster in one run."""

    kube_cluster: str
    action: str
    reason: str = ""
    secret_namespace: str = ""
    secret_name: str = ""
    server: str = ""
    error: str | None = None
    prune: Mapping[str, Any] | None = None  # an unmatched cluster's evidence and grace clock

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "prune" or v is not None}


@dataclass
class OutputReport:
    """The outcome of one output's run.

    `status` is completed, failed, queued (another run holds the lease and will go round once
    more), or idle (nothing to do: nothing written, not even the lease). `retriable` says a
    later attempt may succeed where this one could not (a cluster not listed yet).
    """

    output: str
    status: str
    trigger: str
    run_id: str = ""
    shard: str = ""
    dry_run: bool = False
    passes: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    cert_expires: datetime | None = None
    retriable: bool = False
    clusters: list[ClusterResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, *actions: str) -> int:
        return sum(1 for c in self.clusters if c.action in actions)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "selected": self.count(CREATED, UPDATED, UNCHANGED, FAILED, WOULD_CREATE, WOULD_UPDATE),
            "written": self.count(CREATED, UPDATED),
            "created": self.count(CREATED),
            "updated": self.count(UPDATED),
            "unchanged": self.count(UNCHANGED),
            "failed": self.count(FAILED),
            "unmatched": self.count(UNMATCHED, WOULD_UNMATCH),
            "deleted": self.count(DELETED, WOULD_DELETE),
            "waiting": self.count(WAITING),
            "relinquished": self.count(RELINQUISHED),
        }

    def to_dict(self, *, unchanged: bool = False) -> dict[str, Any]:
        """JSON-ready; unchanged clusters are counted but listed only when asked."""
        return {
            "output": self.output,
            "status": self.status,
            "trigger": self.trigger,
            "run_id": self.run_id,
            "shard": self.shard,
            "dry_run": self.dry_run,
            "passes": self.passes,
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "cert_expires": _iso(self.cert_expires),
            "counts": self.counts,
            "clusters": [c.to_dict() for c in self.clusters if unchanged or c.action != UNCHANGED],
            "errors": self.errors,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class _Listing:
    """What Teleport said this run: the identity minted for it and the rendered Secrets."""

    identity: Identity
    rendered: list[RenderedSecret]
    failures: list[tuple[KubeCluster, str]]
    errors: list[str]


@dataclass
class Reconciler:
    """Runs outputs against one Teleport connection, one state table and the destinations they name."""

    state: StateLike
    connect_teleport: Callable[[], Connection]
    connect_destination: Callable[[Destination], SecretStoreLike]
    lease_duration: timedelta = timedelta(minutes=6)
    concurrency: int = 16
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    sleep: Callable[[float], None] = time.sleep
    # Checks that a Secret connects as Argo CD will (teleport_argocd.probe); None: no checks.
    check: CheckConnection | None = None

    def run(self, output: OutputConfig, trigger: Trigger) -> OutputReport:
        """Reconcile one output as far as `trigger` asks, or mark it pending if another run holds it."""
        report = OutputReport(output=output.name, status="completed", trigger=trigger.kind)
        report.dry_run = trigger.dry_run
        report.shard = trigger.scope.shard_id
        report.started = self.clock()
        try:
            # The registry and Teleport are independent reads: fetch them side by side. A run over
            # named clusters reads only theirs, keyed by the Teleport cluster's name: join first.
            read_at = self.clock()
            if trigger.scope.clusters is not None:
                self._teleport()
            with ThreadPoolExecutor(max_workers=1) as reader:
                registry = reader.submit(self._registry, output, trigger.scope)
                listing = self._list(output, trigger)
                decided = self._plan(output, trigger.scope, listing, registry.result())
        except TeleportArgoCDError as exc:
            self._fail(report, exc)
            if not trigger.dry_run:
                self._record_failed_run(output, report)  # a run that could not even list is news
            return report
        if trigger.dry_run:
            self._report_plan(report, decided, listing)
            report.finished = self.clock()
            return report
        if decided.idle and not listing.errors and not self._checks_due(decided):
            report.status = "idle"
            self._report_plan(report, decided, listing)
            report.finished = self.clock()
            return report
        return self._apply_under_lease(output, trigger, report, listing, decided, read_at)

    # -- listing and planning ---------------------------------------------------------

    def _list(self, output: OutputConfig, trigger: Trigger) -> _Listing:
        """Mint the output's certificate, list what the selectors (or the event) name, render."""
        conn = self._teleport()
        identity = conn.session.impersonate(output.credential_ttl)
        scope = trigger.scope
        errors: list[str] = []
        if scope.clusters is not None:
            # A kube.delete is believed only if Teleport no longer lists the cluster: a stale or
            # forged one must not unregister a cluster that is still there.
            wait = timedelta(0) if scope.removed else trigger.wait_for_listing
            clusters: tuple[KubeCluster, ...] = self._list_named(output, conn, identity, scope.clusters, wait)
        else:

            def fetch(query: ClusterQuery) -> list[KubeCluster]:
                return conn.session.list_kube_clusters(identity, name=query.name, labels=query.labels)

            selection = select(output.selectors, fetch)
            clusters = tuple(c for c in selection.clusters if scope.covers(c.name))
            errors = [str(e) for e in selection.errors]
        rendered, failures = render_secrets(
            output,
            clusters,
            teleport_cluster=conn.teleport_cluster,
            endpoint=conn.endpoint,
            identity=identity,
            ca_pems=conn.session.host_ca_pems,
            now=self.clock(),
            version=__version__,
        )
        return _Listing(identity, rendered, failures, errors)

    def _list_named(
        self,
        output: OutputConfig,
        conn: Connection,
        identity: Identity,
        names: frozenset[str],
        wait_for: timedelta,
    ) -> tuple[KubeCluster, ...]:
        """The named clusters the output's selectors pick, waiting with backoff for Teleport to list
        them; raises ClusterNotListed when one is still missing after `wait_for` (and `wait_for` > 0)."""
        deadline = self.clock() + wait_for
        delay = 1.0
        while True:
            found = {
                c.name: c
                for name in sorted(names)
                for c in conn.session.list_kube_clusters(identity, name=name)
                if c.name == name
            }
            missing = names - found.keys()
            if not missing or wait_for <= timedelta(0):
                break
            left = (deadline - self.clock()).total_seconds()
            if left <= 0:
                raise ClusterNotListed(
                    f"Teleport does not list kube cluster(s) {', '.join(sorted(missing))} "
                    f"{wait_for.total_seconds():.0f} s after the event; will retry"
                )
            self.sleep(min(delay, left))
            delay = min(delay * 2, 15.0)
        return tuple(c for c in found.values() if any(matches(s, c) for s in output.selectors))

    def _plan(
        self,
        output: OutputConfig,
        scope: Scope,
        listing: _Listing,
        registry: list[Registration] | None = None,
    ) -> Plan:
        """Plan against `registry`, or against the registry as it is now. When deletions are due,
        the Applications guard checks them and the plan is made again with what it found."""
        registrations = self._registry(output, scope) if registry is None else registry
        now = self.clock()

        def decide(applications: ApplicationCheck | None) -> Plan:
            return plan(
                output,
                teleport_cluster=self._teleport().teleport_cluster,
                rendered=listing.rendered,
                failures=listing.failures,
                registrations=registrations,
                now=now,
                scope=scope,
                complete=not listing.errors,
                still_listed=still_listed,
                applications=applications,
            )

        still_listed = self._still_listed(output, scope, listing, registrations)
        decided = decide(None)
        if decided.due:
            decided = decide(self._check_applications(output, registrations, decided.due))
        return decided

    def _registry(self, output: OutputConfig, scope: Scope) -> list[Registration]:
        """What a run plans against: the whole registry, or for a run over named clusters (an event's)
        only their registrations, however large the registry. That is all such a run reads: `plan`
        and `_still_listed` look no further than the scope, and only a run over the whole output
        measures the listing against the registry, prunes or asks the Applications guard."""
        if scope.clusters is None:
            return self.state.registrations(output.name)
        teleport = self._teleport().teleport_cluster
        return self.state.named_registrations([output.name], teleport, scope.clusters)[output.name]

    def _check_applications(
        self, output: OutputConfig, registrations: Sequence[Registration], due: frozenset[str]
    ) -> ApplicationCheck:
        """The Applications that still target each cluster due for deletion: one list per namespace
        searched (`application_search`), made only when something is due. A destination that cannot
        be reached or a list refused holds every deletion this run: none is made without the check."""
        teleport = self._teleport().teleport_cluster
        targets = {
            r.kube_cluster: Target(
                r.server,
                r.cluster_name
                or argocd_cluster_name(output, teleport, KubeCluster(r.kube_cluster, r.labels))
                or "",
            )
            for r in registrations
            if r.teleport_cluster == teleport and r.kube_cluster in due
        }
        found: list[Application] = []
        try:
            store = self.connect_destination(output.destination)
            for namespace in output.application_search:
                found += store.list_applications(namespace)
        except TeleportArgoCDError as exc:
            logger.warning("output %s: Argo CD Applications could not be listed: %s", output.name, exc)
            return ApplicationCheck(
                failed=f"pruning held back: Argo CD Applications could not be listed ({exc}), and no "
                "Secret is deleted while Applications may still target its cluster"
            )
        return check(found, targets)

    def _still_listed(
        self, output: OutputConfig, scope: Scope, listing: _Listing, registrations: Sequence[Registration]
    ) -> frozenset[str]:
        """Which registered clusters the selectors no longer pick Teleport still lists by name: they
        were deselected, not lost. Only for a run that may prune, and only where it could change
        the evidence; a lookup that fails proves nothing, so that cluster stays `vanished`."""
        if not output.prune.enabled or scope.clusters is not None or listing.errors:
            return frozenset()
        conn = self._teleport()
        picked = {s.cluster.name for s in listing.rendered} | {c.name for c, _ in listing.failures}
        unsure = sorted(
            r.kube_cluster
            for r in registrations
            if r.teleport_cluster == conn.teleport_cluster
            and r.deleted_at is None
            and r.kube_cluster not in picked
            and scope.covers(r.kube_cluster)
            and r.absence.strength < Absence.DESELECTED.strength
        )
        found: set[str] = set()
        for name in unsure[:MAX_LISTED_CHECKS]:
            try:
                listed = conn.session.list_kube_clusters(listing.identity, name=name)
            except TeleportArgoCDError as exc:
                logger.warning("output %s: could not look up cluster %s: %s", output.name, name, exc)
                continue
            if any(c.name == name for c in listed):
                found.add(name)
        return frozenset(found)

    # -- applying -------------------------------------------------------------------------

    def _apply_under_lease(
        self,
        output: OutputConfig,
        trigger: Trigger,
        report: OutputReport,
        listing: _Listing,
        decided: Plan,
        read_at: datetime,
    ) -> OutputReport:
        run_id = uuid.uuid4().hex
        report.run_id = run_id
        lease = self.state.try_acquire(
            output.name,
            run_id=run_id,
            duration=self.lease_duration,
            reason=trigger.reason,
            shard=trigger.scope.shard_id,
        )
        if lease is None:
            logger.info("output %s is being reconciled by another run; marked pending", output.name)
            report.status = "queued"
            return report
        scope = trigger.scope
        planned: Plan | None = decided
        if lease.taken_over or (lease.previous_finished is not None and lease.previous_finished >= read_at):
            planned = None  # another run wrote the registry after we read it: plan again under the lease
        try:
            while True:
                report.passes += 1
                try:
                    if report.passes > 1:
                        # Triggers arrived meanwhile: go round once more over the whole output.
                        scope = Scope(renew=Renewal.DUE, shard=trigger.scope.shard)
                        report.started = self.clock()
                        listing = self._list(output, replace(trigger, scope=scope))
                        planned = None
                    lease = self._one_pass(output, report, lease, scope, listing, planned)
                except TeleportArgoCDError as exc:
                    self._fail(report, exc)
                    self._record_failed_run(output, report)
                if not self.state.finish(lease):
                    break
                logger.info("output %s: triggers arrived during the run; running once more", output.name)
        except TeleportArgoCDError as exc:  # the state table itself failed: the lease will expire
            self._fail(report, exc)
        except Exception:
            # Leave the lease to expire rather than guess at the state; the next run redoes the work.
            logger.exception("output %s: run crashed; its lease will expire", output.name)
            raise
        return report

    def _one_pass(
        self,
        output: OutputConfig,
        report: OutputReport,
        lease: Lease,
        scope: Scope,
        listing: _Listing,
        planned: Plan | None,
    ) -> Lease:
        report.clusters.clear()
        report.errors[:] = listing.errors
        report.status = "completed"
        report.cert_expires = listing.identity.expires
        decided = planned or self._plan(output, scope, listing)
        now = self.clock()
        records: list[Registration] = []
        for step in decided.steps:
            if step.action is Action.UNCHANGED:
                report.clusters.append(_result(step, UNCHANGED))
            elif step.action is Action.CANNOT_RENDER:
                report.clusters.append(_result(step, FAILED, error=step.error))
                records.append(self._failed(output, step, step.error or "not rendered", now))
            elif step.action in (Action.UNMATCHED, Action.WAIT):
                report.clusters.append(
                    _result(step, UNMATCHED if step.action is Action.UNMATCHED else WAITING)
                )
                if step.record is not None:
                    records.append(step.record)
        self.state.put_registrations(records)
        report.notes[:] = decided.notes
        work = sorted(decided.writes, key=_oldest_first) + decided.deletes + self._checks_due(decided)
        if work:
            store = self.connect_destination(output.destination)
            lease = self._write_all(output, store, work, listing.identity, report, lease)
        if report.count(FAILED) or report.errors:
            report.status = "failed"
        self._record_run(output, report)
        return lease

    def _write_all(
        self,
        output: OutputConfig,
        store: SecretStoreLike,
        writes: list[Step],
        identity: Identity,
        report: OutputReport,
        lease: Lease,
    ) -> Lease:
        """Write through a bounded pool; record results in batches; keep the lease alive meanwhile.

        Results come back through a queue as each write finishes: `concurrent.futures.wait` on
        thousands of pending futures costs time in proportion to all of them at every call.
        """
        extend_every = self.lease_duration.total_seconds() / 3
        renewed_at = time.monotonic()
        buffer: list[Registration] = []
        flushes: list[Future[None]] = []
        finished: queue.SimpleQueue[tuple[Step, Future[_Done]]] = queue.SimpleQueue()
        with (
            ThreadPoolExecutor(max_workers=min(self.concurrency, len(writes))) as pool,
            ThreadPoolExecutor(max_workers=FLUSH_CONCURRENCY) as flusher,
        ):
            for step in writes:
                check = self.check if self._needs_check(step) else None
                future = pool.submit(_carry_out, store, step, check, self.clock)
                future.add_done_callback(functools.partial(_put, finished, step))
            done = 0
            while done < len(writes):
                try:
                    step, future = finished.get(timeout=extend_every)
                except queue.Empty:
                    pass  # nothing finished for a while: still, keep the lease
                else:
                    done += 1
                    buffer.append(self._outcome(output, step, future, identity, report))
                    if len(buffer) == FLUSH_EVERY or done == len(writes):
                        flushes.append(flusher.submit(self.state.put_registrations, buffer))
                        buffer = []
                if time.monotonic() - renewed_at >= extend_every:
                    lease = self.state.extend(lease, self.lease_duration)
                    renewed_at = time.monotonic()
        for flush in flushes:
            flush.result()  # a state table that refused a batch still fails the run, as before
        return lease

    def _outcome(
        self,
        output: OutputConfig,
        step: Step,
        future: Future[_Done],
        identity: Identity,
        report: OutputReport,
    ) -> Registration:
        now = self.clock()
        try:
            result, checked = future.result()
        except Exception as exc:  # one cluster's failure never stops the others
            message = _describe(exc)
            if not isinstance(exc, TeleportArgoCDError):
                logger.error(
                    "output %s: cluster %s: unexpected error", output.name, step.kube_cluster, exc_info=exc
                )
            failed = self._failed(output, step, message, now)
            if isinstance(exc, NotManagedError | ForeignSecretError):
                failed = _refused(failed, step, now)
                if failed.relinquished_at is not None:
                    logger.warning(
                        "output %s: cluster %s relinquished after %d refusals: %s",
                        output.name,
                        step.kube_cluster,
                        failed.refusals,
                        message,
                    )
                    report.clusters.append(_result(step, RELINQUISHED, error=message))
                    return failed
            logger.warning("output %s: cluster %s not written: %s", output.name, step.kube_cluster, message)
            report.clusters.append(_result(step, FAILED, error=message))
            return failed
        if step.action is Action.UNCHANGED:  # checked only: already reported as unchanged
            assert step.registration is not None
            return _with_check(step.registration, checked)
        if step.action is Action.PRUNE:
            assert step.registration is not None
            logger.info("output %s: cluster %s pruned (%s)", output.name, step.kube_cluster, step.reason)
            report.clusters.append(_result(step, DELETED))
            return replace(step.registration, deleted_at=now, version=None, last_attempt=now, held_by=())
        assert step.secret is not None and result is not None and not isinstance(result, bool)
        report.clusters.append(_result(step, CREATED if result.action == "created" else UPDATED))
        reg = step.registration
        written = Registration(
            output=output.name,
            teleport_cluster=self._teleport().teleport_cluster,
            kube_cluster=step.kube_cluster,
            secret_namespace=step.secret.namespace,
            secret_name=step.secret.name,
            server=step.secret.server,
            labels=step.labels,
            fingerprint=step.fingerprint,
            version=result.version,
            matches=True,
            first_written=reg.first_written if reg and reg.first_written and reg.deleted_at is None else now,
            last_written=now,
            last_attempt=now,
            cert_expires=identity.expires,
            cluster_name=step.secret.argocd_name,
        )
        if reg is not None:  # a write that was not checked keeps the last check
            written = replace(
                written,
                connection=reg.connection,
                connection_at=reg.connection_at,
                connection_message=reg.connection_message,
            )
        return _with_check(written, checked)

    def _failed(self, output: OutputConfig, step: Step, message: str, now: datetime) -> Registration:
        """A failed attempt: what was written before stays as it was, the error is added."""
        if step.action is Action.PRUNE:  # the registration stays unmatched; the deletion is retried
            assert step.registration is not None
            return replace(step.registration, last_error=message, last_error_at=now, last_attempt=now)
        base = step.registration or Registration(
            output=output.name,
            teleport_cluster=self._teleport().teleport_cluster,
            kube_cluster=step.kube_cluster,
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

    def _checks_due(self, decided: Plan) -> list[Step]:
        """Unchanged registrations whose connection check is due."""
        if self.check is None:
            return []
        return [s for s in decided.steps if s.action is Action.UNCHANGED and self._needs_check(s)]

    def _needs_check(self, step: Step) -> bool:
        """Check after a create or a change, and hourly; a renewal alone (a new certificate for the same
        roles, CA and server) of a registration that connected within the hour is not checked again."""
        reg = step.registration
        if step.action is Action.PRUNE or self.check is None:
            return False
        if reg is not None and reg.relinquished_at is not None and not step.writes:
            return False  # someone else's Secret, left alone: nothing of ours to check
        if reg is None or check_due(reg.connection_at, self.clock(), reg.connection):
            return True
        changed = reg.fingerprint != step.fingerprint or reg.last_error is not None or not reg.matches
        return step.writes and (changed or reg.connection != OK)

    # -- reporting ------------------------------------------------------------------------

    def _report_plan(self, report: OutputReport, decided: Plan, listing: _Listing) -> None:
        """A plan as a report, without doing it: for dry runs and idle runs."""
        report.errors.extend(listing.errors)
        report.notes.extend(decided.notes)
        report.cert_expires = None if not report.dry_run else listing.identity.expires
        for step in decided.steps:
            if step.action is Action.CANNOT_RENDER:
                report.clusters.append(_result(step, FAILED, error=step.error))
            else:
                report.clusters.append(_result(step, _DRY.get(step.action, UNCHANGED)))
        if report.count(FAILED) or report.errors:
            report.status = "failed"

    def _fail(self, report: OutputReport, exc: TeleportArgoCDError) -> None:
        report.status = "failed"
        report.retriable = isinstance(exc, ClusterNotListed)
        report.errors.append(str(exc))
        report.finished = self.clock()
        logger.error("output %s: run failed: %s", report.output, exc)

    def _record_failed_run(self, output: OutputConfig, report: OutputReport) -> None:
        """Record a failed run if the state table lets us: when it is the table that failed, the
        report still says why, and the next run records itself."""
        try:
            self._record_run(output, report)
        except TeleportArgoCDError as exc:
            logger.error("output %s: the failed run could not be recorded: %s", output.name, exc)

    def _record_run(self, output: OutputConfig, report: OutputReport) -> None:
        report.finished = self.clock()
        assert report.started is not None
        self.state.put_run(
            RunRecord(
                output=output.name,
                run_id=report.run_id or uuid.uuid4().hex,
                trigger=report.trigger,
                started=report.started,
                finished=report.finished,
                dry_run=False,
                counts=report.counts,
                errors=tuple(report.errors),
            )
        )

    def _teleport(self) -> Connection:
        return self.connect_teleport()  # the caller joins once per invocation and keeps it


def _put(
    finished: queue.SimpleQueue[tuple[Step, Future[_Done]]],
    step: Step,
    future: Future[_Done],
) -> None:
    finished.put((step, future))


def _carry_out(
    store: SecretStoreLike, step: Step, check: CheckConnection | None, clock: Callable[[], datetime]
) -> _Done:
    """A step's requests: write the Secret (then check it connects), delete the one we last wrote,
    or, for an unchanged registration whose check is due, only the check."""
    reg = step.registration
    if step.action is Action.PRUNE:
        assert reg is not None and reg.version is not None
        return store.delete(reg.secret_namespace, reg.secret_name, reg.version), None
    assert step.secret is not None
    result = None if step.action is Action.UNCHANGED else store.write(step.secret.manifest, step.known)
    return result, check(step.secret, clock()) if check is not None else None


def _with_check(reg: Registration, checked: ConnectionCheck | None) -> Registration:
    if checked is None:
        return reg
    return replace(
        reg, connection=checked.status, connection_at=checked.at, connection_message=checked.message
    )


def _refused(failed: Registration, step: Step, now: datetime) -> Registration:
    """One more run that found the Secret not ours; relinquished after `RELINQUISH_AFTER` in a row,
    remembering what was rendered so an unchanged rendering is not tried again."""
    refusals = failed.refusals + 1
    if refusals < RELINQUISH_AFTER:
        return replace(failed, refusals=refusals)
    fingerprint = step.fingerprint if step.secret is not None else failed.fingerprint
    return replace(failed, refusals=refusals, relinquished_at=now, fingerprint=fingerprint)


def _oldest_first(step: Step) -> datetime:
    """Failed and never-written clusters first, then the oldest writes, so none waits behind the rest."""
    reg = step.registration
    if reg is None or reg.last_error is not None or reg.last_written is None:
        return datetime.min.replace(tzinfo=UTC)
    return reg.last_written


def _result(step: Step, action: str, *, error: str | None = None) -> ClusterResult:
    secret, reg = step.secret, step.registration
    return ClusterResult(
        step.kube_cluster,
        action,
        reason=step.reason,
        secret_namespace=secret.namespace if secret else (reg.secret_namespace if reg else ""),
        secret_name=secret.name if secret else (reg.secret_name if reg else ""),
        server=secret.server if secret else (reg.server if reg else ""),
        error=error,
        prune=step.clock,
    )


def _describe(exc: BaseException) -> str:
    """A short, key-free description of a per-cluster failure."""
    if isinstance(exc, TeleportArgoCDError):
        return str(exc)[:1000]
    return f"unexpected {type(exc).__name__}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
