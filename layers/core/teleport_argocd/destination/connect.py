"""Connecting to a destination: EKS or a kubeconfig kept in Secrets Manager, turned into a `SecretStore`.

This is where PyYAML and botocore errors of a destination become ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from teleport_argocd.config.types import Destination, EksDestination
from teleport_argocd.destination.kubeconfig import ClusterAccess, cluster_access, tls_context
from teleport_argocd.destination.secrets import SecretStore
from teleport_argocd.errors import DestinationUnreachable, KubeconfigError

if TYPE_CHECKING:
    import boto3


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
    from teleport_argocd.destination import eks

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
