"""Noticing when Teleport grants a shorter certificate than asked for."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from teleport_argocd.teleport.lifetime import warn_if_shortened

ASKED_AT = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("granted", "warned"),
    [
        (timedelta(hours=1), False),
        (timedelta(minutes=59, seconds=30), False),  # rounding and backdating, not a cap
        (timedelta(hours=2), False),
        (timedelta(minutes=30), True),
        (timedelta(0), True),
    ],
)
def test_warns_only_for_a_real_cap(
    caplog: pytest.LogCaptureFixture, granted: timedelta, warned: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="teleport_argocd.teleport")
    warn_if_shortened("bot", timedelta(hours=1), ASKED_AT, ASKED_AT + granted)
    assert bool(caplog.records) is warned


def test_the_warning_names_both_durations(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="teleport_argocd.teleport")
    warn_if_shortened("impersonated", timedelta(hours=12), ASKED_AT, ASKED_AT + timedelta(hours=1, minutes=5))
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert (
        "impersonated certificate for 1h05m00s, shorter than the 12h00m00s asked for" in record.getMessage()
    )
