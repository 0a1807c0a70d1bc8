"""Writing Argo CD cluster Secrets into the destination cluster: by name, never blindly, one request each.

Two modes, per destination (`write_mode`):

- `apply` (the default): each create or update is one server-side apply (`PATCH`,
  `application/apply-patch+yaml`, field manager `teleport-argocd`), and nothing is read first.
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
- `read-first`, for clusters without admission policies: a renewal is one PUT carrying the
  resourceVersion of our last write; a 409 or 404 reads the Secret, checks it is ours or tbot's,
  merges and writes again, like client-go's `retry.RetryOnConflict`. Which label and annotation
  keys are ours is recorded on the Secret (`MANAGED_KEYS_ANNOTATION`). It needs `get`, which
  lets the functions read every Secret in the namespace.

Requests go through urllib3 (botocore's own HTTP client, so already in the layer), one pool of
keep-alive connections per store: the writer is CPU-bound, not network-bound, and on the same
bench urllib3 spends about half the CPU per request httpx does (bench/renewal_bench.py).

This is the one place urllib3, PyYAML and botocore errors of a destination become ours.
"""

from __future__ import annotations

import json
import logging
import math
import random
import ssl
import threading
import time
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode, urlsplit

import urllib3
import yaml

from teleport_argocd import __version__
from teleport_argocd.applications import Application, from_manifest
from teleport_argocd.config.types import Destination, EksDestination
from teleport_argocd.errors import (
    DestinationConflict,
    DestinationError,
    DestinationForbidden,
    DestinationRejected,
    DestinationUnreachable,
    ForeignSecretError,
    KubeconfigError,
    NotManagedError,
)
from teleport_argocd.kubeconfig import ClusterAccess, cluster_access, tls_context
from teleport_argocd.model import (
    KUBE_CLUSTER_ANNOTATION,
    MANAGED_KEYS_ANNOTATION,
    TBOT_VERSION_ANNOTATION,
    TELEPORT_CLUSTER_ANNOTATION,
    VERSION_ANNOTATION,
    SecretVersion,
)

if TYPE_CHECKING:
    import boto3

logger = logging.getLogger(__name__)

USER_AGENT = f"teleport-argocd/{__version__}"
FIELD_MANAGER = "teleport-argocd"
APPLY_PATCH = "application/apply-patch+yaml"
JSON_PATCH = "application/json-patch+json"
WriteMode = Literal["apply", "read-first"]
# Who may still co-own fields of a Secret we apply: tbot's updates, this writer's updates from
# before it applied, and the API server's placeholder for fields set before the first apply.
# A takeover ends their ownership, else a key we stop rendering would stay (it has another owner).
TBOT_FIELD_MANAGER = "tbot"
BEFORE_FIRST_APPLY = "before-first-apply"
# Like client-go's retry.DefaultRetry: five attempts, 10 ms apart.
CONFLICT_ATTEMPTS = 5
CONFLICT_DELAY_SECONDS = 0.01
# 16 writer threads share one store; a few more for reads during a dry run.
MAX_CONNECTIONS = 32
# Applications carry their whole sync status (every resource they deploy): page through them.
APPLICATION_PAGE = 250


@dataclass(frozen=True)
class Retry:
    """How long to keep trying a request the API answered with 429 or 5xx, or never answered.

    Full-jitter exponential backoff (`base_delay` doubling up to `max_delay`), at most
    `attempts` requests and `budget` seconds in all; a 429's `Retry-After` is honoured up to
    `max_retry_after`, so one answer can neither stall a run nor use up the budget in one wait.
    """

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0
    budget: float = 10.0
    max_retry_after: float = 5.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass(frozen=True)
class WriteResult:
    """What `SecretStore.write` did to one Secret, and the version to pass to the next write."""

    namespace: str
    name: str
    action: Literal["created", "updated"]
    version: SecretVersion
    requests: int


def connect(destination: Destination, *, session: boto3.Session) -> SecretStore:
    """A store for the cluster where Argo CD runs, authenticated as `session`'s AWS identity."""
    if isinstance(destination, EksDestination):
        store = connect_eks(destination.cluster_name, destination.region, session=session)
    else:
        store = connect_kubeconfig(
            destination.secret_id, region=destination.region, context=destination.context, session=session
        )
    store.mode = destination.write_mode
    return store


def connect_eks(
    cluster_name: str, region: str, *, session: boto3.Session, eks_client: Any = None
) -> SecretStore:
    """An EKS cluster, found with `eks:DescribeCluster` and reached with a locally signed IAM token.

    `eks_client` defaults to one made from `session`; tests pass one whose DescribeCluster
    answer points at a local API server.
    """
    # botocore is heavy to import and only a connecting store needs it.
    from teleport_argocd import eks

    endpoint = eks.describe(cluster_name, eks_client or session.client("eks", region_name=region))
    access = ClusterAccess(
        server=endpoint.url.rstrip("/"),
        ssl_context=tls_context(endpoint.ca_pem),
        token=eks.TokenSource(cluster_name, region, session),
    )
    return SecretStore(access, description=f"EKS cluster {cluster_name}")


def connect_kubeconfig(
    secret_id: str, *, region: str | None, context: str | None, session: boto3.Session
) -> SecretStore:
    """A cluster reached with a kubeconfig (YAML or JSON) kept in Secrets Manager."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = session.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_id)
    except (ClientError, BotoCoreError) as exc:
        raise DestinationUnreachable(f"reading kubeconfig {secret_id}: {exc}") from exc
    try:
        kubeconfig = yaml.safe_load(value.get("SecretString") or value.get("SecretBinary") or "")
    except yaml.YAMLError:
        # Not the parser's message: it quotes the offending line, which may hold a credential.
        raise KubeconfigError(f"kubeconfig {secret_id} is neither YAML nor JSON") from None
    if not isinstance(kubeconfig, Mapping):
        raise KubeconfigError(f"kubeconfig {secret_id} is not a kubeconfig document")
    try:
        access = cluster_access(kubeconfig, context=context)
    except KubeconfigError as exc:
        raise KubeconfigError(f"kubeconfig {secret_id}: {exc}") from None
    return SecretStore(access, description=f"kubeconfig {secret_id}")


@dataclass
class _Op:
    """One public call: what it is about (for messages) and the requests it made."""

    verb: str
    namespace: str
    name: str
    requests: int = 0

    def __str__(self) -> str:
        return f"{self.verb} secret {self.namespace}/{self.name}"


class _ListOp(_Op):
    """Listing Argo CD Applications in one namespace."""

    def __str__(self) -> str:
        return f"{self.verb} applications.argoproj.io in namespace {self.namespace}"


@dataclass(frozen=True)
class _Response:
    """An API answer, read whole (so its connection is back in the pool) and kept as bytes."""

    status_code: int
    content: bytes = field(repr=False)
    headers: Mapping[str, str]
    reason_phrase: str

    def json(self) -> Any:
        return json.loads(self.content)


class SecretStore:
    """Secrets in one destination cluster, addressed by namespace and name; safe to share between threads.

    One failing Secret never affects the next call. `calls` counts API requests, so a
    benchmark can report Kubernetes requests per cluster.
    """

    def __init__(
        self,
        access: ClusterAccess,
        *,
        description: str,
        timeout: float = 10.0,
        retry: Retry = Retry(),
        mode: WriteMode = "apply",
    ) -> None:
        self.description = description
        self.retry = retry
        self.mode = mode
        self._token = access.token
        self._lock = threading.Lock()
        self._calls = 0
        self._server = access.server
        self._timeout = timeout
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        self._http = _pool_manager(access, urllib3.Timeout(connect=min(timeout, 5.0), read=timeout))

    @property
    def calls(self) -> int:
        """API requests made so far, retries included."""
        with self._lock:
            return self._calls

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret as the API returns it, or None if it does not exist."""
        return self._get(_Op("get", namespace, name))

    def write(self, manifest: Mapping[str, Any], known: SecretVersion | None) -> WriteResult:
        """Write a rendered Secret; `known` is the version our last write returned, None if we have none.

        Raises ForeignSecretError, never overwriting, when the Secret there is not ours or tbot's.
        """
        if self.mode == "apply":
            return self._write_applied(_marked(manifest), known)
        return self._write_read_first(manifest, known)

    def delete(self, namespace: str, name: str, known: SecretVersion) -> bool:
        """Delete a Secret we wrote; False if it is already gone.

        Raises NotManagedError for a Secret without our ownership annotation or with another
        uid than `known` (it was replaced since we wrote it).
        """
        if self.mode == "apply":
            return self._delete_unread(namespace, name, known)
        return self._delete_read_first(namespace, name, known)

    # -- apply mode: write without reading ----------------------------------------------

    def _write_applied(self, secret: dict[str, Any], known: SecretVersion | None) -> WriteResult:
        """One server-side apply; forced where the Secret is known to be ours."""
        meta = secret["metadata"]
        op = _Op("write", meta["namespace"], meta["name"])
        force, proven = known is not None, ""
        for attempt in range(CONFLICT_ATTEMPTS):
            if attempt:
                time.sleep(CONFLICT_DELAY_SECONDS)
            body = secret if not proven else {**secret, "metadata": {**meta, "resourceVersion": proven}}
            response = self._send(op, "PATCH", _path(op.namespace, op.name), body, APPLY_PATCH, force=force)
            status = response.status_code
            if status in (HTTPStatus.OK, HTTPStatus.CREATED):
                live = self._handed_over(op, secret, _json(response))
                action: Literal["created", "updated"] = (
                    "created" if status == HTTPStatus.CREATED else "updated"
                )
                return self._result(op, action, live)
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
        raise DestinationConflict(
            f"{op} in {self.description}: still modified by someone else after {CONFLICT_ATTEMPTS} attempts"
        )

    def _prove(self, op: _Op, secret: Mapping[str, Any], managers: set[str]) -> str:
        """The resourceVersion of the Secret once a JSON patch proved it tbot's or ours for this
        cluster; "" if it is gone. Raises ForeignSecretError when neither patch applies.

        A JSON patch applies whole or not at all (RFC 6902 §5), so its `test` operations check the
        cluster annotations and its `remove` of tbot's version annotation (or ours, added back)
        checks the owner, without a read. The tbot patch also does what tbot does on each write:
        it replaces every label (a templated label that stopped rendering goes).
        """
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
        for patch in [tbots, mine] if TBOT_FIELD_MANAGER in managers else [mine, tbots]:
            response = self._send(op, "PATCH", _path(op.namespace, op.name), patch, JSON_PATCH)
            if response.status_code == HTTPStatus.OK:
                logger.info("%s: %s; taking it over", op, "tbot's" if patch is tbots else "ours")
                return str((_json(response).get("metadata") or {}).get("resourceVersion", ""))
            if response.status_code == HTTPStatus.NOT_FOUND:
                return ""
            if response.status_code != HTTPStatus.UNPROCESSABLE_ENTITY:
                raise self._refused(op, response, ForeignSecretError)
        raise ForeignSecretError(
            f"{op} in {self.description}: a Secret of that name exists and is not one teleport-argocd or "
            "tbot wrote for this cluster, so it is left untouched. Delete or rename it, or choose "
            "another secret_name_prefix"
        )

    def _handed_over(self, op: _Op, secret: Mapping[str, Any], live: dict[str, Any]) -> dict[str, Any]:
        """The applied Secret, with what others still co-own of ours handed to our apply alone.

        The apply's answer shows the managers: tbot's, our update-based writer's and
        `before-first-apply` entries are dropped, and keys an older writer listed in
        `MANAGED_KEYS_ANNOTATION` that we no longer render are removed, with tbot's version
        annotation and that annotation itself. One JSON patch, only if the Secret is still the
        version we applied; if it is not, the next write's answer shows what is left.
        """
        meta = live.get("metadata") or {}
        entries = meta.get("managedFields") or []
        kept = [e for e in entries if not _legacy(e)]
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        ours = secret["metadata"]
        stale: list[tuple[str, str]] = []
        if MANAGED_KEYS_ANNOTATION in annotations:
            listed = _managed_keys(annotations)
            stale += [
                ("labels", k) for k in listed.get("labels", ()) if k in labels and k not in ours["labels"]
            ]
            stale += [
                ("annotations", k)
                for k in listed.get("annotations", ())
                if k in annotations and k not in ours["annotations"] and k != MANAGED_KEYS_ANNOTATION
            ]
            stale.append(("annotations", MANAGED_KEYS_ANNOTATION))
        if TBOT_VERSION_ANNOTATION in annotations:
            stale.append(("annotations", TBOT_VERSION_ANNOTATION))
        if kept == entries and not stale:
            return live
        patch: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")}
        ]
        if kept != entries and kept:
            patch.append({"op": "replace", "path": "/metadata/managedFields", "value": kept})
        patch += [{"op": "remove", "path": _pointer(part, key)} for part, key in dict.fromkeys(stale)]
        response = self._send(op, "PATCH", _path(op.namespace, op.name), patch, JSON_PATCH)
        if response.status_code == HTTPStatus.OK:
            return _json(response)
        logger.info(
            "%s: co-owners not handed over (%d); the next write tries again", op, response.status_code
        )
        return live

    def _result(self, op: _Op, action: Literal["created", "updated"], live: Mapping[str, Any]) -> WriteResult:
        meta = live.get("metadata") or {}
        version = SecretVersion(meta.get("uid", ""), meta.get("resourceVersion", ""))
        logger.info("%s: %s (resourceVersion %s)", op, action, version.resource_version)
        return WriteResult(op.namespace, op.name, action, version, op.requests)

    def _delete_unread(self, namespace: str, name: str, known: SecretVersion) -> bool:
        """One DELETE, conditional on the uid we wrote; the admission policy refuses a Secret
        without our annotation."""
        op = _Op("delete", namespace, name)
        options = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": known.uid}}
        response = self._send(op, "DELETE", _path(namespace, name), options)
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

    def _refused(self, op: _Op, response: _Response, refusal: type[DestinationError]) -> DestinationError:
        """`refusal` when the admission policy denied the request (the Secret is not ours), else
        the error for the status."""
        message = _status_message(response)
        if response.status_code in (401, 403, 422) and "ValidatingAdmissionPolicy" in message:
            hint = (
                ". Delete or rename it, or choose another secret_name_prefix"
                if refusal is ForeignSecretError
                else ""
            )
            return refusal(
                f"{op} in {self.description}: refused by the admission policy, the Secret there is not "
                f"teleport-argocd's or tbot's for this cluster ({message}); it is left untouched{hint}"
            )
        return self._error(op, response)

    # -- read-first mode -------------------------------------------------------------------

    def _write_read_first(self, manifest: Mapping[str, Any], known: SecretVersion | None) -> WriteResult:
        """With `known`, one conditional PUT. Without, one POST. Anything else in the way (a
        conflict, a Secret deleted or already there) is read, checked and merged."""
        secret = _owned(manifest)
        meta = secret["metadata"]
        op = _Op("write", meta["namespace"], meta["name"])
        if known is not None and known.resource_version:
            body = {
                **secret,
                "metadata": {**meta, "uid": known.uid, "resourceVersion": known.resource_version},
            }
            response = self._send(op, "PUT", _path(op.namespace, op.name), body)
            if response.status_code == HTTPStatus.OK:
                return self._written(op, "updated", response, secret)
            if response.status_code not in (HTTPStatus.CONFLICT, HTTPStatus.NOT_FOUND):
                raise self._error(op, response)
            logger.info("%s: changed since our last write; reading it", op)
        elif known is None:
            response = self._send(op, "POST", _path(op.namespace), secret)
            if response.status_code in (HTTPStatus.OK, HTTPStatus.CREATED):
                return self._written(op, "created", response, secret)
            if response.status_code != HTTPStatus.CONFLICT:
                raise self._error(op, response)
        return self._write_over(op, secret)

    def apply(self, manifest: Mapping[str, Any]) -> WriteResult:
        """Read, then create or update: for callers that keep no `SecretVersion` (two requests)."""
        secret = _owned(manifest)
        meta = secret["metadata"]
        return self._write_over(_Op("write", meta["namespace"], meta["name"]), secret)

    def _delete_read_first(self, namespace: str, name: str, known: SecretVersion) -> bool:
        """Read, check, then delete conditional on the uid and resourceVersion checked, so a
        Secret that changed in between is checked again."""
        op = _Op("delete", namespace, name)
        for attempt in range(CONFLICT_ATTEMPTS):
            if attempt:
                time.sleep(CONFLICT_DELAY_SECONDS)
            current = self._get(op)
            if current is None:
                return False
            meta = current["metadata"]
            if not _ours(meta.get("annotations") or {}):
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
            response = self._send(op, "DELETE", _path(namespace, name), options)
            if response.status_code in (HTTPStatus.OK, HTTPStatus.ACCEPTED):
                logger.info("%s: deleted", op)
                return True
            if response.status_code == HTTPStatus.NOT_FOUND:
                return False
            if response.status_code != HTTPStatus.CONFLICT:
                raise self._error(op, response)
        raise DestinationConflict(
            f"{op} in {self.description}: still modified by someone else after {CONFLICT_ATTEMPTS} attempts"
        )

    def list_applications(self, namespace: str) -> list[Application]:
        """The Argo CD Applications in `namespace`, for the pruning guard: the one read beyond Secrets,
        `list` on applications.argoproj.io there (no other verb, no other resource).

        Page by page (`limit`, `continue`). Raises DestinationForbidden without that grant, and
        DestinationError for any answer that is not a list of readable Applications (a missing CRD
        is a 404): the guard then holds every deletion rather than judge from part of the list.
        """
        op = _ListOp("list", namespace, "")
        found: list[Application] = []
        token = ""
        while True:
            query = {"limit": str(APPLICATION_PAGE), **({"continue": token} if token else {})}
            path = f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/applications?{urlencode(query)}"
            response = self._send(op, "GET", path)
            if response.status_code != HTTPStatus.OK:
                raise self._error(op, response)
            document = _json(response)
            items = document.get("items")
            if document.get("kind") != "ApplicationList" or not isinstance(items, list):
                raise DestinationError(f"{op} in {self.description}: the answer is not an ApplicationList")
            try:
                found += [from_manifest(item) for item in items]
            except ValueError as exc:
                raise DestinationError(f"{op} in {self.description}: {exc}") from None
            token = str((document.get("metadata") or {}).get("continue") or "")
            if not token:
                return found

    def close(self) -> None:
        self._http.clear()

    def __enter__(self) -> SecretStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the write protocol -------------------------------------------------------

    def _write_over(self, op: _Op, secret: dict[str, Any]) -> WriteResult:
        """Read what is there and write on top of it: create if absent, else check and merge."""
        meta = secret["metadata"]
        for attempt in range(CONFLICT_ATTEMPTS):
            if attempt:
                time.sleep(CONFLICT_DELAY_SECONDS)
            current = self._get(op)
            if current is None:
                response = self._send(op, "POST", _path(op.namespace), secret)
                action: Literal["created", "updated"] = "created"
            else:
                self._check_adoptable(op, current, meta)
                response = self._send(op, "PUT", _path(op.namespace, op.name), merge(current, secret))
                action = "updated"
            if response.status_code in (HTTPStatus.OK, HTTPStatus.CREATED):
                return self._written(op, action, response, secret)
            if response.status_code not in (HTTPStatus.CONFLICT, HTTPStatus.NOT_FOUND) or (
                current is None and response.status_code == HTTPStatus.NOT_FOUND  # no such namespace
            ):
                raise self._error(op, response)
            logger.info("%s: changed since it was read; reading it again", op)
        raise DestinationConflict(
            f"{op} in {self.description}: still modified by someone else after {CONFLICT_ATTEMPTS} attempts"
        )

    def _check_adoptable(self, op: _Op, current: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        """Refuse to write over a Secret that is neither ours nor tbot's, for the cluster we render."""
        theirs = current["metadata"].get("annotations") or {}
        ours = meta.get("annotations") or {}
        if not _ours(theirs) and TBOT_VERSION_ANNOTATION not in theirs:
            raise ForeignSecretError(
                f"{op} in {self.description}: a Secret of that name exists and was written by neither "
                "teleport-argocd nor tbot, so it is left untouched. Delete or rename it, or choose "
                "another secret_name_prefix"
            )
        for key in (TELEPORT_CLUSTER_ANNOTATION, KUBE_CLUSTER_ANNOTATION):
            if theirs.get(key) != ours.get(key):
                raise ForeignSecretError(
                    f"{op} in {self.description}: the Secret there was written for another cluster "
                    f"({key}={theirs.get(key)!r}, we render {ours.get(key)!r}), so it is left untouched. "
                    "Delete it, or choose another secret_name_prefix"
                )

    def _written(
        self,
        op: _Op,
        action: Literal["created", "updated"],
        response: _Response,
        secret: Mapping[str, Any],
    ) -> WriteResult:
        meta = _json(response).get("metadata") or {}
        # A Secret that also carries others' keys cannot be replaced blind next time (see SecretVersion).
        blind_ok = _metadata_keys(meta) == _metadata_keys(secret["metadata"])
        version = SecretVersion(meta.get("uid", ""), meta.get("resourceVersion", "") if blind_ok else "")
        logger.info("%s: %s (resourceVersion %s)", op, action, meta.get("resourceVersion"))
        return WriteResult(op.namespace, op.name, action, version, op.requests)

    # -- the boundary --------------------------------------------------------------

    def _get(self, op: _Op) -> dict[str, Any] | None:
        response = self._send(op, "GET", _path(op.namespace, op.name))
        if response.status_code == HTTPStatus.NOT_FOUND:
            return None
        if response.status_code != HTTPStatus.OK:
            raise self._error(op, response)
        return _json(response)

    def _send(
        self,
        op: _Op,
        method: str,
        path: str,
        body: Mapping[str, Any] | list[Any] | None = None,
        content_type: str = "application/json",
        *,
        force: bool = False,
    ) -> _Response:
        """One API call: counted, retried while the API is overloaded or unreachable, errors mapped.

        Returns the answer for the caller to judge, except 429/5xx after the last attempt and
        transport failures, which raise DestinationUnreachable. An apply is sent as JSON, which
        is YAML.
        """
        query = f"?fieldManager={FIELD_MANAGER}" if method in ("POST", "PUT", "PATCH") else ""
        if force:
            query += "&force=true"
        content = json.dumps(body).encode() if body is not None else None
        deadline = time.monotonic() + self.retry.budget
        attempt = 0
        while True:
            headers = dict(self._headers)
            if content is not None:
                headers["Content-Type"] = content_type
            if self._token is not None:
                headers["Authorization"] = f"Bearer {self._token()}"
            self._count(op)
            try:
                answer = self._http.urlopen(
                    method,
                    self._server + path + query,
                    body=content,
                    headers=headers,
                    retries=False,  # retried here, with our backoff and budget
                    redirect=False,
                    pool_timeout=self._timeout,
                )
                response = _Response(answer.status, answer.data, answer.headers, answer.reason or "")
            except urllib3.exceptions.HTTPError as exc:
                if _tls_refused(exc) or not self._wait(attempt, None, deadline):
                    raise DestinationUnreachable(
                        f"{op}: cannot reach {self.description}: {_reason(exc)}"
                    ) from None
                logger.info("%s: %s unanswered (%s); retrying", op, method, type(exc).__name__)
            else:
                status = response.status_code
                if status != HTTPStatus.TOO_MANY_REQUESTS and status < 500:
                    return response
                if not self._wait(attempt, _retry_after(response), deadline):
                    raise DestinationUnreachable(
                        f"{op} in {self.description}: {status} {_status_message(response)} "
                        f"(after {attempt + 1} attempts)"
                    )
                logger.info("%s: %s answered %d; retrying", op, method, status)
            attempt += 1

    def _wait(self, attempt: int, retry_after: float | None, deadline: float) -> bool:
        """Sleep before the next attempt; False when there is none within the attempts and budget."""
        if attempt + 1 >= self.retry.attempts:
            return False
        delay = self.retry.delay(attempt, retry_after)
        if time.monotonic() + delay > deadline:
            return False
        time.sleep(delay)
        return True

    def _count(self, op: _Op) -> None:
        op.requests += 1
        with self._lock:
            self._calls += 1

    def _error(self, op: _Op, response: _Response) -> DestinationError:
        status = response.status_code
        cls: type[DestinationError]
        if status in (401, 403):
            cls = DestinationForbidden
        elif status in (400, 404, 422):
            cls = DestinationRejected
        elif status == 409:
            cls = DestinationConflict
        else:
            cls = DestinationError
        return cls(f"{op} in {self.description}: {status} {_status_message(response)}")


def _pool_manager(access: ClusterAccess, timeout: urllib3.Timeout) -> urllib3.PoolManager:
    """Keep-alive connections to the API server, through the kubeconfig's `proxy-url` if it has one,
    else through the proxy the environment names for it (`HTTPS_PROXY`, `NO_PROXY`), as client-go does."""
    options: dict[str, Any] = {
        "num_pools": 2,
        "maxsize": MAX_CONNECTIONS,
        "block": True,
        "timeout": timeout,
        "ssl_context": access.ssl_context,
    }
    if access.server_name:
        options["server_hostname"] = access.server_name  # sent as SNI and verified
    if access.ssl_context.verify_mode == ssl.CERT_NONE:
        # The kubeconfig asked for it (insecure-skip-tls-verify); kubectl does not warn on every request.
        warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
    url = urlsplit(access.server)
    proxy = access.proxy
    if proxy is None and not urllib.request.proxy_bypass(url.hostname or ""):
        environment = urllib.request.getproxies()
        proxy = environment.get(url.scheme) or environment.get("all")
    if proxy is None:
        return urllib3.PoolManager(**options)
    try:
        return urllib3.ProxyManager(proxy, **options)
    except urllib3.exceptions.ProxySchemeUnknown:
        raise KubeconfigError(
            f"proxy scheme {urlsplit(proxy).scheme!r} is not supported: use http or https"
        ) from None


def merge(current: Mapping[str, Any], secret: Mapping[str, Any]) -> dict[str, Any]:
    """The update body: our Secret on top of the one in the cluster.

    Labels and annotations others added stay (Argo CD adds its own); ours that we no longer
    render (listed in the live ownership annotation) go. Taking a tbot Secret over, its labels
    are replaced as tbot replaces them, and tbot's version annotation goes. Data and type are
    ours. The live metadata, uid and resourceVersion included, makes the update conditional and
    keeps owner references, finalizers and the like.
    """
    live = {k: v for k, v in current["metadata"].items() if k != "managedFields"}
    ours = secret["metadata"]
    previous = _managed_keys(live.get("annotations") or {})
    live_annotations = live.get("annotations") or {}
    tbots = TBOT_VERSION_ANNOTATION in live_annotations and not _ours(live_annotations)
    metadata = {}
    for part in ("labels", "annotations"):
        mine = ours.get(part) or {}
        kept = {
            key: value
            for key, value in (live.get(part) or {}).items()
            if key not in mine
            and key not in previous.get(part, ())
            and key != TBOT_VERSION_ANNOTATION
            and not (tbots and part == "labels")  # tbot replaces every label on each write
        }
        metadata[part] = {**kept, **mine}
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


def _ours(annotations: Mapping[str, str]) -> bool:
    """Whether a Secret carries our mark: our version annotation, or an older writer's ownership list."""
    return VERSION_ANNOTATION in annotations or MANAGED_KEYS_ANNOTATION in annotations


def _legacy(entry: Mapping[str, Any]) -> bool:
    """A managedFields entry whose ownership ends once we apply the Secret (see TBOT_FIELD_MANAGER)."""
    manager = entry.get("manager")
    return manager in (TBOT_FIELD_MANAGER, BEFORE_FIRST_APPLY) or (
        manager == FIELD_MANAGER and entry.get("operation") == "Update"
    )


def _conflicting_managers(response: _Response) -> set[str]:
    """The managers an apply conflict names (causes' messages: `conflict with "tbot" using v1`)."""
    try:
        causes = response.json()["details"]["causes"]
        return {str(c["message"]).split('"')[1] for c in causes if str(c.get("message", "")).count('"') >= 2}
    except (ValueError, KeyError, TypeError, IndexError):
        return set()


def _pointer(part: str, key: str) -> str:
    """A JSON pointer (RFC 6901) to a label or annotation key."""
    return f"/metadata/{part}/" + key.replace("~", "~0").replace("/", "~1")


def _managed_keys(annotations: Mapping[str, str]) -> dict[str, list[str]]:
    """The keys a live Secret's ownership annotation lists; nothing if absent or unreadable."""
    try:
        owned = json.loads(annotations.get(MANAGED_KEYS_ANNOTATION, "{}"))
    except ValueError:
        return {}
    if not isinstance(owned, dict):
        return {}
    return {
        part: [k for k in owned.get(part) or () if isinstance(k, str)] for part in ("labels", "annotations")
    }


def _metadata_keys(meta: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    return frozenset(meta.get("labels") or {}), frozenset(meta.get("annotations") or {})


def _path(namespace: str, name: str = "") -> str:
    collection = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{collection}/{name}" if name else collection


def _json(response: _Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError:
        raise DestinationError(f"unexpected answer from the API server ({response.status_code})") from None
    if not isinstance(document, dict):
        raise DestinationError(f"unexpected answer from the API server ({response.status_code})")
    return document


def _status_message(response: _Response) -> str:
    """The API's own explanation (a Status object's message), short; never a request body."""
    try:
        message = response.json()["message"]
    except (ValueError, KeyError, TypeError):
        message = response.reason_phrase or "no reason given"
    return str(message)[:300]


def _retry_after(response: _Response) -> float | None:
    """`Retry-After` in seconds, or None to back off as usual. The API server sends whole seconds
    (RFC 9110 §10.2.3 also allows an HTTP date, which we do not follow); anything not a
    non-negative number is ignored rather than trusted (`Retry.delay` caps the rest)."""
    try:
        seconds = float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None
    return None if math.isnan(seconds) or seconds < 0 else seconds


def _tls_refused(exc: urllib3.exceptions.HTTPError) -> bool:
    """Whether TLS verification failed: a wrong CA or name does not heal with a retry.

    urllib3 wraps the ssl module's error in its own, as an argument or as the context."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        cause = pending.pop()
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        if any(cause is s for s in seen):
            continue
        seen.append(cause)
        pending += [c for c in (cause.__cause__, cause.__context__) if c is not None]
        pending += [a for a in cause.args if isinstance(a, BaseException)]
    return False


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    return str(exc) or type(exc).__name__
