"""Carrying out a plan's requests: each step applied returns a frozen outcome, through a bounded pool.

Applying a step (`apply_step`) makes its requests and returns what they did as a `StepOutcome`,
never raising for one cluster's failure, as kopf's `execute_handler_once` returns an `Outcome`;
`carried_out` runs the steps side by side and hands back each outcome as it arrives, and
`apply_all` tallies them and stores their registrations in batches while they come in.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from teleport_argocd.argocd import RenderedSecret
from teleport_argocd.errors import ForeignSecretError, NotManagedError, TeleportArgoCDError
from teleport_argocd.model import Outcome, Registration
from teleport_argocd.outcomes import StepOutcome, Tally, Where, registration_after
from teleport_argocd.plan import RENEWALS, Plan, Step
from teleport_argocd.ports import SecretStoreLike
from teleport_argocd.probe import OK, ConnectionCheck, check_due

logger = logging.getLogger(__name__)

# Registrations are written back in batches of this many as results arrive, so a run killed
# half-way keeps what it did.
FLUSH_EVERY = 25
# Batches in flight at once: sent one after another, the write-back was most of a warm renewal's
# wall time (bench/renewal_bench.py: 2.66 s of 3.52 s at 1,000 clusters waited on BatchWriteItem).
FLUSH_CONCURRENCY = 4


CheckConnection = Callable[[RenderedSecret, datetime], ConnectionCheck]


def apply_step(
    store: SecretStoreLike,
    step: Step,
    check: CheckConnection | None,
    clock: Callable[[], datetime],
    output: str,
) -> StepOutcome:
    """A step's requests: write the Secret (then check it connects), delete the one we last wrote,
    or, for an unchanged registration whose check is due, only the check. A failure is the outcome."""
    try:
        if step.action is Outcome.WOULD_DELETE:
            reg = step.registration
            assert reg is not None and reg.version is not None
            store.delete(reg.secret_namespace, reg.secret_name, reg.version)
            return StepOutcome(Outcome.DELETED, clock())
        assert step.secret is not None
        result, relabeled = None, False
        if step.action is not Outcome.UNCHANGED:
            known = step.known
            if step.relabel and known is not None:
                result = store.relabel(step.secret.manifest, known)
                relabeled = result is not None
            result = result or store.write(step.secret.manifest, known)
        checked = check(step.secret, clock()) if check is not None else None
    except Exception as exc:  # one cluster's failure never stops the others
        if not isinstance(exc, TeleportArgoCDError):
            logger.error("output %s: cluster %s: unexpected error", output, step.kube_cluster, exc_info=exc)
        refused = isinstance(exc, NotManagedError | ForeignSecretError)
        return StepOutcome(Outcome.REFUSED if refused else Outcome.FAILED, clock(), error=_describe(exc))
    if result is None:  # checked only
        return StepOutcome(Outcome.UNCHANGED, clock(), check=checked)
    return StepOutcome(result.action, clock(), version=result.version, check=checked, relabeled=relabeled)


def apply_all(
    steps: Sequence[Step],
    store: SecretStoreLike,
    *,
    check: CheckConnection | None,
    clock: Callable[[], datetime],
    where: Where,
    tally: Tally,
    store_registrations: Callable[[Sequence[Registration]], None],
    keep_alive: Callable[[], None],
    concurrency: int,
    every: float,
) -> None:
    """Carry the steps out (see `carried_out`), each checked when its check is due (`needs_check`);
    add each outcome to `tally` and store the registrations that follow in batches as they arrive,
    several batches in flight."""

    def apply(step: Step) -> StepOutcome:
        checking = check if check is not None and needs_check(step, clock()) else None
        return apply_step(store, step, checking, clock, where.output)

    buffer: list[Registration] = []
    flushes: list[Future[None]] = []
    with (
        ThreadPoolExecutor(max_workers=FLUSH_CONCURRENCY) as flusher,
        contextlib.closing(
            carried_out(steps, apply, concurrency=concurrency, keep_alive=keep_alive, every=every)
        ) as outcomes,
    ):
        for count, (step, done) in enumerate(outcomes, 1):
            tally.add(step, done)
            record = registration_after(step, done, where)
            _log(where.output, step, done, record)
            if record is not None:
                buffer.append(record)
            if buffer and (len(buffer) == FLUSH_EVERY or count == len(steps)):
                flushes.append(flusher.submit(store_registrations, buffer))
                buffer = []
    for flush in flushes:
        flush.result()  # a state table that refused a batch still fails the run, as before


def carried_out(
    steps: Sequence[Step],
    apply: Callable[[Step], StepOutcome],
    *,
    concurrency: int,
    keep_alive: Callable[[], None],
    every: float,
) -> Generator[tuple[Step, StepOutcome]]:
    """Each step and its outcome as it finishes, at most `concurrency` at once; `keep_alive` is
    called every `every` seconds meanwhile (the lease), whether or not anything finished.

    Threads of our own take the steps from one queue and put each outcome on another: a
    `ThreadPoolExecutor` future per step (its lock, condition and done callback) cost twice the
    CPU of this hand-off (0.037 against 0.019 CPU-s per 1,000 steps of 5 ms each, 16 threads).
    Once the caller stops reading, no further step starts; the ones under way finish first.
    """
    todo: queue.SimpleQueue[Step] = queue.SimpleQueue()
    for step in steps:
        todo.put(step)
    finished: queue.SimpleQueue[tuple[Step, StepOutcome | BaseException]] = queue.SimpleQueue()
    stopping = threading.Event()

    def carry_out() -> None:
        while not stopping.is_set():
            try:
                step = todo.get_nowait()
            except queue.Empty:
                return
            try:
                finished.put((step, apply(step)))
            except BaseException as exc:  # handed to the caller, as a future's result would be
                finished.put((step, exc))

    threads = [
        threading.Thread(target=carry_out, name=f"step-{n}", daemon=True)
        for n in range(min(concurrency, len(steps)))
    ]
    for thread in threads:
        thread.start()
    renewed_at = time.monotonic()
    try:
        done = 0
        while done < len(steps):
            try:
                step, outcome = finished.get(timeout=max(0.0, renewed_at + every - time.monotonic()))
            except queue.Empty:
                pass  # nothing finished for a while: still, keep the lease
            else:
                done += 1
                if isinstance(outcome, BaseException):
                    raise outcome
                yield step, outcome
            if time.monotonic() - renewed_at >= every:
                keep_alive()
                renewed_at = time.monotonic()
    finally:
        stopping.set()
        for thread in threads:
            thread.join()


def work(decided: Plan, checking: bool, now: datetime) -> list[Step]:
    """The steps that take requests, failed and oldest writes first, then deletions, then the
    connection checks due on unchanged registrations (`checking`: checks are made at all)."""
    due = checks_due(decided, now) if checking else []
    return sorted(decided.writes, key=_oldest_first) + decided.deletes + due


def checks_due(decided: Plan, now: datetime) -> list[Step]:
    """Unchanged registrations whose connection check is due."""
    return [s for s in decided.steps if s.action is Outcome.UNCHANGED and needs_check(s, now)]


def needs_check(step: Step, now: datetime) -> bool:
    """Check after a create or a change, and hourly; a renewal alone (a new certificate for the same
    roles, CA and server) of a registration that connected within the hour is not checked again."""
    reg = step.registration
    if step.action is Outcome.WOULD_DELETE:
        return False
    if reg is not None and reg.relinquished_at is not None and not step.writes:
        return False  # someone else's Secret, left alone: nothing of ours to check
    if reg is None or check_due(reg.connection_at, now, reg.connection):
        return True
    # Labels or annotations alone (`relabel`) leave what a check tries as it was.
    changed = (reg.fingerprint != step.fingerprint and not step.relabel) or reg.last_error is not None
    changed = changed or not reg.matches
    return step.writes and (changed or reg.connection != OK)


def _log(output: str, step: Step, done: StepOutcome, record: Registration | None) -> None:
    """INFO for what changed the output (a cluster registered, changed or pruned), WARNING for a
    failure; a renewal alone only at DEBUG: at thousands a run, those lines were a sixth of a
    renewal's CPU (Powertools' JSON) and most of its log volume, and the run's summary counts them."""
    if done.outcome is Outcome.DELETED:
        logger.info("output %s: cluster %s pruned (%s)", output, step.kube_cluster, step.reason)
    elif done.outcome in (Outcome.CREATED, Outcome.UPDATED):
        level = logging.DEBUG if step.reason in RENEWALS else logging.INFO
        logger.log(
            level, "output %s: cluster %s %s (%s)", output, step.kube_cluster, done.outcome, step.reason
        )
    elif record is not None and done.outcome is Outcome.REFUSED and record.relinquished_at is not None:
        logger.warning(
            "output %s: cluster %s relinquished after %d refusals: %s",
            output,
            step.kube_cluster,
            record.refusals,
            done.error,
        )
    elif done.outcome in (Outcome.FAILED, Outcome.REFUSED):
        logger.warning("output %s: cluster %s not written: %s", output, step.kube_cluster, done.error)


def _oldest_first(step: Step) -> datetime:
    """Failed and never-written clusters first, then the oldest writes, so none waits behind the rest."""
    reg = step.registration
    if reg is None or reg.last_error is not None or reg.last_written is None:
        return datetime.min.replace(tzinfo=UTC)
    return reg.last_written


def _describe(exc: BaseException) -> str:
    """A short, key-free description of a per-cluster failure."""
    if isinstance(exc, TeleportArgoCDError):
        return str(exc)[:1000]
    return f"unexpected {type(exc).__name__}"
