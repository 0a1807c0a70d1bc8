"""The `apply` write mode (the default): each create or update is one server-side apply, nothing is read.

The apply is a `PATCH` (`application/apply-patch+yaml`, field manager `teleport-argocd`).
Kubernetes' field ownership keeps the labels, annotations and data keys others own and removes
ours we stop rendering. RBAC is `patch`, `create` (an apply that creates is also authorised as
`create`) and `delete`, no `get`; the admission policy `scripts/rbac.py` prints refuses any
change to a Secret that carries neither our annotation nor tbot's, which also stops `patch`
from reading other Secrets (a patch answers with the object). `force=true` is sent only where
we know the Secret is ours (our registry holds its uid) or have just proven it (below).
A first write that meets fields another manager owns proves ownership with one JSON patch
that applies only to a Secret for this cluster carrying tbot's version annotation (which it
removes, replacing every label as tbot would) or ours; then applies with force; then hands
the fields tbot, our older update-based writer and `before-first-apply` still co-owned to
our apply alone, so a key we stop rendering later is really removed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from teleport_argocd import __version__
from teleport_argocd.destination.http import Response, json_object, status_message
from teleport_argocd.destination.writer import (
    FIELD_MANAGER,
    SecretOp,
    Writer,
    WriteResult,
    attempts,
    managed_keys,
    secret_path,
)
from teleport_argocd.errors import DestinationError, ForeignSecretError, NotManagedError
from teleport_argocd.model import (
    KUBE_CLUSTER_ANNOTATION,
    MANAGED_KEYS_ANNOTATION,
    TBOT_VERSION_ANNOTATION,
    TELEPORT_CLUSTER_ANNOTATION,
    VERSION_ANNOTATION,
    Outcome,
    SecretVersion,
)

logger = logging.getLogger(__name__)

APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
# Who may still co-own fields of a Secret we apply: tbot's updates, this writer's updates from
# before it applied, and the API server's placeholder for fields set before the first apply.
# A takeover ends their ownership, else a key we stop rendering would stay (it has another owner).
TBOT_FIELD_MANAGER = "tbot"
BEFORE_FIRST_APPLY = "before-first-apply"


class ApplyWriter(Writer):
    """Writes and deletes without reading first; forced where the Secret is known to be ours."""

    def write(self, manifest: Mapping[str, Any], known: SecretVersion | None) -> WriteResult:
        """One server-side apply; forced where the Secret is known to be ours."""
        secret = _marked(manifest)
        meta = secret["metadata"]
        op = SecretOp("write", meta["namespace"], meta["name"])
        force, proven = known is not None, ""
        for _ in attempts():
            body = secret if not proven else {**secret, "metadata": {**meta, "resourceVersion": proven}}
            response = self.send(
                op, "PATCH", secret_path(op.namespace, op.name), body, APPLY_PATCH, force=force
            )
            status = response.status_code
            if status in (HTTPStatus.OK, HTTPStatus.CREATED):
                live = self._handed_over(op, secret, json_object(response))
                action: Outcome = Outcome.CREATED if status == HTTPStatus.CREATED else Outcome.UPDATED
                return _result(op, action, live)
            if status == HTTPStatus.CONFLICT and not force:
                # Fields another manager owns: prove the Secret is tbot's or ours before forcing.
                proven = self._prove(op, secret, _conflicting_managers(response))
                force = bool(proven)
                continue
            if status == HTTPStatus.CONFLICT and proven:
                logger.info("%s: changed since its ownership was proven; trying again", op)
                force, proven = known is not None, ""
                continue
            raise self._refused(op, response, ForeignSecretError)
        raise self.conflicted(op)

    def relabel(self, manifest: Mapping[str, Any], known: SecretVersion) -> WriteResult | None:
        """One JSON patch of our labels and annotations, conditional on the uid we wrote; None
        when it does not apply (the Secret is gone, replaced, or lost its labels or annotations).

        Not an apply: an apply without the data would remove the data keys we own. The patch's
        `add` sets each rendered key (RFC 6902 §4.1: it replaces a member that exists). The keys
        we no longer render are then removed where nobody else owns them, as an apply would
        (`_unrendered`), conditional on the version just patched; the field manager's `Update`
        entry it leaves is handed to our apply at the next whole write (`_handover`).
        """
        secret = _marked(manifest)
        meta = secret["metadata"]
        op = SecretOp("relabel", meta["namespace"], meta["name"])
        patch: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": known.uid}]
        patch += [
            {"op": "add", "path": _pointer(part, key), "value": value}
            for part in ("labels", "annotations")
            for key, value in meta[part].items()
        ]
        path = secret_path(op.namespace, op.name)
        response = self.send(op, "PATCH", path, patch, JSON_PATCH)
        status = response.status_code
        if status == HTTPStatus.NOT_FOUND or (
            status == HTTPStatus.UNPROCESSABLE_ENTITY and not _admission_refusal(response)
        ):
            logger.info("%s: not the Secret we wrote (%d); writing it whole", op, status)
            return None
        if status != HTTPStatus.OK:
            raise self._refused(op, response, ForeignSecretError)
        live = json_object(response)
        stale = _unrendered(secret, live)
        if stale:
            version = (live.get("metadata") or {}).get("resourceVersion")
            removal = [{"op": "test", "path": "/metadata/resourceVersion", "value": version}]
            removal += [{"op": "remove", "path": _pointer(part, key)} for part, key in stale]
            response = self.send(op, "PATCH", path, removal, JSON_PATCH)
            if response.status_code == HTTPStatus.OK:
                live = json_object(response)
            else:
                logger.info("%s: keys no longer rendered not removed (%d)", op, response.status_code)
        return _result(op, Outcome.UPDATED, live)

    def delete(self, namespace: str, name: str, known: SecretVersion) -> bool:
        """One DELETE, conditional on the uid we wrote; the admission policy refuses a Secret
        without our annotation."""
        op = SecretOp("delete", namespace, name)
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": known.uid}}
        response = self.send(op, "DELETE", secret_path(namespace, name), options)
        if response.status_code in (HTTPStatus.OK, HTTPStatus.ACCEPTED):
            logger.info("%s: deleted", op)
            return True
        if response.status_code == HTTPStatus.NOT_FOUND:
            return False
        if response.status_code == HTTPStatus.CONFLICT:
            raise NotManagedError(
                f"{op} in {self.description}: replaced since we wrote it (uid {known.uid}); not deleting it"
            )
        raise self._refused(op, response, NotManagedError)

    def _prove(self, op: SecretOp, secret: Mapping[str, Any], managers: set[str]) -> str:
        """The resourceVersion of the Secret once a JSON patch proved it tbot's or ours for this
        cluster; "" if it is gone. Raises ForeignSecretError when neither patch applies.

        A JSON patch applies whole or not at all (RFC 6902 §5), so its `test` operations check the
        cluster annotations and its `remove` of tbot's version annotation (or ours, added back)
        checks the owner, without a read. The tbot patch also does what tbot does on each write:
        it replaces every label (a templated label that stopped rendering goes).
        """
        tbots, mine = _proofs(secret)
        for patch in [tbots, mine] if TBOT_FIELD_MANAGER in managers else [mine, tbots]:
            response = self.send(op, "PATCH", secret_path(op.namespace, op.name), patch, JSON_PATCH)
            if response.status_code == HTTPStatus.OK:
                logger.info("%s: %s; taking it over", op, "tbot's" if patch is tbots else "ours")
                return str((json_object(response).get("metadata") or {}).get("resourceVersion", ""))
            if response.status_code == HTTPStatus.NOT_FOUND:
                return ""
            if response.status_code != HTTPStatus.UNPROCESSABLE_ENTITY:
                raise self._refused(op, response, ForeignSecretError)
        raise ForeignSecretError(
            f"{op} in {self.description}: a Secret of that name exists and is not one teleport-argocd or "
            "tbot wrote for this cluster, so it is left untouched. Delete or rename it, or choose "
            "another secret_name_prefix"
        )

    def _handed_over(self, op: SecretOp, secret: Mapping[str, Any], live: dict[str, Any]) -> dict[str, Any]:
        """The applied Secret, with what others still co-own of ours handed to our apply alone.

        The apply's answer shows the managers: tbot's, our update-based writer's and
        `before-first-apply` entries are dropped, and keys an older writer listed in
        `MANAGED_KEYS_ANNOTATION` that we no longer render are removed, with tbot's version
        annotation and that annotation itself. One JSON patch, only if the Secret is still the
        version we applied; if it is not, the next write's answer shows what is left.
        """
        patch = _handover(secret, live)
        if patch is None:
            return live
        response = self.send(op, "PATCH", secret_path(op.namespace, op.name), patch, JSON_PATCH)
        if response.status_code == HTTPStatus.OK:
            return json_object(response)
        logger.info(
            "%s: co-owners not handed over (%d); the next write tries again", op, response.status_code
        )
        return live

    def _refused(self, op: SecretOp, response: Response, refusal: type[DestinationError]) -> DestinationError:
        """`refusal` when the admission policy denied the request (the Secret is not ours), else
        the error for the status."""
        message = status_message(response)
        if _admission_refusal(response):
            hint = (
                ". Delete or rename it, or choose another secret_name_prefix"
                if refusal is ForeignSecretError
                else ""
            )
            return refusal(
                f"{op} in {self.description}: refused by the admission policy, the Secret there is not "
                f"teleport-argocd's or tbot's for this cluster ({message}); it is left untouched{hint}"
            )
        return self.api.error(op, response)


def _admission_refusal(response: Response) -> bool:
    """Whether the admission policy (not the request itself) refused a request."""
    return response.status_code in (401, 403, 422) and "ValidatingAdmissionPolicy" in status_message(response)


def _result(op: SecretOp, action: Outcome, live: Mapping[str, Any]) -> WriteResult:
    meta = live.get("metadata") or {}
    version = SecretVersion(meta.get("uid", ""), meta.get("resourceVersion", ""))
    logger.debug("%s: %s (resourceVersion %s)", op, action, version.resource_version)
    return WriteResult(op.namespace, op.name, action, version, op.requests)


def _proofs(secret: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The JSON patches that apply only to a Secret for this cluster that is tbot's, or ours."""
    meta = secret["metadata"]
    annotations = meta["annotations"]
    tests = [
        {"op": "test", "path": _pointer("annotations", key), "value": annotations[key]}
        for key in (TELEPORT_CLUSTER_ANNOTATION, KUBE_CLUSTER_ANNOTATION)
        if key in annotations
    ]
    ours = {
        "op": "add",
        "path": _pointer("annotations", VERSION_ANNOTATION),
        "value": annotations[VERSION_ANNOTATION],
    }
    tbots = [
        *tests,
        {"op": "remove", "path": _pointer("annotations", TBOT_VERSION_ANNOTATION)},
        ours,
        # "add" replaces the member when it exists (RFC 6902 §4.1) and cannot fail when it does not.
        {"op": "add", "path": "/metadata/labels", "value": dict(meta.get("labels") or {})},
    ]
    mine = [*tests, {"op": "remove", "path": _pointer("annotations", VERSION_ANNOTATION)}, ours]
    return tbots, mine


def _handover(secret: Mapping[str, Any], live: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The JSON patch that hands what others co-own of the applied Secret `live` to our apply
    alone, conditional on its resourceVersion; None when nothing is co-owned."""
    meta = live.get("metadata") or {}
    entries = meta.get("managedFields") or []
    kept = [e for e in entries if not _legacy(e)]
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    ours = secret["metadata"]
    stale: list[tuple[str, str]] = []
    if MANAGED_KEYS_ANNOTATION in annotations:
        listed = managed_keys(annotations)
        stale += [("labels", k) for k in listed.get("labels", ()) if k in labels and k not in ours["labels"]]
        stale += [
            ("annotations", k)
            for k in listed.get("annotations", ())
            if k in annotations and k not in ours["annotations"] and k != MANAGED_KEYS_ANNOTATION
        ]
        stale.append(("annotations", MANAGED_KEYS_ANNOTATION))
    if TBOT_VERSION_ANNOTATION in annotations:
        stale.append(("annotations", TBOT_VERSION_ANNOTATION))
    stale += _unrendered(secret, live)
    if kept == entries and not stale:
        return None
    patch: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")}
    ]
    if kept != entries and kept:
        patch.append({"op": "replace", "path": "/metadata/managedFields", "value": kept})
    patch += [{"op": "remove", "path": _pointer(part, key)} for part, key in dict.fromkeys(stale)]
    return patch


def _unrendered(secret: Mapping[str, Any], live: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The labels and annotations of `live` that `secret` does not render and that only our field
    manager owns (its apply or a relabel's update): what an apply of `secret` alone would remove.
    A key with no owner, or with another, stays, as it would under an apply."""
    meta = live.get("metadata") or {}
    rendered = secret["metadata"]
    unrendered = [
        (part, key)
        for part in ("labels", "annotations")
        for key in meta.get(part) or {}
        if key not in rendered[part]
    ]
    if not unrendered:  # the usual write: nothing there that we do not render, no ownership to read
        return []
    owners: dict[tuple[str, str], set[str]] = {}
    for entry in meta.get("managedFields") or []:
        tracked = ((entry.get("fieldsV1") or {}).get("f:metadata")) or {}
        for part in ("labels", "annotations"):
            for field in tracked.get(f"f:{part}") or {}:
                if field.startswith("f:"):
                    owners.setdefault((part, field[2:]), set()).add(str(entry.get("manager")))
    return [(part, key) for part, key in unrendered if owners.get((part, key)) == {FIELD_MANAGER}]


def _marked(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest to apply: our version annotation marks it ours; no ownership list (the API
    server keeps ownership)."""
    meta = manifest["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != MANAGED_KEYS_ANNOTATION}
    annotations.setdefault(VERSION_ANNOTATION, __version__)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        **{k: v for k, v in manifest.items() if k not in ("apiVersion", "kind", "metadata")},
    }
    body["metadata"] = {**meta, "labels": dict(meta.get("labels") or {}), "annotations": annotations}
    return body


def _legacy(entry: Mapping[str, Any]) -> bool:
    """A managedFields entry whose ownership ends once we apply the Secret (see TBOT_FIELD_MANAGER)."""
    manager = entry.get("manager")
    return manager in (TBOT_FIELD_MANAGER, BEFORE_FIRST_APPLY) or (
        manager == FIELD_MANAGER and entry.get("operation") == "Update"
    )


def _conflicting_managers(response: Response) -> set[str]:
    """The managers an apply conflict names (causes' messages: `conflict with "tbot" using v1`)."""
    try:
        causes = response.json()["details"]["causes"]
        return {str(c["message"]).split('"')[1] for c in causes if str(c.get("message", "")).count('"') >= 2}
    except (ValueError, KeyError, TypeError, IndexError):
        return set()


def _pointer(part: str, key: str) -> str:
    """A JSON pointer (RFC 6901) to a label or annotation key."""
    return f"/metadata/{part}/" + key.replace("~", "~0").replace("/", "~1")
