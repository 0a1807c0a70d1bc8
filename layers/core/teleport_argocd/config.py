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

from teleport_argocd import gotemplate, k8snames
from teleport_argocd.errors import ConfigError, ConfigProblem
from teleport_argocd.model import DEFAULT_SECRET_NAME_PREFIX, RESERVED_LABELS, is_reserved_annotation

OUTPUT_TYPE = "kubernetes/argo-cd"
DEFAULT_CLUSTER_NAME_TEMPLATE = "{{.ClusterName}}-{{.KubeName}}"
# tbot's bot.DefaultCredentialLifetime (lib/tbot/bot/credential_lifetime.go).
DEFAULT_CREDENTIAL_TTL = timedelta(minutes=60)
DEFAULT_RENEWAL_INTERVAL = timedelta(minutes=20)
# tbot's CredentialLifetime.Validate checks TTLs against defaults.MaxRenewableCertTTL (24h,
# lib/defaults/defaults.go): Teleport shortens longer certificates, so a longer TTL is never honoured.
MAX_CREDENTIAL_TTL = timedelta(hours=24)
# IAM-joined bots get certificates no longer than their role's max_session_ttl, 12h by default.
MAX_USEFUL_CREDENTIAL_TTL = timedelta(hours=12)
DEFAULT_PRUNE_GRACE_PERIOD = timedelta(hours=1)
DEFAULT_MIN_LISTED_SHARE = 0.5
# A cluster that only stopped being listed (its agent down longer than its heartbeat lives) may come
# back: its Secret waits days, not the hour a cluster deleted or deselected in Teleport waits.
DEFAULT_VANISHED_GRACE_PERIOD = timedelta(days=7)
# At most this share of the registered clusters (at least one) is deleted by one run.
DEFAULT_MAX_DELETES_PER_RUN = 0.1
# The deepest valid document nests 6 levels (outputs[].destination.eks.region); anything far
# deeper is hostile, and PyYAML's composer recurses once per level.
MAX_DEPTH = 32
# Nodes visited while building the document, aliases expanded: stops "billion laughs" documents.
MAX_NODES = 100_000
# Go's time.Duration is an int64 of nanoseconds; time.ParseDuration refuses anything longer.
MAX_GO_DURATION_NS = 2**63 - 1


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
class PruneConfig:
    """When registrations of clusters that are no longer listed are deleted.

    A run whose listing returns fewer than `min_listed_share` of the clusters registered for the
    output prunes nothing: a half-empty answer from Teleport must not unregister half the fleet.
    A cluster deleted or deselected in Teleport waits `grace_period` of runs that could have
    pruned; one that merely stopped being listed waits `vanished_grace_period`. A run deletes at
    most `max_deletes_per_run`: an integer is a count, a number below 1 a share of the registered.
    """

    enabled: bool = False
    grace_period: timedelta = DEFAULT_PRUNE_GRACE_PERIOD
    min_listed_share: float = DEFAULT_MIN_LISTED_SHARE
    vanished_grace_period: timedelta = DEFAULT_VANISHED_GRACE_PERIOD
    max_deletes_per_run: int | float = DEFAULT_MAX_DELETES_PER_RUN


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
    prune: PruneConfig = PruneConfig()


@dataclass(frozen=True)
class Config:
    """The whole configuration, with the non-fatal findings (tbot's "suboptimal" settings)."""

    teleport: TeleportConfig
    outputs: tuple[OutputConfig, ...]
    warnings: tuple[str, ...]

    @property
    def longest_credential_ttl(self) -> timedelta:
        """The bot certificate must last this long: every output's certificate is issued from it."""
        return max(output.credential_ttl for output in self.outputs)


def load_config(source: str | Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Parse and validate a configuration document (YAML text or already-parsed data).

    `env` (default: the process environment) fills what the document leaves out, as the SAM
    template passes deployment parameters: TELEPORT_PROXY_ADDR and TELEPORT_JOIN_TOKEN;
    DESTINATION_EKS_CLUSTER with DESTINATION_REGION, or DESTINATION_KUBECONFIG_SECRET (with an
    optional DESTINATION_REGION), for outputs without a destination when the document has no
    top-level one; POD_NAMESPACE for `secret_namespace`, as in tbot. ALLOWED_EKS_CLUSTERS
    (`name` or `region/name`) and ALLOWED_KUBECONFIG_SECRETS (ARNs), comma-separated, limit the
    destinations an output may name; unset or empty, any destination is accepted (local runs).
    Raises ConfigError listing every problem found, and nothing else whatever the input.
    """
    loader = _Loader(os.environ if env is None else env)
    try:
        config = loader.config(_read_yaml(source) if isinstance(source, str) else source)
    except ConfigError:
        raise
    except Exception as exc:  # a shape no rule foresaw is still a listed problem, not a crash
        # Only the type: the message of an unforeseen error could quote a value of the document.
        loader.problem("", f"the configuration could not be validated ({type(exc).__name__})")
        config = None
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
        number = Decimal(match["number"])
        # Checked before multiplying: a number of a million digits overflows Decimal's context.
        if number > MAX_GO_DURATION_NS:
            raise ValueError(_TOO_LONG)
        nanoseconds += number * _NANOSECONDS[match["unit"]]
        if nanoseconds > MAX_GO_DURATION_NS:
            raise ValueError(_TOO_LONG)
        pos = match.end()
    return timedelta(microseconds=sign * int(nanoseconds / 1000))


_TOO_LONG = "invalid duration: longer than Go's maximum duration (2562047h47m16.854775807s)"
# ASCII digits only: Python's \d also matches other scripts' digits, which Go refuses.
_DURATION_PART = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<unit>ns|us|µs|μs|ms|s|m|h)")
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
    "prune",
)
_PRUNE_KEYS = ("enabled", "grace_period", "min_listed_share", "vanished_grace_period", "max_deletes_per_run")


_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading timestamps as the strings they are written as.

    tbot's configuration is YAML read by Go, where `2024-01-01` is just a string wherever a string
    is expected; PyYAML would build a date (and fail on `2024-13-01`).
    """


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _timestamp_as_string(loader: _YamlLoader, node: yaml.Node) -> Any:
    return loader.construct_yaml_str(node)


_YamlLoader.add_constructor(_TIMESTAMP_TAG, _timestamp_as_string)


def _read_yaml(text: str) -> Any:
    """Parse YAML text into plain data; every failure becomes a ConfigError, never another exception.

    Depth is checked on the event stream first (the parser is iterative, the composer recursive),
    then the node graph is built into Python values here rather than by PyYAML's constructor, so
    that each value that cannot be built (an unknown tag, `!!bool maybe`, a 5,000-digit integer)
    is reported with its path, and aliases cannot nest deeper or expand further than the limits.
    """
    try:
        _check_depth(text)
        loader = _YamlLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(exc)]) from None
    if node is None:
        return None
    builder = _Builder(loader)
    try:
        value = builder.value(node, "", 1)
    except _TooLarge:
        raise ConfigError(
            [ConfigProblem("", f"the document expands to more than {MAX_NODES} values (aliases?)")]
        ) from None
    if builder.problems:
        raise ConfigError(builder.problems)
    return value


def _check_depth(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=_YamlLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                where = f"{_where(event.start_mark)}: " if event.start_mark else ""
                raise ConfigError([ConfigProblem("", f"{where}nested deeper than {MAX_DEPTH} levels")])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _yaml_problem(exc: yaml.YAMLError) -> ConfigProblem:
    # `problem` is PyYAML's description of what it found ("mapping values are not allowed here");
    # never str(exc), which quotes the line around it: the document may hold a join token.
    mark = getattr(exc, "problem_mark", None)
    where = f" at {_where(mark)}" if mark else ""
    if isinstance(exc, yaml.reader.ReaderError):  # names the character's code point, not the text
        reason = str(exc)
    else:
        reason = getattr(exc, "problem", None) or "the document cannot be parsed"
    return ConfigProblem("", f"invalid YAML{where}: {reason}")


def _where(mark: yaml.Mark | yaml._yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _TooLarge(Exception):
    """The node budget ran out: the document is an alias bomb."""


class _Builder:
    """Builds Python values from composed YAML nodes, collecting a problem per value it cannot build."""

    def __init__(self, loader: _YamlLoader) -> None:
        self.loader = loader
        self.problems: list[ConfigProblem] = []
        self.nodes = 0

    def problem(self, path: str, node: yaml.Node, message: str) -> None:
        self.problems.append(ConfigProblem(path, f"{_where(node.start_mark)}: {message}"))

    def value(self, node: yaml.Node, path: str, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooLarge
        if depth > MAX_DEPTH:  # reachable through aliases only: the text itself was checked
            self.problem(path, node, f"nested deeper than {MAX_DEPTH} levels (through aliases)")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
            return [self.value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
            return self.mapping(node, path, depth)
        self.problem(path, node, f"unsupported YAML tag {node.tag!r}")
        return None

    def mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                # `<<: *defaults`, which Go's YAML supports too. Built here, not by PyYAML's
                # flatten_mapping, so that merges of merges count against the node budget.
                for source in self.merge_sources(value_node, path, depth + 1):
                    for key, value in source.items():
                        merged.setdefault(key, value)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(path, key_node, "a key must be a plain value, not a list or a mapping")
                continue
            before = len(self.problems)
            key = self.scalar(key_node, path)
            if len(self.problems) > before:
                continue
            child = _child_path(path, key)
            if key in result:
                self.problem(child, key_node, "duplicate key")
                continue
            result[key] = self.value(value_node, child, depth + 1)
        return {**merged, **result}

    def merge_sources(self, node: yaml.Node, path: str, depth: int) -> list[dict[Any, Any]]:
        value = self.value(node, path, depth)
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(source, dict) for source in sources):
            self.problem(path, node, "a merge key ('<<') takes a mapping or a list of mappings")
            return []
        return sources

    def scalar(self, node: yaml.ScalarNode, path: str) -> Any:
        if node.tag not in self.loader.yaml_constructors:
            self.problem(path, node, f"unsupported YAML tag {node.tag!r}")
            return None
        try:
            return self.loader.construct_object(node, deep=True)
        except Exception:  # PyYAML's constructors raise KeyError, ValueError, AttributeError, ...
            # Never the value itself: it may be a secret.
            self.problem(path, node, f"cannot read this value as {node.tag.rsplit(':', 1)[-1]}")
            return None


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
            eks = EksDestination(cluster, region)
            self.allowed(eks, "DESTINATION_EKS_CLUSTER")
            return eks
        if secret_id:
            if region is not None:
                self.region(region, "DESTINATION_REGION")
            secret = KubeconfigSecretDestination(secret_id, region, None)
            self.allowed(secret, "DESTINATION_KUBECONFIG_SECRET")
            return secret
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
        destination = EksDestination(cluster_name, region)
        self.allowed(destination, f"{path}.cluster_name")
        return destination

    def kubeconfig_secret_destination(self, value: Any, path: str) -> KubeconfigSecretDestination | None:
        section = self.mapping(value, path, _KUBECONFIG_SECRET_KEYS)
        if section is None:
            return None
        secret_id = self.required_string(section, "secret_id", path)
        region = self.string(section.get("region"), f"{path}.region") or None
        if region is not None:
            self.region(region, f"{path}.region")
        context = self.string(section.get("context"), f"{path}.context") or None
        destination = KubeconfigSecretDestination(secret_id, region, context)
        self.allowed(destination, f"{path}.secret_id")
        return destination

    def allowed(self, destination: Destination, path: str) -> None:
        """Refuse a destination the deployment does not allow, naming the template parameter to change.

        The IAM policy limits the same destinations; refusing here says why at load, not at the
        first write. Unset or empty lists allow everything (local runs have no template).
        """
        if isinstance(destination, EksDestination):
            clusters = _csv(self.env.get("ALLOWED_EKS_CLUSTERS", ""))
            name, region = destination.cluster_name, destination.region
            if clusters and name and not {name, f"{region}/{name}"} & clusters:
                self.problem(
                    path,
                    f"EKS cluster {region}/{name} is not allowed by this deployment"
                    " (ALLOWED_EKS_CLUSTERS): add it to the template parameter AllowedEksClusters",
                )
        else:
            secrets = _csv(self.env.get("ALLOWED_KUBECONFIG_SECRETS", ""))
            if secrets and destination.secret_id and destination.secret_id not in secrets:
                self.problem(
                    path,
                    "this kubeconfig secret is not allowed by this deployment (ALLOWED_KUBECONFIG_SECRETS):"
                    " name it by its full ARN and add the ARN to the template parameter"
                    " AllowedKubeconfigSecretArns",
                )

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
        writers: dict[tuple[Destination, str, str], str] = {}
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
            # Secret names are the prefix and a hash of the cluster: two such outputs would overwrite
            # and prune each other's Secrets.
            writes = (output.destination, output.secret_namespace, output.secret_name_prefix)
            if writes in writers:
                self.problem(
                    f"{path}.secret_name_prefix",
                    f"{writers[writes]} and {path} would write the same Secrets (same destination,"
                    " secret_namespace and secret_name_prefix): give one another secret_name_prefix",
                )
            writers.setdefault(writes, path)
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
        prune = self.prune(section.get("prune"), f"{path}.prune")
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
            prune=prune,
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
        prefix = self.string(value, path) or DEFAULT_SECRET_NAME_PREFIX
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
        template = self.template(text, path, execute=True)
        if template is not None and "KubeName" not in template.fields_used:
            self.problem(
                path, "must use {{.KubeName}}: without it every cluster gets the same Argo CD cluster name"
            )
        return text

    def secret_label(self, key: str, text: str, path: str) -> None:
        if key in RESERVED_LABELS:
            self.problem(path, "this label is set by teleport-argocd and cannot be overridden")
        elif problem := k8snames.qualified_name_problem(key):
            self.problem(path, f"invalid label key: {problem}")
        template = self.template(text, path)
        if template is None:
            return
        # Fill every variable with "a": what remains invalid is in the static text and always will be.
        try:
            sample = template.render(ClusterName="a", KubeName="a", Labels=_AnyLabel())
        except gotemplate.TemplateError:
            return  # depends on the real labels (e.g. an index past "a"): judged per cluster at render
        if problem := k8snames.label_value_problem(sample):
            self.problem(path, f"invalid label value {text!r}: {problem}")

    def secret_annotation(self, key: str, text: str, path: str) -> None:
        if is_reserved_annotation(key):
            self.problem(path, "tbot's teleport.dev/ annotations and ours are set by teleport-argocd")
        elif problem := k8snames.qualified_name_problem(key):
            self.problem(path, f"invalid annotation key: {problem}")
        self.template(text, path)

    def template(self, text: str, path: str, *, execute: bool = False) -> gotemplate.Template | None:
        """Parse, and with `execute` evaluate with empty values as tbot does for the cluster name
        template, so unknown fields fail here. Labels and annotations are only parsed: a template
        such as `{{len .Labels.team}}` fails on an empty map and works on every real cluster."""
        try:
            template = gotemplate.parse(text)
            if execute:
                template.render()
            elif template.fields_used - _TEMPLATE_FIELDS:  # fails on every cluster: say so with Go's words
                template.render(ClusterName="a", KubeName="a", Labels=_AnyLabel())
        except gotemplate.TemplateError as exc:
            self.problem(path, f"invalid template: {exc}")
            return None
        except Exception as exc:  # the engine's own failure on a hostile template is still a problem
            self.problem(path, f"invalid template ({type(exc).__name__})")
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
        # tbot's CredentialLifetime.Validate (lib/tbot/bot/credential_lifetime.go) reports the next
        # two as "suboptimal" and runs on, noting they should be hard failures; they are here:
        # warnings reach no one, and either leaves Argo CD with expired or shortened credentials.
        if ttl < renewal:
            self.problem(
                f"{path}.credential_ttl",
                f"{section['credential_ttl']} is shorter than renewal_interval {section['renewal_interval']}:"
                " credentials would expire before they are renewed",
            )
        if ttl > MAX_CREDENTIAL_TTL:
            self.problem(
                f"{path}.credential_ttl",
                "must be at most 24h: Teleport issues no longer renewable certificates (MaxRenewableCertTTL)",
            )
        elif ttl > MAX_USEFUL_CREDENTIAL_TTL:
            self.warn(
                f"{path}.credential_ttl",
                "longer than 12h: IAM-joined bot certificates are capped by the bot role's max_session_ttl"
                " (12h by default)",
            )
        return ttl, renewal

    def prune(self, value: Any, path: str) -> PruneConfig:
        if value is None:
            return PruneConfig()
        section = self.mapping(value, path, _PRUNE_KEYS)
        if section is None:
            return PruneConfig()
        grace_period = self.duration(section.get("grace_period"), f"{path}.grace_period", allow_zero=True)
        min_listed_share = self.share(section.get("min_listed_share"), f"{path}.min_listed_share")
        vanished = self.duration(
            section.get("vanished_grace_period"), f"{path}.vanished_grace_period", allow_zero=True
        )
        max_deletes = self._max_deletes(section.get("max_deletes_per_run"), f"{path}.max_deletes_per_run")
        return PruneConfig(
            enabled=self.boolean(section.get("enabled"), f"{path}.enabled"),
            grace_period=DEFAULT_PRUNE_GRACE_PERIOD if grace_period is None else grace_period,
            min_listed_share=DEFAULT_MIN_LISTED_SHARE if min_listed_share is None else min_listed_share,
            vanished_grace_period=DEFAULT_VANISHED_GRACE_PERIOD if vanished is None else vanished,
            max_deletes_per_run=DEFAULT_MAX_DELETES_PER_RUN if max_deletes is None else max_deletes,
        )

    def _max_deletes(self, value: Any, path: str) -> int | float | None:
        """A count of at least 1 (an integer) or a share above 0 and below 1."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                self.problem(path, "a count must be at least 1")
                return None
            return value
        if isinstance(value, float):
            if not 0 < value < 1:  # also refuses .nan
                self.problem(path, "a share must be above 0 and below 1 (write a count as an integer)")
                return None
            return value
        self.problem(path, f"expected a count (integer) or a share below 1, got {_kind(value)}")
        return None

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

    def duration(self, value: Any, path: str, *, allow_zero: bool = False) -> timedelta | None:
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
        if result < timedelta(0) or (result == timedelta(0) and not allow_zero):
            self.problem(path, "must not be negative" if allow_zero else "must be positive")
            return None
        return result

    def share(self, value: Any, path: str) -> float | None:
        """A fraction from 0 to 1; YAML integers 0 and 1 count, booleans do not."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(path, f"expected a number from 0 to 1, got {_kind(value)}")
            return None
        if not 0 <= value <= 1:  # also refuses .nan, for which every comparison is false
            self.problem(path, "must be from 0 to 1")
            return None
        return float(value)


# The fields tbot's templates see (argocd.py renders with these).
_TEMPLATE_FIELDS = frozenset({"ClusterName", "KubeName", "Labels"})


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


def _csv(text: str) -> frozenset[str]:
    return frozenset(item.strip() for item in text.split(",") if item.strip())


def _child_path(path: str, key: Any) -> str:
    """`a.b` for a key that reads as a name, `a["b c"]` for any other."""
    text = str(key)
    return _join(path, text) if _PLAIN_KEY.fullmatch(text) else f"{path}[{json.dumps(text)}]"


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
