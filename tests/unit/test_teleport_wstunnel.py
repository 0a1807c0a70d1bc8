"""The WebSocket connection upgrade on its own: handshake, binary frames, pings, close, and refusals,
against the stand-in's `/webapi/connectionupgrade` handler on a local HTTPS server."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, TypeVar

import pytest
import trustme

from standins.teleport.connupgrade import PATH, UpgradeLog, accept_key, serve_upgrade
from standins.teleport.httpserve import serve_https
from standins.teleport.router import Connection, Listener
from teleport_argocd.errors import ProxyError
from teleport_argocd.teleport import tls
from teleport_argocd.teleport.wstunnel import WebSocketDialer

T = TypeVar("T")


def echo(conn: Connection) -> None:
    """The ALPN handler behind the upgrade: sends back whatever arrives, until the client ends."""
    with conn.sock:
        while data := conn.sock.recv(65536):
            conn.sock.sendall(data)


def hang_up(conn: Connection) -> None:
    conn.sock.close()


class UpgradeServer:
    """HTTPS with the stand-in's upgrade endpoint; `raw_answer` replaces it with fixed bytes."""

    def __init__(self, ca: trustme.CA, alpn_handler: Callable[[Connection], None] = echo) -> None:
        self.log = UpgradeLog()
        self.raw_answer: bytes | None = None
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                server.requests.append(dict(self.headers.items()))
                if server.raw_answer is not None:
                    self.wfile.write(server.raw_answer.replace(b"{accept}", self._accept()))
                    self.close_connection = True
                    return
                refused = serve_upgrade(self, alpn_handler, server.log) if self.path == PATH else (404, {})
                if refused is not None:
                    self.send_response(refused[0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def _accept(self) -> bytes:
                return accept_key(self.headers.get("Sec-WebSocket-Key", "")).encode()

            def log_message(self, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("localhost").configure_cert(context)
        self._listener = Listener(lambda conn: serve_https(conn, context, Handler, None), "upgrade-test")
        self._listener.start()
        self.port = self._listener.port

    def close(self) -> None:
        self._listener.stop()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server(ca: trustme.CA) -> Iterator[UpgradeServer]:
    upgrade = UpgradeServer(ca)
    yield upgrade
    upgrade.close()


def dialer(server: UpgradeServer, ca: trustme.CA) -> WebSocketDialer:
    context = tls.web_context(ca_pem=ca.cert_pem.bytes())
    return WebSocketDialer("localhost", server.port, context, host_header=f"localhost:{server.port}")


def run(coro: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro(), 20)

    return asyncio.run(bounded())


async def exchange(sock: socket.socket, payloads: list[bytes]) -> list[bytes]:
    """Sends each payload and reads its echo before the next."""
    reader, writer = await asyncio.open_connection(sock=sock)
    echoes = []
    for payload in payloads:
        writer.write(payload)
        await writer.drain()
        echoes.append(await reader.readexactly(len(payload)))
    writer.close()
    return echoes


def test_bytes_round_trip_in_masked_binary_frames_and_pings_are_answered(
    server: UpgradeServer, ca: trustme.CA
) -> None:
    big = bytes(range(256)) * 1024  # several frames

    async def go() -> list[bytes]:
        sock, bridge = await dialer(server, ca).open()
        task = asyncio.ensure_future(bridge)
        echoes = await exchange(sock, [b"hello", big])
        await task  # ends once the close frame is out
        return echoes

    assert run(go) == [b"hello", big]
    # The server (wsproto, like Teleport's) refuses unmasked client frames, so the echo proves masking.
    assert server.log.subprotocols == ["alpn-ping"]
    # The ping came before the first echo, so its pong was on the wire before the second payload.
    assert server.log.pongs == 1
    [headers] = server.requests
    assert headers["Upgrade"].lower() == "websocket"
    assert headers["Connection"].lower() == "upgrade"
    assert headers["Sec-WebSocket-Version"] == "13"
    assert headers["Sec-WebSocket-Protocol"] == "alpn-ping"
    assert headers["Host"] == f"localhost:{server.port}"
    assert len(base64.b64decode(headers["Sec-WebSocket-Key"])) == 16


def test_the_proxy_ending_the_stream_ends_ours(ca: trustme.CA) -> None:
    upgrade = UpgradeServer(ca, alpn_handler=hang_up)
    try:

        async def go() -> bytes:
            sock, bridge = await dialer(upgrade, ca).open()
            task = asyncio.ensure_future(bridge)
            reader, writer = await asyncio.open_connection(sock=sock)
            data = await reader.read()  # EOF once the proxy's close frame arrives
            writer.close()
            await task
            return data

        assert run(go) == b""
    finally:
        upgrade.close()


def test_a_server_without_the_endpoint_is_refused_clearly(server: UpgradeServer, ca: trustme.CA) -> None:
    server.raw_answer = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    with pytest.raises(ProxyError, match="answered HTTP 404: not a Teleport proxy"):
        run(dialer(server, ca).open)


@pytest.mark.parametrize(
    ("protocol_header", "match"),
    [
        (b"", "the proxy chose sub-protocol None"),
        (b"Sec-WebSocket-Protocol: alpn\r\n", "bad WebSocket handshake answer"),
    ],
)
def test_the_sub_protocol_must_be_the_one_offered(
    server: UpgradeServer, ca: trustme.CA, protocol_header: bytes, match: str
) -> None:
    server.raw_answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: {accept}\r\n" + protocol_header + b"\r\n"
    )
    with pytest.raises(ProxyError, match=match):
        run(dialer(server, ca).open)


def test_a_wrong_accept_key_is_refused(server: UpgradeServer, ca: trustme.CA) -> None:
    server.raw_answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\nSec-WebSocket-Protocol: alpn-ping\r\n\r\n"
    )
    with pytest.raises(ProxyError, match="bad WebSocket handshake answer"):
        run(dialer(server, ca).open)


def test_the_load_balancer_certificate_is_verified(server: UpgradeServer) -> None:
    stranger = WebSocketDialer(
        "localhost", server.port, tls.web_context(ca_pem=trustme.CA().cert_pem.bytes()), host_header="x"
    )
    with pytest.raises(ProxyError, match="TLS verification of x via /webapi/connectionupgrade failed"):
        run(stranger.open)


def test_stand_in_answers_404_to_legacy_upgrade_types(server: UpgradeServer, ca: trustme.CA) -> None:
    # Teleport 19 serves only WebSocket upgrades (`lib/web/conn_upgrade.go`).
    context = tls.web_context(ca_pem=ca.cert_pem.bytes())
    with (
        socket.create_connection(("localhost", server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        conn.sendall(
            f"GET {PATH} HTTP/1.1\r\nHost: localhost\r\nUpgrade: alpn\r\nX-Teleport-Upgrade: alpn\r\n"
            "Connection: Upgrade\r\n\r\n".encode()
        )
        assert conn.recv(12) == b"HTTP/1.1 404"


def test_teleport_host_cert_check(ca: trustme.CA) -> None:
    def der(*names: str) -> bytes:
        pem = ca.issue_cert(*names).cert_chain_pems[0].bytes()
        return ssl.PEM_cert_to_DER_cert(pem.decode())

    tls.check_teleport_host_cert(der("teleport.cluster.local", "*.teleport.cluster.local"))
    for bad in (der("localhost"), b"not a certificate"):
        with pytest.raises(ProxyError, match="not a Teleport proxy"):
            tls.check_teleport_host_cert(bad)
