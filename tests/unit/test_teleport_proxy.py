"""Proxy discovery against a small local HTTPS server: parsing, Kubernetes address rules, and errors."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme

from standins.aws import free_port
from teleport_argocd.errors import ProxyError
from teleport_argocd.model import KubeEndpoint
from teleport_argocd.teleport.proxy import find_proxy, kube_server_name, split_address


class FindServer:
    """Answers GET /webapi/find with whatever the test sets.

    By default it negotiates `teleport-reversetunnel` like a proxy routing on ALPN; with `alpn` of
    only `http/1.1` it is what a client sees of a proxy behind an L7 load balancer.
    """

    def __init__(
        self, ca: trustme.CA, alpn: tuple[str, ...] = ("teleport-reversetunnel", "http/1.1")
    ) -> None:
        self.status = 200
        self.body: bytes = b"{}"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code, body = (server.status, server.body) if self.path == "/webapi/find" else (404, b"")
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # The upgrade test hangs up after the handshake, which socketserver would print as an error.
        self._http.handle_error = lambda *args: None  # type: ignore[method-assign]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
        context.set_alpn_protocols(list(alpn))
        self._http.socket = context.wrap_socket(self._http.socket, server_side=True)
        self.addr = f"localhost:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, body: dict[str, Any]) -> None:
        self.status, self.body = 200, json.dumps(body).encode()

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server(ca: trustme.CA) -> Iterator[FindServer]:
    found = FindServer(ca)
    yield found
    found.close()


def _find(
    web_addr: str = "teleport.example.com:443", *, tls_routing: bool = True, **kube: str
) -> dict[str, Any]:
    return {
        "cluster_name": "root.example.com",
        "server_version": "18.2.0",
        "proxy": {"tls_routing_enabled": tls_routing, "ssh": {"public_addr": web_addr}, "kube": kube},
        "auth": {"signature_algorithm_suite": "balanced-v1"},
    }


def test_find_reads_the_cluster(server: FindServer, ca: trustme.CA) -> None:
    server.answer({**_find(), "fips": True})
    info = find_proxy(server.addr, ca_pem=ca.cert_pem.bytes())
    assert info.cluster_name == "root.example.com"
    assert info.server_version == "18.2.0"
    assert info.fips is True and info.tls_routing is True
    assert info.web_addr == "teleport.example.com:443"
    assert info.signature_suite == "balanced-v1"
    assert info.kube == KubeEndpoint(
        "https://teleport.example.com:443", "kube-teleport-proxy-alpn.teleport.example.com"
    )


def test_absent_suite_and_public_addr(server: FindServer, ca: trustme.CA) -> None:
    body = _find("")
    del body["auth"]
    server.answer(body)
    info = find_proxy(server.addr, ca_pem=ca.cert_pem.bytes())
    assert info.signature_suite == ""
    # No public address: the address we were given, and the localhost rule for the SNI.
    assert info.web_addr == server.addr
    assert info.kube == KubeEndpoint(
        f"https://{server.addr}", "kube-teleport-proxy-alpn.teleport.cluster.local"
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            _find("127.0.0.1:3080"),
            KubeEndpoint("https://127.0.0.1:3080", "kube-teleport-proxy-alpn.teleport.cluster.local"),
        ),
        (
            _find("[::1]:443"),
            KubeEndpoint("https://[::1]:443", "kube-teleport-proxy-alpn.teleport.cluster.local"),
        ),
        (
            _find("tele.example.com:443", tls_routing=False, public_addr="kube.example.com:3026"),
            KubeEndpoint("https://kube.example.com:3026"),
        ),
        (
            _find("tele.example.com:443", tls_routing=False, listen_addr="0.0.0.0:3027"),
            KubeEndpoint("https://tele.example.com:3027"),
        ),
    ],
)
def test_kube_endpoint_selection(
    server: FindServer, ca: trustme.CA, body: dict[str, Any], expected: KubeEndpoint
) -> None:
    server.answer(body)
    assert find_proxy(server.addr, ca_pem=ca.cert_pem.bytes()).kube == expected


def test_no_kube_address(server: FindServer, ca: trustme.CA) -> None:
    server.answer(_find(tls_routing=False))
    with pytest.raises(ProxyError, match=rf"{server.addr} has no Kubernetes address"):
        find_proxy(server.addr, ca_pem=ca.cert_pem.bytes())


@pytest.mark.parametrize(("status", "body"), [(404, b"not found"), (200, b"<html>"), (200, b'{"proxy": {}}')])
def test_not_a_teleport_proxy(server: FindServer, ca: trustme.CA, status: int, body: bytes) -> None:
    server.status, server.body = status, body
    with pytest.raises(ProxyError, match=rf"{server.addr} is not a Teleport proxy"):
        find_proxy(server.addr, ca_pem=ca.cert_pem.bytes())


def test_untrusted_certificate(server: FindServer) -> None:
    server.answer(_find())
    with pytest.raises(ProxyError, match=rf"TLS verification of Teleport proxy {server.addr} failed"):
        find_proxy(server.addr)


def test_unreachable() -> None:
    addr = f"127.0.0.1:{free_port()}"
    with pytest.raises(ProxyError, match=rf"Teleport proxy {addr} is unreachable"):
        find_proxy(addr, timeout=2.0)


def test_insecure_skips_verification_and_warns_every_time(
    server: FindServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.answer(_find())
    with caplog.at_level(logging.WARNING, logger="teleport_argocd.teleport"):
        find_proxy(server.addr, insecure=True)
        find_proxy(server.addr, insecure=True)
    warnings = [
        r for r in caplog.records if r.name == "teleport_argocd.teleport" and "insecure" in r.getMessage()
    ]
    assert len(warnings) == 2


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("teleport.example.com", ("teleport.example.com", 443)),
        ("teleport.example.com:3080", ("teleport.example.com", 3080)),
        ("https://teleport.example.com:8443/", ("teleport.example.com", 8443)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
    ],
)
def test_split_address(addr: str, expected: tuple[str, int]) -> None:
    assert split_address(addr) == expected


@pytest.mark.parametrize("addr", ["", ":443", "host:port"])
def test_split_address_rejects(addr: str) -> None:
    with pytest.raises(ProxyError, match="invalid Teleport proxy address"):
        split_address(addr)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("teleport.example.com", "kube-teleport-proxy-alpn.teleport.example.com"),
        ("localhost", "kube-teleport-proxy-alpn.teleport.cluster.local"),
        ("10.1.2.3", "kube-teleport-proxy-alpn.teleport.cluster.local"),
        ("::1", "kube-teleport-proxy-alpn.teleport.cluster.local"),
        ("", "kube-teleport-proxy-alpn.teleport.cluster.local"),
    ],
)
def test_kube_server_name(host: str, expected: str) -> None:
    assert kube_server_name(host) == expected


def test_extra_ca_that_is_not_pem(server: FindServer) -> None:
    with pytest.raises(ProxyError, match="extra CA for the Teleport proxy is not a PEM certificate"):
        find_proxy(server.addr, ca_pem=b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----")


# -- behind an L7 load balancer ---------------------------------------------------


@pytest.fixture(scope="module")
def balancer(ca: trustme.CA) -> Iterator[FindServer]:
    """What a client sees of a proxy behind an ALB: only `http/1.1` is negotiated."""
    found = FindServer(ca, alpn=("http/1.1",))
    yield found
    found.close()


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEPORT_TLS_ROUTING_CONN_UPGRADE", raising=False)


def test_direct_proxy_needs_no_upgrade(server: FindServer, ca: trustme.CA) -> None:
    server.answer(_find())
    assert find_proxy(server.addr, ca_pem=ca.cert_pem.bytes()).conn_upgrade is False


def test_behind_a_balancer_argo_cd_gets_the_dedicated_kube_listener(
    balancer: FindServer, ca: trustme.CA
) -> None:
    balancer.answer(_find("teleport.example.com:443", public_addr="kube.example.com:3026"))
    info = find_proxy(balancer.addr, ca_pem=ca.cert_pem.bytes())
    assert info.conn_upgrade is True
    assert info.kube == KubeEndpoint("https://kube.example.com:3026")


@pytest.mark.parametrize(
    "kube",
    [{}, {"public_addr": "teleport.example.com:443"}, {"public_addr": "Teleport.Example.com"}],
    ids=["none", "the-balancer", "the-balancer-default-port"],
)
def test_behind_a_balancer_without_a_kube_listener_fails_with_the_reason(
    balancer: FindServer, ca: trustme.CA, kube: dict[str, str]
) -> None:
    balancer.answer(_find("teleport.example.com:443", **kube))
    with pytest.raises(
        ProxyError,
        match=r"behind a TLS-terminating load balancer .* cannot reach Kubernetes at "
        r"teleport\.example\.com:443 \(it needs TLS server name "
        r"kube-teleport-proxy-alpn\.teleport\.example\.com",
    ):
        find_proxy(balancer.addr, ca_pem=ca.cert_pem.bytes())


def test_without_tls_routing_the_balancer_changes_nothing_for_argo_cd(
    balancer: FindServer, ca: trustme.CA
) -> None:
    balancer.answer(_find(tls_routing=False, listen_addr="0.0.0.0:3026"))
    info = find_proxy(balancer.addr, ca_pem=ca.cert_pem.bytes())
    assert info.conn_upgrade and info.kube == KubeEndpoint("https://teleport.example.com:3026")


def test_a_known_answer_skips_the_test(balancer: FindServer, ca: trustme.CA) -> None:
    balancer.answer(_find())
    info = find_proxy(balancer.addr, ca_pem=ca.cert_pem.bytes(), conn_upgrade=False)
    assert info.conn_upgrade is False
    assert info.kube.server_name == "kube-teleport-proxy-alpn.teleport.example.com"
