"""Run records (`sk = "run#<start>#<run id>"`): newest first is a reverse Query; a TTL expires them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from teleport_argocd.state.encoding import MAX_ERROR, epoch, iso, key, n, s, seconds, truncate
from teleport_argocd.state.table import Table

_MAX_RUN_ERRORS = 50


@dataclass(frozen=True)
class RunRecord:
    """The summary of one reconcile run of one output."""

    output: str
    run_id: str
    trigger: str
    started: datetime
    finished: datetime
    dry_run: bool
    counts: Mapping[str, int]
    errors: tuple[str, ...]


class Runs(Table):
    """The run records of each output."""

    def put_run(self, record: RunRecord, *, retention: timedelta = timedelta(days=14)) -> None:
        """Store a run's summary; DynamoDB's TTL removes it `retention` after it finished."""
        self._write(
            "put_item",
            Item={
                **key(record.output, f"run#{iso(record.started)}#{record.run_id}"),
                "run_id": s(record.run_id),
                "trigger": s(record.trigger),
                "started": s(iso(record.started)),
                "finished": s(iso(record.finished)),
                "duration_seconds": n(seconds(record.finished - record.started)),
                "dry_run": {"BOOL": record.dry_run},
                "counts": {"M": {k: n(v) for k, v in record.counts.items()}},
                "errors": {"L": [s(truncate(e, MAX_ERROR)) for e in record.errors[:_MAX_RUN_ERRORS]]},
                "expires_at": n(int(epoch(record.finished + retention))),
            },
        )

    def runs(self, output: str, *, limit: int = 10) -> list[RunRecord]:
        """The newest `limit` unexpired runs, newest first."""
        if limit < 1:
            return []
        items = self._query(
            output,
            "run#",
            ScanIndexForward=False,
            Limit=limit,
            FilterExpression="expires_at > :now",
            ExpressionAttributeValues={":now": n(int(epoch(self._clock())))},
        )
        return [
            RunRecord(
                output=output,
                run_id=item["run_id"]["S"],
                trigger=item["trigger"]["S"],
                started=datetime.fromisoformat(item["started"]["S"]),
                finished=datetime.fromisoformat(item["finished"]["S"]),
                dry_run=item["dry_run"]["BOOL"],
                counts={k: int(v["N"]) for k, v in item["counts"]["M"].items()},
                errors=tuple(e["S"] for e in item["errors"]["L"]),
            )
            for item in islice(items, limit)
        ]
