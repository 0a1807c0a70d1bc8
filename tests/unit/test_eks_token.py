"""The EKS bearer token: its form (aws-events.md §5.1), its refresh, and DescribeCluster's answer."""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.credentials import ReadOnlyCredentials
from botocore.stub import Stubber

from teleport_argocd.destination import eks
from teleport_argocd.errors import DestinationUnreachable

CREDENTIALS = ReadOnlyCredentials("ASIAEXAMPLE", "secret", "session-token")


def decoded(token: str) -> str:
    assert token.startswith("k8s-aws-v1.")
    encoded = token.removeprefix("k8s-aws-v1.")
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded  # unpadded, URL-safe
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


def test_token_is_a_presigned_get_caller_identity() -> None:
    url = urlsplit(decoded(eks.token("argocd-prod", "eu-west-1", CREDENTIALS)))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}

    assert (url.scheme, url.netloc, url.path) == ("https", "sts.eu-west-1.amazonaws.com", "/")
    assert query["Action"] == "GetCallerIdentity"
    assert query["Version"] == "2011-06-15"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"] == "host;x-k8s-aws-id"
    assert query["X-Amz-Security-Token"] == "session-token"
    assert (
        query["X-Amz-Credential"].startswith("ASIAEXAMPLE/")
        and "/eu-west-1/sts/" in query["X-Amz-Credential"]
    )


def test_china_regions_use_their_own_sts_domain() -> None:
    assert eks.sts_url("cn-north-1") == "https://sts.cn-north-1.amazonaws.com.cn/"


def test_token_over_4_kb_is_refused_before_sending() -> None:
    huge = ReadOnlyCredentials("ASIAEXAMPLE", "secret", "x" * 4000)
    with pytest.raises(DestinationUnreachable, match="at most 4096") as caught:
        eks.token("argocd-prod", "us-east-1", huge)
    assert "secret" not in str(caught.value)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def session() -> boto3.Session:
    return boto3.Session(
        aws_access_key_id="ASIAEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1"
    )


def test_token_source_mints_then_refreshes_before_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    minted: list[str] = []

    def mint(*args: object) -> str:
        minted.append(f"token-{len(minted) + 1}")
        return minted[-1]

    monkeypatch.setattr(eks, "token", mint)
    clock = Clock()
    source = eks.TokenSource("argocd-prod", "us-east-1", session(), clock=clock)

    assert source() == "token-1"
    clock.now += eks.REFRESH_AFTER_SECONDS - 1
    assert source() == "token-1"
    clock.now += 2  # still well inside the 15 minutes a token is accepted
    assert source() == "token-2"
    assert eks.REFRESH_AFTER_SECONDS < 14 * 60


def test_token_source_mints_once_for_many_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    minted: list[str] = []

    def mint(*args: object) -> str:
        time.sleep(0.01)  # long enough for the other threads to arrive while it signs
        minted.append("token")
        return "token"

    monkeypatch.setattr(eks, "token", mint)
    source = eks.TokenSource("argocd-prod", "us-east-1", session())
    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(lambda _: source(), range(64))) == {"token"}
    assert len(minted) == 1


class NoCredentials:
    def get_credentials(self) -> None:
        return None


def test_token_source_without_credentials() -> None:
    source = eks.TokenSource("argocd-prod", "us-east-1", NoCredentials())  # type: ignore[arg-type]
    with pytest.raises(DestinationUnreachable, match="no AWS credentials"):
        source()


def eks_client(cluster: dict[str, object]) -> object:
    client = boto3.client("eks", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_response("describe_cluster", {"cluster": cluster}, {"name": "argocd-prod"})
    stubber.activate()
    return client


PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_describe() -> None:
    found = eks.describe(
        "argocd-prod",
        eks_client(
            {
                "endpoint": "https://ABC.gr7.us-east-1.eks.amazonaws.com",
                "certificateAuthority": {"data": base64.b64encode(PEM).decode()},
            }
        ),
    )
    assert found == eks.ClusterEndpoint("https://ABC.gr7.us-east-1.eks.amazonaws.com", PEM)
    assert "BEGIN" not in repr(found)


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ({"status": "CREATING"}, "has no endpoint \\(status CREATING\\)"),
        (
            {"endpoint": "https://x", "certificateAuthority": {"data": "bm90IHBlbQ=="}},
            "not a PEM certificate",
        ),
        ({"endpoint": "https://x", "certificateAuthority": {"data": "%%%"}}, "not a PEM certificate"),
    ],
)
def test_describe_refuses_what_a_client_cannot_use(cluster: dict[str, object], expected: str) -> None:
    with pytest.raises(DestinationUnreachable, match=expected):
        eks.describe("argocd-prod", eks_client(cluster))
