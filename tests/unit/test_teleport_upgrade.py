"""Whether the proxy needs the connection upgrade: Teleport's environment override and the ALPN probe."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator

import pytest
import trustme

from standins.aws import free_port
from teleport_argocd.teleport.tls import web_context
from teleport_argocd.teleport.upgrade import ENV_VAR, conn_upgrade_required, parse_bool, required_by_env

ADDRS = ("proxy.example.com:443", "proxy.example.com")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("0", False),
        ("yes;no", False),  # the last bare value wins
        ("proxy.example.com:443=yes", True),
        ("1,proxy.example.com:443=no", False),  # the entry naming the address wins
        ("0,proxy.example.com:443=1", True),
        ("other.example.com:443=yes", False),  # not named: the default, false
        ("true,other.example.com:443=no", True),
        ("proxy.example.com=on", True),  # the address as configured matches too
        ("proxy.example.com:443=maybe", False),  # Go answers false for an unparsable value
        ("garbage", False),
        (" true", False),  # Go does not trim
    ],
)
def test_required_by_env(value: str, expected: bool) -> None:
    assert required_by_env(ADDRS, value) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("YES", True), ("yeah", True), ("y", True), ("On", True), ("nope", False), ("off", False), ("2", None)],
)
def test_parse_bool_is_gos(text: str, expected: bool | None) -> None:
    assert parse_bool(text) is expected


class TlsServer:
    """Accepts TLS connections negotiating from `alpn` (an empty list negotiates nothing)."""

    def __init__(self, ca: trustme.CA, alpn: list[str]) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost").configure_cert(self._context)
        if alpn:
            self._context.set_alpn_protocols(alpn)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            try:
                with self._context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._sock.close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def probe(ca: trustme.CA) -> Iterator[object]:
    servers: list[TlsServer] = []

    def run(alpn: list[str], **kwargs: object) -> bool:
        server = TlsServer(ca, alpn)
        servers.append(server)
        context = web_context(ca_pem=ca.cert_pem.bytes())
        return conn_upgrade_required("localhost", server.port, ("localhost",), context, env={}, **kwargs)  # type: ignore[arg-type]

    yield run
    for server in servers:
        server.close()


def test_a_proxy_routing_on_alpn_needs_no_upgrade(probe) -> None:  # type: ignore[no-untyped-def]
    assert probe(["teleport-reversetunnel", "http/1.1"]) is False


@pytest.mark.parametrize("alpn", [["http/1.1"], ["h2", "http/1.1"], []])
def test_a_server_that_negotiates_none_of_teleports_protocols_needs_it(probe, alpn: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert probe(alpn) is True


def test_other_failures_mean_direct(ca: trustme.CA) -> None:
    context = web_context()  # does not trust the server: the probe fails, the direct route will say why
    server = TlsServer(ca, ["http/1.1"])
    try:
        assert conn_upgrade_required("localhost", server.port, ("localhost",), context, env={}) is False
    finally:
        server.close()
    assert conn_upgrade_required("127.0.0.1", free_port(), ("x",), web_context(), env={}) is False


def test_the_environment_decides_without_a_probe() -> None:
    port = free_port()  # nothing listens: a probe would fail and answer false
    env = {ENV_VAR: f"localhost:{port}=yes"}
    assert conn_upgrade_required("localhost", port, (f"localhost:{port}",), web_context(), env=env) is True
