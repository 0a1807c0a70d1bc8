"""End to end with the Teleport proxy behind an L7 load balancer: the real handlers reconcile through the
proxy's connection upgrade, and Argo CD's Secrets point at the proxy's dedicated Kubernetes listener."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as kube_client

from standins.handlers import event, invoke, unload_handlers
from standins.stack import ARGOCD_NAMESPACE, LocalStack
from teleport_argocd.argocd import secret_name
from teleport_argocd.teleport.upgrade import ENV_VAR


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)


def _running(**options: bool) -> Iterator[LocalStack]:
    with LocalStack(teleport_behind_l7_lb=True, **options) as stack, stack.environment():
        unload_handlers()
        yield stack


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    yield from _running(teleport_kube_listener=True)


@pytest.fixture
def stack_without_kube_listener() -> Iterator[LocalStack]:
    yield from _running()


def _secret_data(stack: LocalStack, kube_cluster: str) -> dict[str, str]:
    assert stack.kube is not None
    secret = stack.kube.secret(ARGOCD_NAMESPACE, secret_name("teleport.argocd-cluster", "root", kube_cluster))
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_a_reconcile_passes_through_the_connection_upgrade(stack: LocalStack, tmp_path: Path) -> None:
    assert stack.teleport is not None
    result = invoke("renew", event("schedule.json"))

    [output] = result["outputs"]
    assert output["status"] == "completed"
    assert sorted(c["kube_cluster"] for c in output["clusters"]) == ["prod-eu-west", "prod-us-east"]
    assert {c["action"] for c in output["clusters"]} == {"created"}
    # Every Teleport connection went through /webapi/connectionupgrade: the join, and Auth per identity.
    assert stack.teleport.conn_upgrades == ["alpn-ping"] * 3

    data = _secret_data(stack, "prod-us-east")
    assert data["server"] == f"https://{stack.teleport.kube_addr}/v1/teleport/cm9vdA/cHJvZC11cy1lYXN0"
    tls: dict[str, Any] = json.loads(data["config"])["tlsClientConfig"]
    assert "serverName" not in tls  # the dedicated listener needs no SNI, as without TLS routing
    # What Argo CD does with the Secret: reach the cluster at that address with those credentials.
    files = {}
    for key in ("caData", "certData", "keyData"):
        files[key] = tmp_path / key
        files[key].write_bytes(base64.b64decode(tls[key]))
    config = kube_client.Configuration()
    config.host = data["server"]
    config.ssl_ca_cert, config.cert_file, config.key_file = (
        str(files["caData"]),
        str(files["certData"]),
        str(files["keyData"]),
    )
    with kube_client.ApiClient(config) as api:
        namespace = kube_client.CoreV1Api(api).read_namespace("default")
    assert namespace.metadata is not None and namespace.metadata.name == "default"
    assert any(r.kube_cluster == "prod-us-east" for r in stack.teleport.kube_requests)


def test_without_a_kubernetes_listener_the_run_fails_with_the_reason(
    stack_without_kube_listener: LocalStack,
) -> None:
    stack = stack_without_kube_listener
    assert stack.teleport is not None and stack.kube is not None
    result = invoke("renew", event("schedule.json"))

    text = json.dumps(result)
    assert "behind a TLS-terminating load balancer" in text
    assert "kube_public_addr" in text
    assert stack.teleport.bot_instances() == []  # refused before joining
    assert not [r for r in stack.kube.requests if r.verb in ("create", "update", "patch")]
