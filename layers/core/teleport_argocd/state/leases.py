"""The per-output lease (`sk = "lease"`, or `"lease#<i>/<n>"` for one shard of a split output).

It serializes the runs of one output and remembers triggers that arrive during a run, so none is
lost. Every method is one or a few single-item requests; conditional writes, not
read-modify-write, keep the lease correct when runs race. Releasing the output's own lease stamps
it, which is what tells a warm process its cached registry is still current (`registry`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from teleport_argocd.errors import StateError
from teleport_argocd.state.encoding import (
    FALSE,
    LEASE,
    TRUE,
    epoch,
    from_epoch,
    iso,
    key,
    lease_sk,
    n,
    s,
    seconds,
    string,
    time_of,
    truncate,
)
from teleport_argocd.state.registry import Registry

_MAX_REASON = 200
_MAX_REASONS = 10
# Each retry means the lease changed hands between two of our writes; more is a fault.
_ACQUIRE_ATTEMPTS = 10


@dataclass(frozen=True)
class Lease:
    """The right to run one output until `expires_at`, held by `run_id`.

    `taken_over` (from a holder presumed dead) and `previous_finished` (when the last run
    released it) tell a run whether the registrations it read before taking the lease may have
    changed since: every registration is written under the lease.
    """

    output: str
    run_id: str
    expires_at: datetime
    taken_over: bool = False
    previous_finished: datetime | None = None
    shard: str = ""


class Leases(Registry):
    """The lease of each output (and shard); a release hands the registry read on to the next run."""

    def try_acquire(
        self, output: str, *, run_id: str, duration: timedelta, reason: str, shard: str = ""
    ) -> Lease | None:
        """Take the lease if it is free or expired; otherwise flag a rerun for the holder and return None.

        Taking the lease clears `pending`: the run starting now covers earlier triggers. A
        lease this run already holds counts as taken, so botocore's retry of an acquire whose
        answer was lost after it committed does not find the run locked out by itself.
        """
        reason = truncate(reason or "unspecified", _MAX_REASON)
        for _ in range(_ACQUIRE_ATTEMPTS):
            now = self._clock()
            expires = now + duration
            old = self._write_returning_old(
                "update_item",
                Key=key(output, lease_sk(shard)),
                UpdateExpression=(
                    "SET holder = :run, lease_expires = :expires, lease_seconds = :seconds,"
                    " acquired = :at, reason = :reason, pending = :false"
                    " REMOVE pending_reasons, pending_since"
                ),
                ConditionExpression="attribute_not_exists(holder) OR lease_expires < :now OR holder = :run",
                ExpressionAttributeValues={
                    ":run": s(run_id),
                    ":expires": n(epoch(expires)),
                    ":seconds": n(seconds(duration)),
                    ":at": s(iso(now)),
                    ":reason": s(reason),
                    ":false": FALSE,
                    ":now": n(epoch(now)),
                },
            )
            if old is not None:
                return Lease(
                    output,
                    run_id,
                    expires,
                    taken_over=string(old, "holder") not in (None, run_id),
                    previous_finished=time_of(old, "last_finished"),
                    shard=shard,
                )
            if self._mark_pending(output, reason, now, shard):
                return None
            # The holder released or expired between our two writes: try to take it again.
        raise StateError(f"lease of output {output!r} kept changing hands; gave up")

    def _mark_pending(self, output: str, reason: str, now: datetime, shard: str) -> bool:
        """Flag a rerun for the live holder; False if there is no live holder any more."""
        live = "attribute_exists(holder) AND lease_expires >= :now"
        values = {":true": TRUE, ":at": s(iso(now)), ":now": n(epoch(now))}
        set_pending = "SET pending = :true, pending_since = if_not_exists(pending_since, :at)"
        if self._write(
            "update_item",
            Key=key(output, lease_sk(shard)),
            UpdateExpression=f"{set_pending} ADD pending_reasons :reasons",
            ConditionExpression=(
                f"{live} AND (attribute_not_exists(pending_reasons)"
                " OR size(pending_reasons) < :cap OR contains(pending_reasons, :reason))"
            ),
            ExpressionAttributeValues={
                **values,
                ":reasons": {"SS": [reason]},
                ":reason": s(reason),
                ":cap": n(_MAX_REASONS),
            },
        ):
            return True
        # Either the reasons are full (flag the rerun without recording why) or the lease is gone.
        return self._write(
            "update_item",
            Key=key(output, lease_sk(shard)),
            UpdateExpression=set_pending,
            ConditionExpression=live,
            ExpressionAttributeValues=values,
        )

    def finish(self, lease: Lease) -> bool:
        """Release the lease, unless a trigger arrived meanwhile: then keep it and return True.

        On True the caller runs once more and calls `finish` again; the lease is extended by
        its last length. Race-free without a read: a concurrent `try_acquire` either set
        `pending` before our release (the release's condition fails and we consume the flag)
        or finds the lease free and takes it. Returns False if the lease was lost.

        The run's renewals are recorded first (`record_renewals`), while the lease still keeps
        other runs of the output from reading the registry before they are.
        """
        self.record_renewals(lease.output)
        now = self._clock()
        run = s(lease.run_id)
        released = {":run": run, ":at": s(iso(now))}
        old = self._write_returning_old(
            "update_item",
            Key=key(lease.output, lease_sk(lease.shard)),
            UpdateExpression=(
                "REMOVE holder, lease_expires, lease_seconds, acquired, reason"
                " SET last_run_id = :run, last_finished = :at"
            ),
            ConditionExpression="holder = :run AND (attribute_not_exists(pending) OR pending = :false)",
            ExpressionAttributeValues={**released, ":false": FALSE},
        )
        if old is not None:
            if not lease.shard:
                self._keep_for_next_run(lease.output, old, f"{lease.run_id}@{iso(now)}")
            else:  # stamp the output's own lease too: warm readers check only that one
                self._write(
                    "update_item",
                    Key=key(lease.output, LEASE),
                    UpdateExpression="SET last_run_id = :run, last_finished = :at",
                    ExpressionAttributeValues=released,
                )
            return False
        # Only a new holder clears `pending`, so while we hold the lease it is still set.
        return self._write(
            "update_item",
            Key=key(lease.output, lease_sk(lease.shard)),
            UpdateExpression=(
                "SET pending = :false, lease_expires = :now + lease_seconds"
                " REMOVE pending_reasons, pending_since"
            ),
            ConditionExpression="holder = :run AND pending = :true",
            ExpressionAttributeValues={
                ":run": run,
                ":now": n(epoch(now)),
                ":true": TRUE,
                ":false": FALSE,
            },
        )

    def extend(self, lease: Lease, duration: timedelta) -> Lease:
        """Push the lease's expiry to now + `duration`; raises StateError if another run took it."""
        expires = self._clock() + duration
        if not self._write(
            "update_item",
            Key=key(lease.output, lease_sk(lease.shard)),
            UpdateExpression="SET lease_expires = :expires, lease_seconds = :seconds",
            ConditionExpression="holder = :run",
            ExpressionAttributeValues={
                ":run": s(lease.run_id),
                ":expires": n(epoch(expires)),
                ":seconds": n(seconds(duration)),
            },
        ):
            raise StateError(f"run {lease.run_id} lost the lease of output {lease.output!r}")
        return replace(lease, expires_at=expires)

    def lease_status(self, output: str) -> dict[str, Any]:
        """The lease item for a status report, JSON-ready (times as ISO strings).

        `expired` means the holder is presumed dead; the next trigger takes the lease over.
        """
        item = self._read("get_item", Key=key(output, LEASE), ConsistentRead=True).get("Item", {})
        expires = from_epoch(item["lease_expires"]["N"]) if "lease_expires" in item else None
        return {
            "holder": string(item, "holder"),
            "reason": string(item, "reason"),
            "acquired": string(item, "acquired"),
            "expires_at": expires and iso(expires),
            "expired": expires is not None and expires < self._clock(),
            "pending": item.get("pending", FALSE)["BOOL"],
            "pending_reasons": sorted(item.get("pending_reasons", {}).get("SS", [])),
            "pending_since": string(item, "pending_since"),
            "last_run_id": string(item, "last_run_id"),
            "last_finished": string(item, "last_finished"),
        }
