"""Field management for the Kubernetes stand-in's Secrets: server-side apply as Kubernetes documents it.

kubernetes.io/docs/reference/using-api/server-side-apply, restated:
- every write records, in `metadata.managedFields`, which manager owns which fields: one entry per
  manager and operation (`Apply` for `PATCH` with `application/apply-patch+yaml`, `Update` for
  every other write), fields in the `FieldsV1` form (`{"f:data": {"f:config": {}}}`);
- Secret `data`, `metadata.labels` and `metadata.annotations` are granular maps: each key is a
  field owned on its own, so several managers share one map;
- an Update takes ownership of the fields it changes from whoever owned them; it never conflicts;
- an Apply sets the fields it names and owns them; a field another manager owns with a different
  value is a conflict (409, reason Conflict, one cause per field naming the manager) unless the
  request has `force=true`, which takes the field over; a field it applied before and no longer
  applies is removed, unless another manager also owns it (then only the ownership goes);
- an apply of an object that does not exist creates it;
- `metadata.managedFields: [{}]` in a non-apply write strips every entry ("Clearing managedFields");
  an empty list changes nothing;
- an object without entries that is applied to first gives all its fields to the manager
  `before-first-apply` (operation Update), as the API server's field manager does.

Only what Secrets carry is tracked here: `type`, `immutable`, and the keys of the three maps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

Path = tuple[str, ...]

BEFORE_FIRST_APPLY = "before-first-apply"
_MAPS = (("data",), ("metadata", "labels"), ("metadata", "annotations"))
_SCALARS = (("type",), ("immutable",))


class ApplyConflict(Exception):
    """An apply would change fields other managers own: (manager entry, field path) pairs."""

    def __init__(self, conflicts: list[tuple[dict[str, Any], Path]]) -> None:
        super().__init__("conflict")
        self.conflicts = conflicts

    def message(self) -> str:
        """Worded as apimachinery's field manager words it (`getConflictMessage`)."""
        if len(self.conflicts) == 1:
            entry, path = self.conflicts[0]
            return f"Apply failed with 1 conflict: conflict with {manager_text(entry)}: {path_text(path)}"
        lines: list[str] = []
        by_manager: dict[str, list[Path]] = {}
        for entry, path in self.conflicts:
            by_manager.setdefault(manager_text(entry), []).append(path)
        for manager in sorted(by_manager):
            lines.append(f"conflicts with {manager}:")
            lines += [f"- {path_text(p)}" for p in by_manager[manager]]
        return f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)

    def causes(self) -> list[dict[str, str]]:
        return [
            {
                "reason": "FieldManagerConflict",
                "message": f"conflict with {manager_text(e)}",
                "field": path_text(p),
            }
            for e, p in self.conflicts
        ]


def manager_text(entry: Mapping[str, Any]) -> str:
    text = json.dumps(entry.get("manager", ""))
    if entry.get("operation") == "Update":
        return f"{text} using {entry.get('apiVersion', 'v1')}"
    return text


def path_text(path: Path) -> str:
    return "".join(f".{part}" for part in path)


def fields(obj: Mapping[str, Any]) -> set[Path]:
    """The tracked fields an object sets."""
    found: set[Path] = {p for p in _SCALARS if _get(obj, p) is not None}
    for prefix in _MAPS:
        found |= {(*prefix, key) for key in (_get(obj, prefix) or {})}
    return found


def value(obj: Mapping[str, Any], path: Path) -> Any:
    return _get(obj, path)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def from_fields_v1(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    found: set[Path] = set()
    for key, child in tree.items():
        if not key.startswith("f:"):
            continue
        path = (*prefix, key[2:])
        if child:
            found |= from_fields_v1(child, path)
        else:
            found.add(path)
    return found


def entry(manager: str, operation: str, paths: Iterable[Path], now: str) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "v1",
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    }


def _key(e: Mapping[str, Any]) -> tuple[str, str]:
    return (str(e.get("manager", "")), str(e.get("operation", "")))


def _owned(entries: list[dict[str, Any]]) -> list[tuple[dict[str, Any], set[Path]]]:
    return [(e, from_fields_v1(e.get("fieldsV1") or {})) for e in entries]


def _pack(owned: list[tuple[dict[str, Any], set[Path]]]) -> list[dict[str, Any]]:
    """Entries with their field sets written back; an entry left owning nothing is dropped."""
    return [{**e, "fieldsV1": to_fields_v1(s)} for e, s in owned if s]


def track_create(new: dict[str, Any], manager: str, operation: str, now: str) -> None:
    """A create: the creating manager owns every field it set."""
    new["metadata"]["managedFields"] = [entry(manager, operation, fields(new), now)]


def track_update(old: Mapping[str, Any], new: dict[str, Any], manager: str, requested: Any, now: str) -> None:
    """An Update (PUT, merge or JSON patch): ownership of changed fields moves to `manager`.

    `requested` is the managedFields the request's object carries: `[{}]` strips them all;
    another non-empty list is taken as the starting point (the API server trusts it); absent or
    empty, the live object's entries are.
    """
    if requested == [{}]:
        new["metadata"]["managedFields"] = []
        return
    base = (
        requested if isinstance(requested, list) and requested else old["metadata"].get("managedFields") or []
    )
    before, after = fields(old), fields(new)
    changed = {p for p in after if p not in before or value(old, p) != value(new, p)}
    removed = before - after
    owned = [(e, s - removed - changed) for e, s in _owned(list(base))]
    mine = next((s for e, s in owned if _key(e) == (manager, "Update")), None)
    if mine is None:
        if changed:
            owned.append((entry(manager, "Update", (), now), set(changed)))
    else:
        mine |= changed
    new["metadata"]["managedFields"] = _pack(owned)


def apply(
    live: Mapping[str, Any] | None, applied: Mapping[str, Any], manager: str, force: bool, now: str
) -> dict[str, Any]:
    """The object after `manager` applies `applied` to `live` (None: it does not exist yet).

    Raises ApplyConflict, changing nothing, when another manager owns an applied field with a
    different value and `force` is not set.
    """
    wanted = fields(applied)
    if live is None:
        new = {**applied, "metadata": {**applied["metadata"]}}
        new["metadata"]["managedFields"] = [entry(manager, "Apply", wanted, now)]
        return new
    entries = list(live["metadata"].get("managedFields") or [])
    if not entries:
        entries = [entry(BEFORE_FIRST_APPLY, "Update", fields(live), now)]
    owned = _owned(entries)
    me = (manager, "Apply")
    conflicts = [
        (e, p)
        for e, s in owned
        if _key(e) != me
        for p in sorted(s & wanted)
        if value(live, p) != value(applied, p)
    ]
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    taken = {p for _, p in conflicts}
    owned = [(e, s - taken) for e, s in owned]
    previous = next((s for e, s in owned if _key(e) == me), set())
    others = set().union(*(s for e, s in owned if _key(e) != me))
    new = json.loads(json.dumps(live))
    for path in wanted:
        _set(new, path, value(applied, path))
    for path in previous - wanted - others:
        _delete(new, path)
    owned = [(e, s) for e, s in owned if _key(e) != me]
    owned.append((entry(manager, "Apply", (), now), wanted))
    new["metadata"]["managedFields"] = _pack(owned)
    return new


def _get(obj: Mapping[str, Any], path: Path) -> Any:
    node: Any = obj
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _set(obj: dict[str, Any], path: Path, new: Any) -> None:
    node = obj
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = new


def _delete(obj: dict[str, Any], path: Path) -> None:
    parent = _get(obj, path[:-1]) if len(path) > 1 else obj
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
