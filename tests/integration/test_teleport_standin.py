"""The Teleport stand-in itself, exercised with raw TLS, grpcio stubs and httpx (not the project client).

Proves what the client relies on: ALPN/SNI routing, both IAM join protocols with their refusals
(the signed request really goes to a signing moto STS), certificate contents and caps, the Auth
RPCs with their authorisation rules, ListResources paging and filters, and the Kubernetes proxy.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gc
import http.client
import json
import os
import queue
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier
from google.protobuf import empty_pb2, timestamp_pb2

from standins.aws import ACCOUNT_ID, MotoServer, lambda_role_credentials
from standins.teleport import TeleportStandin
from teleport_argocd.teleport.proto import (
    authservice_pb2,
    authservice_pb2_grpc,
    join_v1_pb2,
    join_v1_pb2_grpc,
    joinservice_pb2,
    joinservice_pb2_grpc,
    trust_service_pb2,
    trust_service_pb2_grpc,
    types_pb2,
)

ROLE = "teleport-argocd-RenewFunctionRole"
ARN_GLOB = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE}/*"
STS_HOST = "sts.us-east-1.amazonaws.com"
STS_BODY = "Action=GetCallerIdentity&Version=2011-06-15"
AUTH_SNI = "726f6f74.teleport.cluster.local"  # hex("root")
AUTH_ALPN = f"teleport-auth@{AUTH_SNI}"
KUBE_SNI = "kube-teleport-proxy-alpn.teleport.cluster.local"
OID_CLUSTER, OID_IMPERSONATOR = ObjectIdentifier("1.3.9999.1.7"), ObjectIdentifier("1.3.9999.2.7")
OID_BOT, OID_BOT_INSTANCE = ObjectIdentifier("1.3.9999.2.18"), ObjectIdentifier("1.3.9999.2.20")


# -- client-side helpers: what any Python client has to do ------------------------------------


class AlpnBridge:
    """A loopback port for grpcio's insecure channel; each connection is spliced onto a new TLS
    connection to the proxy offering `alpn` (grpcio cannot offer custom ALPN values itself)."""

    def __init__(
        self, proxy_addr: str, *, alpn: list[str], server_name: str, context: ssl.SSLContext
    ) -> None:
        host, port = proxy_addr.rsplit(":", 1)
        self._target = (host, int(port))
        self._server_name = server_name
        context.set_alpn_protocols(alpn)
        self._context = context
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop
        ).result()
        self.addr = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(
                *self._target, ssl=self._context, server_hostname=self._server_name
            )
        except (OSError, ssl.SSLError):
            writer.close()
            return
        self._writers.add(up_writer)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError):
                pass
            finally:
                dst.close()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            for writer in self._writers:
                writer.transport.abort()  # ends both copies of every connection
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def client_context(
    trust_pem: bytes, cert_pem: bytes | None = None, key_pem: bytes | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=trust_pem.decode())
    if cert_pem is not None and key_pem is not None:
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, "c.pem").write_bytes(cert_pem)
            Path(folder, "k.pem").write_bytes(key_pem)
            ctx.load_cert_chain(Path(folder, "c.pem"), Path(folder, "k.pem"))
    return ctx


@contextmanager
def channel(
    standin: TeleportStandin, alpn: list[str], server_name: str, context: ssl.SSLContext
) -> Iterator[grpc.Channel]:
    bridge = AlpnBridge(standin.proxy_addr, alpn=alpn, server_name=server_name, context=context)
    ch = grpc.insecure_channel(bridge.addr)
    try:
        yield ch
    finally:
        ch.close()
        bridge.close()


def new_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key, pem


def sign_sts(
    creds: Credentials, challenge: str, *, host: str = STS_HOST, signed_challenge: bool = True
) -> bytes:
    """A signed GetCallerIdentity as HTTP/1.1 text, the way the Go client writes it."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Accept": "application/json",
    }
    if signed_challenge:
        headers["X-Teleport-Challenge"] = challenge
    request = AWSRequest("POST", f"https://{host}/", data=STS_BODY, headers=headers)
    SigV4Auth(creds, "sts", host.split(".")[1] if host.count(".") > 2 else "us-east-1").add_auth(request)
    lines = ["POST / HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in request.headers.items())]
    if not signed_challenge:
        lines.append(f"X-Teleport-Challenge: {challenge}")
    lines.append(f"Content-Length: {len(STS_BODY)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + STS_BODY).encode()


Signer = Callable[[str], bytes]


def legacy_join(
    ch: grpc.Channel,
    token: str,
    sign: Signer,
    key: ec.EllipticCurvePrivateKey,
    ttl: dt.timedelta = dt.timedelta(hours=1),
) -> Any:
    public = key.public_key()
    outbox: queue.Queue[joinservice_pb2.RegisterUsingIAMMethodRequest] = queue.Queue()
    responses = joinservice_pb2_grpc.JoinServiceStub(ch).RegisterUsingIAMMethod(
        iter(outbox.get, None), timeout=20
    )
    challenge = next(responses).challenge
    expires = timestamp_pb2.Timestamp()
    expires.FromDatetime(dt.datetime.now(dt.UTC) + ttl)
    outbox.put(
        joinservice_pb2.RegisterUsingIAMMethodRequest(
            register_using_token_request=types_pb2.RegisterUsingTokenRequest(
                Token=token,
                Role="Bot",
                PublicTLSKey=public.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                PublicSSHKey=public.public_bytes(
                    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
                ),
                Expires=expires,
            ),
            sts_identity_request=sign(challenge),
        )
    )
    try:
        return next(responses).certs
    finally:
        outbox.put(None)  # type: ignore[arg-type]


def v1_join(ch: grpc.Channel, token: str, sign: Signer, key: ec.EllipticCurvePrivateKey) -> Any:
    outbox: queue.Queue[join_v1_pb2.JoinRequest] = queue.Queue()
    responses = join_v1_pb2_grpc.JoinServiceStub(ch).Join(iter(outbox.get, None), timeout=20)
    try:
        outbox.put(
            join_v1_pb2.JoinRequest(
                client_init=join_v1_pb2.ClientInit(join_method="iam", token_name=token, system_role="Bot")
            )
        )
        init = next(responses).init
        assert (init.join_method, init.signature_algorithm_suite) == ("iam", "balanced-v1")
        public = key.public_key()
        keys = join_v1_pb2.PublicKeys(
            public_tls_key=public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            public_ssh_key=base64.b64decode(
                public.public_bytes(
                    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
                ).split()[1]
            ),
        )
        params = join_v1_pb2.ClientParams(bot_params=join_v1_pb2.BotParams(public_keys=keys))
        outbox.put(join_v1_pb2.JoinRequest(iam_init=join_v1_pb2.IAMInit(client_params=params)))
        challenge = next(responses).challenge.iam_challenge.challenge
        solution = join_v1_pb2.IAMChallengeSolution(sts_identity_request=sign(challenge))
        outbox.put(
            join_v1_pb2.JoinRequest(solution=join_v1_pb2.ChallengeSolution(iam_challenge_solution=solution))
        )
        return next(responses).result.bot_result.certificates
    finally:
        outbox.put(None)  # type: ignore[arg-type]


def subject(cert: x509.Certificate, oid: ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws() -> Iterator[tuple[MotoServer, Credentials]]:
    with MotoServer(signing=True) as sts:
        creds = lambda_role_credentials(sts, role_name=ROLE, session="renew")
        sts.enforce_signing()
        yield sts, Credentials(creds.access_key, creds.secret_key, creds.token)


@pytest.fixture(scope="module")
def standin(aws: tuple[MotoServer, Credentials]) -> Iterator[TeleportStandin]:
    sts, _ = aws
    with TeleportStandin(sts_endpoint=sts.endpoint) as t:
        t.add_role("kube-all", kubernetes_labels={"*": "*"})
        t.add_role("kube-prod", kubernetes_labels={"env": ["prod", "staging-*"]})
        t.add_bot("argo", roles=["kube-all", "kube-prod"])
        t.add_iam_token(
            "argo-token", bot_name="argo", allow=[{"aws_account": ACCOUNT_ID, "aws_arn": ARN_GLOB}]
        )
        t.add_iam_token(
            "wrong-arn", bot_name="argo", allow=[{"aws_arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/x/*"}]
        )
        for i in range(7):
            t.add_kube_cluster(f"c{i}", labels={"env": "prod" if i % 2 else "dev"})
        t.add_kube_cluster("eks-a1b2", labels={"teleport.internal/discovered-name": "eks"}, servers=3)
        t.add_kube_cluster("staged", dynamic_labels={"env": "staging-eu"})
        yield t


@pytest.fixture(scope="module")
def signer(aws: tuple[MotoServer, Credentials]) -> Signer:
    _, creds = aws
    return lambda challenge: sign_sts(creds, challenge)


@pytest.fixture
def join_channel(standin: TeleportStandin) -> Iterator[grpc.Channel]:
    with channel(
        standin, ["teleport-proxy-grpc", "h2"], "localhost", client_context(standin.web_ca_pem)
    ) as ch:
        yield ch


@pytest.fixture(scope="module")
def bot(standin: TeleportStandin, signer: Signer) -> tuple[bytes, bytes, x509.Certificate]:
    key, key_pem = new_key()
    ctx = client_context(standin.web_ca_pem)
    with channel(standin, ["teleport-proxy-grpc", "h2"], "localhost", ctx) as ch:
        certs = legacy_join(ch, "argo-token", signer, key, ttl=dt.timedelta(hours=2))
    return certs.TLS, key_pem, x509.load_pem_x509_certificate(certs.TLS)


@contextmanager
def auth_channel(standin: TeleportStandin, cert_pem: bytes, key_pem: bytes) -> Iterator[grpc.Channel]:
    ctx = client_context(standin.host_ca_pem, cert_pem, key_pem)
    with channel(standin, [AUTH_ALPN, "h2"], AUTH_SNI, ctx) as ch:
        yield ch


@pytest.fixture(scope="module")
def impersonated(standin: TeleportStandin, bot: tuple[bytes, bytes, x509.Certificate]) -> tuple[bytes, bytes]:
    key, key_pem = new_key()
    with auth_channel(standin, bot[0], bot[1]) as ch:
        certs = authservice_pb2_grpc.AuthServiceStub(ch).GenerateUserCerts(
            authservice_pb2.UserCertsRequest(
                Username="bot-argo",
                RouteToCluster="root",
                RoleRequests=["kube-prod"],
                UseRoleRequests=True,
                TLSPublicKey=key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
            )
        )
    return certs.TLS, key_pem


# -- routing and web API ------------------------------------------------------------------------


def test_web_api_answers_find_and_ping(standin: TeleportStandin) -> None:
    ctx = client_context(standin.web_ca_pem)
    find = httpx.get(f"https://{standin.proxy_addr}/webapi/find", verify=ctx).json()
    assert find["cluster_name"] == "root" and find["server_version"] == "18.2.0" and find["fips"] is False
    assert find["proxy"]["tls_routing_enabled"] is True
    assert find["proxy"]["ssh"]["public_addr"] == standin.proxy_addr
    assert find["proxy"]["kube"]["enabled"] is True
    assert find["auth"] == {"signature_algorithm_suite": "balanced-v1"}
    ping = httpx.get(f"https://{standin.proxy_addr}/webapi/ping", verify=ctx).json()
    assert ping["auth"]["signature_algorithm_suite"] == "balanced-v1" and ping["auth"]["type"] == "local"


def _handshake(standin: TeleportStandin, alpn: list[str], server_name: str = "localhost") -> str | None:
    host, port = standin.proxy_addr.rsplit(":", 1)
    ctx = client_context(standin.web_ca_pem)
    ctx.set_alpn_protocols(alpn)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name) as s,
    ):
        return s.selected_alpn_protocol()


def test_alpn_routes_in_client_order(standin: TeleportStandin) -> None:
    assert _handshake(standin, ["teleport-proxy-grpc", "h2"]) == "teleport-proxy-grpc"
    # `h2` first sends even an auth request to the web API (Correction 9), which speaks HTTP/1.1.
    assert _handshake(standin, ["h2", AUTH_ALPN]) is None
    assert _handshake(standin, []) is None
    for refused in (["teleport-auth@6f74686572.teleport.cluster.local", "h2"], ["teleport-unknown"]):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _handshake(standin, refused)


def test_auth_route_is_passed_through_and_requires_a_user_certificate(standin: TeleportStandin) -> None:
    # Without a client certificate the Auth server (not the router) ends the handshake.
    ctx = client_context(standin.host_ca_pem)
    with channel(standin, [AUTH_ALPN, "h2"], AUTH_SNI, ctx) as ch, pytest.raises(grpc.RpcError) as err:
        authservice_pb2_grpc.AuthServiceStub(ch).GetClusterCACert(empty_pb2.Empty(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


# -- joins ------------------------------------------------------------------------------------


def test_legacy_join_issues_a_capped_bot_certificate(
    standin: TeleportStandin, join_channel: grpc.Channel, signer: Signer
) -> None:
    key, _ = new_key()
    certs = legacy_join(join_channel, "argo-token", signer, key, ttl=dt.timedelta(hours=48))
    cert = x509.load_pem_x509_certificate(certs.TLS)
    assert subject(cert, NameOID.COMMON_NAME) == ["bot-argo"]
    assert subject(cert, NameOID.ORGANIZATION_NAME) == ["bot-argo"]
    assert subject(cert, NameOID.STREET_ADDRESS) == ["root"]
    assert subject(cert, OID_CLUSTER) == ["root"] and subject(cert, OID_BOT) == ["argo"]
    assert len(subject(cert, OID_BOT_INSTANCE)[0]) == 36
    assert cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "root"
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=11) < lifetime <= dt.timedelta(hours=12)
    assert list(certs.TLSCACerts) == [standin.user_ca_pem, standin.host_ca_pem]
    assert certs.SSH.startswith(b"ecdsa-sha2-nistp256-cert-v01@openssh.com ")
    assert standin.rpc_calls["/proto.JoinService/RegisterUsingIAMMethod"] >= 1


@pytest.mark.parametrize(
    ("token", "sign", "code", "message"),
    [
        (
            "wrong-arn",
            None,
            grpc.StatusCode.PERMISSION_DENIED,
            f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE}/renew did not match",
        ),
        ("missing", None, grpc.StatusCode.PERMISSION_DENIED, "token expired or not found"),
        (
            "argo-token",
            lambda c, ch: sign_sts(c, "not-the-challenge"),
            grpc.StatusCode.PERMISSION_DENIED,
            "challenge",
        ),
        (
            "argo-token",
            lambda c, ch: sign_sts(c, ch, signed_challenge=False),
            grpc.StatusCode.PERMISSION_DENIED,
            "as a signed header",
        ),
        (
            "argo-token",
            lambda c, ch: sign_sts(c, ch, host="sts.example.com"),
            grpc.StatusCode.PERMISSION_DENIED,
            "sts.example.com",
        ),
        (
            "argo-token",
            lambda c, ch: sign_sts(c, ch, host="sts.mars-1.amazonaws.com"),
            grpc.StatusCode.PERMISSION_DENIED,
            "unknown region",
        ),
        (
            "argo-token",
            lambda c, ch: sign_sts(c, ch).replace(b"Signature=", b"Signature=0000"),
            grpc.StatusCode.PERMISSION_DENIED,
            'aws sts api returned status: "403',
        ),
        (
            "argo-token",
            lambda c, ch: sign_sts(c, ch).replace(b"POST / ", b"POST /x "),
            grpc.StatusCode.PERMISSION_DENIED,
            "unexpected sts identity request URI",
        ),
    ],
    ids=[
        "arn-mismatch",
        "unknown-token",
        "wrong-challenge",
        "unsigned-challenge",
        "foreign-host",
        "unknown-region",
        "tampered-signature",
        "wrong-path",
    ],
)
def test_legacy_join_refusals(
    join_channel: grpc.Channel, aws: Any, token: str, sign: Any, code: grpc.StatusCode, message: str
) -> None:
    _, creds = aws
    signer = (lambda ch: sign(creds, ch)) if sign else (lambda ch: sign_sts(creds, ch))
    with pytest.raises(grpc.RpcError) as err:
        legacy_join(join_channel, token, signer, new_key()[0])
    assert err.value.code() == code
    assert message in err.value.details()


def test_join_v1_and_its_unimplemented_switch(
    standin: TeleportStandin, join_channel: grpc.Channel, signer: Signer
) -> None:
    certs = v1_join(join_channel, "argo-token", signer, new_key()[0])
    cert = x509.load_der_x509_certificate(certs.tls_cert)
    assert subject(cert, OID_BOT) == ["argo"]
    assert [x509.load_der_x509_certificate(c) for c in certs.tls_ca_certs] == [
        x509.load_pem_x509_certificate(standin.user_ca_pem),
        x509.load_pem_x509_certificate(standin.host_ca_pem),
    ]
    assert certs.ssh_cert[:4] == len(b"ecdsa-sha2-nistp256-cert-v01@openssh.com").to_bytes(4, "big")
    standin.new_join_enabled = False
    try:
        with pytest.raises(grpc.RpcError) as err:
            v1_join(join_channel, "argo-token", signer, new_key()[0])
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        standin.new_join_enabled = True


@pytest.mark.parametrize(
    ("version", "ok"),
    [("18.2.0", True), ("17.0.0-dev.1", True), ("16.4.2", False), ("v18.2.0", False), ("18.2", False)],
)
def test_version_metadata_is_checked_when_present(
    standin: TeleportStandin, bot: tuple[bytes, bytes, x509.Certificate], version: str, ok: bool
) -> None:
    with auth_channel(standin, bot[0], bot[1]) as ch:
        call = authservice_pb2_grpc.AuthServiceStub(ch).GetClusterCACert
        if ok:
            response = call(empty_pb2.Empty(), metadata=[("version", version)])
            assert standin.host_ca_pem == response.TLSCA
        else:
            with pytest.raises(grpc.RpcError) as err:
                call(empty_pb2.Empty(), metadata=[("version", version)])
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


# -- Auth --------------------------------------------------------------------------------------


def test_auth_rpcs_with_the_bot_certificate(
    standin: TeleportStandin, bot: tuple[bytes, bytes, x509.Certificate]
) -> None:
    with auth_channel(standin, bot[0], bot[1]) as ch:
        auth = authservice_pb2_grpc.AuthServiceStub(ch)
        role = auth.GetRole(authservice_pb2.GetRoleRequest(Name="bot-argo"))
        assert list(role.Spec.Allow.Impersonate.Roles) == ["kube-all", "kube-prod"]
        with pytest.raises(grpc.RpcError) as err:
            auth.GetRole(authservice_pb2.GetRoleRequest(Name="kube-all"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        cas = trust_service_pb2_grpc.TrustServiceStub(ch).GetCertAuthorities(
            trust_service_pb2.GetCertAuthoritiesRequest(type="host")
        )
        assert [k.Cert for k in cas.cert_authorities_v2[0].Spec.ActiveKeys.TLS] == [standin.host_ca_pem]
        assert not cas.cert_authorities_v2[0].Spec.ActiveKeys.TLS[0].Key
        request = authservice_pb2.UserCertsRequest(
            Username="bot-argo", RoleRequests=["kube-admin"], UseRoleRequests=True, TLSPublicKey=b"unused"
        )
        with pytest.raises(grpc.RpcError) as err:
            auth.GenerateUserCerts(request)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "kube-admin" in err.value.details()


def test_impersonated_certificate(
    bot: tuple[bytes, bytes, x509.Certificate], impersonated: tuple[bytes, bytes]
) -> None:
    cert = x509.load_pem_x509_certificate(impersonated[0])
    assert subject(cert, NameOID.COMMON_NAME) == ["bot-argo"]
    assert subject(cert, NameOID.ORGANIZATION_NAME) == ["kube-prod"]
    assert subject(cert, OID_IMPERSONATOR) == ["bot-argo"] and subject(cert, OID_BOT) == ["argo"]
    assert subject(cert, NameOID.STREET_ADDRESS) == ["root"]
    assert cert.not_valid_after_utc <= bot[2].not_valid_after_utc


# -- ListResources ------------------------------------------------------------------------------


def _list(standin: TeleportStandin, creds: tuple[bytes, bytes], **fields: Any) -> list[Any]:
    """Every page, following NextKey; returns (pages of cluster names)."""
    pages: list[list[str]] = []
    with auth_channel(standin, *creds) as ch:
        auth = authservice_pb2_grpc.AuthServiceStub(ch)
        request = authservice_pb2.ListResourcesRequest(Namespace="default", **fields)
        while True:
            response = auth.ListResources(request)
            pages.append(
                [
                    r.KubernetesServer.Spec.Cluster.Metadata.Name
                    if r.HasField("KubernetesServer")
                    else r.KubeCluster.Metadata.Name
                    for r in response.Resources
                ]
            )
            if not response.NextKey:
                return pages
            request.StartKey = response.NextKey


def test_list_resources_pages_and_filters(
    standin: TeleportStandin, bot: tuple[bytes, bytes, x509.Certificate], impersonated: tuple[bytes, bytes]
) -> None:
    admin = standin.issue_user_cert("admin", ["kube-all"])
    pages = _list(standin, admin, ResourceType="kube_server", Limit=4)
    assert [len(p) for p in pages] == [4, 4, 3]
    assert sorted(name for page in pages for name in page) == sorted(
        [f"c{i}" for i in range(7)] + ["eks-a1b2"] * 3 + ["staged"]
    )
    assert _list(standin, admin, ResourceType="kube_cluster") == [
        sorted([f"c{i}" for i in range(7)] + ["eks-a1b2", "staged"])
    ]
    assert _list(standin, admin, ResourceType="kube_cluster", Labels={"env": "prod"}) == [["c1", "c3", "c5"]]
    by_name = '(name == "eks") || (labels["teleport.internal/discovered-name"] == "eks")'
    assert _list(standin, admin, ResourceType="kube_cluster", PredicateExpression=by_name) == [["eks-a1b2"]]
    # RBAC: the impersonated kube-prod identity sees env=prod and env=staging-* (a dynamic label) only.
    assert _list(standin, impersonated, ResourceType="kube_cluster") == [["c1", "c3", "c5", "staged"]]
    # The bot's own role grants no Kubernetes access.
    assert _list(standin, bot[:2], ResourceType="kube_cluster") == [[]]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"Limit": -1}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"PredicateExpression": 'name == "c1"'}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"Limit": 0}, grpc.StatusCode.RESOURCE_EXHAUSTED),  # 0 means 1000, above the ceiling
        ({"Limit": 600}, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
def test_list_resources_refusals(
    standin: TeleportStandin, fields: dict[str, Any], code: grpc.StatusCode
) -> None:
    standin.list_limit_exceeded_above = 500
    try:
        with pytest.raises(grpc.RpcError) as err:
            _list(
                standin, standin.issue_user_cert("admin", ["kube-all"]), ResourceType="kube_server", **fields
            )
        assert err.value.code() == code
        assert standin.rpc_calls["/proto.AuthService/ListResources"] >= 1
    finally:
        standin.list_limit_exceeded_above = None


# -- Kubernetes proxy ----------------------------------------------------------------------------


def _kube_get(
    standin: TeleportStandin, path: str, creds: tuple[bytes, bytes], *, addr: str = "", sni: str = KUBE_SNI
) -> tuple[int, dict[str, Any]]:
    host, port = (addr or standin.proxy_addr).rsplit(":", 1)
    ctx = client_context(standin.host_ca_pem, *creds)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.sock = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=5), server_hostname=sni)
    try:
        conn.request("GET", path, headers={"Accept": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _kube_get_text(standin: TeleportStandin, path: str, creds: tuple[bytes, bytes]) -> tuple[int, str]:
    """A request whose refusal comes as Go's `http.Error` writes it: plain text."""
    host, port = standin.proxy_addr.rsplit(":", 1)
    ctx = client_context(standin.host_ca_pem, *creds)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.sock = ctx.wrap_socket(
        socket.create_connection((host, int(port)), timeout=5), server_hostname=KUBE_SNI
    )
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
        return response.status, response.read().decode()
    finally:
        conn.close()


def _route(teleport_cluster: str, kube_cluster: str) -> str:
    def b64(s: str) -> str:
        return base64.urlsafe_b64encode(s.encode()).decode().rstrip("=")

    return f"/v1/teleport/{b64(teleport_cluster)}/{b64(kube_cluster)}"


def test_kube_proxy_routes_by_path_and_applies_rbac(
    standin: TeleportStandin, impersonated: tuple[bytes, bytes]
) -> None:
    before = len(standin.kube_requests)
    status, version = _kube_get(standin, _route("root", "c1") + "/version", impersonated)
    assert status == 200 and {"major", "minor", "gitVersion", "buildDate", "platform"} <= version.keys()
    status, ns = _kube_get(standin, _route("root", "staged") + "/api/v1/namespaces/default", impersonated)
    assert (status, ns["metadata"]["name"]) == (200, "default")
    assert [tuple(r) for r in standin.kube_requests[before:]] == [
        ("c1", "GET", "/version", "bot-argo"),
        ("staged", "GET", "/api/v1/namespaces/default", "bot-argo"),
    ]
    for path, code, text in [
        (_route("root", "c2") + "/api", 403, 'kubernetes cluster "c2" not found'),
        (_route("root", "nope") + "/api", 404, 'Kubernetes cluster "nope" not found'),
        (_route("leaf", "c1") + "/version", 403, "pinned to Teleport cluster 'root'"),
        ("/v1/teleport/cm9vdA==/YzE/version", 400, "invalid base64"),
        ("/version", 400, "kubernetes cluster not specified"),
    ]:
        status, body = _kube_get(standin, path, impersonated)
        assert (status, body["kind"]) == (code, "Status") and text in body["message"], (path, body)
    # At /version the forwarder writes its authorization errors as plain text with status 500.
    assert _kube_get_text(standin, _route("root", "c2") + "/version", impersonated) == (
        500,
        'kubernetes cluster "c2" not found\n',
    )


def test_kube_proxy_refuses_a_locked_identity_until_unlocked(
    standin: TeleportStandin, impersonated: tuple[bytes, bytes]
) -> None:
    standin.lock("kube-incident", user="bot-argo", message="investigating")
    try:
        status, body = _kube_get(standin, _route("root", "c1") + "/api", impersonated)
        assert (status, body["reason"]) == (403, "Forbidden")
        assert body["message"] == 'lock targeting User:"bot-argo" is in force: investigating'
        assert _kube_get_text(standin, _route("root", "c1") + "/version", impersonated) == (
            500,
            'lock targeting User:"bot-argo" is in force: investigating\n',
        )
    finally:
        standin.unlock("kube-incident")
    assert _kube_get(standin, _route("root", "c1") + "/version", impersonated)[0] == 200


def test_kube_proxy_requires_a_user_ca_certificate(standin: TeleportStandin) -> None:
    host, port = standin.proxy_addr.rsplit(":", 1)
    ctx = client_context(standin.host_ca_pem)
    with (
        pytest.raises((ssl.SSLError, ConnectionError)),
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=KUBE_SNI) as s,
    ):
        s.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        if not s.recv(1):
            raise ConnectionError("closed")


# -- other modes ---------------------------------------------------------------------------------


def test_fips_mode_admits_only_fips_sts_endpoints(aws: tuple[MotoServer, Credentials]) -> None:
    sts, creds = aws
    with TeleportStandin(sts_endpoint=sts.endpoint, fips=True) as fips:
        fips.add_bot("argo", roles=[])
        fips.add_iam_token("t", bot_name="argo", allow=[{"aws_account": ACCOUNT_ID}])
        with channel(fips, ["teleport-proxy-grpc"], "localhost", client_context(fips.web_ca_pem)) as ch:
            with pytest.raises(grpc.RpcError) as err:
                legacy_join(ch, "t", lambda c: sign_sts(creds, c), new_key()[0])
            assert "non-FIPS AWS STS endpoint" in err.value.details()
            certs = legacy_join(
                ch, "t", lambda c: sign_sts(creds, c, host="sts-fips.us-east-1.amazonaws.com"), new_key()[0]
            )
            assert certs.TLS


def test_without_tls_routing_kubernetes_has_its_own_listener() -> None:
    with TeleportStandin(sts_endpoint="http://127.0.0.1:9", tls_routing=False) as standin:
        standin.add_role("kube-all", kubernetes_labels={"*": "*"})
        standin.add_kube_cluster("c1")
        find = httpx.get(
            f"https://{standin.proxy_addr}/webapi/find", verify=client_context(standin.web_ca_pem)
        ).json()
        assert find["proxy"]["tls_routing_enabled"] is False
        assert find["proxy"]["kube"]["public_addr"] == standin.kube_addr != standin.proxy_addr
        user = standin.issue_user_cert("admin", ["kube-all"])
        status, _ = _kube_get(
            standin, _route("root", "c1") + "/version", user, addr=standin.kube_addr, sni="localhost"
        )
        assert status == 200


# -- lifecycle ------------------------------------------------------------------------------------


def _exercise_and_stop() -> str:
    """Start a stand-in, drive every route once, stop it; return the address it listened on."""
    standin = TeleportStandin(sts_endpoint="http://127.0.0.1:9").start()
    standin.add_role("kube-all", kubernetes_labels={"*": "*"})
    standin.add_kube_cluster("c1")
    user = standin.issue_user_cert("admin", ["kube-all"])
    httpx.get(f"https://{standin.proxy_addr}/webapi/find", verify=client_context(standin.web_ca_pem))
    ctx = client_context(standin.web_ca_pem)
    with channel(standin, ["teleport-proxy-grpc"], "localhost", ctx) as ch, pytest.raises(grpc.RpcError):
        legacy_join(ch, "missing", lambda challenge: b"", new_key()[0])
    with auth_channel(standin, *user) as ch:
        authservice_pb2_grpc.AuthServiceStub(ch).GetClusterCACert(empty_pb2.Empty())
    assert _kube_get(standin, _route("root", "c1") + "/version", user)[0] == 200
    standin.stop()
    return standin.proxy_addr


def test_stop_releases_threads_sockets_and_port() -> None:
    _exercise_and_stop()  # warm-up: grpc and ssl keep a few process-wide descriptors
    gc.collect()
    threads = {t.ident for t in threading.enumerate()}
    fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    host, port = _exercise_and_stop().rsplit(":", 1)
    time.sleep(0.2)  # let grpc's channel teardown finish on its own threads
    gc.collect()  # sockets caught in reference cycles are closed by the collector
    leaked = [
        t.name
        for t in threading.enumerate()
        if t.ident not in threads and t.name.startswith("teleport-standin")
    ]
    assert leaked == []
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) <= fds
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=2).close()
