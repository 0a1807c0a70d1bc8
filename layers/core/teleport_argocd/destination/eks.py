"""EKS: where a cluster's API server is, and a bearer token minted from our own AWS credentials.

The token is what `aws eks get-token` prints: a presigned STS `GetCallerIdentity` URL that
the cluster's authenticator forwards to STS to learn who we are. Signing is local, so
minting costs no network call and needs no STS permission (aws-events.md §5.1).
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError, ClientError

from teleport_argocd.errors import DestinationUnreachable

if TYPE_CHECKING:
    import boto3

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
# The authenticator refuses longer tokens (maxTokenLenBytes).
MAX_TOKEN_BYTES = 4096
# A token is accepted for 15 minutes after its X-Amz-Date; re-mint well before that.
REFRESH_AFTER_SECONDS = 10 * 60


def sts_url(region: str) -> str:
    """The regional STS endpoint the authenticator accepts (`sts.<region>.amazonaws.com[.cn]`)."""
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://sts.{region}.{suffix}/"


def token(cluster_name: str, region: str, credentials: ReadOnlyCredentials) -> str:
    """A bearer token for `cluster_name`, valid for 15 minutes."""
    request = AWSRequest(
        method="GET",
        url=sts_url(region) + "?Action=GetCallerIdentity&Version=2011-06-15",
        headers={CLUSTER_ID_HEADER: cluster_name},
    )
    # X-Amz-Expires is not the token's lifetime (STS ignores it); 60 is what every client sends.
    SigV4QueryAuth(credentials, "sts", region, expires=60).add_auth(request)
    minted = TOKEN_PREFIX + base64.urlsafe_b64encode(str(request.url).encode()).decode().rstrip("=")
    if len(minted) > MAX_TOKEN_BYTES:
        raise DestinationUnreachable(
            f"EKS token for {cluster_name} is {len(minted)} bytes; "
            f"the authenticator accepts at most {MAX_TOKEN_BYTES}"
        )
    return minted


class TokenSource:
    """The bearer token to send now: minted on first use and again before it expires.

    Called for every request, from many threads at once, so a long-lived store in a warm
    Lambda never sends an expired token and mints at most one at a time.
    """

    def __init__(
        self,
        cluster_name: str,
        region: str,
        session: boto3.Session,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster_name = cluster_name
        self.region = region
        self._session = session
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._minted_at = 0.0

    def __call__(self) -> str:
        with self._lock:
            now = self._clock()
            if not self._token or now - self._minted_at >= REFRESH_AFTER_SECONDS:
                credentials = self._session.get_credentials()
                if credentials is None:
                    raise DestinationUnreachable(
                        f"no AWS credentials to sign an EKS token for {self.cluster_name}"
                    )
                # Frozen: key, secret and session token from one refresh, never a mix of two.
                self._token = token(self.cluster_name, self.region, credentials.get_frozen_credentials())
                self._minted_at = now
            return self._token


@dataclass(frozen=True)
class ClusterEndpoint:
    """Where an EKS cluster's API server listens and the CA (PEM) its certificate chains to."""

    url: str
    ca_pem: bytes = field(repr=False)


def describe(cluster_name: str, client: Any) -> ClusterEndpoint:
    """`eks:DescribeCluster` with a boto3 EKS `client`, reduced to what a Kubernetes client needs."""
    try:
        cluster = client.describe_cluster(name=cluster_name)["cluster"]
    except (ClientError, BotoCoreError) as exc:
        raise DestinationUnreachable(f"describing EKS cluster {cluster_name}: {exc}") from exc
    url = cluster.get("endpoint")
    if not url:
        raise DestinationUnreachable(
            f"EKS cluster {cluster_name} has no endpoint (status {cluster.get('status', 'unknown')})"
        )
    try:
        ca_pem = base64.b64decode(cluster.get("certificateAuthority", {}).get("data", ""), validate=True)
    except binascii.Error:
        ca_pem = b""
    if b"-----BEGIN CERTIFICATE-----" not in ca_pem:
        raise DestinationUnreachable(
            f"EKS cluster {cluster_name}: certificate authority data is not a PEM certificate"
        )
    return ClusterEndpoint(url=url, ca_pem=ca_pem)
