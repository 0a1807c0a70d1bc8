"""`carried_out`: the steps run side by side, their outcomes handed back as they finish."""

from __future__ import annotations

import threading
import time
from contextlib import closing
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from teleport_argocd.execution import carried_out
from teleport_argocd.model import Outcome
from teleport_argocd.outcomes import StepOutcome
from teleport_argocd.plan import Step

AT = datetime(2026, 12, 7, tzinfo=UTC)


def steps(n: int) -> list[Step]:
    return cast(list[Step], [f"step-{i}" for i in range(n)])


class Applier:
    """Records which steps started and how many ran at once; each takes `seconds`."""

    def __init__(self, seconds: float = 0.0, fail: str = "") -> None:
        self.seconds, self.fail = seconds, fail
        self.started: list[Any] = []
        self.running = self.most = 0
        self._lock = threading.Lock()

    def __call__(self, step: Step) -> StepOutcome:
        with self._lock:
            self.started.append(step)
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.seconds)
            if step == self.fail:
                raise RuntimeError("a bug, not one cluster's failure")
            return StepOutcome(Outcome.UPDATED, AT)
        finally:
            with self._lock:
                self.running -= 1


def test_every_step_comes_back_once_with_at_most_concurrency_at_once() -> None:
    apply = Applier(seconds=0.002)
    done = list(carried_out(steps(60), apply, concurrency=4, keep_alive=lambda: None, every=60))
    assert sorted(cast(list[str], [s for s, _ in done])) == sorted(cast(list[str], steps(60)))
    assert all(o.outcome is Outcome.UPDATED for _, o in done)
    assert 1 < apply.most <= 4


def test_an_error_the_step_did_not_catch_reaches_the_caller() -> None:
    apply = Applier(fail="step-3")
    with pytest.raises(RuntimeError, match="a bug"):
        list(carried_out(steps(10), apply, concurrency=2, keep_alive=lambda: None, every=60))


def test_once_the_caller_stops_reading_no_further_step_starts() -> None:
    apply = Applier(seconds=0.01)
    with closing(
        carried_out(steps(200), apply, concurrency=4, keep_alive=lambda: None, every=60)
    ) as outcomes:
        next(outcomes)
    started = len(apply.started)
    assert apply.running == 0  # the steps under way finished before closing returned
    time.sleep(0.05)
    assert len(apply.started) == started < 20


def test_the_lease_is_kept_while_nothing_finishes() -> None:
    kept = []
    apply = Applier(seconds=0.2)
    done = list(carried_out(steps(1), apply, concurrency=1, keep_alive=lambda: kept.append(1), every=0.05))
    assert len(done) == 1 and len(kept) >= 2
