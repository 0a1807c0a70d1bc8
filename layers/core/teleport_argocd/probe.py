"""Whether a cluster Secret connects: `GET /version` exactly as Argo CD's client will make it.

Argo CD builds its client from the Secret alone (`server`, and `caData`, `certData`, `keyData`,
`serverName` from `config.tlsClientConfig`), so that is all a check uses. The request goes to the
Teleport proxy named in `server`, never to the Argo CD cluster. A wrong Teleport role
(`kubernetes_groups`), an agent that is down or a CA that does not verify the proxy shows here, when
the Secret is written, instead of when an Application first fails.

Outcomes: `ok` (2xx), `forbidden` (Teleport or Kubernetes refused the identity: 401/403, or the
HTTP 500 Teleport's proxy answers at `/version` with a refusal's text, below),
`tls-error` (the proxy's certificate does not verify against `caData`, or the handshake failed) and
`unreachable` (no connection, a timeout, or any other answer, such as Teleport's 5xx when no agent
serves the cluster). The message never holds key material: the proxy's own explanation, or the
transport error.

Teleport's Kubernetes proxy writes the errors of its authentication and authorization at `/version`
with Go's `http.Error`: status 500 and the message as plain text, not the `Status` with 403 it
answers elsewhere (`lib/kube/proxy/forwarder.go`: the `/version` route's
`withCustomErrFormatter(writeResponseErrorToBody)`). So a refusal there is told by its text: a role
with no `kubernetes_groups`/`kubernetes_users` ("...does not allow Kubernetes access..."), an
identity refused ("access denied"), a lock ("lock targeting ... is in force").
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from teleport_argocd.argocd import RenderedSecret

if TYPE_CHECKING:
    import httpx

OK, FORBIDDEN, UNREACHABLE, TLS_ERROR = "ok", "forbidden", "unreachable", "tls-error"
# A registration is checked after each write, and otherwise at least this often.
CHECK_EVERY = timedelta(hours=1)
RECHECK_FAILED = timedelta(minutes=10)
TIMEOUT = 5.0
_MESSAGE = 300
_REFUSALS_AT_VERSION = ("does not allow Kubernetes access", "access denied", "lock targeting")
_KEEP_CLIENTS = 2  # credentials kept with their connections: this run's and the one before
_pools: dict[tuple[str, str, str, str, float], _Pool] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class ConnectionCheck:
    """One check's outcome, when it was made, and why (empty when ok)."""

    status: str
    at: datetime
    message: str = ""


def check_connection(secret: RenderedSecret, now: datetime, *, timeout: float = TIMEOUT) -> ConnectionCheck:
    """Connects with what the Secret holds and asks for `/version`; never raises."""
    import httpx  # here: runs that write nothing never need it

    try:
        server, tls = _client_config(secret.manifest)
        pool = _pool(tls["caData"], tls["certData"], tls["keyData"], tls.get("serverName", ""), timeout)
        origin = urlsplit(server).netloc
        if (seen := pool.broken.get(origin)) is not None:
            return ConnectionCheck(seen[0], now, f"{seen[1]} (an earlier check in this run; not tried again)")
        extensions = {"sni_hostname": tls["serverName"]} if tls.get("serverName") else {}
        response = pool.client.get(server.rstrip("/") + "/version", extensions=extensions)
    except httpx.TransportError as exc:
        status = TLS_ERROR if _tls_failure(exc) else UNREACHABLE
        if status == TLS_ERROR or isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            # The same for every Secret of the run (one proxy, one CA set, one identity): a proxy
            # that does not answer must not cost every cluster its own timeout.
            pool.broken[origin] = (status, _short(exc))
        return ConnectionCheck(status, now, _short(exc))
    except (ValueError, KeyError, TypeError, ssl.SSLError) as exc:
        # caData, certificate or key unusable: Argo CD could not build its client either.
        message = f"the Secret's TLS configuration is unusable: {type(exc).__name__}"
        return ConnectionCheck(TLS_ERROR, now, message)
    if response.is_success:
        return ConnectionCheck(OK, now)
    answer = _answer(response)
    refused = response.status_code in (401, 403) or (
        response.status_code == 500 and any(r in answer for r in _REFUSALS_AT_VERSION)
    )
    return ConnectionCheck(
        FORBIDDEN if refused else UNREACHABLE, now, f"HTTP {response.status_code}: {answer}"
    )


def check_due(last_checked: datetime | None, now: datetime, last_status: str = OK) -> bool:
    """Whether an unchanged registration should be checked again in this run: hourly, and every
    `RECHECK_FAILED` while it does not connect, so a recovery shows soon."""
    every = CHECK_EVERY if last_status == OK else RECHECK_FAILED
    return last_checked is None or now - last_checked >= every


def _client_config(manifest: dict[str, Any]) -> tuple[str, dict[str, str]]:
    data = manifest["data"]
    server = base64.b64decode(data["server"]).decode()
    config = json.loads(base64.b64decode(data["config"]))
    return server, dict(config["tlsClientConfig"])


@dataclass
class _Pool:
    """A client for one run's credentials, and the servers it could not connect to (origin → outcome)."""

    client: httpx.Client
    broken: dict[str, tuple[str, str]] = field(default_factory=dict)


def _pool(ca_data: str, cert_data: str, key_data: str, server_name: str, timeout: float) -> _Pool:
    """One client per credentials: every Secret of a run shares them (and the proxy), so a run makes
    its TLS connections once and sends each check over them, as verified as a connection of its own.
    A new identity (the next run) evicts the oldest client and closes its connections. The server name
    is part of the key: a pooled connection keeps the name its handshake verified."""
    import httpx

    from teleport_argocd.teleport.tls import load_client_identity  # the teleport package imports grpc

    key = (ca_data, cert_data, key_data, server_name, timeout)
    with _clients_lock:
        pool = _pools.get(key)
        if pool is None:
            context = ssl.create_default_context(cadata=base64.b64decode(ca_data).decode("ascii"))
            load_client_identity(context, base64.b64decode(cert_data), base64.b64decode(key_data))
            pool = _pools[key] = _Pool(httpx.Client(verify=context, timeout=timeout, trust_env=False))
            while len(_pools) > _KEEP_CLIENTS:
                _pools.pop(next(iter(_pools))).client.close()
        return pool


def _tls_failure(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _answer(response: httpx.Response) -> str:
    """The proxy's explanation (a Kubernetes Status message, or plain text), short."""
    try:
        message = response.json()["message"]
    except (ValueError, KeyError, TypeError):
        plain = response.headers.get("content-type", "").startswith("text/plain")
        message = (response.text.strip() if plain else "") or response.reason_phrase or "no reason given"
    return str(message)[:_MESSAGE]


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:_MESSAGE]
