"""What one output's run did: frozen, built once at the end of a run (or of a pass) from its outcomes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from teleport_argocd.model import Outcome

# A run's status: `queued` when another run holds the lease and will go round once more, `idle`
# when there was nothing to do (nothing written, not even the lease).
COMPLETED, FAILED, QUEUED, IDLE = "completed", "failed", "queued", "idle"


@dataclass(frozen=True)
class ClusterResult:
    """The outcome for one kube cluster in one run."""

    kube_cluster: str
    action: Outcome
    reason: str = ""
    secret_namespace: str = ""
    secret_name: str = ""
    server: str = ""
    error: str | None = None
    prune: Mapping[str, Any] | None = None  # an unmatched cluster's evidence and grace clock

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "prune" or v is not None}
        out["action"] = self.action.value
        return out


@dataclass(frozen=True)
class OutputReport:
    """The outcome of one output's run.

    `status` is completed, failed, queued or idle (see `run_status`). `retriable` says a later
    attempt may succeed where this one could not (a cluster not listed yet).
    """

    output: str
    status: str
    trigger: str
    run_id: str = ""
    shard: str = ""
    dry_run: bool = False
    passes: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    cert_expires: datetime | None = None
    retriable: bool = False
    clusters: tuple[ClusterResult, ...] = ()
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def count(self, *outcomes: Outcome) -> int:
        return sum(1 for c in self.clusters if c.action in outcomes)

    @property
    def counts(self) -> dict[str, int]:
        """The run's numbers, as the run record keeps them and the handlers return them."""
        o = Outcome
        return {
            "selected": self.count(
                o.CREATED, o.UPDATED, o.UNCHANGED, o.FAILED, o.WOULD_CREATE, o.WOULD_UPDATE
            ),
            "written": self.count(o.CREATED, o.UPDATED),
            o.CREATED.value: self.count(o.CREATED),
            o.UPDATED.value: self.count(o.UPDATED),
            o.UNCHANGED.value: self.count(o.UNCHANGED),
            o.FAILED.value: self.count(o.FAILED),
            o.UNMATCHED.value: self.count(o.UNMATCHED, o.WOULD_UNMATCH),
            o.DELETED.value: self.count(o.DELETED, o.WOULD_DELETE),
            o.WAITING.value: self.count(o.WAITING),
            o.RELINQUISHED.value: self.count(o.RELINQUISHED),
        }

    def to_dict(self, *, unchanged: bool = False) -> dict[str, Any]:
        """JSON-ready; unchanged clusters are counted but listed only when asked."""
        return {
            "output": self.output,
            "status": self.status,
            "trigger": self.trigger,
            "run_id": self.run_id,
            "shard": self.shard,
            "dry_run": self.dry_run,
            "passes": self.passes,
            "started": _iso(self.started),
            "finished": _iso(self.finished),
            "cert_expires": _iso(self.cert_expires),
            "counts": self.counts,
            "clusters": [c.to_dict() for c in self.clusters if unchanged or c.action != Outcome.UNCHANGED],
            "errors": list(self.errors),
            "notes": list(self.notes),
        }


def run_status(clusters: Iterable[ClusterResult], errors: Sequence[str], otherwise: str = COMPLETED) -> str:
    """Failed when a cluster or the run failed; otherwise `otherwise` (completed or idle)."""
    if errors or any(c.action == Outcome.FAILED for c in clusters):
        return FAILED
    return otherwise


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None
