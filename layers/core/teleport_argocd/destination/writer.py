"""What both Secret writers share: the calls they make, what a write returns, what marks a Secret ours.

Each write or delete is one `SecretOp`; its requests go through one `http.Client` as field manager
`teleport-argocd`. Which label and annotation keys an older writer owned is recorded on the Secret
(`MANAGED_KEYS_ANNOTATION`); the apply writer hands them over, the read-first writer still keeps them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from teleport_argocd.destination.http import Client, Response
from teleport_argocd.errors import DestinationConflict
from teleport_argocd.model import MANAGED_KEYS_ANNOTATION, VERSION_ANNOTATION, Outcome, SecretVersion

FIELD_MANAGER = "teleport-argocd"
# Like client-go's retry.DefaultRetry: five attempts, 10 ms apart.
CONFLICT_ATTEMPTS = 5
CONFLICT_DELAY_SECONDS = 0.01


@dataclass
class SecretOp:
    """One write or delete of a Secret: what it is about (for messages) and the requests it made."""

    verb: str
    namespace: str
    name: str
    requests: int = 0

    def __str__(self) -> str:
        return f"{self.verb} secret {self.namespace}/{self.name}"


@dataclass(frozen=True)
class WriteResult:
    """What `SecretStore.write` did to one Secret, and the version to pass to the next write."""

    namespace: str
    name: str
    action: Outcome
    version: SecretVersion
    requests: int


class Writer:
    """Secret requests to one destination, as both write modes make them."""

    def __init__(self, api: Client) -> None:
        self.api = api

    @property
    def description(self) -> str:
        return self.api.description

    def send(
        self,
        op: SecretOp,
        method: str,
        path: str,
        body: Mapping[str, Any] | list[Any] | None = None,
        content_type: str = "application/json",
        *,
        force: bool = False,
    ) -> Response:
        """One request; a write names our field manager, and `force` takes fields others own."""
        query = f"?fieldManager={FIELD_MANAGER}" if method in ("POST", "PUT", "PATCH") else ""
        if force:
            query += "&force=true"
        return self.api.send(op, method, path + query, body, content_type)

    def conflicted(self, op: SecretOp) -> DestinationConflict:
        """The error once every attempt met a Secret changed in between."""
        return DestinationConflict(
            f"{op} in {self.description}: still modified by someone else after {CONFLICT_ATTEMPTS} attempts"
        )


def attempts() -> Iterator[int]:
    """The tries of a write that meets a Secret changed in between: CONFLICT_ATTEMPTS of them,
    CONFLICT_DELAY_SECONDS apart."""
    for attempt in range(CONFLICT_ATTEMPTS):
        if attempt:
            time.sleep(CONFLICT_DELAY_SECONDS)
        yield attempt


def secret_path(namespace: str, name: str = "") -> str:
    collection = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{collection}/{name}" if name else collection


def ours(annotations: Mapping[str, str]) -> bool:
    """Whether a Secret carries our mark: our version annotation, or an older writer's ownership list."""
    return VERSION_ANNOTATION in annotations or MANAGED_KEYS_ANNOTATION in annotations


def managed_keys(annotations: Mapping[str, str]) -> dict[str, list[str]]:
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
