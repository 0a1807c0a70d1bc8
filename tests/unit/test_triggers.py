"""The event policy (`triggers.runs_for`): which outputs an audit event runs, and how much of each.

A table of (event, registrations, bot) → (outputs run, scope, wait); no Teleport, no DynamoDB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from teleport_argocd.audit import AuditEvent
from teleport_argocd.model import Registration
from teleport_argocd.plan import Renewal
from teleport_argocd.triggers import Bot, may_heal, runs_for

from .fakes import output

WAIT = timedelta(seconds=10)
EMITTED = "2026-11-21T10:15:42.318Z"
BEFORE = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
AFTER = datetime(2026, 11, 21, 11, 0, tzinfo=UTC)
BOT = Bot(name="argocd", roles=frozenset({"argocd-clusters"}))
OUTPUTS = [
    output(name="prod", selectors=[{"labels": {"env": "prod"}}]),
    output(name="named", selectors=[{"name": "special"}]),
]


def event(kind: str, name: str, labels: dict[str, str] | None = None, time: str = EMITTED) -> AuditEvent:
    return AuditEvent.parse(
        {"event": kind, "uid": "u-1", "time": time, "name": name, "kube_labels": labels or {}}
    )


def registered(
    output: str, cluster: str, *, matches: bool = True, unmatched_since: datetime | None = None
) -> Registration:
    return Registration(
        output=output,
        teleport_cluster="root",
        kube_cluster=cluster,
        matches=matches,
        unmatched_since=unmatched_since,
    )


@dataclass(frozen=True)
class Case:
    event: AuditEvent
    runs: list[str]
    registrations: dict[str, list[Registration]] = field(default_factory=dict)
    bot: Bot | None = None
    wait: timedelta = timedelta(0)
    renew: Renewal = Renewal.ALL
    clusters: frozenset[str] | None = None
    removed: bool = False


CASES = {
    # kube.create and kube.update: what is new, changed or failed is written, nothing else renewed.
    "kube.create selected by labels": Case(
        event("kube.create", "eu-1", {"env": "prod"}),
        ["prod"],
        wait=WAIT,
        clusters=frozenset({"eu-1"}),
        renew=Renewal.NONE,
    ),
    "kube.create selected by name": Case(
        event("kube.create", "special"),
        ["named"],
        wait=WAIT,
        clusters=frozenset({"special"}),
        renew=Renewal.NONE,
    ),
    "kube.create no output selects": Case(
        event("kube.create", "qa-1", {"env": "qa"}),
        [],
        wait=WAIT,
        clusters=frozenset({"qa-1"}),
        renew=Renewal.NONE,
    ),
    "kube.update away from the labels, still registered": Case(
        event("kube.update", "eu-1", {"env": "qa"}),
        ["prod"],
        {"prod": [registered("prod", "eu-1")]},
        wait=WAIT,
        clusters=frozenset({"eu-1"}),
        renew=Renewal.NONE,
    ),
    "kube.update registered but already unmatched": Case(
        event("kube.update", "eu-1", {"env": "qa"}),
        [],
        {"prod": [registered("prod", "eu-1", matches=False, unmatched_since=BEFORE)]},
        wait=WAIT,
        clusters=frozenset({"eu-1"}),
        renew=Renewal.NONE,
    ),
    # kube.delete: only the outputs that have it; nothing to renew, nothing to wait for.
    "kube.delete of a registered cluster": Case(
        event("kube.delete", "eu-1", {"env": "prod"}),
        ["prod"],
        {"prod": [registered("prod", "eu-1")]},
        wait=WAIT,
        renew=Renewal.NONE,
        clusters=frozenset({"eu-1"}),
        removed=True,
    ),
    "kube.delete of a cluster never registered": Case(
        event("kube.delete", "eu-1", {"env": "prod"}),
        [],
        wait=WAIT,
        renew=Renewal.NONE,
        clusters=frozenset({"eu-1"}),
        removed=True,
    ),
    # Delivery keeps no order: a create older than a delete already processed is not waited for.
    "kube.create older than a processed kube.delete": Case(
        event("kube.create", "eu-1", {"env": "prod"}),
        ["prod"],
        {"prod": [registered("prod", "eu-1", matches=False, unmatched_since=AFTER)]},
        wait=timedelta(0),
        clusters=frozenset({"eu-1"}),
        renew=Renewal.NONE,
    ),
    "kube.create newer than a processed kube.delete": Case(
        event("kube.create", "eu-1", {"env": "prod"}),
        ["prod"],
        {"prod": [registered("prod", "eu-1", matches=False, unmatched_since=BEFORE)]},
        wait=WAIT,
        clusters=frozenset({"eu-1"}),
        renew=Renewal.NONE,
    ),
    "kube.create with an unreadable time waits": Case(
        event("kube.create", "eu-1", {"env": "prod"}, time="yesterday"),
        ["prod"],
        {"prod": [registered("prod", "eu-1", matches=False, unmatched_since=AFTER)]},
        wait=WAIT,
        clusters=frozenset({"eu-1"}),
        renew=Renewal.NONE,
    ),
    # Role and bot events: everything, only when they are about our bot.
    "our bot": Case(event("bot.update", "argocd"), ["prod", "named"], bot=BOT),
    "another bot": Case(event("bot.update", "other"), [], bot=BOT),
    "our bot's role": Case(event("role.created", "bot-argocd"), ["prod", "named"], bot=BOT),
    "a role our bot impersonates": Case(event("role.updated", "argocd-clusters"), ["prod", "named"], bot=BOT),
    "someone else's role": Case(event("role.deleted", "admins"), [], bot=BOT),
    "a role event without a bot to compare": Case(event("role.updated", "argocd-clusters"), []),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_runs_for(case: Case) -> None:
    outputs, trigger = runs_for(case.event, OUTPUTS, case.registrations, case.bot, WAIT)

    assert [o.name for o in outputs] == case.runs
    assert trigger.kind == "audit"
    assert trigger.reason == f"{case.event.type} {case.event.name} (u-1)"
    assert trigger.wait_for_listing == case.wait
    assert (trigger.scope.renew, trigger.scope.clusters, trigger.scope.removed) == (
        case.renew,
        case.clusters,
        case.removed,
    )


@pytest.mark.parametrize(
    ("kind", "name", "bot_name", "heals"),
    [
        ("bot.create", "argocd", "argocd", True),  # `tctl bots add` after `tctl bots rm`
        ("bot.update", "argocd", "argocd", True),
        ("role.created", "bot-argocd", "argocd", True),  # the bot's own role written again
        ("role.updated", "bot-argocd", "argocd", True),
        ("bot.create", "another-bot", "argocd", False),
        ("role.updated", "someone-elses-role", "argocd", False),
        ("bot.delete", "argocd", "argocd", False),  # a deletion ends no refusal
        ("role.deleted", "bot-argocd", "argocd", False),
        ("kube.create", "argocd", "argocd", False),
        # A cold process whose first join was refused knows no name: any bot made or changed may be ours.
        ("bot.create", "another-bot", "", True),
        ("bot.update", "another-bot", "", True),
        ("role.updated", "bot-argocd", "", False),
    ],
)
def test_may_heal(kind: str, name: str, bot_name: str, heals: bool) -> None:
    assert may_heal(event(kind, name), bot_name) is heals
