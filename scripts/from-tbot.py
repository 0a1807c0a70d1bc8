"""Turn a tbot deployment into this project's configuration and `sam deploy` parameters.

    .venv/bin/python scripts/from-tbot.py tbot-values.yaml --namespace argocd > config.yaml
    .venv/bin/python scripts/from-tbot.py tbot.yaml --tbot-config > config.yaml

Reads the values given to Teleport's `tbot` Helm chart (`helm install tbot teleport/tbot --values
tbot-values.yaml`) or a tbot YAML configuration (told apart by their keys, or `--tbot-config`), and
prints the configuration to store in SSM, with the stack parameters in comments after it. Chart
values are read as the chart renders them into tbot's configuration
(examples/chart/tbot/templates/_config.tpl in gravitational/teleport); an output takes tbot's
`kubernetes/argo-cd` keys as they are. The result has passed the functions' own configuration
loader: what it prints, they accept.

Whatever cannot be carried over is named on stderr with its key's path and the reason: another
join method than IAM (the functions join with their own IAM role), outputs of other types, keys
it does not know. The exit status says whether the result is complete: 0 complete; 1 printed, but
the keys on stderr were not carried over; 2 nothing printed (no `kubernetes/argo-cd` output, an
output without `secret_namespace` and no `--namespace`, or a result the loader refuses). A join
token is never printed unless the join method is IAM, where its name is not a secret.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "core"))

from teleport_argocd.config import load_config
from teleport_argocd.errors import ConfigError

OUTPUT_TYPE = "kubernetes/argo-cd"
# deploy/teleport/token.yaml's name, the TeleportJoinToken parameter's default.
IAM_TOKEN = "teleport-argocd-iam"
# Validation only: the deployment's parameters fill these, and none changes what is validated.
PLACEHOLDER_ENV = {
    "TELEPORT_PROXY_ADDR": "teleport.invalid:443",
    "DESTINATION_KUBECONFIG_SECRET": "arn:aws:secretsmanager:us-east-1:123456789012:secret:from-tbot-AbCdEf",
}
# tbot's kubernetes/argo-cd keys (lib/tbot/services/k8s/argocd_output_config.go), ours too.
OUTPUT_KEYS = (
    "type",
    "name",
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
LIFETIME_KEYS = ("credential_ttl", "renewal_interval")
# The chart's argocd.* values and the keys _config.tpl renders each into, when it is not empty.
CHART_ARGOCD = {
    "clusterSelectors": "selectors",
    "secretNamespace": "secret_namespace",
    "secretLabels": "secret_labels",
    "secretAnnotations": "secret_annotations",
    "project": "project",
    "namespaces": "namespaces",
    "clusterResources": "cluster_resources",
    "clusterNameTemplate": "cluster_name_template",
}
# Chart values that shape only tbot's pod, its Kubernetes objects or its own state (clusterName is
# the audience of its Kubernetes join token): there is nothing to carry over to functions.
CHART_POD_KEYS = frozenset(
    {"image", "clusterName", "nameOverride", "fullnameOverride", "persistence", "teleportVersionOverride"}
    | {"anonymousTelemetry", "debug", "serviceAccount", "rbac", "imagePullPolicy", "imagePullSecrets"}
    | {"extraLabels", "annotations", "resources", "affinity", "tolerations", "nodeSelector"}
    | {"securityContext", "podSecurityContext", "extraVolumes", "extraVolumeMounts", "extraArgs"}
    | {"extraEnv", "updater"}
)
# Every key of the chart's values this script reads; a file with any of them but those a tbot
# configuration has too is chart values.
CHART_KEYS = frozenset(
    {"teleportProxyAddress", "teleportAuthAddress", "token", "joinMethod", "argocd", "defaultOutput"}
    | {"customConfig", "tbotConfig", "outputs", "services"}
    | CHART_POD_KEYS
)
CHART_ONLY_KEYS = CHART_KEYS - {"debug", "outputs", "services"}
# tbot's configuration keys (lib/tbot/config/config.go BotConfig); `storage`, `debug`, `oneshot`
# and `diag_addr` are the process's own, with nothing to carry over.
TBOT_KEYS = frozenset(
    {"version", "proxy_server", "auth_server", "join_uri", "onboarding", "insecure", "fips"}
    | {"outputs", "services", "credential_ttl", "renewal_interval", "certificate_ttl"}
    | {"storage", "debug", "oneshot", "diag_addr"}
)


@dataclass
class Conversion:
    """What was carried over, and what was not (path, reason)."""

    outputs: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # the path each output came from
    proxy_addr: str | None = None
    join_token: str = IAM_TOKEN
    refused: list[tuple[str, str]] = field(default_factory=list)
    fatal: list[tuple[str, str]] = field(default_factory=list)

    def refuse(self, path: str, reason: str) -> None:
        self.refused.append((path, reason))


def from_chart_values(values: Mapping[str, Any], namespace: str | None) -> Conversion:
    """The `kubernetes/argo-cd` outputs and connection the chart renders from these values.

    Helm's `if` skips empty values (false, 0, "", [], {}), and so does this.
    """
    result = Conversion()
    if values.get("customConfig"):  # older charts: it replaces the rendered configuration
        config = values["customConfig"]
        if not isinstance(config, Mapping):
            result.fatal.append(("customConfig", "expected a mapping (a tbot configuration)"))
            return result
        return from_tbot_config(config, namespace, prefix="customConfig.")
    for key in values:
        if key not in CHART_KEYS:
            result.refuse(str(key), "unknown tbot chart value: not carried over")
    _proxy(result, values, "teleportProxyAddress", "teleportAuthAddress")
    method = values.get("joinMethod")
    _join(result, method or "kubernetes", values.get("token"), "joinMethod", chart_default=not method)
    if values.get("tbotConfig"):
        result.refuse(
            "tbotConfig",
            "not read: the chart merges it over the rendered configuration; run this script with"
            " --tbot-config on the rendered tbot.yaml (in the chart's ConfigMap) instead",
        )
    default_output = values.get("defaultOutput")
    if not isinstance(default_output, Mapping) or default_output.get("enabled", True):
        result.refuse(
            "defaultOutput.enabled", _OTHER_OUTPUT.format("true (the chart's default): its identity output")
        )
    for i, item in enumerate(_list(result, values, "services")):  # tbot reads services first
        _service(result, item, f"services[{i}]", namespace, lifetime={})
    argocd = values.get("argocd") or {}
    if not isinstance(argocd, Mapping):
        result.fatal.append(("argocd", "expected a mapping"))
    elif argocd.get("enabled"):
        output: dict[str, Any] = {"type": OUTPUT_TYPE}
        for key, value in argocd.items():
            path = f"argocd.{key}"
            if key == "secretNamePrefix":
                if value:
                    result.refuse(path, _UNRENDERED_PREFIX)
            elif key in CHART_ARGOCD:
                if value:
                    output[CHART_ARGOCD[key]] = value
            elif key != "enabled":
                result.refuse(path, "unknown tbot chart value: not carried over")
        if "selectors" not in output:
            result.fatal.append(("argocd.clusterSelectors", "required when argocd.enabled is true"))
        _add_output(result, output, "argocd", "argocd.secretNamespace", namespace, lifetime={})
    for i, item in enumerate(_list(result, values, "outputs")):
        _service(result, item, f"outputs[{i}]", namespace, lifetime={})
    return result


def from_tbot_config(config: Mapping[str, Any], namespace: str | None, prefix: str = "") -> Conversion:
    """The `kubernetes/argo-cd` outputs and connection of a tbot configuration (v2)."""
    result = Conversion()
    for key in config:
        if key not in TBOT_KEYS:
            result.refuse(f"{prefix}{key}", "unknown tbot configuration key: not carried over")
    if config.get("version", "v2") != "v2":
        result.refuse(f"{prefix}version", "only v2 configurations have kubernetes/argo-cd outputs")
    _proxy(result, config, "proxy_server", "auth_server", prefix)
    if config.get("join_uri"):
        result.refuse(f"{prefix}join_uri", f"not read: {_IAM_ONLY}")
    else:
        onboarding = config.get("onboarding")
        onboarding = onboarding if isinstance(onboarding, Mapping) else {}
        method, token = onboarding.get("join_method"), onboarding.get("token")
        _join(result, method, token, f"{prefix}onboarding.join_method")
    if config.get("insecure"):
        result.refuse(
            f"{prefix}insecure",
            "not carried over: tbot trusts the proxy's certificate on first use, teleport.insecure"
            " never checks it; set that yourself, and only for a test cluster",
        )
    if config.get("fips"):
        result.refuse(f"{prefix}fips", "not carried over: the functions do not run in FIPS mode")
    # The bot-wide lifetime applies to a service that sets neither key (tbot's cmp.Or on the pair).
    lifetime = {key: config[key] for key in LIFETIME_KEYS if config.get(key) is not None}
    if "credential_ttl" not in lifetime and config.get("certificate_ttl") is not None:
        lifetime["credential_ttl"] = config["certificate_ttl"]  # its deprecated name
    for key in ("services", "outputs"):  # tbot appends outputs to services
        for i, item in enumerate(_list(result, config, key, prefix)):
            _service(result, item, f"{prefix}{key}[{i}]", namespace, lifetime)
    return result


def _service(
    result: Conversion, item: Any, path: str, namespace: str | None, lifetime: Mapping[str, Any]
) -> None:
    if not isinstance(item, Mapping):
        result.refuse(path, "expected a mapping: not carried over")
        return
    if item.get("type") != OUTPUT_TYPE:
        result.refuse(f"{path}.type", _OTHER_OUTPUT.format(repr(item.get("type"))))
        return
    output: dict[str, Any] = {}
    for key, value in item.items():
        if key in OUTPUT_KEYS:
            output[key] = value
        else:
            result.refuse(f"{path}.{key}", f"unknown {OUTPUT_TYPE} key: not carried over")
    _add_output(result, output, path, f"{path}.secret_namespace", namespace, lifetime)


def _add_output(
    result: Conversion,
    output: dict[str, Any],
    path: str,
    namespace_path: str,
    namespace: str | None,
    lifetime: Mapping[str, Any],
) -> None:
    if not output.get("secret_namespace"):
        # tbot writes to POD_NAMESPACE, where it runs (the chart sets it to the release's); the
        # functions have no namespace of their own.
        if namespace is None:
            result.fatal.append(
                (
                    namespace_path,
                    "not set, so tbot wrote to the namespace it runs in, which this file does not say:"
                    " pass it with --namespace (the chart's: helm install --namespace)",
                )
            )
        output["secret_namespace"] = namespace
    if not any(output.get(key) is not None for key in LIFETIME_KEYS):
        output.update(lifetime)
    result.outputs.append(output)
    result.sources.append(path)


def _proxy(result: Conversion, section: Mapping[str, Any], proxy: str, auth: str, prefix: str = "") -> None:
    result.proxy_addr = _string(section.get(proxy)) or None
    if section.get(auth):
        result.refuse(
            prefix + auth,
            "not carried over: the functions connect through the Teleport Proxy Service;"
            " give its address as TeleportProxyAddr",
        )
    elif not result.proxy_addr:
        result.refuse(
            prefix + proxy, "not set: give the Teleport Proxy Service's address as TeleportProxyAddr"
        )


def _join(result: Conversion, method: Any, token: Any, path: str, *, chart_default: bool = False) -> None:
    if method == "iam":
        result.join_token = _string(token) or IAM_TOKEN
        return
    named = f"{method!r} (the chart's default)" if chart_default else repr(method) if method else "not set"
    result.refuse(path, f"{named}: {_IAM_ONLY}")


_IAM_ONLY = (
    "the functions join Teleport with the IAM method, as their own roles: create an IAM join token"
    f" for the bot (deploy/teleport/token.yaml) and pass its name as TeleportJoinToken (default {IAM_TOKEN})"
)
_OTHER_OUTPUT = f"{{}} is not carried over: the functions write only Argo CD cluster Secrets ({OUTPUT_TYPE})"
_UNRENDERED_PREFIX = (
    "not carried over: the chart's template does not render it, so tbot named its Secrets with the"
    " default prefix; if your chart version renders it, add secret_name_prefix to the output yourself"
)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _list(result: Conversion, section: Mapping[str, Any], key: str, prefix: str = "") -> list[Any]:
    value = section.get(key)
    if value is not None and not isinstance(value, list):
        result.refuse(prefix + key, "expected a list: not carried over")
    return value if isinstance(value, list) else []


def is_tbot_config(document: Mapping[str, Any]) -> bool:
    """Chart values have at least one of the chart's own keys; a tbot configuration has none."""
    return not set(map(str, document)) & CHART_ONLY_KEYS


def render(conversion: Conversion, source: str, kind: str) -> str:
    """The configuration document, then the stack parameters as comments."""
    document = yaml.safe_dump({"outputs": conversion.outputs}, sort_keys=False, width=100)
    proxy = conversion.proxy_addr or "<host:port>"
    return (
        f"# From the {kind} in {source}, by scripts/from-tbot.py.\n"
        f"{document}"
        "# Stack parameters; the destination is the cluster tbot wrote to, where Argo CD runs:\n"
        f"#   sam deploy --guided --parameter-overrides TeleportProxyAddr={proxy}"
        f" TeleportJoinToken={conversion.join_token} \\\n"
        "#     DestinationEksCluster=<name> [DestinationRegion=<region>]"
        "   (or DestinationKubeconfigSecretArn=<full ARN>)\n"
        "# TeleportJoinToken names an IAM join token whose allow rules name the functions' roles"
        " (deploy/teleport/token.yaml).\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", type=Path, help="the tbot chart's values file, or a tbot configuration")
    parser.add_argument(
        "--tbot-config", action="store_true", help="read FILE as a tbot configuration, not chart values"
    )
    parser.add_argument(
        "--namespace",
        help="the namespace tbot runs in (helm install --namespace): where it wrote when no"
        " secret namespace is set",
    )
    args = parser.parse_args(argv)

    try:
        document = yaml.safe_load(args.file.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{args.file}: cannot read: {exc}", file=sys.stderr)
        return 2
    except yaml.YAMLError as exc:  # never the text around it: the file may hold a join token
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        print(f"{args.file}: invalid YAML{where}", file=sys.stderr)
        return 2
    if not isinstance(document, Mapping):
        print(f"{args.file}: expected a mapping of values or a tbot configuration", file=sys.stderr)
        return 2
    tbot_config = args.tbot_config or is_tbot_config(document)
    if tbot_config:
        conversion = from_tbot_config(document, args.namespace)
    else:
        conversion = from_chart_values(document, args.namespace)
    for path, reason in conversion.refused:
        print(f"{args.file}: {path}: {reason}", file=sys.stderr)
    if not conversion.outputs and not conversion.fatal:
        conversion.fatal.append(("", f"no {OUTPUT_TYPE} output to carry over"))
    for path, reason in conversion.fatal:
        print(f"{args.file}: {path + ': ' if path else ''}{reason}", file=sys.stderr)
    if conversion.fatal:
        return 2

    kind = "tbot configuration" if tbot_config else "tbot chart values"
    text = render(conversion, args.file.name, kind)
    env = dict(PLACEHOLDER_ENV, TELEPORT_JOIN_TOKEN=conversion.join_token)
    if conversion.proxy_addr:
        env["TELEPORT_PROXY_ADDR"] = conversion.proxy_addr
    try:
        config = load_config(text, env=env)  # exactly what is printed
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{args.file}: {_origin(str(problem), conversion.sources)}", file=sys.stderr)
        print(f"{args.file}: the functions would refuse the result, so nothing is printed", file=sys.stderr)
        return 2
    for warning in config.warnings:
        print(f"{args.file}: warning: {_origin(warning, conversion.sources)}", file=sys.stderr)
    sys.stdout.write(text)
    return 1 if conversion.refused else 0


def _origin(problem: str, sources: list[str]) -> str:
    """A loader's problem, naming the stack parameter or the input's key the value came from."""
    for variable, parameter in _PARAMETERS.items():
        if problem.startswith(variable):
            return parameter + problem.removeprefix(variable)
    for i, source in enumerate(sources):
        if problem.startswith(f"outputs[{i}]") and source != f"outputs[{i}]":
            return f"{problem} (the output from {source})"
    return problem


_PARAMETERS = {"TELEPORT_PROXY_ADDR": "TeleportProxyAddr", "TELEPORT_JOIN_TOKEN": "TeleportJoinToken"}


if __name__ == "__main__":
    sys.exit(main())
