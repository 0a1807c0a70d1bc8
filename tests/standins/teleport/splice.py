"""Byte pipes from routed client connections to the loopback gRPC servers behind the proxy.

One asyncio loop on one thread carries every pipe: a TLS-terminating pipe must read and write
the same TLS session at once, which blocking `ssl` sockets cannot do safely from two threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        else:
            writer.close()
    except (OSError, ssl.SSLError):
        writer.close()


class Splicer:
    """Joins accepted client sockets to loopback backends, optionally terminating TLS first."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="teleport-standin-splice", daemon=True
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._cancel_all(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def pipe(
        self,
        sock: socket.socket,
        backend_port: int,
        tls: ssl.SSLContext | None = None,
        backend_tls: ssl.SSLContext | None = None,
    ) -> None:
        """Take ownership of `sock` and pipe it to 127.0.0.1:`backend_port` (thread-safe).

        `tls` terminates the client's TLS first; `backend_tls` opens TLS to the backend (no SNI).
        """
        self._loop.call_soon_threadsafe(self._spawn, sock, backend_port, tls, backend_tls)

    def _spawn(
        self,
        sock: socket.socket,
        backend_port: int,
        tls: ssl.SSLContext | None,
        backend_tls: ssl.SSLContext | None,
    ) -> None:
        task = self._loop.create_task(self._pipe(sock, backend_port, tls, backend_tls))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_all(self) -> None:
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pipe(
        self,
        sock: socket.socket,
        backend_port: int,
        tls: ssl.SSLContext | None,
        backend_tls: ssl.SSLContext | None,
    ) -> None:
        writers: list[asyncio.StreamWriter] = []
        try:
            if tls is None:
                client_reader, client_writer = await asyncio.open_connection(sock=sock)
            else:
                client_reader = asyncio.StreamReader()
                protocol = asyncio.StreamReaderProtocol(client_reader)
                transport, _ = await self._loop.connect_accepted_socket(
                    lambda: protocol, sock, ssl=tls, ssl_handshake_timeout=10
                )
                client_writer = asyncio.StreamWriter(transport, protocol, client_reader, self._loop)
            writers.append(client_writer)
            backend_reader, backend_writer = await asyncio.open_connection(
                "127.0.0.1",
                backend_port,
                ssl=backend_tls,
                server_hostname="" if backend_tls is not None else None,
            )
            writers.append(backend_writer)
            await asyncio.gather(_copy(client_reader, backend_writer), _copy(backend_reader, client_writer))
        except (TimeoutError, OSError, ssl.SSLError):
            pass  # the client went away or failed the handshake: nothing to serve
        finally:
            if not writers:
                sock.close()
            for writer in writers:
                if self._stopping:
                    writer.transport.abort()  # no goodbyes: a TLS close would wait for the peer
                    continue
                writer.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), timeout=5)
