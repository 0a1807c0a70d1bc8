"""The output section: tbot's rules and defaults, ours, lifetimes and pruning."""

from datetime import timedelta
from typing import Any

import pytest

from teleport_argocd.config import PruneConfig, Selector, load_config, parse_duration
from teleport_argocd.model import VERSION_ANNOTATION

from .documents import ENV, OUTPUT_YAML, document, problem_at, problems_of

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
            {"application_namespaces": ["team-a", "Team-B"]},
            "outputs[0].application_namespaces[1]",
            "'Team-B' is not a valid namespace name",
        ),
        (
            {"application_namespaces": ["team-*"]},
            "outputs[0].application_namespaces[0]",
            "'team-*' is a pattern: name each namespace it covers (Applications are listed namespace by"
            " namespace)",
        ),
        (
            {"application_namespaces": ["team-a", "team-a"]},
            "outputs[0].application_namespaces[1]",
            "'team-a' is listed twice",
        ),
        (
            {"application_namespaces": "team-a"},
            "outputs[0].application_namespaces",
            "expected a list, got a string",
        ),
        (
            {"application_namespaces": [""]},
            "outputs[0].application_namespaces[0]",
            "'' is not a valid namespace name",
        ),
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
        (
            {"namespaces": ["{{ .Labels.team }}-Apps"]},
            "outputs[0].namespaces[0]",
            "'{{ .Labels.team }}-Apps' is not a valid namespace name (it renders to 'a-Apps'",
        ),
        (
            {"project": "{{ .Labels.team"},
            "outputs[0].project",
            "invalid template: ",
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


def test_project_and_namespaces_may_be_templates_rendered_per_cluster() -> None:
    settings = {
        "project": '{{ index .Labels "argocd-project" }}',
        "namespaces": ["{{ .Labels.team }}", "shared"],
    }
    [output] = load_config(document(**settings), env=ENV).outputs
    assert output.project == '{{ index .Labels "argocd-project" }}'
    assert output.namespaces == ("{{ .Labels.team }}", "shared")


def test_applications_are_searched_in_argo_cds_namespace_unless_more_are_named() -> None:
    [plain] = load_config(document(secret_namespace="argocd"), env=ENV).outputs
    assert plain.application_namespaces == () and plain.application_search == ("argocd",)
    settings = {"secret_namespace": "argocd", "application_namespaces": ["team-a", "argocd", "team-b"]}
    [output] = load_config(document(**settings), env=ENV).outputs
    assert output.application_namespaces == ("team-a", "argocd", "team-b")
    assert output.application_search == ("argocd", "team-a", "team-b")
