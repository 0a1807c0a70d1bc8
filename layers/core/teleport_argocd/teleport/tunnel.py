"""A loopback listener spliced onto TLS connections to the proxy, so grpcio can use Teleport's ALPN routes.

grpcio always offers ALPN `h2` and nothing else, while Teleport's proxy routes on ALPN values such as
`teleport-proxy-grpc` and `teleport-auth@...`. So the TLS connection is ours (Python `ssl`, with the
route's ALPN, SNI, trust roots and client certificate) and grpcio speaks cleartext HTTP/2 to a
loopback listener whose connections are copied byte for byte onto it. One event-loop thread per
tunnel does the copying; `close()` ends the channel, the connections and the thread.

How the raw stream under that TLS is obtained is the one thing that differs between routes: a TCP
connection to the proxy, or, for a proxy behind an L7 load balancer, a WebSocket through its
connection-upgrade endpoint (`wstunnel`). `check_peer` adds a check of the server certificate
after the handshake, for the upgraded join route, where the proxy presents its host certificate.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from teleport_argocd import __version__
from teleport_argocd.errors import ProxyError, UntrustedServer
from teleport_argocd.teleport.metadata import VersionMetadata

if TYPE_CHECKING:  # wsproto is imported only for a proxy that needs the upgrade
    from teleport_argocd.teleport.wstunnel import WebSocketDialer

T = TypeVar("T")

_CHUNK = 64 * 1024
_GRACE = 1.0  # seconds a closing tunnel waits for its connections to end on their own
_CHANNEL_OPTIONS = [
    # A subchannel shared through grpc's global pool could outlive this tunnel and, once the loopback
    # port is reused, carry another tunnel's calls (and identity).
    ("grpc.use_local_subchannel_pool", 1),
    # The loopback target must never be sent through an HTTP proxy from the environment.
    ("grpc.enable_http_proxy", 0),
    ("grpc.primary_user_agent", f"teleport-argocd/{__version__}"),
]


class Tunnel:
    """A gRPC channel whose connections reach the proxy over TLS we open ourselves."""

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext,
        server_hostname: str,
        *,
        timeout: float,
        upgrade: WebSocketDialer | None = None,
        check_peer: Callable[[bytes], None] | None = None,
    ) -> None:
        via = f", through {upgrade.description}" if upgrade is not None else ""
        self.description = f"{host}:{port} (TLS server name {server_hostname}{via})"
        self.last_error: BaseException | None = None
        self._host, self._port = host, port
        self._context, self._server_hostname, self._timeout = context, server_hostname, timeout
        self._upgrade, self._check_peer = upgrade, check_peer
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._bridges: set[asyncio.Task[None]] = set()
        self._first: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._server: asyncio.Server | None = None
        self._channel: grpc.Channel | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="teleport-tunnel", daemon=True)
        self._thread.start()
        try:
            # Dial once up front so an unreachable proxy or a failed handshake raises here, with its
            # reason, instead of surfacing later as a bare UNAVAILABLE from grpc.
            self._first = self._run(self._dial())
            self._server = self._run(self._listen())
        except BaseException:
            self.close()
            raise
        port_ = self._server.sockets[0].getsockname()[1]
        # Every call carries the `version` metadata Teleport's clients send (see `metadata`).
        self._channel = grpc.intercept_channel(
            grpc.insecure_channel(f"127.0.0.1:{port_}", options=_CHANNEL_OPTIONS), VersionMetadata()
        )

    @property
    def channel(self) -> grpc.Channel:
        assert self._channel is not None, "tunnel is closed"
        return self._channel

    def status(self, exc: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
        """Code and details of a failed call; UNAVAILABLE gets the reason the tunnel saw, unknown to grpc."""
        if not isinstance(exc, grpc.Call):
            return grpc.StatusCode.UNKNOWN, str(exc)
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.UNAVAILABLE and self.last_error is not None:
            details = f"{details} (connection to {self.description}: {_describe(self.last_error)})"
        return code, details

    def close(self) -> None:
        """Closes the channel, every spliced connection and the loop thread. Safe to call twice."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            self._run(self._shutdown())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        self._loop.close()

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            reader, writer = await asyncio.wait_for(self._open_tls(), self._timeout)
        except ssl.SSLCertVerificationError as exc:
            message = f"TLS verification of {self.description} failed: {exc.verify_message}"
            raise UntrustedServer(message) from exc
        except ssl.SSLError as exc:
            raise ProxyError(f"TLS handshake with {self.description} failed: {exc.reason or exc}") from exc
        except TimeoutError as exc:
            raise ProxyError(f"proxy {self.description} did not answer within {self._timeout:g}s") from exc
        except OSError as exc:
            raise ProxyError(f"proxy {self.description} is unreachable: {exc.strerror or exc}") from exc
        if self._check_peer is not None:
            try:
                self._check_peer(writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
            except ProxyError:
                _close(writer)
                raise
        self._writers.add(writer)
        return reader, writer

    async def _open_tls(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Our TLS session with the route's ALPN and SNI, over the raw stream to the proxy (the seam)."""
        context, name, timeout = self._context, self._server_hostname, self._timeout
        if self._upgrade is None:
            return await asyncio.open_connection(
                self._host, self._port, ssl=context, server_hostname=name, ssl_handshake_timeout=timeout
            )
        sock, bridge = await self._upgrade.open()
        task = asyncio.ensure_future(bridge)
        self._bridges.add(task)
        task.add_done_callback(self._bridges.discard)
        try:
            return await asyncio.open_connection(
                sock=sock, ssl=context, server_hostname=name, ssl_handshake_timeout=timeout
            )
        except BaseException:
            sock.close()
            task.cancel()
            raise

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._splice, "127.0.0.1", 0)

    async def _splice(self, local_reader: asyncio.StreamReader, local_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(local_writer)
        remote_writer: asyncio.StreamWriter | None = None
        pumps: set[asyncio.Task[None]] = set()
        try:
            if self._first is not None:
                (remote_reader, remote_writer), self._first = self._first, None
            else:
                remote_reader, remote_writer = await self._dial()
            from_server = asyncio.ensure_future(_pump(remote_reader, local_writer))
            pumps = {from_server, asyncio.ensure_future(_pump(local_reader, remote_writer))}
            # HTTP/2 has no use for a half-closed connection: when either side ends, end both.
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for pump in done:
                if pump.exception() is not None:
                    self.last_error = pump.exception()
            if from_server in done and from_server.exception() is None:
                # Only a server ends a session we have not ended; Auth does so to a certificate it refuses.
                self.last_error = EOFError("the server closed the connection")
        except (ProxyError, OSError) as exc:
            self.last_error = exc
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            local_writer.close()
            self._writers.discard(local_writer)
            if remote_writer is not None:
                _close(remote_writer)
                self._writers.discard(remote_writer)
            self._tasks.discard(task)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        # Closing the channel normally ends its connections, and each splice then closes its TLS
        # connection cleanly; whatever is still open after a short grace is aborted, so no socket
        # outlives the tunnel.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=_GRACE)
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        for task in self._tasks | self._bridges:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._bridges, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        # The executor thread that resolved the proxy's name must not outlive the tunnel either.
        await self._loop.shutdown_default_executor()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(_CHUNK):
        writer.write(data)
        await writer.drain()


def _close(writer: asyncio.StreamWriter) -> None:
    """Sends TLS close_notify and closes without waiting for the peer's answer (RFC 8446 §6.1).

    asyncio would otherwise wait for the peer's close_notify, and a peer slow to send it would
    hold up the end of every run.
    """
    writer.close()  # on TLS this writes close_notify at once
    writer.transport.abort()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    return str(exc) or type(exc).__name__
