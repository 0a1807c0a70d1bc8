"""The event policy: which runs a Teleport audit event starts, and how much each covers.

One pure function of the event and the facts it needs, which `runtime` fetches: the outputs, their
registrations (for `kube.*`) and our bot (for role and bot events). The vocabulary of events is
`teleport_argocd.audit`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from teleport_argocd.audit import BOT_EVENTS, KUBE_EVENTS, ROLE_EVENTS, AuditEvent
from teleport_argocd.config.types import OutputConfig
from teleport_argocd.model import KubeCluster, Registration
from teleport_argocd.plan import Renewal, Scope
from teleport_argocd.reconcile import Trigger
from teleport_argocd.selectors import matches


@dataclass(frozen=True)
class Bot:
    """Our bot as Teleport knows it: its name and the roles it impersonates."""

    name: str
    roles: frozenset[str]


def runs_for(
    event: AuditEvent,
    outputs: Sequence[OutputConfig],
    registrations: Mapping[str, Sequence[Registration]],
    bot: Bot | None,
    listing_wait: timedelta,
) -> tuple[list[OutputConfig], Trigger]:
    """The outputs an audit event runs and the trigger they run with.

    `kube.*`: a targeted run of the named cluster in every output that could select it or has it
    registered (`registrations`, by output name), waiting up to `listing_wait` for Teleport to list
    it, or not at all when a `kube.delete` already processed is newer than the event. Role and bot
    events: a full run of every output when they concern `bot`, none otherwise (or without a bot).
    """
    reason = f"{event.type} {event.name} ({event.uid})"
    if event.type in KUBE_EVENTS:
        removed = event.type == "kube.delete"
        # What is new, changed or failed is written; an unchanged Secret is not rewritten, so its
        # `config` (and Argo CD's cache of the cluster) changes only with a new certificate or CA.
        scope = Scope(renew=Renewal.NONE, clusters=frozenset({event.name}), removed=removed)
        concerned = kube_event_outputs(outputs, event, registrations)
        happened = event.happened
        wait = listing_wait
        if (
            not removed
            and happened is not None
            and any(_removed_since(registrations.get(o.name, ()), event.name, happened) for o in concerned)
        ):
            # Older than a kube.delete already processed (at-least-once delivery keeps no order):
            # what Teleport lists now decides, without waiting for a cluster that may be gone.
            wait = timedelta(0)
        return concerned, Trigger("audit", reason, scope, wait_for_listing=wait)
    trigger = Trigger("audit", reason, Scope(renew=Renewal.ALL))
    if bot is not None and concerns_bot(event, bot.name, bot.roles):
        return list(outputs), trigger
    return [], trigger


def concerns_bot(event: AuditEvent, bot_name: str, roles: Iterable[str]) -> bool:
    """Whether a role or bot event names our bot, its role `bot-<name>`, or a role it impersonates."""
    if event.type in BOT_EVENTS:
        return event.name == bot_name
    if event.type in ROLE_EVENTS:
        return event.name == f"bot-{bot_name}" or event.name in set(roles)
    return False


# Changes that can end a refusal of the bot: it made again (`tctl bots add` after `tctl bots rm`), its
# roles or settings changed, its own role `bot-<name>` written again.
_HEALING_EVENTS = frozenset({"bot.create", "bot.update", "role.created", "role.updated"})


def may_heal(event: AuditEvent, bot_name: str) -> bool:
    """Whether an event may have ended a recorded refusal of our bot, so it is worth a join at once
    rather than after the refusal's backoff. `bot_name` is the bot as this process or the recorded
    refusal knows it; without a name (a cold process whose first join was refused), any bot created
    or updated may be ours: one join per such rare event is cheaper than an hour's wait."""
    if event.type not in _HEALING_EVENTS:
        return False
    if bot_name:
        return concerns_bot(event, bot_name, ())
    return event.type in BOT_EVENTS


def kube_event_outputs(
    outputs: Iterable[OutputConfig],
    event: AuditEvent,
    registrations: Mapping[str, Sequence[Registration]],
) -> list[OutputConfig]:
    """The outputs a `kube.*` event concerns: those whose selectors could pick the cluster (by
    name, or by the static labels the event carries; the listing has the final word), and those
    that have it registered and matching, which must hear that it changed or went away."""
    cluster = KubeCluster(name=event.name, labels=dict(event.kube_labels))
    return [
        output
        for output in outputs
        if (event.type != "kube.delete" and any(matches(s, cluster) for s in output.selectors))
        or any(r.kube_cluster == event.name and r.matches for r in registrations.get(output.name, ()))
    ]


def _removed_since(registrations: Iterable[Registration], kube_cluster: str, happened: datetime) -> bool:
    """Whether the cluster was marked unmatched after `happened`: the event is older than that."""
    return any(
        r.kube_cluster == kube_cluster
        and not r.matches
        and r.unmatched_since is not None
        and r.unmatched_since > happened
        for r in registrations
    )
