"""The benchmarks measure what they claim: the renewal's reference patterns make exactly the requests
they say, through each client the floor can use, and the event bench's event writes one Secret and
one registration (no timings)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from bench.event_bench import measure as measure_event
from bench.http2_bench import FRONT_NAME, start_front
from bench.http2_bench import measure as measure_clients
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


@pytest.mark.parametrize("client", sorted(set(CLIENTS) - {"httpx-h2"}))  # the stand-in speaks HTTP/1.1 alone
def test_floor_is_one_put_per_secret(kube: KubeApiServer, client: str) -> None:
    target = Target.of(kube, WRITER, "argocd")
    names = secret_names("bench-floor", 10)
    precreate(kube, target, names)

    floor(CLIENTS[client](target, 4), target, names, workers=4)

    method = "PUT" if client in ("urllib3", "httpx") else "PATCH"  # an apply floor writes as the worker does
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


def test_the_front_offers_http2_and_http11_and_passes_requests_on(
    kube: KubeApiServer, tmp_path: Path
) -> None:
    """Go's net/http, as an API server is, negotiates h2 or http/1.1 by ALPN (the API server offers
    both unless HTTP/2 is turned off: k8s.io/apiserver pkg/server/secure_serving.go, NextProtos):
    what the HTTP/2 bench relies on to measure each client against the same server."""
    direct = Target.of(kube, WRITER, "argocd")
    names = secret_names("bench-h2", 4)
    precreate(kube, direct, names)
    with start_front(tmp_path, kube, WRITER) as port:
        through = replace(direct, url=f"https://127.0.0.1:{port}", hostname=FRONT_NAME)
        versions = set()
        for http2 in (True, False):
            with httpx.Client(verify=through.ssl_context(), http2=http2) as http:
                answer = http.get(
                    through.url + through.secret_path(names[0]), extensions={"sni_hostname": FRONT_NAME}
                )
            assert answer.status_code == 200 and answer.json()["metadata"]["name"] == names[0]
            versions.add(answer.http_version)
        floor(CLIENTS["httpx-h2"](through, 1), through, names, workers=1)

    assert versions == {"HTTP/2", "HTTP/1.1"}
    assert [(r.method, r.user, r.status) for r in kube.requests[2:]] == [("PATCH", WRITER, 200)] * 4


def test_the_http2_bench_runs_each_client_through_the_front() -> None:
    result = measure_clients(10, latency_ms=1.0, repeat=1, clients=["apply", "httpx-apply", "async-h2"])

    assert result.failed == {}
    assert set(result.medians) == {"apply", "httpx-apply", "async-h2", "apply, no front"}
    assert result.cpu_over_baseline["apply"] == 1.0


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
