"""Auth service RPCs, made as one identity over its own `teleport-auth@` tunnel.

The bot identity asks for its role, an impersonated certificate and the host and user CAs; the impersonated
identity lists Kubernetes clusters, so Teleport filters them by the impersonated roles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.empty_pb2 import Empty
from google.protobuf.timestamp_pb2 import Timestamp

from teleport_argocd.errors import AuthCallError
from teleport_argocd.model import Identity, KubeCluster
from teleport_argocd.teleport import keys
from teleport_argocd.teleport.authorities import Authorities, Authority
from teleport_argocd.teleport.identity import split_pem_bundle, subject_name
from teleport_argocd.teleport.lifecycle import classify
from teleport_argocd.teleport.proto import (
    authservice_pb2,
    authservice_pb2_grpc,
    certs_pb2,
    trust_service_pb2,
    trust_service_pb2_grpc,
    types_pb2,
)
from teleport_argocd.teleport.tls import auth_context, encode_cluster_name
from teleport_argocd.teleport.tunnel import Tunnel

if TYPE_CHECKING:  # wsproto is imported only for a proxy that needs the upgrade
    from teleport_argocd.teleport.wstunnel import WebSocketDialer

GET_ROLE = "/proto.AuthService/GetRole"
GENERATE_USER_CERTS = "/proto.AuthService/GenerateUserCerts"
GET_CLUSTER_CA_CERT = "/proto.AuthService/GetClusterCACert"
LIST_RESOURCES = "/proto.AuthService/ListResources"
GET_CERT_AUTHORITIES = "/teleport.trust.v1.TrustService/GetCertAuthorities"

DISCOVERED_NAME_LABEL = "teleport.internal/discovered-name"
# tbot's page size; the server has no maximum, but a page must fit grpc's 4 MiB message limit.
PAGE_LIMIT = 1000
RPC_TIMEOUT = 30.0


class AuthClient:
    """The Auth service, as seen by one identity."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        cluster_name: str,
        identity: Identity,
        trusted_ca_pems: Iterable[bytes],
        timeout: float,
        upgrade: WebSocketDialer | None = None,
    ) -> None:
        context = auth_context(cluster_name, trusted_ca_pems, identity.cert_pem, identity.key_pem)
        self._tunnel = Tunnel(
            host, port, context, encode_cluster_name(cluster_name), timeout=timeout, upgrade=upgrade
        )
        self._auth = authservice_pb2_grpc.AuthServiceStub(self._tunnel.channel)
        self._trust = trust_service_pb2_grpc.TrustServiceStub(self._tunnel.channel)
        self._user = identity.username

    def close(self) -> None:
        self._tunnel.close()

    def impersonate_roles(self, role_name: str) -> list[str]:
        """The roles the bot's own role (`bot-<name>`) allows it to impersonate."""
        role: types_pb2.RoleV6 = self._call(
            GET_ROLE, self._auth.GetRole, authservice_pb2.GetRoleRequest(Name=role_name)
        )
        return list(role.Spec.Allow.Impersonate.Roles)

    def generate_user_certs(
        self, *, username: str, cluster_name: str, roles: list[str], key: keys.PrivateKey, ttl: timedelta
    ) -> certs_pb2.Certs:
        """A certificate for `key` carrying `roles`, routed to `cluster_name`, valid for `ttl`."""
        expires = Timestamp()
        expires.FromDatetime(datetime.now(UTC) + ttl)
        request = authservice_pb2.UserCertsRequest(
            Username=username,
            Expires=expires,
            RouteToCluster=cluster_name,
            RoleRequests=roles,
            UseRoleRequests=True,
            SSHPublicKey=keys.ssh_authorized_key(key),
            TLSPublicKey=keys.public_key_pem(key),
        )
        certs: certs_pb2.Certs = self._call(GENERATE_USER_CERTS, self._auth.GenerateUserCerts, request)
        return certs

    def cert_authorities(self, cluster_name: str) -> Authorities:
        """The host and user CAs of `cluster_name`: active keys, additional trusted keys and phase.

        `GetCertAuthorities` takes one CA type per request (`caType.Check()` refuses an empty one), so
        both requests go out together on the one connection and cost one round trip. Like tbot, keeps
        only the certificates whose subject is the cluster, dropping trusted clusters' CAs, which the
        answer also holds. A Teleport without the trust service answers the host CA through
        `GetClusterCACert` (every trusted certificate, `services.GetTLSCerts`), and no user CA.
        """
        pending = [
            self._trust.GetCertAuthorities.future(
                trust_service_pb2.GetCertAuthoritiesRequest(type=ca_type, include_key=False),
                timeout=RPC_TIMEOUT,
            )
            for ca_type in ("host", "user")
        ]
        try:
            host, user = (self._result(GET_CERT_AUTHORITIES, f) for f in pending)
        except AuthCallError as exc:
            if exc.code != grpc.StatusCode.UNIMPLEMENTED.name:
                raise
            bundle = self._call(GET_CLUSTER_CA_CERT, self._auth.GetClusterCACert, Empty()).TLSCA
            pems = tuple(p for p in split_pem_bundle(bundle) if subject_name(p) == cluster_name)
            return Authorities(host=_require(Authority("host", pems), cluster_name), user=None)
        user_ca = _authority("user", user, cluster_name)
        return Authorities(
            host=_require(_authority("host", host, cluster_name), cluster_name),
            user=user_ca if user_ca.active else None,
        )

    def list_kube_clusters(
        self, *, name: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[KubeCluster]:
        """Kubernetes clusters this identity may see, one entry per cluster however many agents serve it.

        A name is matched on the server by exact name or discovered name, as tbot asks for it;
        labels must all match (static or dynamic).
        """
        request = authservice_pb2.ListResourcesRequest(
            ResourceType="kube_server",
            Namespace="default",
            Limit=PAGE_LIMIT,
            Labels=dict(labels or {}),
            PredicateExpression=name_predicate(name) if name is not None else "",
        )
        clusters: dict[str, KubeCluster] = {}
        while True:
            try:
                page = self._call(LIST_RESOURCES, self._auth.ListResources, request)
            except AuthCallError as exc:
                # Too large a page (LimitExceeded, or over grpc's message limit): ask for half as many.
                if exc.code != grpc.StatusCode.RESOURCE_EXHAUSTED.name or request.Limit <= 1:
                    raise
                request.Limit //= 2
                continue
            for resource in page.Resources:
                if resource.WhichOneof("resource") == "KubernetesServer":
                    cluster = resource.KubernetesServer.Spec.Cluster
                    clusters.setdefault(cluster.Metadata.Name, _kube_cluster(cluster))
            if not page.NextKey:
                return list(clusters.values())
            request.StartKey = page.NextKey

    def _call(self, method: str, rpc: Any, request: Any) -> Any:
        try:
            return rpc(request, timeout=RPC_TIMEOUT)
        except grpc.RpcError as exc:
            raise self._error(method, exc) from exc

    def _result(self, method: str, future: Any) -> Any:
        try:
            return future.result()
        except grpc.RpcError as exc:
            raise self._error(method, exc) from exc

    def _error(self, method: str, exc: grpc.RpcError) -> Exception:
        """A lock on the bot or a deleted bot (`lifecycle`) by name, anything else as the call's failure."""
        code, details = self._tunnel.status(exc)
        failure = classify(code.name, details, bot_user=self._user)
        return failure if failure is not None else AuthCallError(method, details, code=code.name)


def name_predicate(name: str) -> str:
    """tbot's predicate for one cluster name: the exact name, or the name discovery gave the cluster."""
    quoted = go_quote(name)
    return f"(name == {quoted}) || (labels[{go_quote(DISCOVERED_NAME_LABEL)}] == {quoted})"


_GO_ESCAPES = {
    "\a": r"\a",
    "\b": r"\b",
    "\f": r"\f",
    "\n": r"\n",
    "\r": r"\r",
    "\t": r"\t",
    "\v": r"\v",
    "\\": r"\\",
    '"': r"\"",
}


def go_quote(value: str) -> str:
    """A double-quoted string literal as Go's `strconv.Quote` writes it, which Teleport's parser reads."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _authority(
    ca_type: str, response: trust_service_pb2.GetCertAuthoritiesResponse, cluster_name: str
) -> Authority:
    """Our cluster's certificates of one CA type; the phase of its rotation."""

    def own(key_set: types_pb2.CAKeySet) -> tuple[bytes, ...]:
        return tuple(pair.Cert for pair in key_set.TLS if subject_name(pair.Cert) == cluster_name)

    ours = [ca for ca in response.cert_authorities_v2 if own(ca.Spec.ActiveKeys)]
    return Authority(
        ca_type,
        active=tuple(p for ca in ours for p in own(ca.Spec.ActiveKeys)),
        additional=tuple(p for ca in ours for p in own(ca.Spec.AdditionalTrustedKeys)),
        phase=ours[0].Spec.Rotation.Phase if ours else "",
    )


def _require(authority: Authority, cluster_name: str) -> Authority:
    if not authority.active:
        raise AuthCallError(
            GET_CERT_AUTHORITIES, f"no TLS {authority.ca_type} CA certificate for cluster {cluster_name!r}"
        )
    return authority


def _kube_cluster(cluster: types_pb2.KubernetesClusterV3) -> KubeCluster:
    # Teleport's effective labels: static ones, overridden by the results of dynamic ones.
    labels = dict(cluster.Metadata.Labels)
    labels.update((key, label.Result) for key, label in cluster.Spec.DynamicLabels.items())
    return KubeCluster(name=cluster.Metadata.Name, labels=labels)
