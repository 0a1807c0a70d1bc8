"""The Teleport client end to end against the Teleport stand-in and a signing moto STS.

Covers both join protocols and the fallback, refused joins, the impersonated certificate and host
CA, paginated and filtered cluster listing, reaching a cluster through the Kubernetes proxy with
the kubernetes client and with kubectl, and that sessions leave no thread or socket behind.
"""

from __future__ import annotations

import base64
import gc
import os
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client as kube_client

from standins.aws import ACCOUNT_ID, REGION
from standins.stack import ROLE_NAME
from standins.teleport import TeleportStandin
from teleport_argocd.errors import AuthCallError, JoinError, JoinNotAllowed
from teleport_argocd.model import Identity, KubeEndpoint
from teleport_argocd.teleport import TeleportSession, iamjoin, join

ALLOWED_ARN = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE_NAME}/*"
MANY = 2_500
LIST_RESOURCES = "/proto.AuthService/ListResources"
KUBECTL = Path(sys.executable).with_name("kubectl")


@dataclass
class Env:
    teleport: TeleportStandin
    credentials: Credentials
    region: str = REGION

    def join(self, token: str = "argo-token") -> TeleportSession:
        return join(
            self.teleport.proxy_addr,
            token,
            credentials=self.credentials,
            region=self.region,
            ca_pem=self.teleport.web_ca_pem,
            bot_ttl=timedelta(hours=2),
        )


@pytest.fixture(scope="module")
def env(credentials: tuple[str, Credentials]) -> Iterator[Env]:
    sts_endpoint, creds = credentials
    with TeleportStandin(sts_endpoint=sts_endpoint) as teleport:
        teleport.add_role("kube-all", kubernetes_labels={"*": ["*"]})
        teleport.add_role("kube-prod", kubernetes_labels={"env": ["prod"]})
        teleport.add_bot("argo", roles=["kube-all"])
        teleport.add_bot("prod-only", roles=["kube-prod"])
        teleport.add_iam_token(
            "argo-token", bot_name="argo", allow=[{"aws_account": ACCOUNT_ID, "aws_arn": ALLOWED_ARN}]
        )
        teleport.add_iam_token("prod-token", bot_name="prod-only", allow=[{"aws_account": ACCOUNT_ID}])
        teleport.add_iam_token(
            "other-role-token",
            bot_name="argo",
            allow=[{"aws_account": ACCOUNT_ID, "aws_arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/other/*"}],
        )
        for i in range(MANY):
            teleport.add_kube_cluster(
                f"kube-{i:04d}", labels={"env": "prod" if i % 2 else "dev", "index": str(i)}
            )
        teleport.add_kube_cluster("eks-prod-a1b2", labels={"teleport.internal/discovered-name": "eks-prod"})
        teleport.add_kube_cluster(
            "dynamic", labels={"env": "prod"}, dynamic_labels={"team": "platform"}, servers=3
        )
        yield Env(teleport, creds)


@pytest.fixture(scope="module")
def session(env: Env) -> Iterator[TeleportSession]:
    with env.join() as joined:
        yield joined


@pytest.fixture(scope="module")
def impersonated(session: TeleportSession) -> Identity:
    return session.impersonate(timedelta(minutes=30))


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _b64url(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).rstrip(b"=").decode()


# -- join ---------------------------------------------------------------------


def test_join_with_the_new_protocol(env: Env, session: TeleportSession) -> None:
    assert session.join_protocol == "teleport.join.v1"
    assert session.proxy.cluster_name == "root"
    bot = session.bot
    assert (bot.username, bot.bot_name, bot.cluster_name) == ("bot-argo", "argo", "root")
    assert datetime.now(UTC) < bot.expires <= datetime.now(UTC) + timedelta(hours=2, minutes=1)
    # The key we kept is the key the certificate was issued for.
    key = serialization.load_pem_private_key(bot.key_pem, password=None)
    assert _cert(bot.cert_pem).public_key() == key.public_key()
    assert env.teleport.rpc_calls["/teleport.join.v1.JoinService/Join"] >= 1


def test_a_join_loads_the_system_trust_roots_once(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The proxy discovery, the connection upgrade test and the join route verify the proxy's web
    certificate with one context: each load of the system roots is tens of milliseconds of CPU in
    a cold start. The context each of them used offered its own ALPN list (the join: Teleport's)."""
    loads: list[ssl.SSLContext] = []
    original = ssl.SSLContext.load_default_certs

    def counting(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", counting)
    before = env.teleport.rpc_calls["/teleport.join.v1.JoinService/Join"]
    with env.join() as joined:
        assert joined.bot.bot_name == "argo"
        assert joined.proxy.conn_upgrade is False  # the upgrade test ran, and on this context
    assert len(loads) == 1
    assert env.teleport.rpc_calls["/teleport.join.v1.JoinService/Join"] == before + 1


def test_join_falls_back_to_the_legacy_protocol(env: Env) -> None:
    env.teleport.new_join_enabled = False
    try:
        before = env.teleport.rpc_calls["/proto.JoinService/RegisterUsingIAMMethod"]
        with env.join() as legacy:
            assert legacy.join_protocol == "proto.JoinService"
            assert legacy.bot.bot_name == "argo"
            # The legacy bot certificate works for Auth calls just the same.
            assert legacy.impersonate(timedelta(minutes=5)).roles == ("kube-all",)
        assert env.teleport.rpc_calls["/proto.JoinService/RegisterUsingIAMMethod"] == before + 1
    finally:
        env.teleport.new_join_enabled = True


@pytest.mark.parametrize("new_join", [True, False], ids=["new", "legacy"])
def test_join_refused_when_the_arn_does_not_match(env: Env, new_join: bool) -> None:
    env.teleport.new_join_enabled = new_join
    try:
        # Teleport's `checkIAMAllowRules` refusal, named with the rule to add (teleport.lifecycle).
        with pytest.raises(JoinNotAllowed, match=r"join token other-role-token has no allow rule") as refused:
            env.join("other-role-token")
        assert "tctl edit token/other-role-token" in refused.value.fix
        assert ":assumed-role/" in refused.value.fix and "aws_account" in refused.value.fix
    finally:
        env.teleport.new_join_enabled = True


def test_join_refused_for_an_unknown_token(env: Env) -> None:
    with pytest.raises(JoinError, match=r"token 'no-such-token'.*(not found|expired)"):
        env.join("no-such-token")


def _patch_signer(monkeypatch: pytest.MonkeyPatch, change: Callable[[bytes, str], bytes]) -> None:
    original = iamjoin.signed_identity_request

    def signer(credentials: Credentials, region: str, challenge: str, *, fips: bool = False) -> bytes:
        return change(original(credentials, region, challenge, fips=fips), challenge)

    monkeypatch.setattr(iamjoin, "signed_identity_request", signer)


def test_join_refused_for_a_tampered_signature(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    def tamper(raw: bytes, challenge: str) -> bytes:
        head, _, signature = raw.partition(b"Signature=")
        return head + b"Signature=" + (b"0" if signature[:1] != b"0" else b"1") + signature[1:]

    _patch_signer(monkeypatch, tamper)
    with pytest.raises(JoinError, match=r"PERMISSION_DENIED|ACCESS_DENIED|denied|SignatureDoesNotMatch|403"):
        env.join()


def test_join_refused_for_a_wrong_challenge(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    original = iamjoin.signed_identity_request

    def wrong_challenge(
        credentials: Credentials, region: str, challenge: str, *, fips: bool = False
    ) -> bytes:
        return original(credentials, region, "not-" + challenge, fips=fips)

    monkeypatch.setattr(iamjoin, "signed_identity_request", wrong_challenge)
    with pytest.raises(JoinError, match=r"challenge header or it does not match"):
        env.join()


# -- impersonation and host CA -------------------------------------------------


def test_impersonated_identity(env: Env, session: TeleportSession, impersonated: Identity) -> None:
    assert impersonated.roles == ("kube-all",)
    assert (impersonated.username, impersonated.bot_name, impersonated.cluster_name) == (
        "bot-argo",
        "argo",
        "root",
    )
    assert impersonated.cert_pem != session.bot.cert_pem and impersonated.key_pem != session.bot.key_pem
    assert datetime.now(UTC) < impersonated.expires <= datetime.now(UTC) + timedelta(minutes=31)
    cert = _cert(impersonated.cert_pem)
    key = serialization.load_pem_private_key(impersonated.key_pem, password=None)
    assert cert.public_key() == key.public_key()
    # balanced-v1: ECDSA P-256, issued by the cluster's user CA.
    assert impersonated.key_pem.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    cert.verify_directly_issued_by(_cert(env.teleport.user_ca_pem))


def test_the_cas_are_read_once_per_session(env: Env, session: TeleportSession) -> None:
    pems = session.host_ca_pems
    assert [_cert(p) for p in pems] == [_cert(env.teleport.host_ca_pem)]

    def ca_calls() -> dict[str, int]:
        return {m: n for m, n in env.teleport.rpc_calls.items() if "CertAuthorities" in m or "CACert" in m}

    calls = ca_calls()
    assert session.host_ca_pems == pems
    authorities = session.authorities
    assert authorities.user is not None and authorities.user.active == (env.teleport.user_ca_pem,)
    assert (authorities.host.phase, authorities.user.phase) == ("standby", "standby")
    assert ca_calls() == calls
    # The session now trusts exactly the CA set it read: user CA, then host CA.
    assert session.trusted_ca_pems == (env.teleport.user_ca_pem, env.teleport.host_ca_pem)


# -- listing -------------------------------------------------------------------


def test_list_all_clusters_in_pages(env: Env, session: TeleportSession, impersonated: Identity) -> None:
    before = env.teleport.rpc_calls[LIST_RESOURCES]
    clusters = session.list_kube_clusters(impersonated)
    names = [c.name for c in clusters]
    assert len(names) == len(set(names)) == MANY + 2  # "dynamic" has three heartbeats, listed once
    assert env.teleport.rpc_calls[LIST_RESOURCES] - before == 3  # 1000 + 1000 + 502
    dynamic = next(c for c in clusters if c.name == "dynamic")
    assert dynamic.labels == {"env": "prod", "team": "platform"}


def test_list_halves_the_page_when_the_limit_is_exceeded(
    env: Env, session: TeleportSession, impersonated: Identity
) -> None:
    env.teleport.list_limit_exceeded_above = 300
    try:
        before = env.teleport.rpc_calls[LIST_RESOURCES]
        clusters = session.list_kube_clusters(impersonated)
    finally:
        env.teleport.list_limit_exceeded_above = None
    assert len(clusters) == MANY + 2
    # 1000 and 500 refused, then pages of 250.
    assert env.teleport.rpc_calls[LIST_RESOURCES] - before == 2 + -(-(MANY + 2) // 250)


def test_list_by_name_and_discovered_name(env: Env, session: TeleportSession, impersonated: Identity) -> None:
    before = env.teleport.rpc_calls[LIST_RESOURCES]
    assert [c.name for c in session.list_kube_clusters(impersonated, name="kube-0042")] == ["kube-0042"]
    assert [c.name for c in session.list_kube_clusters(impersonated, name="eks-prod")] == ["eks-prod-a1b2"]
    assert session.list_kube_clusters(impersonated, name="absent") == []
    assert env.teleport.rpc_calls[LIST_RESOURCES] - before == 3  # filtered on the server, one page each


def test_list_by_labels_static_and_dynamic(session: TeleportSession, impersonated: Identity) -> None:
    assert [c.name for c in session.list_kube_clusters(impersonated, labels={"team": "platform"})] == [
        "dynamic"
    ]
    prod = session.list_kube_clusters(impersonated, labels={"env": "prod"})
    assert len(prod) == MANY // 2 + 1


def test_list_is_filtered_by_the_impersonated_roles(env: Env) -> None:
    with env.join("prod-token") as prod_session:
        identity = prod_session.impersonate(timedelta(minutes=5))
        clusters = prod_session.list_kube_clusters(identity)
    assert clusters and all(c.labels.get("env") == "prod" for c in clusters)
    assert len(clusters) == MANY // 2 + 1


def test_an_identity_auth_does_not_trust_fails_the_call(session: TeleportSession) -> None:
    leaf = trustme.CA().issue_cert("bot-argo")
    stranger = Identity(
        leaf.cert_chain_pems[0].bytes(),
        leaf.private_key_pem.bytes(),
        datetime.now(UTC),
        "bot-argo",
        "argo",
        "root",
    )
    # The tunnel adds what grpc cannot see: which connection ended, and how.
    with pytest.raises(
        AuthCallError, match=r"ListResources failed: UNAVAILABLE: .*\(connection to localhost:\d+ .*\)$"
    ):
        session.list_kube_clusters(stranger)


# -- reaching a cluster through the Kubernetes proxy -----------------------------


def _write_credentials(
    tmp_path: Path, session: TeleportSession, identity: Identity
) -> tuple[Path, Path, Path]:
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.write_bytes(b"\n".join(session.host_ca_pems))
    cert.write_bytes(identity.cert_pem)
    key.write_bytes(identity.key_pem)
    key.chmod(0o600)
    return ca, cert, key


def _server_url(session: TeleportSession, kube_cluster: str) -> str:
    teleport_cluster = _b64url(session.proxy.cluster_name)
    return f"{session.proxy.kube.base_url}/v1/teleport/{teleport_cluster}/{_b64url(kube_cluster)}"


def test_kubernetes_client_reaches_a_cluster(
    env: Env, session: TeleportSession, impersonated: Identity, tmp_path: Path
) -> None:
    assert session.proxy.kube.server_name == "kube-teleport-proxy-alpn.teleport.cluster.local"
    ca, cert, key = _write_credentials(tmp_path, session, impersonated)
    config = kube_client.Configuration()
    config.host = _server_url(session, "kube-0007")
    config.ssl_ca_cert, config.cert_file, config.key_file = str(ca), str(cert), str(key)
    config.tls_server_name = session.proxy.kube.server_name
    with kube_client.ApiClient(config) as api:
        namespace = kube_client.CoreV1Api(api).read_namespace("default")
    assert namespace.metadata is not None and namespace.metadata.name == "default"
    assert ("kube-0007", "GET", "/api/v1/namespaces/default", "bot-argo") in env.teleport.kube_requests


def test_kubectl_reaches_a_cluster(
    env: Env, session: TeleportSession, impersonated: Identity, tmp_path: Path
) -> None:
    ca, cert, key = _write_credentials(tmp_path, session, impersonated)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: teleport
  cluster:
    server: {_server_url(session, "dynamic")}
    certificate-authority: {ca}
    tls-server-name: {session.proxy.kube.server_name}
users:
- name: bot
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: teleport
  context: {{cluster: teleport, user: bot}}
current-context: teleport
"""
    )
    result = subprocess.run(
        [str(KUBECTL), "--kubeconfig", str(kubeconfig), "get", "namespace", "default", "-o", "name"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "namespace/default"
    assert ("dynamic", "GET", "/api/v1/namespaces/default", "bot-argo") in env.teleport.kube_requests


# -- a FIPS cluster on the legacy suite, without TLS routing -------------------------


@pytest.mark.parametrize("region", ["us-west-2", "eu-west-1"])
def test_fips_legacy_suite_without_tls_routing(
    credentials: tuple[str, Credentials], region: str, tmp_path: Path
) -> None:
    sts_endpoint, creds = credentials
    with TeleportStandin(
        sts_endpoint=sts_endpoint,
        fips=True,
        signature_suite="legacy",
        tls_routing=False,
        cluster_name="fips.example",
    ) as teleport:
        teleport.add_role("kube-all", kubernetes_labels={"*": "*"})
        teleport.add_bot("argo", roles=["kube-all"])
        teleport.add_iam_token(
            "argo-token", bot_name="argo", allow=[{"aws_account": ACCOUNT_ID, "aws_arn": ALLOWED_ARN}]
        )
        teleport.add_kube_cluster("only")
        # The stand-in, like Teleport, refuses a non-FIPS STS host from a FIPS cluster's joiner.
        with Env(teleport, creds, region).join() as session:
            assert session.proxy.fips and not session.proxy.tls_routing
            assert session.proxy.kube == KubeEndpoint(f"https://{teleport.kube_addr}")
            assert session.bot.key_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
            identity = session.impersonate(timedelta(minutes=5))
            assert identity.key_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
            assert [c.name for c in session.list_kube_clusters(identity)] == ["only"]
            ca, cert, key = _write_credentials(tmp_path, session, identity)
            config = kube_client.Configuration()
            config.host = _server_url(session, "only")
            config.ssl_ca_cert, config.cert_file, config.key_file = str(ca), str(cert), str(key)
            with kube_client.ApiClient(config) as api:
                namespace = kube_client.CoreV1Api(api).read_namespace("default")
            assert namespace.metadata is not None and namespace.metadata.name == "default"


# -- resources -------------------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settled(measure: Callable[[], int], limit: int) -> int:
    """`measure()` once it is at most `limit`, or its last value: grpc releases sockets asynchronously."""
    deadline = time.monotonic() + 5
    while (value := measure()) > limit and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    return value


def test_sessions_leave_no_threads_or_sockets(env: Env) -> None:
    def run() -> None:
        with env.join() as one:
            identity = one.impersonate(timedelta(minutes=5))
            assert one.host_ca_pems
            assert one.list_kube_clusters(identity, name="kube-0001")

    def client_threads() -> int:
        # The stand-in's gRPC servers share a thread pool that grows with concurrent calls and never
        # shrinks (ThreadPoolExecutor); it is not the client's.
        return sum(1 for t in threading.enumerate() if not t.name.startswith("teleport-standin-grpc"))

    run()  # warm up grpc's process-wide threads and descriptors
    gc.collect()
    threads, fds = client_threads(), _open_fds()
    for _ in range(3):
        run()
    assert _settled(client_threads, threads) <= threads
    assert _settled(_open_fds, fds) <= fds
