"""scripts/from-tbot.py: tbot chart values or a tbot configuration in, our configuration and stack
parameters out, every key it cannot carry over named on stderr with why, the exit status saying
whether the result is complete (0), partial (1) or absent (2).

The chart's keys and what they render into follow examples/chart/tbot (values.yaml,
templates/_config.tpl, .lint/argocd.yaml) in gravitational/teleport; tbot's keys follow
lib/tbot/config/config.go and lib/tbot/services/k8s/argocd_output_config.go.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from standins.template import ROOT
from teleport_argocd.config import Config, EksDestination, Selector, load_config

SCRIPT = ROOT / "scripts" / "from-tbot.py"
GUIDE_VALUES = Path(__file__).parent / "data" / "tbot-argocd-guide-values.yaml"
# What the stack passes the functions once deployed with the printed parameters and a destination.
DEPLOYED = {"DESTINATION_EKS_CLUSTER": "argocd", "DESTINATION_REGION": "eu-west-1"}


@dataclass
class Run:
    status: int
    stdout: str
    stderr: str

    @property
    def refused(self) -> dict[str, str]:
        """stderr's `FILE: path: reason` lines, by path."""
        lines = (line.split(": ", 2) for line in self.stderr.splitlines())
        return {parts[1]: parts[2] for parts in lines if len(parts) == 3}

    def parameters(self) -> dict[str, str]:
        """The `sam deploy --parameter-overrides` printed after the configuration."""
        line = next(line for line in self.stdout.splitlines() if "--parameter-overrides" in line)
        return dict(re.findall(r"(\w+)=(\S+)", line))

    def deployed(self) -> Config:
        """The printed configuration as the deployed functions load it."""
        parameters = self.parameters()
        proxy = parameters["TeleportProxyAddr"]
        env = {
            **DEPLOYED,
            # A proxy the input did not give is printed as a placeholder for the user to fill.
            "TELEPORT_PROXY_ADDR": "teleport.example.com:443" if proxy.startswith("<") else proxy,
            "TELEPORT_JOIN_TOKEN": parameters["TeleportJoinToken"],
        }
        return load_config(self.stdout, env=env)


def run(tmp_path: Path, text: str | None = None, *args: str, file: Path | None = None) -> Run:
    if file is None:
        file = tmp_path / "input.yaml"
        file.write_text(text or "")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(file), *args], capture_output=True, text=True, check=False
    )
    return Run(done.returncode, done.stdout, done.stderr)


def test_the_argo_cd_guides_values_carry_over_all_but_the_join_method(tmp_path: Path) -> None:
    """The guide installs the chart with `--namespace argocd` and joins with the kubernetes method."""
    result = run(tmp_path, None, "--namespace", "argocd", file=GUIDE_VALUES)

    assert result.status == 1  # printed, with one key not carried over
    assert list(result.refused) == ["joinMethod"]
    assert "the functions join Teleport with the IAM method" in result.refused["joinMethod"]
    assert result.parameters() == {
        "TeleportProxyAddr": "test.teleport.sh:443",
        "TeleportJoinToken": "teleport-argocd-iam",  # deploy/teleport/token.yaml, not tbot's token
    }
    assert "DestinationEksCluster=<name>" in result.stdout  # the destination is the user's to add
    (output,) = result.deployed().outputs
    assert output.selectors == (Selector(None, {"environment": "production"}),)
    assert output.secret_namespace == "argocd"
    # Everything else is tbot's default, so the Secrets keep their names and Argo CD names.
    assert output.secret_name_prefix == "teleport.argocd-cluster"
    assert output.cluster_name_template == "{{.ClusterName}}-{{.KubeName}}"
    assert (output.credential_ttl, output.renewal_interval) == (timedelta(hours=1), timedelta(minutes=20))
    assert output.destination == EksDestination("argocd", "eu-west-1")
    # The kubernetes join token's name is never printed.
    assert "example-join-token" not in result.stdout + result.stderr


def test_without_the_release_namespace_nothing_is_printed(tmp_path: Path) -> None:
    """tbot writes to POD_NAMESPACE, the release's: the values alone do not say where that is."""
    result = run(tmp_path, None, file=GUIDE_VALUES)

    assert result.status == 2
    assert result.stdout == ""
    assert "--namespace" in result.refused["argocd.secretNamespace"]


CHART_VALUES = """
clusterName: test.teleport.sh
teleportProxyAddress: test.teleport.sh:443
joinMethod: iam
token: tbot-iam
defaultOutput: {enabled: false}
serviceAccount: {name: tbot}
resources: {requests: {cpu: 100m}}
argocd:
  enabled: true
  clusterSelectors:
    - name: foo
    - labels: {foo: bar}
  secretNamespace: my-namespace
  secretLabels: {baz: qux, team: '{{ index .Labels "team" }}'}
  secretAnnotations: {chunky: bacon}
  project: my-argo-project
  namespaces: [dev, prod]
  clusterResources: true
  clusterNameTemplate: "{{.KubeName}}"
"""


def test_every_argocd_value_of_the_chart_carries_over(tmp_path: Path) -> None:
    """The chart's .lint/argocd.yaml values with an IAM join: complete, the token name kept."""
    result = run(tmp_path, CHART_VALUES)

    assert (result.status, result.stderr) == (0, "")
    assert result.parameters() == {
        "TeleportProxyAddr": "test.teleport.sh:443",
        "TeleportJoinToken": "tbot-iam",
    }
    (output,) = result.deployed().outputs
    assert output.selectors == (Selector("foo", {}), Selector(None, {"foo": "bar"}))
    assert output.secret_namespace == "my-namespace"
    assert output.secret_labels == {"baz": "qux", "team": '{{ index .Labels "team" }}'}
    assert output.secret_annotations == {"chunky": "bacon"}
    assert output.project == "my-argo-project"
    assert output.namespaces == ("dev", "prod")
    assert output.cluster_resources is True
    assert output.cluster_name_template == "{{.KubeName}}"


TBOT_CONFIG = """
version: v2
proxy_server: teleport.example.com:443
onboarding: {join_method: iam, token: argocd-bot}
storage: {type: memory}
credential_ttl: 2h
renewal_interval: 30m
services:
  - type: kubernetes/argo-cd
    name: prod
    selectors: [{labels: {env: prod}}]
    secret_namespace: argocd
outputs:
  - type: identity
    destination: {type: directory, path: /opt/machine-id}
  - type: kubernetes/argo-cd
    name: tools
    selectors: [{name: tools}]
    secret_name_prefix: tools.cluster
    credential_ttl: 40m
    renewal_interval: 10m
"""


@pytest.mark.parametrize("flag", [(), ("--tbot-config",)], ids=["detected", "flag"])
def test_a_tbot_config_carries_its_argo_cd_outputs_over(tmp_path: Path, flag: tuple[str, ...]) -> None:
    result = run(tmp_path, TBOT_CONFIG, "--namespace", "argocd", *flag)

    assert result.status == 1
    assert list(result.refused) == ["outputs[0].type"]  # the identity output
    assert "only Argo CD cluster Secrets" in result.refused["outputs[0].type"]
    assert result.parameters()["TeleportJoinToken"] == "argocd-bot"
    prod, tools = result.deployed().outputs  # services first, then outputs, as tbot reads them
    assert (prod.name, prod.secret_namespace) == ("prod", "argocd")
    # The bot-wide lifetime applies where an output sets neither key, as in tbot.
    assert (prod.credential_ttl, prod.renewal_interval) == (timedelta(hours=2), timedelta(minutes=30))
    assert (tools.name, tools.secret_namespace, tools.secret_name_prefix) == (
        "tools",
        "argocd",
        "tools.cluster",
    )
    assert (tools.credential_ttl, tools.renewal_interval) == (timedelta(minutes=40), timedelta(minutes=10))


@pytest.mark.parametrize(
    ("values", "path", "reason"),
    [
        ("teleportAuthAddress: auth:3025\nteleportProxyAddress: ''", "teleportAuthAddress", "Proxy Service"),
        ("joinMethod: kubernetes", "joinMethod", "IAM method"),
        ("defaultOutput: {enabled: true}", "defaultOutput.enabled", "identity output"),
        ("replicaCount: 2", "replicaCount", "unknown tbot chart value"),
        ("tbotConfig: {debug: true}", "tbotConfig", "--tbot-config"),
        ("argocd: {secretNamePrefix: mine}", "argocd.secretNamePrefix", "default prefix"),
        ("argocd: {shard: '1'}", "argocd.shard", "unknown tbot chart value"),
        ("outputs: [{type: kubernetes/v2, selectors: [{name: a}]}]", "outputs[0].type", "kubernetes/v2"),
        (
            "services: [{type: kubernetes/argo-cd, selectors: [{name: a}], secret_name_prefix: b,"
            " roles: [x]}]",
            "services[0].roles",
            "unknown kubernetes/argo-cd key",
        ),
    ],
)
def test_what_cannot_carry_over_is_named_with_why(
    tmp_path: Path, values: str, path: str, reason: str
) -> None:
    """Each case changes one thing in otherwise complete values: the rest still carries over."""
    base: dict[str, Any] = {
        "teleportProxyAddress": "teleport.example.com:443",
        "joinMethod": "iam",
        "defaultOutput": {"enabled": False},
        "argocd": {"enabled": True, "clusterSelectors": [{"name": "foo"}]},
    }
    changes = yaml.safe_load(values)
    document = {**base, **{k: v for k, v in changes.items() if k != "argocd"}}
    document["argocd"] = {**base["argocd"], **changes.get("argocd", {})}
    result = run(tmp_path, yaml.safe_dump(document), "--namespace", "argocd")

    assert result.status == 1
    assert list(result.refused) == [path]
    assert reason in result.refused[path]
    assert Selector("foo", {}) in (output.selectors[0] for output in result.deployed().outputs)


@pytest.mark.parametrize(
    ("changes", "path", "reason"),
    [
        ({"proxy_server": None, "auth_server": "auth:3025"}, "auth_server", "Proxy Service"),
        ({"onboarding": {"join_method": "kubernetes", "token": "s3cr3t"}}, "onboarding.join_method", "IAM"),
        ({"onboarding": None, "join_uri": "tbot+proxy+token://s3cr3t@t:443"}, "join_uri", "IAM"),
        ({"insecure": True}, "insecure", "first use"),
        ({"fips": True}, "fips", "FIPS"),
        ({"version": "v1"}, "version", "only v2"),
        ({"bots": []}, "bots", "unknown tbot configuration key"),
        ({"services": {"type": "kubernetes/argo-cd"}}, "services", "expected a list"),
        (
            {"outputs": [{"type": "kubernetes/argo-cd", "selectors": [{"name": "a"}], "destination": {}}]},
            "outputs[0].destination",
            "unknown kubernetes/argo-cd key",
        ),
    ],
)
def test_what_a_tbot_config_cannot_carry_over_is_named_with_why(
    tmp_path: Path, changes: dict[str, Any], path: str, reason: str
) -> None:
    base: dict[str, Any] = {
        "version": "v2",
        "proxy_server": "teleport.example.com:443",
        "onboarding": {"join_method": "iam", "token": "argocd-bot"},
        "outputs": [{"type": "kubernetes/argo-cd", "selectors": [{"name": "a"}]}],
    }
    document = {key: value for key, value in {**base, **changes}.items() if value is not None}
    result = run(tmp_path, yaml.safe_dump(document), "--namespace", "argocd")

    assert result.status == 1
    assert list(result.refused) == [path]
    assert reason in result.refused[path]
    assert result.deployed().outputs[0].selectors == (Selector("a", {}),)
    assert "s3cr3t" not in result.stdout + result.stderr


def test_an_older_charts_custom_config_replaces_the_values(tmp_path: Path) -> None:
    """customConfig: the chart's other values are ignored, and so are they here."""
    values = {
        "teleportProxyAddress": "ignored.example.com:443",
        "customConfig": {
            "proxy_server": "teleport.example.com:443",
            "onboarding": {"join_method": "kubernetes", "token": "tbot"},
            "outputs": [
                {"type": "kubernetes/argo-cd", "selectors": [{"name": "a"}], "secret_namespace": "cd"}
            ],
        },
    }
    result = run(tmp_path, yaml.safe_dump(values))

    assert result.status == 1
    assert list(result.refused) == ["customConfig.onboarding.join_method"]
    assert result.parameters()["TeleportProxyAddr"] == "teleport.example.com:443"
    assert result.deployed().outputs[0].secret_namespace == "cd"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Only other outputs: nothing to print.
        ("version: v2\nproxy_server: t:443\noutputs: [{type: identity}]", "no kubernetes/argo-cd output"),
        # tbot accepts a prefix ending in '-'; Kubernetes refuses the Secret names, so the loader does.
        (
            "version: v2\nproxy_server: t:443\nonboarding: {join_method: iam, token: x}\n"
            "outputs: [{type: kubernetes/argo-cd, selectors: [{name: a}],"
            " secret_name_prefix: my-argo-cluster-}]",
            "outputs[0].secret_name_prefix: must not end with '-'",
        ),
        ("argocd: {enabled: true}\nteleportProxyAddress: t:443", "argocd.clusterSelectors: required"),
    ],
)
def test_a_result_that_would_be_refused_is_not_printed(tmp_path: Path, text: str, message: str) -> None:
    result = run(tmp_path, text, "--namespace", "argocd")

    assert result.status == 2
    assert result.stdout == ""
    assert message in result.stderr


def test_invalid_yaml_is_reported_without_quoting_the_file(tmp_path: Path) -> None:
    """The values may hold a `token`-method join secret: the error names a position only."""
    result = run(tmp_path, "token: s3cr3t-join-token\nargocd: [unclosed\n")

    assert result.status == 2
    assert "invalid YAML at line" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout


def test_the_readme_shows_what_the_script_prints_for_the_guide(tmp_path: Path) -> None:
    """ "Moving from tbot" quotes the result for the guide's values: it stays the script's own."""
    moving = (ROOT / "README.md").read_text().split("## Moving from tbot", 1)[1]
    block = textwrap.dedent(moving.split("```yaml\n", 1)[1].split("```", 1)[0])
    result = run(tmp_path, None, "--namespace", "argocd", file=GUIDE_VALUES)

    def configuration(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("#")]

    assert configuration(block) == configuration(result.stdout)
    overrides = block.split("--parameter-overrides", 1)[1].splitlines()[0]
    assert result.parameters() == dict(re.findall(r"(\w+)=(\S+)", overrides))
