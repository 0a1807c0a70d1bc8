"""Kubeconfigs: one built from an Argo CD cluster Secret, and one turned into connection settings.

`kubeconfig_from_secret` answers "what would Argo CD use?": kubectl with the result
reaches the cluster exactly as Argo CD would. `cluster_access` reads the kubeconfig a
destination keeps in Secrets Manager into what an HTTP client needs.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teleport_argocd.errors import KubeconfigError


@dataclass(frozen=True)
class ClusterAccess:
    """How to reach one API server: URL, TLS settings and credentials, as an HTTP client takes them.

    `server_name` is the TLS name to send and verify when it is not the URL's host (a
    kubeconfig's `tls-server-name`). `token` returns the bearer token to send now; EKS tokens
    are re-minted before they expire, so it is called for every request.
    """

    server: str
    ssl_context: ssl.SSLContext = field(repr=False)
    server_name: str | None = None
    token: Callable[[], str] | None = field(default=None, repr=False)
    proxy: str | None = None


def kubeconfig_from_secret(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A kubeconfig with embedded credentials from a cluster Secret (a manifest, or just its `data`).

    Supports what Argo CD's `config` offers without a plugin: `tlsClientConfig`
    (CA, client certificate and key, server name, insecure) and `bearerToken`.
    """
    data = manifest.get("data", manifest)
    try:
        name = _decode(data["name"]).decode()
        server = _decode(data["server"]).decode()
        config = json.loads(_decode(data["config"]))
    except KeyError as exc:
        raise KubeconfigError(f"not an Argo CD cluster Secret: no data key {exc}") from None
    except ValueError as exc:
        raise KubeconfigError(f"not an Argo CD cluster Secret: {exc}") from None
    for plugin in ("execProviderConfig", "awsAuthConfig"):
        if plugin in config:
            raise KubeconfigError(f"cluster Secret {name!r} uses {plugin}, which a kubeconfig cannot embed")
    tls = config.get("tlsClientConfig", {})
    cluster: dict[str, Any] = {"server": server}
    user: dict[str, Any] = {}
    for key, kube_key, target in (
        ("caData", "certificate-authority-data", cluster),
        ("serverName", "tls-server-name", cluster),
        ("certData", "client-certificate-data", user),
        ("keyData", "client-key-data", user),
    ):
        if tls.get(key):
            target[kube_key] = tls[key]
    if tls.get("insecure"):
        cluster["insecure-skip-tls-verify"] = True
    if config.get("bearerToken"):
        user["token"] = config["bearerToken"]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def cluster_access(kubeconfig: Mapping[str, Any], *, context: str | None) -> ClusterAccess:
    """Connection settings for one context of a kubeconfig with embedded credentials.

    Refuses what cannot work in Lambda: `exec` and `auth-provider` users (their binaries
    are not there) and references to files. Nothing is left on disk (see `tls_context`).
    """
    try:
        context_name = context or kubeconfig["current-context"]
        ctx = _named(kubeconfig, "contexts", context_name)["context"]
        cluster = _named(kubeconfig, "clusters", ctx["cluster"])["cluster"]
        user = _named(kubeconfig, "users", ctx["user"])["user"] if ctx.get("user") else {}
        server = cluster["server"]
    except (KeyError, TypeError) as exc:
        raise KubeconfigError(f"kubeconfig: missing {exc}") from None
    for key in ("exec", "auth-provider"):
        if key in user:
            raise KubeconfigError(
                f"kubeconfig user {ctx['user']!r} uses {key}, which needs a binary Lambda does not have; "
                "use a token or an embedded client certificate"
            )
    for section, keys in (
        (cluster, ("certificate-authority",)),
        (user, ("client-certificate", "client-key", "tokenFile")),
    ):
        for key in keys:
            if key in section:
                raise KubeconfigError(f"kubeconfig refers to a file ({key}); embed the data instead")
    if bool(user.get("client-certificate-data")) != bool(user.get("client-key-data")):
        raise KubeconfigError("kubeconfig has client-certificate-data or client-key-data without the other")

    ca_pem = (
        _decode(cluster["certificate-authority-data"]) if cluster.get("certificate-authority-data") else None
    )
    cert_pem = _decode(user["client-certificate-data"]) if user.get("client-certificate-data") else None
    key_pem = _decode(user["client-key-data"]) if user.get("client-key-data") else None
    token = user.get("token")
    return ClusterAccess(
        server=server.rstrip("/"),
        ssl_context=tls_context(
            ca_pem,
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            client_cert=(cert_pem, key_pem) if cert_pem and key_pem else None,
        ),
        server_name=cluster.get("tls-server-name") or None,
        token=(lambda: token) if token else None,
        proxy=cluster.get("proxy-url") or None,
    )


def tls_context(
    ca_pem: bytes | None, *, insecure: bool = False, client_cert: tuple[bytes, bytes] | None = None
) -> ssl.SSLContext:
    """A client TLS context trusting `ca_pem` (else the system roots), with an optional client certificate."""
    try:
        context = ssl.create_default_context(cadata=ca_pem.decode() if ca_pem else None)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if client_cert is not None:
            with _pem_files(*client_cert) as (cert_path, key_path):
                context.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, ValueError) as exc:
        # Not the PEM itself, ever: only what OpenSSL says is wrong with it.
        raise KubeconfigError(f"unusable TLS material: {getattr(exc, 'reason', None) or exc}") from None
    return context


@contextmanager
def _pem_files(cert_pem: bytes, key_pem: bytes) -> Iterator[tuple[str, str]]:
    """Certificate and key as paths for `load_cert_chain`, which reads only files.

    Hand-written because neither `ssl` nor httpx loads a key from memory. On Linux (Lambda)
    the files are anonymous memory (memfd), so the key never reaches a disk; elsewhere they
    live in a private temporary directory for the duration of the load.
    """
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create(name) for name in ("client.crt", "client.key")]
        try:
            for fd, pem in zip(fds, (cert_pem, key_pem), strict=True):
                os.write(fd, pem)
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="teleport-argocd-") as directory:
        cert_path, key_path = Path(directory, "client.crt"), Path(directory, "client.key")
        for path, pem in ((cert_path, cert_pem), (key_path, key_pem)):
            path.touch(mode=0o600)
            path.write_bytes(pem)
        yield str(cert_path), str(key_path)


def _named(kubeconfig: Mapping[str, Any], section: str, name: str) -> dict[str, Any]:
    for entry in kubeconfig.get(section) or ():
        if entry.get("name") == name:
            return dict(entry)
    raise KubeconfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError):
        raise KubeconfigError("kubeconfig holds a *-data value that is not base64") from None
