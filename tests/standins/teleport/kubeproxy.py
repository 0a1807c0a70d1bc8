"""The proxy's Kubernetes access: path routing to a kube cluster, RBAC, and a small read-only API.

Routing follows `lib/kube/proxy/forwarder.go`: `/v1/teleport/<b64url teleport cluster>/<b64url
kube cluster>/<api path>`, both components unpadded URL-safe base64 of UTF-8. The kube cluster
behind the route answers enough of the Kubernetes API for discovery, `kubectl version` and
`kubectl get namespace`, with the fields kubernetes-client 37's models require.

Refusals follow the forwarder too. Authentication and authorization run in its `withAuth`, whose
errors are Kubernetes `Status` objects with `trace.ErrorToCode`'s status (403 AccessDenied, 404
NotFound), except at `GET /version`: that route writes them with `http.Error`, so they arrive as
HTTP 500 with the message as plain text (`withCustomErrFormatter(writeResponseErrorToBody)`).
A role that allows a cluster's labels but names no `kubernetes_groups` is refused with NotFound
"Your user's Teleport role does not allow Kubernetes access..." (`authorize`); a cluster its roles
do not allow with AccessDenied `kubernetes cluster "<name>" not found`. A cluster whose agent is
gone while its `kube_server` has not yet expired fails when the proxy dials it, inside the
reverse proxy, whose error handler answers a `Status` with 504 (a connection problem).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from standins.teleport.ca import Identity
from standins.teleport.httpserve import JsonHandler
from standins.teleport.state import Cluster, KubeRequest

_ROUTE = re.compile(r"/v1/teleport/([^/]*)/([^/]*)(/.*)?")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")

NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
CREATED = "2025-01-01T00:00:00Z"
VERSION = {
    "major": "1",
    "minor": "36",
    "gitVersion": "v1.36.2",
    "gitCommit": "a78aa47129b8539636eb86a9d00e31b2720fe06b",
    "gitTreeState": "clean",
    "buildDate": "2026-06-10T18:44:43Z",
    "goVersion": "go1.25.9",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_API_RESOURCES = [
    {
        "name": "namespaces",
        "singularName": "namespace",
        "namespaced": False,
        "kind": "Namespace",
        "verbs": ["get", "list"],
        "shortNames": ["ns"],
    },
    {
        "name": "pods",
        "singularName": "pod",
        "namespaced": True,
        "kind": "Pod",
        "verbs": ["get", "list"],
        "shortNames": ["po"],
        "categories": ["all"],
    },
]


def status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
    """A Kubernetes `Status` failure, the form Teleport's proxy also answers errors in."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return code, body


NO_KUBE_PRINCIPALS = (
    "Your user's Teleport role does not allow Kubernetes access. Please ask cluster administrator to "
    "ensure your role has appropriate kubernetes_groups and kubernetes_users set."
)


class RouteError(Exception):
    """A refusal; `authorizing` when the forwarder's `withAuth` makes it (see the module docstring),
    rather than the path routing in front of it."""

    def __init__(self, code: int, reason: str, message: str, *, authorizing: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.authorizing = authorizing
        self.answer = status(code, reason, message)


def decode_component(value: str) -> str:
    """Go's `base64.RawURLEncoding` then UTF-8 validation."""
    if not _B64URL.fullmatch(value) or len(value) % 4 == 1:
        raise RouteError(
            400, "BadRequest", f"invalid base64 in kubernetes route component {value!r}", authorizing=False
        )
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise RouteError(
            400, "BadRequest", f"invalid kubernetes route component {value!r}: {e}", authorizing=False
        ) from e


def _namespace(name: str) -> dict[str, Any]:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"namespace.{name}")),
            "resourceVersion": "1",
            "creationTimestamp": CREATED,
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _table(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The `meta.k8s.io/v1` Table kubectl asks for when it prints."""
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "1"},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0},
            {"name": "Status", "type": "string", "format": "", "description": "Status", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": "Age", "priority": 0},
        ],
        "rows": [
            {
                "cells": [o["metadata"]["name"], o.get("status", {}).get("phase", ""), "1y"],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                },
            }
            for o in objects
        ],
    }


def kube_api(method: str, path: str, accept: str) -> tuple[int, Any]:
    """One kube cluster's read-only API (every cluster looks alike)."""
    if method not in ("GET", "HEAD"):
        return status(
            405,
            "MethodNotAllowed",
            f"the server does not allow this method on the requested resource ({method} {path})",
        )
    as_table = "as=Table" in accept
    path = path.rstrip("/") or "/"
    if path == "/version":
        return 200, VERSION
    if path == "/api":
        return 200, {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:443"}],
        }
    if path == "/apis":
        return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
    if path == "/api/v1":
        return 200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": _API_RESOURCES}
    if path == "/api/v1/namespaces":
        items = [_namespace(n) for n in NAMESPACES]
        if as_table:
            return 200, _table(items)
        return 200, {
            "kind": "NamespaceList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }
    m = re.fullmatch(r"/api/v1/namespaces/([^/]+)(/pods)?", path)
    if m is not None:
        name, pods = m.groups()
        if pods:
            if as_table:
                return 200, _table([])
            return 200, {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "1"},
                "items": [],
            }
        if name not in NAMESPACES:
            return status(404, "NotFound", f'namespaces "{name}" not found')
        return 200, _table([_namespace(name)]) if as_table else _namespace(name)
    return status(404, "NotFound", "the server could not find the requested resource")


@dataclass
class KubeProxy:
    cluster: Cluster

    def route(self, path: str, identity: Identity) -> tuple[str, str]:
        """The kube cluster a request is for and the API path behind the routing prefix."""
        m = _ROUTE.fullmatch(path)
        if m is None:
            if not identity.kubernetes_cluster:
                raise RouteError(
                    400,
                    "BadRequest",
                    "kubernetes cluster not specified: use a server URL ending in "
                    "/v1/teleport/<base64url teleport cluster>/<base64url kube cluster>, "
                    "or a certificate issued for one Kubernetes cluster",
                    authorizing=False,
                )
            teleport_cluster = identity.route_to_cluster or self.cluster.name
            kube_cluster, api_path = identity.kubernetes_cluster, path
        else:
            teleport_cluster, kube_cluster = decode_component(m.group(1)), decode_component(m.group(2))
            api_path = m.group(3) or "/"
            for pinned, wanted, what in (
                (identity.route_to_cluster, teleport_cluster, "Teleport cluster"),
                (identity.kubernetes_cluster, kube_cluster, "Kubernetes cluster"),
            ):
                if pinned and pinned != wanted:
                    raise RouteError(
                        403,
                        "Forbidden",
                        f"the certificate is pinned to {what} {pinned!r}, the path routes to {wanted!r}",
                        authorizing=False,
                    )
        if teleport_cluster != self.cluster.name:
            raise RouteError(404, "NotFound", f'teleport cluster "{teleport_cluster}" not found')
        # The proxy authorizes like Auth (`lib/authz` `Authorize`): a lock refuses new requests too.
        lock = self.cluster.lock_in_force(identity.username, identity.roles, identity.bot_instance_id)
        if lock is not None:
            raise RouteError(403, "Forbidden", lock.refusal())
        kube = self.cluster.kube_cluster(kube_cluster)
        if kube is None:
            # `setupContext` (no kube_server for it), capitalised unlike `authorize`'s refusal.
            raise RouteError(404, "NotFound", f'Kubernetes cluster "{kube_cluster}" not found')
        if not self.cluster.can_access_kube(identity.roles, kube.all_labels):
            raise RouteError(403, "Forbidden", f'kubernetes cluster "{kube_cluster}" not found')
        if not self.cluster.kube_groups(identity.roles, kube.all_labels):
            raise RouteError(404, "NotFound", NO_KUBE_PRINCIPALS)
        return kube_cluster, api_path


class KubeHandler(JsonHandler):
    server: KubeProxy  # type: ignore[assignment]

    def answer(self) -> tuple[int, Any]:
        identity = Identity.from_der(self.connection.getpeercert(binary_form=True))
        url = urlsplit(self.path)
        try:
            kube_cluster, api_path = self.server.route(url.path, identity)
        except RouteError as e:
            if e.authorizing and _api_path(url.path) == "/version":
                return 500, e.message + "\n"
            return e.answer
        if kube_cluster in self.server.cluster.agents_down:
            return status(
                504,
                "Timeout",
                f'failed to dial kubernetes cluster "{kube_cluster}": no agent tunnel is connected',
            )
        self.server.cluster.log_kube_request(
            KubeRequest(kube_cluster, self.command, api_path, identity.username)
        )
        return kube_api(self.command, api_path, self.headers.get("Accept", ""))


def _api_path(path: str) -> str:
    """The API path a request asks for, behind the routing prefix if it has one."""
    m = _ROUTE.fullmatch(path)
    return (m.group(3) or "/") if m is not None else path
