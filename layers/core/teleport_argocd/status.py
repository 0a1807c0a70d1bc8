"""The status report an operator asks the reload function for: what is registered, and how runs go."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from teleport_argocd.config.types import OutputConfig
from teleport_argocd.model import Registration
from teleport_argocd.state import StateStore


def status_report(
    state: StateStore, outputs: Sequence[OutputConfig], teleport: Mapping[str, Any]
) -> dict[str, Any]:
    """Every registration, the lease and the last runs of each output, and the Teleport bot's facts."""
    return {
        "teleport": dict(teleport),
        "outputs": [
            {
                "output": output.name,
                "lease": state.lease_status(output.name),
                "registrations": [_registration(output, r) for r in state.registrations(output.name)],
                "runs": [_jsonable(r, drop="output") for r in state.runs(output.name, limit=5)],
            }
            for output in outputs
        ],
    }


def _registration(output: OutputConfig, reg: Registration) -> dict[str, Any]:
    """A registration, with when pruning will delete its Secret if it is waiting out the grace period."""
    out = _jsonable(reg)
    if output.prune.enabled and not reg.matches and reg.deleted_at is None and reg.unmatched_since:
        out["deletes_at"] = (reg.unmatched_since + output.prune.grace_period).isoformat()
    return out


def _jsonable(record: Any, drop: str = "") -> dict[str, Any]:
    """A state record's fields for a JSON response, times as ISO 8601, nested records as dicts."""
    out: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key == drop:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif hasattr(value, "__dataclass_fields__"):
            value = _jsonable(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[key] = value
    return out
