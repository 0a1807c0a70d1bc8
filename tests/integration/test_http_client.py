"""The destination's HTTP client against a plain local HTTP server that records what it is sent."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from teleport_argocd.destination.http import Client
from teleport_argocd.destination.kubeconfig import ClusterAccess


@dataclass
class _Op:
    requests: int = 0

    def __str__(self) -> str:
        return "get secret argocd/x"


class _Recorder(ThreadingHTTPServer):
    paths: list[str]


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        body = json.dumps({"kind": "Secret"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    server = _Recorder(("127.0.0.1", 0), _Handler)
    server.paths = []
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def client(recorder: _Recorder, path: str) -> Client:
    server = f"http://127.0.0.1:{recorder.server_address[1]}{path}"
    return Client(ClusterAccess(server=server, ssl_context=ssl.create_default_context()), description="local")


def test_a_server_url_with_a_path_keeps_it_in_front_of_every_request(recorder: _Recorder) -> None:
    """A kubeconfig's `server` may carry a path (an API behind a proxying front): every request goes
    under it, as the URL `server + path` names it."""
    api = client(recorder, "/front/")
    assert api.send(_Op(), "GET", "/api/v1/namespaces/argocd/secrets/x").status_code == 200
    assert recorder.paths == ["/front/api/v1/namespaces/argocd/secrets/x"]


def test_a_closed_client_sends_again_through_a_new_pool(recorder: _Recorder) -> None:
    api = client(recorder, "")
    api.send(_Op(), "GET", "/api/v1/namespaces/argocd/secrets/x")
    api.close()
    assert api.send(_Op(), "GET", "/api/v1/namespaces/argocd/secrets/y").status_code == 200
    assert recorder.paths == ["/api/v1/namespaces/argocd/secrets/x", "/api/v1/namespaces/argocd/secrets/y"]
