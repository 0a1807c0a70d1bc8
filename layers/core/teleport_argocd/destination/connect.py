"""Connecting to a destination: EKS or a kubeconfig kept in Secrets Manager, turned into a `SecretStore`.

This is where PyYAML and botocore errors of a destination become ours. A warm execution environment
keeps each destination's store, and with it its open connections, while what it was made from is
unchanged (`connect_kept`).
"""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from teleport_argocd.config.types import Destination, EksDestination
from teleport_argocd.destination.kubeconfig import ClusterAccess, cluster_access, tls_context
from teleport_argocd.destination.secrets import SecretStore
from teleport_argocd.errors import DestinationUnreachable, KubeconfigError

if TYPE_CHECKING:
    import boto3

    from teleport_argocd.destination.eks import ClusterEndpoint

# A kept store is not used again once it has sent nothing for KEPT_IDLE seconds: AWS's Network Load
# Balancers, in front of EKS endpoints, forget an idle TCP flow after 350 s and answer its next
# packet with a reset, which would cost each kept connection a failed request and a retry. The
# discovery schedule (every 2 minutes) keeps a store busier than that. Nor after KEPT_FOR seconds
# in all, so connections are opened afresh now and then (a changed DNS answer, a rebalanced server).
KEPT_IDLE = 240.0
KEPT_FOR = 900.0


@dataclass
class _Kept:
    """A store and everything it was made from: any change of these makes it stale."""

    store: SecretStore
    session: boto3.Session  # whose credentials sign an EKS token
    made_from: tuple[object, ...]  # the kubeconfig's digest, or the EKS endpoint and CA; the proxies
    made_at: float


_KEPT: dict[Destination, _Kept] = {}
_KEPT_LOCK = threading.Lock()


def connect(destination: Destination, *, session: boto3.Session) -> SecretStore:
    """A store for the cluster where Argo CD runs, authenticated as `session`'s AWS identity."""
    _, build = _source(destination, session)
    store = build()
    store.mode = destination.write_mode
    return store


def connect_kept(destination: Destination, *, session: boto3.Session) -> SecretStore:
    """As `connect`, but the store this process made for `destination` before, with its open
    connections, while it is still good: made with the same `session`, from the same kubeconfig
    (every byte of it: server, CA, credentials, proxy) or the same EKS endpoint and CA, under the
    same proxy environment, less than `KEPT_FOR` seconds ago and used less than `KEPT_IDLE` ago.
    Where to connect is read again every time (GetSecretValue or DescribeCluster) to know that.
    A stale store is closed and replaced. The caller does not close what this returns."""
    made_from, build = _source(destination, session)
    made_from += (tuple(sorted(urllib.request.getproxies().items())),)  # what _pool_manager reads
    now = time.monotonic()
    with _KEPT_LOCK:
        kept = _KEPT.get(destination)
        if (
            kept is not None
            and kept.session is session
            and kept.made_from == made_from
            and now - kept.made_at < KEPT_FOR
            and now - kept.store.last_request < KEPT_IDLE
        ):
            kept.store.mode = destination.write_mode
            return kept.store
        store = build()
        store.mode = destination.write_mode
        _KEPT[destination] = _Kept(store, session, made_from, now)
    if kept is not None:
        kept.store.close()
    return store


def release_others(configured: Collection[Destination]) -> None:
    """Close the kept stores of destinations no longer `configured`: a destination removed from the
    configuration would otherwise hold its connections until the execution environment ends."""
    with _KEPT_LOCK:
        removed = [_KEPT.pop(d) for d in list(_KEPT) if d not in configured]
    for kept in removed:
        kept.store.close()


def _source(
    destination: Destination, session: boto3.Session
) -> tuple[tuple[object, ...], Callable[[], SecretStore]]:
    """What a store for `destination` is made from, read now, and how to make one from it."""
    if isinstance(destination, EksDestination):
        # botocore is heavy to import and only a connecting store needs it.
        from teleport_argocd.destination import eks

        name, region = destination.cluster_name, destination.region
        endpoint = eks.describe(name, session.client("eks", region_name=region))
        return ("eks", endpoint.url, endpoint.ca_pem), lambda: _eks_store(name, region, endpoint, session)
    text = _kubeconfig_text(destination.secret_id, region=destination.region, session=session)
    digest = hashlib.sha256(text.encode() if isinstance(text, str) else text).digest()
    secret_id, context = destination.secret_id, destination.context
    return ("kubeconfig", digest, context), lambda: _kubeconfig_store(secret_id, text, context=context)


def connect_eks(
    cluster_name: str, region: str, *, session: boto3.Session, eks_client: Any = None
) -> SecretStore:
    """An EKS cluster, found with `eks:DescribeCluster` and reached with a locally signed IAM token.

    `eks_client` defaults to one made from `session`; tests pass one whose DescribeCluster
    answer points at a local API server.
    """
    from teleport_argocd.destination import eks

    endpoint = eks.describe(cluster_name, eks_client or session.client("eks", region_name=region))
    return _eks_store(cluster_name, region, endpoint, session)


def _eks_store(
    cluster_name: str, region: str, endpoint: ClusterEndpoint, session: boto3.Session
) -> SecretStore:
    from teleport_argocd.destination import eks

    access = ClusterAccess(
        server=endpoint.url.rstrip("/"),
        ssl_context=tls_context(endpoint.ca_pem),
        token=eks.TokenSource(cluster_name, region, session),
    )
    return SecretStore(access, description=f"EKS cluster {cluster_name}")


def _kubeconfig_text(secret_id: str, *, region: str | None, session: boto3.Session) -> str | bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = session.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_id)
    except (ClientError, BotoCoreError) as exc:
        raise DestinationUnreachable(f"reading kubeconfig {secret_id}: {exc}") from exc
    text: str | bytes = value.get("SecretString") or value.get("SecretBinary") or ""
    return text


def _kubeconfig_store(secret_id: str, text: str | bytes, *, context: str | None) -> SecretStore:
    try:
        kubeconfig = yaml.safe_load(text)
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
