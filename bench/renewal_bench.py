"""The renewal against its floor and tbot's pattern, side by side, at a realistic API latency.

    .venv/bin/python bench/renewal_bench.py [--sizes 1000] [--latency-ms 5] [--repeat 3] [--json]

For each size, one local stack (moto, the Teleport and Kubernetes stand-ins on loopback) whose
Kubernetes API waits `--latency-ms` before answering each request (an in-region EKS round trip;
loopback alone answers in about 1 ms and hides round trips). Then, `--repeat` times, interleaved:

- floor: one bare PUT per pre-created Secret (~3 KB, shaped like a rendered one) from 16 workers;
- tbot's pattern: GET then PUT per Secret, one after another (`writeSecret`, §1.7);
- the project: a forced reload of every output through the real runtime, in a child process as a
  Lambda invocation would be, after one unmeasured-for-the-ratio run that creates the Secrets.
  The child imports the whole package before its clock starts (cold import is import_time.py's
  business); it counts DynamoDB write requests with a botocore hook of its own and reports its
  peak memory as VmHWM (ru_maxrss would include what the parent had reached, inherited over exec).

Kubernetes requests are counted by the stand-in. Reports medians and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "core"), str(ROOT / "tests")]

from kube_patterns import Target, floor, precreate, secret_names, tbot_pattern  # noqa: E402
from warm import DynamoCounter, vm_hwm_mb  # noqa: E402

FUNCTION_TIMEOUT = 300.0  # seconds, the functions' timeout in template.yaml
CHILD_TIMEOUT = 900.0  # a run past this is broken, not slow


@dataclass
class Row:
    """Medians for one size; ratios are project/floor (want ≤ 1.5) and tbot/project (want ≥ 3)."""

    clusters: int
    latency_ms: float
    floor_s: float
    tbot_s: float
    create_s: float
    renewal_s: float  # in a cold process: registry read with a Query
    warm_renewal_s: float  # the next renewal in the same process, as a warm worker runs it
    project_over_floor: float  # warm
    cold_over_floor: float
    tbot_over_project: float  # warm
    kube_requests_per_cluster: float
    kube_requests_by_method: dict[str, float]
    dynamodb_writes_per_cluster: float
    peak_mb: float
    secret_bytes: int  # one Secret the renewal wrote, as stored
    floor_secret_bytes: int


# -- the child: one invocation of the real runtime ---------------------------------------------


def child(runs: int) -> None:
    """`runs` forced reloads of every output in one process, each reported as JSON on the last line.

    The first is a cold process's; the later ones are a warm execution environment's (the worker
    stays warm between its scheduled runs: discovery invokes it every 2 minutes), which keeps the
    bot identity and checks its cached registry with one GetItem instead of a Query.
    """
    import importlib
    import pkgutil

    import boto3

    import teleport_argocd
    from teleport_argocd.plan import Renewal, Scope
    from teleport_argocd.reconcile import Trigger
    from teleport_argocd.runtime import open_runtime

    for module in pkgutil.walk_packages(teleport_argocd.__path__, "teleport_argocd."):
        importlib.import_module(module.name)
    session = boto3.Session()
    dynamodb = DynamoCounter()
    dynamodb.attach(session.events)
    results = []
    for _ in range(runs):
        dynamodb.reset()
        started = time.perf_counter()
        with open_runtime(session=session) as runtime:
            trigger = Trigger(kind="reload", reason="benchmark", scope=Scope(renew=Renewal.ALL))
            reports = runtime.reconcile(runtime.outputs(), trigger)
        results.append(
            {
                "seconds": time.perf_counter() - started,
                "reports": [
                    {"status": r.status, "counts": r.counts, "errors": r.errors[:3]} for r in reports
                ],
                "dynamodb_writes": dynamodb.snapshot()["writes"],
            }
        )
    print(json.dumps({"runs": results, "peak_mb": vm_hwm_mb()}))


# -- the parent: stack, patterns, runs ---------------------------------------------------------


def _project_runs(env: dict[str, str], size: int, runs: int = 1) -> tuple[list[dict[str, Any]], float]:
    """`runs` forced renewals in one child process; each run's numbers, and the child's peak MB."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(runs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"reconcile child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    for run in result["runs"]:
        written = sum(r["counts"].get("written", 0) for r in run["reports"])
        if written != size or any(r["status"] != "completed" for r in run["reports"]):
            raise RuntimeError(f"the run did not write all {size} Secrets: {run['reports']}")
    return result["runs"], result["peak_mb"]


def measure(size: int, latency_ms: float, repeat: int, workers: int) -> Row:
    from standins.stack import ARGOCD_NAMESPACE, WRITER, LocalStack

    clusters = {f"cluster-{i:05d}": {"env": "prod", "team": "bench"} for i in range(size)}
    with LocalStack(clusters=clusters, kube_latency=latency_ms / 1000) as stack:
        kube = stack.kube
        assert kube is not None
        target = Target.of(kube, WRITER, ARGOCD_NAMESPACE)
        floor_names = secret_names("bench-floor", size)
        tbot_names = secret_names("bench-tbot", size)
        precreate(kube, target, floor_names + tbot_names)
        env = {
            **os.environ,
            **stack.env(),
            "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "core"), str(ROOT / "tests")]),
            "POWERTOOLS_LOG_LEVEL": "ERROR",
        }
        [create], create_peak = _project_runs(env, size)
        floors, tbots, colds, warms, kube_counts, peaks = [], [], [], [], [], [create_peak]
        for _ in range(repeat):
            floors.append(floor(kube, target, floor_names, workers).seconds)
            tbots.append(tbot_pattern(kube, target, tbot_names).seconds)
            before = len(kube.requests)
            (cold, warm), peak = _project_runs(env, size, runs=2)
            colds.append(cold)
            warms.append(warm)
            peaks.append(peak)
            # Two renewals' requests: halved below, per renewal.
            kube_counts.append(Counter(r.method for r in kube.requests[before:]))
        written = next(r.name for r in reversed(kube.requests) if r.method in ("PUT", "PATCH", "POST"))
        sizes = [len(json.dumps(kube.secret(ARGOCD_NAMESPACE, n))) for n in (written, floor_names[0])]
    renewal_s = statistics.median(r["seconds"] for r in colds)
    warm_s = statistics.median(r["seconds"] for r in warms)
    floor_s, tbot_s = statistics.median(floors), statistics.median(tbots)
    methods = sorted({m for c in kube_counts for m in c})
    return Row(
        clusters=size,
        latency_ms=latency_ms,
        floor_s=floor_s,
        tbot_s=tbot_s,
        create_s=create["seconds"],
        renewal_s=renewal_s,
        warm_renewal_s=warm_s,
        project_over_floor=warm_s / floor_s,
        cold_over_floor=renewal_s / floor_s,
        tbot_over_project=tbot_s / warm_s,
        kube_requests_per_cluster=statistics.median(c.total() for c in kube_counts) / (2 * size),
        kube_requests_by_method={
            m: statistics.median(c[m] for c in kube_counts) / (2 * size) for m in methods
        },
        dynamodb_writes_per_cluster=statistics.median(r["dynamodb_writes"] for r in colds + warms) / size,
        peak_mb=max(peaks),
        secret_bytes=sizes[0],
        floor_secret_bytes=sizes[1],
    )


def markdown(rows: list[Row], repeat: int, workers: int) -> str:
    """The README table: medians of `repeat` renewals, with the targets in the header."""
    lines = [
        "| clusters | floor s | tbot's pattern s | create s | renewal s, warm | renewal/floor (≤ 1.5) "
        "| tbot/renewal (≥ 3) | renewal s, cold process (÷ floor) "
        "| kube req/cluster (≤ 1.05) | DynamoDB writes/cluster (≤ 0.1) | peak MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        by_method = ", ".join(f"{m} {v:.2f}" for m, v in r.kube_requests_by_method.items())
        lines.append(
            f"| {r.clusters:,} | {r.floor_s:.2f} | {r.tbot_s:.2f} | {r.create_s:.2f} "
            f"| {r.warm_renewal_s:.2f} "
            f"| {r.project_over_floor:.2f} | {r.tbot_over_project:.2f} "
            f"| {r.renewal_s:.2f} ({r.cold_over_floor:.2f}) "
            f"| {r.kube_requests_per_cluster:.2f} ({by_method}) | {r.dynamodb_writes_per_cluster:.2f} "
            f"| {r.peak_mb:.0f} |"
        )
    largest = max(rows, key=lambda r: r.clusters)
    lines += [
        "",
        f"Kubernetes stand-in latency {rows[0].latency_ms:g} ms per request; floor: {workers} workers; "
        f"Secret ~{largest.secret_bytes / 1024:.1f} KB as rendered, "
        f"~{largest.floor_secret_bytes / 1024:.1f} KB in the floor and tbot's pattern; "
        f"medians of {repeat}; peak memory is VmHWM "
        f"of the renewal's process. 'Warm' is the second renewal in one process, as a worker kept warm "
        f"by the discovery schedule runs it; 'cold process' is the first, whose registry Query moto "
        f"answers far slower than DynamoDB. At {largest.clusters:,} clusters the renewal takes "
        f"{largest.renewal_s:.1f} s of the {FUNCTION_TIMEOUT:.0f} s timeout "
        f"({FUNCTION_TIMEOUT - largest.renewal_s:.0f} s margin).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("runs", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="1000", help="comma-separated cluster counts")
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16, help="the floor's writer threads")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead")
    args = parser.parse_args()
    if args.child:
        child(int(args.runs or 1))
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        rows.append(measure(size, args.latency_ms, max(1, args.repeat), args.workers))
        print(f"{size} clusters measured", file=sys.stderr)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(markdown(rows, max(1, args.repeat), args.workers))


if __name__ == "__main__":
    main()
