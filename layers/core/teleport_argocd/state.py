"""DynamoDB state: the per-output lease, registrations and run records.

One table, key ``pk`` (S) + ``sk`` (S), TTL attribute ``expires_at``. Every item of an
output shares ``pk = "output#<output name>"``, so an output's registrations or runs are
one Query and nothing here scans.

``sk = "lease"`` serializes the runs of one output and remembers triggers that arrive
during a run, so none is lost:

    holder           S     run id holding the lease; absent when free
    lease_expires    N     epoch seconds (microsecond precision); past it the holder is presumed dead
    lease_seconds    N     lease length, reused when `finish` hands the lease to a rerun
    acquired         S     when the holder took the lease
    reason           S     what triggered the holder's run
    pending          BOOL  a trigger arrived while the lease was held
    pending_reasons  SS    distinct reasons of those triggers, at most 10
    pending_since    S     when the first of them arrived
    last_run_id      S     the run that last released the lease
    last_finished    S     when it did

``sk = "lease#<i>/<n>"`` is the same for shard i of n, when a schedule splits a large output;
releasing one also stamps `last_run_id`/`last_finished` on the output's own lease item.

``sk = "reg#<teleport cluster>#<kube cluster>"`` is what we wrote for one cluster (the
names are attributes too; they are never parsed back out of the key). A run reads all of an
output's registrations once and writes back only those that changed, whole, in batches:

    teleport_cluster, kube_cluster, secret_namespace, secret_name, server         S
    labels           M     the cluster's labels when last planned
    fingerprint      S     digest of what was rendered, certificate left out: a change means a rewrite
    secret_uid, resource_version  S  the Secret as we last wrote it: the next write's precondition
    first_written, last_written, last_attempt, cert_expires, last_error_at        S
    unmatched_since  S     when the selectors stopped picking the cluster
    deleted_at       S     tombstone: when its Secret was pruned
    absence          S     why it is unmatched: vanished, deselected or deleted (sets its grace period)
    absence_banked   N     seconds of absence counted by runs that could have pruned
    absence_seen     S     the last such run that saved the clock; absent while the clock is paused
    refusals         N     runs in a row that found the Secret replaced or in the way
    relinquished_at  S     when those made us leave the Secret alone
    last_error       S     at most 1,000 characters; absent after a success
    matches          BOOL  the cluster still matches the output's selectors
    connection, connection_message  S  the last connection check (ok, forbidden, unreachable,
                           tls-error) and its reason; `connection_at` S when it was made
    cluster_name     S     the Secret's Argo CD cluster name as last written (Applications may name it)
    held_by          L     Argo CD Applications (namespace/name, of S) that held its pruning at the last check

``sk = "run#<start>#<run id>"`` summarizes one run; the start time sorts, so newest
first is a reverse Query:

    run_id, trigger, started, finished                                             S
    duration_seconds N, counts M (of N), dry_run BOOL, errors L (of S, at most 50)
    expires_at       N     TTL; expired items are filtered on read, because DynamoDB
                           deletes them only eventually (and moto never does)

Times are ISO 8601 strings in UTC with microseconds, so they sort as text; epoch
Numbers appear only where a condition or TTL needs them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from teleport_argocd.errors import StateError
from teleport_argocd.model import Absence, Registration, SecretVersion

_LEASE = "lease"
_MAX_ERROR = 1000
_MAX_REASON = 200
_MAX_REASONS = 10
_MAX_RUN_ERRORS = 50
# Each retry means the lease changed hands between two of our writes; more is a fault.
_ACQUIRE_ATTEMPTS = 10
# BatchWriteItem takes at most 25 items; unprocessed ones are retried with jittered backoff.
_BATCH = 25
_BATCH_ATTEMPTS = 8
_BATCH_BACKOFF = 0.05
_REG_TIMES = (
    "first_written",
    "last_written",
    "last_attempt",
    "cert_expires",
    "last_error_at",
    "unmatched_since",
    "deleted_at",
    "absence_seen",
    "connection_at",
    "relinquished_at",
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TRUE = {"BOOL": True}
_FALSE = {"BOOL": False}


# What this process last read of each output's registrations, with the lease release it was
# read after and when it was read from the table: (table, output) -> (release stamp, read at,
# registrations). See `StateStore.registrations`.
_REGISTRY: dict[tuple[str, str], tuple[str, datetime, tuple[Registration, ...]]] = {}
# Registrations are written under the lease by runs, but an operator may edit an item by hand (or
# restore a backup into the table): a warm process re-reads at least this often to see such a change.
REGISTRY_MAX_AGE = timedelta(minutes=10)


def utcnow() -> datetime:
    return datetime.now(UTC)


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


class StateStore:
    """The state table, seen from one output's reconcile.

    Every method is one or a few single-item requests; conditional writes, not
    read-modify-write, keep the lease correct when runs race.
    """

    def __init__(self, table_name: str, *, client: Any, clock: Callable[[], datetime] = utcnow) -> None:
        self._table = table_name
        self._client = client
        self._clock = clock
        self.writes = 0  # requests that write, for the benches; batches are sent from several threads
        self._writes_lock = threading.Lock()
        # What this store read of each output's registrations (with the release stamp it was read
        # after) and has written since: on release, the next run's cache (see `finish`).
        self._seen: dict[str, tuple[str | None, datetime, dict[str, Registration]]] = {}

    # -- lease -----------------------------------------------------------------

    def try_acquire(
        self, output: str, *, run_id: str, duration: timedelta, reason: str, shard: str = ""
    ) -> Lease | None:
        """Take the lease if it is free or expired; otherwise flag a rerun for the holder and return None.

        Taking the lease clears `pending`: the run starting now covers earlier triggers. A
        lease this run already holds counts as taken, so botocore's retry of an acquire whose
        answer was lost after it committed does not find the run locked out by itself.
        """
        reason = _truncate(reason or "unspecified", _MAX_REASON)
        for _ in range(_ACQUIRE_ATTEMPTS):
            now = self._clock()
            expires = now + duration
            old = self._write_returning_old(
                "update_item",
                Key=_key(output, _lease_sk(shard)),
                UpdateExpression=(
                    "SET holder = :run, lease_expires = :expires, lease_seconds = :seconds,"
                    " acquired = :at, reason = :reason, pending = :false"
                    " REMOVE pending_reasons, pending_since"
                ),
                ConditionExpression="attribute_not_exists(holder) OR lease_expires < :now OR holder = :run",
                ExpressionAttributeValues={
                    ":run": _s(run_id),
                    ":expires": _n(_epoch(expires)),
                    ":seconds": _n(_seconds(duration)),
                    ":at": _s(_iso(now)),
                    ":reason": _s(reason),
                    ":false": _FALSE,
                    ":now": _n(_epoch(now)),
                },
            )
            if old is not None:
                return Lease(
                    output,
                    run_id,
                    expires,
                    taken_over=_str(old, "holder") not in (None, run_id),
                    previous_finished=_time(old, "last_finished"),
                    shard=shard,
                )
            if self._mark_pending(output, reason, now, shard):
                return None
            # The holder released or expired between our two writes: try to take it again.
        raise StateError(f"lease of output {output!r} kept changing hands; gave up")

    def _mark_pending(self, output: str, reason: str, now: datetime, shard: str) -> bool:
        """Flag a rerun for the live holder; False if there is no live holder any more."""
        live = "attribute_exists(holder) AND lease_expires >= :now"
        values = {":true": _TRUE, ":at": _s(_iso(now)), ":now": _n(_epoch(now))}
        set_pending = "SET pending = :true, pending_since = if_not_exists(pending_since, :at)"
        if self._write(
            "update_item",
            Key=_key(output, _lease_sk(shard)),
            UpdateExpression=f"{set_pending} ADD pending_reasons :reasons",
            ConditionExpression=(
                f"{live} AND (attribute_not_exists(pending_reasons)"
                " OR size(pending_reasons) < :cap OR contains(pending_reasons, :reason))"
            ),
            ExpressionAttributeValues={
                **values,
                ":reasons": {"SS": [reason]},
                ":reason": _s(reason),
                ":cap": _n(_MAX_REASONS),
            },
        ):
            return True
        # Either the reasons are full (flag the rerun without recording why) or the lease is gone.
        return self._write(
            "update_item",
            Key=_key(output, _lease_sk(shard)),
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
        """
        now = self._clock()
        run = _s(lease.run_id)
        released = {":run": run, ":at": _s(_iso(now))}
        old = self._write_returning_old(
            "update_item",
            Key=_key(lease.output, _lease_sk(lease.shard)),
            UpdateExpression=(
                "REMOVE holder, lease_expires, lease_seconds, acquired, reason"
                " SET last_run_id = :run, last_finished = :at"
            ),
            ConditionExpression="holder = :run AND (attribute_not_exists(pending) OR pending = :false)",
            ExpressionAttributeValues={**released, ":false": _FALSE},
        )
        if old is not None:
            if not lease.shard:
                self._keep_for_next_run(lease.output, old, f"{lease.run_id}@{_iso(now)}")
            else:  # stamp the output's own lease too: warm readers check only that one
                self._write(
                    "update_item",
                    Key=_key(lease.output, _LEASE),
                    UpdateExpression="SET last_run_id = :run, last_finished = :at",
                    ExpressionAttributeValues=released,
                )
            return False
        # Only a new holder clears `pending`, so while we hold the lease it is still set.
        return self._write(
            "update_item",
            Key=_key(lease.output, _lease_sk(lease.shard)),
            UpdateExpression=(
                "SET pending = :false, lease_expires = :now + lease_seconds"
                " REMOVE pending_reasons, pending_since"
            ),
            ConditionExpression="holder = :run AND pending = :true",
            ExpressionAttributeValues={
                ":run": run,
                ":now": _n(_epoch(now)),
                ":true": _TRUE,
                ":false": _FALSE,
            },
        )

    def extend(self, lease: Lease, duration: timedelta) -> Lease:
        """Push the lease's expiry to now + `duration`; raises StateError if another run took it."""
        expires = self._clock() + duration
        if not self._write(
            "update_item",
            Key=_key(lease.output, _lease_sk(lease.shard)),
            UpdateExpression="SET lease_expires = :expires, lease_seconds = :seconds",
            ConditionExpression="holder = :run",
            ExpressionAttributeValues={
                ":run": _s(lease.run_id),
                ":expires": _n(_epoch(expires)),
                ":seconds": _n(_seconds(duration)),
            },
        ):
            raise StateError(f"run {lease.run_id} lost the lease of output {lease.output!r}")
        return replace(lease, expires_at=expires)

    def lease_status(self, output: str) -> dict[str, Any]:
        """The lease item for a status report, JSON-ready (times as ISO strings).

        `expired` means the holder is presumed dead; the next trigger takes the lease over.
        """
        item = self._read("get_item", Key=_key(output, _LEASE), ConsistentRead=True).get("Item", {})
        expires = _from_epoch(item["lease_expires"]["N"]) if "lease_expires" in item else None
        return {
            "holder": _str(item, "holder"),
            "reason": _str(item, "reason"),
            "acquired": _str(item, "acquired"),
            "expires_at": expires and _iso(expires),
            "expired": expires is not None and expires < self._clock(),
            "pending": item.get("pending", _FALSE)["BOOL"],
            "pending_reasons": sorted(item.get("pending_reasons", {}).get("SS", [])),
            "pending_since": _str(item, "pending_since"),
            "last_run_id": _str(item, "last_run_id"),
            "last_finished": _str(item, "last_finished"),
        }

    # -- registrations -----------------------------------------------------------

    def registrations(self, output: str) -> list[Registration]:
        """Every registration of `output`: a run reads them once.

        A warm execution environment keeps what it read last and checks it with one GetItem of
        the lease item: runs write registrations only under the lease and `finish` stamps the
        release, so an unheld lease with the same release stamp means no run wrote since. A
        hand edit outside any run is not stamped: the copy is read again once `REGISTRY_MAX_AGE` old.
        Otherwise one Query, paged (a thousand registrations are most of a megabyte).
        """
        stamp = self._release_stamp(output)  # read before the registrations, never after
        key = (self._table, output)
        cached = _REGISTRY.get(key)
        now = self._clock()
        if (
            stamp is not None
            and cached is not None
            and cached[0] == stamp
            and now - cached[1] < REGISTRY_MAX_AGE
        ):
            read_at, registrations = cached[1], list(cached[2])
        else:
            read_at = now
            registrations = [_registration(output, item) for item in self._query(output, "reg#")]
            if stamp is not None:
                _REGISTRY[key] = (stamp, read_at, tuple(registrations))
        self._seen[output] = (stamp, read_at, {_reg_sk(r): r for r in registrations})
        return registrations

    def _keep_for_next_run(self, output: str, released: Mapping[str, Any], stamp: str) -> None:
        """After releasing the output's lease, cache what this run read and wrote, if that is the
        whole registry: the release it read after is the one just replaced (no other run released
        in between) and it read while no run held the lease. It ages from when it was read."""
        seen = self._seen.get(output)
        read_after = f"{_str(released, 'last_run_id')}@{_str(released, 'last_finished')}"
        if seen is not None and seen[0] is not None and seen[0] == read_after:
            current = tuple(reg for _, reg in sorted(seen[2].items()))
            _REGISTRY[(self._table, output)] = (stamp, seen[1], current)

    def _release_stamp(self, output: str) -> str | None:
        """The last release of an unheld lease (None while it is held or was never released)."""
        item = self._read(
            "get_item",
            Key=_key(output, _LEASE),
            ConsistentRead=True,
            ProjectionExpression="holder, last_run_id, last_finished",
        ).get("Item", {})
        if "holder" in item or "last_finished" not in item:
            return None
        return f"{_str(item, 'last_run_id')}@{_str(item, 'last_finished')}"

    def put_registrations(self, registrations: Sequence[Registration]) -> None:
        """Store whole registrations, 25 to a `BatchWriteItem`, retrying what DynamoDB leaves unprocessed.

        Whole items rather than updates: the lease makes this run the only writer of its
        output's items, and the run read them at its start, so nothing is lost by replacing them.
        """
        for start in range(0, len(registrations), _BATCH):
            requests = [{"PutRequest": {"Item": _reg_item(r)}} for r in registrations[start : start + _BATCH]]
            self._batch_write(requests)
            for reg in registrations[start : start + _BATCH]:
                if reg.output in self._seen:
                    self._seen[reg.output][2][_reg_sk(reg)] = reg

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for attempt in range(_BATCH_ATTEMPTS):
            if attempt:
                time.sleep(min(_BATCH_BACKOFF * 2**attempt, 2.0) * random.uniform(0.5, 1.0))
            with self._writes_lock:
                self.writes += 1
            try:
                response = self._client.batch_write_item(RequestItems={self._table: requests})
            except (ClientError, BotoCoreError) as exc:
                raise self._error("batch_write_item", exc) from exc
            requests = response.get("UnprocessedItems", {}).get(self._table, [])
            if not requests:
                return
        raise StateError(
            f"DynamoDB batch_write_item on table {self._table}: {len(requests)} items still unprocessed "
            f"after {_BATCH_ATTEMPTS} attempts"
        )

    # -- runs ------------------------------------------------------------------------

    def put_run(self, record: RunRecord, *, retention: timedelta = timedelta(days=14)) -> None:
        """Store a run's summary; DynamoDB's TTL removes it `retention` after it finished."""
        self._write(
            "put_item",
            Item={
                **_key(record.output, f"run#{_iso(record.started)}#{record.run_id}"),
                "run_id": _s(record.run_id),
                "trigger": _s(record.trigger),
                "started": _s(_iso(record.started)),
                "finished": _s(_iso(record.finished)),
                "duration_seconds": _n(_seconds(record.finished - record.started)),
                "dry_run": {"BOOL": record.dry_run},
                "counts": {"M": {k: _n(v) for k, v in record.counts.items()}},
                "errors": {"L": [_s(_truncate(e, _MAX_ERROR)) for e in record.errors[:_MAX_RUN_ERRORS]]},
                "expires_at": _n(int(_epoch(record.finished + retention))),
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
            ExpressionAttributeValues={":now": _n(int(_epoch(self._clock())))},
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

    # -- requests ----------------------------------------------------------------------

    def _query(self, output: str, prefix: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Items of `output` whose sort key starts with `prefix`, across pages."""
        kwargs.setdefault("ExpressionAttributeValues", {})
        kwargs["ExpressionAttributeValues"].update({":pk": _s(_pk(output)), ":prefix": _s(prefix)})
        while True:
            page = self._read(
                "query",
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ConsistentRead=True,
                **kwargs,
            )
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _read(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self._request(operation, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(operation, exc) from exc

    def _write_returning_old(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        """Issue one conditional write; the item as it was before it, or None when the condition failed."""
        self.writes += 1
        try:
            response = self._request(operation, ReturnValues="ALL_OLD", **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise self._error(operation, exc) from exc
        except BotoCoreError as exc:
            raise self._error(operation, exc) from exc
        return dict(response.get("Attributes", {}))

    def _write(self, operation: str, **kwargs: Any) -> bool:
        """Issue one write request; False when its condition did not hold."""
        return self._write_returning_old(operation, **kwargs) is not None

    def _request(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = getattr(self._client, operation)(TableName=self._table, **kwargs)
        return response

    def _error(self, operation: str, exc: Exception) -> StateError:
        return StateError(f"DynamoDB {operation} on table {self._table} failed: {exc}")


# -- encoding ------------------------------------------------------------------------


def _reg_item(reg: Registration) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_key(reg.output, _reg(reg.teleport_cluster, reg.kube_cluster)),
        "teleport_cluster": _s(reg.teleport_cluster),
        "kube_cluster": _s(reg.kube_cluster),
        "secret_namespace": _s(reg.secret_namespace),
        "secret_name": _s(reg.secret_name),
        "server": _s(reg.server),
        "labels": {"M": {k: _s(v) for k, v in reg.labels.items()}},
        "fingerprint": _s(reg.fingerprint),
        "matches": {"BOOL": reg.matches},
    }
    if reg.version is not None:
        item["secret_uid"] = _s(reg.version.uid)
        item["resource_version"] = _s(reg.version.resource_version)
    if reg.last_error is not None:
        item["last_error"] = _s(_truncate(reg.last_error, _MAX_ERROR))
    if reg.absence:
        item["absence"] = _s(reg.absence.value)
    if reg.absence_banked:
        item["absence_banked"] = _n(_seconds(reg.absence_banked))
    if reg.connection:
        item["connection"] = _s(reg.connection)
        item["connection_message"] = _s(_truncate(reg.connection_message, _MAX_ERROR))
    if reg.refusals:
        item["refusals"] = _n(reg.refusals)
    if reg.cluster_name:
        item["cluster_name"] = _s(reg.cluster_name)
    if reg.held_by:
        item["held_by"] = {"L": [_s(a) for a in reg.held_by]}
    for name in _REG_TIMES:
        moment = getattr(reg, name)
        if moment is not None:
            item[name] = _s(_iso(moment))
    return item


def _registration(output: str, item: Mapping[str, Any]) -> Registration:
    uid, resource_version = _str(item, "secret_uid"), _str(item, "resource_version")
    return Registration(
        output=output,
        teleport_cluster=item["teleport_cluster"]["S"],
        kube_cluster=item["kube_cluster"]["S"],
        secret_namespace=_str(item, "secret_namespace") or "",
        secret_name=_str(item, "secret_name") or "",
        server=_str(item, "server") or "",
        labels={k: v["S"] for k, v in item.get("labels", {}).get("M", {}).items()},
        fingerprint=_str(item, "fingerprint") or "",
        # An empty resourceVersion is the store's way of saying "read before the next write".
        version=SecretVersion(uid, resource_version or "") if uid else None,
        matches=item["matches"]["BOOL"],
        last_error=_str(item, "last_error"),
        absence=_absence(item),
        absence_banked=_duration(item, "absence_banked"),
        connection=_str(item, "connection") or "",
        connection_message=_str(item, "connection_message") or "",
        refusals=int(item["refusals"]["N"]) if "refusals" in item else 0,
        cluster_name=_str(item, "cluster_name") or "",
        held_by=tuple(v["S"] for v in item.get("held_by", {}).get("L", ()) if "S" in v),
        **{name: _time(item, name) for name in _REG_TIMES},
    )


def _absence(item: Mapping[str, Any]) -> Absence:
    """The stored evidence; a value this version does not know counts as the weakest (vanished)."""
    value = _str(item, "absence") or ""
    return Absence(value) if value in Absence._value2member_map_ else Absence.VANISHED


def _duration(item: Mapping[str, Any], name: str) -> timedelta:
    return timedelta(microseconds=int(Decimal(item[name]["N"]).scaleb(6))) if name in item else timedelta(0)


def _pk(output: str) -> str:
    return f"output#{output}"


def _lease_sk(shard: str) -> str:
    """The output's lease, or one shard's ("lease#2/4") when a schedule splits a large output."""
    return f"{_LEASE}#{shard}" if shard else _LEASE


def _reg_sk(reg: Registration) -> str:
    return _reg(reg.teleport_cluster, reg.kube_cluster)


def _reg(teleport_cluster: str, kube_cluster: str) -> str:
    return f"reg#{teleport_cluster}#{kube_cluster}"


def _key(output: str, sk: str) -> dict[str, Any]:
    return {"pk": _s(_pk(output)), "sk": _s(sk)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int | Decimal) -> dict[str, str]:
    return {"N": str(value)}


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: state times must be timezone-aware")
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="microseconds")


def _seconds(delta: timedelta) -> Decimal:
    """Exact seconds (a float would not round-trip microseconds)."""
    return Decimal(delta // timedelta(microseconds=1)).scaleb(-6)


def _epoch(moment: datetime) -> Decimal:
    return _seconds(_utc(moment) - _EPOCH)


def _from_epoch(value: str) -> datetime:
    return _EPOCH + timedelta(microseconds=int(Decimal(value).scaleb(6)))


def _str(item: Mapping[str, Any], name: str) -> str | None:
    return item[name]["S"] if name in item else None


def _time(item: Mapping[str, Any], name: str) -> datetime | None:
    return datetime.fromisoformat(item[name]["S"]) if name in item else None


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
