"""Where a cold `kube.create` → Secret goes: the wall time of each step of the audit function's first
invocation in a fresh process, by name.

    .venv/bin/python bench/event_phases.py [--clusters 1000] [--latency-ms 5] [--repeat 5]

One local stack as `event_bench.py` builds it (every cluster registered first by a discovery run).
Each repeat enrols a new cluster and runs its event as the first invocation of a fresh child (the
package imported before the clock). The child wraps the named steps below with a wall clock
(start and duration, by thread) and botocore's API calls by operation; the parent reports, per step,
the median start and duration over the repeats, with the invocation's wall and CPU time and when
the Secret's write was answered. Steps nest (the join holds the proxy discovery); steps in a
thread other than the handler's run beside it. Counting is not free: a wrapped run is a few
milliseconds slower than a bare one.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PATHS = [str(ROOT / "layers" / "core"), str(ROOT / "tests")]
sys.path[:0] = [str(ROOT / "bench"), *PATHS]

# (module, attribute path, label): the steps of a targeted run, in the order they happen.
STEPS = (
    ("app", "idempotent_process", "idempotency store (its DynamoDB client)"),
    ("teleport_argocd.runtime", "load_config_from_ssm", "configuration (SSM client, read, parse)"),
    ("teleport_argocd.runtime", "Runtime.event_runs", "the event's registrations (BatchGetItem)"),
    ("teleport_argocd.runtime", "Runtime._connect_teleport", "Teleport join"),
    ("teleport_argocd.teleport.client", "find_proxy", "  proxy discovery and upgrade test"),
    ("teleport_argocd.teleport.client", "join_bot", "  join RPC (IAM, through STS)"),
    ("teleport_argocd.teleport.client", "TeleportSession.impersonate", "impersonated certificate"),
    ("teleport_argocd.teleport.client", "TeleportSession.list_kube_clusters", "listing the cluster"),
    ("teleport_argocd.teleport.client", "TeleportSession.authorities", "host and user CAs"),
    ("teleport_argocd.reconcile", "Reconciler._registry", "registrations for the run (BatchGetItem)"),
    ("teleport_argocd.reconcile", "render_secrets", "rendering"),
    ("teleport_argocd.reconcile", "Reconciler._plan", "planning"),
    ("teleport_argocd.state", "StateStore.try_acquire", "lease"),
    ("teleport_argocd.runtime", "Runtime._connect_destination", "destination (Secrets Manager, kubeconfig)"),
    ("teleport_argocd.reconcile", "apply_all", "the write and its registration"),
    ("teleport_argocd.reconcile", "Reconciler._record_run", "run record"),
    ("teleport_argocd.state", "StateStore.finish", "lease release"),
    ("teleport_argocd.teleport.client", "TeleportSession.close", "closing the Auth tunnels"),
)


# -- the child --------------------------------------------------------------------------------


def child() -> None:
    """Load the audit function, wrap the steps, run the event from stdin once, print the spans."""
    import importlib
    import pkgutil

    import botocore.client

    import teleport_argocd
    from standins.handlers import invoke, load_handler

    for module in pkgutil.walk_packages(teleport_argocd.__path__, "teleport_argocd."):
        importlib.import_module(module.name)
    app = load_handler("audit_event")
    spans: list[dict[str, Any]] = []
    origin = [0.0]

    def timed(function: Any, label: str | Callable[..., str]) -> Any:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spans.append(
                    {
                        "label": label(*args) if callable(label) else label,
                        "start": started - origin[0],
                        "seconds": time.perf_counter() - started,
                        "thread": threading.current_thread().name.split("_")[0],
                    }
                )

        return wrapper

    for module_name, path, label in STEPS:
        owner: Any = app if module_name == "app" else importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        current = inspect.getattr_static(owner, name)
        if isinstance(current, property):
            setattr(owner, name, property(timed(current.fget, label)))
        else:
            setattr(owner, name, timed(current, label))
    client_class: Any = botocore.client.BaseClient
    client_class._make_api_call = timed(
        client_class._make_api_call,
        lambda client, operation, *_: f"AWS {client.meta.service_model.service_name} {operation}",
    )
    event = json.loads(sys.stdin.read())
    started_at, cpu = time.time(), time.process_time()
    origin[0] = time.perf_counter()
    answer = invoke("audit_event", event)
    seconds = time.perf_counter() - origin[0]
    result = {
        "started_at": started_at,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "status": answer.get("status"),
        "spans": spans,
    }
    print(json.dumps(result))


# -- the parent -------------------------------------------------------------------------------


def run_cold(env: dict[str, str], event: dict[str, Any]) -> dict[str, Any]:
    from warm import LOG_LEVEL

    done = subprocess.run(
        [sys.executable, __file__, "--child"],
        input=json.dumps(event),
        env={**env, "PYTHONPATH": os.pathsep.join(PATHS), "POWERTOOLS_LOG_LEVEL": LOG_LEVEL},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the cold invocation failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["status"] != "processed":
        raise RuntimeError(f"the event was not processed: {result['status']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from event_bench import register_all
    from stacks import clusters, function_env, kube_create
    from warm import WRITE_METHODS

    from standins.stack import LocalStack

    results = []
    with LocalStack(clusters=clusters(args.clusters), kube_latency=args.latency_ms / 1000) as stack:
        assert stack.kube is not None and stack.teleport is not None
        env = function_env(stack)
        register_all(env, args.clusters)
        for i in range(max(1, args.repeat)):
            name = f"cold-{i:03d}"
            stack.teleport.add_kube_cluster(name, labels={"env": "prod", "team": "bench"})
            before = len(stack.kube.requests)
            result = run_cold(env, kube_create(name))
            written = [r.at for r in stack.kube.requests[before:] if r.method in WRITE_METHODS]
            results.append({**result, "secret_s": written[0] - result["started_at"]})
    print(report(results, args))


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    # A step that happens more than once a run (DynamoDB's UpdateItem: the lease, its release, the
    # idempotency record) is one row per occurrence, in the order of their starts.
    by_label: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        seen: dict[tuple[str, str], int] = defaultdict(int)
        for span in sorted(result["spans"], key=lambda s: s["start"]):
            where = "" if span["thread"] == "MainThread" else "beside"
            nth = seen[(span["label"], where)]
            seen[(span["label"], where)] += 1
            by_label[(span["label"], where, nth)].append(span)
    ms = 1000.0
    lines = [
        f"Cold kube.create, {args.clusters:,} registrations, Kubernetes latency {args.latency_ms:g} ms, "
        f"medians of {len(results)} (load average {os.getloadavg()[0]:.1f}):",
        "",
        f"invocation {statistics.median(r['seconds'] for r in results) * ms:.0f} ms wall, "
        f"{statistics.median(r['cpu_seconds'] for r in results) * ms:.0f} ms CPU in the function's process; "
        f"Secret written after {statistics.median(r['secret_s'] for r in results) * ms:.0f} ms",
        "",
        "| step | starts at ms | takes ms | runs with it |",
        "|---|---:|---:|---:|",
    ]
    for key in sorted(by_label, key=lambda k: statistics.median(s["start"] for s in by_label[k])):
        spans = by_label[key]
        label, where, nth = key
        lines.append(
            f"| {label}{f' #{nth + 1}' if nth else ''}{' (in a thread beside)' if where else ''} "
            f"| {statistics.median(s['start'] for s in spans) * ms:.0f} "
            f"| {statistics.median(s['seconds'] for s in spans) * ms:.1f} "
            f"| {len(spans)}/{len(results)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
    else:
        main()
