"""A warm discovery run over a large fleet: with nothing changed, and with one cluster enrolled.

    .venv/bin/python bench/discovery_bench.py [--clusters 1000] [--latency-ms 5] [--repeat 3] [--json]
        [--memory-mb 512,1024,1769] [--save FILE]

One local stack whose Kubernetes API waits `--latency-ms` per request, and one child process acting
as a warm renew function without OUTPUT_RUNS_QUEUE, so the outputs run inside the invocation. It
takes `events/discovery.json` once to register every cluster (cold, not measured against the
goals), then `--repeat` times with nothing changed (goal: no Kubernetes write, no DynamoDB write,
≤ 300 ms), then `--repeat` times each after the parent enrolled one more cluster in the Teleport
stand-in (goal: exactly one Secret written).

With `--memory-mb`, the whole sequence runs once per memory size, the warm function at the CPU share
Lambda gives that size (`cpu_share.py`), each in a stack of its own; `--save` writes the invocations
by memory size as JSON (`bench/cost.py` reads the no-change runs' durations).

DynamoDB requests are listed by operation for each invocation, so the registry's path shows: one
GetItem of the lease item when the warm process's copy is still current, a paged Query otherwise.
moto answers a Query of 1,000 registrations in about 0.9 s, which DynamoDB does not (most of a
megabyte in a few pages): a Query in a row inflates its wall time here, not in AWS.
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

from cpu_share import vcpus  # noqa: E402
from stacks import LABELS, clusters, function_env, kube_requests, kube_writes, median_counts, ops  # noqa: E402
from warm import DYNAMODB_WRITES, WarmFunction  # noqa: E402

from standins.handlers import event  # noqa: E402
from standins.stack import LocalStack  # noqa: E402

TARGET_S = 0.300


@dataclass
class Invocation:
    """One invocation of the warm renew function, as the stand-ins and the child counted it."""

    scenario: str  # "register all", "no change" or "one new cluster"
    seconds: float
    kube_requests: dict[str, int]
    dynamodb: dict[str, int]
    dynamodb_s: float  # time inside DynamoDB calls (moto here)
    written: int  # Secrets the run's report says it wrote


def measure(size: int, latency_ms: float, repeat: int, memory_mb: int | None = None) -> list[Invocation]:
    invocations: list[Invocation] = []
    with LocalStack(clusters=clusters(size), kube_latency=latency_ms / 1000) as stack:
        assert stack.kube is not None and stack.teleport is not None
        with WarmFunction(function_env(stack), ["renew"], memory_mb) as renew:

            def run(scenario: str) -> None:
                assert stack.kube is not None
                before = len(stack.kube.requests)
                result = renew.invoke("renew", event("discovery.json"))
                invocations.append(_invocation(scenario, result, dict(kube_requests(stack.kube, before))))

            run("register all")
            for _ in range(repeat):
                run("no change")
            for i in range(repeat):
                stack.teleport.add_kube_cluster(f"enrolled-{i:03d}", labels=LABELS)
                run("one new cluster")
    return invocations


def _invocation(scenario: str, result: dict[str, Any], kube: dict[str, int]) -> Invocation:
    outputs = result["answer"]["outputs"]
    if any(o["errors"] or o["status"] not in ("completed", "idle") for o in outputs):
        raise RuntimeError(f"discovery did not complete cleanly: {outputs}")
    written = sum(o["counts"].get("written", 0) for o in outputs)
    dynamo = result["dynamodb"]
    return Invocation(
        scenario, result["seconds"], kube, dynamo["requests"], sum(dynamo["seconds"].values()), written
    )


def _split(dynamodb: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    reads = {k: v for k, v in dynamodb.items() if k.rpartition(":")[2] not in DYNAMODB_WRITES}
    return reads, {k: v for k, v in dynamodb.items() if k.rpartition(":")[2] in DYNAMODB_WRITES}


def markdown(invocations: list[Invocation], size: int, latency_ms: float, repeat: int) -> str:
    lines = [
        f"| {size:,} clusters | warm s | in DynamoDB s | Kubernetes requests | Kubernetes writes "
        "| Secrets written | DynamoDB reads | DynamoDB writes |",
        "|---|---:|---:|---|---:|---:|---|---|",
    ]
    for scenario, goal in (("no change", f"≤ {TARGET_S:g} s, 0 writes"), ("one new cluster", "1 Secret")):
        runs = [i for i in invocations if i.scenario == scenario]
        reads, writes = _split(median_counts(i.dynamodb for i in runs))
        kube = median_counts(i.kube_requests for i in runs)
        lines.append(
            f"| {scenario} ({goal}) | {statistics.median(i.seconds for i in runs):.3f} "
            f"| {statistics.median(i.dynamodb_s for i in runs):.3f} | {ops(kube)} "
            f"| {'/'.join(sorted({str(kube_writes(i.kube_requests)) for i in runs}))} "
            f"| {'/'.join(sorted({str(i.written) for i in runs}))} | {ops(reads)} | {ops(writes)} |"
        )
    lines += ["", "Each invocation, in order:", "", "| # | run | s | in DynamoDB s | Kubernetes | DynamoDB |"]
    lines.append("|---:|---|---:|---:|---|---|")
    for n, i in enumerate(invocations, 1):
        lines.append(
            f"| {n} | {i.scenario} | {i.seconds:.3f} | {i.dynamodb_s:.3f} | {ops(i.kube_requests)} "
            f"| {ops(i.dynamodb)} |"
        )
    lines += [
        "",
        "One warm renew process, outputs run in the invocation; Kubernetes stand-in latency "
        f"{latency_ms:g} ms per request; medians of {repeat}. The first run registers the fleet "
        "(not a goal). 'In DynamoDB' is the time inside DynamoDB calls (moto, whose Query of the "
        "registry is far slower than DynamoDB's).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-mb", default="", help="Lambda memory sizes: a run at each one's CPU share")
    parser.add_argument("--json", action="store_true", help="print the invocations as JSON instead")
    parser.add_argument("--save", type=Path, help="also write the invocations by memory size as JSON here")
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    sizes: list[int | None] = [int(m) for m in args.memory_mb.split(",") if m] or [None]
    runs = {m: measure(args.clusters, args.latency_ms, repeat, m) for m in sizes}
    by_memory = {str(m or "unlimited"): [asdict(i) for i in invocations] for m, invocations in runs.items()}
    if args.save:
        args.save.write_text(json.dumps({"clusters": args.clusters, "by_memory": by_memory}, indent=2) + "\n")
    if args.json:
        print(json.dumps(by_memory, indent=2))
        return
    for memory, invocations in runs.items():
        if memory is not None:
            print(f"\nAt {memory:,} MB's CPU share ({vcpus(memory):.2f} vCPU):\n")
        print(markdown(invocations, args.clusters, args.latency_ms, repeat))


if __name__ == "__main__":
    main()
