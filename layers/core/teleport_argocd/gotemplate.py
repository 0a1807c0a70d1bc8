"""Go's text/template, as tbot uses it for its templated settings.

tbot renders `cluster_name_template`, `secret_labels` and `secret_annotations` with Go's
text/template (default options, no extra functions) over a struct with the fields ClusterName,
KubeName and Labels. No maintained Python library renders Go templates, so this module is
written by hand. It renders byte for byte what Go renders, and that claim is checked against Go
itself by the table in tests/gotemplate/vectors.json.

Supported: text and trim markers, comments, field and map-key access (a missing key is
``<no value>``), variables (``$``, ``:=``, ``=``), pipes and parentheses, ``if``/``else if``,
``with``/``else with``, ``range`` over maps (sorted keys) and integers with ``break`` and
``continue``, constants (strings, raw strings, characters, integers, floats, booleans, nil), and
the functions and, or, not, len, index, eq, ne, lt, le, gt, ge, print, printf, println, html, js
and urlquery. printf knows the verbs %v %s %q %d %x %X %t %c and %% with flags, width and
precision.

Refused when parsing, although Go accepts them: define, template and block (the data has no
other templates), the functions call and slice, complex and hexadecimal floating-point
constants, escapes that produce bytes that are not UTF-8 text, printf verbs outside the list
above, ``*`` widths, the ``#`` flag with %v, and templates nested deeper than MAX_DEPTH.
Rendering stops with TemplateError past MAX_OUTPUT characters or MAX_STEPS evaluation steps.
Everything Go refuses, at parse or execution time, raises TemplateError with a line:column.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import NoReturn

from teleport_argocd.errors import TeleportArgoCDError

MAX_DEPTH = 100
"""Deepest nesting of parentheses and control structures accepted (Go allows 10,000)."""

MAX_OUTPUT = 1 << 20
"""Most characters one render may produce."""

MAX_STEPS = 1_000_000
"""Most evaluation steps (actions, commands, loop iterations) one render may take."""

DATA_FIELDS = ("ClusterName", "KubeName", "Labels")
"""The fields of the struct tbot executes its templates with."""


class TemplateError(TeleportArgoCDError, ValueError):
    """Raised when a template cannot be parsed or rendered; the message starts with line:column."""


# -- values -------------------------------------------------------------------------------------
# Go values are modelled as: str (string), bool, int (int), _Byte (uint8, from indexing a
# string), float (float64), Mapping[str, str] (map[string]string), _Data (the struct) and NIL,
# which stands for both an untyped nil and reflect's invalid value (a missing map key).


class _Nil:
    def __repr__(self) -> str:
        return "NIL"


NIL = _Nil()


class _Byte(int):
    """A Go uint8: what indexing a string yields."""


@dataclass(frozen=True)
class _Data:
    """The struct tbot passes as dot; fields in declaration order."""

    fields: tuple[tuple[str, str | Mapping[str, str]], ...]

    def get(self, name: str) -> object:
        return dict(self.fields).get(name, _MISSING)


class _Missing:
    pass


_MISSING = _Missing()  # no value piped into a command (Go's missingVal)

Value = str | bool | int | float | Mapping[str, str] | _Data | _Nil


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Byte):
        return "uint8"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Data):
        return "struct { ClusterName string; KubeName string; Labels map[string]string }"
    if isinstance(value, Mapping):
        return "map[string]string"
    return "<nil>"


# -- lexer --------------------------------------------------------------------------------------

_SPACE = " \t\r\n"
_KEYWORDS = frozenset(
    ["block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"]
)
_REFUSED_KEYWORDS = frozenset(["block", "define", "template"])


@dataclass(frozen=True)
class _Tok:
    kind: str  # text, left, right, space, ident, keyword, field, var, dot, number, char,
    # string, raw, bool, nil, pipe, lparen, rparen, declare, assign, comma, eof
    value: str
    pos: int


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.parens = 0
        self.tokens: list[_Tok] = []

    def error(self, pos: int, message: str) -> NoReturn:
        raise TemplateError(f"{_where(self.text, pos)}: {message}")

    def run(self) -> list[_Tok]:
        text = self.text
        trim_next = False
        while True:
            start = text.find("{{", self.pos)
            end = len(text) if start < 0 else start
            literal = text[self.pos : end]
            left_trim = (
                start >= 0 and text.startswith("-", start + 2) and text[start + 3 : start + 4] in _SPACE
            )
            left_trim = left_trim and start + 3 < len(text)
            if trim_next:
                literal = literal.lstrip(_SPACE)
            if left_trim:
                literal = literal.rstrip(_SPACE)
            if literal:
                self.tokens.append(_Tok("text", literal, self.pos))
            if start < 0:
                self.tokens.append(_Tok("eof", "", len(text)))
                return self.tokens
            self.pos = start + (4 if left_trim else 2)
            if text.startswith("/*", self.pos):
                trim_next = self.comment(start)
            else:
                self.tokens.append(_Tok("left", "{{", start))
                trim_next = self.action(start)

    def comment(self, start: int) -> bool:
        close = self.text.find("*/", self.pos + 2)
        if close < 0:
            self.error(start, "unclosed comment")
        self.pos = close + 2
        trim = self.at_right_delim()
        if trim is None:
            self.error(start, "comment ends before closing delimiter")
        self.pos += 4 if trim else 2
        return trim

    def at_right_delim(self) -> bool | None:
        """None when not at a closing delimiter; else whether it carries the trim marker."""
        text, i = self.text, self.pos
        if text.startswith("}}", i):
            return False
        if i + 1 < len(text) and text[i] in _SPACE and text[i + 1] == "-" and text.startswith("}}", i + 2):
            return True
        return None

    def at_terminator(self) -> bool:
        if self.pos >= len(self.text):
            return True
        char = self.text[self.pos]
        return char in _SPACE or char in ".,|:()" or self.text.startswith("}}", self.pos)

    def action(self, start: int) -> bool:
        text = self.text
        while True:
            trim = self.at_right_delim()
            if trim is not None:
                if self.parens:
                    self.error(self.pos, "unclosed left paren")
                self.tokens.append(_Tok("right", "}}", self.pos))
                self.pos += 4 if trim else 2
                return trim
            if self.pos >= len(text):
                self.error(start, "unclosed action")
            i = self.pos
            char = text[i]
            if char in _SPACE:
                j = i
                while j < len(text) and text[j] in _SPACE:
                    j += 1
                # A space followed by "-}}" belongs to the closing delimiter.
                if text.startswith("-}}", j) and j - i >= 1:
                    j -= 1
                if j > i:
                    self.tokens.append(_Tok("space", text[i:j], i))
                    self.pos = j
                else:
                    self.pos = j
                continue
            self.pos += 1
            if char == "=":
                self.tokens.append(_Tok("assign", "=", i))
            elif char == ":":
                if not text.startswith("=", self.pos):
                    self.error(i, "expected :=")
                self.pos += 1
                self.tokens.append(_Tok("declare", ":=", i))
            elif char == "|":
                self.tokens.append(_Tok("pipe", "|", i))
            elif char == ",":
                self.tokens.append(_Tok("comma", ",", i))
            elif char == '"':
                self.quote(i)
            elif char == "`":
                close = text.find("`", self.pos)
                if close < 0:
                    self.error(i, "unterminated raw quoted string")
                self.pos = close + 1
                self.tokens.append(_Tok("raw", text[i : self.pos], i))
            elif char == "'":
                self.char_constant(i)
            elif char == "$":
                self.word(i, "var")
            elif char == "." and not (
                self.pos < len(text) and text[self.pos].isdigit() and text[self.pos].isascii()
            ):
                self.word(i, "field")
            elif char in "+-." or ("0" <= char <= "9"):
                self.pos = i
                self.number(i)
            elif _is_alnum(char):
                self.pos = i
                self.identifier(i)
            elif char == "(":
                self.parens += 1
                self.tokens.append(_Tok("lparen", "(", i))
            elif char == ")":
                self.parens -= 1
                if self.parens < 0:
                    self.error(i, "unexpected right paren")
                self.tokens.append(_Tok("rparen", ")", i))
            else:
                self.error(i, f"unrecognized character in action: {_unicode_name(char)}")

    def quote(self, start: int) -> None:
        text, i = self.text, self.pos
        while True:
            if i >= len(text) or text[i] == "\n":
                self.error(start, "unterminated quoted string")
            if text[i] == "\\":
                if i + 1 >= len(text) or text[i + 1] == "\n":
                    self.error(start, "unterminated quoted string")
                i += 2
                continue
            if text[i] == '"':
                break
            i += 1
        self.pos = i + 1
        self.tokens.append(_Tok("string", text[start : self.pos], start))

    def char_constant(self, start: int) -> None:
        text, i = self.text, self.pos
        while True:
            if i >= len(text) or text[i] == "\n":
                self.error(start, "unterminated character constant")
            if text[i] == "\\":
                if i + 1 >= len(text) or text[i + 1] == "\n":
                    self.error(start, "unterminated character constant")
                i += 2
                continue
            if text[i] == "'":
                break
            i += 1
        self.pos = i + 1
        self.tokens.append(_Tok("char", text[start : self.pos], start))

    def word(self, start: int, kind: str) -> None:
        if self.at_terminator():
            self.tokens.append(_Tok("var" if kind == "var" else "dot", self.text[start], start))
            return
        while self.pos < len(self.text) and _is_alnum(self.text[self.pos]):
            self.pos += 1
        if not self.at_terminator():
            self.error(self.pos, f"bad character {_unicode_name(self.text[self.pos])}")
        self.tokens.append(_Tok(kind, self.text[start : self.pos], start))

    def identifier(self, start: int) -> None:
        while self.pos < len(self.text) and _is_alnum(self.text[self.pos]):
            self.pos += 1
        if not self.at_terminator():
            self.error(self.pos, f"bad character {_unicode_name(self.text[self.pos])}")
        word = self.text[start : self.pos]
        if word in _KEYWORDS:
            kind = "keyword"
        elif word in ("true", "false"):
            kind = "bool"
        elif word == "nil":
            kind = "nil"
        else:
            kind = "ident"
        self.tokens.append(_Tok(kind, word, start))

    def number(self, start: int) -> None:
        if not self.scan_number():
            self.error(start, f"bad number syntax: {_go_quote(self.text[start : self.pos])}")
        if self.pos < len(self.text) and self.text[self.pos] in "+-":
            self.scan_number()
            self.error(start, "complex constants are not supported")
        self.tokens.append(_Tok("number", self.text[start : self.pos], start))

    def scan_number(self) -> bool:
        def accept(chars: str) -> bool:
            if self.pos < len(self.text) and self.text[self.pos] in chars:
                self.pos += 1
                return True
            return False

        def accept_run(chars: str) -> None:
            while accept(chars):
                pass

        accept("+-")
        digits = "0123456789_"
        if accept("0"):
            if accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif accept("oO"):
                digits = "01234567_"
            elif accept("bB"):
                digits = "01_"
        accept_run(digits)
        if accept("."):
            accept_run(digits)
        if len(digits) == 11 and accept("eE"):
            accept("+-")
            accept_run("0123456789_")
        if len(digits) == 23 and accept("pP"):
            accept("+-")
            accept_run("0123456789_")
        accept("i")
        if self.pos < len(self.text) and _is_alnum(self.text[self.pos]):
            self.pos += 1
            return False
        return True


def _is_alnum(char: str) -> bool:
    return char == "_" or char.isalpha() or unicodedata.category(char) == "Nd"


def _unicode_name(char: str) -> str:
    return f"U+{ord(char):04X} {_go_quote_rune(ord(char))}"


# -- syntax tree --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Const:
    value: Value
    kind: str  # string, number, bool
    text: str
    pos: int
    error: str = ""  # set for an integer constant that overflows int (Go fails only when used)


@dataclass(frozen=True)
class _Nilnode:
    pos: int


@dataclass(frozen=True)
class _Dot:
    pos: int


@dataclass(frozen=True)
class _Field:
    names: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class _Var:
    names: tuple[str, ...]  # names[0] is the variable, the rest are fields
    pos: int


@dataclass(frozen=True)
class _Ident:
    name: str
    pos: int


@dataclass(frozen=True)
class _Chain:
    node: _Node
    names: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class _Command:
    args: tuple[_Node, ...]
    pos: int


@dataclass(frozen=True)
class _Pipe:
    decl: tuple[str, ...]
    is_assign: bool
    cmds: tuple[_Command, ...]
    pos: int


@dataclass(frozen=True)
class _Action:
    pipe: _Pipe
    pos: int


@dataclass(frozen=True)
class _Control:
    kind: str  # if, with, range
    pipe: _Pipe
    body: tuple[_Item, ...]
    orelse: tuple[_Item, ...] | None
    pos: int


@dataclass(frozen=True)
class _Jump:
    kind: str  # break, continue
    pos: int


_Node = _Const | _Nilnode | _Dot | _Field | _Var | _Ident | _Chain | _Pipe
_Item = str | _Action | _Control | _Jump

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


class _Parser:
    def __init__(self, text: str, tokens: list[_Tok]) -> None:
        self.text = text
        self.tokens = tokens
        self.i = 0
        self.vars = ["$"]
        self.range_depth = 0
        self.depth = 0

    def error(self, pos: int, message: str) -> NoReturn:
        raise TemplateError(f"{_where(self.text, pos)}: {message}")

    def peek(self) -> _Tok:
        return self.tokens[self.i]

    def next(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def peek_non_space(self) -> _Tok:
        while self.tokens[self.i].kind == "space":
            self.i += 1
        return self.tokens[self.i]

    def next_non_space(self) -> _Tok:
        self.peek_non_space()
        return self.next()

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.error(pos, f"nesting deeper than {MAX_DEPTH} levels is not supported")

    def parse(self) -> tuple[_Item, ...]:
        items: list[_Item] = []
        while self.peek().kind != "eof":
            item = self.text_or_action()
            if isinstance(item, tuple):
                self.error(item[1], f"unexpected {{{{{item[0]}}}}}")
            items.append(item)
        return tuple(items)

    def item_list(self) -> tuple[tuple[_Item, ...], tuple[str, int]]:
        items: list[_Item] = []
        while self.peek_non_space().kind != "eof":
            item = self.text_or_action()
            if isinstance(item, tuple):
                return tuple(items), item
            items.append(item)
        self.error(len(self.text), "unexpected EOF")

    def text_or_action(self) -> _Item | tuple[str, int]:
        tok = self.next_non_space()
        if tok.kind == "text":
            return tok.value
        if tok.kind == "left":
            return self.action()
        self.error(tok.pos, f"unexpected {tok.value!r} in input")

    def action(self) -> _Item | tuple[str, int]:
        tok = self.next_non_space()
        if tok.kind == "keyword":
            if tok.value in _REFUSED_KEYWORDS:
                self.error(tok.pos, f"{{{{{tok.value}}}}} is not supported")
            if tok.value in ("break", "continue"):
                if self.range_depth == 0:
                    self.error(tok.pos, f"unexpected {tok.value} outside range")
                self.expect_right(tok.value)
                return _Jump(tok.value, tok.pos)
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
        return _Action(pipe, tok.pos)

    def expect_right(self, context: str) -> None:
        tok = self.next_non_space()
        if tok.kind != "right":
            self.error(tok.pos, f"unexpected {tok.value!r} in {context}")

    def control(self, kind: str, pos: int) -> _Control:
        self.nest(pos)
        saved = len(self.vars)
        pipe = self.pipeline(kind, "right")
        if kind == "range":
            self.range_depth += 1
        body, (end, end_pos) = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        orelse: tuple[_Item, ...] | None = None
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
        return _Control(kind, pipe, body, orelse, pos)

    def pipeline(self, context: str, end: str) -> _Pipe:
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
        cmds: list[_Command] = []
        while True:
            tok = self.next_non_space()
            if tok.kind == end:
                if not cmds:
                    self.error(tok.pos, f"missing value for {context}")
                for n, cmd in enumerate(cmds[1:], start=2):
                    if isinstance(cmd.args[0], (_Const, _Dot, _Nilnode)):
                        self.error(cmd.pos, f"non executable command in pipeline stage {n}")
                return _Pipe(tuple(decl), is_assign, tuple(cmds), pos)
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

    def command(self) -> _Command:
        args: list[_Node] = []
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
        return _Command(tuple(args), pos)

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == "field":
            names: list[str] = []
            pos = self.peek().pos
            while self.peek().kind == "field":
                names.append(self.next().value[1:])
            if isinstance(node, _Field):
                return _Field(node.names + tuple(names), node.pos)
            if isinstance(node, _Var):
                return _Var(node.names + tuple(names), node.pos)
            if isinstance(node, (_Const, _Nilnode, _Dot)):
                self.error(pos, "unexpected . after term")
            return _Chain(node, tuple(names), pos)
        return node

    def term(self) -> _Node | None:
        tok = self.next_non_space()
        if tok.kind == "ident":
            if tok.value in _REFUSED_FUNCTIONS:
                self.error(tok.pos, f'function "{tok.value}" is not supported')
            if tok.value not in _FUNCTIONS:
                self.error(tok.pos, f'function "{tok.value}" not defined')
            return _Ident(tok.value, tok.pos)
        if tok.kind == "dot":
            return _Dot(tok.pos)
        if tok.kind == "nil":
            return _Nilnode(tok.pos)
        if tok.kind == "var":
            if tok.value not in self.vars:
                self.error(tok.pos, f'undefined variable "{tok.value}"')
            return _Var((tok.value,), tok.pos)
        if tok.kind == "field":
            return _Field((tok.value[1:],), tok.pos)
        if tok.kind == "bool":
            return _Const(tok.value == "true", "bool", tok.value, tok.pos)
        if tok.kind in ("number", "char"):
            return self.number(tok)
        if tok.kind == "lparen":
            self.nest(tok.pos)
            pipe = self.pipeline("parenthesized pipeline", "rparen")
            self.depth -= 1
            return pipe
        if tok.kind in ("string", "raw"):
            return _Const(self.unquote(tok), "string", tok.value, tok.pos)
        self.i -= 1
        return None

    def unquote(self, tok: _Tok) -> str:
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

    def number(self, tok: _Tok) -> _Const:
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
            return _Const(code, "number", text, tok.pos)
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
                return _Const(0, "number", text, tok.pos, error=f"{text} overflows int")
            if not is_hex and not any(c in text for c in ".eEpP"):
                return _Const(integer, "number", text, tok.pos)
        try:
            number = float(text) if not is_hex and re.fullmatch(r"[+-]?[0-9_.eE+-]+", text) else math.nan
        except ValueError:
            number = math.nan
        if integer is None and (math.isnan(number) or math.isinf(number)):
            self.error(tok.pos, f"illegal number syntax: {_go_quote(text)}")
        if integer is None and not any(c in text for c in ".eEpP"):
            self.error(tok.pos, f"integer overflow: {_go_quote(text)}")
        if integer is not None and (is_hex or not any(c in text for c in ".eEpP")):
            return _Const(integer, "number", text, tok.pos)
        return _Const(number, "number", text, tok.pos)


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


# -- execution ----------------------------------------------------------------------------------


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    def __init__(self, text: str) -> None:
        self.text = text
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.vars: list[tuple[str, Value]] = []
        self.pos = 0

    def error(self, message: str) -> NoReturn:
        raise TemplateError(f"{_where(self.text, self.pos)}: {message}")

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.error(f"rendering takes more than {MAX_STEPS} steps")

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            self.error(f"output is longer than {MAX_OUTPUT} characters")
        self.out.append(text)

    def walk(self, dot: Value, items: tuple[_Item, ...]) -> None:
        for item in items:
            self.step()
            if isinstance(item, str):
                self.write(item)
            elif isinstance(item, _Action):
                value = self.pipeline(dot, item.pipe)
                if not item.pipe.decl:
                    self.pos = item.pos
                    self.write(_print_value(value))
            elif isinstance(item, _Jump):
                raise _Break() if item.kind == "break" else _Continue()
            elif item.kind == "range":
                self.walk_range(dot, item)
            else:
                self.walk_if_or_with(dot, item)

    def walk_if_or_with(self, dot: Value, node: _Control) -> None:
        mark = len(self.vars)
        try:
            value = self.pipeline(dot, node.pipe)
            if _truth(value):
                self.walk(value if node.kind == "with" else dot, node.body)
            elif node.orelse is not None:
                self.walk(dot, node.orelse)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Value, node: _Control) -> None:
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
                self.error(f"range can't iterate over {_sprint([value])}")
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

    def range_vars(self, pipe: _Pipe, key: Value, elem: Value) -> None:
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

    def pipeline(self, dot: Value, pipe: _Pipe) -> Value:
        value: Value | _Missing = _MISSING
        for cmd in pipe.cmds:
            self.step()
            value = self.command(dot, cmd, value)
        assert not isinstance(value, _Missing)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def not_a_function(self, args: tuple[_Node, ...], final: Value | _Missing) -> None:
        if len(args) > 1 or not isinstance(final, _Missing):
            self.error(f"can't give argument to non-function {_node_text(self.text, args[0])}")

    def command(self, dot: Value, cmd: _Command, final: Value | _Missing) -> Value:
        first = cmd.args[0]
        self.pos = first.pos
        if isinstance(first, _Field):
            return self.field_chain(dot, dot, first.names, cmd.args, final)
        if isinstance(first, _Chain):
            return self.chain(dot, first, cmd.args, final)
        if isinstance(first, _Ident):
            return self.function(dot, first, cmd.args, final)
        if isinstance(first, _Pipe):
            self.not_a_function(cmd.args, final)
            return self.pipeline(dot, first)
        if isinstance(first, _Var):
            return self.variable(dot, first, cmd.args, final)
        self.not_a_function(cmd.args, final)
        if isinstance(first, _Nilnode):
            self.error("nil is not a command")
        if isinstance(first, _Dot):
            return dot
        return self.constant(first)

    def constant(self, node: _Const) -> Value:
        if node.error:
            self.pos = node.pos
            self.error(node.error)
        return node.value

    def chain(self, dot: Value, node: _Chain, args: tuple[_Node, ...], final: Value | _Missing) -> Value:
        if isinstance(node.node, _Nilnode):
            self.error("indirection through explicit nil")
        receiver = self.arg_any(dot, node.node)
        return self.field_chain(dot, receiver, node.names, args, final)

    def variable(self, dot: Value, node: _Var, args: tuple[_Node, ...], final: Value | _Missing) -> Value:
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
        args: tuple[_Node, ...],
        final: Value | _Missing,
    ) -> Value:
        for name in names[:-1]:
            receiver = self.field(name, (), _MISSING, receiver)
        return self.field(names[-1], args, final, receiver)

    def field(self, name: str, args: tuple[_Node, ...], final: Value | _Missing, receiver: Value) -> Value:
        if receiver is NIL:
            return NIL
        has_args = len(args) > 1 or not isinstance(final, _Missing)
        if isinstance(receiver, _Data):
            value = receiver.get(name)
            if not isinstance(value, _Missing):
                if has_args:
                    self.error(f"{name} has arguments but cannot be invoked as function")
                return value  # type: ignore[return-value]
        elif isinstance(receiver, Mapping):
            if has_args:
                self.error(f"{name} is not a method but has arguments")
            return receiver.get(name, NIL)
        self.error(f"can't evaluate field {name} in type {_type_name(receiver)}")

    def function(self, dot: Value, node: _Ident, args: tuple[_Node, ...], final: Value | _Missing) -> Value:
        name = node.name
        operands = args[1:]
        count = len(operands) + (0 if isinstance(final, _Missing) else 1)
        fixed, variadic = _ARITY[name]
        if count < fixed or (not variadic and count != fixed):
            want = f"at least {fixed}" if variadic else str(fixed)
            self.error(f"wrong number of args for {name}: want {want} got {count}")
        if name in ("and", "or"):
            value: Value = NIL
            for operand in operands:
                value = self.arg_any(dot, operand)
                if _truth(value) == (name == "or"):
                    return value
            return value if isinstance(final, _Missing) else final
        if name == "printf":
            fmt = self.arg_string(dot, operands[0]) if operands else _string_final(self, final)
            values = [self.arg_any(dot, operand) for operand in operands[1:]]
        else:
            values = [self.arg_any(dot, operand) for operand in operands]
        if not isinstance(final, _Missing):
            values.append(final)
        self.pos = node.pos
        try:
            if name == "printf":
                return _sprintf(fmt, values if operands else values[1:])
            return _BUILTINS[name](values)
        except _CallError as exc:
            self.error(f"error calling {name}: {exc}")

    def arg_any(self, dot: Value, node: _Node) -> Value:
        """Evaluate an argument for a parameter of type any or reflect.Value."""
        self.pos = node.pos
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Nilnode):
            return NIL
        if isinstance(node, _Field):
            return self.field_chain(dot, dot, node.names, (node,), _MISSING)
        if isinstance(node, _Var):
            return self.variable(dot, node, (), _MISSING)
        if isinstance(node, _Pipe):
            return self.pipeline(dot, node)
        if isinstance(node, _Ident):
            return self.function(dot, node, (node,), _MISSING)
        if isinstance(node, _Chain):
            return self.chain(dot, node, (), _MISSING)
        return self.constant(node)

    def arg_string(self, dot: Value, node: _Node) -> str:
        """Evaluate an argument for a parameter of type string (printf's format)."""
        if isinstance(node, _Nilnode):
            self.pos = node.pos
            self.error("cannot assign nil to string")
        if isinstance(node, _Const):
            if node.kind != "string":
                self.pos = node.pos
                self.error(f"expected string; found {node.text}")
            return str(node.value)
        value = self.arg_any(dot, node)
        if value is NIL:
            self.error("invalid value; expected string")
        if not isinstance(value, str):
            self.error(f"wrong type for value; expected string; got {_type_name(value)}")
        return value


def _string_final(state: _State, final: Value | _Missing) -> str:
    if final is NIL:
        state.error("invalid value; expected string")
    if not isinstance(final, str):
        state.error(f"wrong type for value; expected string; got {_type_name(final)}")
    return final


def _node_text(text: str, node: _Node) -> str:
    if isinstance(node, _Field):
        return "." + ".".join(node.names)
    if isinstance(node, _Var):
        return ".".join(node.names)
    if isinstance(node, _Const):
        return node.text
    if isinstance(node, _Dot):
        return "."
    if isinstance(node, _Ident):
        return node.name
    return "<command>"


# -- builtin functions --------------------------------------------------------------------------


class _CallError(Exception):
    """An error a builtin function returns; the caller adds position and function name."""


def _truth(value: Value) -> bool:
    if value is NIL:
        return False
    if isinstance(value, (str, Mapping)):
        return len(value) > 0
    if isinstance(value, _Data):
        return True
    return bool(value)


_INVALID, _BOOL, _INT, _UINT, _FLOAT, _STRING = range(6)


def _kind(value: Value) -> int:
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, _Byte):
        return _UINT
    if isinstance(value, int):
        return _INT
    if isinstance(value, float):
        return _FLOAT
    if isinstance(value, str):
        return _STRING
    return _INVALID


def _eq(values: list[Value]) -> bool:
    first, rest = values[0], values[1:]
    if not rest:
        raise _CallError("missing argument for comparison")
    k1 = _kind(first)
    for other in rest:
        k2 = _kind(other)
        if k1 != k2:
            if {k1, k2} == {_INT, _UINT}:
                truth = first == other
            elif first is not NIL and other is not NIL:
                raise _CallError("incompatible types for comparison")
            else:
                truth = False
        elif k1 == _INVALID:
            if first is NIL or other is NIL:
                truth = first is NIL and other is NIL
            else:
                raise _CallError(f"non-comparable type {_sprint([other])}: {_type_name(other)}")
        else:
            truth = first == other
        if truth:
            return True
    return False


def _lt(values: list[Value]) -> bool:
    a, b = values
    ka, kb = _kind(a), _kind(b)
    if ka == _INVALID or kb == _INVALID:
        raise _CallError("invalid type for comparison")
    if ka != kb:
        if {ka, kb} == {_INT, _UINT}:
            return a < b  # type: ignore[operator]
        raise _CallError("incompatible types for comparison")
    if ka == _BOOL:
        raise _CallError("invalid type for comparison")
    return a < b  # type: ignore[operator]


def _le(values: list[Value]) -> bool:
    return _lt(values) or _eq(values)


def _len(values: list[Value]) -> int:
    (item,) = values
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, Mapping):
        return len(item)
    if item is NIL:
        raise _CallError("len of nil value")
    raise _CallError(f"len of type {_type_name(item)}")


def _index(values: list[Value]) -> Value:
    item, indexes = values[0], values[1:]
    if item is NIL:
        raise _CallError("index of untyped nil")
    for index in indexes:
        if isinstance(item, str):
            raw = item.encode()
            kind = _kind(index)
            if kind not in (_INT, _UINT):
                raise _CallError(
                    "cannot index slice/array with nil"
                    if index is NIL
                    else f"cannot index slice/array with type {_type_name(index)}"
                )
            position = int(index)  # type: ignore[arg-type]
            if position < 0 or position >= len(raw):
                raise _CallError(f"index out of range: {position}")
            item = _Byte(raw[position])
        elif isinstance(item, Mapping):
            if index is NIL:
                raise _CallError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise _CallError(f"value has type {_type_name(index)}; should be string")
            item = item.get(index, "")
        else:
            raise _CallError(f"can't index item of type {_type_name(item)}")
    return item


def _evalargs(values: list[Value]) -> str:
    """text/template's evalArgs: one string as is, else fmt.Sprint with nil shown as <no value>."""
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return _sprint(["<no value>" if v is NIL else v for v in values])


def _html(values: list[Value]) -> str:
    table = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}
    return "".join(table.get(c, c) for c in _evalargs(values))


def _js(values: list[Value]) -> str:
    out: list[str] = []
    table = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E"}
    table.update({"&": "\\u0026", "=": "\\u003D"})
    for char in _evalargs(values):
        if char in table:
            out.append(table[char])
        elif char < " " or (not char.isascii() and not _is_print(char)):
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)


def _urlquery(values: list[Value]) -> str:
    out: list[str] = []
    for byte in _evalargs(values).encode():
        char = chr(byte)
        if char.isascii() and (char.isalnum() or char in "-_.~"):
            out.append(char)
        elif char == " ":
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


_BUILTINS: dict[str, Callable[[list[Value]], Value]] = {
    "not": lambda v: not _truth(v[0]),
    "len": _len,
    "index": _index,
    "eq": _eq,
    "ne": lambda v: not _eq(v),
    "lt": _lt,
    "le": _le,
    "gt": lambda v: not _le(v),
    "ge": lambda v: not _lt(v),
    "print": lambda v: _sprint(v),
    "println": lambda v: " ".join(_format(x, _Spec("v")) for x in v) + "\n",
    "html": _html,
    "js": _js,
    "urlquery": _urlquery,
}

# name -> (fixed parameters, variadic)
_ARITY: dict[str, tuple[int, bool]] = {
    "and": (1, True),
    "or": (1, True),
    "not": (1, False),
    "len": (1, False),
    "index": (1, True),
    "eq": (1, True),
    "ne": (2, False),
    "lt": (2, False),
    "le": (2, False),
    "gt": (2, False),
    "ge": (2, False),
    "print": (0, True),
    "printf": (1, True),
    "println": (0, True),
    "html": (0, True),
    "js": (0, True),
    "urlquery": (0, True),
}


# -- Go's fmt -----------------------------------------------------------------------------------


@dataclass
class _Spec:
    verb: str
    minus: bool = False
    plus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    width: int | None = None
    precision: int | None = None
    plus_v: bool = False  # %+v: print struct field names (and no + sign)


_VERBS = frozenset("vsqdxXtc")
_FORMAT = re.compile(r"%([-+# 0]*)([0-9]*)(?:\.([0-9]*))?(.?)", re.DOTALL)


def check_format(fmt: str) -> str | None:
    """The reason a printf format is refused, or None when every directive is supported."""
    for match in _FORMAT.finditer(fmt):
        flags, _, _, verb = match.groups()
        if verb == "%" or verb == "":
            continue
        if verb == "*" or verb == "[":
            return "printf argument indexes and * widths are not supported"
        if verb not in _VERBS:
            return f"printf verb %{verb} is not supported"
        if "#" in flags and verb == "v":
            return "printf %#v is not supported"
    return None


def _sprint(values: list[Value]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out: list[str] = []
    for i, value in enumerate(values):
        if i > 0 and not isinstance(value, str) and not isinstance(values[i - 1], str):
            out.append(" ")
        out.append(_format(value, _Spec("v")))
    return "".join(out)


def _sprintf(fmt: str, values: list[Value]) -> str:
    if reason := check_format(fmt):
        raise _CallError(reason)
    out: list[str] = []
    used = 0
    pos = 0
    for match in _FORMAT.finditer(fmt):
        out.append(fmt[pos : match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "":
            out.append("%!(NOVERB)")
            continue
        if verb == "%":
            out.append("%")
            continue
        spec = _Spec(
            verb,
            minus="-" in flags,
            plus="+" in flags and verb != "v",
            plus_v="+" in flags and verb == "v",
            sharp="#" in flags,
            space=" " in flags,
            zero="0" in flags and "-" not in flags,
            width=int(width) if width else None,
            precision=int(precision or "0") if precision is not None else None,
        )
        if used >= len(values):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format(values[used], spec))
        used += 1
    out.append(fmt[pos:])
    if used < len(values):
        extra = ", ".join(
            "<nil>" if v is NIL else f"{_type_name(v)}={_format(v, _Spec('v'))}" for v in values[used:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _pad(text: str, spec: _Spec, zero: bool = True, signed: bool = False) -> str:
    """Pad to the width; `zero` False where Go has already applied the 0 flag, `signed` for numbers."""
    if spec.width is None or len(text) >= spec.width:
        return text
    fill = spec.width - len(text)
    if spec.minus:
        return text + " " * fill
    if spec.zero and zero:
        sign = text[0] if signed and text[:1] in ("+", "-", " ") else ""
        return sign + "0" * fill + text[len(sign) :]
    return " " * fill + text


def _bad_verb(value: Value, spec: _Spec) -> str:
    if value is NIL:
        return f"%!{spec.verb}(<nil>)"
    inner = _Spec("v", spec.minus, spec.plus, spec.sharp, spec.space, spec.zero, spec.width, spec.precision)
    return f"%!{spec.verb}({_type_name(value)}={_format(value, inner)})"


def _format(value: Value, spec: _Spec) -> str:
    verb = spec.verb
    if isinstance(value, _Nil):
        return _pad("<nil>", spec) if verb == "v" else _bad_verb(value, spec)
    if isinstance(value, bool):
        if verb in "vt":
            return _pad("true" if value else "false", spec)
        return _bad_verb(value, spec)
    if isinstance(value, int):
        return _format_int(value, spec)
    if isinstance(value, float):
        if verb == "v":
            return _pad(_format_float(value, spec), spec, signed=True)
        return _bad_verb(value, spec)
    if isinstance(value, str):
        return _format_string(value, spec)
    if isinstance(value, _Data):
        parts = [(f"{name}:" if spec.plus_v else "") + _format(v, spec) for name, v in value.fields]
        return "{" + " ".join(parts) + "}"
    return "map[" + " ".join(f"{_format(k, spec)}:{_format(value[k], spec)}" for k in sorted(value)) + "]"


def _format_int(value: int, spec: _Spec) -> str:
    verb = spec.verb
    if verb == "c":
        return _pad(
            chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd", spec
        )
    if verb == "q":
        char = value if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else 0xFFFD
        return _pad(_go_quote_rune(char, ascii_only=spec.plus), spec)
    if verb not in "vdxX":
        return _bad_verb(value, spec)
    digits = str(abs(value)) if verb in "vd" else format(abs(value), "x" if verb == "x" else "X")
    if spec.precision is not None:
        digits = "" if spec.precision == 0 and value == 0 else digits.rjust(spec.precision, "0")
    elif spec.zero and spec.width is not None and not spec.minus:
        digits = digits.rjust(spec.width - (1 if value < 0 or spec.plus or spec.space else 0), "0")
    if spec.sharp and verb in "xX":
        digits = ("0x" if verb == "x" else "0X") + digits
    sign = "-" if value < 0 else "+" if spec.plus else " " if spec.space else ""
    return _pad(sign + digits, spec, zero=False)


def _format_string(value: str, spec: _Spec) -> str:
    verb = spec.verb
    if verb in "vs":
        text = value if spec.precision is None else value[: spec.precision]
        return _pad(text, spec)
    if verb == "q":
        text = value if spec.precision is None else value[: spec.precision]
        if (
            spec.sharp
            and "`" not in text
            and all(c == "\t" or (_is_print(c) and c != "\ufeff") for c in text)
        ):
            return _pad("`" + text + "`", spec)
        return _pad(_go_quote(text, ascii_only=spec.plus), spec)
    if verb in "xX":
        raw = value.encode()
        if spec.precision is not None:
            raw = raw[: spec.precision]
        pieces = [format(b, "02x" if verb == "x" else "02X") for b in raw]
        prefix = ("0x" if verb == "x" else "0X") if spec.sharp else ""
        if spec.space:
            text = " ".join(prefix + p for p in pieces)
        else:
            text = prefix + "".join(pieces) if pieces else ""
        return _pad(text, spec)
    return _bad_verb(value, spec)


def _format_float(value: float, spec: _Spec) -> str:
    """strconv.FormatFloat(v, 'g', -1, 64), as fmt's %v prints a float64."""
    sign = "-" if math.copysign(1.0, value) < 0 else ("+" if spec.plus else " " if spec.space else "")
    if value == 0:
        return sign + "0"
    digits_tuple = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digits_tuple.digits))
    exponent = int(digits_tuple.exponent) + len(digits) - 1
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return sign + "0." + "0" * (-exponent - 1) + digits
    if exponent + 1 >= len(digits):
        return sign + digits + "0" * (exponent + 1 - len(digits))
    return sign + digits[: exponent + 1] + "." + digits[exponent + 1 :]


def _is_print(char: str) -> bool:
    """unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    return char == " " or unicodedata.category(char)[0] in "LMNPS"


def _go_quote(text: str, ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteToASCII)."""
    return '"' + "".join(_quote_char(c, '"', ascii_only) for c in text) + '"'


def _go_quote_rune(code: int, ascii_only: bool = False) -> str:
    return "'" + _quote_char(chr(code), "'", ascii_only) + "'"


def _quote_char(char: str, quote: str, ascii_only: bool) -> str:
    if char == quote or char == "\\":
        return "\\" + char
    if (char.isascii() or not ascii_only) and _is_print(char):
        return char
    named = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    if char in named:
        return named[char]
    code = ord(char)
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _print_value(value: Value) -> str:
    """How an action prints its value: fmt.Sprint, with a missing value shown as <no value>."""
    return "<no value>" if value is NIL else _format(value, _Spec("v"))


# -- public interface ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A parsed template. Immutable, so one parse serves any number of renders."""

    source: str
    items: tuple[_Item, ...]

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
        data = _Data(
            (
                ("ClusterName", ClusterName),
                ("KubeName", KubeName),
                ("Labels", {} if Labels is None else Labels),
            )
        )
        state = _State(self.source)
        state.vars.append(("$", data))
        try:
            state.walk(data, self.items)
        except RecursionError:
            raise TemplateError("1:1: template nests too deeply") from None
        return "".join(state.out)


def parse(text: str) -> Template:
    """Parse `text` as Go's template.New(name).Parse does; raises TemplateError where Go fails."""
    tokens = _Lexer(text).run()
    items = _Parser(text, tokens).parse()
    for fmt, pos in _constant_formats(items):
        if reason := check_format(fmt):
            raise TemplateError(f"{_where(text, pos)}: {reason}")
    return Template(text, items)


def _walk_nodes(items: tuple[_Item, ...]) -> Iterator[_Node | _Command]:
    def pipe_nodes(pipe: _Pipe) -> Iterator[_Node | _Command]:
        for cmd in pipe.cmds:
            yield cmd
            for arg in cmd.args:
                yield arg
                if isinstance(arg, _Pipe):
                    yield from pipe_nodes(arg)
                elif isinstance(arg, _Chain):
                    yield arg.node
                    if isinstance(arg.node, _Pipe):
                        yield from pipe_nodes(arg.node)

    for item in items:
        if isinstance(item, _Action):
            yield from pipe_nodes(item.pipe)
        elif isinstance(item, _Control):
            yield from pipe_nodes(item.pipe)
            yield from _walk_nodes(item.body)
            yield from _walk_nodes(item.orelse or ())


def _fields_in(items: tuple[_Item, ...]) -> Iterator[str]:
    for node in _walk_nodes(items):
        if isinstance(node, _Field):
            yield node.names[0]
        elif isinstance(node, _Var) and node.names[0] == "$" and len(node.names) > 1:
            yield node.names[1]


def _constant_formats(items: tuple[_Item, ...]) -> Iterator[tuple[str, int]]:
    """printf formats written as string constants, so unsupported verbs are refused when parsing."""
    for node in _walk_nodes(items):
        if not isinstance(node, _Command) or len(node.args) < 2:
            continue
        function, fmt = node.args[0], node.args[1]
        if (
            isinstance(function, _Ident)
            and function.name == "printf"
            and isinstance(fmt, _Const)
            and fmt.kind == "string"
        ):
            yield str(fmt.value), fmt.pos


def _where(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{column}"
