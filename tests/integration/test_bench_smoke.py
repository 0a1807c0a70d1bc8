"""The benchmarks measure what they claim: the renewal's reference patterns make exactly the requests
they say, through each client the floor can use, and the event bench's event writes one Secret and
one registration (no timings)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from bench.event_bench import measure as measure_event
from bench.kube_patterns import CLIENTS, Target, floor, precreate, secret_names, store_floor, tbot_pattern
from bench.rotation_bench import measure as measure_rotation
from standins.kubeapi import KubeApiServer

WRITER = "bench-writer"


@pytest.fixture
def kube() -> Iterator[KubeApiServer]:
    with KubeApiServer(latency=0.001) as server:
        # tbot's verbs for the reference patterns, and the writer's own (server-side apply) for its floor
        server.allow(user=WRITER, verbs=("get", "create", "update", "patch"), namespaces=("argocd",))
        yield server


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_floor_is_one_put_per_secret(kube: KubeApiServer, client: str) -> None:
    target = Target.of(kube, WRITER, "argocd")
    names = secret_names("bench-floor", 10)
    precreate(kube, target, names)

    floor(CLIENTS[client](target, 4), target, names, workers=4)

    method = "PATCH" if client == "apply" else "PUT"  # the apply floor writes as the worker does
    assert Counter(r.method for r in kube.requests) == Counter({method: 10})
    assert {r.name for r in kube.requests} == set(names)
    assert all(r.status == 200 for r in kube.requests)


def test_the_writers_floor_is_one_request_per_secret_after_taking_them_over(kube: KubeApiServer) -> None:
    target = Target.of(kube, WRITER, "argocd")
    names = secret_names("bench-store", 10)
    precreate(kube, target, names)  # tbot's Secrets: the writer takes them over first

    run = store_floor(target, names, workers=4)
    taken_over = Counter(r.method for r in kube.requests)
    run()

    assert taken_over.total() >= 10  # the takeover is not measured
    measured = kube.requests[taken_over.total() :]
    assert Counter(r.method for r in measured) == Counter({"PATCH": 10})  # one server-side apply each
    assert all(r.status == 200 for r in measured)


def test_tbot_pattern_reads_then_writes_each_secret(kube: KubeApiServer) -> None:
    target = Target.of(kube, WRITER, "argocd")
    names = secret_names("bench-tbot", 10)
    precreate(kube, target, names[:5])
    kube.edit_secret("argocd", names[0], lambda s: s["metadata"]["annotations"].update({"by": "argocd"}))

    tbot_pattern(CLIENTS["urllib3"](target, 1), target, names)

    assert Counter(r.method for r in kube.requests) == Counter({"GET": 10, "PUT": 5, "POST": 5})
    assert [r.method for r in kube.requests[:2]] == ["GET", "PUT"]  # one Secret at a time
    merged = kube.secret("argocd", names[0])
    assert merged is not None and merged["metadata"]["annotations"]["by"] == "argocd"


@pytest.mark.e2e  # the real audit function against a whole local stack
def test_event_bench_writes_one_secret_and_one_registration() -> None:
    row = measure_event(size=10, latency_ms=1.0, repeat=1)

    assert row.kube_writes == [1]
    assert row.registration_writes == [1]
    assert row.dynamodb_writes > 0  # the hook sees the child's requests


def test_the_rotation_bench_sees_every_secret_take_each_phases_ca_set() -> None:
    phases = measure_rotation(5, latency_ms=0)
    assert [(p.phase, p.written, p.kube_writes, p.current) for p in phases] == [
        ("init", 5, 5, 5),
        ("update_clients", 5, 5, 5),
        ("update_servers", 0, 0, 5),
        ("standby", 5, 5, 5),
    ]
