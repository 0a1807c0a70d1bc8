"""The renewal against its floor and tbot's pattern, side by side, each in a process of its own.

    .venv/bin/python bench/renewal_bench.py [--sizes 1000] [--latency-ms 5] [--repeat 3] [--json]
        [--floor-clients urllib3,httpx] [--memory-mb 512,1024,1769] [--save FILE]

For each size, one local stack (moto in its own process; the Teleport and Kubernetes stand-ins in
this one) whose Kubernetes API waits `--latency-ms` before answering each request (an in-region
EKS round trip; loopback alone answers in about 1 ms and hides round trips). Nothing is timed in
this process: it hosts the stand-ins, and a client sharing their interpreter lock would be slowed
by them. The Kubernetes stand-in serves server-side apply with field ownership but without the
admission policy: it evaluates CEL in Python at about 9 ms of CPU a request, which would make
this bench measure the evaluator (the tests run with the policy). Then, `--repeat` times,
interleaved, each a fresh child process that measures itself:

- floor (`kube_patterns.py floor`): one bare PUT per pre-created Secret (~3.6 KB, shaped like a
  rendered one) from 16 threads sharing one urllib3 pool (client `apply`: each a forced
  server-side apply instead, the server work the worker's writes cost); with `--floor-clients`, the same PUTs
  through other clients too (their CPU per write is what the renewal's writer could reach);
- tbot's pattern (`kube_patterns.py tbot`): GET then PUT per Secret, one after another;
- the project (`lambda_process.py`): the worker's real handler, invoked with an SQS event asking
  for a forced renewal, four times in one fresh process: *cold* (the clock starts before the
  handler and the layer are imported) and *warm*, the mean of the next three invocations, as the
  discovery schedule keeps a worker (the first of them often carries the full garbage collection
  the cold run's survivors cause, which a warm environment pays about once in eight runs; a
  mean of three weighs it more, not less). A first, unreported-in-the-ratios child creates the Secrets.
- the first floor once more after the worker: the CPU ratio is also given against the mean of the
  floor's runs before and after it, which takes most of this machine's drift in CPU speed (the
  same work takes more or less CPU from one minute to the next) out of the ratio.

With `--memory-mb`, each repeat also runs the worker's cold and warm invocations once per memory
size with the CPU share Lambda gives that size (`cpu_share.py`: a cgroup CPU quota of M / 1,769 of
a CPU on the worker's process alone, import included; the stand-ins and the other children run
unlimited), after the unlimited one; their rows show how often the quota throttled the worker.

Each child reports its wall time and its own CPU time (user + system over all its threads),
shown per 1,000 clusters; Kubernetes requests are counted by the stand-in; DynamoDB writes by a
hook in the worker's process. Medians of `--repeat`, as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(ROOT / "layers" / "core"), str(ROOT / "tests")]

from cpu_share import CpuShare, vcpus  # noqa: E402
from kube_patterns import Target, precreate, secret_names  # noqa: E402
from lambda_process import RESULT_MARK  # noqa: E402
from warm import LOG_LEVEL  # noqa: E402

from standins.kubeapi import KubeApiServer  # noqa: E402

FUNCTION_TIMEOUT = 300.0  # seconds, the functions' timeout in template.yaml
CHILD_TIMEOUT = 900.0  # a run past this is broken, not slow
OUTPUT = "production"  # the stack's one output (standins.stack.default_outputs)
PATTERNS = "bench-patterns"  # the Kubernetes user of the floor and tbot's pattern
WARM_RUNS = 3  # warm invocations after the cold one in each worker process


@dataclass(frozen=True)
class Timed:
    """One child's measurement of itself."""

    seconds: float
    cpu_seconds: float


@dataclass
class MemoryRow:
    """The worker at the CPU share Lambda gives `memory_mb`: medians of its runs, and the quota's effect."""

    memory_mb: int
    vcpus: float  # CPU-seconds per second the quota allowed
    cold: Timed
    warm: Timed
    throttled_seconds: float  # median, per worker process (cold and warm invocations together)
    throttled_share: float  # median share of the process's CFS periods that hit the quota
    runs: dict[str, list[Timed]] = field(default_factory=dict)


@dataclass
class Row:
    """Medians for one size. Ratios: warm/floor (want ≤ 1.5), tbot/warm (want ≥ 3), CPU warm/floor (≤ 1.5)."""

    clusters: int
    latency_ms: float
    floor: Timed
    floors_by_client: dict[str, Timed]
    tbot: Timed
    create: Timed
    cold: Timed  # a fresh process: import, join, registry Query, writes
    cold_import: Timed
    warm: Timed  # the mean of the WARM_RUNS invocations after the cold one in that process
    warm_over_floor: float
    cold_over_floor: float
    tbot_over_warm: float
    warm_cpu_over_floor_cpu: float
    # The same, against the mean of the floor's run before the worker and another one after it: this
    # machine's CPU speed drifts from minute to minute, and a floor on both sides of the worker
    # takes most of that drift out of the ratio.
    warm_cpu_over_bracketing_floor_cpu: float
    kube_requests_per_cluster: float
    kube_requests_by_method: dict[str, float]
    dynamodb_writes_per_cluster: float
    dynamodb_seconds_cold: dict[str, float]  # waiting for DynamoDB (moto here), by operation
    dynamodb_seconds_warm: dict[str, float]
    peak_mb: float
    load_average: tuple[float, float]  # the machine's 1-minute load average before and after
    speed: tuple[float, float]  # CPU-s of a fixed loop (`_speed`) before and after: how fast this machine ran
    runs: dict[str, list[Timed]] = field(default_factory=dict)
    by_memory: list[MemoryRow] = field(default_factory=list)  # with --memory-mb


def _child(args: list[str], env: dict[str, str], share: CpuShare | None = None) -> str:
    argv = [sys.executable, *args]
    done = subprocess.run(
        share.command(argv) if share else argv, env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def _pattern(pattern: str, target_file: Path, prefix: str, size: int, workers: int, client: str) -> Timed:
    script = str(BENCH / "kube_patterns.py")
    args = [
        script,
        pattern,
        str(target_file),
        prefix,
        str(size),
        "--workers",
        str(workers),
        "--client",
        client,
    ]
    return Timed(**json.loads(_child(args, dict(os.environ)).strip().splitlines()[-1]))


def _worker(
    env: dict[str, str], kube: KubeApiServer, size: int, runs: int, share: CpuShare | None = None
) -> dict[str, Any]:
    """`runs` invocations in one fresh worker process (within `share`'s CPU quota if given);
    refuses a run that did not write every Secret."""
    before = len(kube.requests)
    if share is not None:
        env = {**env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(share.memory_mb)}
    out = _child([str(BENCH / "lambda_process.py"), OUTPUT, str(runs)], env, share)
    report: dict[str, Any] = json.loads(
        next(line[len(RESULT_MARK) :] for line in reversed(out.splitlines()) if line.startswith(RESULT_MARK))
    )
    served = kube.requests[before:]
    written = [r for r in served if r.method in ("PUT", "POST", "PATCH") and r.status < 300]
    failed = [r for r in served if r.status >= 400 and (r.method, r.status) != ("GET", 404)]
    if len(written) != runs * size or failed or any(r["answer"]["batchItemFailures"] for r in report["runs"]):
        raise RuntimeError(
            f"the worker wrote {len(written)} of {runs * size} Secrets; failed: {failed[:3]}; {report}"
        )
    report["kube_requests"] = Counter(r.method for r in served)
    return report


def _mean(runs: list[dict[str, Any]]) -> Timed:
    """The mean of warm invocations' reports: CPU is billed in aggregate, so a run that pays a
    full garbage collection counts as much as one that does not."""
    return Timed(statistics.mean(r["seconds"] for r in runs), statistics.mean(r["cpu_seconds"] for r in runs))


def _speed() -> float:
    """CPU-seconds of a fixed 10-million-step Python loop, in this process while it serves nothing: the
    same work takes more CPU when this shared machine's CPU runs slow, so CPU-s figures of different
    runs compare only beside it."""
    started, total = time.process_time(), 0
    for step in range(10_000_000):
        total += step
    return time.process_time() - started


def _paired(these: list[Timed], those: list[Timed], measure: str) -> float:
    """The median of each repeat's ratio: the two were measured a minute apart at most. The CPU of
    this shared machine is not equally fast from one minute to the next (the same import took 0.38
    and 0.71 CPU-s within one run), so a ratio of two medians can divide a slow minute's figure by a
    fast one's."""
    return statistics.median(
        getattr(a, measure) / getattr(b, measure) for a, b in zip(these, those, strict=True)
    )


def _means(these: list[Timed], those: list[Timed]) -> list[Timed]:
    """Each repeat's mean of two measurements of the same thing."""
    return [
        Timed((a.seconds + b.seconds) / 2, (a.cpu_seconds + b.cpu_seconds) / 2)
        for a, b in zip(these, those, strict=True)
    ]


def _median(timings: list[Timed]) -> Timed:
    return Timed(
        statistics.median(t.seconds for t in timings), statistics.median(t.cpu_seconds for t in timings)
    )


def _median_by_key(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in sorted({k for r in runs for k in r})}


def _at_memory(
    env: dict[str, str], kube: KubeApiServer, size: int, memory_mb: int, runs: dict[str, list[Timed]]
) -> tuple[float, float]:
    """One cold-then-warm worker process at `memory_mb`'s CPU share; its throttled seconds and share."""
    with CpuShare(memory_mb) as share:
        report = _worker(env, kube, size, runs=1 + WARM_RUNS, share=share)
        throttling = share.throttling()
    cold, *warm = report["runs"]
    runs["cold"].append(Timed(cold["seconds"], cold["cpu_seconds"]))
    runs["warm"].append(_mean(warm))
    return throttling.throttled_seconds, throttling.throttled_periods / max(1, throttling.periods)


def measure(
    size: int, latency_ms: float, repeat: int, workers: int, clients: list[str], memory: Sequence[int] = ()
) -> Row:
    from standins.stack import ARGOCD_NAMESPACE, LocalStack

    clusters = {f"cluster-{i:05d}": {"env": "prod", "team": "bench"} for i in range(size)}
    load_before, speed_before = os.getloadavg()[0], _speed()
    with (
        LocalStack(clusters=clusters, kube_latency=latency_ms / 1000, admission=False) as stack,
        tempfile.TemporaryDirectory() as tmp,
    ):
        kube = stack.kube
        assert kube is not None
        # The floor and tbot's pattern read and replace, the apply floor patches: a user of their own
        # with tbot's verbs and patch (the functions' own Role has no get or update).
        kube.allow(user=PATTERNS, verbs=("get", "create", "update", "patch"), namespaces=(ARGOCD_NAMESPACE,))
        target = Target.of(kube, PATTERNS, ARGOCD_NAMESPACE)
        target_file = Path(tmp, "target.json")
        target_file.write_text(json.dumps(asdict(target)))
        precreate(kube, target, secret_names("bench-floor", size) + secret_names("bench-tbot", size))
        env = {**os.environ, **stack.env(), "POWERTOOLS_LOG_LEVEL": LOG_LEVEL}
        env.pop("PYTHONPATH", None)
        create = _worker(env, kube, size, runs=1)
        runs: dict[str, list[Timed]] = {f"floor {c}": [] for c in clients}
        runs.update({"floor after": [], "tbot": [], "cold": [], "cold import": [], "warm": []})
        kube_counts, dynamodb, peaks = [], [], [create["peak_mb"]]
        waits: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
        at_memory: dict[int, dict[str, list[Timed]]] = {mb: {"cold": [], "warm": []} for mb in memory}
        throttled: dict[int, list[tuple[float, float]]] = {mb: [] for mb in memory}
        for _ in range(repeat):
            for client in clients:
                runs[f"floor {client}"].append(
                    _pattern("floor", target_file, "bench-floor", size, workers, client)
                )
            runs["tbot"].append(_pattern("tbot", target_file, "bench-tbot", size, workers, "urllib3"))
            report = _worker(env, kube, size, runs=1 + WARM_RUNS)
            runs["floor after"].append(
                _pattern("floor", target_file, "bench-floor", size, workers, clients[0])
            )
            cold, *warm = report["runs"]
            runs["cold"].append(Timed(cold["seconds"], cold["cpu_seconds"]))
            runs["cold import"].append(Timed(report["import_seconds"], report["import_cpu_seconds"]))
            runs["warm"].append(_mean(warm))
            kube_counts.append(report["kube_requests"])  # every renewal's requests: divided below
            dynamodb += [r["dynamodb_writes"] for r in report["runs"]]
            waits["cold"].append(cold["dynamodb_seconds"])
            waits["warm"] += [r["dynamodb_seconds"] for r in warm]
            peaks.append(report["peak_mb"])
            for mb in memory:
                throttled[mb].append(_at_memory(env, kube, size, mb, at_memory[mb]))
    medians = {name: _median(timings) for name, timings in runs.items()}
    floor, warm, cold = medians[f"floor {clients[0]}"], medians["warm"], medians["cold"]
    methods = sorted({m for c in kube_counts for m in c})
    renewals = (1 + WARM_RUNS) * size  # Secrets written by each worker process
    first = create["runs"][0]
    return Row(
        clusters=size,
        latency_ms=latency_ms,
        floor=floor,
        floors_by_client={c: medians[f"floor {c}"] for c in clients},
        tbot=medians["tbot"],
        create=Timed(first["seconds"], first["cpu_seconds"]),
        cold=cold,
        cold_import=medians["cold import"],
        warm=warm,
        warm_over_floor=_paired(runs["warm"], runs[f"floor {clients[0]}"], "seconds"),
        cold_over_floor=_paired(runs["cold"], runs[f"floor {clients[0]}"], "seconds"),
        tbot_over_warm=_paired(runs["tbot"], runs["warm"], "seconds"),
        warm_cpu_over_floor_cpu=_paired(runs["warm"], runs[f"floor {clients[0]}"], "cpu_seconds"),
        warm_cpu_over_bracketing_floor_cpu=_paired(
            runs["warm"], _means(runs[f"floor {clients[0]}"], runs["floor after"]), "cpu_seconds"
        ),
        kube_requests_per_cluster=statistics.median(c.total() for c in kube_counts) / renewals,
        kube_requests_by_method={m: statistics.median(c[m] for c in kube_counts) / renewals for m in methods},
        dynamodb_writes_per_cluster=statistics.median(dynamodb) / size,
        dynamodb_seconds_cold=_median_by_key(waits["cold"]),
        dynamodb_seconds_warm=_median_by_key(waits["warm"]),
        peak_mb=max(peaks),
        load_average=(load_before, os.getloadavg()[0]),
        speed=(speed_before, _speed()),
        runs=runs,
        by_memory=[
            MemoryRow(
                memory_mb=mb,
                vcpus=vcpus(mb),
                cold=_median(at_memory[mb]["cold"]),
                warm=_median(at_memory[mb]["warm"]),
                throttled_seconds=statistics.median(t for t, _ in throttled[mb]),
                throttled_share=statistics.median(s for _, s in throttled[mb]),
                runs=at_memory[mb],
            )
            for mb in memory
        ],
    )


def markdown(rows: list[Row], repeat: int, workers: int) -> str:
    """The README tables: wall time, then CPU-seconds per 1,000 clusters, with the targets in the headers."""
    per_k = lambda t, n: t.cpu_seconds * 1000 / n  # noqa: E731
    clients = list(rows[0].floors_by_client)
    lines = [
        "| clusters | floor s | tbot's pattern s | worker cold process s (÷ floor) | worker warm s "
        "| warm ÷ floor (≤ 1.5) | tbot ÷ warm (≥ 3) | Kubernetes requests/cluster (≤ 1.05) "
        "| DynamoDB writes/cluster (≤ 0.1) | waiting on DynamoDB s, cold / warm | peak MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        by_method = ", ".join(f"{m} {v:.2f}" for m, v in r.kube_requests_by_method.items())
        lines.append(
            f"| {r.clusters:,} | {r.floor.seconds:.2f} | {r.tbot.seconds:.2f} "
            f"| {r.cold.seconds:.2f} ({r.cold_over_floor:.2f}) | {r.warm.seconds:.2f} "
            f"| **{r.warm_over_floor:.2f}** | {r.tbot_over_warm:.2f} | {r.kube_requests_per_cluster:.2f} "
            f"({by_method}) | {r.dynamodb_writes_per_cluster:.2f} "
            f"| {sum(r.dynamodb_seconds_cold.values()):.2f} / {sum(r.dynamodb_seconds_warm.values()):.2f} "
            f"| {r.peak_mb:.0f} |"
        )
    lines += [
        "",
        "| clusters | CPU-s per 1,000 clusters: "
        + " | ".join(f"floor ({c})" for c in clients)
        + " | tbot's pattern | worker cold (import) | worker warm | warm ÷ floor (≤ 1.5) "
        + "| warm ÷ floor before and after |",
        "|---:|" + "---:|" * (len(clients) + 5),
    ]
    for r in rows:
        floors = " | ".join(f"{per_k(t, r.clusters):.2f}" for t in r.floors_by_client.values())
        lines.append(
            f"| {r.clusters:,} | {floors} | {per_k(r.tbot, r.clusters):.2f} "
            f"| {per_k(r.cold, r.clusters):.2f} ({r.cold_import.cpu_seconds:.2f} s) "
            f"| {per_k(r.warm, r.clusters):.2f} | **{r.warm_cpu_over_floor_cpu:.2f}** "
            f"| {r.warm_cpu_over_bracketing_floor_cpu:.2f} |"
        )
    largest = max(rows, key=lambda r: r.clusters)
    lines += [
        "",
        f"Kubernetes stand-in latency {rows[0].latency_ms:g} ms per request; floor: {workers} threads "
        f"sharing one pool, ratios against the {clients[0]} floor (the median of each repeat's ratio); "
        f"medians of {repeat}; each figure measured by the process that did the work, none by the one "
        "hosting the stand-ins. Worker: its handler "
        "with an SQS event in a fresh process, 'cold' including the handler's import (itself in "
        f"parentheses, CPU-s), 'warm' the mean of the {WARM_RUNS} invocations after it. At "
        f"{largest.clusters:,} clusters a cold renewal takes {largest.cold.seconds:.1f} s of the "
        f"{FUNCTION_TIMEOUT:.0f} s timeout. Load average "
        "(1 min) before and after each size: "
        + ", ".join(f"{r.clusters:,}: {r.load_average[0]:.1f} → {r.load_average[1]:.1f}" for r in rows)
        + f" ({os.cpu_count()} CPUs). A fixed 10-million-step loop, CPU-s before and after: "
        + ", ".join(f"{r.clusters:,}: {r.speed[0]:.2f} → {r.speed[1]:.2f}" for r in rows)
        + ".",
    ]
    if rows[0].by_memory:
        lines += ["", memory_markdown(rows)]
    return "\n".join(lines)


def memory_markdown(rows: list[Row]) -> str:
    """The worker at Lambda's CPU share per memory size: wall and CPU time, each run, and the throttling."""
    lines = [
        "| clusters | memory MB | CPU share (vCPU) | worker cold s (runs) | worker warm s (runs) "
        "| warm CPU-s | throttled s per process | periods throttled |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    each = lambda ts: ", ".join(f"{t.seconds:.2f}" for t in ts)  # noqa: E731
    for r in rows:
        for m in r.by_memory:
            lines.append(
                f"| {r.clusters:,} | {m.memory_mb:,} | {m.vcpus:.2f} "
                f"| {m.cold.seconds:.2f} ({each(m.runs['cold'])}) "
                f"| {m.warm.seconds:.2f} ({each(m.runs['warm'])}) | {m.warm.cpu_seconds:.2f} "
                f"| {m.throttled_seconds:.2f} | {m.throttled_share:.0%} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000", help="comma-separated cluster counts")
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=16, help="the floor's writer threads")
    parser.add_argument(
        "--floor-clients", default="urllib3", help="floors to run, comma-separated; the first is the ratios'"
    )
    parser.add_argument(
        "--memory-mb",
        default="",
        help="comma-separated Lambda memory sizes: the worker also runs at each one's CPU share",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead")
    parser.add_argument("--save", type=Path, help="also write the rows as JSON here (bench/cost.py reads it)")
    args = parser.parse_args()
    clients = args.floor_clients.split(",")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        memory = [int(m) for m in args.memory_mb.split(",") if m]
        rows.append(measure(size, args.latency_ms, max(1, args.repeat), args.workers, clients, memory))
        print(f"{size} clusters measured", file=sys.stderr)
    if args.save:
        args.save.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(markdown(rows, max(1, args.repeat), args.workers))


if __name__ == "__main__":
    main()
