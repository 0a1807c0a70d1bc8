"""Proxy discovery: what `/webapi/find` says about the cluster, and where Kubernetes clients connect.

The Kubernetes address and TLS server name follow tbot's rules, so the Secrets we write point where
tbot's would: with TLS routing, the web address and SNI `kube-teleport-proxy-alpn.<host>` (the
`teleport.cluster.local` form when the host is empty, `localhost` or an IP, which no certificate
names); otherwise the proxy's dedicated Kubernetes listener, without an SNI.

Behind an L7 load balancer (`upgrade`) our own connections tunnel through the proxy's upgrade
endpoint, but Argo CD connects with plain TLS, and the load balancer would answer the Kubernetes SNI
with its own certificate and never route it. tbot's Argo CD output refuses such a proxy
(`lib/tbot/services/k8s/argocd_output.go`); we point Argo CD at the proxy's dedicated Kubernetes
listener when the proxy announces one at another address (`kube_public_addr`, reached around the
load balancer), and otherwise fail with that reason.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from teleport_argocd.errors import ProxyError
from teleport_argocd.model import KubeEndpoint
from teleport_argocd.teleport.tls import API_DOMAIN, web_context
from teleport_argocd.teleport.upgrade import conn_upgrade_required

logger = logging.getLogger("teleport_argocd.teleport")

KUBE_SNI_PREFIX = "kube-teleport-proxy-alpn."
_DEFAULT_WEB_PORT = 443
_DEFAULT_KUBE_PORT = 3026


@dataclass(frozen=True)
class ProxyInfo:
    """The cluster behind a proxy, as `/webapi/find` describes it."""

    cluster_name: str
    server_version: str
    fips: bool
    tls_routing: bool
    web_addr: str  # host:port clients use for the web API (the proxy's public address)
    kube: KubeEndpoint
    signature_suite: str  # "" when the cluster does not say, which means legacy (RSA)
    conn_upgrade: bool = False  # behind an L7 load balancer: connect through the upgrade endpoint


def find_proxy(
    addr: str,
    *,
    ca_pem: bytes | None = None,
    insecure: bool = False,
    timeout: float = 10.0,
    conn_upgrade: bool | None = None,
    context: ssl.SSLContext | None = None,
) -> ProxyInfo:
    """Asks the proxy at `addr` (`host[:port]`, port 443 by default) about its cluster.

    The proxy's certificate is verified against the system roots plus `ca_pem`; `insecure` turns
    verification off for test clusters and says so in the log on every call. Whether connections
    need the upgrade is tested (`upgrade`) unless `conn_upgrade` already says. `context`: the
    `web_context` of the same `ca_pem` and `insecure` to verify with, both here and in the upgrade
    test (each use sets its ALPN list before its handshake), so the system roots load once.
    """
    host, port = split_address(addr)
    if insecure:
        logger.warning(
            "TLS verification of Teleport proxy %s is disabled (insecure); use only for test clusters", addr
        )
    url = f"https://{join_host_port(host, port)}/webapi/find"
    try:
        # trust_env=False: the gRPC routes cannot go through an HTTP proxy, so discovery does not either.
        web = context or web_context(ca_pem=ca_pem, insecure=insecure)
        with httpx.Client(verify=web, timeout=timeout, trust_env=False) as client:
            response = client.get(url, headers={"Accept": "application/json"})
    except httpx.TimeoutException as exc:
        raise ProxyError(f"Teleport proxy {addr} did not answer within {timeout:g}s") from exc
    except httpx.TransportError as exc:
        verification = _certificate_error(exc)
        if verification is not None:
            raise ProxyError(f"TLS verification of Teleport proxy {addr} failed: {verification}") from exc
        raise ProxyError(f"Teleport proxy {addr} is unreachable: {exc}") from exc
    if response.status_code != 200:
        raise ProxyError(
            f"{addr} is not a Teleport proxy: GET /webapi/find answered HTTP {response.status_code}"
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not body.get("cluster_name") or not isinstance(body.get("proxy"), dict):
        raise ProxyError(f"{addr} is not a Teleport proxy: GET /webapi/find did not describe a cluster")
    if conn_upgrade is None:
        addrs = (join_host_port(host, port), addr)
        conn_upgrade = conn_upgrade_required(host, port, addrs, web, timeout=timeout)
    return _proxy_info(addr, host, port, body, conn_upgrade)


def split_address(addr: str) -> tuple[str, int]:
    """(host, port) of `host[:port]`, `[v6]:port` or `https://host[:port]`."""
    parts = urlsplit("//" + addr.removeprefix("https://").rstrip("/"))
    try:
        port = parts.port or _DEFAULT_WEB_PORT
    except ValueError:
        raise ProxyError(f"invalid Teleport proxy address {addr!r}") from None
    if not parts.hostname:
        raise ProxyError(f"invalid Teleport proxy address {addr!r}")
    return parts.hostname, port


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def kube_server_name(host: str) -> str:
    """The SNI that routes a connection to the proxy's Kubernetes handler (tbot's rule)."""
    if not host or host == "localhost" or _is_ip(host):
        return KUBE_SNI_PREFIX + API_DOMAIN
    return KUBE_SNI_PREFIX + host


def _proxy_info(addr: str, host: str, port: int, body: dict[str, Any], conn_upgrade: bool) -> ProxyInfo:
    proxy = body["proxy"]
    web_addr = _dig(proxy, "ssh", "public_addr") or join_host_port(host, port)
    tls_routing = bool(proxy.get("tls_routing_enabled"))
    return ProxyInfo(
        cluster_name=str(body["cluster_name"]),
        server_version=_dig(body, "server_version"),
        fips=bool(body.get("fips")),
        tls_routing=tls_routing,
        web_addr=web_addr,
        kube=_kube_endpoint(addr, web_addr, tls_routing, proxy, conn_upgrade),
        signature_suite=_dig(body, "auth", "signature_algorithm_suite"),
        conn_upgrade=conn_upgrade,
    )


def _kube_endpoint(
    addr: str, web_addr: str, tls_routing: bool, proxy: dict[str, Any], conn_upgrade: bool
) -> KubeEndpoint:
    web_host = urlsplit("//" + web_addr).hostname or ""
    if tls_routing and conn_upgrade:
        public_addr = _dig(proxy, "kube", "public_addr")
        if public_addr and _canonical(public_addr) != _canonical(web_addr):
            return KubeEndpoint(f"https://{public_addr}")
        raise ProxyError(
            f"Teleport proxy {addr} is behind a TLS-terminating load balancer that does not pass ALPN "
            f"and SNI through, so Argo CD cannot reach Kubernetes at {web_addr} (it needs TLS server "
            f"name {kube_server_name(web_host)} to reach the proxy itself). Give the proxy a Kubernetes "
            "listener outside that load balancer (kube_listen_addr, announced as kube_public_addr, "
            "behind a TCP/TLS-passthrough load balancer) or put the proxy behind a TCP/TLS-passthrough "
            "load balancer"
        )
    if tls_routing:
        return KubeEndpoint(f"https://{web_addr}", kube_server_name(web_host))
    if public_addr := _dig(proxy, "kube", "public_addr"):
        return KubeEndpoint(f"https://{public_addr}")
    if listen_addr := _dig(proxy, "kube", "listen_addr"):
        kube_port = urlsplit("//" + listen_addr).port or _DEFAULT_KUBE_PORT
        return KubeEndpoint(f"https://{join_host_port(web_host, kube_port)}")
    raise ProxyError(
        f"Teleport proxy {addr} has no Kubernetes address: TLS routing is off and it announces "
        "no Kubernetes public or listen address"
    )


def _canonical(hostport: str) -> tuple[str, int]:
    parts = urlsplit("//" + hostport)
    try:
        return (parts.hostname or "").lower(), parts.port or _DEFAULT_WEB_PORT
    except ValueError:
        return hostport.lower(), 0


def _dig(data: Any, *path: str) -> str:
    """The string at a JSON path, "" where any step is missing."""
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return str(data) if data else ""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _certificate_error(exc: BaseException) -> str | None:
    """The certificate verification failure behind an httpx error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None
