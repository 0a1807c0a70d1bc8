"""StateStore against a moto DynamoDB server with the table as the SAM template declares it."""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from unit.fakes import Clock

from standins.aws import MotoServer
from standins.template import create_tables
from teleport_argocd.errors import StateError
from teleport_argocd.model import Absence, Registration, SecretVersion
from teleport_argocd.state import REGISTRY_MAX_AGE, Lease, RunRecord, StateStore, registry
from teleport_argocd.state.renewals import LEDGERS, bucket_of, entry_name

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
CERT_EXPIRES = T0 + timedelta(hours=1)
WHOLE_READ = 2  # Queries that read a whole registry: its registrations, then its renewal ledgers


@pytest.fixture
def dynamodb(moto: MotoServer) -> Any:
    return moto.client("dynamodb")


@pytest.fixture
def table(dynamodb: Any) -> str:
    """A fresh table per test, as template.yaml declares the state table (cheaper than a reset)."""
    name = f"state-{uuid.uuid4().hex[:8]}"
    create_tables(dynamodb, {"StateTable": name})
    return name


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(table: str, dynamodb: Any, clock: Clock) -> StateStore:
    return StateStore(table, client=dynamodb, clock=clock)


def registration(kube_cluster: str = "prod", **overrides: Any) -> Registration:
    fields: dict[str, Any] = {
        "output": "main",
        "teleport_cluster": "example.teleport.sh",
        "kube_cluster": kube_cluster,
        "secret_namespace": "argocd",
        "secret_name": f"cluster-{kube_cluster}",
        "server": f"https://example.teleport.sh/v1/teleport/x/{kube_cluster}",
        "labels": {"env": "prod"},
        "fingerprint": "f" * 32,
        "version": SecretVersion(f"uid-{kube_cluster}", "42"),
        "first_written": T0,
        "last_written": T0,
        "last_attempt": T0,
        "cert_expires": CERT_EXPIRES,
        **overrides,
    }
    return Registration(**fields)


# -- lease ---------------------------------------------------------------------------


def test_acquire_free_lease_is_one_write(store: StateStore) -> None:
    lease = store.try_acquire("main", run_id="run-1", duration=LEASE, reason="schedule")

    assert lease == Lease("main", "run-1", T0 + LEASE)
    assert store.writes == 1
    status = store.lease_status("main")
    assert status["holder"] == "run-1"
    assert status["reason"] == "schedule"
    assert status["expires_at"] == "2026-11-21T10:05:00.000000+00:00"
    assert status["acquired"] == "2026-11-21T10:00:00.000000+00:00"
    assert status["expired"] is False
    assert status["pending"] is False


def test_trigger_during_run_sets_pending(store: StateStore, clock: Clock) -> None:
    assert store.try_acquire("main", run_id="run-1", duration=LEASE, reason="schedule")
    clock.advance(timedelta(seconds=30))

    assert store.try_acquire("main", run_id="run-2", duration=LEASE, reason="audit:kube.create") is None
    assert store.try_acquire("main", run_id="run-3", duration=LEASE, reason="manual") is None

    status = store.lease_status("main")
    assert status["holder"] == "run-1"
    assert status["pending"] is True
    assert status["pending_reasons"] == ["audit:kube.create", "manual"]
    assert status["pending_since"] == "2026-11-21T10:00:30.000000+00:00"


def test_finish_with_pending_keeps_lease_then_releases(store: StateStore, clock: Clock) -> None:
    lease = store.try_acquire("main", run_id="run-1", duration=LEASE, reason="schedule")
    assert lease
    assert store.try_acquire("main", run_id="run-2", duration=LEASE, reason="manual") is None
    clock.advance(timedelta(minutes=4))

    assert store.finish(lease) is True
    status = store.lease_status("main")
    assert status["holder"] == "run-1"
    assert status["pending"] is False
    assert status["pending_reasons"] == []
    assert status["expires_at"] == "2026-11-21T10:09:00.000000+00:00"  # now + the lease's length

    assert store.finish(lease) is False
    status = store.lease_status("main")
    assert status["holder"] is None
    assert status["expires_at"] is None
    assert status["last_run_id"] == "run-1"
    assert status["last_finished"] == "2026-11-21T10:04:00.000000+00:00"
    json.dumps(status)
    assert store.try_acquire("main", run_id="run-4", duration=LEASE, reason="schedule")


def test_acquire_retried_after_its_answer_was_lost_still_holds_the_lease(
    table: str, dynamodb: Any, clock: Clock
) -> None:
    """botocore retries a request whose answer was lost (a 5xx or a reset after DynamoDB committed
    it); the retry of our own acquire must find the lease ours, not someone else's."""

    class LostAnswer:
        def update_item(self, **kwargs: Any) -> dict[str, Any]:
            dynamodb.update_item(**kwargs)  # committed; the answer never arrives...
            return dynamodb.update_item(**kwargs)  # type: ignore[no-any-return]  # ...so botocore sends it again

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    store = StateStore(table, client=LostAnswer(), clock=clock)
    lease = store.try_acquire("main", run_id="run-1", duration=LEASE, reason="schedule")
    assert lease == Lease("main", "run-1", T0 + LEASE)
    assert store.lease_status("main")["pending"] is False


def test_outputs_have_separate_leases(store: StateStore) -> None:
    assert store.try_acquire("a", run_id="run-1", duration=LEASE, reason="schedule")
    assert store.try_acquire("b", run_id="run-2", duration=LEASE, reason="schedule")


def test_expired_lease_is_taken_over(store: StateStore, clock: Clock) -> None:
    """A Lambda that died mid-run blocks the output only until its lease expires."""
    dead = store.try_acquire("main", run_id="dead", duration=LEASE, reason="schedule")
    assert dead
    assert store.try_acquire("main", run_id="run-2", duration=LEASE, reason="manual") is None
    clock.advance(LEASE + timedelta(seconds=1))
    assert store.lease_status("main")["expired"] is True

    lease = store.try_acquire("main", run_id="run-3", duration=LEASE, reason="schedule")

    assert lease == Lease("main", "run-3", clock.now + LEASE, taken_over=True)
    status = store.lease_status("main")
    assert (status["holder"], status["pending"]) == ("run-3", False)  # run-3 covers run-2's trigger
    # The old holder wakes up: it can neither release nor extend the new holder's lease.
    assert store.finish(dead) is False
    with pytest.raises(StateError, match="lost the lease"):
        store.extend(dead, LEASE)
    assert store.lease_status("main")["holder"] == "run-3"


def test_extend_moves_expiry(store: StateStore, clock: Clock) -> None:
    lease = store.try_acquire("main", run_id="run-1", duration=LEASE, reason="schedule")
    assert lease
    clock.advance(timedelta(minutes=4))

    extended = store.extend(lease, timedelta(minutes=10))

    assert extended == Lease("main", "run-1", clock.now + timedelta(minutes=10))
    clock.advance(timedelta(minutes=5))
    assert store.try_acquire("main", run_id="run-2", duration=LEASE, reason="manual") is None


def test_extend_after_release_raises(store: StateStore) -> None:
    lease = store.try_acquire("main", run_id="run-1", duration=LEASE, reason="schedule")
    assert lease
    assert store.finish(lease) is False

    with pytest.raises(StateError):
        store.extend(lease, LEASE)


def test_pending_reasons_are_capped(store: StateStore) -> None:
    assert store.try_acquire("main", run_id="run-0", duration=LEASE, reason="schedule")
    for i in range(15):
        assert store.try_acquire("main", run_id=f"run-{i + 1}", duration=LEASE, reason=f"audit:{i}") is None
    assert store.try_acquire("main", run_id="run-x", duration=LEASE, reason="audit:3") is None

    status = store.lease_status("main")
    assert status["pending"] is True
    assert len(status["pending_reasons"]) == 10
    assert "audit:3" in status["pending_reasons"]


class ReleaseBeforeSecondWrite:
    """A client through which the holder finishes right after the contender's first write."""

    def __init__(self, client: Any, release: Any) -> None:
        self._client = client
        self._release = release
        self._calls = 0

    def update_item(self, **kwargs: Any) -> Any:
        self._calls += 1
        if self._calls == 2:
            self._release()
        return self._client.update_item(**kwargs)


def test_acquire_retries_when_lease_is_released_between_writes(
    store: StateStore, table: str, dynamodb: Any, clock: Clock
) -> None:
    holder = store.try_acquire("main", run_id="run-1", duration=LEASE, reason="schedule")
    assert holder
    client = ReleaseBeforeSecondWrite(dynamodb, lambda: store.finish(holder))
    contender = StateStore(table, client=client, clock=clock)

    lease = contender.try_acquire("main", run_id="run-2", duration=LEASE, reason="manual")

    # taken: lost; pending (with reason, then without): no live holder; taken: won.
    assert lease == Lease("main", "run-2", T0 + LEASE, previous_finished=T0)
    assert contender.writes == 4
    assert store.lease_status("main")["pending"] is False


class Atomic:
    """Passes requests one at a time: moto checks a condition and applies the write without a lock,
    so two racing requests can both pass; DynamoDB applies each single-item write atomically.
    Our operations still interleave freely between their requests."""

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, operation: str) -> Any:
        def call(**kwargs: Any) -> Any:
            with self._lock:
                return getattr(self._client, operation)(**kwargs)

        return call


def test_concurrent_triggers_are_never_lost(table: str, moto: MotoServer) -> None:
    """Triggers race with runs finishing: runs never overlap, and a run that a trigger found
    in progress always runs once more."""
    ticks = itertools.count()  # orders events across threads
    lock = threading.Lock()
    active = 0
    overlaps = 0
    deferred: list[tuple[int, int]] = []  # (sent, returned) of triggers that found the lease held
    runs: list[tuple[int, int, bool]] = []  # (started, finishing, ran again)
    failures: list[BaseException] = []

    def tick() -> int:
        with lock:
            return next(ticks)

    def run_once() -> None:
        nonlocal active, overlaps
        with lock:
            active += 1
            overlaps += active > 1
        time.sleep(0.2)
        with lock:
            active -= 1

    def invoke(worker: int, client: Any) -> None:
        try:
            triggers(worker, StateStore(table, client=client))  # one store per "Lambda"; real clock
        except BaseException as exc:
            failures.append(exc)

    def triggers(worker: int, store: StateStore) -> None:
        for i in range(8):
            sent = tick()
            lease = store.try_acquire("main", run_id=f"run-{worker}-{i}", duration=LEASE, reason="audit")
            if lease is None:
                deferred.append((sent, tick()))
                continue
            again = True
            while again:
                started = tick()
                run_once()
                finishing = tick()
                again = store.finish(lease)
                runs.append((started, finishing, again))

    threads = [threading.Thread(target=invoke, args=(n, Atomic(moto.client("dynamodb")))) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert failures == []
    assert overlaps == 0
    # A trigger sent and answered within one run set `pending` while that run held the lease.
    within = [
        again
        for sent, returned in deferred
        for started, finishing, again in runs
        if started < sent and returned < finishing
    ]
    assert within, "no trigger arrived within a run: the test raced nothing"
    assert all(within)
    status = StateStore(table, client=moto.client("dynamodb")).lease_status("main")
    assert (status["holder"], status["pending"]) == (None, False)


# -- registrations --------------------------------------------------------------------


def test_registrations_round_trip_every_field(store: StateStore) -> None:
    written = [
        registration("a"),
        registration(
            "b",
            version=None,
            last_error="403 Forbidden",
            last_error_at=T0,
            matches=False,
            unmatched_since=T0 + timedelta(minutes=3),
            deleted_at=T0 + timedelta(hours=2),
            labels={},
        ),
        registration(
            "c",
            matches=False,
            unmatched_since=T0,
            absence=Absence.DESELECTED,
            absence_banked=timedelta(minutes=30, microseconds=7),
            absence_seen=T0 + timedelta(minutes=40),
            connection="tls-error",
            connection_at=T0,
            connection_message="certificate verify failed",
            refusals=3,
            relinquished_at=T0 + timedelta(hours=1),
            cluster_name="root-c",
            held_by=("argocd/guestbook", "team-a/api"),
        ),
    ]
    store.put_registrations(written)
    assert store.registrations("main") == written


def test_registrations_are_batched_25_to_a_request(store: StateStore) -> None:
    store.put_registrations([registration(f"c{i:03d}") for i in range(60)])
    assert store.writes == 3
    assert len(store.registrations("main")) == 60


def test_a_put_replaces_the_whole_registration(store: StateStore) -> None:
    store.put_registrations([registration(last_error="old", last_error_at=T0)])
    store.put_registrations([registration()])
    [reg] = store.registrations("main")
    assert reg.last_error is None and reg.last_error_at is None


def test_unprocessed_items_are_retried(table: str, dynamodb: Any, clock: Clock) -> None:
    """BatchWriteItem may leave items unprocessed under throttling (DynamoDB API reference,
    BatchWriteItem: "UnprocessedItems"); they are sent again until none is left."""

    class Throttling:
        def __init__(self) -> None:
            self.calls = 0

        def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            self.calls += 1
            [(name, requests)] = RequestItems.items()
            if self.calls == 1:  # the first answer processes only the first item
                dynamodb.batch_write_item(RequestItems={name: requests[:1]})
                return {"UnprocessedItems": {name: requests[1:]}}
            return dynamodb.batch_write_item(RequestItems=RequestItems)  # type: ignore[no-any-return]

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    client = Throttling()
    store = StateStore(table, client=client, clock=clock)
    store.put_registrations([registration(f"c{i}") for i in range(5)])
    assert client.calls == 2
    assert len(store.registrations("main")) == 5


def test_errors_are_truncated(store: StateStore) -> None:
    store.put_registrations([registration(last_error="x" * 5000)])
    [reg] = store.registrations("main")
    assert reg.last_error is not None
    assert len(reg.last_error) == 1000


def test_registrations_span_pages(store: StateStore, dynamodb: Any, table: str) -> None:
    # DynamoDB pages at 1 MB; fewer, larger items get there faster than 1,200 small ones under moto.
    count = 150
    labels = {f"label-{i}": "v" * 1000 for i in range(8)}  # ~8 KB an item
    store.put_registrations([registration(f"c{i:04d}", labels=labels) for i in range(count)])
    store.put_registrations([registration("k", output="other")])
    assert store.try_acquire("main", run_id="r", duration=LEASE, reason="schedule")

    first_page = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :reg)",
        ExpressionAttributeValues={":pk": {"S": "output#main"}, ":reg": {"S": "reg#"}},
    )
    assert "LastEvaluatedKey" in first_page

    names = [r.kube_cluster for r in store.registrations("main")]
    assert names == [f"c{i:04d}" for i in range(count)]
    assert [r.kube_cluster for r in store.registrations("other")] == ["k"]


def test_named_registrations_read_only_those_items_in_one_request(
    table: str, dynamodb: Any, clock: Clock
) -> None:
    """An event's read: the named clusters of one Teleport cluster in each output asked for, one
    BatchGetItem however large the registry, and an output without them gets an empty list."""
    client = CountingClient(dynamodb)
    store = StateStore(table, client=client, clock=clock)
    store.put_registrations([registration(f"c{i:03d}") for i in range(150)])
    store.put_registrations([registration("c005", output="other")])
    store.put_registrations([registration("c007", teleport_cluster="old.teleport.sh")])
    client.calls.clear()

    found = store.named_registrations(
        ["main", "other", "empty"], "example.teleport.sh", {"c007", "c005", "missing"}
    )

    assert {o: [(r.output, r.kube_cluster) for r in regs] for o, regs in found.items()} == {
        "main": [("main", "c005"), ("main", "c007")],
        "other": [("other", "c005")],
        "empty": [],
    }
    assert found["main"][0] == registration("c005")
    assert all(r.teleport_cluster == "example.teleport.sh" for regs in found.values() for r in regs)
    assert client.calls == {"batch_get_item": 1}
    client.calls.clear()
    every = store.named_registrations(["main"], "example.teleport.sh", {f"c{i:03d}" for i in range(150)})
    assert [r.kube_cluster for r in every["main"]] == [f"c{i:03d}" for i in range(150)]
    assert client.calls == {"batch_get_item": 2}  # at most 100 keys a request


def test_unprocessed_keys_are_read_again(table: str, dynamodb: Any, clock: Clock) -> None:
    """BatchGetItem may leave keys unprocessed (DynamoDB API reference, BatchGetItem:
    "UnprocessedKeys"); they are asked for again until none is left."""

    class Throttling:
        def __init__(self) -> None:
            self.calls = 0

        def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
            self.calls += 1
            [(name, wanted)] = RequestItems.items()
            if self.calls == 1:  # the first answer reads only the first key
                first = dynamodb.batch_get_item(RequestItems={name: {**wanted, "Keys": wanted["Keys"][:1]}})
                return {**first, "UnprocessedKeys": {name: {**wanted, "Keys": wanted["Keys"][1:]}}}
            return dynamodb.batch_get_item(RequestItems=RequestItems)  # type: ignore[no-any-return]

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    client = Throttling()
    store = StateStore(table, client=client, clock=clock)
    store.put_registrations([registration(f"c{i}") for i in range(5)])
    found = store.named_registrations(["main"], "example.teleport.sh", {"c1", "c2", "c3"})
    assert client.calls == 2
    assert [r.kube_cluster for r in found["main"]] == ["c1", "c2", "c3"]


def test_a_named_read_is_never_kept_as_the_whole_registry(table: str, dynamodb: Any, clock: Clock) -> None:
    """A run that read only its clusters (while no run held the lease, as a run reads) and wrote one
    leaves no warm copy of the registry behind: the next run reads it all."""
    client = CountingClient(dynamodb)
    store = StateStore(table, client=client, clock=clock)
    store.put_registrations([registration("a"), registration("b")])
    first = store.try_acquire("main", run_id="run-0", duration=LEASE, reason="schedule")
    assert first
    store.finish(first)
    [a, _] = StateStore(table, client=dynamodb, clock=clock).registrations("main")  # kept warm
    assert store.named_registrations(["main"], "example.teleport.sh", {"b"})["main"][0].kube_cluster == "b"
    lease = store.try_acquire("main", run_id="run-1", duration=LEASE, reason="event")
    assert lease
    store.put_registrations([registration("b", last_error="403 Forbidden")])
    clock.advance(timedelta(seconds=1))
    store.finish(lease)
    fresh = StateStore(table, client=client, clock=clock)  # the next invocation, same process
    client.calls.clear()

    regs = {r.kube_cluster: r for r in fresh.registrations("main")}

    assert regs == {"a": a, "b": registration("b", last_error="403 Forbidden")}
    assert client.calls["query"] == WHOLE_READ


# -- runs -------------------------------------------------------------------------------


def run_record(run_id: str, started: datetime, **overrides: Any) -> RunRecord:
    args: dict[str, Any] = {
        "output": "main",
        "run_id": run_id,
        "trigger": "schedule",
        "started": started,
        "finished": started + timedelta(seconds=12, microseconds=345),
        "dry_run": False,
        "counts": {"selected": 3, "written": 2, "created": 1, "updated": 1, "failed": 1, "unmatched": 0},
        "errors": ("prod: 403 Forbidden",),
        **overrides,
    }
    return RunRecord(**args)


def test_runs_newest_first_with_limit(store: StateStore) -> None:
    records = [run_record(f"run-{i}", T0 + timedelta(minutes=20 * i)) for i in range(5)]
    for record in records:
        store.put_run(record)

    assert store.runs("main", limit=3) == records[:1:-1]
    assert store.runs("main") == records[::-1]
    assert store.runs("other") == []


def test_run_record_round_trips(store: StateStore) -> None:
    record = run_record("run-1", T0, trigger="manual", dry_run=True, errors=("a" * 3000, "b"), counts={})

    store.put_run(record)

    [got] = store.runs("main")
    assert got == run_record(
        "run-1", T0, trigger="manual", dry_run=True, errors=("a" * 999 + "…", "b"), counts={}
    )


def test_expired_runs_are_filtered(store: StateStore, clock: Clock) -> None:
    old = run_record("old", T0 - timedelta(days=20))
    recent = run_record("recent", T0 - timedelta(days=1))
    short = run_record("short", T0 - timedelta(hours=2))
    store.put_run(old)
    store.put_run(recent)
    store.put_run(short, retention=timedelta(hours=1))

    assert store.runs("main") == [recent]  # moto still holds the other two, as DynamoDB may
    clock.advance(timedelta(days=14))
    assert store.runs("main", limit=1) == []


# -- errors ----------------------------------------------------------------------------------


def test_dynamodb_errors_become_state_errors(dynamodb: Any, clock: Clock) -> None:
    store = StateStore("no-such-table", client=dynamodb, clock=clock)

    with pytest.raises(StateError, match="no-such-table"):
        store.registrations("main")
    with pytest.raises(StateError):
        store.put_registrations([registration()])
    with pytest.raises(StateError):
        store.try_acquire("main", run_id="r", duration=LEASE, reason="schedule")


def test_naive_times_are_rejected(table: str, dynamodb: Any) -> None:
    store = StateStore(table, client=dynamodb, clock=lambda: datetime(2026, 1, 1))

    with pytest.raises(ValueError, match="timezone-aware"):
        store.try_acquire("main", run_id="r", duration=LEASE, reason="schedule")


class CountingClient:
    """The real client, counting requests by operation."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            return method(**kwargs)

        return call


def test_a_warm_process_rereads_registrations_only_after_a_run_wrote_them(
    table: str, dynamodb: Any, clock: Clock
) -> None:
    client = CountingClient(dynamodb)
    store = StateStore(table, client=client, clock=clock)
    lease = store.try_acquire("main", run_id="run-1", duration=LEASE, reason="schedule")
    assert lease
    store.put_registrations([registration("a")])
    assert [r.kube_cluster for r in store.registrations("main")] == ["a"]  # held: always read
    store.finish(lease)

    store.registrations("main")
    client.calls.clear()
    again = store.registrations("main")
    assert [r.kube_cluster for r in again] == ["a"]
    assert client.calls == {"get_item": 1}  # the release stamp only

    other = StateStore(table, client=dynamodb, clock=clock)  # another execution environment's run
    lease = other.try_acquire("main", run_id="run-2", duration=LEASE, reason="schedule")
    assert lease
    other.put_registrations([registration("b")])
    clock.advance(timedelta(seconds=1))
    other.finish(lease)

    assert [r.kube_cluster for r in store.registrations("main")] == ["a", "b"]
    assert client.calls["query"] == WHOLE_READ


def test_a_warm_process_sees_a_hand_edit_of_the_registry_once_its_copy_is_old(
    table: str, dynamodb: Any, clock: Clock
) -> None:
    """An operator's fix made in the table outside any run (no lease, no release stamp) reaches a
    warm process within `REGISTRY_MAX_AGE`, however many runs see the same stamp meanwhile."""
    store = StateStore(table, client=dynamodb, clock=clock)
    lease = store.try_acquire("main", run_id="run-1", duration=LEASE, reason="schedule")
    assert lease
    store.put_registrations([registration("a", last_error="403 Forbidden", last_error_at=T0)])
    store.finish(lease)
    assert store.registrations("main")[0].last_error == "403 Forbidden"  # read, and kept warm

    fixed = StateStore(table, client=dynamodb, clock=clock)  # the operator's own client: no lease
    fixed.put_registrations([registration("a")])
    clock.advance(REGISTRY_MAX_AGE - timedelta(seconds=1))
    assert store.registrations("main")[0].last_error == "403 Forbidden"  # the warm copy, still young

    clock.advance(timedelta(seconds=1))
    assert store.registrations("main")[0].last_error is None


def test_shard_leases_are_independent_and_their_release_stamps_the_output(store: StateStore) -> None:
    whole = store.try_acquire("main", run_id="whole", duration=LEASE, reason="event")
    first = store.try_acquire("main", run_id="s0", duration=LEASE, reason="schedule", shard="0/2")
    second = store.try_acquire("main", run_id="s1", duration=LEASE, reason="schedule", shard="1/2")
    assert whole and first and second and (first.shard, second.shard) == ("0/2", "1/2")
    assert (
        store.try_acquire("main", run_id="s0-again", duration=LEASE, reason="schedule", shard="0/2") is None
    )

    assert store.finish(whole) is False
    stamp = store.lease_status("main")["last_run_id"]
    assert store.finish(first) is True  # the second acquire asked for a rerun
    assert store.finish(first) is False
    assert (stamp, store.lease_status("main")["last_run_id"]) == ("whole", "s0")


def test_a_run_that_read_an_unheld_registry_leaves_what_it_wrote_for_the_next_run(
    table: str, dynamodb: Any, clock: Clock
) -> None:
    client = CountingClient(dynamodb)
    store = StateStore(table, client=client, clock=clock)
    first = store.try_acquire("main", run_id="run-0", duration=LEASE, reason="schedule")
    assert first
    store.finish(first)  # a released lease, so reads can be checked against its stamp

    assert store.registrations("main") == []
    lease = store.try_acquire("main", run_id="run-1", duration=LEASE, reason="event")
    assert lease
    store.put_registrations([registration("b"), registration("a")])
    clock.advance(timedelta(seconds=1))
    store.finish(lease)
    client.calls.clear()

    assert [r.kube_cluster for r in store.registrations("main")] == ["a", "b"]  # in Query's order
    assert client.calls == {"get_item": 1}


def test_a_run_does_not_cache_what_it_wrote_when_another_run_released_meanwhile(
    table: str, dynamodb: Any, clock: Clock
) -> None:
    client = CountingClient(dynamodb)
    store = StateStore(table, client=client, clock=clock)
    other = StateStore(table, client=dynamodb, clock=clock)
    first = store.try_acquire("main", run_id="run-0", duration=LEASE, reason="schedule")
    assert first
    store.finish(first)
    store.registrations("main")  # read while unheld...
    theirs = other.try_acquire("main", run_id="theirs", duration=LEASE, reason="event")
    assert theirs
    other.put_registrations([registration("theirs")])  # ...then another run wrote and released
    clock.advance(timedelta(seconds=1))
    other.finish(theirs)
    lease = store.try_acquire("main", run_id="ours", duration=LEASE, reason="schedule")
    assert lease
    store.put_registrations([registration("ours")])
    clock.advance(timedelta(seconds=1))
    store.finish(lease)
    client.calls.clear()

    assert [r.kube_cluster for r in store.registrations("main")] == ["ours", "theirs"]
    assert client.calls["query"] == WHOLE_READ


# -- renewal ledgers -----------------------------------------------------------------


def renewal(reg: Registration, at: datetime, rv: str = "43", cert: str = "c" * 32) -> Registration:
    """`reg` after a run wrote its Secret again at `at` with the certificate `cert`, as outcomes
    records it (each certificate has its own expiry)."""
    assert reg.version is not None
    return replace(
        reg,
        last_written=at,
        last_attempt=at,
        cert_expires=T0 + timedelta(hours=2, minutes=ord(cert[0])),
        cert_id=cert,
        version=SecretVersion(reg.version.uid, rv),
    )


def run(store: StateStore, run_id: str, writes: Callable[[list[Registration]], list[Registration]]) -> None:
    """One run under the output's lease: read the registry, write back `writes(read)`, release."""
    lease = store.try_acquire("main", run_id=run_id, duration=LEASE, reason="schedule")
    assert lease
    store.put_registrations(writes(store.registrations("main")))
    store.finish(lease)


def ledger_items(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": "output#main"}, ":prefix": {"S": "renewed#"}},
    )["Items"]
    return list(items)


def test_renewals_are_recorded_in_a_few_ledger_items_and_read_back_as_written(
    table: str, dynamodb: Any, clock: Clock
) -> None:
    """A renewal of 60 registrations writes at most `LEDGERS` items, not 60 registration items;
    a cold reader (whole registry) and an event's reader (named clusters) see exactly what was
    written, resourceVersion and certificate included."""
    initial = [registration(f"c{i:02d}") for i in range(60)]
    StateStore(table, client=dynamodb, clock=clock).put_registrations(initial)
    client = CountingClient(dynamodb)
    store = StateStore(table, client=client, clock=clock)
    clock.advance(timedelta(minutes=20))
    renewed = [renewal(r, clock() + timedelta(milliseconds=i)) for i, r in enumerate(initial)]
    client.calls.clear()

    run(store, "renew", lambda read: renewed)

    assert client.calls["batch_write_item"] == 0
    assert 1 <= client.calls["put_item"] <= LEDGERS
    assert len(ledger_items(dynamodb, table)) == client.calls["put_item"]
    cold = StateStore(table, client=dynamodb, clock=clock)
    assert cold.registrations("main") == renewed
    named = cold.named_registrations(["main"], "example.teleport.sh", {"c07", "c42"})["main"]
    assert named == [renewed[7], renewed[42]]


def test_a_registration_written_whole_after_its_renewal_is_read_as_written(
    table: str, dynamodb: Any, clock: Clock
) -> None:
    """A ledger entry applies only while it is newer than the item's last attempt: a later whole
    write (a failure here, by an event's run that read only its cluster) is what readers see."""
    store = StateStore(table, client=dynamodb, clock=clock)
    store.put_registrations([registration("a"), registration("b")])
    clock.advance(timedelta(minutes=20))
    run(store, "renew", lambda read: [renewal(r, clock()) for r in read])
    clock.advance(timedelta(minutes=1))
    event = StateStore(table, client=dynamodb, clock=clock)
    [a] = event.named_registrations(["main"], "example.teleport.sh", {"a"})["main"]
    assert a.version == SecretVersion("uid-a", "43")
    failed = replace(a, last_error="403 Forbidden", last_error_at=clock(), last_attempt=clock())
    event.put_registrations([failed])  # written whole: the event read no ledger to record in

    regs = StateStore(table, client=dynamodb, clock=clock).registrations("main")

    assert regs == [failed, renewal(registration("b"), T0 + timedelta(minutes=20))]


def test_a_whole_write_drops_the_entry_a_later_ledger_write_would_carry(
    table: str, dynamodb: Any, clock: Clock
) -> None:
    store = StateStore(table, client=dynamodb, clock=clock)
    store.put_registrations([registration("a"), registration("b")])
    clock.advance(timedelta(minutes=20))
    run(store, "renew-1", lambda read: [renewal(r, clock()) for r in read])
    before = {k for i in ledger_items(dynamodb, table) for k in i["entries"]["M"]}
    clock.advance(timedelta(minutes=20))

    def relabeled(read: list[Registration]) -> list[Registration]:
        now = clock()
        relabel = replace(read[0], labels={"env": "staging"}, last_attempt=now, last_written=now)
        return [relabel, *(renewal(r, now, rv="44", cert="d" * 32) for r in read[1:])]

    run(StateStore(table, client=dynamodb, clock=clock), "renew-2", relabeled)

    after = {k for i in ledger_items(dynamodb, table) for k in i["entries"]["M"]}
    assert before == {"example.teleport.sh#a", "example.teleport.sh#b"}
    regs = {r.kube_cluster: r for r in StateStore(table, client=dynamodb, clock=clock).registrations("main")}
    assert regs["a"].labels == {"env": "staging"} and regs["a"].version == SecretVersion("uid-a", "43")
    assert regs["b"].cert_id == "d" * 32 and regs["b"].version == SecretVersion("uid-b", "44")
    if bucket_of(entry_name("example.teleport.sh", "a")) == bucket_of(entry_name("example.teleport.sh", "b")):
        assert after == {"example.teleport.sh#b"}  # written with b's: a's entry dropped
    else:
        assert after == before  # a's ledger not written again: its entry is older than the item


def test_concurrent_runs_merge_into_a_ledger_they_both_write(table: str, dynamodb: Any, clock: Clock) -> None:
    """Two shards' runs (each under its own lease) renew clusters that share a ledger: the second
    write finds the revision moved, reads the ledger again and merges; nothing is lost."""
    names = [f"c{i:03d}" for i in range(200)]
    bucket = bucket_of(entry_name("example.teleport.sh", names[0]))
    x, y = [n for n in names if bucket_of(entry_name("example.teleport.sh", n)) == bucket][:2]
    StateStore(table, client=dynamodb, clock=clock).put_registrations([registration(x), registration(y)])
    clock.advance(timedelta(minutes=20))
    run(
        StateStore(table, client=dynamodb, clock=clock),
        "renew",
        lambda read: [renewal(r, clock()) for r in read],
    )
    clock.advance(timedelta(minutes=20))
    client = CountingClient(dynamodb)
    first = StateStore(table, client=dynamodb, clock=clock)
    second = StateStore(table, client=client, clock=clock)
    leases = [
        store.try_acquire("main", run_id=f"s{i}", duration=LEASE, reason="schedule", shard=f"{i}/2")
        for i, store in enumerate((first, second))
    ]
    read = [{r.kube_cluster: r for r in store.registrations("main")} for store in (first, second)]
    seconds_copy = copy.deepcopy(registry._LEDGERS)  # what the second run's environment read
    first.put_registrations([renewal(read[0][x], clock(), rv="50")])
    second.put_registrations([renewal(read[1][y], clock(), rv="60")])
    assert leases[0] and leases[1]
    with another_environment():
        first.finish(leases[0])
    registry._LEDGERS.update(seconds_copy)
    client.calls.clear()
    second.finish(leases[1])

    assert (client.calls["put_item"], client.calls["get_item"]) == (2, 1)  # refused, read, merged

    regs = {r.kube_cluster: r for r in StateStore(table, client=dynamodb, clock=clock).registrations("main")}
    assert (regs[x].version, regs[y].version) == (
        SecretVersion(f"uid-{x}", "50"),
        SecretVersion(f"uid-{y}", "60"),
    )
    [item] = [i for i in ledger_items(dynamodb, table) if i["sk"]["S"] == f"renewed#{bucket}"]
    assert item["revision"]["N"] == "3"


def test_renewals_a_ledger_cannot_hold_are_written_whole(
    table: str, dynamodb: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under DynamoDB's item size limit with room to spare: past it, renewals are written whole."""
    monkeypatch.setattr(registry, "MAX_LEDGER_BYTES", 1_000)
    initial = [registration(f"c{i:02d}") for i in range(40)]
    StateStore(table, client=dynamodb, clock=clock).put_registrations(initial)
    clock.advance(timedelta(minutes=20))
    client = CountingClient(dynamodb)

    run(
        StateStore(table, client=client, clock=clock),
        "renew",
        lambda read: [renewal(r, clock()) for r in read],
    )

    assert client.calls["batch_write_item"] >= 1
    assert all(len(json.dumps(i)) < 1_500 for i in ledger_items(dynamodb, table))
    regs = StateStore(table, client=dynamodb, clock=clock).registrations("main")
    assert regs == [renewal(r, T0 + timedelta(minutes=20)) for r in initial]


@contextmanager
def another_environment() -> Iterator[None]:
    """Run as another execution environment would: with warm copies of its own (none), leaving
    this one's as they were."""
    saved = dict(registry._REGISTRY), dict(registry._LEDGERS)
    registry._REGISTRY.clear()
    registry._LEDGERS.clear()
    try:
        yield
    finally:
        registry._REGISTRY.clear()
        registry._LEDGERS.clear()
        registry._REGISTRY.update(saved[0])
        registry._LEDGERS.update(saved[1])


def test_a_warm_process_reads_the_renewals_another_environment_recorded_and_keeps_them(
    table: str, dynamodb: Any, clock: Clock
) -> None:
    """The world changes between two warm runs: another environment renews some clusters. The
    warm process reads them (the release stamp moved) and its own renewals keep theirs."""
    initial = [registration(f"c{i:02d}") for i in range(30)]
    StateStore(table, client=dynamodb, clock=clock).put_registrations(initial)
    clock.advance(timedelta(minutes=20))
    run(
        StateStore(table, client=dynamodb, clock=clock),
        "warm-1",
        lambda read: [renewal(r, clock(), rv="1") for r in read],
    )
    clock.advance(timedelta(minutes=20))
    with another_environment():
        run(
            StateStore(table, client=dynamodb, clock=clock),
            "other",
            lambda read: [renewal(r, clock(), rv="2") for r in read[:10]],
        )
    clock.advance(timedelta(minutes=20))

    run(
        StateStore(table, client=dynamodb, clock=clock),
        "warm-2",
        lambda read: [renewal(r, clock(), rv="3") for r in read[20:]],
    )

    with another_environment():
        regs = StateStore(table, client=dynamodb, clock=clock).registrations("main")
    assert [r.version.resource_version for r in regs if r.version] == ["2"] * 10 + ["1"] * 10 + ["3"] * 10
