"""Registrations: what a run reads of an output's registry, writes back, and a warm process keeps.

A run reads all of an output's registrations once and writes back only those that changed,
whole, in batches. What a process read last is kept (`_REGISTRY`) and trusted while the output's
lease shows no run released it since.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from teleport_argocd.model import Registration
from teleport_argocd.state.encoding import LEASE, key, pk, string
from teleport_argocd.state.items import reg_item, reg_key, reg_sk, registration
from teleport_argocd.state.table import BATCH, Table, utcnow

# What this process last read of each output's registrations, with the lease release it was
# read after and when it was read from the table: (table, output) -> (release stamp, read at,
# registrations). See `Registry.registrations`.
_REGISTRY: dict[tuple[str, str], tuple[str, datetime, tuple[Registration, ...]]] = {}
# Registrations are written under the lease by runs, but an operator may edit an item by hand (or
# restore a backup into the table): a warm process re-reads at least this often to see such a change.
REGISTRY_MAX_AGE = timedelta(minutes=10)


class Registry(Table):
    """The registrations of each output."""

    def __init__(self, table_name: str, *, client: Any, clock: Callable[[], datetime] = utcnow) -> None:
        super().__init__(table_name, client=client, clock=clock)
        # What this store read of each output's registrations (with the release stamp it was read
        # after) and has written since: on release, the next run's cache (see `finish`).
        self._seen: dict[str, tuple[str | None, datetime, dict[str, Registration]]] = {}

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
            registrations = [registration(output, item) for item in self._query(output, "reg#")]
            if stamp is not None:
                _REGISTRY[cache_key] = (stamp, read_at, tuple(registrations))
        self._seen[output] = (stamp, read_at, {reg_sk(r): r for r in registrations})
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
        keys = [key(output, reg_key(teleport_cluster, kube)) for output in outputs for kube in names]
        by_pk = {pk(output): output for output in outputs}
        found: dict[str, list[Registration]] = {output: [] for output in outputs}
        for item in self._batch_get(keys):
            output = by_pk[item["pk"]["S"]]
            found[output].append(registration(output, item))
        for regs in found.values():
            regs.sort(key=reg_sk)
        return found

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
        """Store whole registrations, 25 to a `BatchWriteItem`, retrying what DynamoDB leaves unprocessed.

        Whole items rather than updates: the lease makes this run the only writer of its
        output's items, and the run read them at its start, so nothing is lost by replacing them.
        """
        for start in range(0, len(registrations), BATCH):
            requests = [{"PutRequest": {"Item": reg_item(r)}} for r in registrations[start : start + BATCH]]
            self._batch_write(requests)
            for reg in registrations[start : start + BATCH]:
                if reg.output in self._seen:
                    self._seen[reg.output][2][reg_sk(reg)] = reg
