"""A byte stream to the proxy through its connection-upgrade endpoint, for proxies behind an L7 load balancer.

As Teleport's client does (`api/client/alpn_conn_upgrade.go`, `alpn_websocket.go`): TLS to the
load balancer with ALPN `http/1.1`, then `GET /webapi/connectionupgrade` asking for a WebSocket
(`Upgrade: websocket`, `Connection: Upgrade`, version 13, a random key) with sub-protocol
`alpn-ping`, the type Teleport's clients use for their Auth and join connections. The proxy answers
101 and hands the stream to its ALPN router, so the tunnel's own TLS handshake (with the route's
ALPN, SNI and client certificate) then runs inside binary WebSocket frames and is routed exactly as
a direct connection would be. With `alpn-ping` the proxy pings now and then, which keeps an idle
connection alive through the load balancer; each ping is answered with a pong.

The framing is `wsproto` (sans-IO, RFC 6455: masked client frames, control frames, close). The
WebSocket side is bridged to one end of a socket pair, so the tunnel runs its TLS handshake over
the other end with asyncio's ordinary TLS, the same code as the direct route.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Coroutine
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from teleport_argocd.errors import ProxyError

UPGRADE_PATH = "/webapi/connectionupgrade"
SUBPROTOCOL = "alpn-ping"
_CHUNK = 64 * 1024
_NORMAL_CLOSURE = 1000


class WebSocketDialer:
    """Opens upgraded streams to one proxy; `context` verifies the load balancer's certificate."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, *, host_header: str) -> None:
        context.set_alpn_protocols(["http/1.1"])
        self.description = f"{host_header} via {UPGRADE_PATH}"
        self._host, self._port, self._context, self._host_header = host, port, context, host_header

    async def open(self) -> tuple[socket.socket, Coroutine[Any, Any, None]]:
        """A socket carrying the raw stream, and the coroutine that bridges it; the caller runs and
        cancels the coroutine and closes the socket. Raises ProxyError when the upgrade fails."""
        reader, writer = await self._connect()
        try:
            try:
                ws = await self._handshake(reader, writer)
            except (LocalProtocolError, RemoteProtocolError) as exc:
                raise ProxyError(f"{self.description}: bad WebSocket handshake answer: {exc}") from exc
            ours, theirs = socket.socketpair()
        except BaseException:
            writer.transport.abort()
            raise
        return ours, _bridge(ws, reader, writer, theirs)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(
                self._host, self._port, ssl=self._context, server_hostname=self._host
            )
        except ssl.SSLCertVerificationError as exc:
            raise ProxyError(f"TLS verification of {self.description} failed: {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            raise ProxyError(f"TLS handshake with {self.description} failed: {exc.reason or exc}") from exc
        except OSError as exc:
            raise ProxyError(f"proxy {self.description} is unreachable: {exc.strerror or exc}") from exc

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> WSConnection:
        ws = WSConnection(ConnectionType.CLIENT)
        writer.write(
            ws.send(Request(host=self._host_header, target=UPGRADE_PATH, subprotocols=[SUBPROTOCOL]))
        )
        await writer.drain()
        while True:
            data = await reader.read(_CHUNK)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    if event.subprotocol != SUBPROTOCOL:  # Teleport's client checks it too
                        raise ProxyError(
                            f"{self.description}: the proxy chose sub-protocol {event.subprotocol!r}"
                        )
                    return ws
                if isinstance(event, RejectConnection):
                    raise ProxyError(_refusal(self.description, event.status_code))
            if not data:
                raise ProxyError(f"{self.description}: the connection closed before the upgrade answer")


def _refusal(description: str, status: int) -> str:
    if status == 404:
        # Teleport answers 404 to an upgrade type it does not serve (`lib/web/conn_upgrade.go`).
        return f"{description} answered HTTP 404: not a Teleport proxy, or one without WebSocket upgrades"
    return f"{description} refused the connection upgrade: HTTP {status}"


async def _bridge(
    ws: WSConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local: socket.socket
) -> None:
    """Copies between the WebSocket and `local` until either side ends, then ends both."""
    local_reader, local_writer = await asyncio.open_connection(sock=local)
    pumps = {
        asyncio.ensure_future(_outgoing(ws, local_reader, writer)),
        asyncio.ensure_future(_incoming(ws, reader, writer, local_writer)),
    }
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        local_writer.close()  # flushes what the proxy sent last, then closes
        # No wait for the peer's close frame or close_notify: Teleport's client does not wait
        # either, except for a sub-protocol we do not use.
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()
        writer.transport.abort()


async def _outgoing(ws: WSConnection, local: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Local bytes out as binary frames (wsproto masks client frames); a close frame at the end."""
    while data := await local.read(_CHUNK):
        writer.write(ws.send(BytesMessage(data=data)))
        await writer.drain()
    if ws.state is ConnectionState.OPEN:
        writer.write(ws.send(CloseConnection(code=_NORMAL_CLOSURE)))
        await writer.drain()


async def _incoming(
    ws: WSConnection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, local: asyncio.StreamWriter
) -> None:
    """Binary frames in as local bytes; pings answered; a close frame ends the stream."""
    while True:
        data = await reader.read(_CHUNK)
        ws.receive_data(data or None)
        for event in ws.events():
            if isinstance(event, BytesMessage):
                local.write(event.data)
            elif isinstance(event, Ping):
                writer.write(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if ws.state is ConnectionState.REMOTE_CLOSING:
                    writer.write(ws.send(event.response()))
                return
        await local.drain()
        if not data:
            return
