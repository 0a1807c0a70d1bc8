"""HTTP/1.1 over a TLS connection the router handed over, for the web API and the Kubernetes proxy."""

from __future__ import annotations

import contextlib
import json
import ssl
from http.server import BaseHTTPRequestHandler
from typing import Any

from standins.teleport.router import Connection


class JsonHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 answering JSON, or plain text where `answer` gives a string (Go's
    `http.Error`); subclasses implement `answer`."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each small answer waits out the client's delayed ACK
    timeout = 30
    server_version = "teleport-standin"

    def answer(self) -> tuple[int, Any]:
        raise NotImplementedError

    def _respond(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, body = self.answer()
        text = isinstance(body, str)
        payload = body.encode() if text else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8" if text else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _respond

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the stand-in's own logs (`kube_requests`, `rpc_calls`) instead."""


def serve_https(conn: Connection, context: ssl.SSLContext, handler: type[JsonHandler], app: object) -> None:
    """Terminate TLS on a routed connection and serve HTTP on it until the client is done."""
    try:
        conn.sock = context.wrap_socket(conn.sock, server_side=True)
        handler(conn.sock, conn.sock.getpeername(), app)  # type: ignore[arg-type]
    except (OSError, ssl.SSLError):
        pass  # handshake refused (e.g. no client certificate) or the client went away
    finally:
        with contextlib.suppress(OSError):
            conn.sock.close()
