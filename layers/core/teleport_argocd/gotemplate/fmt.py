"""Go's fmt, as far as print, printf and println need it, written to match Go's output byte for byte."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from teleport_argocd.gotemplate.errors import CallError
from teleport_argocd.gotemplate.values import NIL, Data, Nil, Value, type_name


@dataclass
class Spec:
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


def sprint(values: list[Value]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out: list[str] = []
    for i, value in enumerate(values):
        if i > 0 and not isinstance(value, str) and not isinstance(values[i - 1], str):
            out.append(" ")
        out.append(format_value(value, Spec("v")))
    return "".join(out)


def sprintf(fmt: str, values: list[Value]) -> str:
    if reason := check_format(fmt):
        raise CallError(reason)
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
        spec = Spec(
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
        out.append(format_value(values[used], spec))
        used += 1
    out.append(fmt[pos:])
    if used < len(values):
        extra = ", ".join(
            "<nil>" if v is NIL else f"{type_name(v)}={format_value(v, Spec('v'))}" for v in values[used:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _pad(text: str, spec: Spec, zero: bool = True, signed: bool = False) -> str:
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


def _bad_verb(value: Value, spec: Spec) -> str:
    if value is NIL:
        return f"%!{spec.verb}(<nil>)"
    inner = Spec("v", spec.minus, spec.plus, spec.sharp, spec.space, spec.zero, spec.width, spec.precision)
    return f"%!{spec.verb}({type_name(value)}={format_value(value, inner)})"


def format_value(value: Value, spec: Spec) -> str:
    verb = spec.verb
    if isinstance(value, Nil):
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
    if isinstance(value, Data):
        parts = [(f"{name}:" if spec.plus_v else "") + format_value(v, spec) for name, v in value.fields]
        return "{" + " ".join(parts) + "}"
    return (
        "map["
        + " ".join(f"{format_value(k, spec)}:{format_value(value[k], spec)}" for k in sorted(value))
        + "]"
    )


def _format_int(value: int, spec: Spec) -> str:
    verb = spec.verb
    if verb == "c":
        return _pad(
            chr(value) if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else "\ufffd", spec
        )
    if verb == "q":
        char = value if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF else 0xFFFD
        return _pad(go_quote_rune(char, ascii_only=spec.plus), spec)
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


def _format_string(value: str, spec: Spec) -> str:
    verb = spec.verb
    if verb in "vs":
        text = value if spec.precision is None else value[: spec.precision]
        return _pad(text, spec)
    if verb == "q":
        text = value if spec.precision is None else value[: spec.precision]
        if spec.sharp and "`" not in text and all(c == "\t" or (is_print(c) and c != "\ufeff") for c in text):
            return _pad("`" + text + "`", spec)
        return _pad(go_quote(text, ascii_only=spec.plus), spec)
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


def _format_float(value: float, spec: Spec) -> str:
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


def is_print(char: str) -> bool:
    """unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space."""
    return char == " " or unicodedata.category(char)[0] in "LMNPS"


def go_quote(text: str, ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteToASCII)."""
    return '"' + "".join(_quote_char(c, '"', ascii_only) for c in text) + '"'


def go_quote_rune(code: int, ascii_only: bool = False) -> str:
    return "'" + _quote_char(chr(code), "'", ascii_only) + "'"


def _quote_char(char: str, quote: str, ascii_only: bool) -> str:
    if char == quote or char == "\\":
        return "\\" + char
    if (char.isascii() or not ascii_only) and is_print(char):
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


def print_value(value: Value) -> str:
    """How an action prints its value: fmt.Sprint, with a missing value shown as <no value>."""
    return "<no value>" if value is NIL else format_value(value, Spec("v"))
