"""Template errors, and the line:column they start with."""

from __future__ import annotations

from teleport_argocd.errors import TeleportArgoCDError


class TemplateError(TeleportArgoCDError, ValueError):
    """Raised when a template cannot be parsed or rendered; the message starts with line:column."""


class CallError(Exception):
    """An error a builtin function returns; the caller adds position and function name."""


def where(text: str, offset: int) -> str:
    """The line:column (both from 1) of `offset` in `text`, as Go's template errors start."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{column}"
