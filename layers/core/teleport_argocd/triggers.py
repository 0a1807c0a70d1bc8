"""Which Teleport audit events start a run, and how much of a run they start.

The vocabulary lives here so the ingest function (what is worth putting on the bus), the
template's rule (what reaches the audit function) and the audit function (what it does with
it) cannot disagree; a test checks the template against `REACTED_EVENTS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from teleport_argocd.model import KubeCluster

if TYPE_CHECKING:  # the ingest function needs only the vocabulary; keep its cold start free of config
    from teleport_argocd.config.types import OutputConfig

# Events about one dynamic `kube_cluster` resource (T3010I/T3011I/T3012I): a targeted run.
KUBE_EVENTS = frozenset({"kube.create", "kube.update", "kube.delete"})
# Changes to a role or a bot (T9000I-T9002I, TB001I-TB003I): a full run, but only when the role
# or bot is ours (see `concerns_bot`).
ROLE_EVENTS = frozenset({"role.created", "role.updated", "role.deleted"})
BOT_EVENTS = frozenset({"bot.create", "bot.update", "bot.delete"})
REACTED_EVENTS = KUBE_EVENTS | ROLE_EVENTS | BOT_EVENTS


def concerns_bot(event_type: str, detail: Mapping[str, Any], bot_name: str, roles: Iterable[str]) -> bool:
    """Whether a role or bot event names our bot, its role `bot-<name>`, or a role it impersonates."""
    name = str(detail.get("name", ""))
    if event_type in BOT_EVENTS:
        return name == bot_name
    if event_type in ROLE_EVENTS:
        return name == f"bot-{bot_name}" or name in set(roles)
    return False


def kube_event_outputs(
    outputs: Iterable[OutputConfig],
    event_type: str,
    detail: Mapping[str, Any],
    registered: Callable[[OutputConfig, str], bool],
) -> list[OutputConfig]:
    """The outputs a `kube.*` event concerns: those whose selectors could pick the cluster (by
    name, or by the static labels the event carries; the listing has the final word), and those
    that have it registered, which must hear that it changed or went away."""
    from teleport_argocd.selectors import matches  # see the TYPE_CHECKING import above

    name = str(detail.get("name", ""))
    labels = detail.get("kube_labels") or {}
    cluster = KubeCluster(name=name, labels={str(k): str(v) for k, v in dict(labels).items()})
    return [
        output
        for output in outputs
        if (event_type != "kube.delete" and any(matches(s, cluster) for s in output.selectors))
        or registered(output, name)
    ]
