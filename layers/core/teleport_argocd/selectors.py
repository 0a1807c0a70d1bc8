"""Which Teleport Kubernetes clusters an output's selectors match, with tbot's semantics.

No I/O: the caller passes a `fetch` function that lists clusters from Teleport. Results are
re-checked here, so a server that filters loosely (or not at all) still gives tbot's answer.
One difference from tbot, on purpose: a name selector that cannot be resolved is reported in
`Selection.errors` and the other selectors still run, where tbot fails the whole run. A failing
`fetch` still aborts everything, so a listing outage can never look like "no clusters".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from teleport_argocd.config.types import Selector
from teleport_argocd.errors import SelectorError
from teleport_argocd.model import KubeCluster

# Label the Teleport Discovery service puts on clusters it enrolls, holding the cloud's own name.
DISCOVERED_NAME_LABEL = "teleport.internal/discovered-name"


@dataclass(frozen=True)
class ClusterQuery:
    """What to ask Teleport for: clusters named `name` (or discovered as `name`), or with all `labels`."""

    name: str | None = None
    labels: Mapping[str, str] | None = None


Fetch = Callable[[ClusterQuery], Sequence[KubeCluster]]


@dataclass(frozen=True)
class Selection:
    """The matched clusters, unique by name in selector order, and the selectors that failed."""

    clusters: tuple[KubeCluster, ...]
    errors: tuple[SelectorError, ...]


def select(selectors: Sequence[Selector], fetch: Fetch) -> Selection:
    """Evaluate `selectors` in order and union their matches; exceptions from `fetch` propagate."""
    clusters: dict[str, KubeCluster] = {}
    errors: list[SelectorError] = []
    for selector in selectors:
        if selector.name is not None:
            try:
                found = [_resolve_name(selector, selector.name, fetch(ClusterQuery(name=selector.name)))]
            except SelectorError as exc:
                errors.append(exc)
                continue
        else:
            candidates = fetch(ClusterQuery(labels=dict(selector.labels)))
            found = [cluster for cluster in candidates if matches(selector, cluster)]
        for cluster in found:
            clusters.setdefault(cluster.name, cluster)
    return Selection(tuple(clusters.values()), tuple(errors))


def matches(selector: Selector, cluster: KubeCluster) -> bool:
    """Whether `cluster` is a candidate for `selector`, judged on the cluster alone.

    Label selectors: every label present with exactly that value. Name selectors: the exact name
    or the discovered name; `select` only takes a discovered-name match when it is unambiguous.
    """
    if selector.name is not None:
        return selector.name in (cluster.name, cluster.labels.get(DISCOVERED_NAME_LABEL))
    return all(cluster.labels.get(key) == value for key, value in selector.labels.items())


def _resolve_name(selector: Selector, name: str, candidates: Sequence[KubeCluster]) -> KubeCluster:
    """tbot's rule: the exact name wins, else the one cluster whose discovered name it is."""
    matching = {c.name: c for c in candidates if matches(selector, c)}
    if name in matching:
        return matching[name]
    if len(matching) == 1:
        return next(iter(matching.values()))
    if not matching:
        raise SelectorError(str(selector), f'kubernetes cluster "{name}" not found')
    raise SelectorError(
        str(selector),
        f'"{name}" matches multiple auto-discovered kubernetes clusters: {", ".join(sorted(matching))};'
        " use the full cluster name the Teleport Discovery service generated",
    )
