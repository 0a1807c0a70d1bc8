"""The parser, as Go's text/template/parse/parse.go: tokens into the syntax tree, with Go's errors."""

from __future__ import annotations

import math
import re
from typing import NoReturn

from teleport_argocd.gotemplate.errors import TemplateError, where
from teleport_argocd.gotemplate.fmt import go_quote
from teleport_argocd.gotemplate.lex import REFUSED_KEYWORDS, Tok
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

MAX_DEPTH = 100
"""Deepest nesting of parentheses and control structures accepted (Go allows 10,000)."""


_FUNCTIONS = frozenset(
    [
        "and",
        "or",
        "not",
        "len",
        "index",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "print",
        "printf",
        "println",
        "html",
        "js",
        "urlquery",
    ]
)
_REFUSED_FUNCTIONS = frozenset(["call", "slice"])


class Parser:
    def __init__(self, text: str, tokens: list[Tok]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.depth = 0

    def error(self, pos: int, message: str) -> NoReturn:
        raise TemplateError(f"{where(self.text, pos)}: {message}")

    def peek(self) -> Tok:
        return self.tokens[self.i]

    def next(self) -> Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def peek_non_space(self) -> Tok:
        while self.tokens[self.i].kind == "space":
            self.i += 1
        return self.tokens[self.i]

    def next_non_space(self) -> Tok:
        self.peek_non_space()
        return self.next()

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.error(pos, f"nesting deeper than {MAX_DEPTH} levels is not supported")

    def parse(self) -> tuple[Item, ...]:
        items: list[Item] = []
        while self.peek().kind != "eof":
            item = self.text_or_action()
            if isinstance(item, tuple):
                self.error(item[1], f"unexpected {{{{{item[0]}}}}}")
            items.append(item)
        return tuple(items)

    def item_list(self) -> tuple[tuple[Item, ...], tuple[str, int]]:
        items: list[Item] = []
        while self.peek_non_space().kind != "eof":
            item = self.text_or_action()
            if isinstance(item, tuple):
                return tuple(items), item
            items.append(item)
        self.error(len(self.text), "unexpected EOF")

    def text_or_action(self) -> Item | tuple[str, int]:
        tok = self.next_non_space()
        if tok.kind == "text":
            return tok.value
        if tok.kind == "left":
            return self.action()
        self.error(tok.pos, f"unexpected {tok.value!r} in input")

    def action(self) -> Item | tuple[str, int]:
        tok = self.next_non_space()
        if tok.kind == "keyword":
            if tok.value in REFUSED_KEYWORDS:
                self.error(tok.pos, f"{{{{{tok.value}}}}} is not supported")
            if tok.value in ("break", "continue"):
                if self.range_depth == 0:
                    self.error(tok.pos, f"unexpected {tok.value} outside range")
                self.expect_right(tok.value)
                return Jump(tok.value, tok.pos)
            if tok.value == "end":
                self.expect_right("end")
                return ("end", tok.pos)
            if tok.value == "else":
                following = self.peek_non_space()
                if following.kind == "keyword" and following.value in ("if", "with"):
                    return ("else " + following.value, tok.pos)
                self.expect_right("else")
                return ("else", tok.pos)
            return self.control(tok.value, tok.pos)
        self.i -= 1
        pipe = self.pipeline("command", "right")
        return Action(pipe, tok.pos)

    def expect_right(self, context: str) -> None:
        tok = self.next_non_space()
        if tok.kind != "right":
            self.error(tok.pos, f"unexpected {tok.value!r} in {context}")

    def control(self, kind: str, pos: int) -> Control:
        self.nest(pos)
        saved = len(self.vars)
        pipe = self.pipeline(kind, "right")
        if kind == "range":
            self.range_depth += 1
        body, (end, end_pos) = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        orelse: tuple[Item, ...] | None = None
        if end != "end":
            if end == "else " + kind and kind in ("if", "with"):
                self.next_non_space()  # the "if" or "with" after "else"
                orelse = (self.control(kind, end_pos),)
            elif end == "else":
                orelse, (end, end_pos) = self.item_list()
                if end != "end":
                    self.error(end_pos, f"expected end; found {{{{{end}}}}}")
            else:
                self.error(end_pos, f"unexpected {{{{{end}}}}} in {kind}")
        del self.vars[saved:]
        self.depth -= 1
        return Control(kind, pipe, body, orelse, pos)

    def pipeline(self, context: str, end: str) -> Pipe:
        pos = self.peek_non_space().pos
        decl: list[str] = []
        is_assign = False
        while self.peek_non_space().kind == "var":
            before = self.i
            var = self.next()
            following = self.peek_non_space()
            if following.kind in ("assign", "declare"):
                is_assign = following.kind == "assign"
                self.next_non_space()
                decl.append(var.value)
                self.vars.append(var.value)
                break
            if following.kind == "comma":
                self.next_non_space()
                decl.append(var.value)
                self.vars.append(var.value)
                if context == "range" and len(decl) < 2:
                    if self.peek_non_space().kind in ("var", "right", "rparen"):
                        continue
                    self.error(following.pos, "range can only initialize variables")
                self.error(following.pos, f"too many declarations in {context}")
            self.i = before
            break
        cmds: list[Command] = []
        while True:
            tok = self.next_non_space()
            if tok.kind == end:
                if not cmds:
                    self.error(tok.pos, f"missing value for {context}")
                for n, cmd in enumerate(cmds[1:], start=2):
                    if isinstance(cmd.args[0], (Const, Dot, NilNode)):
                        self.error(cmd.pos, f"non executable command in pipeline stage {n}")
                return Pipe(tuple(decl), is_assign, tuple(cmds), pos)
            if tok.kind in (
                "bool",
                "char",
                "dot",
                "field",
                "ident",
                "number",
                "nil",
                "raw",
                "string",
                "var",
                "lparen",
            ):
                self.i -= 1
                cmds.append(self.command())
            else:
                self.error(tok.pos, f"unexpected {tok.value or 'end of action'!r} in {context}")

    def command(self) -> Command:
        args: list[Node] = []
        pos = self.peek_non_space().pos
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                args.append(operand)
            tok = self.next()
            if tok.kind == "space":
                continue
            if tok.kind in ("right", "rparen"):
                self.i -= 1
            elif tok.kind != "pipe":
                self.error(tok.pos, f"unexpected {tok.value!r} in operand")
            break
        if not args:
            self.error(pos, "empty command")
        return Command(tuple(args), pos)

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == "field":
            names: list[str] = []
            pos = self.peek().pos
            while self.peek().kind == "field":
                names.append(self.next().value[1:])
            if isinstance(node, Field):
                return Field(node.names + tuple(names), node.pos)
            if isinstance(node, Var):
                return Var(node.names + tuple(names), node.pos)
            if isinstance(node, (Const, NilNode, Dot)):
                self.error(pos, "unexpected . after term")
            return Chain(node, tuple(names), pos)
        return node

    def term(self) -> Node | None:
        tok = self.next_non_space()
        if tok.kind == "ident":
            if tok.value in _REFUSED_FUNCTIONS:
                self.error(tok.pos, f'function "{tok.value}" is not supported')
            if tok.value not in _FUNCTIONS:
                self.error(tok.pos, f'function "{tok.value}" not defined')
            return Ident(tok.value, tok.pos)
        if tok.kind == "dot":
            return Dot(tok.pos)
        if tok.kind == "nil":
            return NilNode(tok.pos)
        if tok.kind == "var":
            if tok.value not in self.vars:
                self.error(tok.pos, f'undefined variable "{tok.value}"')
            return Var((tok.value,), tok.pos)
        if tok.kind == "field":
            return Field((tok.value[1:],), tok.pos)
        if tok.kind == "bool":
            return Const(tok.value == "true", "bool", tok.value, tok.pos)
        if tok.kind in ("number", "char"):
            return self.number(tok)
        if tok.kind == "lparen":
            self.nest(tok.pos)
            pipe = self.pipeline("parenthesized pipeline", "rparen")
            self.depth -= 1
            return pipe
        if tok.kind in ("string", "raw"):
            return Const(self.unquote(tok), "string", tok.value, tok.pos)
        self.i -= 1
        return None

    def unquote(self, tok: Tok) -> str:
        if tok.kind == "raw":
            return tok.value[1:-1].replace("\r", "")
        out: list[str] = []
        body, i = tok.value[1:-1], 0
        while i < len(body):
            char = body[i]
            if char != "\\":
                out.append(char)
                i += 1
                continue
            code, i = self.escape(body, i, '"', tok.pos)
            out.append(chr(code))
        return "".join(out)

    def escape(self, body: str, i: int, quote: str, pos: int) -> tuple[int, int]:
        """Decode the escape at body[i] (a backslash); returns its code point and the offset after it."""
        escapes = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, quote: ord(quote)}
        letter = body[i + 1 : i + 2]
        if letter in escapes:
            return escapes[letter], i + 2
        sizes = {"x": 2, "u": 4, "U": 8}
        if letter in sizes:
            digits = body[i + 2 : i + 2 + sizes[letter]]
            if len(digits) != sizes[letter] or not all(c in "0123456789abcdefABCDEF" for c in digits):
                self.error(pos, "invalid syntax")
            code = int(digits, 16)
            if letter != "x" and (code > 0x10FFFF or 0xD800 <= code <= 0xDFFF):
                self.error(pos, "invalid syntax")
            if letter == "x" and code > 0x7F:
                self.error(pos, "\\x escapes above \\x7f (bytes that are not UTF-8 text) are not supported")
            return code, i + 2 + sizes[letter]
        digits = body[i + 1 : i + 4]
        if len(digits) == 3 and all(c in "01234567" for c in digits):
            code = int(digits, 8)
            if code > 0o377:
                self.error(pos, "invalid syntax")
            if code > 0x7F:
                self.error(pos, "octal escapes above \\177 (bytes that are not UTF-8 text) are not supported")
            return code, i + 4
        self.error(pos, "invalid syntax")

    def number(self, tok: Tok) -> Const:
        text = tok.value
        if tok.kind == "char":
            body = text[1:-1]
            if body.startswith("\\"):
                code, end = self.escape(body, 0, "'", tok.pos)
            elif body:
                code, end = ord(body[0]), 1
            else:
                self.error(tok.pos, f"malformed character constant: {text}")
            if end != len(body):
                self.error(tok.pos, f"malformed character constant: {text}")
            return Const(code, "number", text, tok.pos)
        if text.endswith("i"):
            self.error(tok.pos, "complex constants are not supported")
        lower = text.lower()
        is_hex = lower.lstrip("+-").startswith("0x")
        if is_hex and "p" in lower:
            self.error(tok.pos, "hexadecimal floating-point constants are not supported")
        integer = _parse_go_int(text)
        if integer is not None and not -(1 << 63) <= integer < 1 << 64:
            integer = None
        if integer is not None:
            if integer >= 1 << 63:
                return Const(0, "number", text, tok.pos, error=f"{text} overflows int")
            if not is_hex and not any(c in text for c in ".eEpP"):
                return Const(integer, "number", text, tok.pos)
        try:
            number = float(text) if not is_hex and re.fullmatch(r"[+-]?[0-9_.eE+-]+", text) else math.nan
        except ValueError:
            number = math.nan
        if integer is None and (math.isnan(number) or math.isinf(number)):
            self.error(tok.pos, f"illegal number syntax: {go_quote(text)}")
        if integer is None and not any(c in text for c in ".eEpP"):
            self.error(tok.pos, f"integer overflow: {go_quote(text)}")
        if integer is not None and (is_hex or not any(c in text for c in ".eEpP")):
            return Const(integer, "number", text, tok.pos)
        return Const(number, "number", text, tok.pos)


def _parse_go_int(text: str) -> int | None:
    """strconv.ParseInt/ParseUint with base 0: Go literal syntax, a leading 0 meaning octal."""
    body = text.lstrip("+-")
    if len(text) - len(body) > 1:
        return None
    sign = -1 if text.startswith("-") else 1
    if re.fullmatch(r"0[0-7_]+", body) and "__" not in body and not body.endswith("_"):
        body = "0o" + body[1:]
    try:
        return sign * int(body, 0)
    except ValueError:
        return None
