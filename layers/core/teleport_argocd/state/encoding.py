"""DynamoDB attribute values and keys: every item of an output under `pk = "output#<name>"`.

Times are ISO 8601 strings in UTC with microseconds, so they sort as text; epoch Numbers
(exact decimals, never floats) appear only where a condition or TTL needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

LEASE = "lease"
MAX_ERROR = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TRUE = {"BOOL": True}
FALSE = {"BOOL": False}


def pk(output: str) -> str:
    return f"output#{output}"


def lease_sk(shard: str) -> str:
    """The output's lease, or one shard's ("lease#2/4") when a schedule splits a large output."""
    return f"{LEASE}#{shard}" if shard else LEASE


def key(output: str, sk: str) -> dict[str, Any]:
    return {"pk": s(pk(output)), "sk": s(sk)}


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: int | Decimal) -> dict[str, str]:
    return {"N": str(value)}


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: state times must be timezone-aware")
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="microseconds")


def seconds(delta: timedelta) -> Decimal:
    """Exact seconds (a float would not round-trip microseconds)."""
    return Decimal(delta // timedelta(microseconds=1)).scaleb(-6)


def epoch(moment: datetime) -> Decimal:
    return seconds(_utc(moment) - EPOCH)


def from_epoch(value: str) -> datetime:
    return EPOCH + timedelta(microseconds=int(Decimal(value).scaleb(6)))


def string(item: Mapping[str, Any], name: str) -> str | None:
    return item[name]["S"] if name in item else None


def time_of(item: Mapping[str, Any], name: str) -> datetime | None:
    return datetime.fromisoformat(item[name]["S"]) if name in item else None


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
