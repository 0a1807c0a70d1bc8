"""A proxy behind an L7 load balancer: detection, and join → impersonate → host CA → list through the
connection upgrade, against the Teleport stand-in in load-balancer mode and a signing moto STS."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from botocore.credentials import Credentials
from kubernetes import client as kube_client

from standins.aws import ACCOUNT_ID, REGION
from standins.stack import ROLE_NAME
from standins.teleport import TeleportStandin
from teleport_argocd.errors import ProxyError
from teleport_argocd.model import KubeEndpoint
from teleport_argocd.teleport import BotKeeper, JoinSettings, TeleportSession, find_proxy, join
from teleport_argocd.teleport.upgrade import ENV_VAR

ALLOWED_ARN = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE_NAME}/*"
NEW_JOIN = "/teleport.join.v1.JoinService/Join"
LEGACY_JOIN = "/proto.JoinService/RegisterUsingIAMMethod"


@dataclass
class Env:
    teleport: TeleportStandin
    credentials: Credentials

    def join(self, **kwargs: object) -> TeleportSession:
        return join(
            self.teleport.proxy_addr,
            "argo-token",
            credentials=self.credentials,
            region=REGION,
            ca_pem=self.teleport.web_ca_pem,
            bot_ttl=timedelta(hours=1),
            **kwargs,  # type: ignore[arg-type]
        )


def _standin(sts_endpoint: str, **options: bool) -> TeleportStandin:
    teleport = TeleportStandin(sts_endpoint=sts_endpoint, **options).start()
    teleport.add_role("kube-all", kubernetes_labels={"*": "*"})
    teleport.add_bot("argo", roles=["kube-all"])
    teleport.add_iam_token(
        "argo-token", bot_name="argo", allow=[{"aws_account": ACCOUNT_ID, "aws_arn": ALLOWED_ARN}]
    )
    for i in range(3):
        teleport.add_kube_cluster(f"kube-{i}", labels={"env": "prod" if i else "dev"})
    return teleport


@pytest.fixture(scope="module")
def env(credentials: tuple[str, Credentials]) -> Iterator[Env]:
    teleport = _standin(credentials[0], behind_l7_lb=True, kube_listener=True)
    try:
        yield Env(teleport, credentials[1])
    finally:
        teleport.stop()


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_detects_the_load_balancer(env: Env) -> None:
    info = find_proxy(env.teleport.proxy_addr, ca_pem=env.teleport.web_ca_pem)
    assert info.conn_upgrade and info.tls_routing
    # Argo CD cannot go through the load balancer: it gets the dedicated Kubernetes listener.
    assert info.kube == KubeEndpoint(f"https://{env.teleport.kube_addr}")


def test_detects_a_direct_proxy(credentials: tuple[str, Credentials]) -> None:
    teleport = TeleportStandin(sts_endpoint=credentials[0]).start()
    try:
        info = find_proxy(teleport.proxy_addr, ca_pem=teleport.web_ca_pem)
        assert not info.conn_upgrade
        assert info.kube.server_name == "kube-teleport-proxy-alpn.teleport.cluster.local"
    finally:
        teleport.stop()


def test_the_whole_path_through_the_upgrade(env: Env, tmp_path: Path) -> None:
    upgrades_before, joins_before = len(env.teleport.conn_upgrades), env.teleport.rpc_calls[NEW_JOIN]
    with env.join() as session:
        assert session.proxy.conn_upgrade
        assert session.bot.bot_name == "argo"
        identity = session.impersonate(timedelta(minutes=10))
        assert identity.roles == ("kube-all",)
        assert session.host_ca_pems == [env.teleport.host_ca_pem]
        names = sorted(c.name for c in session.list_kube_clusters(identity, labels={"env": "prod"}))
        assert names == ["kube-1", "kube-2"]
        # The Secret's credentials work against the dedicated Kubernetes listener, without an SNI.
        ca, cert, key = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
        ca.write_bytes(b"\n".join(session.host_ca_pems))
        cert.write_bytes(identity.cert_pem)
        key.write_bytes(identity.key_pem)
        config = kube_client.Configuration()
        config.host = f"{session.proxy.kube.base_url}/v1/teleport/cm9vdA/a3ViZS0x"
        config.ssl_ca_cert, config.cert_file, config.key_file = str(ca), str(cert), str(key)
        with kube_client.ApiClient(config) as api:
            assert kube_client.CoreV1Api(api).read_namespace("default").metadata.name == "default"  # type: ignore[union-attr]
    assert env.teleport.rpc_calls[NEW_JOIN] == joins_before + 1
    # One upgraded connection for the join and one per identity for Auth, each with `alpn-ping`,
    # and each answered the proxy's ping.
    upgrades = env.teleport.conn_upgrades[upgrades_before:]
    assert upgrades == ["alpn-ping"] * 3
    assert env.teleport.upgrade_pongs >= len(env.teleport.conn_upgrades)


def test_legacy_join_through_the_upgrade(env: Env) -> None:
    env.teleport.new_join_enabled = False
    try:
        before = env.teleport.rpc_calls[LEGACY_JOIN]
        with env.join() as session:
            assert session.join_protocol == "proto.JoinService"
        assert env.teleport.rpc_calls[LEGACY_JOIN] == before + 1
    finally:
        env.teleport.new_join_enabled = True


def test_keeper_rejoins_through_the_upgrade_without_testing_again(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    keeper = BotKeeper()
    settings = JoinSettings(
        env.teleport.proxy_addr,
        "argo-token",
        REGION,
        ca_pem=env.teleport.web_ca_pem,
        bot_ttl=timedelta(hours=1),
    )
    with keeper.session(settings, env.credentials) as first:
        instance = first.bot_instance_id
    # The kept answer wins over anything the environment would say now.
    monkeypatch.setenv(ENV_VAR, "false")
    with keeper.session(settings, env.credentials, valid_for=timedelta(hours=2)) as second:
        assert second.proxy.conn_upgrade
        assert second.bot_instance_id == instance  # the rejoin presented the bot certificate to Auth
        assert second.list_kube_clusters(second.impersonate(timedelta(minutes=5)), name="kube-0")


def test_env_override_decides_without_testing(
    env: Env, credentials: tuple[str, Credentials], monkeypatch: pytest.MonkeyPatch
) -> None:
    teleport = TeleportStandin(sts_endpoint=credentials[0], kube_listener=True).start()
    try:
        monkeypatch.setenv(ENV_VAR, f"0,{teleport.proxy_addr}=yes")
        assert find_proxy(teleport.proxy_addr, ca_pem=teleport.web_ca_pem).conn_upgrade
        assert not find_proxy(env.teleport.proxy_addr, ca_pem=env.teleport.web_ca_pem).conn_upgrade
    finally:
        teleport.stop()


def test_without_a_kubernetes_listener_the_run_fails_with_the_reason(
    credentials: tuple[str, Credentials],
) -> None:
    teleport = _standin(credentials[0], behind_l7_lb=True)
    try:
        with pytest.raises(ProxyError, match=r"behind a TLS-terminating load balancer .* kube_public_addr"):
            Env(teleport, credentials[1]).join()
        assert teleport.rpc_calls[NEW_JOIN] == 0  # refused before joining: no bot instance wasted
    finally:
        teleport.stop()


def test_sessions_leave_no_threads_or_sockets(env: Env) -> None:
    def run() -> None:
        with env.join() as one:
            assert one.list_kube_clusters(one.impersonate(timedelta(minutes=5)), name="kube-1")

    run()
    threads, fds = threading.active_count(), len(os.listdir("/proc/self/fd"))
    for _ in range(2):
        run()
    deadline = time.monotonic() + 5
    while (threading.active_count() > threads or len(os.listdir("/proc/self/fd")) > fds) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert threading.active_count() <= threads
    assert len(os.listdir("/proc/self/fd")) <= fds
