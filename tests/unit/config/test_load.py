"""Whole documents: tbot's golden outputs, the root's rules, and every problem listed at once."""

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from teleport_argocd.config import Config, EksDestination, KubeconfigSecretDestination, Selector, load_config
from teleport_argocd.errors import ConfigError

from .documents import DEFAULT_DESTINATION, ENV, as_document, document, problem_at, problems_of

# tbot's golden files (lib/tbot/services/k8s/testdata/TestArgoCDOutput_YAML), newest versions.
MINIMAL_GOLDEN = """\
type: kubernetes/argo-cd
selectors:
  - name: foo
"""
FULL_GOLDEN = """\
type: kubernetes/argo-cd
name: my-argo-service
credential_ttl: 1m0s
renewal_interval: 30s
selectors:
  - name: foo
  - labels:
      foo: bar
secret_namespace: argocd
secret_name_prefix: my-argo-cluster-
secret_labels:
  my-label: value
secret_annotations:
  my-annotation: value
project: super-secret-project
namespaces:
  - prod
  - dev
cluster_resources: true
cluster_name_template: '{{.KubeName}}'
"""

EXAMPLE = """\
teleport:
  proxy_addr: teleport.example.com:443
  join_token: argocd-lambda
  insecure: false
  ca_pem: "-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n"
destination:
  eks: {cluster_name: argocd, region: eu-west-1}
outputs:
  - type: kubernetes/argo-cd
    name: prod
    destination:
      kubeconfig_secret: {secret_id: argocd-kubeconfig, region: us-east-1, context: admin}
    selectors: [{name: foo}, {labels: {env: prod}}]
    secret_namespace: argocd
    secret_name_prefix: teleport.argocd-cluster
    secret_labels: {team: billing, dept: '{{ index .Labels "department" }}'}
    secret_annotations: {example.com/owner: '{{.ClusterName}}/{{.KubeName}}'}
    project: my-project
    namespaces: [prod, dev]
    cluster_resources: true
    cluster_name_template: '{{.ClusterName}}-{{.KubeName}}'
    credential_ttl: 1h
    renewal_interval: 20m
  - type: kubernetes/argo-cd
    selectors: [{name: bar}]
"""


# -- whole documents -----------------------------------------------------------


def test_example_configuration() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.teleport.proxy_addr == "teleport.example.com:443"
    assert config.teleport.join_token == "argocd-lambda"
    assert config.teleport.insecure is False
    assert config.teleport.ca_pem == "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    assert config.warnings == ()
    prod, unnamed = config.outputs
    assert prod.name == "prod"
    assert prod.destination == KubeconfigSecretDestination("argocd-kubeconfig", "us-east-1", "admin")
    assert prod.selectors == (Selector("foo", {}), Selector(None, {"env": "prod"}))
    assert prod.secret_namespace == "argocd"
    assert prod.secret_name_prefix == "teleport.argocd-cluster"
    assert prod.secret_labels == {"team": "billing", "dept": '{{ index .Labels "department" }}'}
    assert prod.secret_annotations == {"example.com/owner": "{{.ClusterName}}/{{.KubeName}}"}
    assert prod.project == "my-project"
    assert prod.namespaces == ("prod", "dev")
    assert prod.cluster_resources is True
    assert prod.cluster_name_template == "{{.ClusterName}}-{{.KubeName}}"
    assert (prod.credential_ttl, prod.renewal_interval) == (timedelta(hours=1), timedelta(minutes=20))
    assert unnamed.name == "kubernetes-argo-cd-output (name=bar)"
    assert unnamed.destination == EksDestination("argocd", "eu-west-1")


def test_minimal_golden_gets_tbots_defaults() -> None:
    [output] = load_config(as_document(MINIMAL_GOLDEN), env=ENV).outputs
    assert output.name == "kubernetes-argo-cd-output (name=foo)"
    assert output.selectors == (Selector("foo", {}),)
    assert output.destination == DEFAULT_DESTINATION
    assert output.secret_namespace == "default"
    assert output.secret_name_prefix == "teleport.argocd-cluster"
    assert output.secret_labels == {}
    assert output.secret_annotations == {}
    assert output.project == ""
    assert output.namespaces == ()
    assert output.cluster_resources is False
    assert output.cluster_name_template == "{{.ClusterName}}-{{.KubeName}}"
    assert output.credential_ttl == timedelta(minutes=60)
    assert output.renewal_interval == timedelta(minutes=20)


def test_full_golden_is_refused_only_for_its_trailing_dash_prefix() -> None:
    """tbot accepts `my-argo-cluster-`, but Kubernetes refuses `my-argo-cluster-.<hash>`."""
    problems = problems_of(as_document(FULL_GOLDEN))
    assert [p.path for p in problems] == ["outputs[0].secret_name_prefix"]
    assert problems[0].message.startswith("must not end with '-'")


def test_full_golden_loads_with_a_valid_prefix() -> None:
    text = as_document(FULL_GOLDEN.replace("my-argo-cluster-", "my-argo-cluster"))
    config = load_config(text, env=ENV)
    [output] = config.outputs
    assert output.name == "my-argo-service"
    assert output.credential_ttl == timedelta(minutes=1)
    assert output.renewal_interval == timedelta(seconds=30)
    assert output.selectors == (Selector("foo", {}), Selector(None, {"foo": "bar"}))
    assert output.secret_namespace == "argocd"
    assert output.secret_name_prefix == "my-argo-cluster"
    assert output.secret_labels == {"my-label": "value"}
    assert output.secret_annotations == {"my-annotation": "value"}
    assert output.project == "super-secret-project"
    assert output.namespaces == ("prod", "dev")
    assert output.cluster_resources is True
    assert output.cluster_name_template == "{{.KubeName}}"
    assert config.warnings == ()


def test_mapping_source() -> None:
    config = load_config(document(), env=ENV)
    assert isinstance(config, Config)
    assert config.outputs[0].name == "kubernetes-argo-cd-output (name=foo)"


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("POD_NAMESPACE", "from-process")
    assert load_config(document()).outputs[0].secret_namespace == "from-process"


@pytest.mark.parametrize(
    ("source", "path", "message"),
    [
        ({"outputs": []}, "outputs", "at least one output is required"),
        ({}, "outputs", "at least one output is required"),
        ({"outputs": {"type": "kubernetes/argo-cd"}}, "outputs", "expected a list, got a mapping"),
        ({"outputs": ["prod"]}, "outputs[0]", "expected a mapping, got a string"),
        ({"output": [], **document()}, "output", "unknown key (did you mean 'outputs'?)"),
        (
            {"teleport": {"insecure": "no"}, **document()},
            "teleport.insecure",
            "expected true or false, got a string",
        ),
        (
            {"teleport": {"ca_pem": "not a certificate"}, **document()},
            "teleport.ca_pem",
            "expected one or more PEM certificates (-----BEGIN CERTIFICATE-----)",
        ),
        (
            {"teleport": {"proxy": "x"}, **document()},
            "teleport.proxy",
            "unknown key (did you mean 'proxy_addr'?)",
        ),
        ({"teleport": ["x"], **document()}, "teleport", "expected a mapping, got a list"),
        (
            {"teleport": {"join_token": 7}, **document()},
            "teleport.join_token",
            "expected a string, got an integer (quote the value)",
        ),
    ],
)
def test_document_rule(source: dict[str, Any], path: str, message: str) -> None:
    assert problem_at(source, path) == message


def test_every_problem_is_reported_at_once() -> None:
    source = {
        "teleport": {"proxy_addr": "https://teleport.example.com", "extra": 1},
        "outputs": [
            {"type": "kubernetes/argo-cd", "selectors": [{"name": "a"}], "cluster_resources": True},
            {"type": "kubernetes/argo-cd", "selectors": [{"name": "b"}, {}], "credential_ttl": "1h"},
        ],
    }
    with pytest.raises(ConfigError) as excinfo:
        load_config(source, env={"TELEPORT_JOIN_TOKEN": "t"})
    paths = [p.path for p in excinfo.value.problems]
    assert paths == [
        "teleport.extra",
        "teleport.proxy_addr",
        "outputs[0].destination",
        "outputs[0].cluster_resources",
        "outputs[1].selectors[1]",
        "outputs[1].destination",
        "outputs[1].renewal_interval",
    ]
    text = str(excinfo.value)
    assert text.startswith("invalid configuration:\n")
    assert "  outputs[1].selectors[1]: one of 'name' and 'labels' must be specified" in text


def test_top_level_must_be_a_mapping() -> None:
    assert [str(p) for p in problems_of("- a\n- b\n")] == ["expected a mapping, got a list"]


def test_empty_document_needs_outputs() -> None:
    assert [str(p) for p in problems_of("")] == ["outputs: at least one output is required"]


class _Exploding(Mapping[str, Any]):
    """An already-parsed document whose values cannot be read."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("s3cr3t value")

    def __iter__(self) -> Iterator[str]:
        return iter(["proxy_addr"])

    def __len__(self) -> int:
        return 1


def test_an_unforeseen_failure_is_a_problem_that_quotes_nothing() -> None:
    [problem] = problems_of({"teleport": _Exploding(), **document()})
    assert str(problem) == "the configuration could not be validated (RuntimeError)"
