"""An audit function's latency from a `kube.create` event to the cluster's Secret, warm and cold, by size.

    .venv/bin/python bench/event_bench.py [--sizes 10,100,1000] [--latency-ms 5] [--repeat 3] [--json]

For each size, one local stack whose Kubernetes API waits `--latency-ms` per request. A discovery
run (the renew function, in a process of its own) registers every cluster first and a forced reload
renews them all, as a deployment that has been running would have. Then a child process acts as a
warm audit function: it loads `functions/audit_event/app.py` once, takes one unmeasured event for an
existing cluster, and then, `--repeat` times, the parent enrols a new cluster in the Teleport
stand-in and sends its `kube.create` envelope (from `events/kube_create.json`, fresh `uid`, `name` and
`kube_labels`). Then, `--repeat` times, a cold one: a new cluster's event is the first invocation of
a fresh child (the package imported before the clock, as in the warm child: the import is
`import_time.py`'s to measure), so it creates its clients, reads the configuration, joins Teleport
and reads the state table with nothing kept from an earlier invocation.

Goal per event: ≤ 1 s at every size, one Kubernetes write and one registration written. Reports
the child's wall time of the invocation (and, cold, from its start to the stand-in's answer to the
Secret's write, both clocks the machine's), the Kubernetes requests the stand-in served (counted in
the parent), DynamoDB requests by table and operation (a botocore hook in the child; the audit
function's idempotency records live in their own table) and the registration items written.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "layers" / "core"), str(ROOT / "tests")]

from stacks import (  # noqa: E402
    clusters,
    function_env,
    kube_create,
    kube_requests,
    kube_writes,
    median_counts,
    ops,
)
from warm import WRITE_METHODS, WarmFunction  # noqa: E402

from standins.handlers import event  # noqa: E402
from standins.stack import LocalStack  # noqa: E402

TARGET_S = 1.0


@dataclass
class Row:
    """One size: medians over the events, and every event's count of writes (each should be 1)."""

    clusters: int
    latency_ms: float
    seconds: float
    max_seconds: float
    kube_requests: dict[str, float]
    kube_writes: list[int]
    registration_writes: list[int]
    dynamodb: dict[str, float]
    dynamodb_reads: float
    dynamodb_writes: float
    dynamodb_s: float  # the child's time inside DynamoDB calls (moto here)
    query_s: float  # of which Query, the registry read moto serves far slower than DynamoDB
    register_s: float  # the discovery run that registered the fleet first (not part of the goal)
    cold_seconds: float  # the first invocation of a fresh process (import excluded), median
    cold_max_seconds: float
    # From the invocation's start to the stand-in's answer to the Secret's write (the rest of the
    # invocation records the run and the idempotency result after it), median and max.
    cold_secret_seconds: float
    cold_secret_max_seconds: float
    # CPU-seconds of the cold invocation in the function's process, median: what Lambda's CPU share
    # (in proportion to memory) stretches, and what a loaded machine's wall time hides.
    cold_cpu_seconds: float
    cold_dynamodb: dict[str, float]
    cold_query_s: float


def register_all(env: dict[str, str], size: int) -> float:
    """One discovery run of the renew function in its own process, then a forced reload, so each
    renewal ledger holds its share of the fleet as a running deployment's do (an event reads the
    ledger its cluster falls in); refuses a partial registration."""
    with WarmFunction(env, ["renew", "reload"]) as renew:
        result = renew.invoke("renew", event("discovery.json"))
        reloaded = renew.invoke("reload", event("reload.json"))
    for name, answer in (("registering", result), ("renewing", reloaded)):
        written = sum(o["counts"].get("written", 0) for o in answer["answer"]["outputs"])
        if written != size:
            raise RuntimeError(f"{name} {size} clusters wrote {written}: {answer['answer']}")
    return float(result["seconds"])


def measure(size: int, latency_ms: float, repeat: int) -> Row:
    with LocalStack(clusters=clusters(size), kube_latency=latency_ms / 1000) as stack:
        assert stack.kube is not None and stack.teleport is not None
        env = function_env(stack)
        register_s = register_all(env, size)
        samples: list[dict[str, Any]] = []
        with WarmFunction(env, ["audit_event"]) as audit:
            _processed(audit.invoke("audit_event", kube_create("cluster-00000")))  # warm-up
            for i in range(repeat):
                name = f"enrolled-{i:03d}"
                stack.teleport.add_kube_cluster(name, labels={"env": "prod", "team": "bench"})
                before = len(stack.kube.requests)
                result = _processed(audit.invoke("audit_event", kube_create(name)))
                samples.append({**result, "kube": kube_requests(stack.kube, before)})
        colds = []
        for i in range(repeat):
            name = f"cold-{i:03d}"
            stack.teleport.add_kube_cluster(name, labels={"env": "prod", "team": "bench"})
            before = len(stack.kube.requests)
            with WarmFunction(env, ["audit_event"]) as fresh:
                result = _processed(fresh.invoke("audit_event", kube_create(name)))
            written = [r.at for r in stack.kube.requests[before:] if r.method in WRITE_METHODS]
            colds.append({**result, "secret_s": written[0] - result["started_at"]})
    cold = [c["seconds"] for c in colds]
    cold_secret = [c["secret_s"] for c in colds]
    seconds = [s["seconds"] for s in samples]
    return Row(
        clusters=size,
        latency_ms=latency_ms,
        seconds=statistics.median(seconds),
        max_seconds=max(seconds),
        kube_requests=median_counts(s["kube"] for s in samples),
        kube_writes=[kube_writes(s["kube"]) for s in samples],
        registration_writes=[s["dynamodb"]["registration_items"] for s in samples],
        dynamodb=median_counts(s["dynamodb"]["requests"] for s in samples),
        dynamodb_reads=statistics.median(s["dynamodb"]["reads"] for s in samples),
        dynamodb_writes=statistics.median(s["dynamodb"]["writes"] for s in samples),
        dynamodb_s=statistics.median(sum(s["dynamodb"]["seconds"].values()) for s in samples),
        query_s=statistics.median(s["dynamodb"]["seconds"].get("Query", 0.0) for s in samples),
        register_s=register_s,
        cold_seconds=statistics.median(cold),
        cold_max_seconds=max(cold),
        cold_secret_seconds=statistics.median(cold_secret),
        cold_secret_max_seconds=max(cold_secret),
        cold_cpu_seconds=statistics.median(c["cpu_seconds"] for c in colds),
        cold_dynamodb=median_counts(c["dynamodb"]["requests"] for c in colds),
        cold_query_s=statistics.median(c["dynamodb"]["seconds"].get("Query", 0.0) for c in colds),
    )


def _processed(result: dict[str, Any]) -> dict[str, Any]:
    """The invocation's result, once its answer says the event ran without errors."""
    answer = result["answer"]
    if answer.get("status") != "processed" or any(o["errors"] for o in answer["outputs"]):
        raise RuntimeError(f"the event was not processed cleanly: {answer}")
    return result


def _same(values: list[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else "/".join(map(str, values))


def markdown(rows: list[Row], repeat: int) -> str:
    lines = [
        f"| clusters | event → Secret s (≤ {TARGET_S:g}) | max s | in DynamoDB s (Query) "
        "| Kubernetes requests | Kubernetes writes (= 1) | registrations written (= 1) "
        "| DynamoDB requests (table: operation) |",
        "|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.clusters:,} | {r.seconds:.3f} | {r.max_seconds:.3f} "
            f"| {r.dynamodb_s:.3f} ({r.query_s:.3f}) "
            f"| {ops(r.kube_requests)} "
            f"| {_same(r.kube_writes)} | {_same(r.registration_writes)} "
            f"| {r.dynamodb_reads:g} reads, {r.dynamodb_writes:g} writes: {ops(r.dynamodb)} |"
        )
    lines += [
        "",
        f"| clusters | cold event → Secret s (≤ {TARGET_S:g}) | max s | invocation s | max s | CPU-s "
        "| of which Query s | DynamoDB requests |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.clusters:,} | {r.cold_secret_seconds:.3f} | {r.cold_secret_max_seconds:.3f} "
            f"| {r.cold_seconds:.3f} | {r.cold_max_seconds:.3f} | {r.cold_cpu_seconds:.3f} "
            f"| {r.cold_query_s:.3f} "
            f"| {ops(r.cold_dynamodb)} |"
        )
    lines += [
        "",
        f"Cold: the event for a new cluster is the first invocation of a fresh process (package imported "
        f"before the clock); medians of {repeat}. 'Event → Secret': from the invocation's start to the "
        "Kubernetes stand-in's answer to the Secret's write; 'invocation': until the handler returns "
        "(the run record, the lease's release and the idempotency record come after the write); CPU-s: "
        "the invocation's, in the function's process.",
        "",
        f"Warm audit function (one process, one unmeasured event first); Kubernetes stand-in latency "
        f"{rows[0].latency_ms:g} ms per request; medians of {repeat} events, each for a cluster enrolled "
        "just before it. 'In DynamoDB' is the time inside DynamoDB calls (moto); a Query of the registry "
        "there costs far more than in DynamoDB. Registering the fleet first (one discovery run, "
        "not part of the goal): " + ", ".join(f"{r.clusters:,} in {r.register_s:.1f} s" for r in rows) + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,100,1000", help="comma-separated cluster counts")
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead")
    args = parser.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        rows.append(measure(size, args.latency_ms, max(1, args.repeat)))
        print(f"{size} clusters measured", file=sys.stderr)
    print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else markdown(rows, args.repeat))


if __name__ == "__main__":
    main()
