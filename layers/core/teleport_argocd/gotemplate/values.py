"""Go values as the templates see them: string, bool, int, uint8, float64, the map, tbot's struct, nil."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DATA_FIELDS = ("ClusterName", "KubeName", "Labels")
"""The fields of the struct tbot executes its templates with."""


# Go values are modelled as: str (string), bool, int (int), Byte (uint8, from indexing a
# string), float (float64), Mapping[str, str] (map[string]string), Data (the struct) and NIL,
# which stands for both an untyped nil and reflect's invalid value (a missing map key).


class Nil:
    def __repr__(self) -> str:
        return "NIL"


NIL = Nil()


class Byte(int):
    """A Go uint8: what indexing a string yields."""


@dataclass(frozen=True)
class Data:
    """The struct tbot passes as dot; fields in declaration order."""

    fields: tuple[tuple[str, str | Mapping[str, str]], ...]

    def get(self, name: str) -> object:
        return dict(self.fields).get(name, MISSING)


class Missing:
    pass


MISSING = Missing()  # no value piped into a command (Go's missingVal)

Value = str | bool | int | float | Mapping[str, str] | Data | Nil


def type_name(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Byte):
        return "uint8"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Data):
        return "struct { ClusterName string; KubeName string; Labels map[string]string }"
    if isinstance(value, Mapping):
        return "map[string]string"
    return "<nil>"
