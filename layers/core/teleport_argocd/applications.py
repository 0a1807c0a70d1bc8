"""The Applications guard for pruning: a cluster Argo CD Applications still deploy to keeps its Secret.

Argo CD resolves an Application's `spec.destination` to a cluster either by `server`, compared with
the cluster Secret's `server` data trimmed of trailing slashes, or by `name`, compared with the
Secret's `name` data (argoproj/argo-cd: util/argo GetDestinationCluster, util/db SecretToCluster and
GetClusterServersByName). So an Application naming our Secret's server URL or its Argo CD cluster name
deploys through that Secret. Every listed Application counts, whatever its health or sync state, and
one being deleted too: its resources finalizer needs the cluster to remove what it deployed (with the
Secret gone it stays stuck deleting, argo-cd#27383).

Pure: the Applications come from the destination (`destination.secrets.SecretStore.list_applications`),
the targets from the registry; `plan` turns the result into held deletions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Application:
    """An Argo CD Application, reduced to who it is and the cluster it deploys to."""

    namespace: str
    name: str
    server: str = ""
    cluster_name: str = ""

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"

    def targets(self, server: str, cluster_name: str) -> bool:
        """Whether Argo CD would send this Application to the cluster Secret with this server and name."""
        if self.server and server and self.server.rstrip("/") == server.rstrip("/"):
            return True
        return bool(self.cluster_name) and self.cluster_name == cluster_name


def from_manifest(item: Any) -> Application:
    """An Application as the API lists it. ValueError for one whose name or destination cannot be
    read: an Application we cannot read might target any cluster."""
    meta = item.get("metadata") if isinstance(item, Mapping) else None
    spec = item.get("spec") if isinstance(item, Mapping) else None
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        raise ValueError("an Application without a readable name")
    where = f"{meta.get('namespace')}/{meta['name']}"
    destination = spec.get("destination") if isinstance(spec, Mapping) else None
    if not isinstance(destination, Mapping):
        raise ValueError(f"Application {where} has no readable spec.destination")
    server, name = destination.get("server") or "", destination.get("name") or ""
    if not isinstance(server, str) or not isinstance(name, str):
        raise ValueError(f"Application {where}: spec.destination.server and .name must be strings")
    return Application(str(meta.get("namespace") or ""), meta["name"], server, name)


@dataclass(frozen=True)
class Target:
    """A cluster due for deletion as Argo CD knows it: its Secret's `server` and `name` ("" if unknown)."""

    server: str
    cluster_name: str


@dataclass(frozen=True)
class ApplicationCheck:
    """What one run's guard found for the clusters due for deletion.

    `holders`: each cluster's Applications (namespace/name) that still target it. `unknown`: clusters
    whose Argo CD cluster name is not known, so Applications naming it cannot be ruled out. `failed`:
    why the Applications could not all be listed; then no deletion is safe this run.
    """

    holders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unknown: frozenset[str] = frozenset()
    failed: str | None = None

    def hold(self, kube_cluster: str) -> str | None:
        """Why this cluster's Secret must stay this run, or None if it may be deleted."""
        if self.failed:
            return "held: Argo CD Applications could not be listed"
        if held := self.holders.get(kube_cluster):
            return f"held by Argo CD Application(s) {', '.join(held)}"
        if kube_cluster in self.unknown:
            return "held: its Argo CD cluster name is unknown, so Applications naming it cannot be ruled out"
        return None


def check(applications: Iterable[Application], targets: Mapping[str, Target]) -> ApplicationCheck:
    """The Applications holding each target, sorted; clusters no Application targets are absent."""
    apps = list(applications)
    holders = {
        cluster: tuple(sorted(str(a) for a in apps if a.targets(t.server, t.cluster_name)))
        for cluster, t in targets.items()
    }
    return ApplicationCheck(
        holders={c: h for c, h in holders.items() if h},
        unknown=frozenset(c for c, t in targets.items() if not t.cluster_name),
    )
