"""What a run needs from the world, as protocols: a joined Teleport session, the state table and
a destination. The real ones live in `teleport`, `state` and `destination`; the unit tests pass
fakes (tests/unit/fakes.py), so the run's logic is tested without any of them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any, Protocol

from teleport_argocd.applications import Application
from teleport_argocd.model import Identity, KubeCluster, Outcome, Registration, SecretVersion
from teleport_argocd.state import Lease, RunRecord


class TeleportSessionLike(Protocol):
    """What a run needs from a joined Teleport session (teleport_argocd.teleport.TeleportSession)."""

    @property
    def host_ca_pems(self) -> list[bytes]: ...

    def impersonate(self, ttl: timedelta) -> Identity: ...

    def list_kube_clusters(
        self, identity: Identity, *, name: str | None = None, labels: Any = None
    ) -> list[KubeCluster]: ...


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


class WriteResultLike(Protocol):
    @property
    def action(self) -> Outcome: ...

    @property
    def version(self) -> SecretVersion: ...


class SecretStoreLike(Protocol):
    """What a run needs from a destination (destination.secrets.SecretStore); thread-safe."""

    def write(self, manifest: dict[str, Any], known: SecretVersion | None) -> WriteResultLike: ...

    def relabel(self, manifest: dict[str, Any], known: SecretVersion) -> WriteResultLike | None: ...

    def delete(self, namespace: str, name: str, known: SecretVersion) -> bool: ...

    def list_applications(self, namespace: str) -> list[Application]: ...
