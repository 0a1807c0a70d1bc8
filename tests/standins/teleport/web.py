"""The proxy's unauthenticated web API: `/webapi/find`, `/webapi/ping` and `/webapi/connectionupgrade`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from standins.teleport import connupgrade
from standins.teleport.httpserve import JsonHandler
from standins.teleport.router import Connection
from standins.teleport.state import Cluster


@dataclass
class WebApi:
    """What the web API reports; addresses are filled in once the listeners have ports."""

    cluster: Cluster
    tls_routing: bool
    proxy_port: int = 0
    kube_port: int = 0  # a separate Kubernetes listener (always there when TLS routing is off)
    # The proxy's ALPN router, which upgraded connections are handed to (`ALPNHandler`).
    alpn_handler: Callable[[Connection], None] | None = None
    upgrades: connupgrade.UpgradeLog = field(default_factory=connupgrade.UpgradeLog)

    @property
    def proxy_addr(self) -> str:
        return f"localhost:{self.proxy_port}"

    def find(self) -> dict[str, Any]:
        """`webclient.PingResponse` as `/webapi/find` returns it (with the auth subset tbot reads)."""
        c = self.cluster
        # `kube_public_addr` is announced whatever the listener mode (`lib/service/proxy_settings.go`).
        kube_port = self.kube_port or self.proxy_port
        auth: dict[str, Any] = {}
        if c.signature_suite:
            auth["signature_algorithm_suite"] = c.signature_suite
        major = int(c.server_version.split(".")[0])
        return {
            "auth": auth,
            "proxy": {
                "kube": {
                    "enabled": True,
                    "public_addr": f"localhost:{kube_port}",
                    "listen_addr": f"0.0.0.0:{kube_port}",
                },
                "ssh": {
                    "listen_addr": "0.0.0.0:3023",
                    "tunnel_listen_addr": "0.0.0.0:3024",
                    "web_listen_addr": f"0.0.0.0:{self.proxy_port}",
                    "public_addr": self.proxy_addr,
                    "ssh_tunnel_public_addr": self.proxy_addr,
                    "dial_timeout": 30_000_000_000,
                },
                "tls_routing_enabled": self.tls_routing,
            },
            "server_version": c.server_version,
            "min_client_version": f"{major - 1}.0.0-aa",
            "cluster_name": c.name,
            "edition": "oss",
            "fips": c.fips,
            "automatic_upgrades": False,
        }

    def ping(self) -> dict[str, Any]:
        body = self.find()
        body["auth"] = {
            "type": "local",
            "second_factor": "on",
            "preferred_local_mfa": "webauthn",
            "local": {"name": ""},
            "private_key_policy": "none",
            "device_trust": {},
            "has_motd": False,
            "load_all_cas": False,
            **body["auth"],
        }
        return body


class WebHandler(JsonHandler):
    server: WebApi  # type: ignore[assignment]

    def do_GET(self) -> None:
        if urlsplit(self.path).path != connupgrade.PATH or self.server.alpn_handler is None:
            self._respond()
            return
        refused = connupgrade.serve_upgrade(self, self.server.alpn_handler, self.server.upgrades)
        if refused is not None:
            self._send_json(*refused)

    def _send_json(self, status: int, body: Any) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def answer(self) -> tuple[int, Any]:
        url = urlsplit(self.path)
        if self.command not in ("GET", "HEAD"):
            return 405, {"error": {"message": f"method {self.command} not allowed"}}
        if url.path == "/webapi/find":
            return 200, self.server.find()
        if url.path == "/webapi/ping" or url.path.startswith("/webapi/ping/"):
            return 200, self.server.ping()
        return 404, {"error": {"message": "not found"}}
