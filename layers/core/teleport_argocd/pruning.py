"""The pruning rule and its clock: when an unmatched registration's Secret is deleted, and when a
run must delete nothing. Pure and shared: the planner (`plan`) decides by it and the status report
shows it, so the status never promises a deletion the plan will not make."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from teleport_argocd.config.types import PruneConfig
from teleport_argocd.model import Absence, Registration


def grace_for(prune: PruneConfig, absence: Absence) -> timedelta:
    """A cluster deleted or deselected in Teleport waits `grace_period`; one that merely stopped
    being listed (or whose evidence is unknown) waits `vanished_grace_period`."""
    return (
        prune.grace_period
        if absence in (Absence.DELETED, Absence.DESELECTED)
        else prune.vanished_grace_period
    )


def absent_for(reg: Registration, now: datetime) -> timedelta:
    """The absence counted so far by runs that could have pruned (the clock's reading at `now`)."""
    running = now - reg.absence_seen if reg.absence_seen is not None else timedelta(0)
    return reg.absence_banked + max(running, timedelta(0))


def prune_due_at(prune: PruneConfig, reg: Registration, now: datetime) -> datetime | None:
    """The one pruning rule, for the planner and the status report: when a run that could prune
    will delete this registration's Secret, or None if none will as things stand.

    Only a Secret we wrote (its version stored, not relinquished), unmatched, not deleted yet,
    with pruning on. A paused clock counts from `now`: the next run that could prune resumes it.
    """
    if not prune.enabled or reg.matches or reg.deleted_at is not None or reg.version is None:
        return None
    if reg.relinquished_at is not None:  # the Secret there is someone else's: never ours to delete
        return None
    start = reg.absence_seen or now
    return start + grace_for(prune, reg.absence) - reg.absence_banked


def prune_clock(prune: PruneConfig, reg: Registration, now: datetime) -> dict[str, Any]:
    """An unmatched registration's evidence and clock, JSON-ready, for the run report and status;
    `held_by` names the Argo CD Applications that held its deletion at the last check, if any."""
    due = prune_due_at(prune, reg, now)
    clock: dict[str, Any] = {
        "evidence": reg.absence.value or Absence.VANISHED.value,
        "clock": "running" if reg.absence_seen is not None else "paused",
        "absent_seconds": int(absent_for(reg, now).total_seconds()),
        "grace_seconds": int(grace_for(prune, reg.absence).total_seconds()),
        "deletes_at": due.isoformat() if due is not None else None,
    }
    if reg.held_by:
        clock["held_by"] = list(reg.held_by)
    return clock


def prune_base(prune: PruneConfig, registered: Iterable[Registration], now: datetime) -> int:
    """The registrations the listing is measured against: the live ones and those pruned as
    vanished within `vanished_grace_period`, so pruning after a partial listing does not lower the
    bar for the next partial listing (a high-water mark that only confirmed departures lower)."""
    return sum(
        1
        for r in registered
        if r.deleted_at is None
        or (
            r.absence in (Absence.NONE, Absence.VANISHED) and now - r.deleted_at < prune.vanished_grace_period
        )
    )


def prune_guard(prune: PruneConfig, complete: bool, listed: int, base: int) -> str | None:
    """Why this run must prune nothing, or None: a listing that failed in part, or one far shorter
    than the registry, is more likely a Teleport outage or an RBAC change than clusters leaving,
    and must not empty Argo CD."""
    if not complete:
        return "pruning held back: the listing had errors, so an absence proves nothing this run"
    share = prune.min_listed_share
    if base and listed < share * base:
        return (
            f"pruning held back: Teleport listed {listed} cluster(s) against {base} registered "
            f"(prune.min_listed_share {share})"
        )
    return None


def delete_budget(prune: PruneConfig, base: int) -> int:
    limit = prune.max_deletes_per_run
    if isinstance(limit, int):
        return limit
    return max(1, math.floor(limit * base))
