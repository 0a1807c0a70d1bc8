"""One run for one output: list, plan, then apply under the output's lease.

Every trigger (schedule, discovery, audit event, manual reload) ends here. A run lists and renders
what the selectors pick, plans against the registry (`plan`), and when the plan has anything to do
takes the output's lease and carries it out (`apply`); each pass's report is built once from its
outcomes (`outcomes`, `report`). Runs of one output never overlap; a trigger that finds the lease
held marks the output pending and the holder goes round once more. A failure for one cluster is
recorded against that cluster and never stops the others; a failure before writing (join, listing)
fails the run and touches no Secret.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from teleport_argocd import __version__, evidence
from teleport_argocd.applications import ApplicationCheck
from teleport_argocd.argocd import RenderedSecret, render_secret, render_secrets
from teleport_argocd.config.types import Destination, OutputConfig
from teleport_argocd.errors import ClusterNotListed, TeleportArgoCDError
from teleport_argocd.execution import CheckConnection, apply_all, checks_due, work
from teleport_argocd.kept_identity import KeptIdentities
from teleport_argocd.model import Identity, KubeCluster, KubeEndpoint, Registration
from teleport_argocd.outcomes import Tally, Where
from teleport_argocd.plan import Plan, Renewal, Scope, plan
from teleport_argocd.ports import SecretStoreLike, StateLike, TeleportSessionLike
from teleport_argocd.report import COMPLETED, FAILED, IDLE, QUEUED, OutputReport
from teleport_argocd.selectors import ClusterQuery, matches, select
from teleport_argocd.state import Lease, RunRecord

logger = logging.getLogger(__name__)


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
    # The certificates this process wrote, reused for a rewrite that is not a renewal; None: never.
    kept: KeptIdentities | None = None

    def run(self, output: OutputConfig, trigger: Trigger) -> OutputReport:
        """Reconcile one output as far as `trigger` asks, or mark it pending if another run holds it."""
        base = OutputReport(
            output=output.name,
            status=COMPLETED,
            trigger=trigger.kind,
            shard=trigger.scope.shard_id,
            dry_run=trigger.dry_run,
            started=self.clock(),
        )
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
            report = self._fail(base, exc)
            if not trigger.dry_run:
                self._record_failed_run(output, report)  # a run that could not even list is news
            return report
        if trigger.dry_run or (decided.idle and not listing.errors and not self._checks_due(decided)):
            # A plan as a report, without doing it: a dry run, or an idle run that writes nothing.
            foreseen = Tally.foreseen(decided, self.clock())
            expires = listing.identity.expires if trigger.dry_run else None
            status = COMPLETED if trigger.dry_run else IDLE
            return foreseen.report(base, listing.errors, expires, self.clock(), status)
        return self._apply_under_lease(output, trigger, base, listing, decided, read_at)

    # -- listing and planning ---------------------------------------------------------

    def _list(self, output: OutputConfig, trigger: Trigger) -> _Listing:
        """Mint the output's certificate, list what the selectors (or the event) name, render."""
        conn = self._teleport()
        scope = trigger.scope
        errors: list[str] = []
        # The CAs (one Auth call a session) are read beside the impersonation and the listing, which
        # do not need them: a cold targeted run waited for the three calls in turn.
        with ThreadPoolExecutor(max_workers=1) as side:
            ca_pems = side.submit(lambda: conn.session.host_ca_pems)
            identity = conn.session.impersonate(output.credential_ttl)
            if scope.clusters is not None:
                # A kube.delete is believed only if Teleport no longer lists the cluster: a stale or
                # forged one must not unregister a cluster that is still there.
                wait = timedelta(0) if scope.removed else trigger.wait_for_listing
                clusters: tuple[KubeCluster, ...] = self._list_named(
                    output, conn, identity, scope.clusters, wait
                )
            else:

                def fetch(query: ClusterQuery) -> list[KubeCluster]:
                    return conn.session.list_kube_clusters(identity, name=query.name, labels=query.labels)

                selection = select(output.selectors, fetch)
                clusters = tuple(c for c in selection.clusters if scope.covers(c.name))
                errors = [str(e) for e in selection.errors]
            host_ca_pems = ca_pems.result()
        rendered, failures = render_secrets(
            output,
            clusters,
            teleport_cluster=conn.teleport_cluster,
            endpoint=conn.endpoint,
            identity=identity,
            ca_pems=host_ca_pems,
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

        conn = self._teleport()
        picked = {s.cluster.name for s in listing.rendered} | {c.name for c, _ in listing.failures}
        still_listed = evidence.still_listed(
            output,
            scope,
            conn.teleport_cluster,
            registrations,
            picked=picked if not listing.errors else None,
            lookup=lambda name: conn.session.list_kube_clusters(listing.identity, name=name),
        )
        decided = decide(None)
        if decided.due:
            connect = functools.partial(self.connect_destination, output.destination)
            decided = decide(
                evidence.applications(output, conn.teleport_cluster, registrations, decided.due, connect)
            )
        return decided

    # -- applying -------------------------------------------------------------------------

    def _registry(self, output: OutputConfig, scope: Scope) -> list[Registration]:
        """What a run plans against: the whole registry, or for a run over named clusters (an event's)
        only their registrations, however large the registry. That is all such a run reads: `plan`
        and `evidence.still_listed` look no further than the scope, and only a run over the whole
        output measures the listing against the registry, prunes or asks the Applications guard."""
        if scope.clusters is None:
            return self.state.registrations(output.name)
        teleport = self._teleport().teleport_cluster
        return self.state.named_registrations([output.name], teleport, scope.clusters)[output.name]

    def _apply_under_lease(
        self,
        output: OutputConfig,
        trigger: Trigger,
        base: OutputReport,
        listing: _Listing,
        decided: Plan,
        read_at: datetime,
    ) -> OutputReport:
        run_id = uuid.uuid4().hex
        base = replace(base, run_id=run_id)
        lease = self.state.try_acquire(
            output.name,
            run_id=run_id,
            duration=self.lease_duration,
            reason=trigger.reason,
            shard=trigger.scope.shard_id,
        )
        if lease is None:
            logger.info("output %s is being reconciled by another run; marked pending", output.name)
            return replace(base, status=QUEUED)
        scope = trigger.scope
        planned: Plan | None = decided
        if lease.taken_over or (lease.previous_finished is not None and lease.previous_finished >= read_at):
            planned = None  # another run wrote the registry after we read it: plan again under the lease
        report = base
        try:
            while True:
                base = replace(base, passes=base.passes + 1)
                tally = Tally()
                try:
                    if base.passes > 1:
                        # Triggers arrived meanwhile: go round once more over the whole output.
                        scope = Scope(renew=Renewal.DUE, shard=trigger.scope.shard)
                        base = replace(base, started=self.clock())
                        listing = self._list(output, replace(trigger, scope=scope))
                        planned = None
                    lease = self._one_pass(output, tally, lease, scope, listing, planned)
                    report = tally.report(base, listing.errors, listing.identity.expires, self.clock())
                    self._record_run(output, report)
                except TeleportArgoCDError as exc:  # what the pass did before it failed, and why
                    done = tally.report(base, listing.errors, listing.identity.expires, self.clock())
                    report = self._fail(done, exc)
                    self._record_failed_run(output, report)
                if not self.state.finish(lease):
                    break
                logger.info("output %s: triggers arrived during the run; running once more", output.name)
        except TeleportArgoCDError as exc:  # the state table itself failed: the lease will expire
            report = self._fail(report, exc)
        except Exception:
            # Leave the lease to expire rather than guess at the state; the next run redoes the work.
            logger.exception("output %s: run crashed; its lease will expire", output.name)
            raise
        return report

    def _one_pass(
        self,
        output: OutputConfig,
        tally: Tally,
        lease: Lease,
        scope: Scope,
        listing: _Listing,
        planned: Plan | None,
    ) -> Lease:
        """Record what takes no request, then carry out the rest; every outcome goes to `tally`."""
        decided = self._with_kept(output, scope, listing, planned or self._plan(output, scope, listing))
        now = self.clock()
        identity = listing.identity
        where = Where(output.name, self._teleport().teleport_cluster, identity.expires, identity.cert_id)
        self.state.put_registrations(tally.without_requests(decided, now, where))
        tally.notes = tuple(decided.notes)
        steps = work(decided, self.check is not None, self.clock())
        if not steps:
            return lease

        def keep_alive() -> None:
            nonlocal lease
            lease = self.state.extend(lease, self.lease_duration)

        apply_all(
            steps,
            self.connect_destination(output.destination),
            check=self.check,
            clock=self.clock,
            where=where,
            tally=tally,
            store_registrations=self.state.put_registrations,
            keep_alive=keep_alive,
            concurrency=self.concurrency,
            every=self.lease_duration.total_seconds() / 3,
        )
        return lease

    def _with_kept(self, output: OutputConfig, scope: Scope, listing: _Listing, decided: Plan) -> Plan:
        """Rewrites that are not renewals keep the certificate their Secret holds, so `config` stays."""
        if self.kept is None or not decided.writes:
            return decided
        conn, now = self._teleport(), self.clock()
        cas = conn.session.host_ca_pems
        render = functools.partial(
            render_secret, output, teleport_cluster=conn.teleport_cluster, endpoint=conn.endpoint
        )

        def rendered(identity: Identity, secret: RenderedSecret) -> RenderedSecret:
            return render(secret.cluster, identity=identity, ca_pems=cas, now=now, version=__version__)

        fresh = listing.identity
        return self.kept.reuse(decided, output, scope, conn.teleport_cluster, fresh, cas, rendered, now)

    def _checks_due(self, decided: Plan) -> bool:
        return self.check is not None and bool(checks_due(decided, self.clock()))

    # -- reporting ------------------------------------------------------------------------

    def _fail(self, report: OutputReport, exc: TeleportArgoCDError) -> OutputReport:
        logger.error("output %s: run failed: %s", report.output, exc)
        return replace(
            report,
            status=FAILED,
            retriable=isinstance(exc, ClusterNotListed),
            errors=(*report.errors, str(exc)),
            finished=self.clock(),
        )

    def _record_failed_run(self, output: OutputConfig, report: OutputReport) -> None:
        """Record a failed run if the state table lets us: when it is the table that failed, the
        report still says why, and the next run records itself."""
        try:
            self._record_run(output, report)
        except TeleportArgoCDError as exc:
            logger.error("output %s: the failed run could not be recorded: %s", output.name, exc)

    def _record_run(self, output: OutputConfig, report: OutputReport) -> None:
        assert report.started is not None and report.finished is not None
        self.state.put_run(
            RunRecord(
                output=output.name,
                run_id=report.run_id or uuid.uuid4().hex,
                trigger=report.trigger,
                started=report.started,
                finished=report.finished,
                dry_run=False,
                counts=report.counts,
                errors=report.errors,
            )
        )

    def _teleport(self) -> Connection:
        return self.connect_teleport()  # the caller joins once per invocation and keeps it
