"""The Auth gRPC services a bot uses after joining, authorising on the caller's mTLS certificate.

The gRPC server itself checks the client certificate against the user CA (mutual TLS end to
end, as Teleport's proxy passes `teleport-auth@` connections through untouched); these
servicers read the Teleport identity from that certificate and apply Teleport's rules.
"""

from __future__ import annotations

import datetime as dt

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf import empty_pb2

from standins.teleport import ca
from standins.teleport.listing import list_resources
from standins.teleport.rpc import Refused, bad_parameter, denied, not_found, refusals_as_status
from standins.teleport.state import Cluster
from teleport_argocd.teleport.proto import (
    authservice_pb2,
    authservice_pb2_grpc,
    certs_pb2,
    trust_service_pb2,
    trust_service_pb2_grpc,
    types_pb2,
)

PEM = serialization.Encoding.PEM


def caller(context: grpc.ServicerContext, cluster: Cluster) -> tuple[ca.Identity, x509.Certificate]:
    """The verified client certificate of this call and the identity it encodes, authorised as
    Teleport's authorizer does before any RPC (`lib/authz/permissions.go` `Authorize`): the user is
    looked up first (`ContextForLocalUser`: a deleted bot's user is NotFound), then locks apply."""
    pem = (context.auth_context().get("x509_pem_cert") or [b""])[0]
    if not pem:
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, "client certificate required")
    cert = x509.load_pem_x509_certificate(pem)
    identity = ca.Identity.from_certificate(cert)
    if not cluster.user_exists(identity.username):
        raise not_found(f'user "{identity.username}" is not found')
    lock = cluster.lock_in_force(identity.username, identity.roles, identity.bot_instance_id)
    if lock is not None:
        raise denied(lock.refusal())
    return identity, cert


class AuthService(authservice_pb2_grpc.AuthServiceServicer):
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    @refusals_as_status
    def GetRole(
        self, request: authservice_pb2.GetRoleRequest, context: grpc.ServicerContext
    ) -> types_pb2.RoleV6:
        identity, _ = caller(context, self._cluster)
        # A user may read the roles it holds; a bot holds only `bot-<name>`.
        if request.Name not in identity.roles:
            raise denied(f'access denied to perform action "read" on "role" "{request.Name}"')
        role = self._cluster.role(request.Name)
        if role is None:
            raise not_found(f"role {request.Name} is not found")
        return types_pb2.RoleV6(
            Kind="role",
            Version="v7",
            Metadata=types_pb2.Metadata(Name=role.name, Namespace="default"),
            Spec=types_pb2.RoleSpecV6(
                Allow=types_pb2.RoleConditions(
                    Impersonate=types_pb2.ImpersonateConditions(Roles=list(role.impersonate_roles))
                ),
                Deny=types_pb2.RoleConditions(),
            ),
        )

    @refusals_as_status
    def GenerateUserCerts(
        self, request: authservice_pb2.UserCertsRequest, context: grpc.ServicerContext
    ) -> certs_pb2.Certs:
        identity, cert = caller(context, self._cluster)
        if not identity.is_bot:
            raise denied("only a bot's own certificate may request impersonated certificates here")
        if request.Username != identity.username:
            raise denied(f'user "{identity.username}" may not generate certificates for "{request.Username}"')
        if not request.UseRoleRequests:
            raise denied("bot certificates from the iam join method are not renewable; join again")
        if not request.RoleRequests:
            raise bad_parameter("at least one role request is required")
        allowed = {r for role in self._cluster.roles(identity.roles) for r in role.impersonate_roles}
        for name in request.RoleRequests:
            if name not in allowed:
                raise denied(f'user "{identity.username}" is not allowed to impersonate role "{name}"')
            if self._cluster.role(name) is None:
                raise not_found(f"role {name} is not found")
        # `generateUserCert` refuses a certificate whose user or requested roles a lock targets.
        lock = self._cluster.lock_in_force(identity.username, request.RoleRequests, identity.bot_instance_id)
        if lock is not None:
            raise denied(lock.refusal())
        if request.RouteToCluster and request.RouteToCluster != self._cluster.name:
            raise not_found(f'cluster "{request.RouteToCluster}" is not found')
        if request.KubernetesCluster:
            kube = self._cluster.kube_cluster(request.KubernetesCluster)
            if kube is None or not self._cluster.can_access_kube(request.RoleRequests, kube.all_labels):
                raise not_found(f'kubernetes cluster "{request.KubernetesCluster}" not found')
        if not request.TLSPublicKey:
            raise bad_parameter("TLSPublicKey is required (field 23; field 1 is gone since Teleport 17)")
        try:
            tls_key = ca.tls_public_key_from_pem(request.TLSPublicKey)
            ssh_key = ca.ssh_public_key_from_text(request.SSHPublicKey) if request.SSHPublicKey else None
        except ca.BadPublicKey as e:
            raise bad_parameter(str(e)) from e
        start = ca.now()
        # An impersonated certificate never outlives the certificate that asked for it, nor the
        # shortest `max_session_ttl` of the roles it carries (`generateUserCert`, `AdjustSessionTTL`).
        shortest = min(role.max_session_ttl for role in self._cluster.roles(request.RoleRequests))
        not_after = min(cert.not_valid_after_utc, start + shortest)
        if request.HasField("Expires"):
            not_after = min(not_after, request.Expires.ToDatetime(dt.UTC))
        if not_after <= start:
            raise bad_parameter("requested certificate expiry is in the past")
        impersonated = ca.Identity(
            username=identity.username,
            roles=tuple(request.RoleRequests),
            teleport_cluster=self._cluster.name,
            route_to_cluster=self._cluster.name,
            kubernetes_cluster=request.KubernetesCluster,
            impersonator=identity.username,
            bot_name=identity.bot_name,
            bot_instance_id=identity.bot_instance_id,
        )
        user_ca = self._cluster.user_ca
        tls_cert = user_ca.issue_client(impersonated, tls_key, not_after)
        ssh_cert = (
            user_ca.issue_ssh_user(identity.username, ssh_key, ["-teleport-internal-join"], not_after)
            if ssh_key is not None
            else b""
        )
        return certs_pb2.Certs(
            TLS=tls_cert.public_bytes(PEM),
            SSH=ssh_cert,
            TLSCACerts=[c.cert_pem for c in self._cluster.user.trusted],
            SSHCACerts=[self._cluster.host_ca.ssh_public_line],
        )

    @refusals_as_status
    def GetClusterCACert(
        self, request: empty_pb2.Empty, context: grpc.ServicerContext
    ) -> authservice_pb2.GetClusterCACertResponse:
        caller(context, self._cluster)
        # Every trusted certificate of the host CA, joined by newlines (`services.GetTLSCerts`).
        pems = [c.cert_pem for c in self._cluster.host.trusted]
        return authservice_pb2.GetClusterCACertResponse(TLSCA=b"\n".join(pems))

    @refusals_as_status
    def ListResources(
        self, request: authservice_pb2.ListResourcesRequest, context: grpc.ServicerContext
    ) -> authservice_pb2.ListResourcesResponse:
        identity, _ = caller(context, self._cluster)
        return list_resources(self._cluster, request, identity.roles)


class TrustService(trust_service_pb2_grpc.TrustServiceServicer):
    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    @refusals_as_status
    def GetCertAuthorities(
        self, request: trust_service_pb2.GetCertAuthoritiesRequest, context: grpc.ServicerContext
    ) -> trust_service_pb2.GetCertAuthoritiesResponse:
        caller(context, self._cluster)
        if request.type not in ("host", "user"):
            raise bad_parameter(f'cert authority type "{request.type}" is not supported; want host or user')
        if request.include_key:
            raise denied('access denied to perform action "read" on "cert_authority" with secrets')
        with self._cluster.lock:
            authority = self._cluster.authority(request.type)
            spec = types_pb2.CertAuthoritySpecV2(
                Type=request.type,
                ClusterName=self._cluster.name,
                Rotation=types_pb2.Rotation(
                    State=authority.state,
                    Phase=authority.phase,
                    Mode="manual" if authority.state != "standby" else "",
                ),
                ActiveKeys=_key_set(authority.active),
                AdditionalTrustedKeys=_key_set(authority.additional),
            )
        return trust_service_pb2.GetCertAuthoritiesResponse(
            cert_authorities_v2=[
                types_pb2.CertAuthorityV2(
                    Kind="cert_authority",
                    Version="v2",
                    Metadata=types_pb2.Metadata(Name=self._cluster.name),
                    Spec=spec,
                )
            ]
        )


def _key_set(authorities: tuple[ca.CertAuthority, ...]) -> types_pb2.CAKeySet:
    return types_pb2.CAKeySet(TLS=[types_pb2.TLSKeyPair(Cert=a.cert_pem) for a in authorities])
