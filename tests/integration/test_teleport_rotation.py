"""CA rotations: the stand-in moves its host and user CAs through Teleport's phases (`lib/auth/rotate.go`),
and the warm keeper follows them with one bot instance, reading the CAs every session.

The stand-in has a module of its own here: a rotation changes the cluster's CAs for everyone using it.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from botocore.credentials import Credentials
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from standins.aws import ACCOUNT_ID, REGION
from standins.teleport import TeleportStandin
from standins.teleport.rotation import RotationError
from teleport_argocd.errors import AuthCallError
from teleport_argocd.teleport import BotKeeper, JoinSettings
from teleport_argocd.teleport.auth import GET_CERT_AUTHORITIES, AuthClient
from teleport_argocd.teleport.tls import load_client_identity

KUBE_SNI = "kube-teleport-proxy-alpn.teleport.cluster.local"
AUTH_SNI = "726f6f74.teleport.cluster.local"  # hex("root")
ROUTE = "/v1/teleport/cm9vdA/cHJvZA"  # root / prod


@dataclass
class Env:
    teleport: TeleportStandin
    credentials: Credentials

    def settings(self) -> JoinSettings:
        return JoinSettings(
            proxy_addr=self.teleport.proxy_addr,
            token="argo-token",
            region=REGION,
            ca_pem=self.teleport.web_ca_pem,
            bot_ttl=timedelta(hours=2),
        )

    def instances(self) -> set[str]:
        return {i.id for i in self.teleport.bot_instances()}


@pytest.fixture
def env(credentials: tuple[str, Credentials]) -> Iterator[Env]:
    sts_endpoint, creds = credentials
    with TeleportStandin(sts_endpoint=sts_endpoint) as teleport:
        teleport.add_role("kube-all", kubernetes_labels={"*": ["*"]})
        teleport.add_bot("argo", roles=["kube-all"])
        teleport.add_iam_token("argo-token", bot_name="argo", allow=[{"aws_account": ACCOUNT_ID}])
        teleport.add_kube_cluster("prod", labels={"env": "prod"})
        yield Env(teleport, creds)


def _issued_by(cert_der: bytes, ca_pem: bytes) -> bool:
    try:
        x509.load_der_x509_certificate(cert_der).verify_directly_issued_by(
            x509.load_pem_x509_certificate(ca_pem)
        )
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _presented(teleport: TeleportStandin, sni: str, alpn: list[str], creds: tuple[bytes, bytes]) -> bytes:
    """The certificate an endpoint presents (read without verifying it)."""
    host, port = teleport.proxy_addr.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.set_alpn_protocols(alpn)
    load_client_identity(ctx, *creds)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=sni) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _kube_version(teleport: TeleportStandin, ca_pems: list[bytes], creds: tuple[bytes, bytes]) -> int:
    """`GET /version` as Argo CD makes it: verify the proxy with `ca_pems`, present `creds`."""
    host, port = teleport.proxy_addr.rsplit(":", 1)
    ctx = ssl.create_default_context(cadata=b"".join(ca_pems).decode())
    load_client_identity(ctx, *creds)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.sock = ctx.wrap_socket(
        socket.create_connection((host, int(port)), timeout=5), server_hostname=KUBE_SNI
    )
    try:
        conn.request("GET", ROUTE + "/version", headers={"Accept": "application/json"})
        response = conn.getresponse()
        json.loads(response.read())
        return response.status
    finally:
        conn.close()


# -- the stand-in --------------------------------------------------------------------------------


def test_each_phase_has_teleports_keys_and_server_certificates(env: Env) -> None:
    teleport = env.teleport
    original_host, original_user = teleport.host_ca_pem, teleport.user_ca_pem
    old_client = teleport.issue_user_cert("alice", ["kube-all"])
    expected = [
        # phase, host (active, additional), whose certificates servers present, user signer
        ("init", ("old", "new"), "old", "old"),
        ("update_clients", ("new", "old"), "old", "new"),
        ("update_servers", ("new", "old"), "new", "new"),
        ("standby", ("new", None), "new", "new"),
    ]
    teleport.rotate("init")
    new_host = next(p for p in teleport.trusted_ca_pems("host") if p != original_host)
    new_user = next(p for p in teleport.trusted_ca_pems("user") if p != original_user)
    names = {"old": original_host, "new": new_host}
    users = {"old": original_user, "new": new_user}
    for i, (phase, (active, additional), serving, signer) in enumerate(expected):
        if i:
            teleport.rotate(phase)
        assert teleport.rotation_phase("host") == teleport.rotation_phase("user") == phase
        want = [names[active]] + ([names[additional]] if additional else [])
        assert teleport.trusted_ca_pems("host") == want
        assert teleport.serving_host_ca_pem() == names[serving]
        assert teleport.user_ca_pem == users[signer]
        client = teleport.issue_user_cert("bob", ["kube-all"])
        for sni, alpn in ((KUBE_SNI, ["http/1.1"]), (AUTH_SNI, [f"teleport-auth@{AUTH_SNI}", "h2"])):
            assert _issued_by(_presented(teleport, sni, alpn, client), names[serving]), (phase, sni)
        # A client certificate from the old user key is accepted until the final standby drops it.
        if phase != "standby":
            assert _kube_version(teleport, want, old_client) == 200
        else:
            with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
                _kube_version(teleport, want, old_client)
        assert _kube_version(teleport, want, client) == 200


def test_rollback_and_refused_transitions(env: Env) -> None:
    teleport = env.teleport
    original = teleport.host_ca_pem
    with pytest.raises(RotationError, match="from 'standby'"):
        teleport.rotate("update_servers")
    teleport.rotate("init", ca_type="host")
    assert teleport.rotation_phase("user") == "standby"  # a host-only rotation leaves the user CA be
    teleport.rotate("update_clients", ca_type="host")
    with pytest.raises(RotationError):
        teleport.rotate("standby", ca_type="host")
    teleport.rotate("update_servers", ca_type="host")
    assert teleport.serving_host_ca_pem() != original
    teleport.rotate("rollback", ca_type="host")
    assert teleport.serving_host_ca_pem() == teleport.host_ca_pem == original
    assert teleport.trusted_ca_pems("host")[0] == original and len(teleport.trusted_ca_pems("host")) == 2
    teleport.rotate("standby", ca_type="host")
    assert teleport.trusted_ca_pems("host") == [original]


# -- the keeper, warm through rotations ------------------------------------------------------------


ROTATIONS = [
    *(("all", p) for p in ("init", "update_clients", "update_servers", "standby")),
    *(("host", p) for p in ("init", "update_clients", "update_servers", "standby")),
    *(("host", p) for p in ("init", "update_clients", "update_servers", "rollback", "standby")),
]


def test_a_warm_keeper_follows_rotations_with_one_instance(env: Env) -> None:
    teleport = env.teleport
    keeper = BotKeeper()
    with keeper.session(env.settings(), env.credentials) as first:
        assert first.host_ca_pems == teleport.trusted_ca_pems("host")
    instance = first.bot_instance_id
    bot_cert = first.bot.cert_pem
    reissued = []
    for ca_type, phase in ROTATIONS:
        teleport.rotate(phase, ca_type=ca_type)
        with keeper.session(env.settings(), env.credentials) as session:
            # caData is what tbot writes in this phase: every trusted host CA certificate.
            assert session.host_ca_pems == teleport.trusted_ca_pems("host"), phase
            assert session.authorities.host.phase == phase
            identity = session.impersonate(timedelta(minutes=20))
            assert [c.name for c in session.list_kube_clusters(identity)] == ["prod"]
            creds = (identity.cert_pem, identity.key_pem)
            assert _kube_version(teleport, session.host_ca_pems, creds) == 200
            assert session.bot_instance_id == instance
            if session.bot.cert_pem != bot_cert:
                bot_cert = session.bot.cert_pem
                reissued.append((ca_type, phase))
    # Reissued only when the user CA key that signed it stopped signing; never a new instance.
    assert reissued == [("all", "update_clients")]
    assert env.instances() == {instance}


def test_a_warm_keeper_reissues_at_a_user_ca_rollback(env: Env) -> None:
    teleport = env.teleport
    keeper = BotKeeper()
    with keeper.session(env.settings(), env.credentials) as first:
        pass
    reissued = []
    for phase in ("init", "update_clients", "rollback", "standby"):
        teleport.rotate(phase, ca_type="user")
        with keeper.session(env.settings(), env.credentials) as session:
            session.impersonate(timedelta(minutes=5))
            assert session.bot_instance_id == first.bot_instance_id
            if phase in ("update_clients", "rollback"):
                reissued.append(session.bot.cert_pem)
    assert len(set(reissued)) == 2 and first.bot.cert_pem not in reissued
    assert env.instances() == {first.bot_instance_id}


def test_a_keeper_that_missed_the_phases_joins_afresh(env: Env) -> None:
    teleport = env.teleport
    keeper = BotKeeper()
    with keeper.session(env.settings(), env.credentials) as first:
        pass
    for phase in ("init", "update_clients", "update_servers"):
        teleport.rotate(phase, ca_type="host")
    with keeper.session(env.settings(), env.credentials) as session:
        assert session.host_ca_pems == teleport.trusted_ca_pems("host")
        session.impersonate(timedelta(minutes=5))
    # Auth's new certificate cannot be verified with the old CA: a fresh join, a new instance.
    assert session.bot_instance_id != first.bot_instance_id


def test_a_failed_ca_read_of_a_kept_bot_fails_the_session_and_leaves_no_tunnel(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    keeper = BotKeeper()
    with keeper.session(env.settings(), env.credentials):
        pass

    def unavailable(self: AuthClient, cluster_name: str) -> None:
        raise AuthCallError(GET_CERT_AUTHORITIES, "injected", code="UNAVAILABLE")

    monkeypatch.setattr(AuthClient, "cert_authorities", unavailable)
    tunnels = sum(1 for t in threading.enumerate() if t.name == "teleport-tunnel")
    with pytest.raises(AuthCallError, match="injected"):
        keeper.session(env.settings(), env.credentials)
    assert sum(1 for t in threading.enumerate() if t.name == "teleport-tunnel") == tunnels
