"""The builtin functions, as Go's text/template/funcs.go (no extra functions: tbot adds none)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from teleport_argocd.gotemplate.errors import CallError
from teleport_argocd.gotemplate.fmt import Spec, format_value, is_print, sprint
from teleport_argocd.gotemplate.values import NIL, Byte, Data, Value, type_name


def is_true(value: Value) -> bool:
    if value is NIL:
        return False
    if isinstance(value, (str, Mapping)):
        return len(value) > 0
    if isinstance(value, Data):
        return True
    return bool(value)


_INVALID, _BOOL, _INT, _UINT, _FLOAT, _STRING = range(6)


def _kind(value: Value) -> int:
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, Byte):
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
        raise CallError("missing argument for comparison")
    k1 = _kind(first)
    for other in rest:
        k2 = _kind(other)
        if k1 != k2:
            if {k1, k2} == {_INT, _UINT}:
                truth = first == other
            elif first is not NIL and other is not NIL:
                raise CallError("incompatible types for comparison")
            else:
                truth = False
        elif k1 == _INVALID:
            if first is NIL or other is NIL:
                truth = first is NIL and other is NIL
            else:
                raise CallError(f"non-comparable type {sprint([other])}: {type_name(other)}")
        else:
            truth = first == other
        if truth:
            return True
    return False


def _lt(values: list[Value]) -> bool:
    a, b = values
    ka, kb = _kind(a), _kind(b)
    if ka == _INVALID or kb == _INVALID:
        raise CallError("invalid type for comparison")
    if ka != kb:
        if {ka, kb} == {_INT, _UINT}:
            return a < b  # type: ignore[operator]
        raise CallError("incompatible types for comparison")
    if ka == _BOOL:
        raise CallError("invalid type for comparison")
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
        raise CallError("len of nil value")
    raise CallError(f"len of type {type_name(item)}")


def _index(values: list[Value]) -> Value:
    item, indexes = values[0], values[1:]
    if item is NIL:
        raise CallError("index of untyped nil")
    for index in indexes:
        if isinstance(item, str):
            raw = item.encode()
            kind = _kind(index)
            if kind not in (_INT, _UINT):
                raise CallError(
                    "cannot index slice/array with nil"
                    if index is NIL
                    else f"cannot index slice/array with type {type_name(index)}"
                )
            position = int(index)  # type: ignore[arg-type]
            if position < 0 or position >= len(raw):
                raise CallError(f"index out of range: {position}")
            item = Byte(raw[position])
        elif isinstance(item, Mapping):
            if index is NIL:
                raise CallError("value is nil; should be of type string")
            if not isinstance(index, str):
                raise CallError(f"value has type {type_name(index)}; should be string")
            item = item.get(index, "")
        else:
            raise CallError(f"can't index item of type {type_name(item)}")
    return item


def _evalargs(values: list[Value]) -> str:
    """text/template's evalArgs: one string as is, else fmt.Sprint with nil shown as <no value>."""
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return sprint(["<no value>" if v is NIL else v for v in values])


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
        elif char < " " or (not char.isascii() and not is_print(char)):
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


BUILTINS: dict[str, Callable[[list[Value]], Value]] = {
    "not": lambda v: not is_true(v[0]),
    "len": _len,
    "index": _index,
    "eq": _eq,
    "ne": lambda v: not _eq(v),
    "lt": _lt,
    "le": _le,
    "gt": lambda v: not _le(v),
    "ge": lambda v: not _lt(v),
    "print": lambda v: sprint(v),
    "println": lambda v: " ".join(format_value(x, Spec("v")) for x in v) + "\n",
    "html": _html,
    "js": _js,
    "urlquery": _urlquery,
}

# name -> (fixed parameters, variadic)
ARITY: dict[str, tuple[int, bool]] = {
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
