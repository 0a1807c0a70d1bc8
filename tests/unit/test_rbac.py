"""RBAC and admission policy from the configuration: exact verbs, valid Kubernetes objects, and
a CEL policy that admits our writes and nothing else (evaluated offline with cel-python)."""

from __future__ import annotations

import re
from typing import Any

import celpy
import kubernetes.client
import pytest
import yaml
from kubernetes.client import models

from scripts import rbac
from standins.template import ROOT
from teleport_argocd.config import load_config
from teleport_argocd.model import (
    KUBE_CLUSTER_ANNOTATION,
    SECRET_TYPE_LABEL,
    TBOT_VERSION_ANNOTATION,
    VERSION_ANNOTATION,
)

CONFIG = """
teleport: {proxy_addr: teleport.example.com, join_token: t}
destination: {eks: {cluster_name: argocd, region: eu-west-1}}
outputs:
  - {type: kubernetes/argo-cd, name: prod, selectors: [{labels: {env: prod}}], secret_namespace: argocd}
  - type: kubernetes/argo-cd
    name: tools
    selectors: [{name: tools}]
    secret_namespace: argocd
    secret_name_prefix: tools.cluster
  - type: kubernetes/argo-cd
    name: staging
    selectors: [{labels: {env: staging}}]
    secret_namespace: argocd-staging
"""
DESTINATION = ROOT / "layers/core/teleport_argocd/destination"
GROUP = rbac.Subject("Group", rbac.DEFAULT_GROUP)
DOCS = rbac.manifests(load_config(CONFIG, env={}), GROUP)
POLICY = next(d for d in DOCS if d["kind"] == "ValidatingAdmissionPolicy")


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in DOCS if d["kind"] == kind]


def test_one_role_and_binding_per_namespace_written_to() -> None:
    assert [d["kind"] for d in DOCS] == [
        "Role",
        "RoleBinding",
        "Role",
        "RoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    assert [r["metadata"]["namespace"] for r in of_kind("Role")] == ["argocd", "argocd-staging"]
    assert [b["metadata"]["namespace"] for b in of_kind("RoleBinding")] == ["argocd", "argocd-staging"]
    binding = of_kind("ValidatingAdmissionPolicyBinding")[0]["spec"]
    assert binding["matchResources"]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "argocd",
        "argocd-staging",
    ]


def test_roles_grant_exactly_the_verbs_the_writer_uses() -> None:
    """Apply mode: patch (applies and the takeover's JSON patch), create (an apply that creates is
    also authorised as create) and delete; nothing that reads."""
    for role in of_kind("Role"):
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["patch", "create", "delete"]}
        ]


def test_read_first_mode_grants_what_it_uses() -> None:
    config = load_config(
        CONFIG.replace("region: eu-west-1}", "region: eu-west-1}, write_mode: read-first"), env={}
    )
    roles = [d for d in rbac.manifests(config, GROUP) if d["kind"] == "Role"]
    assert [r["rules"][0]["verbs"] for r in roles] == [["get", "create", "update", "delete"]] * 2


def test_the_writer_uses_no_other_method() -> None:
    """Each mode's methods, read from the writer's source, map onto exactly that mode's verbs."""
    apply_part = (DESTINATION / "apply.py").read_text()
    read_first_part = (DESTINATION / "read_first.py").read_text()
    verbs = {"GET": "get", "POST": "create", "PUT": "update", "DELETE": "delete", "PATCH": "patch"}

    def methods(code: str) -> set[str]:
        return set(re.findall(r'\.send\(\s*op,\s*"([A-Z]+)"', code))

    assert {verbs[m] for m in methods(apply_part)} | {"create"} == set(rbac.VERBS["apply"])
    assert {verbs[m] for m in methods(read_first_part)} == set(rbac.VERBS["read-first"])


def test_bindings_name_the_user_or_the_group() -> None:
    user = rbac.manifests(load_config(CONFIG, env={}), rbac.Subject("User", "argocd-writer"))
    subjects = [d["subjects"] for d in user if d["kind"] == "RoleBinding"]
    expected = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "argocd-writer"}
    assert subjects == [[expected], [expected]]
    assert [d["subjects"][0]["kind"] for d in of_kind("RoleBinding")] == ["Group", "Group"]


# -- against the Kubernetes API schema (the official client's models) --------------------------

PRIMITIVES = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


def strict(data: Any, type_name: str, path: str = "") -> None:
    """Fail on any field the model does not declare, or a value of the wrong type."""
    if match := re.fullmatch(r"List\[(.+)\]", type_name):
        assert isinstance(data, list), path
        for i, item in enumerate(data):
            strict(item, match[1], f"{path}[{i}]")
    elif match := re.fullmatch(r"Dict\[str, (.+)\]", type_name):
        assert isinstance(data, dict), path
        for key, value in data.items():
            strict(value, match[1], f"{path}.{key}")
    elif type_name in PRIMITIVES:
        assert isinstance(data, PRIMITIVES[type_name]), f"{path}: {data!r} is not {type_name}"
    else:
        model = getattr(models, type_name)
        fields = {json_name: attr for attr, json_name in model.attribute_map.items()}
        assert isinstance(data, dict), path
        unknown = set(data) - set(fields)
        assert not unknown, f"{path}: {type_name} has no field(s) {sorted(unknown)}"
        for key, value in data.items():
            strict(value, model.openapi_types[fields[key]], f"{path}.{key}")


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['kind']}-{d['metadata'].get('namespace', '')}")
def test_manifest_is_a_valid_kubernetes_object(doc: dict[str, Any]) -> None:
    type_name = "V1" + doc["kind"]
    strict(doc, type_name)
    # The client's deserializer checks required fields and enumerations.
    obj = kubernetes.client.ApiClient()._ApiClient__deserialize(doc, type_name)  # type: ignore[attr-defined]
    assert obj.kind == doc["kind"] and obj.api_version == doc["apiVersion"]


def test_strict_check_catches_an_unknown_field() -> None:
    with pytest.raises(AssertionError, match="verb"):
        strict({**of_kind("Role")[0], "rules": [{"resources": ["secrets"], "verb": ["get"]}]}, "V1Role")


# -- the policy's CEL on sample admission requests ---------------------------------------------

ENV = celpy.Environment()


def cel(expression: str, request: dict[str, Any], obj: Any, old: Any) -> bool:
    program = ENV.program(ENV.compile(expression))
    activation = {"request": request, "object": obj, "oldObject": old}
    return bool(program.evaluate({k: celpy.json_to_cel(v) for k, v in activation.items()}))


def secret(
    name: str,
    *,
    label: str | None = "cluster",
    namespace: str = "argocd",
    mark: str | None = VERSION_ANNOTATION,
    cluster: str = "kube-1",
) -> dict[str, Any]:
    labels = {} if label is None else {SECRET_TYPE_LABEL: label}
    annotations = {KUBE_CLUSTER_ANNOTATION: cluster, **({mark: "1"} if mark else {})}
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations}}


def admitted(
    operation: str,
    obj: Any,
    old: Any,
    *,
    namespace: str = "argocd",
    groups: tuple[str, ...] = (rbac.DEFAULT_GROUP, "system:authenticated"),
) -> bool:
    request = {
        "operation": operation,
        "namespace": namespace,
        "userInfo": {"username": "arn:aws:sts::1:assumed-role/r/s", "groups": list(groups)},
    }
    spec = POLICY["spec"]
    if not all(cel(c["expression"], request, obj, old) for c in spec["matchConditions"]):
        return True  # the policy does not apply to anyone else
    return all(cel(v["expression"], request, obj, old) for v in spec["validations"])


OURS = "teleport.argocd-cluster.0123456789abcdef"
TOOLS = "tools.cluster.0123456789abcdef"


def test_our_writes_are_admitted() -> None:
    assert admitted("CREATE", secret(OURS), None)
    assert admitted("CREATE", secret(TOOLS), None)
    assert admitted("UPDATE", secret(OURS), secret(OURS))
    assert admitted("UPDATE", secret(OURS), secret(OURS, mark=TBOT_VERSION_ANNOTATION))  # a takeover
    assert admitted("DELETE", None, secret(OURS))
    assert admitted("CREATE", secret(OURS, namespace="argocd-staging"), None, namespace="argocd-staging")


@pytest.mark.parametrize(
    ("operation", "obj", "old", "namespace"),
    [
        ("CREATE", secret("argocd-secret"), None, "argocd"),  # not our prefix
        ("CREATE", secret("teleport.argocd-clusterX"), None, "argocd"),  # prefix without the dot
        ("CREATE", secret(OURS, label=None), None, "argocd"),  # no cluster label
        ("CREATE", secret(OURS, label="repository"), None, "argocd"),
        # tools.cluster is written to argocd only, not to argocd-staging
        ("CREATE", secret(TOOLS, namespace="argocd-staging"), None, "argocd-staging"),
        ("UPDATE", secret(OURS, label="repository"), secret(OURS), "argocd"),  # giving one away
        ("UPDATE", secret(OURS), secret(OURS, label=None), "argocd"),  # taking one over
        ("DELETE", None, secret("argocd-secret"), "argocd"),
        ("DELETE", None, secret(OURS, label=None), "argocd"),
        # a Secret in the way that neither we nor tbot wrote: no change, no delete, no read by patch
        ("UPDATE", secret(OURS), secret(OURS, mark=None), "argocd"),
        ("UPDATE", secret(OURS, mark=None), secret(OURS, mark=None), "argocd"),
        ("DELETE", None, secret(OURS, mark=None), "argocd"),
        # our mark removed, or the Secret of another cluster (a name both hash to) rewritten
        ("UPDATE", secret(OURS, mark=None), secret(OURS), "argocd"),
        ("UPDATE", secret(OURS, cluster="kube-2"), secret(OURS), "argocd"),
    ],
)
def test_everything_else_is_denied(operation: str, obj: Any, old: Any, namespace: str) -> None:
    assert not admitted(operation, obj, old, namespace=namespace)


def test_the_policy_leaves_other_identities_alone() -> None:
    assert admitted("DELETE", None, secret("argocd-secret"), groups=("system:masters",))
    users = rbac.manifests(load_config(CONFIG, env={}), rbac.Subject("User", "writer"))
    policy = next(d for d in users if d["kind"] == "ValidatingAdmissionPolicy")
    condition = policy["spec"]["matchConditions"][0]
    request = {"userInfo": {"username": "writer", "groups": []}}
    assert cel(condition["expression"], request, None, None)
    assert not cel(condition["expression"], {"userInfo": {"username": "other", "groups": []}}, None, None)


# -- the command and the committed default -----------------------------------------------------


def test_committed_rbac_is_the_example_configuration_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert rbac.main([str(ROOT / "deploy/config.example.yaml")]) == 0
    generated = list(yaml.safe_load_all(capsys.readouterr().out))
    committed = list(yaml.safe_load_all((ROOT / "deploy/kubernetes/rbac.yaml").read_text()))
    assert committed == generated, "regenerate: see the header of deploy/kubernetes/rbac.yaml"


def test_command_reports_an_invalid_configuration(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("outputs: [{type: kubernetes/argo-cd, selectors: [], secret_namespace: Not_Valid}]\n")
    assert rbac.main([str(path), "--user", "u"]) == 1
    assert "secret_namespace" in capsys.readouterr().err


# -- the pruning guard's read --------------------------------------------------------------------

PRUNING = """
teleport: {proxy_addr: teleport.example.com, join_token: t}
destination: {eks: {cluster_name: argocd, region: eu-west-1}}
outputs:
  - type: kubernetes/argo-cd
    name: prod
    selectors: [{labels: {env: prod}}]
    secret_namespace: argocd
    application_namespaces: [team-a, team-b]
    prune: {enabled: true}
  - type: kubernetes/argo-cd
    name: staging
    selectors: [{labels: {env: staging}}]
    secret_namespace: argocd-staging
    application_namespaces: [team-c]
"""


def test_outputs_that_prune_may_list_applications_where_they_look_and_nothing_more() -> None:
    docs = rbac.manifests(load_config(PRUNING, env={}), GROUP)
    readers = [d for d in docs if d["metadata"]["name"] == rbac.APPLICATIONS_NAME]
    assert [(d["kind"], d["metadata"]["namespace"]) for d in readers] == [
        ("Role", "argocd"),
        ("RoleBinding", "argocd"),
        ("Role", "team-a"),
        ("RoleBinding", "team-a"),
        ("Role", "team-b"),
        ("RoleBinding", "team-b"),
    ]  # not team-c nor argocd-staging: the staging output does not prune, so never lists
    for doc in readers:
        strict(doc, "V1" + doc["kind"])  # valid Kubernetes objects, no unknown field
    for role in (d for d in readers if d["kind"] == "Role"):
        assert role["rules"] == [
            {"apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": ["list"]}
        ]
    for binding in (d for d in readers if d["kind"] == "RoleBinding"):
        assert binding["roleRef"]["name"] == rbac.APPLICATIONS_NAME
        assert binding["subjects"] == [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": rbac.DEFAULT_GROUP}
        ]
    # The Secret writers' Roles are untouched by it.
    assert [
        d["metadata"]["namespace"] for d in docs if d["metadata"]["name"] == rbac.NAME and d["kind"] == "Role"
    ] == [
        "argocd",
        "argocd-staging",
    ]


def test_the_guard_reads_applications_by_the_one_path_the_role_covers() -> None:
    source = "".join(p.read_text() for p in sorted(DESTINATION.glob("*.py")))
    assert re.findall(r"/apis/([a-z.]+)/(v[0-9a-z]+)/namespaces/\{namespace\}/([a-z]+)", source) == [
        ("argoproj.io", "v1alpha1", "applications")
    ]
