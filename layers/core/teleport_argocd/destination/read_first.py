"""The `read-first` write mode, for clusters without admission policies: read, check, merge, write.

A renewal is one PUT carrying the resourceVersion of our last write; a 409 or 404 reads the
Secret, checks it is ours or tbot's, merges and writes again, like client-go's
`retry.RetryOnConflict`. Which label and annotation keys are ours is recorded on the Secret
(`MANAGED_KEYS_ANNOTATION`). It needs `get`, which lets the functions read every Secret in the
namespace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from teleport_argocd.destination.http import Response, json_object
from teleport_argocd.destination.writer import (
    SecretOp,
    Writer,
    WriteResult,
    attempts,
    managed_keys,
    ours,
    secret_path,
)
from teleport_argocd.errors import ForeignSecretError, NotManagedError
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


class ReadFirstWriter(Writer):
    """Writes that read what is there whenever our last write is not what is there."""

    def write(self, manifest: Mapping[str, Any], known: SecretVersion | None) -> WriteResult:
        """With `known`, one conditional PUT. Without, one POST. Anything else in the way (a
        conflict, a Secret deleted or already there) is read, checked and merged."""
        secret = _owned(manifest)
        meta = secret["metadata"]
        op = SecretOp("write", meta["namespace"], meta["name"])
        if known is not None and known.resource_version:
            body = {
                **secret,
                "metadata": {**meta, "uid": known.uid, "resourceVersion": known.resource_version},
            }
            response = self.send(op, "PUT", secret_path(op.namespace, op.name), body)
            if response.status_code == HTTPStatus.OK:
                return self._written(op, Outcome.UPDATED, response, secret)
            if response.status_code not in (HTTPStatus.CONFLICT, HTTPStatus.NOT_FOUND):
                raise self.api.error(op, response)
            logger.info("%s: changed since our last write; reading it", op)
        elif known is None:
            response = self.send(op, "POST", secret_path(op.namespace), secret)
            if response.status_code in (HTTPStatus.OK, HTTPStatus.CREATED):
                return self._written(op, Outcome.CREATED, response, secret)
            if response.status_code != HTTPStatus.CONFLICT:
                raise self.api.error(op, response)
        return self._write_over(op, secret)

    def relabel(self, manifest: Mapping[str, Any], known: SecretVersion) -> WriteResult | None:
        """Read the Secret; if it is still the version we last wrote, write it back with our
        labels and annotations and its own `config` (two requests). None otherwise, or when the
        write meets a change: the caller writes the Secret whole, as before."""
        secret = _owned(manifest)
        meta = secret["metadata"]
        op = SecretOp("relabel", meta["namespace"], meta["name"])
        current = self.get(op)
        live = (current or {}).get("metadata") or {}
        config = ((current or {}).get("data") or {}).get("config")
        if (
            current is None
            or config is None
            or SecretVersion(live.get("uid", ""), live.get("resourceVersion", "")) != known
        ):
            logger.info("%s: not the version we wrote; writing it whole", op)
            return None
        self._check_adoptable(op, current, meta)
        kept = {**secret, "data": {**(secret.get("data") or {}), "config": config}}
        response = self.send(op, "PUT", secret_path(op.namespace, op.name), merge(current, kept))
        if response.status_code == HTTPStatus.OK:
            return self._written(op, Outcome.UPDATED, response, secret)
        if response.status_code not in (HTTPStatus.CONFLICT, HTTPStatus.NOT_FOUND):
            raise self.api.error(op, response)
        return None

    def apply(self, manifest: Mapping[str, Any]) -> WriteResult:
        """Read, then create or update: for callers that keep no `SecretVersion` (two requests)."""
        secret = _owned(manifest)
        meta = secret["metadata"]
        return self._write_over(SecretOp("write", meta["namespace"], meta["name"]), secret)

    def delete(self, namespace: str, name: str, known: SecretVersion) -> bool:
        """Read, check, then delete conditional on the uid and resourceVersion checked, so a
        Secret that changed in between is checked again."""
        op = SecretOp("delete", namespace, name)
        for _ in attempts():
            current = self.get(op)
            if current is None:
                return False
            meta = current["metadata"]
            if not ours(meta.get("annotations") or {}):
                raise NotManagedError(
                    f"{op} in {self.description}: not written by teleport-argocd "
                    f"(no {VERSION_ANNOTATION} annotation); not deleting it"
                )
            if meta.get("uid") != known.uid:
                raise NotManagedError(
                    f"{op} in {self.description}: replaced since we wrote it "
                    f"(uid {meta.get('uid')}, we wrote {known.uid}); not deleting it"
                )
            options = {
                "kind": "DeleteOptions",
                "apiVersion": "v1",
                "preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]},
            }
            response = self.send(op, "DELETE", secret_path(namespace, name), options)
            if response.status_code in (HTTPStatus.OK, HTTPStatus.ACCEPTED):
                logger.info("%s: deleted", op)
                return True
            if response.status_code == HTTPStatus.NOT_FOUND:
                return False
            if response.status_code != HTTPStatus.CONFLICT:
                raise self.api.error(op, response)
        raise self.conflicted(op)

    def get(self, op: SecretOp) -> dict[str, Any] | None:
        """The Secret as the API returns it, or None if it does not exist."""
        response = self.send(op, "GET", secret_path(op.namespace, op.name))
        if response.status_code == HTTPStatus.NOT_FOUND:
            return None
        if response.status_code != HTTPStatus.OK:
            raise self.api.error(op, response)
        return json_object(response)

    def _write_over(self, op: SecretOp, secret: dict[str, Any]) -> WriteResult:
        """Read what is there and write on top of it: create if absent, else check and merge."""
        meta = secret["metadata"]
        for _ in attempts():
            current = self.get(op)
            if current is None:
                response = self.send(op, "POST", secret_path(op.namespace), secret)
                action = Outcome.CREATED
            else:
                self._check_adoptable(op, current, meta)
                response = self.send(op, "PUT", secret_path(op.namespace, op.name), merge(current, secret))
                action = Outcome.UPDATED
            if response.status_code in (HTTPStatus.OK, HTTPStatus.CREATED):
                return self._written(op, action, response, secret)
            if response.status_code not in (HTTPStatus.CONFLICT, HTTPStatus.NOT_FOUND) or (
                current is None and response.status_code == HTTPStatus.NOT_FOUND  # no such namespace
            ):
                raise self.api.error(op, response)
            logger.info("%s: changed since it was read; reading it again", op)
        raise self.conflicted(op)

    def _check_adoptable(self, op: SecretOp, current: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        """Refuse to write over a Secret that is neither ours nor tbot's, for the cluster we render."""
        theirs = current["metadata"].get("annotations") or {}
        mine = meta.get("annotations") or {}
        if not ours(theirs) and TBOT_VERSION_ANNOTATION not in theirs:
            raise ForeignSecretError(
                f"{op} in {self.description}: a Secret of that name exists and was written by neither "
                "teleport-argocd nor tbot, so it is left untouched. Delete or rename it, or choose "
                "another secret_name_prefix"
            )
        for key in (TELEPORT_CLUSTER_ANNOTATION, KUBE_CLUSTER_ANNOTATION):
            if theirs.get(key) != mine.get(key):
                raise ForeignSecretError(
                    f"{op} in {self.description}: the Secret there was written for another cluster "
                    f"({key}={theirs.get(key)!r}, we render {mine.get(key)!r}), so it is left untouched. "
                    "Delete it, or choose another secret_name_prefix"
                )

    def _written(
        self,
        op: SecretOp,
        action: Outcome,
        response: Response,
        secret: Mapping[str, Any],
    ) -> WriteResult:
        meta = json_object(response).get("metadata") or {}
        # A Secret that also carries others' keys cannot be replaced blind next time (see SecretVersion).
        blind_ok = _metadata_keys(meta) == _metadata_keys(secret["metadata"])
        version = SecretVersion(meta.get("uid", ""), meta.get("resourceVersion", "") if blind_ok else "")
        logger.debug("%s: %s (resourceVersion %s)", op, action, meta.get("resourceVersion"))
        return WriteResult(op.namespace, op.name, action, version, op.requests)


def merge(current: Mapping[str, Any], secret: Mapping[str, Any]) -> dict[str, Any]:
    """The update body: our Secret on top of the one in the cluster.

    Labels and annotations others added stay (Argo CD adds its own); ours that we no longer
    render (listed in the live ownership annotation) go. Taking a tbot Secret over, its labels
    are replaced as tbot replaces them, and tbot's version annotation goes. Data and type are
    ours. The live metadata, uid and resourceVersion included, makes the update conditional and
    keeps owner references, finalizers and the like.
    """
    live = {k: v for k, v in current["metadata"].items() if k != "managedFields"}
    mine = secret["metadata"]
    previous = managed_keys(live.get("annotations") or {})
    live_annotations = live.get("annotations") or {}
    tbots = TBOT_VERSION_ANNOTATION in live_annotations and not ours(live_annotations)
    metadata = {}
    for part in ("labels", "annotations"):
        rendered = mine.get(part) or {}
        kept = {
            key: value
            for key, value in (live.get(part) or {}).items()
            if key not in rendered
            and key not in previous.get(part, ())
            and key != TBOT_VERSION_ANNOTATION
            and not (tbots and part == "labels")  # tbot replaces every label on each write
        }
        metadata[part] = {**kept, **rendered}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret.get("type", current.get("type")),
        "metadata": {**live, **metadata},
        "data": dict(secret.get("data") or {}),
    }


def _owned(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest with our ownership annotation: every label and annotation key we render."""
    meta = manifest["metadata"]
    labels = dict(meta.get("labels") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != MANAGED_KEYS_ANNOTATION}
    owned = {"labels": sorted(labels), "annotations": sorted(annotations)}
    annotations[MANAGED_KEYS_ANNOTATION] = json.dumps(owned, separators=(",", ":"))
    return {**manifest, "metadata": {**meta, "labels": labels, "annotations": annotations}}


def _metadata_keys(meta: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(meta.get("labels") or {}), frozenset(meta.get("annotations") or {})
