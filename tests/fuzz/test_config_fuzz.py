"""Fuzzing the configuration loader: whatever the document, `load_config` returns a Config or raises
ConfigError, and no problem message quotes the join token.

Documents are built from the configuration's shape (its real keys, valid values, and hostile ones:
YAML tags, dates, huge numbers, deep nesting, aliases, unicode), and also drawn as raw text.
FUZZ_EXAMPLES sets the examples per test (2,000 by default).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teleport_argocd.config import Config, load_config
from teleport_argocd.config.destination import DESTINATION_KEYS, EKS_KEYS, KUBECONFIG_SECRET_KEYS
from teleport_argocd.config.load import ROOT_KEYS
from teleport_argocd.config.output import OUTPUT_KEYS, PRUNE_KEYS, SELECTOR_KEYS
from teleport_argocd.config.teleport import TELEPORT_KEYS
from teleport_argocd.errors import ConfigError

pytestmark = pytest.mark.fuzz

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Planted as the join token: it must never come back in a problem message.
JOIN_TOKEN = "tok-7f3a9c2e5b1d48e6a0c4"

ENV = {
    "TELEPORT_PROXY_ADDR": "teleport.example.com:443",
    "TELEPORT_JOIN_TOKEN": JOIN_TOKEN,
    "DESTINATION_EKS_CLUSTER": "argocd",
    "DESTINATION_REGION": "eu-west-1",
}

# YAML scalars as written in a document, chosen to break constructors and validators.
HOSTILE_SCALARS = [
    "2024-13-01",
    "2024-01-01",
    "2001-12-14t21:59:43.10-05:00",
    "!!timestamp x",
    "!!timestamp 2024-02-30",
    "!!bool maybe",
    "!!int x",
    "!!int 1_000",
    "!!float x",
    "!!binary a",
    "!!binary '%%%'",
    "!!null x",
    "!!str",
    "!!map x",
    "!!seq x",
    "!!set x",
    "!!omap x",
    "!!pairs x",
    "!!merge x",
    "!!value x",
    "!!python/object/apply:os.system ['true']",
    "!foo x",
    "!<tag:example.com,2000:x> y",
    "30000000000h",
    "2562047h47m16.854775808s",
    "-1h",
    "0s",
    "1h",
    "20m",
    "25h",
    ".5m",
    "\u0663h",
    "1e400",
    "-.inf",
    ".nan",
    "0x1F",
    "0o17",
    "0b101",
    "1_000",
    "190:20:30",
    "~",
    "null",
    "yes",
    "no",
    "on",
    "true",
    "'quoted'",
    '"\\u0000\\x07"',
    '"\\ud800"',
    "<<",
    "=",
    "kubernetes/argo-cd",
    "'{{.ClusterName}}-{{.KubeName}}'",
    "'{{.KubeName'",
    '\'{{ index .Labels "a" "b" }}\'',
    "'{{template \"x\"}}'",
    '\'{{define "x"}}{{template "x"}}{{end}}{{template "x"}}\'',
    "teleport.argocd-cluster",
    "argocd",
    "eu-west-1",
    "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kc-AbCdEf",
    "'-----BEGIN CERTIFICATE-----'",
    "*nowhere",
    "&anchor x",
    "'\u202e\u0000'",
    "'é中文🙂'",
]

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._/", min_size=1, max_size=20)


def quoted(text: str) -> str:
    """Any text as one double-quoted YAML scalar (characters YAML cannot hold become escapes)."""
    return yaml.safe_dump(text, default_style='"', width=1_000_000).removesuffix("\n...\n").rstrip("\n")


scalars = st.one_of(
    st.sampled_from(HOSTILE_SCALARS),
    # Past Python's 4,300-digit limit on int(), and a template that nests without end.
    st.integers(4000, 6000).map(lambda digits: "-" * (digits % 2) + "9" * digits),
    st.integers(100, 400).map(lambda n: "'" + "{{" * n + "'"),
    names,
    st.text(max_size=30).map(quoted),
    st.integers().map(str),
    st.floats().map(repr),
)


def flow(value: Any) -> str:
    """Render a tree of already-written scalars as flow-style YAML."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {flow(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(item) for item in value) + "]"
    return str(value)


def section(keys: tuple[str, ...], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping with some of `keys` (and now and then an unknown one)."""
    return st.dictionaries(st.one_of(st.sampled_from(keys), names), values, max_size=len(keys) + 1)


trees: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.one_of(names, scalars), children, max_size=4)
    ),
    max_leaves=12,
)
values = st.one_of(scalars, trees)
destinations = section(
    DESTINATION_KEYS,
    st.one_of(section(EKS_KEYS, values), section(KUBECONFIG_SECRET_KEYS, values), values),
)
selectors = st.lists(
    st.one_of(section(SELECTOR_KEYS, st.one_of(values, section(("env", "team"), values))), values),
    max_size=3,
)
output_values: dict[str, st.SearchStrategy[Any]] = {
    "destination": st.one_of(destinations, values),
    "prune": st.one_of(section(PRUNE_KEYS, values), values),
}
outputs = st.lists(
    st.fixed_dictionaries(
        # Mostly valid, so that the other keys are validated too.
        {
            "type": st.one_of(st.just("kubernetes/argo-cd"), st.just("kubernetes/argo-cd"), values),
            "selectors": st.one_of(st.just([{"name": "foo"}]), selectors),
        },
        optional={
            key: output_values.get(key, values) for key in OUTPUT_KEYS if key not in ("type", "selectors")
        },
    ),
    max_size=3,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        "teleport": st.one_of(section(TELEPORT_KEYS, values), values),
        "destination": st.one_of(destinations, values),
        "outputs": st.one_of(outputs, values),
        "extra": values,
    },
)


def nested(depth: int, core: str, mapping: bool) -> str:
    return ("{a: " * depth if mapping else "[" * depth) + core + ("}" * depth if mapping else "]" * depth)


deep_documents = st.builds(
    lambda depth, core, mapping: "outputs: " + nested(depth, core, mapping),
    st.integers(0, 800),
    scalars,
    st.booleans(),
)
alias_documents = st.builds(
    lambda width, levels: (
        "\n".join(
            ["a0: &a0 [x]"]
            + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
            + [f"outputs: *a{levels - 1}"]
        )
        + "\n"
    ),
    st.integers(1, 12),
    st.integers(1, 10),
)
envs = st.fixed_dictionaries(
    {},
    optional={
        "ALLOWED_EKS_CLUSTERS": st.sampled_from(["", "argocd", "eu-west-1/argocd", "other, x/y", ","]),
        "ALLOWED_KUBECONFIG_SECRETS": st.sampled_from(["", "arn:x", "kc"]),
        "POD_NAMESPACE": st.one_of(names, st.text(max_size=5)),
        "DESTINATION_KUBECONFIG_SECRET": st.sampled_from(["", "kc"]),
    },
).map(lambda extra: {**ENV, **extra})


def check(source: str | dict[str, Any], env: dict[str, str]) -> None:
    """The property: a Config, or a ConfigError listing problems that never quote the join token."""
    try:
        config = load_config(source, env=env)
    except ConfigError as exc:
        assert exc.problems
        assert JOIN_TOKEN not in str(exc)
    else:
        assert isinstance(config, Config)
        assert config.outputs


@FUZZ
@given(document=documents, env=envs, token=st.sampled_from([*HOSTILE_SCALARS, JOIN_TOKEN]))
def test_structured_documents(document: dict[str, Any], env: dict[str, str], token: str) -> None:
    teleport = document.get("teleport")
    if isinstance(teleport, dict):
        # The token in the document, under a hostile tag now and then.
        teleport["join_token"] = (
            f"{token.split(' ')[0]} {JOIN_TOKEN}" if token.startswith("!") else JOIN_TOKEN
        )
    check(flow(document), env)


@FUZZ
@given(document=documents, env=envs)
def test_block_style_documents(document: dict[str, Any], env: dict[str, str]) -> None:
    """The same trees as block-style YAML: the scalars, tags included, go in as written."""
    text = "\n".join(f"{key}: {flow(value)}" for key, value in document.items())
    check(text + "\n", env)


@FUZZ
@given(text=st.one_of(deep_documents, alias_documents))
def test_deep_and_aliased_documents(text: str) -> None:
    check(text, ENV)


@FUZZ
@given(
    data=st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=20),
            st.binary(max_size=5),
            st.dates(),
            st.sampled_from(["kubernetes/argo-cd", "1h", "20m", "foo"]),
        ),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(
                st.one_of(st.sampled_from(ROOT_KEYS + OUTPUT_KEYS), st.integers()), children, max_size=5
            ),
        ),
        max_leaves=20,
    ),
    env=envs,
)
def test_parsed_data(data: Any, env: dict[str, str]) -> None:
    """Already-parsed documents, with Python values YAML text never yields (bytes, dates, int keys)."""
    check(data if isinstance(data, dict) else {"outputs": data}, env)


@FUZZ
@given(text=st.text(), env=envs)
def test_raw_text(text: str, env: dict[str, str]) -> None:
    check(text, env)


@FUZZ
@given(text=st.text(alphabet="{}[],:&*!|>'\"#-? \n\tab1<", max_size=80), env=envs)
def test_yaml_punctuation(text: str, env: dict[str, str]) -> None:
    check(text, env)
