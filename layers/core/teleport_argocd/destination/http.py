"""Requests to a destination's API server: the one place urllib3 is used for it.

One pool of keep-alive connections per store (urllib3 is botocore's own HTTP client, so already in
the layer): the writer is CPU-bound, not network-bound, and on the same bench urllib3 spends about
half the CPU per request httpx does (bench/renewal_bench.py). Each request is counted and retried
while the API is overloaded or unreachable (full-jitter backoff, a 429's `Retry-After`), a TLS
verification failure is not retried, and transport failures become our errors here.
"""

from __future__ import annotations

import json
import logging
import math
import random
import ssl
import threading
import time
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import urllib3

from teleport_argocd import __version__
from teleport_argocd.destination.errors import error_class, retryable
from teleport_argocd.destination.kubeconfig import ClusterAccess
from teleport_argocd.errors import DestinationError, DestinationUnreachable, KubeconfigError

logger = logging.getLogger(__name__)

USER_AGENT = f"teleport-argocd/{__version__}"
# 16 writer threads share one store; a few more for reads during a dry run.
MAX_CONNECTIONS = 32


@dataclass(frozen=True)
class Retry:
    """How long to keep trying a request the API answered with 429 or 5xx, or never answered.

    Full-jitter exponential backoff (`base_delay` doubling up to `max_delay`), at most
    `attempts` requests and `budget` seconds in all; a 429's `Retry-After` is honoured up to
    `max_retry_after`, so one answer can neither stall a run nor use up the budget in one wait.
    """

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0
    budget: float = 10.0
    max_retry_after: float = 5.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


DEFAULT_RETRY = Retry()


class Op(Protocol):
    """One public call of a store: what it is about (its str, for messages) and the requests it made."""

    requests: int


@dataclass(frozen=True)
class Response:
    """An API answer, read whole (so its connection is back in the pool) and kept as bytes."""

    status_code: int
    content: bytes = field(repr=False)
    headers: Mapping[str, str]
    reason_phrase: str

    def json(self) -> Any:
        return json.loads(self.content)


class Client:
    """One API server, reached over a pool of keep-alive connections; safe to share between threads.

    `calls` counts API requests, retries included, so a benchmark can report Kubernetes requests
    per cluster.
    """

    def __init__(
        self, access: ClusterAccess, *, description: str, timeout: float = 10.0, retry: Retry = DEFAULT_RETRY
    ) -> None:
        self.description = description
        self.retry = retry
        self._token = access.token
        self._lock = threading.Lock()
        self._calls = 0
        self.last_request = time.monotonic()  # when a request last started (from creation until one does)
        self._server = access.server
        self._timeout = timeout
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self._http = _pool_manager(access, urllib3.Timeout(connect=min(timeout, 5.0), read=timeout))
        # Requests go to the API server's pool, looked up once: the manager's `urlopen` parses the
        # whole URL and looks the pool up again for every request, a tenth of a write's CPU here.
        # Only a plain-HTTP server behind a proxy needs the manager to rewrite each request.
        url = urlsplit(access.server)
        self._direct = url.scheme == "https" or not isinstance(self._http, urllib3.ProxyManager)
        self._path_prefix = url.path.rstrip("/")  # a server URL may carry a path (a proxying front)
        self._pool: urllib3.HTTPConnectionPool | None = None

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    def send(
        self,
        op: Op,
        method: str,
        path: str,
        body: Mapping[str, Any] | list[Any] | None = None,
        content_type: str = "application/json",
    ) -> Response:
        """One API call (`path` with its query): counted, retried while the API is overloaded or
        unreachable.

        Returns the answer for the caller to judge, except 429/5xx after the last attempt and
        transport failures, which raise DestinationUnreachable. An apply is sent as JSON, which
        is YAML.
        """
        content = json.dumps(body).encode() if body is not None else None
        deadline = time.monotonic() + self.retry.budget
        attempt = 0
        while True:
            headers = dict(self._headers)
            if content is not None:
                headers["Content-Type"] = content_type
            if self._token is not None:
                headers["Authorization"] = f"Bearer {self._token()}"
            self._count(op)
            try:
                answer = self._urlopen(method, path, content, headers)
                response = Response(answer.status, answer.data, answer.headers, answer.reason or "")
            except urllib3.exceptions.HTTPError as exc:
                if _tls_refused(exc) or not self._wait(attempt, None, deadline):
                    raise DestinationUnreachable(
                        f"{op}: cannot reach {self.description}: {_reason(exc)}"
                    ) from None
                logger.info("%s: %s unanswered (%s); retrying", op, method, type(exc).__name__)
            else:
                if not retryable(response.status_code):
                    return response
                if not self._wait(attempt, _retry_after(response), deadline):
                    raise self.error(op, response, f" (after {attempt + 1} attempts)")
                logger.info("%s: %s answered %d; retrying", op, method, response.status_code)
            attempt += 1

    def error(self, op: Op, response: Response, detail: str = "") -> DestinationError:
        """Our error for an answer the caller did not expect, of the class its status chooses."""
        status = response.status_code
        return error_class(status)(f"{op} in {self.description}: {status} {status_message(response)}{detail}")

    def close(self) -> None:
        self._pool = None
        self._http.clear()

    def _urlopen(
        self, method: str, path: str, content: bytes | None, headers: dict[str, str]
    ) -> urllib3.BaseHTTPResponse:
        options: dict[str, Any] = {
            "body": content,
            "headers": headers,
            "retries": False,  # retried in `send`, with our backoff and budget
            "redirect": False,
            "pool_timeout": self._timeout,
        }
        if not self._direct:
            return self._http.urlopen(method, self._server + path, **options)
        pool = self._pool
        if pool is None:  # the first request, or the first since `close`
            pool = self._pool = self._http.connection_from_url(self._server)
        return pool.urlopen(method, self._path_prefix + path, assert_same_host=False, **options)

    def _wait(self, attempt: int, retry_after: float | None, deadline: float) -> bool:
        """Sleep before the next attempt; False when there is none within the attempts and budget."""
        if attempt + 1 >= self.retry.attempts:
            return False
        delay = self.retry.delay(attempt, retry_after)
        if time.monotonic() + delay > deadline:
            return False
        time.sleep(delay)
        return True

    def _count(self, op: Op) -> None:
        op.requests += 1
        with self._lock:
            self._calls += 1
            self.last_request = time.monotonic()


def _pool_manager(access: ClusterAccess, timeout: urllib3.Timeout) -> urllib3.PoolManager:
    """Keep-alive connections to the API server, through the kubeconfig's `proxy-url` if it has one,
    else through the proxy the environment names for it (`HTTPS_PROXY`, `NO_PROXY`), as client-go does."""
    options: dict[str, Any] = {
        "num_pools": 2,
        "maxsize": MAX_CONNECTIONS,
        "block": True,
        "timeout": timeout,
        "ssl_context": access.ssl_context,
    }
    if access.server_name:
        options["server_hostname"] = access.server_name  # sent as SNI and verified
    if access.ssl_context.verify_mode == ssl.CERT_NONE:
        # The kubeconfig asked for it (insecure-skip-tls-verify); kubectl does not warn on every request.
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    url = urlsplit(access.server)
    proxy = access.proxy
    if proxy is None and not urllib.request.proxy_bypass(url.hostname or ""):
        environment = urllib.request.getproxies()
        proxy = environment.get(url.scheme) or environment.get("all")
    if proxy is None:
        return urllib3.PoolManager(**options)
    try:
        return urllib3.ProxyManager(proxy, **options)
    except urllib3.exceptions.ProxySchemeUnknown:
        raise KubeconfigError(
            f"proxy scheme {urlsplit(proxy).scheme!r} is not supported: use http or https"
        ) from None


def json_object(response: Response) -> dict[str, Any]:
    """The answer's JSON object; DestinationError for anything else."""
    try:
        document = response.json()
    except ValueError:
        raise DestinationError(f"unexpected answer from the API server ({response.status_code})") from None
    if not isinstance(document, dict):
        raise DestinationError(f"unexpected answer from the API server ({response.status_code})")
    return document


def status_message(response: Response) -> str:
    """The API's own explanation (a Status object's message), short; never a request body."""
    try:
        message = response.json()["message"]
    except (ValueError, KeyError, TypeError):
        message = response.reason_phrase or "no reason given"
    return str(message)[:300]


def _retry_after(response: Response) -> float | None:
    """`Retry-After` in seconds, or None to back off as usual. The API server sends whole seconds
    (RFC 9110 §10.2.3 also allows an HTTP date, which we do not follow); anything not a
    non-negative number is ignored rather than trusted (`Retry.delay` caps the rest)."""
    try:
        seconds = float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
    return None if math.isnan(seconds) or seconds < 0 else seconds


def _tls_refused(exc: urllib3.exceptions.HTTPError) -> bool:
    """Whether TLS verification failed: a wrong CA or name does not heal with a retry.

    urllib3 wraps the ssl module's error in its own, as an argument or as the context."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        cause = pending.pop()
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        if any(cause is s for s in seen):
            continue
        seen.append(cause)
        pending += [c for c in (cause.__cause__, cause.__context__) if c is not None]
        pending += [a for a in cause.args if isinstance(a, BaseException)]
    return False


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    return str(exc) or type(exc).__name__
