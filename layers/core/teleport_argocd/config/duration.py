"""Go durations ("1h30m", "90s"), read as Go's time.ParseDuration reads them."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

# Go's time.Duration is an int64 of nanoseconds; time.ParseDuration refuses anything longer.
MAX_GO_DURATION_NS = 2**63 - 1


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration ("1h", "20m", "1m0s", "1h30m", "1.5h", "90s"); raises ValueError."""
    sign, rest = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if rest == "0":
        return timedelta(0)
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    nanoseconds = Decimal(0)
    pos = 0
    while pos < len(rest):
        match = _DURATION_PART.match(rest, pos)
        if not match:
            raise ValueError(f"invalid duration {text!r}: expected a Go duration such as '1h30m' or '90s'")
        number = Decimal(match["number"])
        # Checked before multiplying: a number of a million digits overflows Decimal's context.
        if number > MAX_GO_DURATION_NS:
            raise ValueError(_TOO_LONG)
        nanoseconds += number * _NANOSECONDS[match["unit"]]
        if nanoseconds > MAX_GO_DURATION_NS:
            raise ValueError(_TOO_LONG)
        pos = match.end()
    return timedelta(microseconds=sign * int(nanoseconds / 1000))


_TOO_LONG = "invalid duration: longer than Go's maximum duration (2562047h47m16.854775807s)"
# ASCII digits only: Python's \d also matches other scripts' digits, which Go refuses.
_DURATION_PART = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<unit>ns|us|µs|μs|ms|s|m|h)")
_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
