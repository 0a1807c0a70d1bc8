"""EKS destinations: DescribeCluster, an IAM token signed from Lambda-style role credentials, access entries.

The API stand-in checks tokens like aws-iam-authenticator and verifies the presigned
signature for the credentials moto issued (moto itself cannot verify presigned URLs).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from standins.aws import ACCOUNT_ID, REGION, AwsCredentials, MotoServer, lambda_role_credentials
from standins.kubeapi import KubeApiServer, cluster_secret
from teleport_argocd.destination import eks
from teleport_argocd.destination.connect import connect_eks
from teleport_argocd.destination.kubeconfig import ClusterAccess, tls_context
from teleport_argocd.destination.secrets import SecretStore
from teleport_argocd.errors import DestinationForbidden, DestinationUnreachable

CLUSTER = "argocd-prod"
ROLE = "teleport-argocd-RenewFunctionRole"
GROUP = "teleport-argocd-writers"


@pytest.fixture(scope="module")
def credentials(moto: MotoServer) -> AwsCredentials:
    return lambda_role_credentials(moto, role_name=ROLE, session="renew")


@pytest.fixture(scope="module")
def server(credentials: AwsCredentials) -> Iterator[KubeApiServer]:
    # Named "localhost" so the EKS endpoint is a DNS name, as a real one is, with no TLS server name.
    with KubeApiServer("localhost", eks_cluster_name=CLUSTER) as s:
        s.sts.register(credentials)
        s.add_access_entry(f"arn:aws:iam::{ACCOUNT_ID}:role/{ROLE}", groups=[GROUP])
        s.allow(group=GROUP, verbs=["get", "create", "update", "patch", "delete"], namespaces=["argocd"])
        yield s


@pytest.fixture
def session(credentials: AwsCredentials) -> boto3.Session:
    return boto3.Session(
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
        region_name=REGION,
    )


def endpoint(server: KubeApiServer) -> str:
    return server.url.replace("127.0.0.1", "localhost")


def described(server: KubeApiServer) -> Any:
    """An EKS client whose DescribeCluster answers with the stand-in (moto's endpoint and CA are fake)."""
    client = boto3.client("eks", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    cluster = {
        "name": CLUSTER,
        "endpoint": endpoint(server),
        "certificateAuthority": {"data": base64.b64encode(server.ca_pem).decode()},
        "status": "ACTIVE",
    }
    stubber.add_response("describe_cluster", {"cluster": cluster}, {"name": CLUSTER})
    stubber.activate()
    return client


def store_with_token(server: KubeApiServer, token: str) -> SecretStore:
    access = ClusterAccess(endpoint(server), tls_context(server.ca_pem), token=lambda: token)
    return SecretStore(access, description="the stand-in")


def signed_url(token: str) -> str:
    encoded = token.removeprefix(eks.TOKEN_PREFIX)
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


def as_token(url: str) -> str:
    return eks.TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def test_token_is_accepted_and_mapped_by_the_access_entry(
    server: KubeApiServer, session: boto3.Session, credentials: AwsCredentials
) -> None:
    server.requests.clear()
    with connect_eks(CLUSTER, REGION, session=session, eks_client=described(server)) as store:
        result = store.write(cluster_secret("eks-1"), None)
        assert store.write(cluster_secret("eks-1"), result.version).requests == 1

    assert result.action == "created"
    assert {r.user for r in server.requests} == {credentials.arn}
    assert credentials.arn == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE}/renew"


@pytest.mark.parametrize(
    "spoil",
    [
        lambda url: url[:-1] + ("0" if url[-1] != "0" else "1"),  # the signature
        lambda url: url.replace("Version=2011-06-15", "Version=2011-06-16"),  # a signed parameter
        lambda url: url.replace("sts.us-east-1.amazonaws.com", "sts.evil.example.com"),  # not STS
    ],
    ids=["signature", "parameter", "host"],
)
def test_tampered_token_is_refused(server: KubeApiServer, session: boto3.Session, spoil: Any) -> None:
    good = eks.token(CLUSTER, REGION, session.get_credentials().get_frozen_credentials())
    with (
        store_with_token(server, as_token(spoil(signed_url(good)))) as store,
        pytest.raises(DestinationForbidden, match="401 Unauthorized"),
    ):
        store.get("argocd", "anything")
    with store_with_token(server, good) as store:
        assert store.get("argocd", "anything") is None


def test_token_for_another_cluster_is_refused(server: KubeApiServer, session: boto3.Session) -> None:
    token = eks.token("some-other-cluster", REGION, session.get_credentials().get_frozen_credentials())
    with store_with_token(server, token) as store, pytest.raises(DestinationForbidden, match="401"):
        store.get("argocd", "anything")


def test_token_older_than_15_minutes_is_refused(server: KubeApiServer, session: boto3.Session) -> None:
    token = eks.token(CLUSTER, REGION, session.get_credentials().get_frozen_credentials())
    server.now = lambda: datetime.now(UTC) + timedelta(minutes=16)
    try:
        with store_with_token(server, token) as store, pytest.raises(DestinationForbidden, match="401"):
            store.get("argocd", "anything")
    finally:
        server.now = lambda: datetime.now(UTC)


def test_role_without_access_entry_is_refused(server: KubeApiServer, moto: MotoServer) -> None:
    other = lambda_role_credentials(moto, role_name="someone-else", session="other")
    server.sts.register(other)
    other_session = boto3.Session(other.access_key, other.secret_key, other.token)
    token = eks.token(CLUSTER, REGION, other_session.get_credentials().get_frozen_credentials())
    with store_with_token(server, token) as store, pytest.raises(DestinationForbidden, match="401"):
        store.get("argocd", "anything")


def test_describe_failures_are_unreachable(moto: MotoServer, session: boto3.Session) -> None:
    client = moto.client("eks")
    with pytest.raises(DestinationUnreachable, match="ResourceNotFoundException"):
        connect_eks("missing", REGION, session=session, eks_client=client)

    role = f"arn:aws:iam::{ACCOUNT_ID}:role/eks"
    client.create_cluster(name="fake-ca", roleArn=role, resourcesVpcConfig={"subnetIds": []})
    with pytest.raises(DestinationUnreachable, match="not a PEM certificate"):
        connect_eks("fake-ca", REGION, session=session, eks_client=client)
