"""Keeping a synchronous answer within Lambda's response limit.

Lambda refuses a synchronous invocation's response over 6 MB (AWS Lambda developer guide,
"Lambda quotas": invocation payload, 6 MB each for request and response), and the caller then
gets an error instead of the report. A reload of a large fleet lists every cluster and every
registration, so long lists are cut, each cut noted with how many entries were left out.
"""

from __future__ import annotations

import json
from typing import Any

# Below 6 MB with room for the Lambda runtime's own envelope.
MAX_RESPONSE_BYTES = 5_500_000


def size_of(payload: Any) -> int:
    return len(json.dumps(payload, default=str).encode())


def fit(payload: dict[str, Any], limit: int | None = None) -> dict[str, Any]:
    """`payload`, or when its JSON is over `limit` bytes (`MAX_RESPONSE_BYTES`), a copy whose lists
    of records are cut to the longest length that fits; beside each cut list, `<key>_left_out`
    says how many it lost."""
    limit = MAX_RESPONSE_BYTES if limit is None else limit
    if size_of(payload) <= limit:
        return payload
    low, high = 0, _longest(payload)  # `low` always fits (every list empty, in the worst case)
    while low < high:
        middle = (low + high + 1) // 2
        if size_of(_capped(payload, middle)) <= limit:
            low = middle
        else:
            high = middle - 1
    return _capped(payload, low)


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(i, dict) for i in value)


def _longest(value: Any) -> int:
    if isinstance(value, dict):
        return max((_longest(v) for v in value.values()), default=0)
    if isinstance(value, list):
        inner = max((_longest(v) for v in value), default=0)
        return max(len(value), inner) if _is_records(value) else inner
    return 0


def _capped(value: Any, keep: int) -> Any:
    """A copy of `value` with every list of records cut to `keep` entries, the cut counted."""
    if isinstance(value, list):
        return [_capped(v, keep) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if _is_records(item) and len(item) > keep:
            out[key] = [_capped(v, keep) for v in item[:keep]]
            out[f"{key}_left_out"] = len(item) - keep
        else:
            out[key] = _capped(item, keep)
    return out
