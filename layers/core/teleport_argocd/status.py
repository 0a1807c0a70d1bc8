"""The status report an operator asks the reload function for: what is registered, and how runs go."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from teleport_argocd.config.types import OutputConfig
from teleport_argocd.model import Registration
from teleport_argocd.pruning import prune_clock
from teleport_argocd.state import StateStore


def status_report(
    state: StateStore,
    outputs: Sequence[OutputConfig],
    teleport: Mapping[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every registration, the lease and the last runs of each output, and the Teleport bot's facts."""
    now = now or datetime.now(UTC)
    return {
        "teleport": dict(teleport),
        "outputs": [
            {
                "output": output.name,
                "lease": state.lease_status(output.name),
                "registrations": [
                    registration_status(output, r, now) for r in state.registrations(output.name)
                ],
                "runs": [_jsonable(r, drop="output") for r in state.runs(output.name, limit=5)],
            }
            for output in outputs
        ],
    }


def registration_status(output: OutputConfig, reg: Registration, now: datetime) -> dict[str, Any]:
    """A registration, with its pruning evidence and clock when it waits out a grace period, and
    `deletes_at` by the same rule the planner uses (`pruning.prune_due_at`), so it promises nothing
    a run will not do. A registration whose deletion Argo CD Applications held at the last check
    names them (`prune.held_by`) and promises no `deletes_at`: it goes once none targets it. The
    promise is as of the last check: an Application created since holds the deletion too."""
    out = _jsonable(reg)
    out["held_by"] = list(reg.held_by)
    if output.prune.enabled and not reg.matches and reg.deleted_at is None:
        clock = prune_clock(output.prune, reg, now)
        out["prune"] = clock
        if clock["deletes_at"] is not None and not reg.held_by:
            out["deletes_at"] = clock["deletes_at"]
    return out


def _jsonable(record: Any, drop: str = "") -> dict[str, Any]:
    """A state record's fields for a JSON response, times as ISO 8601, nested records as dicts."""
    out: dict[str, Any] = {}
    for key, value in record.__dict__.items():
        if key == drop:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, timedelta):
            value = value.total_seconds()
        elif hasattr(value, "__dataclass_fields__"):
            value = _jsonable(value)
        elif isinstance(value, Mapping):
            value = dict(value)
        out[key] = value
    return out
