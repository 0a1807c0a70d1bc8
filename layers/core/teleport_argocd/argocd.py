"""Argo CD cluster Secrets, rendered byte-for-byte as tbot's `kubernetes/argo-cd` output writes them.

Secret name hash, server URL, data keys, the `config` JSON, labels and annotations all follow
tbot, so a Secret tbot wrote and one we write for the same cluster are interchangeable and users
moving from tbot keep their Argo CD cluster entries. The one difference: our version annotation
in place of `teleport.dev/tbot-version` (the writer adds our ownership annotation beside it).
Pure: no I/O; the caller passes in the cluster, the proxy endpoint, the identity and the host CAs.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from teleport_argocd import gotemplate
from teleport_argocd.errors import RenderError
from teleport_argocd.k8snames import is_dns_label, label_value_problem
from teleport_argocd.model import (
    BOT_NAME_ANNOTATION,
    KUBE_CLUSTER_ANNOTATION,
    SECRET_TYPE_LABEL,
    TELEPORT_CLUSTER_ANNOTATION,
    UPDATED_ANNOTATION,
    VERSION_ANNOTATION,
    Identity,
    KubeCluster,
    KubeEndpoint,
    is_reserved_annotation,
)

if TYPE_CHECKING:
    from teleport_argocd.config.types import OutputConfig

# -- rendering ---------------------------------------------------------------


def secret_name(prefix: str, teleport_cluster: str, kube_cluster: str) -> str:
    """tbot's Secret name: the prefix, a dot, and the first 8 bytes of SHA-256(teleport ‖ kube) in hex."""
    digest = hashlib.sha256((teleport_cluster + kube_cluster).encode()).digest()
    return f"{prefix}.{digest[:8].hex()}"


def encode_path_component(value: str) -> str:
    """URL-safe base64 without padding, as the proxy's path-based Kubernetes routing expects."""
    return base64.urlsafe_b64encode(value.encode()).rstrip(b"=").decode("ascii")


def server_url(endpoint: KubeEndpoint, teleport_cluster: str, kube_cluster: str) -> str:
    """The URL that routes to `kube_cluster` through the proxy (one client certificate serves all)."""
    tc, kc = encode_path_component(teleport_cluster), encode_path_component(kube_cluster)
    return f"{endpoint.base_url.rstrip('/')}/v1/teleport/{tc}/{kc}"


@dataclass(frozen=True)
class RenderedSecret:
    """One cluster's Secret; `manifest` holds the private key, so it is kept out of repr."""

    cluster: KubeCluster
    namespace: str
    name: str
    server: str
    manifest: dict[str, Any] = field(repr=False)
    argocd_name: str = ""  # the Argo CD cluster name (data key `name`), which Applications may target


@dataclass(frozen=True)
class _Shared:
    """What every Secret of one run has in common."""

    teleport_cluster: str
    endpoint: KubeEndpoint
    bot_name: str
    config_b64: str = field(repr=False)  # the `config` data value, the same in every Secret: encoded once
    updated: str
    version: str


def render_secret(
    output: OutputConfig,
    cluster: KubeCluster,
    *,
    teleport_cluster: str,
    endpoint: KubeEndpoint,
    identity: Identity,
    ca_pems: Sequence[bytes],
    now: datetime,
    version: str,
) -> RenderedSecret:
    """Render the Argo CD cluster Secret for one cluster.

    Raises RenderError for a run-level problem (no CA, naive `now`) and for a template or label
    value that does not render to something Kubernetes accepts.
    """
    shared = _shared(teleport_cluster, endpoint, identity, ca_pems, now, version)
    return _render(output, cluster, shared)[0]


def render_secrets(
    output: OutputConfig,
    clusters: Sequence[KubeCluster],
    *,
    teleport_cluster: str,
    endpoint: KubeEndpoint,
    identity: Identity,
    ca_pems: Sequence[bytes],
    now: datetime,
    version: str,
) -> tuple[list[RenderedSecret], list[tuple[KubeCluster, str]]]:
    """Render every cluster's Secret; returns the Secrets to write and the per-cluster errors.

    Clusters that would share an Argo CD cluster name or a Secret name are all reported and none
    of them is written: Applications addressing a cluster by name would get either one, and a
    shared Secret would be overwritten by each in turn.
    Run-level problems (no CA, naive `now`) raise RenderError.
    """
    shared = _shared(teleport_cluster, endpoint, identity, ca_pems, now, version)
    errors: list[tuple[KubeCluster, str]] = []
    results: list[tuple[RenderedSecret, str]] = []
    for cluster in clusters:
        try:
            results.append(_render(output, cluster, shared))
        except RenderError as exc:
            errors.append((cluster, str(exc)))

    owners: defaultdict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (secret, argocd_name) in enumerate(results):
        owners["Argo CD cluster name", argocd_name].append(i)
        owners["Secret name", secret.name].append(i)
    clashes: defaultdict[int, list[str]] = defaultdict(list)
    for (what, value), indexes in owners.items():
        if len(indexes) < 2:
            continue
        for i in indexes:
            others = ", ".join(results[j][0].cluster.name for j in indexes if j != i)
            clashes[i].append(f'{what} "{value}" is also rendered for {others}')

    secrets: list[RenderedSecret] = []
    for i, (secret, _) in enumerate(results):
        if i in clashes:
            errors.append((secret.cluster, "not written: " + "; ".join(clashes[i])))
        else:
            secrets.append(secret)
    return secrets, errors


def _shared(
    teleport_cluster: str,
    endpoint: KubeEndpoint,
    identity: Identity,
    ca_pems: Sequence[bytes],
    now: datetime,
    version: str,
) -> _Shared:
    ca_data = b"\n".join(ca_pems)  # tbot joins the host CA PEMs with a newline
    if not ca_data:
        raise RenderError("TLS trusted CAs missing")
    if now.utcoffset() is None:
        raise RenderError("now must be timezone-aware")
    tls = {"caData": _b64(ca_data), "certData": _b64(identity.cert_pem), "keyData": _b64(identity.key_pem)}
    if endpoint.server_name:
        tls["serverName"] = endpoint.server_name
    # Go's encoder would also escape <, > and &, none of which occur in base64 or a host name.
    config_json = json.dumps({"tlsClientConfig": tls}, separators=(",", ":"), ensure_ascii=False).encode()
    return _Shared(
        teleport_cluster=teleport_cluster,
        endpoint=endpoint,
        bot_name=identity.bot_name,
        config_b64=_b64(config_json),
        updated=now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        version=version,
    )


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> gotemplate.Template:
    """A template parsed once for every cluster it renders (a Template is immutable); a text that
    does not parse is parsed, and refused, again each time."""
    return gotemplate.parse(text)


def _render(output: OutputConfig, cluster: KubeCluster, shared: _Shared) -> tuple[RenderedSecret, str]:
    """Render one Secret; also returns its Argo CD cluster name, for the collision check."""

    def render(text: str) -> str:
        try:
            template = _parsed(text)
            return template.render(
                ClusterName=shared.teleport_cluster, KubeName=cluster.name, Labels=cluster.labels
            )
        except gotemplate.TemplateError as exc:
            raise RenderError(f"template {text!r}: {exc}") from None

    labels = {SECRET_TYPE_LABEL: "cluster"}
    for key, text in output.secret_labels.items():
        value = render(text)
        if value and key not in labels:
            if problem := label_value_problem(value):
                raise RenderError(
                    f"secret_labels[{key!r}] renders to {value!r}, which Kubernetes refuses: {problem}"
                )
            labels[key] = value

    annotations = {
        BOT_NAME_ANNOTATION: shared.bot_name,
        KUBE_CLUSTER_ANNOTATION: cluster.name,
        TELEPORT_CLUSTER_ANNOTATION: shared.teleport_cluster,
        UPDATED_ANNOTATION: shared.updated,
        VERSION_ANNOTATION: shared.version,
    }
    for key, text in output.secret_annotations.items():
        value = render(text)
        if value and not is_reserved_annotation(key):
            annotations[key] = value

    argocd_name = render(output.cluster_name_template)
    server = server_url(shared.endpoint, shared.teleport_cluster, cluster.name)
    data = {"name": _b64(argocd_name.encode()), "server": _b64(server.encode()), "config": shared.config_b64}
    # tbot fixes project and namespaces per output; here they are templates rendered per cluster
    # (a plain string renders to itself, byte for byte as tbot writes it).
    if output.project:
        # Any text, as tbot writes it (Argo CD reports a project it does not know); never empty.
        data["project"] = _b64(_name(render(output.project), "project", lambda _: True, ""))
    if output.namespaces:
        namespaces = [
            _name(render(text), f"namespaces[{i}]", is_dns_label, "a namespace name")
            for i, text in enumerate(output.namespaces)
        ]
        data["namespaces"] = _b64(b",".join(namespaces))
        data["clusterResources"] = _b64(b"true" if output.cluster_resources else b"false")

    name = secret_name(output.secret_name_prefix, shared.teleport_cluster, cluster.name)
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": output.secret_namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "data": data,
    }
    secret = RenderedSecret(cluster, output.secret_namespace, name, server, manifest, argocd_name)
    return secret, argocd_name


def argocd_cluster_name(output: OutputConfig, teleport_cluster: str, cluster: KubeCluster) -> str | None:
    """The Argo CD cluster name `cluster_name_template` gives this cluster, or None if it does not render."""
    try:
        return _parsed(output.cluster_name_template).render(
            ClusterName=teleport_cluster, KubeName=cluster.name, Labels=cluster.labels
        )
    except gotemplate.TemplateError:
        return None


def _name(value: str, key: str, valid: Callable[[str], bool], what: str) -> bytes:
    """A rendered project or namespace, refused for this cluster when Argo CD could never use it."""
    if not value:
        raise RenderError(f"{key} renders empty for this cluster")
    if not valid(value):
        raise RenderError(f"{key} renders to {value!r}, which is not {what}")
    return value.encode()


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
