"""The two reference write patterns the renewal is measured against, replayed with plain httpx.

- floor: bare PUTs of pre-created Secrets from a pool of workers with keep-alive, no reads,
  no preconditions: what the Kubernetes API can absorb, so no renewal can beat it;
- tbot's pattern (`writeSecret`, reference/tbot-argocd.md §1.7): one Secret after another,
  GET, then POST when absent or PUT with the existing annotations merged in.

Both count their requests from the stand-in's own log, not from the client.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from standins.kubeapi import KubeApiServer, cluster_secret

TIMEOUT = httpx.Timeout(30.0)


@dataclass(frozen=True)
class Outcome:
    """Wall time of one pattern over all its Secrets, and the requests the API server saw, by method."""

    seconds: float
    requests: Counter[str]


@dataclass(frozen=True)
class Target:
    """Where and as whom to write: the stand-in's URL and TLS name, its CA, a client certificate."""

    url: str
    hostname: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    namespace: str

    @classmethod
    def of(cls, kube: KubeApiServer, user: str, namespace: str) -> Target:
        cert, key = kube.client_credentials(user)
        return cls(kube.url, kube.hostname, kube.ca_pem, cert, key, namespace)

    def secret_url(self, name: str = "") -> str:
        base = f"{self.url}/api/v1/namespaces/{self.namespace}/secrets"
        return f"{base}/{name}" if name else base


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
            "caData": target.ca_pem,
            "certData": target.cert_pem,
            "keyData": target.key_pem,
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


@contextmanager
def client(target: Target) -> Iterator[httpx.Client]:
    """A keep-alive HTTPS client with the client certificate; SNI (and the certificate check) use the
    API's DNS name, which does not resolve here."""
    context = ssl.create_default_context(cadata=target.ca_pem.decode())
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_bytes(target.cert_pem)
        key.write_bytes(target.key_pem)
        context.load_cert_chain(cert, key)
    with httpx.Client(verify=context, timeout=TIMEOUT) as http:
        yield http


def _send(http: httpx.Client, target: Target, method: str, url: str, body: Any = None) -> httpx.Response:
    extensions = {"sni_hostname": target.hostname}
    return http.request(method, url, json=body, params={"fieldManager": "tbot"}, extensions=extensions)


def _counted(kube: KubeApiServer, run: Callable[[], None]) -> Outcome:
    before = len(kube.requests)
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    return Outcome(seconds, Counter(r.method for r in kube.requests[before:]))


def floor(kube: KubeApiServer, target: Target, names: Sequence[str], workers: int = 16) -> Outcome:
    """One bare PUT per Secret from `workers` threads, each with its own keep-alive connection."""
    stamp = str(time.time_ns())

    def worker(share: Sequence[str]) -> None:
        with client(target) as http:
            for name in share:
                _send(http, target, "PUT", target.secret_url(name), secret_body(target, name, stamp))

    def run() -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(worker, [names[i::workers] for i in range(workers)]))

    outcome = _counted(kube, run)
    _check_all_ok(kube, outcome)
    return outcome


def tbot_pattern(kube: KubeApiServer, target: Target, names: Sequence[str]) -> Outcome:
    """tbot's `writeSecret` for each Secret in turn: GET; 404 → POST; else PUT, annotations merged."""
    stamp = str(time.time_ns())

    def run() -> None:
        with client(target) as http:
            for name in names:
                rendered = secret_body(target, name, stamp)
                found = _send(http, target, "GET", target.secret_url(name))
                if found.status_code == 404:
                    _send(http, target, "POST", target.secret_url(), rendered)
                    continue
                found.raise_for_status()
                existing = found.json()["metadata"].get("annotations") or {}
                rendered["metadata"]["annotations"] = {**existing, **rendered["metadata"]["annotations"]}
                _send(http, target, "PUT", target.secret_url(name), rendered)

    outcome = _counted(kube, run)
    _check_all_ok(kube, outcome)
    return outcome


def _check_all_ok(kube: KubeApiServer, outcome: Outcome) -> None:
    """A pattern whose writes failed measured nothing: refuse to report it (a GET's 404 is an answer)."""
    total = outcome.requests.total()
    served = kube.requests[len(kube.requests) - total :]
    failed = [r for r in served if r.status >= 400 and (r.method, r.status) != ("GET", 404)]
    if failed:
        raise RuntimeError(f"{len(failed)} of {total} requests failed, first: {failed[0]}")
