"""The documents and environments the configuration tests load, and how they read the problems."""

from typing import Any

import pytest

from teleport_argocd.config import EksDestination, load_config
from teleport_argocd.errors import ConfigError, ConfigProblem

ENV = {
    "TELEPORT_PROXY_ADDR": "teleport.example.com:443",
    "TELEPORT_JOIN_TOKEN": "argocd-lambda",
    "DESTINATION_EKS_CLUSTER": "argocd",
    "DESTINATION_REGION": "eu-west-1",
}
DEFAULT_DESTINATION = EksDestination("argocd", "eu-west-1")
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kc-AbCdEf"
TELEPORT_ENV = {"TELEPORT_PROXY_ADDR": "teleport.example.com", "TELEPORT_JOIN_TOKEN": "t"}

OUTPUT_YAML = "outputs:\n  - type: kubernetes/argo-cd\n    selectors: [{name: foo}]\n"


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
