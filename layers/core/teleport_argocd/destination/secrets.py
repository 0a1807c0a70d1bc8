"""Argo CD cluster Secrets in the destination cluster: by name, never blindly, one request each.

Two modes, per destination (`write_mode`): `apply` (the default, `destination.apply`) writes each
Secret with one server-side apply and reads nothing; `read-first` (`destination.read_first`), for
clusters without admission policies, reads, checks and merges whenever our last write is not what
is there. Either way a Secret that is neither ours nor tbot's is never overwritten. The store also
lists Argo CD Applications, the one read beyond Secrets, for the pruning guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from teleport_argocd.applications import Application, from_manifest
from teleport_argocd.config.types import WriteMode
from teleport_argocd.destination.apply import ApplyWriter
from teleport_argocd.destination.http import DEFAULT_RETRY, Client, Retry, json_object
from teleport_argocd.destination.kubeconfig import ClusterAccess
from teleport_argocd.destination.read_first import ReadFirstWriter
from teleport_argocd.destination.writer import SecretOp, WriteResult
from teleport_argocd.errors import DestinationError
from teleport_argocd.model import SecretVersion

# Applications carry their whole sync status (every resource they deploy): page through them.
APPLICATION_PAGE = 250


@dataclass
class _ListOp:
    """Listing Argo CD Applications in one namespace."""

    namespace: str
    requests: int = 0

    def __str__(self) -> str:
        return f"list applications.argoproj.io in namespace {self.namespace}"


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
        retry: Retry = DEFAULT_RETRY,
        mode: WriteMode = "apply",
    ) -> None:
        self.mode = mode
        self._api = Client(access, description=description, timeout=timeout, retry=retry)
        self._apply = ApplyWriter(self._api)
        self._read_first = ReadFirstWriter(self._api)

    @property
    def description(self) -> str:
        """The cluster, as messages name it."""
        return self._api.description

    @property
    def retry(self) -> Retry:
        """How long a request the API answered with 429 or 5xx, or never answered, is tried."""
        return self._api.retry

    @retry.setter
    def retry(self, retry: Retry) -> None:
        self._api.retry = retry

    @property
    def calls(self) -> int:
        """API requests made so far, retries included."""
        return self._api.calls

    @property
    def last_request(self) -> float:
        """When (`time.monotonic`) the store last sent a request, or was made if it has sent none."""
        return self._api.last_request

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Secret as the API returns it, or None if it does not exist."""
        return self._read_first.get(SecretOp("get", namespace, name))

    def write(self, manifest: Mapping[str, Any], known: SecretVersion | None) -> WriteResult:
        """Write a rendered Secret; `known` is the version our last write returned, None if we have none.

        Raises ForeignSecretError, never overwriting, when the Secret there is not ours or tbot's.
        """
        if self.mode == "apply":
            return self._apply.write(manifest, known)
        return self._read_first.write(manifest, known)

    def relabel(self, manifest: Mapping[str, Any], known: SecretVersion) -> WriteResult | None:
        """Write only the labels and annotations of a rendered Secret over the Secret we last wrote
        (`known`), keeping its data, so its `config`, as it is; None when that Secret is no longer
        there as we wrote it, so the caller writes the Secret whole."""
        if self.mode == "apply":
            return self._apply.relabel(manifest, known)
        return self._read_first.relabel(manifest, known)

    def apply(self, manifest: Mapping[str, Any]) -> WriteResult:
        """Read, then create or update: for callers that keep no `SecretVersion` (two requests)."""
        return self._read_first.apply(manifest)

    def delete(self, namespace: str, name: str, known: SecretVersion) -> bool:
        """Delete a Secret we wrote; False if it is already gone.

        Raises NotManagedError for a Secret without our ownership annotation or with another
        uid than `known` (it was replaced since we wrote it).
        """
        if self.mode == "apply":
            return self._apply.delete(namespace, name, known)
        return self._read_first.delete(namespace, name, known)

    def list_applications(self, namespace: str) -> list[Application]:
        """The Argo CD Applications in `namespace`, for the pruning guard: the one read beyond Secrets,
        `list` on applications.argoproj.io there (no other verb, no other resource).

        Page by page (`limit`, `continue`). Raises DestinationForbidden without that grant, and
        DestinationError for any answer that is not a list of readable Applications (a missing CRD
        is a 404): the guard then holds every deletion rather than judge from part of the list.
        """
        op = _ListOp(namespace)
        found: list[Application] = []
        token = ""
        while True:
            query = {"limit": str(APPLICATION_PAGE), **({"continue": token} if token else {})}
            path = f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/applications?{urlencode(query)}"
            response = self._api.send(op, "GET", path)
            if response.status_code != HTTPStatus.OK:
                raise self._api.error(op, response)
            document = json_object(response)
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
        self._api.close()

    def __enter__(self) -> SecretStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
