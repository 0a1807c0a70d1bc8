"""The `outputs` section: tbot's `kubernetes/argo-cd` output, its rules beside ours.

tbot keeps these rules in `argocd_output_config.go`; the checks it lacks are values that
Kubernetes or Argo CD would only refuse later, at the first write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from teleport_argocd import gotemplate, k8snames
from teleport_argocd.config.destination import read_destination
from teleport_argocd.config.problems import Reader, kind
from teleport_argocd.config.types import (
    DEFAULT_CLUSTER_NAME_TEMPLATE,
    DEFAULT_CREDENTIAL_TTL,
    DEFAULT_MAX_DELETES_PER_RUN,
    DEFAULT_MIN_LISTED_SHARE,
    DEFAULT_PRUNE_GRACE_PERIOD,
    DEFAULT_RENEWAL_INTERVAL,
    DEFAULT_VANISHED_GRACE_PERIOD,
    MAX_CREDENTIAL_TTL,
    MAX_USEFUL_CREDENTIAL_TTL,
    OUTPUT_TYPE,
    Destination,
    OutputConfig,
    PruneConfig,
    Selector,
)
from teleport_argocd.model import DEFAULT_SECRET_NAME_PREFIX, RESERVED_LABELS, is_reserved_annotation

SELECTOR_KEYS = ("name", "labels", "default_namespace")
OUTPUT_KEYS = (
    "type",
    "name",
    "destination",
    "selectors",
    "secret_namespace",
    "secret_name_prefix",
    "secret_labels",
    "secret_annotations",
    "project",
    "namespaces",
    "cluster_resources",
    "cluster_name_template",
    "credential_ttl",
    "renewal_interval",
    "prune",
    "application_namespaces",
)
PRUNE_KEYS = ("enabled", "grace_period", "min_listed_share", "vanished_grace_period", "max_deletes_per_run")
_OUTPUT_NAME = re.compile(r"[A-Za-z0-9_+-]+")
# The Secret name adds "." and 16 hex digits to the prefix.
_MAX_PREFIX_LENGTH = 253 - 17


def read_outputs(reader: Reader, value: Any, default: Destination | None) -> tuple[OutputConfig, ...]:
    """The `outputs` list; `default` serves the outputs that name no destination."""
    items = reader.sequence(value, "outputs")
    if not items:
        if value is None or items == []:
            reader.problem("outputs", "at least one output is required")
        return ()
    outputs: list[OutputConfig] = []
    seen: dict[str, str] = {}
    writers: dict[tuple[Destination, str, str], str] = {}
    for i, item in enumerate(items):
        path = f"outputs[{i}]"
        output = _output(reader, item, path, default)
        if output is None:
            continue
        if output.name in seen:
            reader.problem(
                f"{path}.name", f"output name {output.name!r} is already used by {seen[output.name]}"
            )
        seen.setdefault(output.name, path)
        # Secret names are the prefix and a hash of the cluster: two such outputs would overwrite
        # and prune each other's Secrets.
        writes = (output.destination, output.secret_namespace, output.secret_name_prefix)
        if writes in writers:
            reader.problem(
                f"{path}.secret_name_prefix",
                f"{writers[writes]} and {path} would write the same Secrets (same destination,"
                " secret_namespace and secret_name_prefix): give one another secret_name_prefix",
            )
        writers.setdefault(writes, path)
        outputs.append(output)
    return tuple(outputs)


def _output(reader: Reader, value: Any, path: str, default: Destination | None) -> OutputConfig | None:
    section = reader.mapping(value, path, OUTPUT_KEYS)
    if section is None:
        return None
    before = len(reader.problems)
    _output_type(reader, section.get("type"), f"{path}.type")
    selectors = _selectors(reader, section.get("selectors"), f"{path}.selectors")
    name = reader.string(section.get("name"), f"{path}.name")
    if name and not _OUTPUT_NAME.fullmatch(name):
        reader.problem(f"{path}.name", "may only contain letters, digits, '-', '_' and '+'")
    if section.get("destination") is not None:
        destination = read_destination(reader, section["destination"], f"{path}.destination")
    else:
        destination = default
        if destination is None:
            reader.problem(f"{path}.destination", "required: no default destination is configured")
    secret_namespace = (
        reader.string(section.get("secret_namespace"), f"{path}.secret_namespace")
        or reader.env.get("POD_NAMESPACE")
        or "default"
    )
    if not k8snames.is_dns_label(secret_namespace):
        reader.problem(f"{path}.secret_namespace", f"{secret_namespace!r} is not a valid namespace name")
    prefix = _secret_name_prefix(reader, section.get("secret_name_prefix"), f"{path}.secret_name_prefix")
    secret_labels = reader.string_map(section.get("secret_labels"), f"{path}.secret_labels")
    for key, text in secret_labels.items():
        _secret_label(reader, key, text, f"{path}.secret_labels[{json.dumps(key)}]")
    secret_annotations = reader.string_map(section.get("secret_annotations"), f"{path}.secret_annotations")
    for key, text in secret_annotations.items():
        _secret_annotation(reader, key, text, f"{path}.secret_annotations[{json.dumps(key)}]")
    project = reader.string(section.get("project"), f"{path}.project")
    if project:
        _template(reader, project, f"{path}.project")  # any text, as tbot takes it; a template too
    namespaces = _namespaces(reader, section.get("namespaces"), f"{path}.namespaces")
    cluster_resources = reader.boolean(section.get("cluster_resources"), f"{path}.cluster_resources")
    if cluster_resources and not namespaces:
        reader.problem(f"{path}.cluster_resources", "only applicable if namespaces is also set")
    template = _cluster_name_template(
        reader, section.get("cluster_name_template"), f"{path}.cluster_name_template"
    )
    credential_ttl, renewal_interval = _lifetime(reader, section, path)
    prune = _prune(reader, section.get("prune"), f"{path}.prune")
    application_namespaces = _application_namespaces(
        reader, section.get("application_namespaces"), f"{path}.application_namespaces"
    )
    if len(reader.problems) > before or destination is None:
        return None
    return OutputConfig(
        name=name or f"kubernetes-argo-cd-output ({', '.join(str(s) for s in selectors)})",
        selectors=selectors,
        destination=destination,
        secret_namespace=secret_namespace,
        secret_name_prefix=prefix,
        secret_labels=secret_labels,
        secret_annotations=secret_annotations,
        project=project,
        namespaces=namespaces,
        cluster_resources=cluster_resources,
        cluster_name_template=template,
        credential_ttl=credential_ttl,
        renewal_interval=renewal_interval,
        prune=prune,
        application_namespaces=application_namespaces,
    )


def _output_type(reader: Reader, value: Any, path: str) -> None:
    if value in (None, ""):
        reader.problem(path, f"required (the only supported type is {OUTPUT_TYPE!r})")
    elif reader.string(value, path) not in ("", OUTPUT_TYPE):
        reader.problem(path, f"unsupported output type {value!r}; only {OUTPUT_TYPE!r} is supported")


def _selectors(reader: Reader, value: Any, path: str) -> tuple[Selector, ...]:
    items = reader.sequence(value, path)
    if not items:
        if value is None or items == []:
            reader.problem(path, "at least one selector is required")
        return ()
    selectors: list[Selector] = []
    for i, item in enumerate(items):
        item_path = f"{path}[{i}]"
        section = reader.mapping(item, item_path, SELECTOR_KEYS)
        if section is None:
            continue
        name = reader.string(section.get("name"), f"{item_path}.name")
        labels = reader.string_map(section.get("labels"), f"{item_path}.labels")
        if section.get("default_namespace") is not None:
            reader.warn(f"{item_path}.default_namespace", "ignored: it only applies to kubernetes/v2 outputs")
        if not name and not labels:
            reader.problem(item_path, "one of 'name' and 'labels' must be specified")
        elif name and labels:
            reader.problem(item_path, "only one of 'name' and 'labels' may be specified")
        selectors.append(Selector(name or None, labels))
    return tuple(selectors)


def _secret_name_prefix(reader: Reader, value: Any, path: str) -> str:
    prefix = reader.string(value, path) or DEFAULT_SECRET_NAME_PREFIX
    # tbot's check: Kubernetes' name-prefix validation, which tolerates one trailing '-'.
    masked = prefix[:-1] + "a" if len(prefix) > 1 and prefix.endswith("-") else prefix
    if not k8snames.is_dns_subdomain(masked):
        reader.problem(
            path, "secret_name_prefix may only include lowercase letters, numbers, '-' and '.' characters"
        )
    elif prefix.endswith("-"):
        reader.problem(path, f"must not end with '-': Kubernetes refuses the Secret name {prefix}.<hash>")
    elif len(prefix) > _MAX_PREFIX_LENGTH:
        reader.problem(
            path,
            f"must be at most {_MAX_PREFIX_LENGTH} characters:"
            " the Secret name (prefix + '.' + 16 hex digits) is limited to 253",
        )
    return prefix


def _namespaces(reader: Reader, value: Any, path: str) -> tuple[str, ...]:
    namespaces = reader.string_list(value, path)
    for i, namespace in enumerate(namespaces):
        if not namespace.strip():
            reader.problem(f"{path}[{i}]", "cannot be blank")
        else:
            _name_template(reader, namespace, f"{path}[{i}]", k8snames.is_dns_label, "a valid namespace name")
    return tuple(namespaces)


def _application_namespaces(reader: Reader, value: Any, path: str) -> tuple[str, ...]:
    """Namespace names, each once. Argo CD's `application.namespaces` also takes shell patterns and
    regular expressions, but Applications are listed namespace by namespace (a Role per namespace, no
    cluster-wide list), so each namespace a pattern covers is named here."""
    namespaces = reader.string_list(value, path)
    seen: set[str] = set()
    for i, namespace in enumerate(namespaces):
        if any(c in namespace for c in "*?[]/"):
            reader.problem(
                f"{path}[{i}]",
                f"{namespace!r} is a pattern: name each namespace it covers (Applications are listed"
                " namespace by namespace)",
            )
        elif not k8snames.is_dns_label(namespace):
            reader.problem(f"{path}[{i}]", f"{namespace!r} is not a valid namespace name")
        elif namespace in seen:
            reader.problem(f"{path}[{i}]", f"{namespace!r} is listed twice")
        seen.add(namespace)
    return tuple(namespaces)


def _name_template(reader: Reader, text: str, path: str, valid: Callable[[str], bool], what: str) -> None:
    """A namespace: a template rendered per cluster (tbot takes it literally, and a string without
    actions renders to itself). What its static text makes invalid for every
    cluster is refused here; what depends on a cluster's labels is judged when it renders."""
    template = _template(reader, text, path)
    sample = None if template is None else _sample(template)
    if sample and not valid(sample):
        example = "" if sample == text else f" (it renders to {sample!r} with every label 'a')"
        reader.problem(path, f"{text!r} is not {what}{example}")


def _sample(template: gotemplate.Template) -> str | None:
    """The template rendered with every variable "a": what is invalid in it is in the static text and
    always will be. None where the rendering depends on the real labels (e.g. an index past "a"):
    that is judged per cluster when it renders."""
    try:
        return template.render(ClusterName="a", KubeName="a", Labels=_AnyLabel())
    except gotemplate.TemplateError:
        return None


def _cluster_name_template(reader: Reader, value: Any, path: str) -> str:
    text = reader.string(value, path) or DEFAULT_CLUSTER_NAME_TEMPLATE
    template = _template(reader, text, path, execute=True)
    if template is not None and "KubeName" not in template.fields_used:
        reader.problem(
            path, "must use {{.KubeName}}: without it every cluster gets the same Argo CD cluster name"
        )
    return text


def _secret_label(reader: Reader, key: str, text: str, path: str) -> None:
    if key in RESERVED_LABELS:
        reader.problem(path, "this label is set by teleport-argocd and cannot be overridden")
    elif problem := k8snames.qualified_name_problem(key):
        reader.problem(path, f"invalid label key: {problem}")
    template = _template(reader, text, path)
    sample = None if template is None else _sample(template)
    if sample is not None and (problem := k8snames.label_value_problem(sample)):
        reader.problem(path, f"invalid label value {text!r}: {problem}")


def _secret_annotation(reader: Reader, key: str, text: str, path: str) -> None:
    if is_reserved_annotation(key):
        reader.problem(path, "tbot's teleport.dev/ annotations and ours are set by teleport-argocd")
    elif problem := k8snames.qualified_name_problem(key):
        reader.problem(path, f"invalid annotation key: {problem}")
    _template(reader, text, path)


def _template(reader: Reader, text: str, path: str, *, execute: bool = False) -> gotemplate.Template | None:
    """Parse, and with `execute` evaluate with empty values as tbot does for the cluster name
    template, so unknown fields fail here. Labels and annotations are only parsed: a template
    such as `{{len .Labels.team}}` fails on an empty map and works on every real cluster."""
    try:
        template = gotemplate.parse(text)
        if execute:
            template.render()
        elif template.fields_used.difference(gotemplate.DATA_FIELDS):
            # A field tbot's data lacks fails on every cluster: say so with Go's words.
            template.render(ClusterName="a", KubeName="a", Labels=_AnyLabel())
    except gotemplate.TemplateError as exc:
        reader.problem(path, f"invalid template: {exc}")
        return None
    except Exception as exc:  # the engine's own failure on a hostile template is still a problem
        reader.problem(path, f"invalid template ({type(exc).__name__})")
        return None
    return template


def _lifetime(reader: Reader, section: Mapping[str, Any], path: str) -> tuple[timedelta, timedelta]:
    ttl = reader.duration(section.get("credential_ttl"), f"{path}.credential_ttl")
    renewal = reader.duration(section.get("renewal_interval"), f"{path}.renewal_interval")
    ttl_set, renewal_set = (
        section.get("credential_ttl") is not None,
        section.get("renewal_interval") is not None,
    )
    if ttl_set != renewal_set:
        missing = "renewal_interval" if ttl_set else "credential_ttl"
        reader.problem(
            f"{path}.{missing}", "credential_ttl and renewal_interval must both be specified if either is"
        )
    if ttl is None or renewal is None:
        return DEFAULT_CREDENTIAL_TTL, DEFAULT_RENEWAL_INTERVAL
    # tbot's CredentialLifetime.Validate (lib/tbot/bot/credential_lifetime.go) reports the next
    # two as "suboptimal" and runs on, noting they should be hard failures; they are here:
    # warnings reach no one, and either leaves Argo CD with expired or shortened credentials.
    if ttl < renewal:
        reader.problem(
            f"{path}.credential_ttl",
            f"{section['credential_ttl']} is shorter than renewal_interval {section['renewal_interval']}:"
            " credentials would expire before they are renewed",
        )
    if ttl > MAX_CREDENTIAL_TTL:
        reader.problem(
            f"{path}.credential_ttl",
            "must be at most 24h: Teleport issues no longer renewable certificates (MaxRenewableCertTTL)",
        )
    elif ttl > MAX_USEFUL_CREDENTIAL_TTL:
        reader.warn(
            f"{path}.credential_ttl",
            "longer than 12h: IAM-joined bot certificates are capped by the bot role's max_session_ttl"
            " (12h by default)",
        )
    return ttl, renewal


def _prune(reader: Reader, value: Any, path: str) -> PruneConfig:
    """The `prune` section: a new key goes in PRUNE_KEYS, PruneConfig (with its default) and here."""
    if value is None:
        return PruneConfig()
    section = reader.mapping(value, path, PRUNE_KEYS)
    if section is None:
        return PruneConfig()
    grace_period = reader.duration(section.get("grace_period"), f"{path}.grace_period", allow_zero=True)
    min_listed_share = reader.share(section.get("min_listed_share"), f"{path}.min_listed_share")
    vanished = reader.duration(
        section.get("vanished_grace_period"), f"{path}.vanished_grace_period", allow_zero=True
    )
    max_deletes = _max_deletes(reader, section.get("max_deletes_per_run"), f"{path}.max_deletes_per_run")
    return PruneConfig(
        enabled=reader.boolean(section.get("enabled"), f"{path}.enabled"),
        grace_period=DEFAULT_PRUNE_GRACE_PERIOD if grace_period is None else grace_period,
        min_listed_share=DEFAULT_MIN_LISTED_SHARE if min_listed_share is None else min_listed_share,
        vanished_grace_period=DEFAULT_VANISHED_GRACE_PERIOD if vanished is None else vanished,
        max_deletes_per_run=DEFAULT_MAX_DELETES_PER_RUN if max_deletes is None else max_deletes,
    )


def _max_deletes(reader: Reader, value: Any, path: str) -> int | float | None:
    """A count of at least 1 (an integer) or a share above 0 and below 1."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            reader.problem(path, "a count must be at least 1")
            return None
        return value
    if isinstance(value, float):
        if not 0 < value < 1:  # also refuses .nan
            reader.problem(path, "a share must be above 0 and below 1 (write a count as an integer)")
            return None
        return value
    reader.problem(path, f"expected a count (integer) or a share below 1, got {kind(value)}")
    return None


class _AnyLabel(Mapping[str, str]):
    """Labels in which every key exists with the value "a"; used to check a template's static text."""

    def __getitem__(self, key: str) -> str:
        return "a"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0
