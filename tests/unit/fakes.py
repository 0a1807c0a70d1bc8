"""In-memory stand-ins for the reconcile's seams (state, destination, Teleport session), for fast
tests of its decisions. Each keeps the contract of the real one it replaces: conditional lease,
whole-item registrations, preconditioned writes. The real ones are tested against moto and the
Kubernetes stand-in in tests/integration."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from teleport_argocd.applications import Application
from teleport_argocd.config import OutputConfig, load_config
from teleport_argocd.errors import DestinationUnreachable, NotManagedError
from teleport_argocd.model import Identity, KubeCluster, KubeEndpoint, Outcome, Registration, SecretVersion
from teleport_argocd.reconcile import Connection, Reconciler
from teleport_argocd.state import Lease, RunRecord

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
HOST_CA = b"-----BEGIN CERTIFICATE-----\nHOSTCA\n-----END CERTIFICATE-----\n"


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class FakeState:
    """The state table's contract: one lease holder, pending reruns, whole registrations, run records."""

    holder: str | None = None
    pending: int = 0
    regs: dict[tuple[str, str, str], Registration] = field(default_factory=dict)
    runs: list[RunRecord] = field(default_factory=list)
    writes: int = 0
    reads: int = 0
    named_reads: list[frozenset[str]] = field(default_factory=list)  # what each targeted read asked for
    last_finished: datetime | None = None
    shard_leases: list[str] = field(default_factory=list)

    def try_acquire(
        self, output: str, *, run_id: str, duration: timedelta, reason: str, shard: str = ""
    ) -> Lease | None:
        self.writes += 1
        if shard:  # shards' leases are independent of the output's
            self.shard_leases.append(shard)
            return Lease(output, run_id, T0 + duration, shard=shard)
        if self.holder not in (None, run_id):
            self.pending += 1
            return None
        self.holder = run_id
        return Lease(output, run_id, T0 + duration, previous_finished=self.last_finished)

    def extend(self, lease: Lease, duration: timedelta) -> Lease:
        self.writes += 1
        return lease

    def finish(self, lease: Lease) -> bool:
        self.writes += 1
        if lease.shard:
            return False
        if self.pending:
            self.pending = 0
            return True
        self.holder = None
        return False

    def registrations(self, output: str) -> list[Registration]:
        self.reads += 1
        return [r for (o, _, _), r in sorted(self.regs.items()) if o == output]

    def named_registrations(
        self, outputs: Sequence[str], teleport_cluster: str, kube_clusters: Collection[str]
    ) -> dict[str, list[Registration]]:
        self.named_reads.append(frozenset(kube_clusters))
        return {
            output: [
                r
                for (o, t, k), r in sorted(self.regs.items())
                if o == output and t == teleport_cluster and k in kube_clusters
            ]
            for output in outputs
        }

    def put_registrations(self, registrations: Sequence[Registration]) -> None:
        if registrations:
            self.writes += (len(registrations) + 24) // 25
        for r in registrations:
            self.regs[r.output, r.teleport_cluster, r.kube_cluster] = r

    def put_run(self, record: RunRecord) -> None:
        self.writes += 1
        self.runs.append(record)


@dataclass(frozen=True)
class Written:
    action: Outcome
    version: SecretVersion


class FakeStore:
    """Secrets by name; a write with a stale version is refused, as a preconditioned PUT would be."""

    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, SecretVersion] = {}
        self.failing: set[str] = set()
        self.writes: list[str] = []
        self.relabels: list[str] = []  # clusters whose labels or annotations alone were written
        # Argo CD Applications by namespace; a namespace in `refusing` answers with that error.
        self.applications: dict[str, list[Application]] = {}
        self.refusing: dict[str, Exception] = {}
        self.application_lists: list[str] = []
        self._lock = threading.Lock()

    def write(self, manifest: Mapping[str, Any], known: SecretVersion | None) -> Written:
        name = manifest["metadata"]["name"]
        cluster = manifest["metadata"]["annotations"]["teleport.dev/kubernetes-cluster-name"]
        with self._lock:
            self.writes.append(cluster)
            if cluster in self.failing:
                raise DestinationUnreachable(f"write secret {name}: 503 unavailable")
            current = self.versions.get(name)
            action = Outcome.CREATED if current is None else Outcome.UPDATED
            version = SecretVersion(f"uid-{name}", str(len(self.writes)))
            self.secrets[name] = dict(manifest)
            self.versions[name] = (
                version if current is None else SecretVersion(current.uid, version.resource_version)
            )
            return Written(action, self.versions[name])

    def relabel(self, manifest: Mapping[str, Any], known: SecretVersion) -> Written | None:
        """Only labels and annotations, over the Secret we wrote (same uid); None otherwise."""
        name = manifest["metadata"]["name"]
        with self._lock:
            current = self.versions.get(name)
            if current is None or current.uid != known.uid:
                return None
            self.relabels.append(manifest["metadata"]["annotations"]["teleport.dev/kubernetes-cluster-name"])
            version = SecretVersion(current.uid, f"{current.resource_version}+")
            self.secrets[name] = {**self.secrets[name], "metadata": dict(manifest["metadata"])}
            self.versions[name] = version
            return Written(Outcome.UPDATED, version)

    def delete(self, namespace: str, name: str, known: SecretVersion) -> bool:
        """Deletes only the Secret we wrote: same uid (the real store also checks our annotation)."""
        with self._lock:
            current = self.versions.get(name)
            if current is None:
                return False
            if current.uid != known.uid:
                raise NotManagedError(
                    f"secret {namespace}/{name}: replaced since we wrote it; not deleting it"
                )
            del self.secrets[name], self.versions[name]
            return True

    def list_applications(self, namespace: str) -> list[Application]:
        with self._lock:
            self.application_lists.append(namespace)
            if namespace in self.refusing:
                raise self.refusing[namespace]
            return list(self.applications.get(namespace, ()))


class FakeSession:
    """What Teleport lists, and the certificates it mints (one hour, from the clock)."""

    def __init__(self, clusters: Mapping[str, Mapping[str, str]], clock: Clock) -> None:
        self.clusters = {name: KubeCluster(name, dict(labels)) for name, labels in clusters.items()}
        self.clock = clock
        self.listings = 0
        self.host_cas = [HOST_CA]  # what the next runs read as the trusted host CA certificates
        self.cert_pem = b"CERT"  # the certificate the next impersonations return

    @property
    def host_ca_pems(self) -> list[bytes]:
        return list(self.host_cas)

    def impersonate(self, ttl: timedelta) -> Identity:
        return Identity(
            self.cert_pem, b"KEY", self.clock() + ttl, "bot-argocd", "argocd", "example.teleport.sh"
        )

    def list_kube_clusters(
        self, identity: Identity, *, name: str | None = None, labels: Any = None
    ) -> list[KubeCluster]:
        self.listings += 1
        found = list(self.clusters.values())
        if name is not None:
            found = [c for c in found if c.name == name]
        if labels:
            found = [c for c in found if all(c.labels.get(k) == v for k, v in labels.items())]
        return found


def output(**settings: Any) -> OutputConfig:
    document = {
        "teleport": {"proxy_addr": "teleport.example.com", "join_token": "t"},
        "destination": {"eks": {"cluster_name": "argocd", "region": "eu-west-1"}},
        "outputs": [
            {
                "type": "kubernetes/argo-cd",
                "name": "main",
                "selectors": [{"labels": {"env": "prod"}}],
                "secret_namespace": "argocd",
                **settings,
            }
        ],
    }
    [out] = load_config(document, env={}).outputs
    return out


def reconciler(
    clusters: Mapping[str, Mapping[str, str]],
    clock: Clock | None = None,
) -> tuple[Reconciler, FakeState, FakeStore, FakeSession]:
    clock = clock or Clock()
    state, store, session = FakeState(), FakeStore(), FakeSession(clusters, clock)
    connection = Connection(session, "example.teleport.sh", KubeEndpoint("https://teleport.example.com:443"))
    rec = Reconciler(
        state=state,
        connect_teleport=lambda: connection,
        connect_destination=lambda destination: store,
        clock=clock,
        sleep=lambda seconds: clock.advance(timedelta(seconds=seconds)),
    )
    return rec, state, store, session
