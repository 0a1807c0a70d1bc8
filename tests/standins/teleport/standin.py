"""`TeleportStandin`: a Teleport proxy + Auth + Kubernetes access on one loopback TLS port, for tests.

The parts are real servers speaking Teleport's protocols: the router sorts connections by
ClientHello like the proxy; joins run on an insecure gRPC server behind TLS the router
terminates with the web certificate; Auth is a gRPC server with mutual TLS reached through
an untouched pipe; the Kubernetes proxy and web API are HTTPS servers.

`behind_l7_lb=True` puts the proxy behind a stand-in for an L7 load balancer such as an AWS ALB:
the public port terminates TLS with the public web certificate, negotiates only `http/1.1` (custom
ALPN values and the SNI never reach the proxy) and forwards the decrypted stream to the proxy over
a new TLS connection offering `http/1.1`, so it lands on the web API, where
`/webapi/connectionupgrade` hands upgraded streams back to the router (`connupgrade`). Behind such a
load balancer the proxy has no public certificate of its own and presents its host certificate
(`lib/client/proxy/insecure/insecure.go` expects `teleport.cluster.local` on the tunnelled join).
`kube_listener=True` adds the dedicated Kubernetes listener (`kube_listen_addr`, announced as
`kube_public_addr`) that TLS routing otherwise makes unnecessary.
"""

from __future__ import annotations

import datetime as dt
import ssl
import tempfile
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import grpc
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from standins.teleport import ca
from standins.teleport.auth import AuthService, TrustService
from standins.teleport.httpserve import serve_https
from standins.teleport.join import IamJoiner, JoinV1Service, LegacyJoinService
from standins.teleport.kubeproxy import KubeHandler, KubeProxy
from standins.teleport.router import (
    REVERSE_TUNNEL_ALPN,
    Connection,
    Listener,
    Route,
    choose_route,
    peek_client_hello,
)
from standins.teleport.rpc import new_server
from standins.teleport.splice import Splicer
from standins.teleport.state import (
    DEFAULT_BOT_MAX_SESSION_TTL,
    DEFAULT_MAX_SESSION_TTL,
    AllowRule,
    Bot,
    BotInstance,
    Cluster,
    IamToken,
    JoinFault,
    KubeCluster,
    KubeRequest,
    Lock,
    Role,
)
from standins.teleport.web import WebApi, WebHandler
from teleport_argocd.teleport.proto import (
    authservice_pb2_grpc,
    join_v1_pb2_grpc,
    joinservice_pb2_grpc,
    trust_service_pb2_grpc,
)

KUBE_SERVER_NAME = "kube-teleport-proxy-alpn.teleport.cluster.local"


def _server_context(
    cert_pem: bytes, key_pem: bytes, alpn: list[str], client_ca: bytes | None = None
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    # `load_cert_chain` reads only files; they live just long enough to be read.
    with tempfile.TemporaryDirectory(prefix="teleport-standin-") as folder:
        cert_file, key_file = Path(folder, "cert.pem"), Path(folder, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(alpn)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=client_ca.decode())
    return ctx


@dataclass(frozen=True)
class _ServerTls:
    """The proxy's server-side TLS contexts of one rotation phase."""

    web: ssl.SSLContext
    join: ssl.SSLContext
    reverse_tunnel: ssl.SSLContext
    kube: ssl.SSLContext


class TeleportStandin:
    """A local Teleport cluster stand-in (see the module docstring)."""

    def __init__(
        self,
        *,
        sts_endpoint: str,
        cluster_name: str = "root",
        signature_suite: str = "balanced-v1",
        server_version: str = "18.2.0",
        tls_routing: bool = True,
        new_join_enabled: bool = True,
        fips: bool = False,
        behind_l7_lb: bool = False,
        kube_listener: bool = False,
    ) -> None:
        self.sts_endpoint = sts_endpoint
        self.tls_routing = tls_routing
        self.behind_l7_lb = behind_l7_lb
        self.kube_listener = kube_listener or not tls_routing
        self._cluster = Cluster(
            name=cluster_name,
            server_version=server_version,
            signature_suite=signature_suite,
            fips=fips,
            new_join_enabled=new_join_enabled,
        )
        web_ca = trustme.CA()
        web_cert = web_ca.issue_cert("localhost", "127.0.0.1")
        self.web_ca_pem: bytes = web_ca.cert_pem.bytes()
        self._web_pair = (web_cert.cert_chain_pems[0].bytes(), web_cert.private_key_pem.bytes())
        if behind_l7_lb:
            self._lb_tls = _server_context(*self._web_pair, ["http/1.1"])
        self._tls_lock = threading.Lock()
        self._tls_generation = -1
        self._server_tls = self._tls()
        self._web = WebApi(self._cluster, tls_routing)
        self._kube = KubeProxy(self._cluster)
        self._splicer = Splicer()
        self._auth_generation = -1
        self._executor: ThreadPoolExecutor | None = None
        self._join_server: grpc.Server | None = None
        self._auth_server: grpc.Server | None = None
        self._join_port = self._auth_port = 0
        self._listeners: list[Listener] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> TeleportStandin:
        joiner = IamJoiner(self._cluster, self.sts_endpoint)
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="teleport-standin-grpc")
        self._join_server = new_server(self._cluster, self._executor)
        joinservice_pb2_grpc.add_JoinServiceServicer_to_server(LegacyJoinService(joiner), self._join_server)
        join_v1_pb2_grpc.add_JoinServiceServicer_to_server(
            JoinV1Service(joiner, self._cluster), self._join_server
        )
        self._join_port = self._join_server.add_insecure_port("127.0.0.1:0")

        self._auth_server = new_server(self._cluster, self._executor)
        authservice_pb2_grpc.add_AuthServiceServicer_to_server(AuthService(self._cluster), self._auth_server)
        trust_service_pb2_grpc.add_TrustServiceServicer_to_server(
            TrustService(self._cluster), self._auth_server
        )
        # Auth serves the join services too (`lib/auth/grpcserver.go`); a bot rejoins there.
        joinservice_pb2_grpc.add_JoinServiceServicer_to_server(LegacyJoinService(joiner), self._auth_server)
        join_v1_pb2_grpc.add_JoinServiceServicer_to_server(
            JoinV1Service(joiner, self._cluster), self._auth_server
        )
        # Auth's certificate and the client CAs it trusts follow the rotation: grpc asks before
        # each handshake whether they changed.
        credentials = grpc.dynamic_ssl_server_credentials(
            self._auth_certificates(), self._changed_auth_certificates, require_client_authentication=True
        )
        self._auth_port = self._auth_server.add_secure_port("127.0.0.1:0", credentials)

        self._join_server.start()
        self._auth_server.start()
        self._splicer.start()
        proxy = Listener(self._route, "teleport-standin-proxy")
        self._web.proxy_port = proxy.port
        self._web.alpn_handler = self._route  # the proxy serves the upgrade endpoint in every mode
        self._listeners.append(proxy)
        if self.behind_l7_lb:
            backend = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            backend.check_hostname = False
            backend.verify_mode = ssl.CERT_NONE  # an ALB does not verify its targets
            backend.set_alpn_protocols(["http/1.1"])
            lb = Listener(
                lambda conn: self._splicer.pipe(conn.sock, proxy.port, self._lb_tls, backend),
                "teleport-standin-lb",
            )
            self._web.proxy_port = lb.port
            self._listeners.append(lb)
        if self.kube_listener:
            kube = Listener(
                lambda conn: serve_https(conn, self._tls().kube, KubeHandler, self._kube),
                "teleport-standin-kube",
            )
            self._web.kube_port = kube.port
            self._listeners.append(kube)
        for listener in self._listeners:
            listener.start()
        return self

    def stop(self) -> None:
        for listener in self._listeners:
            listener.stop()
        self._listeners.clear()
        self._splicer.stop()
        for server in (self._join_server, self._auth_server):
            if server is not None:
                server.stop(grace=None).wait(timeout=10)
        self._join_server = self._auth_server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> TeleportStandin:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _tls(self) -> _ServerTls:
        """The proxy's TLS contexts for the current rotation phase, made again after each phase change.

        Servers present certificates from the host CA `RotatingAuthority.serving` names and accept
        client certificates of every trusted user CA key.
        """
        with self._tls_lock:
            if self._tls_generation != self._cluster.ca_generation:
                with self._cluster.lock:
                    self._tls_generation = self._cluster.ca_generation
                    serving = self._cluster.host.serving
                    client_cas = b"".join(a.cert_pem for a in self._cluster.user.trusted)
                proxy_pair = self._web_pair
                if self.behind_l7_lb:
                    proxy_pair = serving.issue_server(
                        "proxy",
                        ["teleport.cluster.local", "*.teleport.cluster.local", "localhost"],
                        ["127.0.0.1"],
                    )
                kube_pair = serving.issue_server(
                    "kube",
                    [KUBE_SERVER_NAME, "*.teleport.cluster.local", "teleport.cluster.local", "localhost"],
                    ["127.0.0.1"],
                )
                self._server_tls = _ServerTls(
                    web=_server_context(*proxy_pair, ["http/1.1"]),
                    join=_server_context(*proxy_pair, ["teleport-proxy-grpc"]),
                    reverse_tunnel=_server_context(*proxy_pair, [REVERSE_TUNNEL_ALPN]),
                    kube=_server_context(*kube_pair, ["http/1.1"], client_ca=client_cas),
                )
            return self._server_tls

    def _auth_certificates(self) -> grpc.ServerCertificateConfiguration:
        with self._cluster.lock:
            self._auth_generation = self._cluster.ca_generation
            serving = self._cluster.host.serving
            client_cas = b"".join(a.cert_pem for a in self._cluster.user.trusted)
        cert, key = serving.issue_server(
            "auth", [self._cluster.encoded_name, "*.teleport.cluster.local", "teleport.cluster.local"]
        )
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_cas)

    def _changed_auth_certificates(self) -> grpc.ServerCertificateConfiguration | None:
        if self._auth_generation == self._cluster.ca_generation:
            return None
        return self._auth_certificates()

    def _route(self, conn: Connection) -> None:
        route = choose_route(peek_client_hello(conn.sock), self._cluster.encoded_name)
        tls = self._tls()
        if route is Route.WEB:
            serve_https(conn, tls.web, WebHandler, self._web)
        elif route is Route.KUBE:
            serve_https(conn, tls.kube, KubeHandler, self._kube)
        elif route is Route.JOIN:
            self._splicer.pipe(conn.sock, self._join_port, tls.join)
        elif route is Route.AUTH:
            self._splicer.pipe(conn.sock, self._auth_port)
        elif route is Route.REVERSE_TUNNEL:
            # Only the handshake: agents' SSH tunnels are not part of the stand-in.
            conn.sock = tls.reverse_tunnel.wrap_socket(conn.sock, server_side=True)
            conn.sock.close()
        else:
            conn.sock.close()

    # -- addresses and switches ------------------------------------------------------------

    @property
    def proxy_addr(self) -> str:
        """`localhost:<port>` of the proxy's public TLS port (web API, joins, Auth, Kubernetes), or of
        the load balancer in front of it."""
        return self._web.proxy_addr

    @property
    def kube_addr(self) -> str:
        """Where Kubernetes clients connect: the separate Kubernetes listener, if any, or the proxy port."""
        return f"localhost:{self._web.kube_port}" if self.kube_listener else self.proxy_addr

    @property
    def conn_upgrades(self) -> list[str]:
        """The WebSocket sub-protocol of each connection upgraded through `/webapi/connectionupgrade`."""
        return list(self._web.upgrades.subprotocols)

    @property
    def upgrade_pongs(self) -> int:
        """Pongs clients sent on upgraded connections (each answers the ping sent after the upgrade)."""
        return self._web.upgrades.pongs

    @property
    def cluster_name(self) -> str:
        return self._cluster.name

    @property
    def host_ca_pem(self) -> bytes:
        """The host CA certificate that signs new host certificates (the first active key)."""
        return self._cluster.host_ca.cert_pem

    @property
    def user_ca_pem(self) -> bytes:
        """The user CA certificate that signs new client certificates (the first active key)."""
        return self._cluster.user_ca.cert_pem

    def trusted_ca_pems(self, ca_type: str) -> list[bytes]:
        """Every trusted certificate of the `host` or `user` CA: active keys, then additional ones."""
        with self._cluster.lock:
            return [a.cert_pem for a in self._cluster.authority(ca_type).trusted]

    def serving_host_ca_pem(self) -> bytes:
        """The host CA whose certificates the proxy's Kubernetes and Auth endpoints present now."""
        with self._cluster.lock:
            return self._cluster.host.serving.cert_pem

    def rotation_phase(self, ca_type: str) -> str:
        return self._cluster.authority(ca_type).phase

    def rotate(self, phase: str, *, ca_type: str = "all") -> None:
        """`tctl auth rotate --manual --type <ca_type> --phase <phase>` for the host and/or user CA
        (`all` is both, as Teleport's `CertAuthTypeAll` is every type). Servers present their new
        certificates from the next connection on."""
        types = ("host", "user") if ca_type == "all" else (ca_type,)
        self._cluster.rotate(types, phase)

    @property
    def new_join_enabled(self) -> bool:
        return self._cluster.new_join_enabled

    @new_join_enabled.setter
    def new_join_enabled(self, value: bool) -> None:
        self._cluster.new_join_enabled = value

    def fail_new_join(
        self, code: grpc.StatusCode | None, message: str = "", *, after_init: bool = False
    ) -> None:
        """Makes `teleport.join.v1` fail with `code` before or after `ServerInit`; None restores it."""
        self._cluster.new_join_fault = None if code is None else JoinFault(code, message, after_init)

    @property
    def list_limit_exceeded_above(self) -> int | None:
        """ListResources with a larger effective Limit fails RESOURCE_EXHAUSTED, like an oversized page."""
        return self._cluster.list_limit_exceeded_above

    @list_limit_exceeded_above.setter
    def list_limit_exceeded_above(self, value: int | None) -> None:
        self._cluster.list_limit_exceeded_above = value

    @property
    def rpc_calls(self) -> Counter[str]:
        """Calls per full gRPC method path (join and Auth servers), refused ones included."""
        return self._cluster.rpc_calls

    @property
    def rpc_versions(self) -> list[tuple[str, str | None]]:
        """(method path, `version` metadata or None) of every call, in order, refused ones included."""
        return self._cluster.rpc_versions

    def bot_instances(self) -> list[BotInstance]:
        """The bot instances joins have created, with how many joins each has seen."""
        return self._cluster.bot_instances()

    @property
    def kube_requests(self) -> list[KubeRequest]:
        """Requests the Kubernetes proxy routed to a cluster, in order."""
        return self._cluster.kube_requests

    # -- cluster contents ------------------------------------------------------------------

    def add_role(
        self,
        name: str,
        *,
        kubernetes_labels: Mapping[str, str | Sequence[str]] | None = None,
        max_session_ttl: dt.timedelta = DEFAULT_MAX_SESSION_TTL,
        kubernetes_groups: Sequence[str] = ("system:masters",),
    ) -> None:
        """A role; `kubernetes_groups=()` makes one that lists the clusters its labels allow but whose
        requests the Kubernetes proxy refuses."""
        labels = {k: (v,) if isinstance(v, str) else tuple(v) for k, v in (kubernetes_labels or {}).items()}
        self._cluster.add_role(
            Role(name, labels, max_session_ttl=max_session_ttl, kubernetes_groups=tuple(kubernetes_groups))
        )

    def add_bot(
        self, name: str, *, roles: Sequence[str], max_session_ttl: dt.timedelta = DEFAULT_BOT_MAX_SESSION_TTL
    ) -> None:
        """The bot `name` (user and role `bot-<name>`, whose `max_session_ttl` caps its certificates),
        allowed to impersonate `roles`."""
        self._cluster.add_bot(Bot(name, tuple(roles), max_session_ttl))

    def remove_bot(self, name: str) -> None:
        """`tctl bots rm <name>`: its user, role and instances go; a token naming it stays."""
        self._cluster.remove_bot(name)

    def lock(
        self, name: str, *, user: str = "", role: str = "", bot_instance_id: str = "", message: str = ""
    ) -> None:
        """`tctl lock` with one target (`--user`, `--role`, `--bot-instance-id`), in force until `unlock`."""
        if sum(bool(t) for t in (user, role, bot_instance_id)) != 1:
            raise ValueError("a lock here takes exactly one target")
        self._cluster.put_lock(Lock(name, user, role, bot_instance_id, message))

    def unlock(self, name: str) -> None:
        """`tctl rm locks/<name>`."""
        self._cluster.remove_lock(name)

    def add_iam_token(self, name: str, *, bot_name: str, allow: Sequence[Mapping[str, str]]) -> None:
        rules = []
        for rule in allow:
            unknown = set(rule) - {"aws_account", "aws_arn"}
            if unknown or not rule:
                raise ValueError(f"allow rule {dict(rule)} must use aws_account and/or aws_arn only")
            rules.append(AllowRule(rule.get("aws_account", ""), rule.get("aws_arn", "")))
        if not rules:
            raise ValueError("an iam token needs at least one allow rule")
        self._cluster.add_token(IamToken(name, bot_name, tuple(rules)))

    def add_kube_cluster(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        dynamic_labels: Mapping[str, str] | None = None,
        servers: int = 1,
    ) -> None:
        """A kube cluster with `servers` heartbeating agents (one `kube_server` each)."""
        if servers < 1:
            raise ValueError("a kube cluster needs at least one kube_server")
        if self._cluster.kube_cluster(name) is not None:
            raise ValueError(f"kube cluster {name!r} already exists")
        self._cluster.put_kube_cluster(
            KubeCluster(
                name, dict(labels or {}), dict(dynamic_labels or {}), servers, self._cluster.server_version
            )
        )

    def update_kube_cluster(self, name: str, *, labels: Mapping[str, str]) -> None:
        """Replace the static labels of a kube cluster."""
        current = self._cluster.kube_cluster(name)
        if current is None:
            raise KeyError(f"kube cluster {name!r} does not exist")
        self._cluster.put_kube_cluster(
            KubeCluster(name, dict(labels), current.dynamic_labels, current.servers, current.version)
        )

    def remove_kube_cluster(self, name: str) -> None:
        self._cluster.remove_kube_cluster(name)

    def set_agent_down(self, name: str, down: bool = True) -> None:
        """The agent serving `name` stops (or starts again): Teleport still lists the cluster until its
        `kube_server` heartbeat expires, but the Kubernetes proxy can no longer reach it."""
        with self._cluster.lock:
            if down:
                self._cluster.agents_down.add(name)
            else:
                self._cluster.agents_down.discard(name)

    def set_kube_clusters(self, clusters: Mapping[str, Mapping[str, str]]) -> None:
        """Exactly these clusters (name → static labels), one agent each, whatever was there before:
        end-to-end tests share one stand-in and each starts from the same clusters."""
        for name in self._cluster.kube_cluster_names():
            self._cluster.remove_kube_cluster(name)
        with self._cluster.lock:
            self._cluster.agents_down.clear()
        for name, labels in clusters.items():
            self.add_kube_cluster(name, labels=labels)

    def issue_user_cert(
        self,
        username: str,
        roles: Sequence[str],
        *,
        ttl: dt.timedelta = dt.timedelta(hours=1),
        kubernetes_cluster: str = "",
    ) -> tuple[bytes, bytes]:
        """A user certificate and its key (PEM), for tests that need an identity without joining."""
        key = ec.generate_private_key(ec.SECP256R1())
        identity = ca.Identity(
            username=username,
            roles=tuple(roles),
            teleport_cluster=self._cluster.name,
            route_to_cluster=self._cluster.name,
            kubernetes_cluster=kubernetes_cluster,
        )
        cert = self._cluster.user_ca.issue_client(identity, key.public_key(), ca.now() + ttl)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem
