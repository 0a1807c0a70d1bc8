"""Loading and validating the configuration: tbot's rules, ours, defaults, and path-qualified errors."""

from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

import pytest

from teleport_argocd.config import (
    Config,
    EksDestination,
    KubeconfigSecretDestination,
    PruneConfig,
    Selector,
    load_config,
    parse_duration,
)
from teleport_argocd.errors import ConfigError, ConfigProblem
from teleport_argocd.model import VERSION_ANNOTATION

ENV = {
    "TELEPORT_PROXY_ADDR": "teleport.example.com:443",
    "TELEPORT_JOIN_TOKEN": "argocd-lambda",
    "DESTINATION_EKS_CLUSTER": "argocd",
    "DESTINATION_REGION": "eu-west-1",
}
DEFAULT_DESTINATION = EksDestination("argocd", "eu-west-1")

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


def as_document(output_yaml: str) -> str:
    """One tbot output, as the only entry of our `outputs` list."""
    return "outputs:\n- " + output_yaml.rstrip("\n").replace("\n", "\n  ") + "\n"


def document(**output: Any) -> dict[str, Any]:
    return {"outputs": [{"type": "kubernetes/argo-cd", "selectors": [{"name": "foo"}], **output}]}


def problems_of(source: str | dict[str, Any], env: dict[str, str] = ENV) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as excinfo:
        load_config(source, env=env)
    return excinfo.value.problems


def problem_at(source: str | dict[str, Any], path: str, env: dict[str, str] = ENV) -> str:
    """The message of the problem reported at `path` (failing if there is none)."""
    problems = problems_of(source, env)
    messages = [p.message for p in problems if p.path == path]
    assert messages, f"no problem at {path!r}: {[str(p) for p in problems]}"
    return messages[0]


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


# -- names and defaults --------------------------------------------------------


def test_display_name_vector() -> None:
    """tbot's TestArgoCDOutput_String."""
    selectors = [{"name": "cluster-1"}, {"name": "cluster-2"}, {"labels": {"env": "prod", "region": "eu"}}]
    [output] = load_config(document(selectors=selectors), env=ENV).outputs
    assert (
        output.name
        == "kubernetes-argo-cd-output (name=cluster-1, name=cluster-2, labels={env=prod, region=eu})"
    )


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        (Selector("foo", {}), "name=foo"),
        (Selector(None, {"region": "eu", "env": "prod"}), "labels={env=prod, region=eu}"),
        (Selector(None, {"a": "2", "a-b": "1"}), "labels={a-b=1, a=2}"),  # sorted as "k=v" strings, like tbot
        (Selector(None, {}), "<empty selector>"),
    ],
)
def test_selector_str(selector: Selector, text: str) -> None:
    assert str(selector) == text


@pytest.mark.parametrize(
    ("configured", "pod_namespace", "expected"),
    [
        (None, "my-pod-namespace", "my-pod-namespace"),
        ("argocd", "my-pod-namespace", "argocd"),
        (None, "", "default"),
        (None, None, "default"),
    ],
)
def test_secret_namespace_default(configured: str | None, pod_namespace: str | None, expected: str) -> None:
    env = dict(ENV) if pod_namespace is None else {**ENV, "POD_NAMESPACE": pod_namespace}
    settings = {} if configured is None else {"secret_namespace": configured}
    assert load_config(document(**settings), env=env).outputs[0].secret_namespace == expected


def test_tbot_defaults_test() -> None:
    """tbot's TestArgoCDConfig_CheckAndSetDefaults."""
    env = {**ENV, "POD_NAMESPACE": "my-pod-namespace"}
    [output] = load_config(document(selectors=[{"labels": {"env": "prod"}}]), env=env).outputs
    assert output.secret_namespace == "my-pod-namespace"
    assert output.secret_name_prefix == "teleport.argocd-cluster"
    assert output.cluster_name_template == "{{.ClusterName}}-{{.KubeName}}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("teleport.example.com", "teleport.example.com:443"),
        ("teleport.example.com:3080", "teleport.example.com:3080"),
        ("127.0.0.1:3080", "127.0.0.1:3080"),
        ("[::1]", "[::1]:443"),
        ("[::1]:3080", "[::1]:3080"),
    ],
)
def test_proxy_addr_port_defaults_to_443(value: str, expected: str) -> None:
    config = load_config({"teleport": {"proxy_addr": value}, **document()}, env=ENV)
    assert config.teleport.proxy_addr == expected


@pytest.mark.parametrize(
    "value",
    [
        "https://teleport.example.com",
        "teleport.example.com/web",
        "teleport.example.com:99999",
        "teleport.example.com:0",
        "x:port",
        ":443",
    ],
)
def test_proxy_addr_must_be_host_and_port(value: str) -> None:
    message = problem_at({"teleport": {"proxy_addr": value}, **document()}, "teleport.proxy_addr")
    assert message.startswith("expected host[:port]")


def test_teleport_settings_come_from_env_when_omitted() -> None:
    config = load_config(document(), env=ENV)
    assert (config.teleport.proxy_addr, config.teleport.join_token) == (
        "teleport.example.com:443",
        "argocd-lambda",
    )
    assert config.teleport.insecure is False
    assert config.teleport.ca_pem is None


def test_document_wins_over_env() -> None:
    source = {"teleport": {"proxy_addr": "other.example.com:8443", "join_token": "other"}, **document()}
    config = load_config(source, env=ENV)
    assert (config.teleport.proxy_addr, config.teleport.join_token) == ("other.example.com:8443", "other")


def test_teleport_settings_required() -> None:
    env = {"DESTINATION_EKS_CLUSTER": "argocd", "DESTINATION_REGION": "eu-west-1"}
    assert [str(p) for p in problems_of(document(), env=env)] == [
        "teleport.proxy_addr: required",
        "teleport.join_token: required",
    ]


def test_invalid_proxy_addr_from_env_names_the_variable() -> None:
    env = {**ENV, "TELEPORT_PROXY_ADDR": "https://teleport.example.com"}
    assert problem_at(document(), "TELEPORT_PROXY_ADDR", env=env).startswith("expected host[:port]")


# -- destinations --------------------------------------------------------------


SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kc-AbCdEf"
TELEPORT_ENV = {"TELEPORT_PROXY_ADDR": "teleport.example.com", "TELEPORT_JOIN_TOKEN": "t"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DESTINATION_EKS_CLUSTER": "argocd", "DESTINATION_REGION": "eu-west-1"}, DEFAULT_DESTINATION),
        ({"DESTINATION_KUBECONFIG_SECRET": "kc"}, KubeconfigSecretDestination("kc", None, None)),
        (
            {"DESTINATION_KUBECONFIG_SECRET": SECRET_ARN},
            KubeconfigSecretDestination(SECRET_ARN, None, None),
        ),
        (
            {"DESTINATION_KUBECONFIG_SECRET": "kc", "DESTINATION_REGION": "us-east-1"},
            KubeconfigSecretDestination("kc", "us-east-1", None),
        ),
    ],
)
def test_default_destination_from_env(env: dict[str, str], expected: object) -> None:
    config = load_config(document(), env={**TELEPORT_ENV, **env})
    assert config.outputs[0].destination == expected


def test_top_level_destination_wins_over_env() -> None:
    source = {"destination": {"kubeconfig_secret": {"secret_id": "kc"}}, **document()}
    config = load_config(source, env=ENV)
    assert config.outputs[0].destination == KubeconfigSecretDestination("kc", None, None)


def test_output_destination_wins_over_default() -> None:
    output = document(destination={"eks": {"cluster_name": "other", "region": "us-west-2"}})
    assert load_config(output, env=ENV).outputs[0].destination == EksDestination("other", "us-west-2")


@pytest.mark.parametrize(
    ("env", "path", "message"),
    [
        (TELEPORT_ENV, "outputs[0].destination", "required: no default destination is configured"),
        (
            {**TELEPORT_ENV, "DESTINATION_EKS_CLUSTER": "argocd", "DESTINATION_KUBECONFIG_SECRET": "kc"},
            "DESTINATION_EKS_CLUSTER",
            "set only one of DESTINATION_EKS_CLUSTER and DESTINATION_KUBECONFIG_SECRET",
        ),
        (
            {**TELEPORT_ENV, "DESTINATION_EKS_CLUSTER": "argocd"},
            "DESTINATION_REGION",
            "required with DESTINATION_EKS_CLUSTER",
        ),
        (
            {**TELEPORT_ENV, "DESTINATION_EKS_CLUSTER": "argocd", "DESTINATION_REGION": "Europe"},
            "DESTINATION_REGION",
            "'Europe' is not an AWS region, e.g. eu-west-1",
        ),
    ],
)
def test_env_destination_problems(env: dict[str, str], path: str, message: str) -> None:
    assert problem_at(document(), path, env=env) == message


@pytest.mark.parametrize(
    ("destination", "path", "message"),
    [
        (
            {"eks": {"cluster_name": "a", "region": "eu-west-1"}, "kubeconfig_secret": {"secret_id": "kc"}},
            "outputs[0].destination",
            "only one of 'eks' and 'kubeconfig_secret' must be specified",
        ),
        ({}, "outputs[0].destination", "one of 'eks' and 'kubeconfig_secret' must be specified"),
        ({"eks": {"cluster_name": "argocd"}}, "outputs[0].destination.eks.region", "required"),
        ({"eks": {"region": "eu-west-1"}}, "outputs[0].destination.eks.cluster_name", "required"),
        (
            {"eks": {"cluster_name": "-bad", "region": "eu-west-1"}},
            "outputs[0].destination.eks.cluster_name",
            "'-bad' is not a valid EKS cluster name",
        ),
        (
            {"kubeconfig_secret": {"region": "eu-west-1"}},
            "outputs[0].destination.kubeconfig_secret.secret_id",
            "required",
        ),
        (
            {"kubeconfig_secret": {"secret_id": "kc", "contxt": "a"}},
            "outputs[0].destination.kubeconfig_secret.contxt",
            "unknown key (did you mean 'context'?)",
        ),
        ({"gke": {}}, "outputs[0].destination.gke", "unknown key"),
        ("argocd", "outputs[0].destination", "expected a mapping, got a string"),
    ],
)
def test_destination_problems(destination: Any, path: str, message: str) -> None:
    assert problem_at(document(destination=destination), path) == message


# -- validation rules ------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "path", "message"),
    [
        # tbot's rules
        ({"type": None}, "outputs[0].type", "required (the only supported type is 'kubernetes/argo-cd')"),
        (
            {"type": "kubernetes/v2"},
            "outputs[0].type",
            "unsupported output type 'kubernetes/v2'; only 'kubernetes/argo-cd' is supported",
        ),
        ({"selectors": None}, "outputs[0].selectors", "at least one selector is required"),
        ({"selectors": []}, "outputs[0].selectors", "at least one selector is required"),
        ({"selectors": [{}]}, "outputs[0].selectors[0]", "one of 'name' and 'labels' must be specified"),
        (
            {"selectors": [{"name": "a"}, {"labels": {}}]},
            "outputs[0].selectors[1]",
            "one of 'name' and 'labels' must be specified",
        ),
        (
            {"selectors": [{"name": "a", "labels": {"env": "prod"}}]},
            "outputs[0].selectors[0]",
            "only one of 'name' and 'labels' may be specified",
        ),
        ({"selectors": [{"nme": "a"}]}, "outputs[0].selectors[0].nme", "unknown key (did you mean 'name'?)"),
        ({"selectors": {"name": "a"}}, "outputs[0].selectors", "expected a list, got a mapping"),
        ({"namespaces": ["prod", ""]}, "outputs[0].namespaces[1]", "cannot be blank"),
        ({"namespaces": [" "]}, "outputs[0].namespaces[0]", "cannot be blank"),
        ({"namespaces": ["foo,"]}, "outputs[0].namespaces[0]", "'foo,' is not a valid namespace name"),
        ({"namespaces": ["Prod"]}, "outputs[0].namespaces[0]", "'Prod' is not a valid namespace name"),
        ({"namespaces": "prod"}, "outputs[0].namespaces", "expected a list, got a string"),
        (
            {"cluster_resources": True},
            "outputs[0].cluster_resources",
            "only applicable if namespaces is also set",
        ),
        (
            {"secret_name_prefix": "NOT VALID"},
            "outputs[0].secret_name_prefix",
            "secret_name_prefix may only include lowercase letters, numbers, '-' and '.' characters",
        ),
        (
            {"secret_name_prefix": "my-prefix."},
            "outputs[0].secret_name_prefix",
            "secret_name_prefix may only include lowercase letters, numbers, '-' and '.' characters",
        ),
        (
            {"cluster_name_template": "{{.InvalidVariable}}"},
            "outputs[0].cluster_name_template",
            "invalid template: 1:3: can't evaluate field InvalidVariable",
        ),
        (
            {"cluster_name_template": "{{.KubeName"},
            "outputs[0].cluster_name_template",
            "invalid template: 1:1: unclosed action",
        ),
        (
            {"credential_ttl": "1h"},
            "outputs[0].renewal_interval",
            "credential_ttl and renewal_interval must both be specified if either is",
        ),
        (
            {"renewal_interval": "20m"},
            "outputs[0].credential_ttl",
            "credential_ttl and renewal_interval must both be specified if either is",
        ),
        (
            {"credential_ttl": "0s", "renewal_interval": "20m"},
            "outputs[0].credential_ttl",
            "must be positive",
        ),
        (
            {"credential_ttl": "1h", "renewal_interval": "-20m"},
            "outputs[0].renewal_interval",
            "must be positive",
        ),
        (
            {"credential_ttl": "1 hour", "renewal_interval": "20m"},
            "outputs[0].credential_ttl",
            "invalid duration '1 hour': expected a Go duration such as '1h30m' or '90s'",
        ),
        (
            {"credential_ttl": 3600, "renewal_interval": "20m"},
            "outputs[0].credential_ttl",
            "expected a Go duration such as '1h' or '20m', got an integer",
        ),
        ({"name": "my output"}, "outputs[0].name", "may only contain letters, digits, '-', '_' and '+'"),
        # ours: what Kubernetes or Argo CD would refuse later
        (
            {"secret_name_prefix": "my-prefix-"},
            "outputs[0].secret_name_prefix",
            "must not end with '-': Kubernetes refuses the Secret name my-prefix-.<hash>",
        ),
        (
            {"secret_name_prefix": "a" * 237},
            "outputs[0].secret_name_prefix",
            "must be at most 236 characters:"
            " the Secret name (prefix + '.' + 16 hex digits) is limited to 253",
        ),
        (
            {"cluster_name_template": "{{.ClusterName}}"},
            "outputs[0].cluster_name_template",
            "must use {{.KubeName}}: without it every cluster gets the same Argo CD cluster name",
        ),
        (
            {"secret_labels": {"argocd.argoproj.io/secret-type": "other"}},
            'outputs[0].secret_labels["argocd.argoproj.io/secret-type"]',
            "this label is set by teleport-argocd and cannot be overridden",
        ),
        (
            {"secret_labels": {"my label": "x"}},
            'outputs[0].secret_labels["my label"]',
            "invalid label key: name part must consist of alphanumeric characters, '-', '_' or '.',"
            " starting and ending with an alphanumeric character",
        ),
        (
            {"secret_labels": {"Example.com/team": "x"}},
            'outputs[0].secret_labels["Example.com/team"]',
            "invalid label key: prefix (before '/') must be a lowercase DNS subdomain, e.g. 'example.com'",
        ),
        (
            {"secret_labels": {"team": "r&d"}},
            'outputs[0].secret_labels["team"]',
            "invalid label value 'r&d': must be empty or consist of alphanumeric characters, '-', '_' or '.',"
            " starting and ending with an alphanumeric character",
        ),
        (
            {"secret_labels": {"origin": "{{.ClusterName}}/{{.KubeName}}"}},
            'outputs[0].secret_labels["origin"]',
            "invalid label value '{{.ClusterName}}/{{.KubeName}}': must be empty or consist of alphanumeric"
            " characters, '-', '_' or '.', starting and ending with an alphanumeric character",
        ),
        (
            {"secret_labels": {"team": "x" * 64}},
            'outputs[0].secret_labels["team"]',
            f"invalid label value {'x' * 64!r}: must be at most 63 characters",
        ),
        (
            {"secret_labels": {"team": "{{.Team}}"}},
            'outputs[0].secret_labels["team"]',
            "invalid template: 1:3: can't evaluate field Team",
        ),
        (
            {"secret_labels": {"tier": 1}},
            'outputs[0].secret_labels["tier"]',
            "expected a string, got an integer (quote the value)",
        ),
        (
            {"secret_annotations": {"teleport.dev/bot-name": "me"}},
            'outputs[0].secret_annotations["teleport.dev/bot-name"]',
            "tbot's teleport.dev/ annotations and ours are set by teleport-argocd",
        ),
        (
            {"secret_annotations": {VERSION_ANNOTATION: "1"}},
            f'outputs[0].secret_annotations["{VERSION_ANNOTATION}"]',
            "tbot's teleport.dev/ annotations and ours are set by teleport-argocd",
        ),
        (
            {"secret_annotations": {"a/b/c": "x"}},
            'outputs[0].secret_annotations["a/b/c"]',
            "invalid annotation key: must be a name with an optional DNS prefix, e.g. 'example.com/my-name',"
            " with at most one '/'",
        ),
        (
            {"secret_namespace": "Argo_CD"},
            "outputs[0].secret_namespace",
            "'Argo_CD' is not a valid namespace name",
        ),
        # types and keys
        ({"project": 5}, "outputs[0].project", "expected a string, got an integer (quote the value)"),
        (
            {"cluster_resources": "yes"},
            "outputs[0].cluster_resources",
            "expected true or false, got a string",
        ),
        (
            {"secret_labels": ["team"]},
            "outputs[0].secret_labels",
            "expected a mapping of strings, got a list",
        ),
        ({"selector": [{"name": "a"}]}, "outputs[0].selector", "unknown key (did you mean 'selectors'?)"),
        ({"roles": ["a"]}, "outputs[0].roles", "unknown key"),
    ],
)
def test_output_rule(settings: dict[str, Any], path: str, message: str) -> None:
    # A prefix: template errors go on with Go's details ("in type struct {...}").
    assert problem_at(document(**settings), path).startswith(message)


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


def test_limits_that_are_fine() -> None:
    settings = {"secret_name_prefix": "a" * 236, "secret_labels": {"team": "x" * 63, "empty": ""}}
    [output] = load_config(document(**settings), env=ENV).outputs
    assert output.secret_name_prefix == "a" * 236


def test_templated_label_with_valid_static_parts() -> None:
    labels = {"cluster": "{{.ClusterName}}-{{.KubeName}}", "dept": '{{ index .Labels "department" }}'}
    [output] = load_config(document(secret_labels=labels), env=ENV).outputs
    assert output.secret_labels == labels


@pytest.mark.parametrize(
    "template",
    [
        "{{.KubeName}}",
        "{{.ClusterName}}-{{.KubeName}}",
        '{{.KubeName}}-{{ index .Labels "env" }}',
        "{{- .KubeName -}}",
    ],
)
def test_valid_cluster_name_templates(template: str) -> None:
    assert (
        load_config(document(cluster_name_template=template), env=ENV).outputs[0].cluster_name_template
        == template
    )


def test_duplicate_output_names() -> None:
    source = {
        "outputs": [
            {"type": "kubernetes/argo-cd", "name": "prod", "selectors": [{"name": "a"}]},
            {
                "type": "kubernetes/argo-cd",
                "name": "prod",
                "selectors": [{"name": "b"}],
                "secret_name_prefix": "b",
            },
            {"type": "kubernetes/argo-cd", "selectors": [{"name": "c"}], "secret_name_prefix": "c"},
            {"type": "kubernetes/argo-cd", "selectors": [{"name": "c"}], "secret_name_prefix": "d"},
        ]
    }
    assert [str(p) for p in problems_of(source)] == [
        "outputs[1].name: output name 'prod' is already used by outputs[0]",
        "outputs[3].name: output name 'kubernetes-argo-cd-output (name=c)' is already used by outputs[2]",
    ]


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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("outputs:\n  - type: [unclosed\n", "invalid YAML at line 3, column 1:"),
        ("teleport: {proxy_addr: a\noutputs: []\n", "invalid YAML at line 2, column 8:"),
        ("a: b: c\n", "invalid YAML at line 1, column 5: mapping values are not allowed here"),
    ],
)
def test_yaml_syntax_errors(text: str, message: str) -> None:
    [problem] = problems_of(text)
    assert problem.path == ""
    assert problem.message.startswith(message)


def test_top_level_must_be_a_mapping() -> None:
    assert [str(p) for p in problems_of("- a\n- b\n")] == ["expected a mapping, got a list"]


def test_empty_document_needs_outputs() -> None:
    assert [str(p) for p in problems_of("")] == ["outputs: at least one output is required"]


# -- warnings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "renewal", "warnings"),
    [
        ("1h", "20m", []),
        ("1m0s", "30s", []),
        ("12h", "4h", []),
        ("13h", "20m", ["outputs[0].credential_ttl: longer than 12h"]),
        ("24h", "20m", ["outputs[0].credential_ttl: longer than 12h"]),
    ],
)
def test_lifetime_warnings(ttl: str, renewal: str, warnings: list[str]) -> None:
    config = load_config(document(credential_ttl=ttl, renewal_interval=renewal), env=ENV)
    assert len(config.warnings) == len(warnings)
    for warning, start in zip(config.warnings, warnings, strict=True):
        assert warning.startswith(start)
    assert config.outputs[0].credential_ttl == parse_duration(ttl)


def test_selector_default_namespace_is_ignored_with_a_warning() -> None:
    config = load_config(document(selectors=[{"name": "a", "default_namespace": "x"}]), env=ENV)
    assert config.warnings == (
        "outputs[0].selectors[0].default_namespace: ignored: it only applies to kubernetes/v2 outputs",
    )
    assert config.outputs[0].selectors == (Selector("a", {}),)


# -- Go durations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("20m", timedelta(minutes=20)),
        ("1m0s", timedelta(minutes=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
        ("30s", timedelta(seconds=30)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        (".5m", timedelta(seconds=30)),
        ("1h0m0s", timedelta(hours=1)),
        ("300ms", timedelta(milliseconds=300)),
        ("1500us", timedelta(microseconds=1500)),
        ("2µs", timedelta(microseconds=2)),
        ("0", timedelta(0)),
        ("+5m", timedelta(minutes=5)),
        ("-5m", timedelta(minutes=-5)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1d", "1h30", "1 h", "--1h", ".h", "1h-5m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


# -- hostile documents: every one is a listed problem, never another exception ---------------

OUTPUT_YAML = "outputs:\n  - type: kubernetes/argo-cd\n    selectors: [{name: foo}]\n"


def test_a_date_where_a_string_is_expected_is_that_string() -> None:
    """Go reads `2024-01-01` as a string wherever a string is expected; so do we."""
    for text in ("2024-01-01", "2024-13-01", "2024-01-01T10:00:00Z"):
        [output] = load_config(OUTPUT_YAML + f"    project: {text}\n", env=ENV).outputs
        assert output.project == text


def test_an_invalid_date_is_no_crash() -> None:
    """PyYAML's timestamp constructor raised ValueError on month 13."""
    assert problem_at("release: 2024-13-01\n" + OUTPUT_YAML, "release") == "unknown key"


def test_explicit_timestamp_tag_reads_as_a_string() -> None:
    """`!!timestamp x` raised AttributeError in PyYAML's constructor."""
    [output] = load_config(OUTPUT_YAML + "    project: !!timestamp x\n", env=ENV).outputs
    assert output.project == "x"


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("outputs: !!bool maybe\n", "outputs", "line 1, column 10: cannot read this value as bool"),
        ("outputs: !!int x\n", "outputs", "line 1, column 10: cannot read this value as int"),
        ("outputs: !!float x\n", "outputs", "line 1, column 10: cannot read this value as float"),
        ("outputs: !!binary 'a'\n", "outputs", "line 1, column 10: cannot read this value as binary"),
        ("outputs: !!map x\n", "outputs", "line 1, column 10: cannot read this value as map"),
        ("outputs: !foo x\n", "outputs", "line 1, column 10: unsupported YAML tag '!foo'"),
        ("outputs: !foo [x]\n", "outputs", "line 1, column 10: unsupported YAML tag '!foo'"),
        (
            "outputs: !!set {a}\n",
            "outputs",
            "line 1, column 10: unsupported YAML tag 'tag:yaml.org,2002:set'",
        ),
        ("outputs: !!python/name:os.system x\n", "outputs", "line 1, column 10: unsupported YAML tag"),
        (f"outputs: {'9' * 5000}\n", "outputs", "line 1, column 10: cannot read this value as int"),
        ("outputs: []\noutputs: []\n", "outputs", "line 2, column 1: duplicate key"),
        ("? [a]\n: b\n", "", "line 1, column 3: a key must be a plain value, not a list or a mapping"),
        ("a b: !!bool x\n", '["a b"]', "line 1, column 6: cannot read this value as bool"),
        ("outputs:\n  - <<: 5\n", "outputs[0]", "line 2, column 9: a merge key ('<<') takes a mapping"),
    ],
)
def test_values_that_cannot_be_built_are_problems_with_their_path(text: str, path: str, message: str) -> None:
    assert problem_at(text, path).startswith(message)


def test_a_value_that_cannot_be_built_is_never_quoted() -> None:
    secret = "s3cr3t-join-token"
    text = f"teleport:\n  join_token: !!bool {secret}\n  ca_pem: !!int '-----BEGIN CERTIFICATE-----'\n"
    with pytest.raises(ConfigError) as excinfo:
        load_config(text + OUTPUT_YAML, env=ENV)
    error = str(excinfo.value)
    assert "teleport.join_token: line 2, column 15: cannot read this value as bool" in error
    assert secret not in error
    assert "BEGIN CERTIFICATE" not in error


def test_overflowing_duration() -> None:
    """`30000000000h` raised OverflowError from timedelta."""
    text = OUTPUT_YAML + "    credential_ttl: 30000000000h\n    renewal_interval: 20m\n"
    assert problem_at(text, "outputs[0].credential_ttl") == (
        "invalid duration: longer than Go's maximum duration (2562047h47m16.854775807s)"
    )


@pytest.mark.parametrize("text", ["2562048h", "9223372036854775808ns", "1" * 100_000 + "h", "2562047h60m"])
def test_parse_duration_refuses_what_overflows_gos_duration(text: str) -> None:
    with pytest.raises(ValueError, match="longer than Go's maximum duration"):
        parse_duration(text)


def test_parse_duration_at_gos_maximum() -> None:
    assert parse_duration("2562047h47m16.854775807s") == timedelta(
        hours=2562047, minutes=47, seconds=16, microseconds=854775
    )


def test_parse_duration_refuses_non_ascii_digits() -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("\u0663h")  # ARABIC-INDIC DIGIT THREE


def test_deep_flow_nesting_is_refused_before_it_is_built() -> None:
    """A 600-deep flow list raised RecursionError in PyYAML's composer."""
    [problem] = problems_of("outputs: " + "[" * 600 + "]" * 600 + "\n")
    assert problem.path == ""
    assert problem.message == "line 1, column 41: nested deeper than 32 levels"


def test_deep_block_nesting_is_refused() -> None:
    text = "".join(f"{'  ' * i}a{i}:\n" for i in range(40))
    [problem] = problems_of(text)
    assert problem.message.endswith("nested deeper than 32 levels")


def test_nesting_through_aliases_is_refused() -> None:
    """Each anchor nests the previous one 20 levels deeper: the text is shallow, the value is not."""
    lines = ["a0: &a0 x"] + [f"a{i}: &a{i} {'[' * 20}*a{i - 1}{']' * 20}" for i in range(1, 30)]
    problems = problems_of("\n".join(lines) + "\n")
    assert any(p.message.endswith("nested deeper than 32 levels (through aliases)") for p in problems)


def test_recursive_alias_is_refused() -> None:
    problems = problems_of("outputs: &a [*a]\n")
    assert any(p.message.endswith("nested deeper than 32 levels (through aliases)") for p in problems)


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert [str(p) for p in problems_of("\n".join(lines) + "\n")] == [
        "the document expands to more than 100000 values (aliases?)"
    ]


def test_merge_key_bomb_is_refused() -> None:
    lines = ["m0: &m0 {a: 1}"] + [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}" for i in range(1, 40)]
    assert [str(p) for p in problems_of("\n".join(lines) + "\n")] == [
        "the document expands to more than 100000 values (aliases?)"
    ]


def test_merge_keys_are_supported() -> None:
    text = """\
outputs:
  - &base {type: kubernetes/argo-cd, selectors: [{name: a}], secret_namespace: argocd, project: p}
  - <<: *base
    selectors: [{name: b}]
    secret_name_prefix: other
"""
    _, second = load_config(text, env=ENV).outputs
    assert second.secret_namespace == "argocd"
    assert second.project == "p"
    assert second.selectors == (Selector("b", {}),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\n---\nb: 2\n", "invalid YAML at line 2, column 1: but found another document"),
        ("a: \x07\n", "invalid YAML: unacceptable character #x0007: special characters are not allowed"),
        ("a: '\n", "invalid YAML at line 2, column 1: found unexpected end of stream"),
        ("a: *nowhere\n", "invalid YAML at line 1, column 4: found undefined alias 'nowhere'"),
    ],
)
def test_more_yaml_syntax_errors(text: str, message: str) -> None:
    [problem] = problems_of(text)
    assert problem.message.startswith(message)


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


# -- prune -----------------------------------------------------------------------------------


def test_prune_defaults() -> None:
    [output] = load_config(document(), env=ENV).outputs
    assert output.prune == PruneConfig(
        enabled=False,
        grace_period=timedelta(hours=1),
        min_listed_share=0.5,
        vanished_grace_period=timedelta(days=7),
        max_deletes_per_run=0.1,
    )


@pytest.mark.parametrize(
    ("prune", "expected"),
    [
        ({}, PruneConfig()),
        ({"enabled": True}, PruneConfig(enabled=True)),
        (
            {"enabled": True, "grace_period": "30m", "min_listed_share": 0.9},
            PruneConfig(True, timedelta(minutes=30), 0.9),
        ),
        ({"grace_period": "0s", "min_listed_share": 0}, PruneConfig(False, timedelta(0), 0.0)),
        ({"min_listed_share": 1}, PruneConfig(min_listed_share=1.0)),
        ({"vanished_grace_period": "72h"}, PruneConfig(vanished_grace_period=timedelta(days=3))),
        ({"max_deletes_per_run": 5}, PruneConfig(max_deletes_per_run=5)),
        ({"max_deletes_per_run": 0.25}, PruneConfig(max_deletes_per_run=0.25)),
    ],
)
def test_prune_settings(prune: dict[str, Any], expected: PruneConfig) -> None:
    [output] = load_config(document(prune=prune), env=ENV).outputs
    assert output.prune == expected


@pytest.mark.parametrize(
    ("prune", "path", "message"),
    [
        ("yes", "outputs[0].prune", "expected a mapping, got a string"),
        ({"enabled": "yes"}, "outputs[0].prune.enabled", "expected true or false, got a string"),
        ({"grace_period": "-1h"}, "outputs[0].prune.grace_period", "must not be negative"),
        (
            {"grace_period": 3600},
            "outputs[0].prune.grace_period",
            "expected a Go duration such as '1h' or '20m'",
        ),
        ({"grace_period": "1 hour"}, "outputs[0].prune.grace_period", "invalid duration '1 hour'"),
        ({"min_listed_share": 1.5}, "outputs[0].prune.min_listed_share", "must be from 0 to 1"),
        ({"min_listed_share": -0.1}, "outputs[0].prune.min_listed_share", "must be from 0 to 1"),
        ({"min_listed_share": float("nan")}, "outputs[0].prune.min_listed_share", "must be from 0 to 1"),
        ({"min_listed_share": True}, "outputs[0].prune.min_listed_share", "expected a number from 0 to 1"),
        ({"min_listed_share": "50%"}, "outputs[0].prune.min_listed_share", "expected a number from 0 to 1"),
        ({"vanished_grace_period": "-1h"}, "outputs[0].prune.vanished_grace_period", "must not be negative"),
        ({"max_deletes_per_run": 0}, "outputs[0].prune.max_deletes_per_run", "a count must be at least 1"),
        ({"max_deletes_per_run": 1.0}, "outputs[0].prune.max_deletes_per_run", "a share must be above 0"),
        ({"max_deletes_per_run": float("nan")}, "outputs[0].prune.max_deletes_per_run", "a share must be"),
        ({"max_deletes_per_run": "10%"}, "outputs[0].prune.max_deletes_per_run", "expected a count"),
        ({"max_deletes_per_run": True}, "outputs[0].prune.max_deletes_per_run", "expected a count"),
        (
            {"grace_periods": "1h"},
            "outputs[0].prune.grace_periods",
            "unknown key (did you mean 'grace_period'?)",
        ),
    ],
)
def test_prune_problems(prune: Any, path: str, message: str) -> None:
    assert problem_at(document(prune=prune), path).startswith(message)


def test_prune_from_yaml() -> None:
    text = OUTPUT_YAML + "    prune: {enabled: true, grace_period: 2h, min_listed_share: .75}\n"
    assert load_config(text, env=ENV).outputs[0].prune == PruneConfig(True, timedelta(hours=2), 0.75)


# -- tbot's credential lifetime limits ---------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "renewal", "message"),
    [
        (
            "10m",
            "20m",
            "10m is shorter than renewal_interval 20m: credentials would expire before they are renewed",
        ),
        ("25h", "20m", "must be at most 24h: Teleport issues no longer renewable certificates"),
    ],
)
def test_lifetime_limits(ttl: str, renewal: str, message: str) -> None:
    source = document(credential_ttl=ttl, renewal_interval=renewal)
    assert problem_at(source, "outputs[0].credential_ttl").startswith(message)


def test_longest_credential_ttl() -> None:
    source = {
        "outputs": [
            {"type": "kubernetes/argo-cd", "selectors": [{"name": "a"}]},
            {
                "type": "kubernetes/argo-cd",
                "selectors": [{"name": "b"}],
                "secret_name_prefix": "b",
                "credential_ttl": "3h",
                "renewal_interval": "1h",
            },
        ]
    }
    assert load_config(source, env=ENV).longest_credential_ttl == timedelta(hours=3)
    assert load_config(document(), env=ENV).longest_credential_ttl == timedelta(hours=1)


# -- allowed destinations --------------------------------------------------------------------


@pytest.mark.parametrize("allowed", ["argocd", "eu-west-1/argocd", "other, eu-west-1/argocd", "", " , "])
def test_allowed_eks_cluster(allowed: str) -> None:
    env = {**ENV, "ALLOWED_EKS_CLUSTERS": allowed}
    assert load_config(document(), env=env).outputs[0].destination == DEFAULT_DESTINATION


@pytest.mark.parametrize("allowed", ["other", "us-east-1/argocd", "argocd-2"])
def test_eks_cluster_outside_the_allowed_list(allowed: str) -> None:
    env = {**TELEPORT_ENV, "ALLOWED_EKS_CLUSTERS": allowed}
    source = document(destination={"eks": {"cluster_name": "argocd", "region": "eu-west-1"}})
    assert problem_at(source, "outputs[0].destination.eks.cluster_name", env=env) == (
        "EKS cluster eu-west-1/argocd is not allowed by this deployment (ALLOWED_EKS_CLUSTERS):"
        " add it to the template parameter AllowedEksClusters"
    )


def test_default_destination_outside_the_allowed_list_is_reported_at_its_variable() -> None:
    env = {**ENV, "ALLOWED_EKS_CLUSTERS": "other"}
    assert problem_at(document(), "DESTINATION_EKS_CLUSTER", env=env).startswith(
        "EKS cluster eu-west-1/argocd is not allowed"
    )


def test_allowed_kubeconfig_secret() -> None:
    env = {**TELEPORT_ENV, "ALLOWED_KUBECONFIG_SECRETS": f"{SECRET_ARN},arn:other"}
    source = document(destination={"kubeconfig_secret": {"secret_id": SECRET_ARN}})
    assert load_config(source, env=env).outputs[0].destination == KubeconfigSecretDestination(
        SECRET_ARN, None, None
    )


@pytest.mark.parametrize("secret_id", ["kc", SECRET_ARN.replace("123456789012", "210987654321")])
def test_kubeconfig_secret_outside_the_allowed_list(secret_id: str) -> None:
    env = {**TELEPORT_ENV, "ALLOWED_KUBECONFIG_SECRETS": SECRET_ARN}
    source = document(destination={"kubeconfig_secret": {"secret_id": secret_id}})
    message = problem_at(source, "outputs[0].destination.kubeconfig_secret.secret_id", env=env)
    assert message.endswith("add the ARN to the template parameter AllowedKubeconfigSecretArns")


def test_allow_lists_do_not_apply_to_the_other_kind() -> None:
    env = {**ENV, "ALLOWED_KUBECONFIG_SECRETS": SECRET_ARN}
    assert load_config(document(), env=env).outputs[0].destination == DEFAULT_DESTINATION


# -- two outputs writing the same Secrets --------------------------------------------------------


def _two_outputs(**second: Any) -> dict[str, Any]:
    first = {"type": "kubernetes/argo-cd", "name": "one", "selectors": [{"name": "a"}]}
    return {"outputs": [first, {**first, "name": "two", "selectors": [{"name": "b"}], **second}]}


def test_two_outputs_writing_the_same_secrets_are_refused() -> None:
    assert problem_at(_two_outputs(), "outputs[1].secret_name_prefix") == (
        "outputs[0] and outputs[1] would write the same Secrets (same destination, secret_namespace"
        " and secret_name_prefix): give one another secret_name_prefix"
    )


@pytest.mark.parametrize(
    "second",
    [
        {"secret_name_prefix": "other"},
        {"secret_namespace": "other"},
        {"destination": {"eks": {"cluster_name": "other", "region": "eu-west-1"}}},
        {"destination": {"eks": {"cluster_name": "argocd", "region": "us-east-1"}}},
    ],
)
def test_outputs_writing_different_secrets(second: dict[str, Any]) -> None:
    assert len(load_config(_two_outputs(**second), env=ENV).outputs) == 2


@pytest.mark.parametrize(
    "text", ["{{len .Labels.team}}", "{{index .Labels.team 0}}", '{{ .Labels.team | printf "%.3s" }}']
)
def test_label_and_annotation_templates_that_need_real_labels_are_accepted(text: str) -> None:
    """tbot executes only the cluster name template at load; these fail on an empty map and work on
    every cluster that has the label, so refusing them at load would refuse valid tbot configurations."""
    document = {
        "teleport": {"proxy_addr": "teleport.example.com", "join_token": "t"},
        "destination": {"eks": {"cluster_name": "argocd", "region": "eu-west-1"}},
        "outputs": [
            {
                "type": "kubernetes/argo-cd",
                "selectors": [{"labels": {"env": "prod"}}],
                "secret_labels": {"team-size": text},
                "secret_annotations": {"example.com/team": text},
            }
        ],
    }
    [output] = load_config(document, env={}).outputs
    assert output.secret_annotations["example.com/team"] == text
