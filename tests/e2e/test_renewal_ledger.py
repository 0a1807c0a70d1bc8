"""End to end: renewals recorded in the renewal ledgers (state.renewals) through the real handlers.

A forced reload renews every certificate and changes nothing else, so it rewrites no registration
item; a reader in another execution environment (no warm copy) still finds, for each cluster, the
certificate and resourceVersion the Secret in the Kubernetes stand-in holds.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography import x509

from standins.handlers import event, invoke
from standins.stack import ARGOCD_NAMESPACE, STATE_TABLE, LocalStack
from teleport_argocd.argocd import secret_name
from teleport_argocd.state import StateStore
from teleport_argocd.state import registry as state_registry

PROD = ("prod-eu-west", "prod-us-east")  # what the default output selects from the demo clusters


def items(stack: LocalStack, prefix: str) -> dict[str, dict[str, Any]]:
    pages = stack.aws.client("dynamodb").get_paginator("scan").paginate(TableName=STATE_TABLE)
    found = [item for page in pages for item in page["Items"]]
    return {i["sk"]["S"]: i for i in found if i["sk"]["S"].startswith(prefix)}


def secret(stack: LocalStack, cluster: str) -> dict[str, Any]:
    assert stack.kube is not None
    found = stack.kube.secret(ARGOCD_NAMESPACE, secret_name("teleport.argocd-cluster", "root", cluster))
    assert found is not None, cluster
    return found


def certificate_pem(found: dict[str, Any]) -> bytes:
    config = json.loads(base64.b64decode(found["data"]["config"]))
    return base64.b64decode(config["tlsClientConfig"]["certData"])


def test_a_forced_reload_rewrites_no_registration_and_a_cold_reader_sees_what_each_secret_holds(
    stack: LocalStack,
) -> None:
    first = invoke("reload", event("reload.json"))
    assert [o["status"] for o in first["outputs"]] == ["completed"], first
    registered = items(stack, "reg#")
    held = {cluster: certificate_pem(secret(stack, cluster)) for cluster in PROD}

    again = invoke("reload", event("reload.json"))  # warm: the same process, every certificate renewed

    assert again["outputs"][0]["counts"]["updated"] == len(PROD), again
    assert items(stack, "reg#") == registered  # no registration item written
    entries = {k for ledger in items(stack, "renewed#").values() for k in ledger["entries"]["M"]}
    assert {f"root#{cluster}" for cluster in PROD} <= entries
    state_registry._REGISTRY.clear()  # another execution environment: nothing kept warm
    state_registry._LEDGERS.clear()
    regs = {
        r.kube_cluster: r
        for r in StateStore(STATE_TABLE, client=stack.aws.client("dynamodb")).registrations("production")
    }
    for cluster in PROD:
        found = secret(stack, cluster)
        pem = certificate_pem(found)
        assert pem != held[cluster], cluster
        reg = regs[cluster]
        assert reg.cert_id == hashlib.sha256(pem).hexdigest()[:32], cluster
        assert reg.cert_expires == x509.load_pem_x509_certificate(pem).not_valid_after_utc, cluster
        assert reg.version is not None
        assert reg.version.resource_version == found["metadata"]["resourceVersion"], cluster
