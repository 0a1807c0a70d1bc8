"""The configuration: Teleport connection, Argo CD destinations, and tbot-compatible outputs.

The document is YAML (the deployment keeps it in an SSM parameter). An output takes the keys of
tbot's `kubernetes/argo-cd` service and applies its rules, plus a `destination`, plus checks for
values that Kubernetes or Argo CD would only refuse later, at the first write. Every problem is
collected with the path of its key, so one failed load lists all of them.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import yaml

from teleport_argocd import argocd, gotemplate, k8snames
from teleport_argocd.errors import ConfigError, ConfigProblem

OUTPUT_TYPE = "kubernetes/argo-cd"
DEFAULT_CLUSTER_NAME_TEMPLATE = "{{.ClusterName}}-{{.KubeName}}"
DEFAULT_CREDENTIAL_TTL = timedelta(minutes=60)
DEFAULT_RENEWAL_INTERVAL = timedelta(minutes=20)
# IAM-joined bots get certificates no longer than their role's max_session_ttl, 12h by default.
MAX_USEFUL_CREDENTIAL_TTL = timedelta(hours=12)


@dataclass(frozen=True)
class Selector:
    """One `selectors` entry: a cluster name, or labels that must all match."""

    name: str | None
    labels: Mapping[str, str]

    def __str__(self) -> str:
        if self.name:
            return f"name={self.name}"
        if self.labels:
            return "labels={" + ", ".join(sorted(f"{k}={v}" for k, v in self.labels.items())) + "}"
        return "<empty selector>"


@dataclass(frozen=True)
class EksDestination:
    """An EKS cluster running Argo CD, reached with an IAM token."""

    cluster_name: str
    region: str


@dataclass(frozen=True)
class KubeconfigSecretDestination:
    """A cluster running Argo CD, reached with a kubeconfig kept in Secrets Manager."""

    secret_id: str
    region: str | None
    context: str | None


Destination = EksDestination | KubeconfigSecretDestination


@dataclass(frozen=True)
class TeleportConfig:
    """How to reach and join the Teleport cluster. `proxy_addr` is always host:port."""

    proxy_addr: str
    join_token: str
    insecure: bool
    ca_pem: str | None


@dataclass(frozen=True)
class OutputConfig:
    """One `kubernetes/argo-cd` output: which clusters, and how their Secrets look. Defaults applied."""

    name: str
    selectors: tuple[Selector, ...]
    destination: Destination
    secret_namespace: str
    secret_name_prefix: str
    secret_labels: Mapping[str, str]
    secret_annotations: Mapping[str, str]
    project: str
    namespaces: tuple[str, ...]
    cluster_resources: bool
    cluster_name_template: str
    credential_ttl: timedelta
    renewal_interval: timedelta


@dataclass(frozen=True)
class Config:
    """The whole configuration, with the non-fatal findings (tbot's "suboptimal" settings)."""

    teleport: TeleportConfig
    outputs: tuple[OutputConfig, ...]
    warnings: tuple[str, ...]


def load_config(source: str | Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Parse and validate a configuration document (YAML text or already-parsed data).

    `env` (default: the process environment) fills what the document leaves out, as the SAM
    template passes deployment parameters: TELEPORT_PROXY_ADDR and TELEPORT_JOIN_TOKEN;
    DESTINATION_EKS_CLUSTER with DESTINATION_REGION, or DESTINATION_KUBECONFIG_SECRET (with an
    optional DESTINATION_REGION), for outputs without a destination when the document has no
    top-level one; POD_NAMESPACE for `secret_namespace`, as in tbot.
    Raises ConfigError listing every problem found.
    """
    document = _parse_yaml(source) if isinstance(source, str) else source
    loader = _Loader(os.environ if env is None else env)
    config = loader.config(document)
    if loader.problems or config is None:
        raise ConfigError(loader.problems)
    return config


def parse_duration(text: str) -> timedelta:
    """Parse a Go duration ("1h", "20m", "1m0s", "1h30m", "1.5h", "90s"); raises ValueError."""
    sign, rest = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if rest == "0":
        return timedelta(0)
    if not rest:
        raise ValueError(f"invalid duration {text!r}")
    nanoseconds = Decimal(0)
    pos = 0
    while pos < len(rest):
        match = _DURATION_PART.match(rest, pos)
        if not match:
            raise ValueError(f"invalid duration {text!r}: expected a Go duration such as '1h30m' or '90s'")
        nanoseconds += Decimal(match["number"]) * _NANOSECONDS[match["unit"]]
        pos = match.end()
    return timedelta(microseconds=sign * int(nanoseconds / 1000))


_DURATION_PART = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)(?P<unit>ns|us|µs|μs|ms|s|m|h)")
_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_OUTPUT_NAME = re.compile(r"[A-Za-z0-9_+-]+")
_EKS_CLUSTER_NAME = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}")
_AWS_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d+")
# The Secret name adds "." and 16 hex digits to the prefix.
_MAX_PREFIX_LENGTH = 253 - 17

_ROOT_KEYS = ("teleport", "destination", "outputs")
_TELEPORT_KEYS = ("proxy_addr", "join_token", "insecure", "ca_pem")
_DESTINATION_KEYS = ("eks", "kubeconfig_secret")
_EKS_KEYS = ("cluster_name", "region")
_KUBECONFIG_SECRET_KEYS = ("secret_id", "region", "context")
_SELECTOR_KEYS = ("name", "labels", "default_namespace")
_OUTPUT_KEYS = (
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
)


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem("", f"invalid YAML{where}: {reason}")]) from None


class _Loader:
    """Walks the document once, collecting problems and warnings instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(str(ConfigProblem(path, message)))

    # -- sections ------------------------------------------------------------

    def config(self, document: Any) -> Config | None:
        root = self.mapping({} if document is None else document, "", _ROOT_KEYS)
        if root is None:
            return None
        teleport = self.teleport(root.get("teleport"))
        if root.get("destination") is not None:
            default = self.destination(root["destination"], "destination")
        else:
            default = self.env_destination()
        outputs = self.outputs(root.get("outputs"), default)
        if teleport is None or self.problems:
            return None
        return Config(teleport, outputs, tuple(self.warnings))

    def teleport(self, value: Any) -> TeleportConfig | None:
        section = self.mapping({} if value is None else value, "teleport", _TELEPORT_KEYS) or {}
        proxy_addr = self.from_env(section, "proxy_addr", "teleport", "TELEPORT_PROXY_ADDR")
        join_token = self.from_env(section, "join_token", "teleport", "TELEPORT_JOIN_TOKEN")
        insecure = self.boolean(section.get("insecure"), "teleport.insecure")
        ca_pem = self.string(section.get("ca_pem"), "teleport.ca_pem") or None
        if ca_pem is not None and "-----BEGIN CERTIFICATE-----" not in ca_pem:
            self.problem(
                "teleport.ca_pem", "expected one or more PEM certificates (-----BEGIN CERTIFICATE-----)"
            )
        if proxy_addr is None or join_token is None:
            return None
        return TeleportConfig(self.proxy_addr(*proxy_addr), join_token[0], insecure, ca_pem)

    def from_env(
        self, section: Mapping[str, Any], key: str, path: str, variable: str
    ) -> tuple[str, str] | None:
        """A required string from the document, else from `variable`; returns it with where it came from."""
        path = f"{path}.{key}"
        if section.get(key) not in (None, ""):
            value = self.string(section[key], path)
            return (value, path) if value else None
        if self.env.get(variable):
            return self.env[variable], variable
        self.problem(path, "required")
        return None

    def proxy_addr(self, value: str, path: str) -> str:
        """Normalise host[:port] to host:port (443 by default)."""
        if "://" in value or any(c in value for c in "/?#@ "):
            self.problem(
                path,
                f"expected host[:port] without scheme or path, e.g. teleport.example.com:443, got {value!r}",
            )
            return value
        try:
            parts = urlsplit(f"//{value}")
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            self.problem(path, f"expected host[:port], got {value!r}: {exc}")
            return value
        if not host or port == 0:
            self.problem(path, f"expected host[:port], got {value!r}")
            return value
        netloc = parts.netloc
        return netloc if port is not None else f"{netloc.rstrip(':')}:443"

    def env_destination(self) -> Destination | None:
        cluster = self.env.get("DESTINATION_EKS_CLUSTER")
        secret_id = self.env.get("DESTINATION_KUBECONFIG_SECRET")
        region = self.env.get("DESTINATION_REGION") or None
        if cluster and secret_id:
            self.problem(
                "DESTINATION_EKS_CLUSTER",
                "set only one of DESTINATION_EKS_CLUSTER and DESTINATION_KUBECONFIG_SECRET",
            )
            return None
        if cluster:
            self.eks_cluster_name(cluster, "DESTINATION_EKS_CLUSTER")
            if region is None:
                self.problem("DESTINATION_REGION", "required with DESTINATION_EKS_CLUSTER")
                return None
            self.region(region, "DESTINATION_REGION")
            return EksDestination(cluster, region)
        if secret_id:
            if region is not None:
                self.region(region, "DESTINATION_REGION")
            return KubeconfigSecretDestination(secret_id, region, None)
        return None

    def destination(self, value: Any, path: str) -> Destination | None:
        section = self.mapping(value, path, _DESTINATION_KEYS)
        if section is None:
            return None
        kinds = [key for key in _DESTINATION_KEYS if section.get(key) is not None]
        if len(kinds) != 1:
            which = "one of" if not kinds else "only one of"
            self.problem(path, f"{which} 'eks' and 'kubeconfig_secret' must be specified")
            return None
        path = f"{path}.{kinds[0]}"
        if kinds[0] == "eks":
            return self.eks_destination(section["eks"], path)
        return self.kubeconfig_secret_destination(section["kubeconfig_secret"], path)

    def eks_destination(self, value: Any, path: str) -> EksDestination | None:
        section = self.mapping(value, path, _EKS_KEYS)
        if section is None:
            return None
        cluster_name = self.required_string(section, "cluster_name", path)
        region = self.required_string(section, "region", path)
        self.eks_cluster_name(cluster_name, f"{path}.cluster_name")
        self.region(region, f"{path}.region")
        return EksDestination(cluster_name, region)

    def kubeconfig_secret_destination(self, value: Any, path: str) -> KubeconfigSecretDestination | None:
        section = self.mapping(value, path, _KUBECONFIG_SECRET_KEYS)
        if section is None:
            return None
        secret_id = self.required_string(section, "secret_id", path)
        region = self.string(section.get("region"), f"{path}.region") or None
        if region is not None:
            self.region(region, f"{path}.region")
        context = self.string(section.get("context"), f"{path}.context") or None
        return KubeconfigSecretDestination(secret_id, region, context)

    def eks_cluster_name(self, value: str, path: str) -> None:
        if value and not _EKS_CLUSTER_NAME.fullmatch(value):
            self.problem(path, f"{value!r} is not a valid EKS cluster name")

    def region(self, value: str, path: str) -> None:
        if value and not _AWS_REGION.fullmatch(value):
            self.problem(path, f"{value!r} is not an AWS region, e.g. eu-west-1")

    def outputs(self, value: Any, default: Destination | None) -> tuple[OutputConfig, ...]:
        items = self.sequence(value, "outputs")
        if not items:
            if value is None or items == []:
                self.problem("outputs", "at least one output is required")
            return ()
        outputs: list[OutputConfig] = []
        seen: dict[str, str] = {}
        for i, item in enumerate(items):
            path = f"outputs[{i}]"
            output = self.output(item, path, default)
            if output is None:
                continue
            if output.name in seen:
                self.problem(
                    f"{path}.name", f"output name {output.name!r} is already used by {seen[output.name]}"
                )
            seen.setdefault(output.name, path)
            outputs.append(output)
        return tuple(outputs)

    def output(self, value: Any, path: str, default: Destination | None) -> OutputConfig | None:
        section = self.mapping(value, path, _OUTPUT_KEYS)
        if section is None:
            return None
        before = len(self.problems)
        self.output_type(section.get("type"), f"{path}.type")
        selectors = self.selectors(section.get("selectors"), f"{path}.selectors")
        name = self.string(section.get("name"), f"{path}.name")
        if name and not _OUTPUT_NAME.fullmatch(name):
            self.problem(f"{path}.name", "may only contain letters, digits, '-', '_' and '+'")
        if section.get("destination") is not None:
            destination = self.destination(section["destination"], f"{path}.destination")
        else:
            destination = default
            if destination is None:
                self.problem(f"{path}.destination", "required: no default destination is configured")
        secret_namespace = (
            self.string(section.get("secret_namespace"), f"{path}.secret_namespace")
            or self.env.get("POD_NAMESPACE")
            or "default"
        )
        if not k8snames.is_dns_label(secret_namespace):
            self.problem(f"{path}.secret_namespace", f"{secret_namespace!r} is not a valid namespace name")
        prefix = self.secret_name_prefix(section.get("secret_name_prefix"), f"{path}.secret_name_prefix")
        secret_labels = self.string_map(section.get("secret_labels"), f"{path}.secret_labels")
        for key, text in secret_labels.items():
            self.secret_label(key, text, f"{path}.secret_labels[{json.dumps(key)}]")
        secret_annotations = self.string_map(section.get("secret_annotations"), f"{path}.secret_annotations")
        for key, text in secret_annotations.items():
            self.secret_annotation(key, text, f"{path}.secret_annotations[{json.dumps(key)}]")
        project = self.string(section.get("project"), f"{path}.project")
        namespaces = self.namespaces(section.get("namespaces"), f"{path}.namespaces")
        cluster_resources = self.boolean(section.get("cluster_resources"), f"{path}.cluster_resources")
        if cluster_resources and not namespaces:
            self.problem(f"{path}.cluster_resources", "only applicable if namespaces is also set")
        template = self.cluster_name_template(
            section.get("cluster_name_template"), f"{path}.cluster_name_template"
        )
        credential_ttl, renewal_interval = self.lifetime(section, path)
        if len(self.problems) > before or destination is None:
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
        )

    def output_type(self, value: Any, path: str) -> None:
        if value in (None, ""):
            self.problem(path, f"required (the only supported type is {OUTPUT_TYPE!r})")
        elif self.string(value, path) not in ("", OUTPUT_TYPE):
            self.problem(path, f"unsupported output type {value!r}; only {OUTPUT_TYPE!r} is supported")

    def selectors(self, value: Any, path: str) -> tuple[Selector, ...]:
        items = self.sequence(value, path)
        if not items:
            if value is None or items == []:
                self.problem(path, "at least one selector is required")
            return ()
        selectors: list[Selector] = []
        for i, item in enumerate(items):
            item_path = f"{path}[{i}]"
            section = self.mapping(item, item_path, _SELECTOR_KEYS)
            if section is None:
                continue
            name = self.string(section.get("name"), f"{item_path}.name")
            labels = self.string_map(section.get("labels"), f"{item_path}.labels")
            if section.get("default_namespace") is not None:
                self.warn(
                    f"{item_path}.default_namespace", "ignored: it only applies to kubernetes/v2 outputs"
                )
            if not name and not labels:
                self.problem(item_path, "one of 'name' and 'labels' must be specified")
            elif name and labels:
                self.problem(item_path, "only one of 'name' and 'labels' may be specified")
            selectors.append(Selector(name or None, labels))
        return tuple(selectors)

    def secret_name_prefix(self, value: Any, path: str) -> str:
        prefix = self.string(value, path) or argocd.DEFAULT_SECRET_NAME_PREFIX
        # tbot's check: Kubernetes' name-prefix validation, which tolerates one trailing '-'.
        masked = prefix[:-1] + "a" if len(prefix) > 1 and prefix.endswith("-") else prefix
        if not k8snames.is_dns_subdomain(masked):
            self.problem(
                path, "secret_name_prefix may only include lowercase letters, numbers, '-' and '.' characters"
            )
        elif prefix.endswith("-"):
            self.problem(path, f"must not end with '-': Kubernetes refuses the Secret name {prefix}.<hash>")
        elif len(prefix) > _MAX_PREFIX_LENGTH:
            self.problem(
                path,
                f"must be at most {_MAX_PREFIX_LENGTH} characters:"
                " the Secret name (prefix + '.' + 16 hex digits) is limited to 253",
            )
        return prefix

    def namespaces(self, value: Any, path: str) -> tuple[str, ...]:
        namespaces = self.string_list(value, path)
        for i, namespace in enumerate(namespaces):
            if not namespace.strip():
                self.problem(f"{path}[{i}]", "cannot be blank")
            elif not k8snames.is_dns_label(namespace):
                self.problem(f"{path}[{i}]", f"{namespace!r} is not a valid namespace name")
        return tuple(namespaces)

    def cluster_name_template(self, value: Any, path: str) -> str:
        text = self.string(value, path) or DEFAULT_CLUSTER_NAME_TEMPLATE
        template = self.template(text, path)
        if template is not None and "KubeName" not in template.fields_used:
            self.problem(
                path, "must use {{.KubeName}}: without it every cluster gets the same Argo CD cluster name"
            )
        return text

    def secret_label(self, key: str, text: str, path: str) -> None:
        if key in argocd.RESERVED_LABELS:
            self.problem(path, "this label is set by teleport-argocd and cannot be overridden")
        elif problem := k8snames.qualified_name_problem(key):
            self.problem(path, f"invalid label key: {problem}")
        template = self.template(text, path)
        if template is None:
            return
        # Fill every variable with "a": what remains invalid is in the static text and always will be.
        sample = template.render(ClusterName="a", KubeName="a", Labels=_AnyLabel())
        if problem := k8snames.label_value_problem(sample):
            self.problem(path, f"invalid label value {text!r}: {problem}")

    def secret_annotation(self, key: str, text: str, path: str) -> None:
        if argocd.is_reserved_annotation(key):
            self.problem(path, "teleport.dev/* and teleport-argocd annotations are set by teleport-argocd")
        elif problem := k8snames.qualified_name_problem(key):
            self.problem(path, f"invalid annotation key: {problem}")
        self.template(text, path)

    def template(self, text: str, path: str) -> gotemplate.Template | None:
        """Parse and evaluate with empty values, as tbot does, so unknown fields fail here."""
        try:
            template = gotemplate.parse(text)
            template.render()
        except gotemplate.TemplateError as exc:
            self.problem(path, f"invalid template: {exc}")
            return None
        return template

    def lifetime(self, section: Mapping[str, Any], path: str) -> tuple[timedelta, timedelta]:
        ttl = self.duration(section.get("credential_ttl"), f"{path}.credential_ttl")
        renewal = self.duration(section.get("renewal_interval"), f"{path}.renewal_interval")
        ttl_set, renewal_set = (
            section.get("credential_ttl") is not None,
            section.get("renewal_interval") is not None,
        )
        if ttl_set != renewal_set:
            missing = "renewal_interval" if ttl_set else "credential_ttl"
            self.problem(
                f"{path}.{missing}", "credential_ttl and renewal_interval must both be specified if either is"
            )
        if ttl is None or renewal is None:
            return DEFAULT_CREDENTIAL_TTL, DEFAULT_RENEWAL_INTERVAL
        if ttl < renewal:
            self.warn(
                f"{path}.credential_ttl",
                f"{section['credential_ttl']} is shorter than renewal_interval {section['renewal_interval']}:"
                " credentials will expire before they are renewed",
            )
        if ttl > MAX_USEFUL_CREDENTIAL_TTL:
            self.warn(
                f"{path}.credential_ttl",
                "longer than 12h: IAM-joined bot certificates are capped by the bot role's max_session_ttl"
                " (12h by default)",
            )
        return ttl, renewal

    # -- typed values --------------------------------------------------------
    # Each returns a usable default after reporting a wrong type: any problem fails the whole
    # load, so the placeholder never reaches a Config.

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.problem(path, f"expected a mapping, got {_kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problem(_join(path, str(key)), f"unknown key{hint}")
        return value

    def sequence(self, value: Any, path: str) -> list[Any] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            self.problem(path, f"expected a list, got {_kind(value)}")
            return None
        return value

    def string(self, value: Any, path: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.problem(path, f"expected a string, got {_kind(value)} (quote the value)")
            return ""
        return value

    def required_string(self, section: Mapping[str, Any], key: str, path: str) -> str:
        if section.get(key) in (None, ""):
            self.problem(f"{path}.{key}", "required")
            return ""
        return self.string(section[key], f"{path}.{key}")

    def boolean(self, value: Any, path: str) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.problem(path, f"expected true or false, got {_kind(value)}")
            return False
        return value

    def string_map(self, value: Any, path: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(path, f"expected a mapping of strings, got {_kind(value)}")
            return {}
        result: dict[str, str] = {}
        for key, item in value.items():
            item_path = f"{path}[{json.dumps(str(key))}]"
            if not isinstance(key, str):
                self.problem(item_path, f"expected a string key, got {_kind(key)} (quote the key)")
            else:
                result[key] = self.string(item, item_path)
        return result

    def string_list(self, value: Any, path: str) -> list[str]:
        items = self.sequence(value, path) or []
        return [self.string(item, f"{path}[{i}]") for i, item in enumerate(items)]

    def duration(self, value: Any, path: str) -> timedelta | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.problem(path, f"expected a Go duration such as '1h' or '20m', got {_kind(value)}")
            return None
        try:
            result = parse_duration(value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        if result <= timedelta(0):
            self.problem(path, "must be positive")
            return None
        return result


class _AnyLabel(Mapping[str, str]):
    """Labels in which every key exists with the value "a"; used to check a template's static text."""

    def __getitem__(self, key: str) -> str:
        return "a"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    """The YAML name of a value's type, for error messages."""
    if value is None:
        return "null"
    return next((name for kind, name in _KINDS if isinstance(value, kind)), type(value).__name__)


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),  # before int: bool is an int subclass
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (date, "a date"),
    (list, "a list"),
    (Mapping, "a mapping"),
)
