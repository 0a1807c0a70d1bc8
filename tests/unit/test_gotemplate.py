"""Go's text/template, checked against Go's own results.

tests/gotemplate/vectors.json holds Go's result for each case (scripts/gotemplate-vectors.sh
regenerates it with Go); here our renderer must give the same bytes, or fail where Go fails.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from teleport_argocd import gotemplate
from teleport_argocd.errors import TeleportArgoCDError
from teleport_argocd.gotemplate import TemplateError, parse

HERE = Path(__file__).resolve().parents[1] / "gotemplate"
VECTORS: list[dict[str, Any]] = json.loads((HERE / "vectors.json").read_text())


def render(case: dict[str, Any]) -> str:
    data = case.get("data") or {}
    return parse(case["template"]).render(
        ClusterName=data.get("ClusterName", ""), KubeName=data.get("KubeName", ""), Labels=data.get("Labels")
    )


def check(case: dict[str, Any]) -> None:
    """Assert our result for `case` is Go's: same output, or an error at the same stage."""
    if case.get("refused"):
        with pytest.raises(TemplateError):
            render(case)
    elif case.get("error") == "parse":
        with pytest.raises(TemplateError):
            parse(case["template"])
    elif case.get("error") == "exec":
        template = parse(case["template"])
        with pytest.raises(TemplateError):
            render(case | {"template": template.source})
    else:
        assert render(case) == case["output"]


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_matches_go(case: dict[str, Any]) -> None:
    check(case)


def test_table_covers_successes_and_both_error_stages() -> None:
    kinds = {c.get("error", "refused" if c.get("refused") else "output") for c in VECTORS}
    assert kinds == {"output", "parse", "exec", "refused"}


def go_command() -> str | None:
    """The Go toolchain to run, if one of 1.23 or newer (the table needs {{else with}}) is installed."""
    venv_go = Path(sys.executable).with_name("go")
    go = str(venv_go) if venv_go.exists() else shutil.which("go")
    if go is None:
        return None
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout
    match = re.match(r"go1\.(\d+)", version)
    return go if match and int(match[1]) >= 23 else None


def test_matches_go_live(tmp_path: Path) -> None:
    """Run the Go program now, on the committed cases, and compare with our renderer."""
    go = go_command()
    if go is None:
        pytest.skip("Go 1.23 or newer is not installed")
    env = os.environ | {"GOCACHE": str(tmp_path / "cache"), "GO111MODULE": "off"}
    binary = tmp_path / "render"
    subprocess.run([go, "build", "-o", str(binary), str(HERE / "main.go")], check=True, env=env)
    result = subprocess.run(
        [str(binary)], input=json.dumps(VECTORS), capture_output=True, text=True, check=True
    )
    live = json.loads(result.stdout)
    assert [c["name"] for c in live] == [c["name"] for c in VECTORS]
    for case in live:
        check(case)


def test_error_carries_line_and_column() -> None:
    with pytest.raises(TemplateError, match=r"^2:5: can't evaluate field Nope"):
        parse("a\n  {{.Nope}}").render()
    with pytest.raises(TemplateError, match=r"^1:1: unclosed action"):
        parse("{{.KubeName")


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(TemplateError, match="nesting deeper than"):
        parse("{{" + "(" * 10_000 + "1" + ")" * 10_000 + "}}")
    with pytest.raises(TemplateError, match="nesting deeper than"):
        parse("{{if 1}}" * 10_000 + "{{end}}" * 10_000)


def test_output_and_work_are_bounded() -> None:
    with pytest.raises(TemplateError, match="output is longer than"):
        parse("{{range 2000}}" + "x" * 1000 + "{{end}}").render()
    with pytest.raises(TemplateError, match="steps"):
        parse("{{range 1000000}}{{end}}").render()


def test_template_error_is_the_projects_error_and_a_value_error() -> None:
    assert issubclass(TemplateError, TeleportArgoCDError)
    assert issubclass(TemplateError, ValueError)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("{{.ClusterName}}-{{.KubeName}}", {"ClusterName", "KubeName"}),
        ('{{index .Labels "env"}}', {"Labels"}),
        ("{{with .Labels}}{{.team}}{{end}}", {"Labels", "team"}),
        ("{{$.KubeName}}{{$x := 1}}{{$x}}", {"KubeName"}),
        ('static {{"x"}}', set()),
        ('{{if eq (print .KubeName) "x"}}{{end}}', {"KubeName"}),
    ],
)
def test_fields_used(text: str, fields: set[str]) -> None:
    assert parse(text).fields_used == fields


def test_labels_mapping_is_read_through_the_mapping_interface() -> None:
    """config/output.py renders with a Mapping that has every key; the renderer must not copy it to a dict."""

    class Every(Mapping[str, str]):
        def __getitem__(self, key: str) -> str:
            return "a"

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

    assert parse('{{index .Labels "x"}}{{.Labels.y}}').render(Labels=Every()) == "aa"


def test_module_says_why_it_is_hand_written() -> None:
    assert "No maintained Python library renders Go templates" in (gotemplate.__doc__ or "")
