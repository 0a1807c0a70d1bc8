"""The state table, seen from one output's reconcile: its lease, registrations and run records."""

from __future__ import annotations

from teleport_argocd.state.leases import Leases
from teleport_argocd.state.runs import Runs


class StateStore(Leases, Runs):
    """The state table, seen from one output's reconcile.

    Every method is one or a few requests; conditional writes, not read-modify-write, keep the
    lease correct when runs race.
    """
