"""Many outputs: one output's run, all of them as concurrent worker invocations, all in one invocation.

    .venv/bin/python bench/fanout_bench.py [--outputs 20] [--clusters 1000] [--parallel 4]
                                           [--latency-ms 5] [--repeat 3] [--json]

One local stack with `--outputs` outputs that all select the same `--clusters` clusters, each with
its own `secret_name_prefix` (the configuration refuses two outputs writing the same Secrets), and
whose Kubernetes API waits `--latency-ms` per request. `--parallel` child processes act as warm
worker functions, as `WorkerConcurrency` lets Lambda run that many at once; the default, 4, suits
this 2-core machine, where more processes only share the same two cores. Each takes queued runs
(one SQS record per invocation, the template's batch size) from a shared list until none are left.

Every measured run is a forced renewal of whole outputs (`renew: all`, every Secret rewritten), so
the three shapes do the same work per output:

- one output alone: one worker invocation with one message;
- concurrent: every output's message spread over the `--parallel` warm workers;
- one after another: one worker invocation whose event carries every output's message.

Before the clock, the workers create every output's Secrets with discovery runs (reported as the
setup). Wall times are the parent's, dispatch to last answer; Kubernetes requests are the stand-in's,
which runs in the parent's process and so shares its cores with the workers. Medians of `--repeat`.
As in `renewal_bench.py`, the stand-in runs without the admission policy: it evaluates CEL in Python
at about 9 ms of CPU a write, which at 100,000 writes would measure the evaluator, not the fan-out.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "layers" / "core"), str(ROOT / "tests")]

from stacks import clusters, function_env, kube_requests, kube_writes, sqs_record  # noqa: E402
from warm import WarmFunction  # noqa: E402

from standins.stack import LocalStack, default_outputs  # noqa: E402
from teleport_argocd.plan import Renewal  # noqa: E402


@dataclass
class Result:
    """Medians over `repeat` of each shape's wall time, and what it wrote."""

    outputs: int
    clusters: int
    parallel: int
    latency_ms: float
    setup_s: float
    one_output_s: float
    concurrent_s: float
    sequential_s: float | None  # None when the shape was not run (`--no-sequential`)
    kube_writes_per_output: float
    dynamodb_writes_per_output: float
    # CPU the parent (the Teleport and Kubernetes stand-ins) used per second of the concurrent runs:
    # near 1.0, the GIL-bound stand-in, not the workers, sets the pace.
    standin_cpu_share: float
    worker_cpu_per_output_s: float  # CPU one worker invocation used for one output, in the child

    @property
    def speedup(self) -> float | None:
        return self.sequential_s / self.concurrent_s if self.sequential_s is not None else None


def outputs(count: int) -> list[dict[str, Any]]:
    base = default_outputs()[0]
    return [{**base, "name": f"out-{i:02d}", "secret_name_prefix": f"out-{i:02d}"} for i in range(count)]


def run_message(output: str, renew: Renewal) -> str:
    """A queued run's body, as teleport_argocd.fanout writes it."""
    return json.dumps({"output": output, "kind": "reload", "reason": "benchmark", "renew": renew.value})


def concurrently(workers: Sequence[WarmFunction], bodies: Sequence[str]) -> list[dict[str, Any]]:
    """Each body to whichever worker is free, one record per invocation, until none are left."""
    pending: queue.SimpleQueue[str] = queue.SimpleQueue()
    for body in bodies:
        pending.put(body)
    results: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def drain(worker: WarmFunction) -> None:
        try:
            for _ in range(len(bodies)):
                try:
                    body = pending.get_nowait()
                except queue.Empty:
                    return
                results.append(_clean(worker.invoke("worker", {"Records": [sqs_record(body)]})))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def _clean(result: dict[str, Any]) -> dict[str, Any]:
    if result["answer"]["batchItemFailures"]:
        raise RuntimeError(f"a queued run failed: {result['answer']}")
    return result


def measure(
    n_outputs: int, size: int, parallel: int, latency_ms: float, repeat: int, sequential: bool = True
) -> Result:
    names = [o["name"] for o in outputs(n_outputs)]
    forced = [run_message(n, Renewal.ALL) for n in names]
    with (
        LocalStack(
            clusters=clusters(size),
            outputs=outputs(n_outputs),
            kube_latency=latency_ms / 1000,
            admission=False,
        ) as stack,
        ExitStack() as children,
    ):
        kube = stack.kube
        assert kube is not None
        env = function_env(stack)
        workers = [children.enter_context(WarmFunction(env, ["worker"])) for _ in range(parallel)]
        started = time.perf_counter()
        concurrently(workers, [run_message(n, Renewal.NONE) for n in names])
        setup_s = time.perf_counter() - started
        _check_writes(kube_writes(kube_requests(kube, 0)), n_outputs * size, "setup")
        one, many, serial, kube_per_output, dynamo_per_output, cpu_share, worker_cpu = ([] for _ in range(7))
        for _ in range(repeat):
            before = len(kube.requests)
            started = time.perf_counter()
            _clean(workers[0].invoke("worker", {"Records": [sqs_record(forced[0])]}))
            one.append(time.perf_counter() - started)
            _check_writes(kube_writes(kube_requests(kube, before)), size, "one output")

            before = len(kube.requests)
            started, cpu = time.perf_counter(), time.process_time()
            results = concurrently(workers, forced)
            many.append(time.perf_counter() - started)
            cpu_share.append((time.process_time() - cpu) / many[-1])
            worker_cpu.append(statistics.median(r["cpu_seconds"] for r in results))
            writes = kube_writes(kube_requests(kube, before))
            _check_writes(writes, n_outputs * size, "concurrent")
            kube_per_output.append(writes / n_outputs)
            dynamo_per_output.append(sum(r["dynamodb"]["writes"] for r in results) / n_outputs)

            if not sequential:
                continue
            before = len(kube.requests)
            started = time.perf_counter()
            _clean(workers[0].invoke("worker", {"Records": [sqs_record(b) for b in forced]}))
            serial.append(time.perf_counter() - started)
            _check_writes(kube_writes(kube_requests(kube, before)), n_outputs * size, "one after another")
    return Result(
        outputs=n_outputs,
        clusters=size,
        parallel=parallel,
        latency_ms=latency_ms,
        setup_s=setup_s,
        one_output_s=statistics.median(one),
        concurrent_s=statistics.median(many),
        sequential_s=statistics.median(serial) if serial else None,
        kube_writes_per_output=statistics.median(kube_per_output),
        dynamodb_writes_per_output=statistics.median(dynamo_per_output),
        standin_cpu_share=statistics.median(cpu_share),
        worker_cpu_per_output_s=statistics.median(worker_cpu),
    )


def _check_writes(writes: int, expected: int, shape: str) -> None:
    """A shape that did not rewrite every Secret measured something else: refuse to report it."""
    if writes != expected:
        raise RuntimeError(f"{shape}: {writes} Kubernetes writes, expected {expected}")


def markdown(r: Result, repeat: int) -> str:
    return "\n".join(
        [
            f"| {r.outputs} outputs x {r.clusters:,} clusters | wall s | per output s |",
            "|---|---:|---:|",
            f"| one output alone | {r.one_output_s:.1f} | {r.one_output_s:.1f} |",
            f"| {r.outputs} concurrent worker invocations ({r.parallel} at a time) | {r.concurrent_s:.1f} "
            f"| {r.concurrent_s / r.outputs:.2f} |",
            *(
                [
                    f"| {r.outputs} one after another in one invocation | {r.sequential_s:.1f} "
                    f"| {r.sequential_s / r.outputs:.2f} |"
                ]
                if r.sequential_s is not None
                else []
            ),
            "",
            f"Forced renewal of every Secret ({r.outputs * r.clusters:,} per shape but the first); "
            + (
                f"concurrent is {r.speedup:.1f} times as fast as one after another. "
                if r.speedup is not None
                else "one after another not run. "
            )
            + "Kubernetes stand-in "
            f"latency {r.latency_ms:g} ms per request; medians of {repeat}; "
            f"{r.kube_writes_per_output:,.0f} Kubernetes writes and {r.dynamodb_writes_per_output:,.0f} "
            "DynamoDB write requests per output. Setup (every output's Secrets created, concurrently): "
            f"{r.setup_s:.1f} s. Stand-ins and workers share 2 cores; during the concurrent runs the "
            f"stand-ins' process used {r.standin_cpu_share:.2f} CPU-seconds per second, and each output's "
            f"worker invocation {r.worker_cpu_per_output_s:.1f} CPU-seconds, so {r.outputs} outputs need at "
            f"least {r.outputs * r.worker_cpu_per_output_s / 2:.1f} s on 2 cores however many run at once.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--outputs", type=int, default=20)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=4, help="warm workers at once (WorkerConcurrency)")
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead")
    parser.add_argument(
        "--no-sequential", action="store_true", help="skip the one-after-another shape (the longest)"
    )
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    result = measure(
        args.outputs, args.clusters, max(1, args.parallel), args.latency_ms, repeat, not args.no_sequential
    )
    print(json.dumps(asdict(result), indent=2) if args.json else markdown(result, repeat))


if __name__ == "__main__":
    main()
