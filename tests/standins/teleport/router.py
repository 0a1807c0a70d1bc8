"""A loopback listener and the proxy's ALPN/SNI routing (Teleport's `lib/srv/alpnproxy`).

Teleport decides where a connection goes *before* any TLS handshake, from the ClientHello:
the Kubernetes SNI prefix first, then the client's ALPN list in the client's order. Auth
connections must then be passed on untouched so mutual TLS runs end to end between client and
Auth. Python's `ssl` cannot hand over a connection after reading the hello, so the router
peeks (`MSG_PEEK`) until the whole ClientHello is buffered, parses SNI and ALPN itself, and
leaves every byte in the socket for whoever takes the connection next.
"""

from __future__ import annotations

import contextlib
import enum
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

KUBE_SNI_PREFIX = "kube-teleport-proxy-alpn."
AUTH_ALPN_PREFIX = "teleport-auth@"
PROXY_GRPC_ALPN = "teleport-proxy-grpc"
REVERSE_TUNNEL_ALPN = "teleport-reversetunnel"  # agents' SSH tunnels; clients probe with it
WEB_ALPN = ("h2", "http/1.1")

_HANDSHAKE = 22
_CLIENT_HELLO = 1
_EXT_SNI = 0
_EXT_ALPN = 16
_MAX_HELLO = 1 << 16


class Route(enum.Enum):
    WEB = "web"
    JOIN = "join"
    AUTH = "auth"
    KUBE = "kube"
    REVERSE_TUNNEL = "reversetunnel"
    REFUSE = "refuse"


@dataclass(frozen=True)
class ClientHello:
    sni: str
    alpn: tuple[str, ...]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("truncated ClientHello")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> _Reader:
        return _Reader(self.take(self.number(length_bytes)))

    def done(self) -> bool:
        return self.pos >= len(self.data)


def _handshake_bytes(data: bytes) -> tuple[bytes, int]:
    """Join handshake fragments from consecutive TLS records; also return how many bytes are needed."""
    body = bytearray()
    pos = 0
    while pos + 5 <= len(data):
        if data[pos] != _HANDSHAKE:
            raise ValueError("not a TLS handshake")
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if pos + 5 + length > len(data):
            return bytes(body), pos + 5 + length
        body += data[pos + 5 : pos + 5 + length]
        pos += 5 + length
        if len(body) >= 4 and len(body) >= 4 + int.from_bytes(body[1:4], "big"):
            return bytes(body), pos
    return bytes(body), pos + 5


def parse_client_hello(data: bytes) -> ClientHello | int:
    """The ClientHello's SNI and ALPN, or the number of bytes needed before it can be parsed."""
    body, needed = _handshake_bytes(data)
    if len(body) < 4 or len(body) < 4 + int.from_bytes(body[1:4], "big"):
        if needed > _MAX_HELLO:
            raise ValueError("ClientHello too large")
        return needed
    if body[0] != _CLIENT_HELLO:
        raise ValueError("first handshake message is not a ClientHello")
    r = _Reader(body[4 : 4 + int.from_bytes(body[1:4], "big")])
    r.take(2 + 32)  # legacy_version, random
    r.vector(1)  # session id
    r.vector(2)  # cipher suites
    r.vector(1)  # compression methods
    sni = ""
    alpn: tuple[str, ...] = ()
    extensions = r.vector(2) if not r.done() else _Reader(b"")
    while not extensions.done():
        kind = extensions.number(2)
        ext = extensions.vector(2)
        if kind == _EXT_SNI:
            names = ext.vector(2)
            while not names.done():
                name_type, name = names.number(1), names.vector(2).data
                if name_type == 0:
                    sni = name.decode("ascii", errors="replace")
        elif kind == _EXT_ALPN:
            protocols = ext.vector(2)
            found = []
            while not protocols.done():
                found.append(protocols.vector(1).data.decode("ascii", errors="replace"))
            alpn = tuple(found)
    return ClientHello(sni, alpn)


def peek_client_hello(sock: socket.socket) -> ClientHello:
    """Wait (under the socket's timeout) until the ClientHello is buffered, without consuming it."""
    needed = 5
    while True:
        data = sock.recv(needed, socket.MSG_PEEK | socket.MSG_WAITALL)
        if len(data) < needed:
            raise ValueError("connection closed before a complete ClientHello")
        parsed = parse_client_hello(data)
        if isinstance(parsed, ClientHello):
            return parsed
        needed = parsed


def choose_route(hello: ClientHello, encoded_cluster: str) -> Route:
    """Kubernetes SNI wins; then the first ALPN entry with a handler, in the client's order; none → web."""
    if hello.sni.startswith(KUBE_SNI_PREFIX):
        return Route.KUBE
    if not hello.alpn:
        return Route.WEB
    for protocol in hello.alpn:
        if protocol.startswith(AUTH_ALPN_PREFIX):
            # The auth handler claims every `teleport-auth@…`; an unknown cluster is then refused.
            return Route.AUTH if protocol[len(AUTH_ALPN_PREFIX) :] == encoded_cluster else Route.REFUSE
        if protocol == PROXY_GRPC_ALPN:
            return Route.JOIN
        if protocol == REVERSE_TUNNEL_ALPN:
            return Route.REVERSE_TUNNEL
        if protocol in WEB_ALPN:
            return Route.WEB
    return Route.REFUSE


class Connection:
    """An accepted connection; a handler that wraps the socket (TLS) stores the wrapper back in `sock`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)


class Listener:
    """A TCP listener on 127.0.0.1 that runs `handler` for each connection on its own thread."""

    def __init__(self, handler: Callable[[Connection], None], name: str) -> None:
        self._handler = handler
        self._name = name
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._live: dict[Connection, threading.Thread] = {}
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True)

    def start(self) -> None:
        self._acceptor.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout=5)
        self._sock.close()
        with self._lock:
            live = dict(self._live)
        for conn in live:
            conn.abort()
        for thread in live.values():
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            sock.settimeout(30)
            conn = Connection(sock)
            thread = threading.Thread(target=self._run, args=(conn,), name=f"{self._name}-conn", daemon=True)
            with self._lock:
                self._live[conn] = thread
            thread.start()

    def _run(self, conn: Connection) -> None:
        try:
            self._handler(conn)
        except Exception:  # one broken client must not take the listener down
            conn.sock.close()
        finally:
            with self._lock:
                self._live.pop(conn, None)
