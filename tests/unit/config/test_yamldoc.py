"""Hostile and malformed YAML: every one is a listed problem with its path, never another exception."""

import pytest

from teleport_argocd.config import Selector, load_config
from teleport_argocd.errors import ConfigError

from .documents import ENV, OUTPUT_YAML, problem_at, problems_of


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("outputs:\n  - type: [unclosed\n", "invalid YAML at line 3, column 1:"),
        ("teleport: {proxy_addr: a\noutputs: []\n", "invalid YAML at line 2, column 8:"),
        ("a: b: c\n", "invalid YAML at line 1, column 5: mapping values are not allowed here"),
    ],
)
def test_yaml_syntax_errors(text: str, message: str) -> None:
    [problem] = problems_of(text)
    assert problem.path == ""
    assert problem.message.startswith(message)


def test_a_date_where_a_string_is_expected_is_that_string() -> None:
    """Go reads `2024-01-01` as a string wherever a string is expected; so do we."""
    for text in ("2024-01-01", "2024-13-01", "2024-01-01T10:00:00Z"):
        [output] = load_config(OUTPUT_YAML + f"    project: {text}\n", env=ENV).outputs
        assert output.project == text


def test_an_invalid_date_is_no_crash() -> None:
    """PyYAML's timestamp constructor raised ValueError on month 13."""
    assert problem_at("release: 2024-13-01\n" + OUTPUT_YAML, "release") == "unknown key"


def test_explicit_timestamp_tag_reads_as_a_string() -> None:
    """`!!timestamp x` raised AttributeError in PyYAML's constructor."""
    [output] = load_config(OUTPUT_YAML + "    project: !!timestamp x\n", env=ENV).outputs
    assert output.project == "x"


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [
        ("outputs: !!bool maybe\n", "outputs", "line 1, column 10: cannot read this value as bool"),
        ("outputs: !!int x\n", "outputs", "line 1, column 10: cannot read this value as int"),
        ("outputs: !!float x\n", "outputs", "line 1, column 10: cannot read this value as float"),
        ("outputs: !!binary 'a'\n", "outputs", "line 1, column 10: cannot read this value as binary"),
        ("outputs: !!map x\n", "outputs", "line 1, column 10: cannot read this value as map"),
        ("outputs: !foo x\n", "outputs", "line 1, column 10: unsupported YAML tag '!foo'"),
        ("outputs: !foo [x]\n", "outputs", "line 1, column 10: unsupported YAML tag '!foo'"),
        (
            "outputs: !!set {a}\n",
            "outputs",
            "line 1, column 10: unsupported YAML tag 'tag:yaml.org,2002:set'",
        ),
        ("outputs: !!python/name:os.system x\n", "outputs", "line 1, column 10: unsupported YAML tag"),
        (f"outputs: {'9' * 5000}\n", "outputs", "line 1, column 10: cannot read this value as int"),
        ("outputs: []\noutputs: []\n", "outputs", "line 2, column 1: duplicate key"),
        ("? [a]\n: b\n", "", "line 1, column 3: a key must be a plain value, not a list or a mapping"),
        ("a b: !!bool x\n", '["a b"]', "line 1, column 6: cannot read this value as bool"),
        ("outputs:\n  - <<: 5\n", "outputs[0]", "line 2, column 9: a merge key ('<<') takes a mapping"),
    ],
)
def test_values_that_cannot_be_built_are_problems_with_their_path(text: str, path: str, message: str) -> None:
    assert problem_at(text, path).startswith(message)


def test_a_value_that_cannot_be_built_is_never_quoted() -> None:
    secret = "s3cr3t-join-token"
    text = f"teleport:\n  join_token: !!bool {secret}\n  ca_pem: !!int '-----BEGIN CERTIFICATE-----'\n"
    with pytest.raises(ConfigError) as excinfo:
        load_config(text + OUTPUT_YAML, env=ENV)
    error = str(excinfo.value)
    assert "teleport.join_token: line 2, column 15: cannot read this value as bool" in error
    assert secret not in error
    assert "BEGIN CERTIFICATE" not in error


def test_deep_flow_nesting_is_refused_before_it_is_built() -> None:
    """A 600-deep flow list raised RecursionError in PyYAML's composer."""
    [problem] = problems_of("outputs: " + "[" * 600 + "]" * 600 + "\n")
    assert problem.path == ""
    assert problem.message == "line 1, column 41: nested deeper than 32 levels"


def test_deep_block_nesting_is_refused() -> None:
    text = "".join(f"{'  ' * i}a{i}:\n" for i in range(40))
    [problem] = problems_of(text)
    assert problem.message.endswith("nested deeper than 32 levels")


def test_nesting_through_aliases_is_refused() -> None:
    """Each anchor nests the previous one 20 levels deeper: the text is shallow, the value is not."""
    lines = ["a0: &a0 x"] + [f"a{i}: &a{i} {'[' * 20}*a{i - 1}{']' * 20}" for i in range(1, 30)]
    problems = problems_of("\n".join(lines) + "\n")
    assert any(p.message.endswith("nested deeper than 32 levels (through aliases)") for p in problems)


def test_recursive_alias_is_refused() -> None:
    problems = problems_of("outputs: &a [*a]\n")
    assert any(p.message.endswith("nested deeper than 32 levels (through aliases)") for p in problems)


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert [str(p) for p in problems_of("\n".join(lines) + "\n")] == [
        "the document expands to more than 100000 values (aliases?)"
    ]


def test_merge_key_bomb_is_refused() -> None:
    lines = ["m0: &m0 {a: 1}"] + [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}" for i in range(1, 40)]
    assert [str(p) for p in problems_of("\n".join(lines) + "\n")] == [
        "the document expands to more than 100000 values (aliases?)"
    ]


def test_merge_keys_are_supported() -> None:
    text = """\
outputs:
  - &base {type: kubernetes/argo-cd, selectors: [{name: a}], secret_namespace: argocd, project: p}
  - <<: *base
    selectors: [{name: b}]
    secret_name_prefix: other
"""
    _, second = load_config(text, env=ENV).outputs
    assert second.secret_namespace == "argocd"
    assert second.project == "p"
    assert second.selectors == (Selector("b", {}),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\n---\nb: 2\n", "invalid YAML at line 2, column 1: but found another document"),
        ("a: \x07\n", "invalid YAML: unacceptable character #x0007: special characters are not allowed"),
        ("a: '\n", "invalid YAML at line 2, column 1: found unexpected end of stream"),
        ("a: *nowhere\n", "invalid YAML at line 1, column 4: found undefined alias 'nowhere'"),
    ],
)
def test_more_yaml_syntax_errors(text: str, message: str) -> None:
    [problem] = problems_of(text)
    assert problem.message.startswith(message)
