"""Print the Kubernetes RBAC and admission policy the functions need for a configuration.

    .venv/bin/python scripts/rbac.py CONFIG.yaml [--user NAME | --group NAME] > rbac.yaml

One Role and RoleBinding per namespace the outputs write to (`secret_namespace`, defaulted as
the functions default it), and a ValidatingAdmissionPolicy (Kubernetes 1.30+) limiting creates to
the outputs' name prefixes and changes to Secrets teleport-argocd or tbot wrote. For outputs that
prune, one more Role and RoleBinding per namespace the pruning guard searches for Argo CD
Applications: `list` on applications.argoproj.io, nothing else. Apply it in the cluster running
Argo CD.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "core"))

from teleport_argocd.config import load_config
from teleport_argocd.config.types import Config, WriteMode
from teleport_argocd.errors import ConfigError
from teleport_argocd.model import (
    KUBE_CLUSTER_ANNOTATION,
    SECRET_TYPE_LABEL,
    TBOT_VERSION_ANNOTATION,
    TELEPORT_CLUSTER_ANNOTATION,
    VERSION_ANNOTATION,
)

# Least privilege: RBAC grants exactly the verbs `kube` uses on Secrets in each namespace an output
# writes to. With `write_mode: apply` (the default) that is patch (server-side apply and the JSON
# patch of a takeover), create (the API server also authorises an apply that creates as `create`)
# and delete: no get, list or watch, so no Secret there can be read. `patch` alone would still
# read any Secret (a patch answers with the object), and RBAC cannot narrow any verb to our names,
# so a ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.30+) limits the
# same identity: create only Argo CD cluster Secrets named with an output's prefix in that output's
# namespace; change or delete only such a Secret that already carries our version annotation or
# tbot's, and never remove that mark. `write_mode: read-first` needs get, create, update and
# delete instead. The layer does not import this: it is needed at deploy time only.
NAME = "teleport-argocd-cluster-secrets"
DEFAULT_GROUP = "teleport-argocd-secret-writers"
VERBS: dict[WriteMode, tuple[str, ...]] = {
    "apply": ("patch", "create", "delete"),
    "read-first": ("get", "create", "update", "delete"),
}
OWNER_ANNOTATIONS = (VERSION_ANNOTATION, TBOT_VERSION_ANNOTATION)
# Which cluster a Secret is for: never changed by an update (two clusters can hash to one name).
CLUSTER_ANNOTATIONS = (TELEPORT_CLUSTER_ANNOTATION, KUBE_CLUSTER_ANNOTATION)
LABELS = {"app.kubernetes.io/name": "teleport-argocd"}
# The pruning guard reads Argo CD Applications (destination.secrets.SecretStore.list_applications):
# only `list`, and only where an output that prunes looks (its secret_namespace and
# application_namespaces).
APPLICATIONS_NAME = "teleport-argocd-applications-reader"


@dataclass(frozen=True)
class Subject:
    """Who the functions are in the cluster: an EKS access-entry group, or a kubeconfig's user."""

    kind: str  # "Group" or "User"
    name: str

    def cel_match(self) -> str:
        """CEL that is true for requests made by this subject."""
        if self.kind == "Group":
            return f"{_cel_string(self.name)} in request.userInfo.groups"
        return f"request.userInfo.username == {_cel_string(self.name)}"


def writes(config: Config) -> dict[str, tuple[str, ...]]:
    """The Secret name prefixes each namespace receives, namespaces and prefixes sorted."""
    found: dict[str, set[str]] = {}
    for output in config.outputs:
        found.setdefault(output.secret_namespace, set()).add(output.secret_name_prefix)
    return {ns: tuple(sorted(prefixes)) for ns, prefixes in sorted(found.items())}


def searches(config: Config) -> tuple[str, ...]:
    """The namespaces the pruning guard lists Applications in, sorted: those of outputs that prune."""
    return tuple(sorted({ns for o in config.outputs if o.prune.enabled for ns in o.application_search}))


def verbs(config: Config) -> dict[str, tuple[str, ...]]:
    """The verbs on Secrets each namespace needs, from the write modes of the outputs writing there."""
    found: dict[str, set[str]] = {}
    for output in config.outputs:
        found.setdefault(output.secret_namespace, set()).update(VERBS[output.destination.write_mode])
    order = ("get", "patch", "create", "update", "delete")
    return {ns: tuple(v for v in order if v in granted) for ns, granted in sorted(found.items())}


def manifests(config: Config, subject: Subject) -> list[dict[str, Any]]:
    """One Role and RoleBinding per namespace, then the admission policy and its binding, then the
    Applications readers of the pruning guard."""
    targets = writes(config)
    granted = verbs(config)
    result: list[dict[str, Any]] = []
    for namespace in targets:
        result += [role(namespace, granted[namespace]), role_binding(namespace, subject)]
    readers: list[dict[str, Any]] = []
    for namespace in searches(config):
        readers += [application_role(namespace), application_role_binding(namespace, subject)]
    return [*result, admission_policy(targets, subject), admission_binding(targets), *readers]


def application_role(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": APPLICATIONS_NAME, "namespace": namespace, "labels": dict(LABELS)},
        "rules": [{"apiGroups": ["argoproj.io"], "resources": ["applications"], "verbs": ["list"]}],
    }


def application_role_binding(namespace: str, subject: Subject) -> dict[str, Any]:
    binding = role_binding(namespace, subject)
    binding["metadata"]["name"] = binding["roleRef"]["name"] = APPLICATIONS_NAME
    return binding


def role(namespace: str, granted: tuple[str, ...]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": NAME, "namespace": namespace, "labels": dict(LABELS)},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": list(granted)}],
    }


def role_binding(namespace: str, subject: Subject) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": NAME, "namespace": namespace, "labels": dict(LABELS)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": subject.kind, "name": subject.name}],
    }


def secret_check(var: str, targets: dict[str, tuple[str, ...]]) -> str:
    """CEL: the Secret `var` is named with a prefix of its namespace and labelled as a cluster."""
    places = " || ".join(
        f"(request.namespace == {_cel_string(ns)} && "
        + _any(f"{var}.metadata.name.startsWith({_cel_string(prefix + '.')})" for prefix in prefixes)
        + ")"
        for ns, prefixes in targets.items()
    )
    label = _cel_string(SECRET_TYPE_LABEL)
    return (
        f"(({places}) && has({var}.metadata.labels) && {label} in {var}.metadata.labels"
        f" && {var}.metadata.labels[{label}] == {_cel_string('cluster')})"
    )


def owned(var: str) -> str:
    """CEL: the Secret `var` carries our version annotation or tbot's."""
    keys = " || ".join(f"{_cel_string(key)} in {var}.metadata.annotations" for key in OWNER_ANNOTATIONS)
    return f"(has({var}.metadata.annotations) && ({keys}))"


def same_cluster() -> str:
    """CEL: an update keeps each cluster annotation the old Secret has."""
    terms = []
    for key in map(_cel_string, CLUSTER_ANNOTATIONS):
        old, new = f"oldObject.metadata.annotations[{key}]", f"object.metadata.annotations[{key}]"
        terms.append(
            f"(!({key} in oldObject.metadata.annotations) || (has(object.metadata.annotations)"
            f" && {key} in object.metadata.annotations && {new} == {old}))"
        )
    return "(!has(oldObject.metadata.annotations) || (" + " && ".join(terms) + "))"


def admission_policy(targets: dict[str, tuple[str, ...]], subject: Subject) -> dict[str, Any]:
    # CREATE has no oldObject and DELETE no object (null). An UPDATE (patches and applies included)
    # must find a Secret of ours or tbot's and leave one of ours or tbot's, so none is taken over,
    # read through a patch's answer, or given away by relabelling.
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": NAME, "labels": dict(LABELS)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE", "DELETE"],
                        "resources": ["secrets"],
                    }
                ]
            },
            "matchConditions": [{"name": "teleport-argocd-identity", "expression": subject.cel_match()}],
            "validations": [
                {
                    "expression": 'request.operation == "DELETE" || ' + secret_check("object", targets),
                    "message": "teleport-argocd may only write Argo CD cluster Secrets with its name prefix",
                    "reason": "Forbidden",
                },
                {
                    "expression": 'request.operation == "CREATE" || ('
                    + secret_check("oldObject", targets)
                    + " && "
                    + owned("oldObject")
                    + ")",
                    "message": "teleport-argocd may only change or delete Argo CD cluster Secrets that "
                    "teleport-argocd or tbot wrote",
                    "reason": "Forbidden",
                },
                {
                    "expression": 'request.operation != "UPDATE" || ' + owned("object"),
                    "message": "teleport-argocd may not remove the mark of the Secrets it writes",
                    "reason": "Forbidden",
                },
                {
                    "expression": 'request.operation != "UPDATE" || ' + same_cluster(),
                    "message": "teleport-argocd may not change a Secret written for another cluster",
                    "reason": "Forbidden",
                },
            ],
        },
    }


def admission_binding(targets: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": NAME, "labels": dict(LABELS)},
        "spec": {
            "policyName": NAME,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {
                    "matchExpressions": [
                        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(targets)}
                    ]
                }
            },
        },
    }


def _any(terms: Iterable[str]) -> str:
    items = list(terms)
    return items[0] if len(items) == 1 else "(" + " || ".join(items) + ")"


def _cel_string(value: str) -> str:
    """A CEL string literal (CEL accepts JSON's double-quoted escapes)."""
    return json.dumps(value)


# What a document may leave to the deployment; none of it changes the namespaces or prefixes.
PLACEHOLDERS = {
    "TELEPORT_PROXY_ADDR": "teleport.invalid:443",
    "TELEPORT_JOIN_TOKEN": "rbac",
    "DESTINATION_KUBECONFIG_SECRET": "rbac",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path, help="the YAML configuration (as stored in SSM)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--group", help=f"Kubernetes group of the functions (default {DEFAULT_GROUP})")
    who.add_argument("--user", help="Kubernetes user of the functions (e.g. a kubeconfig's user)")
    args = parser.parse_args(argv)

    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOWED_")}
    if not env.get("DESTINATION_EKS_CLUSTER"):
        env = {**PLACEHOLDERS, **env}
    try:
        config = load_config(args.config.read_text(), env=env)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    subject = Subject("User", args.user) if args.user else Subject("Group", args.group or DEFAULT_GROUP)
    sys.stdout.write(yaml.safe_dump_all(manifests(config, subject), sort_keys=False, width=100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
