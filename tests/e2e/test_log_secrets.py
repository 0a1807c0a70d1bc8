"""At LogLevel DEBUG, no log record of any logger carries a key, a certificate or a credential.

The Lambda runtime is imitated as it starts a function with `ApplicationLogLevel: DEBUG`: the root
logger at DEBUG, AWS_LAMBDA_LOG_LEVEL=DEBUG for Powertools, then the handler module imported.
Every record any logger handles is captured (whatever its handlers or propagation), and so is
everything written to stdout and stderr.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from standins.handlers import event, invoke, unload_handlers
from standins.stack import ARGOCD_NAMESPACE, KUBECONFIG_SECRET, LocalStack
from teleport_argocd.argocd import secret_name


class Capture(logging.Handler):
    """Every record handled by any logger, rendered with everything it carries."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def text_of(records: list[logging.LogRecord]) -> str:
    """Each record with everything it carries: message, arguments, extra keys, exception."""
    formatter = logging.Formatter()
    return "\n".join(
        f"{r.getMessage()} {r.__dict__!r} {formatter.formatException(r.exc_info) if r.exc_info else ''}"
        for r in records
    )


@pytest.fixture
def capture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Capture]:
    capture = Capture()
    handle = logging.Logger.handle

    def handle_and_capture(self: logging.Logger, record: logging.LogRecord) -> None:
        capture.handle(record)
        handle(self, record)

    # Logger.handle sees each record any logger creates, before handlers and propagation.
    monkeypatch.setattr(logging.Logger, "handle", handle_and_capture)
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    root.setLevel(logging.DEBUG)  # what the Lambda runtime does with ApplicationLogLevel: DEBUG
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "DEBUG")
    # What Powertools' Logger does with it in a new process; in this one an earlier test may have
    # configured the service's logger already, and Powertools does not configure it twice.
    logging.getLogger("teleport-argocd").setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def pem_bodies(pem: str) -> list[str]:
    """The base64 lines inside PEM blocks: what a log line would show of a key or certificate."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def secrets_of(stack: LocalStack, written: dict[str, Any]) -> dict[str, str]:
    """Every credential in play, by what it is."""
    assert stack.credentials is not None and stack.credentials.token is not None
    stored = stack.aws.client("secretsmanager").get_secret_value(SecretId=KUBECONFIG_SECRET)
    kubeconfig = json.loads(stored["SecretString"])
    user = kubeconfig["users"][0]["user"]
    config = json.loads(base64.b64decode(written["data"]["config"]))
    tls = config["tlsClientConfig"]
    found = {
        "AWS secret key": stack.credentials.secret_key,
        "AWS session token": stack.credentials.token,
        "kubeconfig client key (base64)": user["client-key-data"],
        "kubeconfig client certificate (base64)": user["client-certificate-data"],
        "Argo CD client key (base64)": tls["keyData"],
        "Argo CD client certificate (base64)": tls["certData"],
    }
    for what, b64 in list(found.items()):
        if what.endswith("key (base64)"):
            for i, line in enumerate(pem_bodies(base64.b64decode(b64).decode())):
                found[f"{what.removesuffix(' (base64)')} PEM line {i}"] = line
        elif what.endswith("certificate (base64)"):
            # The signature: the first lines are the issuer's, shared with the CA certificate.
            found[f"{what.removesuffix(' (base64)')} PEM signature"] = pem_bodies(
                base64.b64decode(b64).decode()
            )[-2]
    return found


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    found = [what for what, value in secrets.items() if value in text]
    found += [
        marker
        for marker in ("PRIVATE KEY", "k8s-aws-v1.", "Bearer ", "X-Amz-Security-Token")
        if marker in text
    ]
    return found


def test_a_reload_at_debug_logs_no_credentials(capture: Capture, capfd: pytest.CaptureFixture[str]) -> None:
    with LocalStack() as stack, stack.environment():
        # The stack's own setup (moto, STS) logs in this process too; only the function's records count.
        start = len(capture.records)
        capfd.readouterr()
        unload_handlers()
        result = invoke("reload", event("reload.json"))
        project_level = logging.getLogger("teleport_argocd").getEffectiveLevel()
        assert stack.kube is not None
        written = stack.kube.secret(
            ARGOCD_NAMESPACE, secret_name("teleport.argocd-cluster", "root", "prod-us-east")
        )
        assert written is not None, result
        before_control = len(capture.records)
        secrets = secrets_of(stack, written)
        output = capfd.readouterr()

        # Control: the capture sees a leak when there is one. botocore at DEBUG logs the
        # GetSecretValue response, which is the kubeconfig with its client key.
        logging.getLogger("botocore").setLevel(logging.DEBUG)
        stack.aws.client("secretsmanager").get_secret_value(SecretId=KUBECONFIG_SECRET)
        unload_handlers()

    assert result["outputs"][0]["status"] == "completed"
    records = capture.records[start:before_control]
    # The capture saw the run: our loggers were at DEBUG, and their DEBUG and INFO records are in it.
    assert project_level == logging.DEBUG
    ours = {(r.name, r.levelno) for r in records if r.name.startswith("teleport_argocd")}
    assert ("teleport_argocd.logs", logging.DEBUG) in ours
    assert {name for name, level in ours if level == logging.INFO} - {"teleport_argocd.logs"}
    assert leaks(text_of(records), secrets) == []
    assert leaks(output.out + output.err, secrets) == []
    assert "kubeconfig client key (base64)" in leaks(text_of(capture.records[before_control:]), secrets)
