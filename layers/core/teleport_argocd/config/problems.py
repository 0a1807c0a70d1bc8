"""The collector of problems with their paths, and the typed readers every section reads with.

A load walks the whole document once and keeps going after a problem, so one failed load lists
all of them; each reader reports a wrong type at its path and returns a usable placeholder.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from teleport_argocd.config.duration import parse_duration
from teleport_argocd.errors import ConfigProblem


class Reader:
    """One load's problems and warnings, the environment it reads defaults from, and the typed readers."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(path, message))

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(str(ConfigProblem(path, message)))

    # -- typed values --------------------------------------------------------
    # Each returns a usable default after reporting a wrong type: any problem fails the whole
    # load, so the placeholder never reaches a Config.

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.problem(path, f"expected a mapping, got {kind(value)}")
            return None
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problem(join_path(path, str(key)), f"unknown key{hint}")
        return value

    def sequence(self, value: Any, path: str) -> list[Any] | None:
        if value is None:
            return None
        if not isinstance(value, list):
            self.problem(path, f"expected a list, got {kind(value)}")
            return None
        return value

    def string(self, value: Any, path: str) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            self.problem(path, f"expected a string, got {kind(value)} (quote the value)")
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
            self.problem(path, f"expected true or false, got {kind(value)}")
            return False
        return value

    def string_map(self, value: Any, path: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem(path, f"expected a mapping of strings, got {kind(value)}")
            return {}
        result: dict[str, str] = {}
        for key, item in value.items():
            item_path = f"{path}[{json.dumps(str(key))}]"
            if not isinstance(key, str):
                self.problem(item_path, f"expected a string key, got {kind(key)} (quote the key)")
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
            self.problem(path, f"expected a Go duration such as '1h' or '20m', got {kind(value)}")
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
            self.problem(path, f"expected a number from 0 to 1, got {kind(value)}")
            return None
        if not 0 <= value <= 1:  # also refuses .nan, for which every comparison is false
            self.problem(path, "must be from 0 to 1")
            return None
        return float(value)


def join_path(path: str, key: str) -> str:
    """`a.b`, or `b` at the root."""
    return f"{path}.{key}" if path else key


def kind(value: Any) -> str:
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
