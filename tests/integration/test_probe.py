"""The connection check against the Teleport stand-in's Kubernetes proxy, from Secrets rendered as the
reconcile renders them: each outcome (ok, forbidden, unreachable, tls-error) from the failure that
causes it in practice, and never a key in a message."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from botocore.credentials import Credentials

from standins.teleport import TeleportStandin
from standins.teleport.ca import CertAuthority
from teleport_argocd.argocd import RenderedSecret, render_secret
from teleport_argocd.config import load_config
from teleport_argocd.model import KubeCluster, KubeEndpoint
from teleport_argocd.probe import FORBIDDEN, OK, TLS_ERROR, UNREACHABLE, check_connection
from teleport_argocd.teleport.identity import identity_from_certificate

KUBE_SNI = "kube-teleport-proxy-alpn.teleport.cluster.local"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def teleport(credentials: tuple[str, Credentials]) -> Iterator[TeleportStandin]:
    with TeleportStandin(sts_endpoint=credentials[0]) as standin:
        standin.add_role("prod-only", kubernetes_labels={"env": "prod"})
        standin.add_role("no-groups", kubernetes_labels={"env": "prod"}, kubernetes_groups=())
        standin.add_kube_cluster("prod", labels={"env": "prod"})
        standin.add_kube_cluster("dev", labels={"env": "dev"})
        yield standin


def _secret(
    teleport: TeleportStandin,
    cluster: str,
    *,
    ca_pems: list[bytes] | None = None,
    base_url: str = "",
    server_name: str = KUBE_SNI,
    roles: tuple[str, ...] | list[str] = ("prod-only",),
) -> RenderedSecret:
    document = {
        "teleport": {"proxy_addr": teleport.proxy_addr, "join_token": "t"},
        "destination": {"eks": {"cluster_name": "argocd", "region": "eu-west-1"}},
        "outputs": [{"type": "kubernetes/argo-cd", "name": "main", "selectors": [{"name": cluster}]}],
    }
    [output] = load_config(document, env={}).outputs
    cert, key = teleport.issue_user_cert("bot-argocd", list(roles))
    return render_secret(
        output,
        KubeCluster(cluster, {}),
        teleport_cluster=teleport.cluster_name,
        endpoint=KubeEndpoint(base_url or f"https://{teleport.proxy_addr}", server_name),
        identity=identity_from_certificate(cert, key),
        ca_pems=ca_pems if ca_pems is not None else teleport.trusted_ca_pems("host"),
        now=NOW,
        version="test",
    )


def test_a_secret_that_connects_is_ok(teleport: TeleportStandin) -> None:
    before = len(teleport.kube_requests)
    check = check_connection(_secret(teleport, "prod"), NOW)
    assert (check.status, check.at, check.message) == (OK, NOW, "")
    # It asked what Argo CD asks first, through the Secret's path to the cluster.
    assert [(r.kube_cluster, r.path) for r in teleport.kube_requests[before:]] == [("prod", "/version")]


def test_a_role_without_kubernetes_groups_is_forbidden(teleport: TeleportStandin) -> None:
    # Teleport answers GET /version's refusals with HTTP 500 and plain text, not a 403 Status.
    check = check_connection(_secret(teleport, "prod", roles=["no-groups"]), NOW)
    assert check.status == FORBIDDEN
    assert check.message.startswith("HTTP 500: Your user's Teleport role does not allow Kubernetes access")


def test_a_locked_identity_is_forbidden(teleport: TeleportStandin) -> None:
    teleport.lock("probe-incident", role="prod-only", message="investigating")
    try:
        check = check_connection(_secret(teleport, "prod"), NOW)
    finally:
        teleport.unlock("probe-incident")
    assert check.status == FORBIDDEN and "lock targeting" in check.message


def test_a_cluster_the_role_does_not_allow_is_unreachable(teleport: TeleportStandin) -> None:
    # Teleport's own words for it: the cluster is "not found" to this identity.
    check = check_connection(_secret(teleport, "dev"), NOW)
    assert check.status == UNREACHABLE
    assert check.message == 'HTTP 500: kubernetes cluster "dev" not found'


def test_a_cluster_whose_agent_is_down_is_unreachable(teleport: TeleportStandin) -> None:
    teleport.set_agent_down("prod")
    try:
        check = check_connection(_secret(teleport, "prod"), NOW)
    finally:
        teleport.set_agent_down("prod", False)
    assert check.status == UNREACHABLE and check.message.startswith("HTTP 504: failed to dial")


def test_a_cluster_teleport_does_not_serve_is_unreachable(teleport: TeleportStandin) -> None:
    check = check_connection(_secret(teleport, "gone"), NOW)
    assert check.status == UNREACHABLE and check.message == 'HTTP 500: Kubernetes cluster "gone" not found'


def test_a_proxy_that_does_not_answer_is_unreachable(teleport: TeleportStandin) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    check = check_connection(_secret(teleport, "prod", base_url=f"https://localhost:{port}"), NOW)
    assert check.status == UNREACHABLE and check.message


def test_a_proxy_that_does_not_answer_costs_one_timeout_per_run(teleport: TeleportStandin) -> None:
    accepted: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.settimeout(5)
        port = silent.getsockname()[1]
        first, second = (_secret(teleport, c, base_url=f"https://localhost:{port}") for c in ("prod", "dev"))
        # The same run's identity: both Secrets share caData, certificate and key.
        second = replace(second, manifest={**second.manifest, "data": {**second.manifest["data"]}})
        second.manifest["data"]["config"] = first.manifest["data"]["config"]
        thread = threading.Thread(target=lambda: accepted.append(silent.accept()[0]))
        thread.start()
        one = check_connection(first, NOW, timeout=0.5)
        thread.join()
        two = check_connection(second, NOW, timeout=0.5)
        for conn in accepted:
            conn.close()
    assert one.status == two.status == UNREACHABLE
    assert "not tried again" in two.message and "not tried again" not in one.message
    assert len(accepted) == 1


def test_a_ca_that_does_not_verify_the_proxy_is_a_tls_error(teleport: TeleportStandin) -> None:
    stranger = CertAuthority(teleport.cluster_name).cert_pem
    check = check_connection(_secret(teleport, "prod", ca_pems=[stranger]), NOW)
    assert check.status == TLS_ERROR and "certificate verify failed" in check.message
    assert "PRIVATE KEY" not in check.message and "CERTIFICATE-----" not in check.message


def test_a_wrong_server_name_is_a_tls_error(teleport: TeleportStandin) -> None:
    check = check_connection(_secret(teleport, "prod", server_name="elsewhere.example.com"), NOW)
    assert check.status == TLS_ERROR


def test_an_unusable_tls_configuration_is_a_tls_error(teleport: TeleportStandin) -> None:
    check = check_connection(_secret(teleport, "prod", ca_pems=[b"not a certificate"]), NOW)
    assert check.status == TLS_ERROR and "unusable" in check.message
