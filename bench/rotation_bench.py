"""After a Teleport CA rotation phase change, how long until every Secret carries the new CA set.

    .venv/bin/python bench/rotation_bench.py [--clusters 1000] [--latency-ms 5] [--json]

One local stack whose Kubernetes API waits `--latency-ms` per request, and one child process acting
as a warm renew function without OUTPUT_RUNS_QUEUE. It registers every cluster with a discovery
run, then drives a host and user CA rotation (`init`, `update_clients`, `update_servers`,
`standby`) in the Teleport stand-in and after each phase change invokes discovery once, as the
schedule would, and checks that every Secret's `caData` is the phase's trusted host CA set.

No event announces a phase, so the time until Argo CD has the new CA set is the wait for the next
discovery tick (at most the discovery interval, 2 minutes by default) plus the run measured here.
The goal is that one run rewrites every Secret: within one discovery interval plus one run.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "layers" / "core"), str(ROOT / "tests")]

from stacks import clusters, function_env, kube_requests, kube_writes  # noqa: E402
from warm import WarmFunction  # noqa: E402

from standins.handlers import event  # noqa: E402
from standins.stack import ARGOCD_NAMESPACE, LocalStack  # noqa: E402
from teleport_argocd.argocd import secret_name  # noqa: E402

PHASES = ("init", "update_clients", "update_servers", "standby")
DISCOVERY_INTERVAL_S = 120.0


@dataclass
class Phase:
    phase: str
    seconds: float  # the discovery run after the phase change, in the warm child
    written: int  # Secrets the run wrote
    kube_writes: int
    current: int  # Secrets whose caData is the phase's trusted host CA set afterwards


def measure(size: int, latency_ms: float) -> list[Phase]:
    names = list(clusters(size))
    phases: list[Phase] = []
    with LocalStack(clusters=clusters(size), kube_latency=latency_ms / 1000) as stack:
        assert stack.kube is not None and stack.teleport is not None
        kube, teleport = stack.kube, stack.teleport
        with WarmFunction(function_env(stack), ["renew"]) as renew:
            renew.invoke("renew", event("discovery.json"))  # registers the fleet
            for phase in PHASES:
                teleport.rotate(phase)
                before = len(kube.requests)
                result = renew.invoke("renew", event("discovery.json"))
                outputs = result["answer"]["outputs"]
                if any(o["errors"] for o in outputs):
                    raise RuntimeError(f"discovery failed in phase {phase}: {outputs}")
                want = b"\n".join(teleport.trusted_ca_pems("host"))
                current = 0
                for name in names:
                    secret = kube.secret(
                        ARGOCD_NAMESPACE, secret_name("teleport.argocd-cluster", "root", name)
                    )
                    assert secret is not None
                    config = json.loads(base64.b64decode(secret["data"]["config"]))
                    current += base64.b64decode(config["tlsClientConfig"]["caData"]) == want
                phases.append(
                    Phase(
                        phase,
                        result["seconds"],
                        sum(o["counts"].get("written", 0) for o in outputs),
                        kube_writes(kube_requests(kube, before)),
                        current,
                    )
                )
    return phases


def markdown(phases: list[Phase], size: int, latency_ms: float) -> str:
    lines = [
        f"| phase ({size:,} clusters) | discovery run s | Secrets written | Kubernetes writes "
        "| Secrets with the phase's CA set | worst time to the new CA set s (interval + run) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        lines.append(
            f"| {p.phase} | {p.seconds:.2f} | {p.written} | {p.kube_writes} | {p.current} "
            f"| {DISCOVERY_INTERVAL_S + p.seconds:.0f} |"
        )
    lines += [
        "",
        f"One warm renew process; Kubernetes stand-in latency {latency_ms:g} ms per request; one run per "
        "phase. Each write is followed by a connection check through the Teleport stand-in's proxy.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="print the phases as JSON instead")
    args = parser.parse_args()
    phases = measure(args.clusters, args.latency_ms)
    if args.json:
        print(json.dumps([asdict(p) for p in phases], indent=2))
    else:
        print(markdown(phases, args.clusters, args.latency_ms))


if __name__ == "__main__":
    main()
