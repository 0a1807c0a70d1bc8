"""The hardened YAML reader: a configuration document into plain data, or every problem with its path.

Bounded in depth and in size (aliases expanded), so a hostile document costs little and fails
with a listed problem; a value that cannot be built is named by its path, never quoted.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from teleport_argocd.config.problems import join_path
from teleport_argocd.errors import ConfigError, ConfigProblem

# The deepest valid document nests 6 levels (outputs[].destination.eks.region); anything far
# deeper is hostile, and PyYAML's composer recurses once per level.
MAX_DEPTH = 32
# Nodes visited while building the document, aliases expanded: stops "billion laughs" documents.
MAX_NODES = 100_000

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


def read_yaml(text: str) -> Any:
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


def _child_path(path: str, key: Any) -> str:
    """`a.b` for a key that reads as a name, `a["b c"]` for any other."""
    text = str(key)
    return join_path(path, text) if _PLAIN_KEY.fullmatch(text) else f"{path}[{json.dumps(text)}]"


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
