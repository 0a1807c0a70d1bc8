"""The lexer, as Go's text/template/parse/lex.go: text and actions into tokens."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import NoReturn

from teleport_argocd.gotemplate.errors import TemplateError, where
from teleport_argocd.gotemplate.fmt import go_quote, go_quote_rune

_SPACE = " \t\r\n"
_KEYWORDS = frozenset(
    ["block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"]
)
REFUSED_KEYWORDS = frozenset(["block", "define", "template"])


@dataclass(frozen=True)
class Tok:
    kind: str  # text, left, right, space, ident, keyword, field, var, dot, number, char,
    # string, raw, bool, nil, pipe, lparen, rparen, declare, assign, comma, eof
    value: str
    pos: int


class Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.parens = 0
        self.tokens: list[Tok] = []

    def error(self, pos: int, message: str) -> NoReturn:
        raise TemplateError(f"{where(self.text, pos)}: {message}")

    def run(self) -> list[Tok]:
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
                self.tokens.append(Tok("text", literal, self.pos))
            if start < 0:
                self.tokens.append(Tok("eof", "", len(text)))
                return self.tokens
            self.pos = start + (4 if left_trim else 2)
            if text.startswith("/*", self.pos):
                trim_next = self.comment(start)
            else:
                self.tokens.append(Tok("left", "{{", start))
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
                self.tokens.append(Tok("right", "}}", self.pos))
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
                    self.tokens.append(Tok("space", text[i:j], i))
                    self.pos = j
                else:
                    self.pos = j
                continue
            self.pos += 1
            if char == "=":
                self.tokens.append(Tok("assign", "=", i))
            elif char == ":":
                if not text.startswith("=", self.pos):
                    self.error(i, "expected :=")
                self.pos += 1
                self.tokens.append(Tok("declare", ":=", i))
            elif char == "|":
                self.tokens.append(Tok("pipe", "|", i))
            elif char == ",":
                self.tokens.append(Tok("comma", ",", i))
            elif char == '"':
                self.quote(i)
            elif char == "`":
                close = text.find("`", self.pos)
                if close < 0:
                    self.error(i, "unterminated raw quoted string")
                self.pos = close + 1
                self.tokens.append(Tok("raw", text[i : self.pos], i))
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
                self.tokens.append(Tok("lparen", "(", i))
            elif char == ")":
                self.parens -= 1
                if self.parens < 0:
                    self.error(i, "unexpected right paren")
                self.tokens.append(Tok("rparen", ")", i))
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
        self.tokens.append(Tok("string", text[start : self.pos], start))

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
        self.tokens.append(Tok("char", text[start : self.pos], start))

    def word(self, start: int, kind: str) -> None:
        if self.at_terminator():
            self.tokens.append(Tok("var" if kind == "var" else "dot", self.text[start], start))
            return
        while self.pos < len(self.text) and _is_alnum(self.text[self.pos]):
            self.pos += 1
        if not self.at_terminator():
            self.error(self.pos, f"bad character {_unicode_name(self.text[self.pos])}")
        self.tokens.append(Tok(kind, self.text[start : self.pos], start))

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
        self.tokens.append(Tok(kind, word, start))

    def number(self, start: int) -> None:
        if not self.scan_number():
            self.error(start, f"bad number syntax: {go_quote(self.text[start : self.pos])}")
        if self.pos < len(self.text) and self.text[self.pos] in "+-":
            self.scan_number()
            self.error(start, "complex constants are not supported")
        self.tokens.append(Tok("number", self.text[start : self.pos], start))

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
    return f"U+{ord(char):04X} {go_quote_rune(ord(char))}"
