"""What a run that may prune looks up beyond its listing, for the planner to weigh: which unselected
clusters Teleport still lists by name (deselected, not vanished), and which Argo CD Applications
still target the clusters due for deletion (the Applications guard)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from teleport_argocd.applications import Application, ApplicationCheck, Target, check
from teleport_argocd.argocd import argocd_cluster_name
from teleport_argocd.config.types import OutputConfig
from teleport_argocd.errors import TeleportArgoCDError
from teleport_argocd.model import Absence, KubeCluster, Registration
from teleport_argocd.plan import Scope
from teleport_argocd.ports import SecretStoreLike

logger = logging.getLogger(__name__)

# At most this many unselected clusters are looked up by name in one run, to tell a deselected
# cluster from one that vanished; the rest keep their evidence (vanished: the longer grace).
MAX_LISTED_CHECKS = 50


def still_listed(
    output: OutputConfig,
    scope: Scope,
    teleport_cluster: str,
    registrations: Sequence[Registration],
    *,
    picked: set[str] | None,
    lookup: Callable[[str], Sequence[KubeCluster]],
) -> frozenset[str]:
    """Which registered clusters the selectors no longer pick (`picked`: those they did, None when
    the listing had errors) Teleport still lists by name (`lookup`): they were deselected, not
    lost. Only for a run that may prune, and only where it could change the evidence; a lookup
    that fails proves nothing, so that cluster stays `vanished`."""
    if not output.prune.enabled or scope.clusters is not None or picked is None:
        return frozenset()
    unsure = sorted(
        r.kube_cluster
        for r in registrations
        if r.teleport_cluster == teleport_cluster
        and r.deleted_at is None
        and r.kube_cluster not in picked
        and scope.covers(r.kube_cluster)
        and r.absence.strength < Absence.DESELECTED.strength
    )
    found: set[str] = set()
    for name in unsure[:MAX_LISTED_CHECKS]:
        try:
            listed = lookup(name)
        except TeleportArgoCDError as exc:
            logger.warning("output %s: could not look up cluster %s: %s", output.name, name, exc)
            continue
        if any(c.name == name for c in listed):
            found.add(name)
    return frozenset(found)


def applications(
    output: OutputConfig,
    teleport_cluster: str,
    registrations: Sequence[Registration],
    due: frozenset[str],
    connect: Callable[[], SecretStoreLike],
) -> ApplicationCheck:
    """The Applications that still target each cluster due for deletion: one list per namespace
    searched (`application_search`), made only when something is due. A destination that cannot
    be reached or a list refused holds every deletion this run: none is made without the check."""
    targets = {
        r.kube_cluster: Target(
            r.server,
            r.cluster_name
            or argocd_cluster_name(output, teleport_cluster, KubeCluster(r.kube_cluster, r.labels))
            or "",
        )
        for r in registrations
        if r.teleport_cluster == teleport_cluster and r.kube_cluster in due
    }
    found: list[Application] = []
    try:
        store = connect()
        for namespace in output.application_search:
            found += store.list_applications(namespace)
    except TeleportArgoCDError as exc:
        logger.warning("output %s: Argo CD Applications could not be listed: %s", output.name, exc)
        return ApplicationCheck(
            failed=f"pruning held back: Argo CD Applications could not be listed ({exc}), and no "
            "Secret is deleted while Applications may still target its cluster"
        )
    return check(found, targets)
