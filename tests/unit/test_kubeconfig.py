"""Kubeconfigs from cluster Secrets, kubeconfigs into connection settings, and the update body."""

from __future__ import annotations

import base64
import json
import ssl
from typing import Any

import pytest
import trustme

from teleport_argocd.destination.kubeconfig import cluster_access, kubeconfig_from_secret
from teleport_argocd.destination.read_first import merge
from teleport_argocd.errors import KubeconfigError
from teleport_argocd.model import MANAGED_KEYS_ANNOTATION, TBOT_VERSION_ANNOTATION

CA, CERT, KEY = b"-----CA-----\n", b"-----CERT-----\n", b"-----KEY-----\n"


def b64(value: bytes | str) -> str:
    return base64.b64encode(value.encode() if isinstance(value, str) else value).decode()


def secret(config: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "teleport.argocd-cluster.0123456789abcdef", "namespace": "argocd"},
        "data": {
            "name": b64("root-kube-1"),
            "server": b64("https://teleport.example.com:443/v1/teleport/cm9vdA/a3ViZS0x"),
            "config": b64(json.dumps(config, separators=(",", ":"))),
        },
    }


TLS_CONFIG = {
    "tlsClientConfig": {
        "caData": b64(CA),
        "certData": b64(CERT),
        "keyData": b64(KEY),
        "serverName": "kube.teleport.cluster.local",
    }
}


def test_kubeconfig_from_secret() -> None:
    assert kubeconfig_from_secret(secret(TLS_CONFIG)) == {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "root-kube-1",
                "cluster": {
                    "server": "https://teleport.example.com:443/v1/teleport/cm9vdA/a3ViZS0x",
                    "certificate-authority-data": b64(CA),
                    "tls-server-name": "kube.teleport.cluster.local",
                },
            }
        ],
        "users": [
            {
                "name": "root-kube-1",
                "user": {"client-certificate-data": b64(CERT), "client-key-data": b64(KEY)},
            }
        ],
        "contexts": [{"name": "root-kube-1", "context": {"cluster": "root-kube-1", "user": "root-kube-1"}}],
        "current-context": "root-kube-1",
    }


def test_kubeconfig_from_secret_data_with_a_token() -> None:
    data = secret({"bearerToken": "t0k3n", "tlsClientConfig": {"insecure": True}})["data"]
    kubeconfig = kubeconfig_from_secret(data)
    assert kubeconfig["users"][0]["user"] == {"token": "t0k3n"}
    assert kubeconfig["clusters"][0]["cluster"]["insecure-skip-tls-verify"] is True


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (secret({"execProviderConfig": {"command": "argocd-k8s-auth"}}), "uses execProviderConfig"),
        ({"data": {"name": b64("x")}}, "no data key 'server'"),
        (
            {"data": {"name": b64("x"), "server": b64("https://x"), "config": b64("{not json")}},
            "not an Argo CD",
        ),
    ],
)
def test_kubeconfig_from_secret_refuses(manifest: dict[str, Any], expected: str) -> None:
    with pytest.raises(KubeconfigError, match=expected):
        kubeconfig_from_secret(manifest)


def test_cluster_access_with_a_client_certificate() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("client.example.com")
    tls = {
        "caData": b64(ca.cert_pem.bytes()),
        "certData": b64(leaf.cert_chain_pems[0].bytes()),
        "keyData": b64(leaf.private_key_pem.bytes()),
        "serverName": "kube.teleport.cluster.local",
    }

    access = cluster_access(kubeconfig_from_secret(secret({"tlsClientConfig": tls})), context=None)

    assert access.server == "https://teleport.example.com:443/v1/teleport/cm9vdA/a3ViZS0x"
    assert access.server_name == "kube.teleport.cluster.local"
    assert access.token is None
    assert access.ssl_context.verify_mode == ssl.CERT_REQUIRED and access.ssl_context.check_hostname
    assert access.ssl_context.get_ca_certs(binary_form=True) == [
        ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())
    ]
    assert "KEY" not in repr(access) and "BEGIN" not in repr(access)


def test_cluster_access_refuses_a_key_that_does_not_match() -> None:
    ca = trustme.CA()
    one, other = ca.issue_cert("a.example.com"), ca.issue_cert("b.example.com")
    user = {
        "client-certificate-data": b64(one.cert_chain_pems[0].bytes()),
        "client-key-data": b64(other.private_key_pem.bytes()),
    }
    with pytest.raises(KubeconfigError, match="unusable TLS material") as caught:
        cluster_access(
            kubeconfig(user, {"certificate-authority-data": b64(ca.cert_pem.bytes())}), context=None
        )
    assert "PRIVATE KEY" not in str(caught.value)


def kubeconfig(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "current-context": "ctx",
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "clusters": [{"name": "c", "cluster": {"server": "https://10.0.0.1:6443/", **(cluster or {})}}],
        "users": [{"name": "u", "user": user}],
    }


def test_cluster_access_with_a_token_and_no_verification() -> None:
    access = cluster_access(kubeconfig({"token": "t0k3n"}, {"insecure-skip-tls-verify": True}), context="ctx")
    assert access.server == "https://10.0.0.1:6443"
    assert access.token is not None and access.token() == "t0k3n"
    assert "t0k3n" not in repr(access)
    assert access.ssl_context.verify_mode == ssl.CERT_NONE and not access.ssl_context.check_hostname


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (kubeconfig({"exec": {"command": "aws"}}), "uses exec, which needs a binary"),
        (kubeconfig({"auth-provider": {"name": "oidc"}}), "uses auth-provider"),
        (
            kubeconfig({"client-certificate": "/home/me/.kube/me.crt"}),
            "refers to a file \\(client-certificate\\)",
        ),
        (
            kubeconfig({}, {"certificate-authority": "/etc/ca.pem"}),
            "refers to a file \\(certificate-authority\\)",
        ),
        (kubeconfig({"client-key-data": "a2V5"}), "without the other"),
        ({**kubeconfig({}), "current-context": "other"}, "no context named 'other'"),
        ({"contexts": []}, "missing 'current-context'"),
    ],
    ids=["exec", "auth-provider", "cert-file", "ca-file", "key-alone", "unknown-context", "no-context"],
)
def test_cluster_access_refuses(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(KubeconfigError, match=expected):
        cluster_access(config, context=None)


def test_merge_keeps_foreign_metadata_drops_what_we_no_longer_own_and_replaces_data() -> None:
    owned = {"labels": ["team", "old-label"], "annotations": ["teleport.dev/updated", "example.com/gone"]}
    current = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "s",
            "namespace": "argocd",
            "uid": "u-1",
            "resourceVersion": "41",
            "finalizers": ["example.com/keep"],
            "managedFields": [{"manager": "argocd-server"}],
            "labels": {"argocd.argoproj.io/kubernetes-version": "1.33", "team": "old", "old-label": "x"},
            "annotations": {
                "argocd.argoproj.io/refresh": "2026-11-21T10:00:00Z",
                "teleport.dev/updated": "t1",
                "example.com/gone": "x",
                TBOT_VERSION_ANNOTATION: "18.2.0",
                MANAGED_KEYS_ANNOTATION: json.dumps(owned),
            },
        },
        "data": {"shard": b64("1"), "config": b64("old")},
    }
    rendered = {
        "type": "Opaque",
        "metadata": {
            "name": "s",
            "namespace": "argocd",
            "labels": {"team": "new"},
            "annotations": {"teleport.dev/updated": "t2", MANAGED_KEYS_ANNOTATION: "new"},
        },
        "data": {"config": b64("new")},
    }

    body = merge(current, rendered)

    assert body["metadata"]["resourceVersion"] == "41" and body["metadata"]["uid"] == "u-1"
    assert body["metadata"]["finalizers"] == ["example.com/keep"]
    assert "managedFields" not in body["metadata"]
    assert body["metadata"]["labels"] == {"argocd.argoproj.io/kubernetes-version": "1.33", "team": "new"}
    assert body["metadata"]["annotations"] == {
        "argocd.argoproj.io/refresh": "2026-11-21T10:00:00Z",
        "teleport.dev/updated": "t2",
        MANAGED_KEYS_ANNOTATION: "new",
    }
    assert body["data"] == {"config": b64("new")}
