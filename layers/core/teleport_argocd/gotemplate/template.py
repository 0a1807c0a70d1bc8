"""The public face: a parsed Template and its render with tbot's data."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from teleport_argocd.gotemplate.errors import TemplateError, where
from teleport_argocd.gotemplate.exec import State
from teleport_argocd.gotemplate.fmt import check_format
from teleport_argocd.gotemplate.lex import Lexer
from teleport_argocd.gotemplate.nodes import (
    Action,
    Chain,
    Command,
    Const,
    Control,
    Field,
    Ident,
    Item,
    Node,
    Pipe,
    Var,
)
from teleport_argocd.gotemplate.parser import Parser
from teleport_argocd.gotemplate.values import Data


@dataclass(frozen=True)
class Template:
    """A parsed template. Immutable, so one parse serves any number of renders."""

    source: str
    items: tuple[Item, ...]

    @property
    def fields_used(self) -> frozenset[str]:
        """Top-level data fields the template names (``.KubeName``, ``$.Labels``), read or not."""
        return frozenset(_fields_in(self.items))

    def render(
        self,
        *,
        ClusterName: str = "",
        KubeName: str = "",
        Labels: Mapping[str, str] | None = None,
    ) -> str:
        """Execute with tbot's data; raises TemplateError where Go's Execute returns an error."""
        data = Data(
            (
                ("ClusterName", ClusterName),
                ("KubeName", KubeName),
                ("Labels", {} if Labels is None else Labels),
            )
        )
        state = State(self.source)
        state.vars.append(("$", data))
        try:
            state.walk(data, self.items)
        except RecursionError:
            raise TemplateError("1:1: template nests too deeply") from None
        return "".join(state.out)


def parse(text: str) -> Template:
    """Parse `text` as Go's template.New(name).Parse does; raises TemplateError where Go fails."""
    tokens = Lexer(text).run()
    items = Parser(text, tokens).parse()
    for fmt, pos in _constant_formats(items):
        if reason := check_format(fmt):
            raise TemplateError(f"{where(text, pos)}: {reason}")
    return Template(text, items)


def _walk_nodes(items: tuple[Item, ...]) -> Iterator[Node | Command]:
    def pipe_nodes(pipe: Pipe) -> Iterator[Node | Command]:
        for cmd in pipe.cmds:
            yield cmd
            for arg in cmd.args:
                yield arg
                if isinstance(arg, Pipe):
                    yield from pipe_nodes(arg)
                elif isinstance(arg, Chain):
                    yield arg.node
                    if isinstance(arg.node, Pipe):
                        yield from pipe_nodes(arg.node)

    for item in items:
        if isinstance(item, Action):
            yield from pipe_nodes(item.pipe)
        elif isinstance(item, Control):
            yield from pipe_nodes(item.pipe)
            yield from _walk_nodes(item.body)
            yield from _walk_nodes(item.orelse or ())


def _fields_in(items: tuple[Item, ...]) -> Iterator[str]:
    for node in _walk_nodes(items):
        if isinstance(node, Field):
            yield node.names[0]
        elif isinstance(node, Var) and node.names[0] == "$" and len(node.names) > 1:
            yield node.names[1]


def _constant_formats(items: tuple[Item, ...]) -> Iterator[tuple[str, int]]:
    """printf formats written as string constants, so unsupported verbs are refused when parsing."""
    for node in _walk_nodes(items):
        if not isinstance(node, Command) or len(node.args) < 2:
            continue
        function, fmt = node.args[0], node.args[1]
        if (
            isinstance(function, Ident)
            and function.name == "printf"
            and isinstance(fmt, Const)
            and fmt.kind == "string"
        ):
            yield str(fmt.value), fmt.pos
