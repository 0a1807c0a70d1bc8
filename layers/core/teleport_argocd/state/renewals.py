"""Renewal ledgers: renewals recorded a few items per output, not one item per registration.

A renewal rewrites a Secret with a new certificate and nothing else. What its registration learns
is when the Secret was written, which certificate it holds (its expiry and digest), the Secret's
new resourceVersion and, about once an hour, a connection check that passed. Writing each
registration item whole again for that costs most of a kilobyte of DynamoDB writes per cluster and
per renewal, and most of the CPU a warm renewal spends beyond its Kubernetes writes. So a run
keeps those changes in `LEDGERS` items per output (`sk = "renewed#<bucket>"`, the bucket a hash
of the cluster's names) and readers lay them over the registration items they read.

An entry applies to a registration item only while it is newer than the item's `last_attempt`:
every write, failure or deletion stamps that, so a later whole write of the item needs no change
to the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from operator import attrgetter
from typing import Any

from teleport_argocd.model import Registration, SecretVersion, shard_of
from teleport_argocd.state.encoding import iso, key, n, s

# Buckets per output: an event reads the one of its cluster; a renewal writes each it touches.
LEDGERS = 8
LEDGER_PREFIX = "renewed#"  # the ledgers' sort keys: "renewed#<bucket>"
# Under DynamoDB's 400 KB item limit with room to spare; what would not fit is written whole.
MAX_LEDGER_BYTES = 300_000
# What a renewal changes in a registration; anything else changed means a whole write. The
# connection check may change too when it left no message (it passed, or none was made).
_RENEWED = ("last_written", "last_attempt", "cert_expires", "cert_id", "version")
_CHECKED = ("connection", "connection_at", "connection_message")
# The other fields, read as one tuple each (a `replace` and a comparison of whole registrations
# cost about 25 µs a registration: most of a renewal's write-back once it went to the ledgers).
_UNRENEWED = [f.name for f in fields(Registration) if f.name not in _RENEWED]
_KEPT = attrgetter(*(name for name in _UNRENEWED if name not in _CHECKED))
_KEPT_WITH_CHECK = attrgetter(*_UNRENEWED)


@dataclass
class Ledger:
    """One bucket: each registration's last renewal, and the expiry of each certificate they name."""

    bucket: int
    revision: int = 0  # 0: no item yet; each write adds one, on the condition that it had not moved
    # "<teleport cluster>#<kube cluster>" -> "<written at>|<cert id>|<resourceVersion>", then
    # "|<checked at>|<connection>" when the check left no message (`checked at` empty: none made)
    entries: dict[str, str] = field(default_factory=dict)
    certs: dict[str, str] = field(default_factory=dict)  # cert id -> expiry

    def size(self) -> int:
        """An upper bound of the item's size as DynamoDB counts it (names and values, in bytes)."""
        return 200 + sum(_pair_size(k, v) for k, v in [*self.entries.items(), *self.certs.items()])


def entry_size(name: str, ledger: Ledger) -> int:
    """What the entry `name` adds to `ledger`'s size (0 when it has none)."""
    value = ledger.entries.get(name)
    return 0 if value is None else _pair_size(name, value)


def _pair_size(name: str, value: str) -> int:
    return len(name.encode()) + len(value.encode()) + 4


def entry_name(teleport_cluster: str, kube_cluster: str) -> str:
    """A cluster's name in the ledgers: the key of its entry, and what its bucket is a hash of."""
    return f"{teleport_cluster}#{kube_cluster}"


def entry_key(reg: Registration) -> str:
    return entry_name(reg.teleport_cluster, reg.kube_cluster)


def bucket_of(name: str) -> int:
    """The ledger holding the entry `name` (`entry_name`)."""
    return shard_of(name, LEDGERS)


def ledger_sk(bucket: int) -> str:
    return f"{LEDGER_PREFIX}{bucket}"


def renewal_only(before: Registration, after: Registration) -> bool:
    """Whether `after` is `before` with the same Secret written again later, and nothing else
    changed but what a renewal changes."""
    kept = _KEPT if _check_recorded(after) else _KEPT_WITH_CHECK
    return (
        before.version is not None
        and after.version is not None
        and before.version.uid == after.version.uid
        and after.last_written is not None
        and after.last_written == after.last_attempt
        and (before.last_attempt is None or after.last_attempt > before.last_attempt)
        and after.cert_expires is not None
        and bool(after.cert_id)
        and "|" not in after.version.resource_version
        and kept(after) == kept(before)
    )


def _check_recorded(reg: Registration) -> bool:
    """Whether an entry carries `reg`'s connection check: one that left no message."""
    return not reg.connection_message and "|" not in reg.connection


def recorded(ledger: Ledger, reg: Registration) -> None:
    """Enter `reg`'s renewal in `ledger`, unless the ledger holds a later one."""
    assert reg.last_written is not None and reg.cert_expires is not None and reg.version is not None
    name, at = entry_key(reg), iso(reg.last_written)
    current = ledger.entries.get(name)
    if current is not None and _written_at(current) > at:
        return
    value = f"{at}|{reg.cert_id}|{reg.version.resource_version}"
    if _check_recorded(reg):
        value += f"|{iso(reg.connection_at) if reg.connection_at else ''}|{reg.connection}"
    ledger.entries[name] = value
    ledger.certs[reg.cert_id] = iso(reg.cert_expires)


def forget(ledger: Ledger, reg: Registration) -> None:
    """Drop the entry of a registration written whole after it."""
    name, attempt = entry_key(reg), reg.last_attempt
    current = ledger.entries.get(name)
    if current is not None and attempt is not None and _written_at(current) <= iso(attempt):
        del ledger.entries[name]


def _written_at(value: str) -> str:
    """When an entry's Secret was written, as the ISO text that sorts as time."""
    return value.split("|", 1)[0]


def without_unused_certs(ledger: Ledger) -> None:
    named = {value.split("|", 2)[1] for value in ledger.entries.values()}
    ledger.certs = {cert: expiry for cert, expiry in ledger.certs.items() if cert in named}


def renewed(reg: Registration, ledgers: Mapping[int, Ledger]) -> Registration:
    """`reg` as its latest renewal left it: the item, with the ledger's entry laid over it when
    the entry is newer than the item's last attempt."""
    if not ledgers or reg.version is None:
        return reg
    name = entry_key(reg)
    ledger = ledgers.get(bucket_of(name))
    value = ledger.entries.get(name) if ledger else None
    if ledger is None or value is None:
        return reg
    uid = reg.version.uid
    at_text, cert_id, resource_version, *checked = value.split("|")
    at, expiry = datetime.fromisoformat(at_text), ledger.certs.get(cert_id)
    if expiry is None or (reg.last_attempt is not None and at <= reg.last_attempt):
        return reg
    if len(checked) == 2:
        reg = replace(
            reg,
            connection=checked[1],
            connection_at=datetime.fromisoformat(checked[0]) if checked[0] else None,
            connection_message="",
        )
    return replace(
        reg,
        last_written=at,
        last_attempt=at,
        cert_expires=datetime.fromisoformat(expiry),
        cert_id=cert_id,
        version=SecretVersion(uid, resource_version),
    )


def ledger_item(output: str, ledger: Ledger) -> dict[str, Any]:
    return {
        **key(output, ledger_sk(ledger.bucket)),
        "revision": n(ledger.revision),
        "entries": {"M": {k: s(v) for k, v in ledger.entries.items()}},
        "certs": {"M": {k: s(v) for k, v in ledger.certs.items()}},
    }


def ledger_of(item: Mapping[str, Any]) -> Ledger:
    return Ledger(
        bucket=int(item["sk"]["S"].removeprefix(LEDGER_PREFIX)),
        revision=int(item["revision"]["N"]),
        entries={k: v["S"] for k, v in item.get("entries", {}).get("M", {}).items()},
        certs={k: v["S"] for k, v in item.get("certs", {}).get("M", {}).items()},
    )
