"""Handlers are traced only when the function traces, so the X-Ray SDK is not loaded otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from teleport_argocd import tracing

LAYER = Path(__file__).resolve().parents[2] / "layers" / "core"


def handler(event: dict[str, str], context: object) -> dict[str, str]:
    return event


def test_with_tracing_off_the_handler_is_returned_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert tracing.capture(handler) is handler


def test_with_tracing_off_the_xray_sdk_is_never_imported() -> None:
    code = (
        "import sys; from teleport_argocd import tracing; tracing.capture(lambda e, c: e); "
        "print('aws_xray_sdk.core' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(LAYER), "POWERTOOLS_TRACE_DISABLED": "true"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"


def test_with_tracing_on_the_handler_is_wrapped_and_still_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "false")
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")  # Powertools' own switch: no X-Ray daemon here
    traced = tracing.capture(handler)
    assert traced is not handler
    assert traced({"a": "b"}, None) == {"a": "b"}
