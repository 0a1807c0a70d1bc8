"""The two reference write patterns the renewal is measured against, each run in a process of its own.

- floor: bare PUTs of pre-created Secrets from a pool of workers with keep-alive, no reads,
  no preconditions, through urllib3 (the leanest client here; botocore already ships it): what
  the Kubernetes API can absorb and what a write costs a client at the least, so no renewal can
  beat it;
- tbot's pattern (`writeSecret`, reference/tbot-argocd.md §1.7): one Secret after another,
  GET, then POST when absent or PUT with the existing annotations merged in.

The parent (`renewal_bench.py` or `http2_bench.py`, which host the stand-ins) starts

    python bench/kube_patterns.py floor|tbot TARGET_JSON PREFIX COUNT [--workers 16] [--client urllib3]

and reads one JSON line: the pattern's wall time and the child's own CPU time, measured in the
child, so neither shares an interpreter (or its lock) with the Kubernetes stand-in. `--client
httpx` replays the floor with one shared httpx client instead, to compare clients on the same bench
(`apply` and `httpx-apply` send each as a forced server-side apply; `httpx-h2` does so over HTTP/2;
`async-h1` and `async-h2` from one asyncio loop with a semaphore); `--client store` with the
project's own writer (`teleport_argocd.destination.secrets.SecretStore.write`, one conditional
PUT each, after an unmeasured pass that takes the Secrets over and learns their versions), which
tells the writer's cost per write from the rest of a renewal's.
Requests are counted from the stand-in's own log, by the parent.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import json
import ssl
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "layers" / "core")]

from standins.kubeapi import cluster_secret  # noqa: E402

if TYPE_CHECKING:
    from standins.kubeapi import KubeApiServer

TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Target:
    """Where and as whom to write: the stand-in's URL and TLS name, its CA, a client certificate (PEM)."""

    url: str
    hostname: str
    ca_pem: str
    cert_pem: str
    key_pem: str
    namespace: str

    @classmethod
    def of(cls, kube: KubeApiServer, user: str, namespace: str) -> Target:
        cert, key = kube.client_credentials(user)
        return cls(kube.url, kube.hostname, kube.ca_pem.decode(), cert.decode(), key.decode(), namespace)

    def secret_path(self, name: str = "") -> str:
        base = f"/api/v1/namespaces/{self.namespace}/secrets"
        return f"{base}/{name}" if name else base

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca_pem)
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            cert.write_text(self.cert_pem)
            key.write_text(self.key_pem)
            context.load_cert_chain(cert, key)
        return context


def secret_names(prefix: str, count: int) -> list[str]:
    """tbot-style names (prefix, dot, 16 hex characters of a hash), one per simulated cluster."""
    return [f"{prefix}.{hashlib.sha256(f'bench{i}'.encode()).hexdigest()[:16]}" for i in range(count)]


def secret_body(target: Target, name: str, stamp: str) -> dict[str, Any]:
    """A Secret shaped and sized like a rendered one (~3.6 KB): the config carries real PEM blocks.

    `stamp` goes where tbot's `teleport.dev/updated` goes, so every run's PUT really changes the Secret.
    """
    kube_cluster = name.rpartition(".")[2]
    encoded = base64.b64encode(kube_cluster.encode()).decode()
    return cluster_secret(
        name,
        target.namespace,
        server=f"https://teleport.example.com:443/v1/teleport/{encoded}",
        tls={
            "caData": target.ca_pem.encode(),
            "certData": target.cert_pem.encode(),
            "keyData": target.key_pem.encode(),
            "serverName": "kube-teleport-proxy-alpn.teleport.example.com",
        },
        labels={"team": "bench"},
        annotations={
            "teleport.dev/bot-name": "argocd",
            "teleport.dev/kubernetes-cluster-name": kube_cluster,
            "teleport.dev/teleport-cluster-name": "teleport.example.com",
            "teleport.dev/tbot-version": "18.2.0",
            "teleport.dev/updated": stamp,
        },
    )


def precreate(kube: KubeApiServer, target: Target, names: Sequence[str]) -> None:
    """Store the Secrets directly (unlogged), as an earlier run would have left them."""
    for name in names:
        kube.put_secret(secret_body(target, name, "created"))


# -- the clients: send(method, path, body) -> (status, answer) ----------------------------------

Send = Callable[[str, str, "Mapping[str, Any] | None"], tuple[int, bytes]]


def _urllib3_pool(target: Target, connections: int) -> Any:
    """One urllib3 pool of `connections` keep-alive connections to the target, shared by every thread."""
    import urllib3

    url = urlsplit(target.url)
    return urllib3.HTTPSConnectionPool(
        url.hostname or "",
        url.port,
        maxsize=connections,
        block=True,
        ssl_context=target.ssl_context(),
        server_hostname=target.hostname,
        assert_hostname=target.hostname,
        timeout=urllib3.Timeout(TIMEOUT_S),
        retries=False,
    )


def urllib3_client(target: Target, connections: int) -> Send:
    """One urllib3 pool of `connections` keep-alive connections, shared by every thread."""
    pool = _urllib3_pool(target, connections)

    def send(method: str, path: str, body: Mapping[str, Any] | None) -> tuple[int, bytes]:
        response = pool.urlopen(
            method,
            path + "?fieldManager=tbot",
            body=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        return response.status, response.data

    return send


def httpx_client(target: Target, connections: int, *, apply: bool = False, http2: bool = False) -> Send:
    """One httpx client (one connection pool) shared by every thread; with `apply`, each PUT sent as
    `apply_client` sends it; with `http2`, over HTTP/2 (one connection, a stream per request)."""
    import httpx

    http = httpx.Client(**_httpx_options(target, connections, http2))
    extensions = {"sni_hostname": target.hostname}

    def send(method: str, path: str, body: Mapping[str, Any] | None) -> tuple[int, bytes]:
        method, query, content_type = _request(method, apply)
        response = http.request(
            method,
            path + query,
            content=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": content_type},
            extensions=extensions,
        )
        _check_protocol(response.http_version, http2)
        return response.status_code, response.content

    return send


def _httpx_options(target: Target, connections: int, http2: bool) -> dict[str, Any]:
    """An httpx client's (threaded or asyncio) options: the target's TLS, `connections` kept alive."""
    import httpx

    return {
        "base_url": target.url,
        "verify": target.ssl_context(),
        "timeout": TIMEOUT_S,
        "limits": httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        "http2": http2,
    }


def _request(method: str, apply: bool) -> tuple[str, str, str]:
    """Method, query and content type: a PUT as itself, or (`apply`) as a forced server-side apply."""
    if apply and method == "PUT":
        return "PATCH", "?fieldManager=bench-floor&force=true", "application/apply-patch+yaml"
    return method, "?fieldManager=tbot", "application/json"


def _refusal(status: int, answer: bytes) -> str:
    """The start of an answer for an error message: only a refusal's (a Status object); a Secret's
    would carry its certificate and key."""
    return repr(answer[:200]) if status >= 400 else "(a Secret, not shown)"


def _check_protocol(version: str, http2: bool) -> None:
    """Refuse a measurement whose connection did not speak the protocol asked for (ALPN falls back)."""
    if (version == "HTTP/2") != http2:
        raise RuntimeError(f"asked for {'HTTP/2' if http2 else 'HTTP/1.1'}, the connection speaks {version}")


def apply_client(target: Target, connections: int) -> Send:
    """urllib3 as `urllib3_client`, but each PUT sent as a forced server-side apply (`PATCH`): the
    same server work as the worker's writes, for a floor that compares like with like."""
    pool = _urllib3_pool(target, connections)

    def apply(method: str, path: str, body: Mapping[str, Any] | None) -> tuple[int, bytes]:
        method, query, content_type = _request(method, apply=True)
        response = pool.urlopen(
            method,
            path + query,
            body=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": content_type},
        )
        return response.status, response.data

    return apply


CLIENTS: dict[str, Callable[[Target, int], Send]] = {
    "urllib3": urllib3_client,
    "httpx": httpx_client,
    "apply": apply_client,
    "httpx-apply": functools.partial(httpx_client, apply=True),
    "httpx-h2": functools.partial(httpx_client, apply=True, http2=True),
}
# asyncio: one httpx AsyncClient, at most `workers` requests in flight (a semaphore), forced applies.
ASYNC_CLIENTS = {"async-h1": False, "async-h2": True}


# -- the patterns --------------------------------------------------------------------------------


def floor(send: Send, target: Target, names: Sequence[str], workers: int) -> None:
    """One bare PUT per Secret from `workers` threads sharing one pool of keep-alive connections."""
    stamp = str(time.time_ns())

    def put(name: str) -> None:
        status, answer = send("PUT", target.secret_path(name), secret_body(target, name, stamp))
        if status != 200:
            raise RuntimeError(f"PUT {name}: {status} {_refusal(status, answer)}")

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, names))


def async_floor(target: Target, names: Sequence[str], workers: int, http2: bool) -> Callable[[], None]:
    """The floor's applies from one event loop, `workers` in flight at once, through one httpx
    AsyncClient; returns the run to measure (its connections opened within it, as the threaded
    floors' are)."""
    import asyncio

    import httpx

    loop = asyncio.new_event_loop()
    http = httpx.AsyncClient(**_httpx_options(target, workers, http2))
    extensions = {"sni_hostname": target.hostname}
    method, query, content_type = _request("PUT", apply=True)

    async def put(name: str, stamp: str, slots: asyncio.Semaphore) -> None:
        async with slots:
            response = await http.request(
                method,
                target.secret_path(name) + query,
                content=json.dumps(secret_body(target, name, stamp)).encode(),
                headers={"Content-Type": content_type},
                extensions=extensions,
            )
        _check_protocol(response.http_version, http2)
        if response.status_code != 200:
            raise RuntimeError(
                f"apply {name}: {response.status_code} {_refusal(response.status_code, response.content)}"
            )

    async def run_all(batch: Sequence[str]) -> None:
        slots, stamp = asyncio.Semaphore(workers), str(time.time_ns())
        await asyncio.gather(*(put(name, stamp, slots) for name in batch))

    return lambda: loop.run_until_complete(run_all(names))


def tbot_pattern(send: Send, target: Target, names: Sequence[str]) -> None:
    """tbot's `writeSecret` for each Secret in turn: GET; 404 → POST; else PUT, annotations merged."""
    stamp = str(time.time_ns())
    for name in names:
        rendered = secret_body(target, name, stamp)
        status, answer = send("GET", target.secret_path(name), None)
        if status == 404:
            status, answer = send("POST", target.secret_path(), rendered)
        elif status == 200:
            existing = json.loads(answer)["metadata"].get("annotations") or {}
            rendered["metadata"]["annotations"] = {**existing, **rendered["metadata"]["annotations"]}
            status, answer = send("PUT", target.secret_path(name), rendered)
        if status not in (200, 201):
            raise RuntimeError(f"writing {name}: {status} {_refusal(status, answer)}")


def store_floor(target: Target, names: Sequence[str], workers: int) -> Callable[[], None]:
    """The floor's writes through the project's writer: returns the run to measure, after taking the
    Secrets over from tbot (unmeasured) so that each measured write is one request (a server-side
    apply). The bodies carry our version annotation where tbot's carries its own, as rendered."""
    from teleport_argocd.destination.kubeconfig import ClusterAccess
    from teleport_argocd.destination.secrets import SecretStore
    from teleport_argocd.model import TBOT_VERSION_ANNOTATION, VERSION_ANNOTATION

    def ours(name: str, stamp: str) -> dict[str, Any]:
        body = secret_body(target, name, stamp)
        annotations = body["metadata"]["annotations"]
        annotations[VERSION_ANNOTATION] = annotations.pop(TBOT_VERSION_ANNOTATION)
        return body

    access = ClusterAccess(target.url, target.ssl_context(), server_name=target.hostname)
    store = SecretStore(access, description="bench")
    with ThreadPoolExecutor(workers) as pool:
        taken = list(pool.map(lambda n: store.write(ours(n, "taken"), None), names))
    stamp = str(time.time_ns())

    def put(name_and_version: tuple[str, Any]) -> None:
        name, version = name_and_version
        if store.write(ours(name, stamp), version).requests != 1:
            raise RuntimeError(f"writing {name} took more than one request")

    def run() -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(put, zip(names, (t.version for t in taken), strict=True)))

    return run


@dataclass(frozen=True)
class Measured:
    """One pattern's run as its own process saw it."""

    seconds: float
    cpu_seconds: float  # this process's user + system time over the run, all threads


def measure(run: Callable[[], None]) -> Measured:
    started, cpu = time.perf_counter(), time.process_time()
    run()
    return Measured(time.perf_counter() - started, time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pattern", choices=("floor", "tbot"))
    parser.add_argument("target", type=Path, help="a JSON file holding a Target")
    parser.add_argument("prefix")
    parser.add_argument("count", type=int)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--client", choices=[*sorted(CLIENTS), *ASYNC_CLIENTS, "store"], default="urllib3")
    args = parser.parse_args()
    target = Target(**json.loads(args.target.read_text()))
    names = secret_names(args.prefix, args.count)
    if args.pattern == "floor" and args.client == "store":
        outcome = measure(store_floor(target, names, args.workers))
    elif args.pattern == "floor" and args.client in ASYNC_CLIENTS:
        outcome = measure(async_floor(target, names, args.workers, ASYNC_CLIENTS[args.client]))
    elif args.pattern == "floor":
        send = CLIENTS[args.client](target, args.workers)
        outcome = measure(lambda: floor(send, target, names, args.workers))
    else:
        send = CLIENTS[args.client](target, 1)
        outcome = measure(lambda: tbot_pattern(send, target, names))
    print(json.dumps(asdict(outcome)))


if __name__ == "__main__":
    main()
