"""Fixtures the Teleport client's integration tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.credentials import Credentials

from standins.aws import MotoServer, lambda_role_credentials
from standins.stack import ROLE_NAME


@pytest.fixture(scope="module")
def credentials() -> Iterator[tuple[str, Credentials]]:
    """(STS endpoint, assumed-role credentials of the Lambda's role) on a moto that checks signatures.

    test_kube_eks.py defines its own `credentials` (an open moto's role, for EKS tokens).
    """
    with MotoServer(signing=True) as sts:
        creds = lambda_role_credentials(sts, role_name=ROLE_NAME, session="renew")
        sts.enforce_signing()
        yield sts.endpoint, Credentials(creds.access_key, creds.secret_key, creds.token)
