"""The proxy's `/webapi/connectionupgrade`: a WebSocket whose binary frames carry a routed TLS stream.

Follows Teleport's handler (`lib/web/conn_upgrade.go`, `connectionUpgrade`, `upgradeALPNWebSocket`)
and its WebSocket connection (`api/client/websocketupgradeproto/server.go`, `protocol.go`):

* only `Upgrade: websocket` is served; any other upgrade type is a 404 "unsupported upgrade types";
* the WebSocket handshake (RFC 6455) picks the first offered sub-protocol of `alpn`, `alpn-ping`;
  with none of them the server sends a close frame (1003) and hangs up;
* the upgraded stream goes to the proxy's ALPN handler, which routes it by the inner ClientHello
  as it routes a direct connection;
* data travels in binary frames (client frames masked, server frames not); the server answers pings,
  ignores pongs and, for `alpn-ping`, pings the client with payload `teleport`; a close frame from
  either side ends the stream.

The stand-in pings once right after the upgrade (Teleport pings on a 30 s ticker), so a client that
does not answer pings is caught without waiting.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from wsproto import ConnectionType
from wsproto.connection import Connection as WebSocket
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong

from standins.teleport.router import Connection

PATH = "/webapi/connectionupgrade"
SUBPROTOCOLS = ("alpn", "alpn-ping")
PING_PAYLOAD = b"teleport"
PING_INTERVAL = 30.0  # defaults.ProxyPingInterval
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_UNSUPPORTED_DATA = 1003


@dataclass
class UpgradeLog:
    """What the endpoint saw: the sub-protocol of each upgrade, and the pongs clients sent."""

    subprotocols: list[str] = field(default_factory=list)
    pongs: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def serve_upgrade(
    handler: BaseHTTPRequestHandler, alpn_handler: Callable[[Connection], None], log: UpgradeLog
) -> tuple[int, dict[str, object]] | None:
    """Upgrade the request `handler` holds, or return the JSON error to answer instead."""
    upgrades = handler.headers.get_all("Upgrade") or []
    if "websocket" not in [u.strip().lower() for v in upgrades for u in v.split(",")]:
        return 404, {"error": {"message": f"unsupported upgrade types: {upgrades}"}}
    key = handler.headers.get("Sec-WebSocket-Key", "")
    connection = [t.strip().lower() for t in handler.headers.get("Connection", "").split(",")]
    if handler.command != "GET" or "upgrade" not in connection or not _valid_key(key):
        return 400, {"error": {"message": "bad WebSocket handshake"}}
    if handler.headers.get("Sec-WebSocket-Version") != "13":
        return 400, {"error": {"message": "unsupported WebSocket version"}}
    offered = [
        p.strip() for v in handler.headers.get_all("Sec-WebSocket-Protocol") or [] for p in v.split(",")
    ]
    chosen = next((p for p in offered if p in SUBPROTOCOLS), "")

    handler.close_connection = True
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(key))
    if chosen:
        handler.send_header("Sec-WebSocket-Protocol", chosen)
    handler.end_headers()
    handler.wfile.flush()
    tls: ssl.SSLSocket = handler.connection  # type: ignore[assignment]
    ws = WebSocket(ConnectionType.SERVER)
    if not chosen:
        tls.sendall(ws.send(CloseConnection(_UNSUPPORTED_DATA, "unsupported WebSocket sub-protocol")))
        return None
    with log.lock:
        log.subprotocols.append(chosen)
    ours, theirs = socket.socketpair()
    threading.Thread(
        target=alpn_handler, args=(Connection(theirs),), name="standin-upgraded", daemon=True
    ).start()
    try:
        _bridge(tls, ours, ws, ping=chosen == "alpn-ping", log=log)
    finally:
        with contextlib.suppress(OSError):
            ours.shutdown(socket.SHUT_RDWR)
        ours.close()
    return None


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def _bridge(tls: ssl.SSLSocket, local: socket.socket, ws: WebSocket, *, ping: bool, log: UpgradeLog) -> None:
    """One thread carries both directions: a TLS session cannot be read and written from two."""
    next_ping = time.monotonic() if ping else float("inf")
    while True:
        if time.monotonic() >= next_ping:
            tls.sendall(ws.send(Ping(PING_PAYLOAD)))
            next_ping = time.monotonic() + PING_INTERVAL
        if tls.pending():
            ready: list[socket.socket] = [tls]
        else:
            wait = max(0.0, min(next_ping - time.monotonic(), PING_INTERVAL))
            ready, _, _ = select.select([tls, local], [], [], wait)
        if tls in ready:
            data = tls.recv(65536)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, BytesMessage):
                    local.sendall(event.data)
                elif isinstance(event, Ping):
                    tls.sendall(ws.send(event.response()))
                elif isinstance(event, Pong):
                    with log.lock:
                        log.pongs += 1
                elif isinstance(event, CloseConnection):
                    if ws.state is ConnectionState.REMOTE_CLOSING:
                        tls.sendall(ws.send(event.response()))
                    return
            if not data:
                return
        if local in ready:
            data = local.recv(65536)
            if not data:
                tls.sendall(ws.send(CloseConnection(1000)))
                return
            tls.sendall(ws.send(BytesMessage(data=data)))
