"""The syntax tree, as Go's text/template/parse/node.go: immutable nodes a parse builds once."""

from __future__ import annotations

from dataclasses import dataclass

from teleport_argocd.gotemplate.values import Value


@dataclass(frozen=True)
class Const:
    value: Value
    kind: str  # string, number, bool
    text: str
    pos: int
    error: str = ""  # set for an integer constant that overflows int (Go fails only when used)


@dataclass(frozen=True)
class NilNode:
    pos: int


@dataclass(frozen=True)
class Dot:
    pos: int


@dataclass(frozen=True)
class Field:
    names: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class Var:
    names: tuple[str, ...]  # names[0] is the variable, the rest are fields
    pos: int


@dataclass(frozen=True)
class Ident:
    name: str
    pos: int


@dataclass(frozen=True)
class Chain:
    node: Node
    names: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class Command:
    args: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Pipe:
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[Command, ...]
    pos: int


@dataclass(frozen=True)
class Action:
    pipe: Pipe
    pos: int


@dataclass(frozen=True)
class Control:
    kind: str  # if, with, range
    pipe: Pipe
    body: tuple[Item, ...]
    orelse: tuple[Item, ...] | None
    pos: int


@dataclass(frozen=True)
class Jump:
    kind: str  # break, continue
    pos: int


Node = Const | NilNode | Dot | Field | Var | Ident | Chain | Pipe
Item = str | Action | Control | Jump
