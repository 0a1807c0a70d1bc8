"""moto in server mode, one process per instance.

Two instances are usually needed: an open one (DynamoDB, SSM, Secrets Manager, EKS)
and one with request signing enforced for STS, because moto's auth switch applies to
the whole process and would otherwise demand IAM policies for every call.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class AwsCredentials:
    """Temporary credentials as a Lambda function gets them from its execution role."""

    access_key: str
    secret_key: str
    token: str | None
    arn: str

    def env(self) -> dict[str, str]:
        env = {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        if self.token:
            env["AWS_SESSION_TOKEN"] = self.token
        return env


@dataclass
class MotoServer:
    """A moto server subprocess on loopback; `signing=True` makes it verify SigV4 like real AWS."""

    signing: bool = False
    # IAM enforced on the resources of every call (standins/moto_iam.py); refusals are appended
    # to `denials` as JSON lines. `admin` then signs what `client()` sends by default.
    iam: bool = False
    denials: Path | None = None
    # Calls IAM allowed, as JSON lines; and the file of seconds SQS's clock runs ahead (moto_iam.py).
    granted: Path | None = None
    clock: Path | None = None
    admin: AwsCredentials | None = None
    port: int = field(default_factory=free_port)
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        return self.launch().wait()

    def launch(self) -> MotoServer:
        """Start the process without waiting for it (start two at once, then `wait()` each)."""
        moto_server = Path(sys.executable).with_name("moto_server")
        cmd = [str(moto_server)] if moto_server.exists() else [sys.executable, "-m", "moto.server"]
        if self.iam:
            cmd = [sys.executable, str(Path(__file__).with_name("moto_iam.py"))]
        env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
        if self.denials is not None:
            env["MOTO_DENIALS"] = str(self.denials)
        if self.granted is not None:
            env["MOTO_GRANTED"] = str(self.granted)
        if self.clock is not None:
            env["MOTO_CLOCK"] = str(self.clock)
        self._proc = subprocess.Popen(
            [*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        return self

    def wait(self) -> MotoServer:
        """Block until the server answers."""
        assert self._proc is not None, "launch() first"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.endpoint}/moto-api/", timeout=1.0)
                break
            except httpx.TransportError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=10.0).raise_for_status()

    def client(self, service: str, region: str = REGION, creds: AwsCredentials | None = None) -> Any:
        """A boto3 client for this server (default credentials work only while signing is off)."""
        creds = creds or self.admin
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id=creds.access_key if creds else "testing",
            aws_secret_access_key=creds.secret_key if creds else "testing",
            aws_session_token=creds.token if creds else None,
        )

    def enforce_signing(self) -> None:
        """Turn on moto's request authentication (all requests from now on)."""
        httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"0", timeout=10.0).raise_for_status()


def lambda_role_credentials(
    sts_server: MotoServer, role_name: str = "teleport-argocd-RenewFunctionRole", session: str = "renew"
) -> AwsCredentials:
    """Create an IAM role and return assumed-role credentials, like a Lambda execution role.

    Must run before `enforce_signing`, with the server still open; the returned session
    credentials keep working once signing is enforced.
    """
    iam = sts_server.client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    try:
        role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName=role_name)["Role"]
    allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.put_role_policy(RoleName=role_name, PolicyName="all", PolicyDocument=json.dumps(allow_all))
    got = sts_server.client("sts").assume_role(RoleArn=role["Arn"], RoleSessionName=session)
    c = got["Credentials"]
    return AwsCredentials(
        c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], got["AssumedRoleUser"]["Arn"]
    )
