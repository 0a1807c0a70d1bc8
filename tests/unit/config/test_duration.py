"""Go durations, read as Go's time.ParseDuration reads them."""

from datetime import timedelta

import pytest

from teleport_argocd.config import parse_duration

from .documents import OUTPUT_YAML, problem_at


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("20m", timedelta(minutes=20)),
        ("1m0s", timedelta(minutes=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("30s", timedelta(seconds=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        (".5m", timedelta(seconds=30)),
        ("1h0m0s", timedelta(hours=1)),
        ("300ms", timedelta(milliseconds=300)),
        ("1500us", timedelta(microseconds=1500)),
        ("2µs", timedelta(microseconds=2)),
        ("0", timedelta(0)),
        ("+5m", timedelta(minutes=5)),
        ("-5m", timedelta(minutes=-5)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1d", "1h30", "1 h", "--1h", ".h", "1h-5m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_overflowing_duration() -> None:
    """`30000000000h` raised OverflowError from timedelta."""
    text = OUTPUT_YAML + "    credential_ttl: 30000000000h\n    renewal_interval: 20m\n"
    assert problem_at(text, "outputs[0].credential_ttl") == (
        "invalid duration: longer than Go's maximum duration (2562047h47m16.854775807s)"
    )


@pytest.mark.parametrize("text", ["2562048h", "9223372036854775808ns", "1" * 100_000 + "h", "2562047h60m"])
def test_parse_duration_refuses_what_overflows_gos_duration(text: str) -> None:
    with pytest.raises(ValueError, match="longer than Go's maximum duration"):
        parse_duration(text)


def test_parse_duration_at_gos_maximum() -> None:
    assert parse_duration("2562047h47m16.854775807s") == timedelta(
        hours=2562047, minutes=47, seconds=16, microseconds=854775
    )


def test_parse_duration_refuses_non_ascii_digits() -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("\u0663h")  # ARABIC-INDIC DIGIT THREE
