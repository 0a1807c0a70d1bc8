"""Execution, as Go's text/template/exec.go: walking the tree over tbot's data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NoReturn

from teleport_argocd.gotemplate.errors import CallError, TemplateError, where
from teleport_argocd.gotemplate.fmt import print_value, sprint, sprintf
from teleport_argocd.gotemplate.funcs import ARITY, BUILTINS, is_true
from teleport_argocd.gotemplate.nodes import (
    Action,
    Chain,
    Command,
    Const,
    Control,
    Dot,
    Field,
    Ident,
    Item,
    Jump,
    NilNode,
    Node,
    Pipe,
    Var,
)
from teleport_argocd.gotemplate.values import MISSING, NIL, Data, Missing, Value, type_name

MAX_OUTPUT = 1 << 20
"""Most characters one render may produce."""

MAX_STEPS = 1_000_000
"""Most evaluation steps (actions, commands, loop iterations) one render may take."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class State:
    def __init__(self, text: str) -> None:
        self.text = text
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.vars: list[tuple[str, Value]] = []
        self.pos = 0

    def error(self, message: str) -> NoReturn:
        raise TemplateError(f"{where(self.text, self.pos)}: {message}")

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.error(f"rendering takes more than {MAX_STEPS} steps")

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            self.error(f"output is longer than {MAX_OUTPUT} characters")
        self.out.append(text)

    def walk(self, dot: Value, items: tuple[Item, ...]) -> None:
        for item in items:
            self.step()
            if isinstance(item, str):
                self.write(item)
            elif isinstance(item, Action):
                value = self.pipeline(dot, item.pipe)
                if not item.pipe.decl:
                    self.pos = item.pos
                    self.write(print_value(value))
            elif isinstance(item, Jump):
                raise _Break() if item.kind == "break" else _Continue()
            elif item.kind == "range":
                self.walk_range(dot, item)
            else:
                self.walk_if_or_with(dot, item)

    def walk_if_or_with(self, dot: Value, node: Control) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(dot, node.pipe)
            if is_true(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.orelse is not None:
                self.walk(dot, node.orelse)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Value, node: Control) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(dot, node.pipe)
            inner = len(self.vars)
            if isinstance(value, Mapping):
                pairs: list[tuple[Value, Value]] = [(k, value[k]) for k in sorted(value)]
            elif isinstance(value, int) and not isinstance(value, bool):
                if len(node.pipe.decl) > 1:
                    self.pos = node.pos
                    self.error(f"can't use {value} to iterate over more than one variable")
                pairs = [(n, n) for n in range(max(value, 0))]
            elif value is NIL:
                pairs = []
            else:
                self.pos = node.pos
                self.error(f"range can't iterate over {sprint([value])}")
            try:
                for key, elem in pairs:
                    self.step()
                    self.range_vars(node.pipe, key, elem)
                    try:
                        self.walk(elem, node.body)
                    except _Continue:
                        pass
                    finally:
                        del self.vars[inner:]
            except _Break:
                return
            if not pairs and node.orelse is not None:
                self.walk(dot, node.orelse)
        finally:
            del self.vars[mark:]

    def range_vars(self, pipe: Pipe, key: Value, elem: Value) -> None:
        if not pipe.decl:
            return
        if pipe.is_assign:
            if len(pipe.decl) > 1:
                self.set_var(pipe.decl[0], key)
                self.set_var(pipe.decl[1], elem)
            else:
                self.set_var(pipe.decl[0], elem)
            return
        top = len(self.vars) - 1
        self.vars[top] = (self.vars[top][0], elem)
        if len(pipe.decl) > 1:
            self.vars[top - 1] = (self.vars[top - 1][0], key)

    def set_var(self, name: str, value: Value) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        self.error(f"undefined variable: {name}")

    def var_value(self, name: str) -> Value:
        for var, value in reversed(self.vars):
            if var == name:
                return value
        self.error(f"undefined variable: {name}")

    def pipeline(self, dot: Value, pipe: Pipe) -> Value:
        value: Value | Missing = MISSING
        for cmd in pipe.cmds:
            self.step()
            value = self.command(dot, cmd, value)
        assert not isinstance(value, Missing)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def not_a_function(self, args: tuple[Node, ...], final: Value | Missing) -> None:
        if len(args) > 1 or not isinstance(final, Missing):
            self.error(f"can't give argument to non-function {_node_text(self.text, args[0])}")

    def command(self, dot: Value, cmd: Command, final: Value | Missing) -> Value:
        first = cmd.args[0]
        self.pos = first.pos
        if isinstance(first, Field):
            return self.field_chain(dot, dot, first.names, cmd.args, final)
        if isinstance(first, Chain):
            return self.chain(dot, first, cmd.args, final)
        if isinstance(first, Ident):
            return self.function(dot, first, cmd.args, final)
        if isinstance(first, Pipe):
            self.not_a_function(cmd.args, final)
            return self.pipeline(dot, first)
        if isinstance(first, Var):
            return self.variable(dot, first, cmd.args, final)
        self.not_a_function(cmd.args, final)
        if isinstance(first, NilNode):
            self.error("nil is not a command")
        if isinstance(first, Dot):
            return dot
        return self.constant(first)

    def constant(self, node: Const) -> Value:
        if node.error:
            self.pos = node.pos
            self.error(node.error)
        return node.value

    def chain(self, dot: Value, node: Chain, args: tuple[Node, ...], final: Value | Missing) -> Value:
        if isinstance(node.node, NilNode):
            self.error("indirection through explicit nil")
        receiver = self.arg_any(dot, node.node)
        return self.field_chain(dot, receiver, node.names, args, final)

    def variable(self, dot: Value, node: Var, args: tuple[Node, ...], final: Value | Missing) -> Value:
        value = self.var_value(node.names[0])
        if len(node.names) == 1:
            self.not_a_function(args, final)
            return value
        return self.field_chain(dot, value, node.names[1:], args, final)

    def field_chain(
        self,
        dot: Value,
        receiver: Value,
        names: tuple[str, ...],
        args: tuple[Node, ...],
        final: Value | Missing,
    ) -> Value:
        for name in names[:-1]:
            receiver = self.field(name, (), MISSING, receiver)
        return self.field(names[-1], args, final, receiver)

    def field(self, name: str, args: tuple[Node, ...], final: Value | Missing, receiver: Value) -> Value:
        if receiver is NIL:
            return NIL
        has_args = len(args) > 1 or not isinstance(final, Missing)
        if isinstance(receiver, Data):
            value = receiver.get(name)
            if not isinstance(value, Missing):
                if has_args:
                    self.error(f"{name} has arguments but cannot be invoked as function")
                return value  # type: ignore[return-value]
        elif isinstance(receiver, Mapping):
            if has_args:
                self.error(f"{name} is not a method but has arguments")
            return receiver.get(name, NIL)
        self.error(f"can't evaluate field {name} in type {type_name(receiver)}")

    def function(self, dot: Value, node: Ident, args: tuple[Node, ...], final: Value | Missing) -> Value:
        name = node.name
        operands = args[1:]
        count = len(operands) + (0 if isinstance(final, Missing) else 1)
        fixed, variadic = ARITY[name]
        if count < fixed or (not variadic and count != fixed):
            want = f"at least {fixed}" if variadic else str(fixed)
            self.error(f"wrong number of args for {name}: want {want} got {count}")
        if name in ("and", "or"):
            value: Value = NIL
            for operand in operands:
                value = self.arg_any(dot, operand)
                if is_true(value) == (name == "or"):
                    return value
            return value if isinstance(final, Missing) else final
        if name == "printf":
            fmt = self.arg_string(dot, operands[0]) if operands else _string_final(self, final)
            values = [self.arg_any(dot, operand) for operand in operands[1:]]
        else:
            values = [self.arg_any(dot, operand) for operand in operands]
        if not isinstance(final, Missing):
            values.append(final)
        self.pos = node.pos
        try:
            if name == "printf":
                return sprintf(fmt, values if operands else values[1:])
            return BUILTINS[name](values)
        except CallError as exc:
            self.error(f"error calling {name}: {exc}")

    def arg_any(self, dot: Value, node: Node) -> Value:
        """Evaluate an argument for a parameter of type any or reflect.Value."""
        self.pos = node.pos
        if isinstance(node, Dot):
            return dot
        if isinstance(node, NilNode):
            return NIL
        if isinstance(node, Field):
            return self.field_chain(dot, dot, node.names, (node,), MISSING)
        if isinstance(node, Var):
            return self.variable(dot, node, (), MISSING)
        if isinstance(node, Pipe):
            return self.pipeline(dot, node)
        if isinstance(node, Ident):
            return self.function(dot, node, (node,), MISSING)
        if isinstance(node, Chain):
            return self.chain(dot, node, (), MISSING)
        return self.constant(node)

    def arg_string(self, dot: Value, node: Node) -> str:
        """Evaluate an argument for a parameter of type string (printf's format)."""
        if isinstance(node, NilNode):
            self.pos = node.pos
            self.error("cannot assign nil to string")
        if isinstance(node, Const):
            if node.kind != "string":
                self.pos = node.pos
                self.error(f"expected string; found {node.text}")
            return str(node.value)
        value = self.arg_any(dot, node)
        if value is NIL:
            self.error("invalid value; expected string")
        if not isinstance(value, str):
            self.error(f"wrong type for value; expected string; got {type_name(value)}")
        return value


def _string_final(state: State, final: Value | Missing) -> str:
    if final is NIL:
        state.error("invalid value; expected string")
    if not isinstance(final, str):
        state.error(f"wrong type for value; expected string; got {type_name(final)}")
    return final


def _node_text(text: str, node: Node) -> str:
    if isinstance(node, Field):
        return "." + ".".join(node.names)
    if isinstance(node, Var):
        return ".".join(node.names)
    if isinstance(node, Const):
        return node.text
    if isinstance(node, Dot):
        return "."
    if isinstance(node, Ident):
        return node.name
    return "<command>"
