"""The renewal function's reading of the Input its two schedules deliver (template.yaml)."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from standins.handlers import event, load_handler, unload_handlers


@pytest.fixture
def renew() -> Iterator[ModuleType]:
    yield load_handler("renew")
    unload_handlers()  # a later stack's tests import it afresh, as they would otherwise


def test_reads_both_schedules_inputs(renew: ModuleType) -> None:
    schedule = renew.ScheduleEvent.parse(event("schedule.json"))
    assert schedule.trigger == "schedule"
    assert renew.ScheduleEvent.parse(event("discovery.json")).trigger == "discovery"
    assert renew.ScheduleEvent.parse({}) == renew.ScheduleEvent()  # every field has a default


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (None, "not an object"),
        (["schedule"], "not an object"),
        ({"trigger": "weekly"}, "trigger must be one of schedule, discovery"),
        ({"trigger": 1, "scheduled_time": None}, "trigger, scheduled_time must be strings"),
    ],
)
def test_anything_else_fails_the_invocation_naming_what_is_wrong(
    renew: ModuleType, payload: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        renew.ScheduleEvent.parse(payload)
