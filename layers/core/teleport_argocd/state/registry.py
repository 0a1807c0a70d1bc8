"""Registrations: what a run reads of an output's registry, writes back, and a warm process keeps.

A run reads all of an output's registrations once and writes back only those that changed:
whole, in batches, except renewals, which go to the output's renewal ledgers when the run
releases its lease (`state.renewals`). What a process read last is kept (`_REGISTRY`) and trusted
while the output's lease shows no run released it since.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from teleport_argocd.model import Registration
from teleport_argocd.state.encoding import LEASE, key, n, pk, string
from teleport_argocd.state.items import reg_item, reg_key, reg_sk, registration
from teleport_argocd.state.renewals import (
    LEDGER_PREFIX,
    MAX_LEDGER_BYTES,
    Ledger,
    bucket_of,
    entry_key,
    entry_name,
    entry_size,
    forget,
    ledger_item,
    ledger_of,
    ledger_sk,
    recorded,
    renewal_only,
    renewed,
    without_unused_certs,
)
from teleport_argocd.state.table import BATCH, Table, utcnow

# What this process last read of each output's registrations, with the lease release it was
# read after and when it was read from the table: (table, output) -> (release stamp, read at,
# registrations). See `Registry.registrations`.
_REGISTRY: dict[tuple[str, str], tuple[str, datetime, tuple[Registration, ...]]] = {}
# Registrations are written under the lease by runs, but an operator may edit an item by hand (or
# restore a backup into the table): a warm process re-reads at least this often to see such a change.
REGISTRY_MAX_AGE = timedelta(minutes=10)
# The renewal ledgers this process last read or wrote, by (table, output) and bucket. Never trusted
# as they are: each write is conditional on the revision kept here, and read again when it moved.
_LEDGERS: dict[tuple[str, str], dict[int, Ledger]] = {}
# Writes of one ledger that meet a revision moved by a concurrent run (another shard's) before
# the renewals they carry are written whole instead.
_LEDGER_ATTEMPTS = 4


class Registry(Table):
    """The registrations of each output."""

    def __init__(self, table_name: str, *, client: Any, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(table_name, client=client, clock=clock)
        # What this store read of each output's registrations (with the release stamp it was read
        # after) and has written since: on release, the next run's cache (see `finish`).
        self._seen: dict[str, tuple[str | None, datetime, dict[str, Registration]]] = {}
        # Of those written since, the renewals that go to the ledgers at the lease's release, and
        # the registrations written whole (whose ledger entries are then dropped).
        self._renewals: dict[str, dict[str, Registration]] = {}
        self._whole: dict[str, dict[str, Registration]] = {}

    def registrations(self, output: str) -> list[Registration]:
        """Every registration of `output`: a run reads them once.

        A warm execution environment keeps what it read last and checks it with one GetItem of
        the lease item: runs write registrations only under the lease and `finish` stamps the
        release, so an unheld lease with the same release stamp means no run wrote since. A
        hand edit outside any run is not stamped: the copy is read again once `REGISTRY_MAX_AGE` old.
        Otherwise one Query, paged (a thousand registrations are most of a megabyte).
        """
        stamp = self._release_stamp(output)  # read before the registrations, never after
        cache_key = (self._table, output)
        cached = _REGISTRY.get(cache_key)
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
            items = [registration(output, item) for item in self._query(output, "reg#")]
            ledgers = {ledger.bucket: ledger for ledger in map(ledger_of, self._query(output, LEDGER_PREFIX))}
            _LEDGERS[cache_key] = ledgers
            registrations = [renewed(reg, ledgers) for reg in items]
            if stamp is not None:
                _REGISTRY[cache_key] = (stamp, read_at, tuple(registrations))
        self._seen[output] = (stamp, read_at, {reg_sk(r): r for r in registrations})
        self._renewals[output], self._whole[output] = {}, {}
        return registrations

    def named_registrations(
        self, outputs: Sequence[str], teleport_cluster: str, kube_clusters: Collection[str]
    ) -> dict[str, list[Registration]]:
        """The registrations of these kube clusters of `teleport_cluster` in each of `outputs`, by output
        (an empty list where there is none): one `BatchGetItem` for up to 100, however large the registry.

        For a run over named clusters (an audit event's), whose plan reads nothing else. It is not the
        whole registry, so it is neither cached nor handed to the next run (see `_keep_for_next_run`).
        """
        names = sorted(kube_clusters)
        buckets = sorted({bucket_of(entry_name(teleport_cluster, kube)) for kube in names})
        keys = [
            key(output, sk)
            for output in outputs
            for sk in [*(reg_key(teleport_cluster, kube) for kube in names), *map(ledger_sk, buckets)]
        ]
        by_pk = {pk(output): output for output in outputs}
        items: dict[str, list[Registration]] = {output: [] for output in outputs}
        ledgers: dict[str, dict[int, Ledger]] = {output: {} for output in outputs}
        for item in self._batch_get(keys):
            output = by_pk[item["pk"]["S"]]
            if item["sk"]["S"].startswith("reg#"):
                items[output].append(registration(output, item))
            else:
                ledger = ledger_of(item)
                ledgers[output][ledger.bucket] = ledger
        return {
            output: sorted((renewed(reg, ledgers[output]) for reg in regs), key=reg_sk)
            for output, regs in items.items()
        }

    def _keep_for_next_run(self, output: str, released: Mapping[str, Any], stamp: str) -> None:
        """After releasing the output's lease, cache what this run read and wrote, if that is the
        whole registry: the release it read after is the one just replaced (no other run released
        in between) and it read while no run held the lease. It ages from when it was read."""
        seen = self._seen.get(output)
        read_after = f"{string(released, 'last_run_id')}@{string(released, 'last_finished')}"
        if seen is not None and seen[0] is not None and seen[0] == read_after:
            current = tuple(reg for _, reg in sorted(seen[2].items()))
            _REGISTRY[(self._table, output)] = (stamp, seen[1], current)

    def _release_stamp(self, output: str) -> str | None:
        """The last release of an unheld lease (None while it is held or was never released)."""
        item = self._read(
            "get_item",
            Key=key(output, LEASE),
            ConsistentRead=True,
            ProjectionExpression="holder, last_run_id, last_finished",
        ).get("Item", {})
        if "holder" in item or "last_finished" not in item:
            return None
        return f"{string(item, 'last_run_id')}@{string(item, 'last_finished')}"

    def put_registrations(self, registrations: Sequence[Registration]) -> None:
        """Store registrations: a renewal of one this run read whole is held for the ledgers
        (`record_renewals`); the others are written whole, 25 to a `BatchWriteItem`, retrying what
        DynamoDB leaves unprocessed.

        Whole items rather than updates: the lease makes this run the only writer of its
        output's items, and the run read them at its start, so nothing is lost by replacing them.
        """
        whole: list[Registration] = []
        for reg in registrations:
            seen = self._seen.get(reg.output)
            if seen is None:  # a run over named clusters: it read no ledger to record in
                whole.append(reg)
                continue
            sk = reg_sk(reg)
            before = seen[2].get(sk)
            if before is not None and renewal_only(before, reg):
                self._renewals.setdefault(reg.output, {})[sk] = reg
                seen[2][sk] = reg
            else:
                self._renewals.get(reg.output, {}).pop(sk, None)
                self._whole.setdefault(reg.output, {})[sk] = reg
                whole.append(reg)
        self._put_whole(whole)

    def record_renewals(self, output: str) -> None:
        """Write the renewals held for `output` to its ledgers, one conditional `PutItem` per
        bucket they fall in. Called under the lease, before its release: the next run to read
        the registry finds them. Entries of registrations this run wrote whole are dropped from
        the ledgers written. A ledger another run moved meanwhile is read again and merged; what
        still does not fit or cannot be written is written whole, as before."""
        held, whole = self._renewals.pop(output, {}), self._whole.pop(output, {})
        by_bucket: dict[int, list[Registration]] = {}
        for reg in held.values():
            by_bucket.setdefault(bucket_of(entry_key(reg)), []).append(reg)
        written: dict[int, list[Registration]] = {}
        for reg in whole.values():
            written.setdefault(bucket_of(entry_key(reg)), []).append(reg)
        leftover: list[Registration] = []
        for bucket, regs in sorted(by_bucket.items()):
            leftover += self._record(output, bucket, regs, written.get(bucket, []))
        self._put_whole(leftover)

    def _record(
        self, output: str, bucket: int, regs: Sequence[Registration], written: Sequence[Registration]
    ) -> list[Registration]:
        """Merge `regs` into one ledger and write it; the registrations it could not carry."""
        known = _LEDGERS.setdefault((self._table, output), {})
        current = known.get(bucket)
        for _ in range(_LEDGER_ATTEMPTS):
            if current is None:
                current = self._read_ledger(output, bucket)
            merged = Ledger(bucket, current.revision + 1, dict(current.entries), dict(current.certs))
            for reg in written:
                forget(merged, reg)
            for reg in regs:
                recorded(merged, reg)
            carried, size = list(regs), merged.size()
            while size > MAX_LEDGER_BYTES and carried:  # the last ones are written whole instead
                dropped = carried.pop()
                size -= entry_size(entry_key(dropped), merged)
                merged.entries.pop(entry_key(dropped), None)
            without_unused_certs(merged)
            if self._put_ledger(output, merged, current.revision):
                known[bucket] = merged
                return list(regs[len(carried) :])
            known.pop(bucket, None)
            current = None
        return list(regs)

    def _read_ledger(self, output: str, bucket: int) -> Ledger:
        item = self._read("get_item", Key=key(output, ledger_sk(bucket)), ConsistentRead=True).get("Item")
        return ledger_of(item) if item else Ledger(bucket)

    def _put_ledger(self, output: str, ledger: Ledger, revision: int) -> bool:
        """Write `ledger` if the item is still at `revision` (absent for 0); False if it moved."""
        condition = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if revision == 0
            else {
                "ConditionExpression": "revision = :revision",
                "ExpressionAttributeValues": {":revision": n(revision)},
            }
        )
        return self._write("put_item", Item=ledger_item(output, ledger), **condition)

    def _put_whole(self, registrations: Sequence[Registration]) -> None:
        for start in range(0, len(registrations), BATCH):
            requests = [{"PutRequest": {"Item": reg_item(r)}} for r in registrations[start : start + BATCH]]
            self._batch_write(requests)
            for reg in registrations[start : start + BATCH]:
                if reg.output in self._seen:
                    self._seen[reg.output][2][reg_sk(reg)] = reg
