"""Rendering Argo CD cluster Secrets byte-compatible with tbot (reference tbot-argocd.md §1.5, §1.10)."""

import base64
import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from teleport_argocd.argocd import (
    RenderedSecret,
    encode_path_component,
    render_secret,
    render_secrets,
    secret_name,
    server_url,
)
from teleport_argocd.config import OutputConfig, load_config
from teleport_argocd.errors import RenderError
from teleport_argocd.k8snames import label_value_problem, qualified_name_problem
from teleport_argocd.model import (
    DEFAULT_SECRET_NAME_PREFIX,
    MANAGED_KEYS_ANNOTATION,
    TBOT_VERSION_ANNOTATION,
    VERSION_ANNOTATION,
    Identity,
    KubeCluster,
    KubeEndpoint,
    is_reserved_annotation,
)

HOST_CA = b"-----BEGIN CERTIFICATE-----\nHOSTCA\n-----END CERTIFICATE-----\n"
CLIENT_CERT = b"-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n"
CLIENT_KEY = b"-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n"
NOW = datetime(2025, 7, 31, 13, 35, 15, 123456, tzinfo=UTC)
IDENTITY = Identity(
    cert_pem=CLIENT_CERT,
    key_pem=CLIENT_KEY,
    expires=NOW + timedelta(hours=1),
    username="bot-argo-bot",
    bot_name="argo-bot",
    cluster_name="root",
)
ENDPOINT = KubeEndpoint("https://127.0.0.1:3080", "kube-teleport-proxy-alpn.teleport.cluster.local")
KUBE_CLUSTER_1 = KubeCluster("kube-cluster-1", {"department": "engineering"})
RUN: dict[str, Any] = {
    "teleport_cluster": "root",
    "endpoint": ENDPOINT,
    "identity": IDENTITY,
    "ca_pems": [HOST_CA],
    "now": NOW,
    "version": "0.1.0",
}


def output(**settings: Any) -> OutputConfig:
    document: dict[str, Any] = {
        "teleport": {"proxy_addr": "teleport.example.com", "join_token": "t"},
        "destination": {"eks": {"cluster_name": "argocd", "region": "eu-west-1"}},
        "outputs": [{"type": "kubernetes/argo-cd", "selectors": [{"labels": {"department": "engineering"}}]}],
    }
    document["outputs"][0].update(settings)
    return load_config(document, env={}).outputs[0]


# tbot's end-to-end test configuration (argocd_output_test.go), with the templated labels.
E2E = {
    "secret_name_prefix": "my-cluster",
    "secret_namespace": "argocd",
    "secret_labels": {
        "team": "billing",
        "cluster-department": '{{ index .Labels "department" }}',
        "non-existent": '{{ index .Labels "non-existent" }}',
    },
    "secret_annotations": {"managed-by": "ninjas"},
    "project": "my-argo-project",
    "namespaces": ["prod", "dev"],
    "cluster_resources": True,
}


def decoded(secret: RenderedSecret) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret.manifest["data"].items()}


# -- name and URL vectors ------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "teleport_cluster", "kube_cluster", "expected"),
    [
        # The one pair published in Teleport's Argo CD guide.
        (
            DEFAULT_SECRET_NAME_PREFIX,
            "tp1.floppy.co",
            "boxofrad5",
            "teleport.argocd-cluster.e815df7b7588be17",
        ),
        (DEFAULT_SECRET_NAME_PREFIX, "root", "kube-cluster-1", "teleport.argocd-cluster.10dae90fc5854d7b"),
        ("my-cluster", "root", "kube-cluster-1", "my-cluster.10dae90fc5854d7b"),
        (DEFAULT_SECRET_NAME_PREFIX, "root", "kube-cluster-2", "teleport.argocd-cluster.5486b6ec0f048c01"),
        (
            DEFAULT_SECRET_NAME_PREFIX,
            "asteroid.earth",
            "interstellar",
            "teleport.argocd-cluster.547a78af021d24cd",
        ),
        (
            DEFAULT_SECRET_NAME_PREFIX,
            "teleport.example.com",
            "prod-eu-1",
            "teleport.argocd-cluster.b19f7c306917966c",
        ),
    ],
)
def test_secret_name(prefix: str, teleport_cluster: str, kube_cluster: str, expected: str) -> None:
    assert secret_name(prefix, teleport_cluster, kube_cluster) == expected


def test_secret_name_hashes_the_plain_concatenation() -> None:
    assert secret_name("p", "ro", "otkube-cluster-1") == secret_name("p", "root", "kube-cluster-1")


@pytest.mark.parametrize(
    ("teleport_cluster", "kube_cluster", "path"),
    [
        ("tp1.floppy.co", "boxofrad5", "/v1/teleport/dHAxLmZsb3BweS5jbw/Ym94b2ZyYWQ1"),
        ("root", "kube-cluster-1", "/v1/teleport/cm9vdA/a3ViZS1jbHVzdGVyLTE"),
        ("root", "kube-cluster-2", "/v1/teleport/cm9vdA/a3ViZS1jbHVzdGVyLTI"),
        ("asteroid.earth", "interstellar", "/v1/teleport/YXN0ZXJvaWQuZWFydGg/aW50ZXJzdGVsbGFy"),
        ("teleport.example.com", "prod-eu-1", "/v1/teleport/dGVsZXBvcnQuZXhhbXBsZS5jb20/cHJvZC1ldS0x"),
    ],
)
def test_server_url(teleport_cluster: str, kube_cluster: str, path: str) -> None:
    endpoint = KubeEndpoint("https://test.teleport.sh:443")
    assert server_url(endpoint, teleport_cluster, kube_cluster) == "https://test.teleport.sh:443" + path


def test_server_url_tolerates_a_trailing_slash_on_the_base() -> None:
    url = server_url(KubeEndpoint("https://proxy:443/"), "root", "kube-cluster-1")
    assert url == "https://proxy:443/v1/teleport/cm9vdA/a3ViZS1jbHVzdGVyLTE"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [("a", "YQ"), ("ab", "YWI"), ("abc", "YWJj"), ("~~~", "fn5-"), ("??>", "Pz8-"), ("", "")],
)
def test_encode_path_component(value: str, encoded: str) -> None:
    assert encode_path_component(value) == encoded


# -- the rendered Secret ---------------------------------------------------------


def test_end_to_end_expectations() -> None:
    """What tbot's end-to-end test asserts, plus the exact metadata we write."""
    secret = render_secret(output(**E2E), KUBE_CLUSTER_1, **RUN)

    assert secret.name == "my-cluster.10dae90fc5854d7b"
    assert secret.namespace == "argocd"
    assert secret.server == "https://127.0.0.1:3080/v1/teleport/cm9vdA/a3ViZS1jbHVzdGVyLTE"
    assert secret.cluster == KUBE_CLUSTER_1
    manifest = secret.manifest
    assert (manifest["apiVersion"], manifest["kind"], manifest["type"]) == ("v1", "Secret", "Opaque")
    assert manifest["metadata"]["name"] == secret.name
    assert manifest["metadata"]["namespace"] == "argocd"
    assert manifest["metadata"]["labels"] == {
        "argocd.argoproj.io/secret-type": "cluster",
        "team": "billing",
        "cluster-department": "engineering",
    }
    assert manifest["metadata"]["annotations"] == {
        "teleport.dev/bot-name": "argo-bot",
        "teleport.dev/kubernetes-cluster-name": "kube-cluster-1",
        "teleport.dev/teleport-cluster-name": "root",
        "teleport.dev/updated": "2025-07-31T13:35:15Z",
        VERSION_ANNOTATION: "0.1.0",
        "managed-by": "ninjas",
    }
    data = decoded(secret)
    assert list(data) == ["name", "server", "config", "project", "namespaces", "clusterResources"]
    assert data["name"] == "root-kube-cluster-1"
    assert data["server"] == secret.server
    assert data["project"] == "my-argo-project"
    assert data["namespaces"] == "prod,dev"
    assert data["clusterResources"] == "true"
    tls = json.loads(data["config"])["tlsClientConfig"]
    assert tls["serverName"] == "kube-teleport-proxy-alpn.teleport.cluster.local"
    assert base64.b64decode(tls["caData"]) == HOST_CA
    assert base64.b64decode(tls["certData"]) == CLIENT_CERT
    assert base64.b64decode(tls["keyData"]) == CLIENT_KEY


def test_config_json_bytes() -> None:
    secret = render_secret(output(), KUBE_CLUSTER_1, **RUN)
    assert base64.b64decode(secret.manifest["data"]["config"]) == (
        b'{"tlsClientConfig":{'
        b'"caData":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkhPU1RDQQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==",'
        b'"certData":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNMSUVOVAotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg==",'
        b'"keyData":"LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tClNFQ1JFVAotLS0tLUVORCBQUklWQVRFIEtFWS0tLS0tCg==",'
        b'"serverName":"kube-teleport-proxy-alpn.teleport.cluster.local"}}'
    )


def tbot_secret() -> dict[str, Any]:
    """The Secret tbot's renderSecret (argocd_output.go) writes for tbot's end-to-end configuration,
    spelled out from reference tbot-argocd.md §1.5 and §1.10 (tbot 18.2.0, same identity and time)."""
    ca, cert, key = (base64.b64encode(pem).decode() for pem in (HOST_CA, CLIENT_CERT, CLIENT_KEY))
    config = (
        f'{{"tlsClientConfig":{{"caData":"{ca}","certData":"{cert}","keyData":"{key}",'
        '"serverName":"kube-teleport-proxy-alpn.teleport.cluster.local"}}'
    )
    data = {
        "name": "root-kube-cluster-1",
        "server": "https://127.0.0.1:3080/v1/teleport/cm9vdA/a3ViZS1jbHVzdGVyLTE",
        "config": config,
        "project": "my-argo-project",
        "namespaces": "prod,dev",
        "clusterResources": "true",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": "my-cluster.10dae90fc5854d7b",
            "namespace": "argocd",
            "labels": {
                "argocd.argoproj.io/secret-type": "cluster",
                "team": "billing",
                "cluster-department": "engineering",
            },
            "annotations": {
                "teleport.dev/bot-name": "argo-bot",
                "teleport.dev/kubernetes-cluster-name": "kube-cluster-1",
                "teleport.dev/updated": "2025-07-31T13:35:15Z",
                "teleport.dev/tbot-version": "18.2.0",
                "teleport.dev/teleport-cluster-name": "root",
                "managed-by": "ninjas",
            },
        },
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def test_byte_identical_to_tbot_but_for_the_version_annotation() -> None:
    ours = render_secret(output(**E2E), KUBE_CLUSTER_1, **RUN).manifest
    tbots = tbot_secret()

    assert ours["metadata"]["annotations"].pop(VERSION_ANNOTATION) == "0.1.0"
    assert tbots["metadata"]["annotations"].pop(TBOT_VERSION_ANNOTATION) == "18.2.0"
    assert ours == tbots
    assert json.dumps(ours["data"], sort_keys=True) == json.dumps(tbots["data"], sort_keys=True)


def test_server_name_omitted_without_tls_routing() -> None:
    run: dict[str, Any] = {**RUN, "endpoint": KubeEndpoint("https://kube.example.com:3026")}
    secret = render_secret(output(), KUBE_CLUSTER_1, **run)
    tls = json.loads(decoded(secret)["config"])["tlsClientConfig"]
    assert list(tls) == ["caData", "certData", "keyData"]


def test_several_host_cas_are_joined_with_a_newline() -> None:
    other = b"-----BEGIN CERTIFICATE-----\nNEXT\n-----END CERTIFICATE-----\n"
    run: dict[str, Any] = {**RUN, "ca_pems": [HOST_CA, other]}
    secret = render_secret(output(), KUBE_CLUSTER_1, **run)
    ca_data = json.loads(decoded(secret)["config"])["tlsClientConfig"]["caData"]
    assert base64.b64decode(ca_data) == HOST_CA + b"\n" + other


def test_defaults() -> None:
    secret = render_secret(output(), KUBE_CLUSTER_1, **RUN)
    assert secret.name == "teleport.argocd-cluster.10dae90fc5854d7b"
    assert secret.namespace == "default"
    assert secret.manifest["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "cluster"}
    assert decoded(secret).keys() == {"name", "server", "config"}
    assert decoded(secret)["name"] == "root-kube-cluster-1"


def test_project_and_namespaces_render_per_cluster() -> None:
    """tbot fixes them per output; a template picks each cluster's from its labels."""
    settings = {"project": '{{ index .Labels "department" }}', "namespaces": ["{{ .KubeName }}", "shared"]}
    data = decoded(render_secret(output(**settings), KUBE_CLUSTER_1, **RUN))
    assert data["project"] == "engineering"
    assert data["namespaces"] == "kube-cluster-1,shared"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"project": '{{ index .Labels "argocd-project" }}'}, "project renders empty for this cluster"),
        (
            {"namespaces": ['{{ index .Labels "department" }}']},
            "namespaces[0] renders to 'Eng_Ops', which is not a namespace name",
        ),
    ],
)
def test_a_cluster_whose_project_or_namespace_renders_unusable_is_refused(
    settings: dict[str, Any], message: str
) -> None:
    cluster = KubeCluster("kube-cluster-2", {"department": "Eng_Ops"})
    with pytest.raises(RenderError, match=re.escape(message)):
        render_secret(output(**settings), cluster, **RUN)


def test_cluster_resources_false_is_written_when_namespaces_are_set() -> None:
    secret = render_secret(output(namespaces=["prod"]), KUBE_CLUSTER_1, **RUN)
    assert decoded(secret)["namespaces"] == "prod"
    assert decoded(secret)["clusterResources"] == "false"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.KubeName}}", "kube-cluster-1"),
        ("{{.ClusterName}}/{{.KubeName}}", "root/kube-cluster-1"),
        ('{{.KubeName}}-{{index .Labels "department"}}', "kube-cluster-1-engineering"),
    ],
)
def test_cluster_name_template(template: str, expected: str) -> None:
    secret = render_secret(output(cluster_name_template=template), KUBE_CLUSTER_1, **RUN)
    assert decoded(secret)["name"] == expected


def test_templated_annotations_and_labels() -> None:
    config = output(
        secret_labels={"kube": "{{.KubeName}}", "teleport": "{{.ClusterName}}"},
        secret_annotations={
            "example.com/origin": "{{.ClusterName}}/{{.KubeName}}",
            "example.com/empty": '{{index .Labels "missing"}}',
        },
    )
    secret = render_secret(config, KUBE_CLUSTER_1, **RUN)
    metadata = secret.manifest["metadata"]
    assert metadata["labels"]["kube"] == "kube-cluster-1"
    assert metadata["labels"]["teleport"] == "root"
    assert metadata["annotations"]["example.com/origin"] == "root/kube-cluster-1"
    assert "example.com/empty" not in metadata["annotations"]


@pytest.mark.parametrize(
    "now",
    [
        datetime(2025, 7, 31, 15, 35, 15, tzinfo=timezone(timedelta(hours=2))),
        datetime(2025, 7, 31, 13, 35, 15, 999999, tzinfo=UTC),
    ],
)
def test_updated_is_utc_to_the_second(now: datetime) -> None:
    secret = render_secret(output(), KUBE_CLUSTER_1, **{**RUN, "now": now})
    assert secret.manifest["metadata"]["annotations"]["teleport.dev/updated"] == "2025-07-31T13:35:15Z"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ca_pems": []}, "TLS trusted CAs missing"),
        ({"ca_pems": [b""]}, "TLS trusted CAs missing"),
        ({"now": datetime(2025, 7, 31)}, "timezone-aware"),
    ],
)
def test_run_level_problems_raise(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_secret(output(), KUBE_CLUSTER_1, **{**RUN, **change})
    with pytest.raises(RenderError, match=message):
        render_secrets(output(), [KUBE_CLUSTER_1], **{**RUN, **change})


def test_key_material_stays_out_of_repr() -> None:
    secret = render_secret(output(), KUBE_CLUSTER_1, **RUN)
    key_b64 = base64.b64encode(CLIENT_KEY).decode()
    assert key_b64[:20] not in repr(secret)
    assert "SECRET" not in repr(secret)


# -- several clusters ------------------------------------------------------------


def test_render_secrets_renders_each_cluster() -> None:
    clusters = [KUBE_CLUSTER_1, KubeCluster("kube-cluster-2")]
    secrets, errors = render_secrets(output(), clusters, **RUN)
    assert errors == []
    assert [s.name for s in secrets] == [
        "teleport.argocd-cluster.10dae90fc5854d7b",
        "teleport.argocd-cluster.5486b6ec0f048c01",
    ]
    assert [decoded(s)["name"] for s in secrets] == ["root-kube-cluster-1", "root-kube-cluster-2"]


def test_clusters_with_the_same_argocd_name_are_not_written() -> None:
    config = dataclasses.replace(output(), cluster_name_template='{{index .Labels "team"}}')
    a = KubeCluster("a", {"team": "x"})
    b = KubeCluster("b", {"team": "x"})
    c = KubeCluster("c", {"team": "y"})
    secrets, errors = render_secrets(config, [a, b, c], **RUN)
    assert [s.cluster for s in secrets] == [c]
    assert errors == [
        (a, 'not written: Argo CD cluster name "x" is also rendered for b'),
        (b, 'not written: Argo CD cluster name "x" is also rendered for a'),
    ]


def test_clusters_with_the_same_secret_name_are_not_written() -> None:
    twice = [KUBE_CLUSTER_1, KubeCluster("other"), KUBE_CLUSTER_1]
    secrets, errors = render_secrets(output(), twice, **RUN)
    assert [s.cluster.name for s in secrets] == ["other"]
    assert [cluster for cluster, _ in errors] == [KUBE_CLUSTER_1, KUBE_CLUSTER_1]
    message = errors[0][1]
    assert 'Argo CD cluster name "root-kube-cluster-1"' in message
    assert 'Secret name "teleport.argocd-cluster.10dae90fc5854d7b"' in message


def test_a_label_value_kubernetes_would_refuse_fails_only_that_cluster() -> None:
    config = output(secret_labels={"department": '{{index .Labels "department"}}'})
    bad = KubeCluster("bad", {"department": "r&d / ops"})
    secrets, errors = render_secrets(config, [bad, KUBE_CLUSTER_1], **RUN)
    assert [s.cluster for s in secrets] == [KUBE_CLUSTER_1]
    [(cluster, message)] = errors
    assert cluster == bad
    assert "secret_labels['department'] renders to 'r&d / ops'" in message


# -- Kubernetes naming rules ---------------------------------------------------


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("team", True),
        ("app.kubernetes.io/name", True),
        ("Example_Key.1", True),
        ("example.com/", False),
        ("/name", False),
        ("a/b/c", False),
        ("Example.com/name", False),
        ("-team", False),
        ("team-", False),
        ("x" * 63, True),
        ("x" * 64, False),
        ("my label", False),
    ],
)
def test_qualified_name_problem(key: str, valid: bool) -> None:
    assert (qualified_name_problem(key) is None) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("", True), ("engineering", True), ("a.b_c-D9", True), ("-x", False), ("a/b", False), ("x" * 64, False)],
)
def test_label_value_problem(value: str, valid: bool) -> None:
    assert (label_value_problem(value) is None) is valid


# -- reserved annotations --------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "reserved"),
    [
        ("teleport.dev/bot-name", True),
        ("teleport.dev/kubernetes-cluster-name", True),
        ("teleport.dev/teleport-cluster-name", True),
        ("teleport.dev/updated", True),
        (TBOT_VERSION_ANNOTATION, True),
        (VERSION_ANNOTATION, True),
        (MANAGED_KEYS_ANNOTATION, True),
        ("teleport.dev/owner", False),  # tbot reserves only its five
        ("managed-by", False),
        ("app.kubernetes.io/managed-by", False),
    ],
)
def test_is_reserved_annotation(key: str, reserved: bool) -> None:
    assert is_reserved_annotation(key) is reserved


def test_user_annotations_under_teleport_dev_are_written() -> None:
    secret = render_secret(
        output(secret_annotations={"teleport.dev/owner": "platform"}), KUBE_CLUSTER_1, **RUN
    )
    assert secret.manifest["metadata"]["annotations"]["teleport.dev/owner"] == "platform"
