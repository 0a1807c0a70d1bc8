"""Invoke the real Lambda handlers in-process, as the Lambda runtime would (no Docker here)."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from standins.aws import ACCOUNT_ID

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_ms: int = 300_000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_handler(function: str) -> ModuleType:
    """Import functions/<function>/app.py under a name of its own (all three files are `app.py`)."""
    name = f"handler_{function}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "functions" / function / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def unload_handlers() -> None:
    """Forget imported handlers: their module-level clients point at the previous stack's ports."""
    for name in [n for n in sys.modules if n.startswith("handler_")]:
        del sys.modules[name]


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def invoke(function: str, payload: dict[str, Any]) -> Any:
    handler = load_handler(function).handler
    return handler(payload, LambdaContext(function_name=f"teleport-argocd-{function}"))


def drain_runs(queue_url: str, sqs: Any) -> list[Any]:
    """Deliver every queued output run to the worker function, one message per invocation, as the
    template's SQS event source (batch size 1) does; returns the worker's answers. The record
    shape is Lambda's SQS event (AWS Lambda developer guide, "Using Lambda with Amazon SQS")."""
    answers: list[Any] = []
    while True:
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=0)
        messages = received.get("Messages", [])
        if not messages:
            return answers
        [message] = messages
        record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:" + queue_url.rsplit("/", 1)[-1])
        answer = invoke("worker", {"Records": [record]})
        answers.append(answer)
        if not answer["batchItemFailures"]:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def sqs_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A received message as Lambda's SQS event carries it (AWS Lambda developer guide, "Using Lambda
    with Amazon SQS")."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def deliver_audit_events(queue_url: str, sqs: Any) -> list[tuple[dict[str, Any], Any]]:
    """Hand every event the audit rule matched to the audit function, as EventBridge would invoke
    it; returns (event, answer) pairs. The rule's target here is a queue holding the envelopes."""
    answers: list[tuple[dict[str, Any], Any]] = []
    while True:
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = received.get("Messages", [])
        if not messages:
            return answers
        for message in messages:
            envelope = json.loads(message["Body"])
            # EventBridge's event structure always carries `account` (EventBridge user guide, "AWS
            # service event metadata"); moto's SQS target leaves it out, so it is filled in here.
            envelope.setdefault("account", ACCOUNT_ID)
            answers.append((envelope, invoke("audit_event", envelope)))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def emitted_metrics(out: str) -> dict[str, float]:
    """The EMF metrics Powertools printed to stdout: name → value, summed over records."""
    metrics: dict[str, float] = {}
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            for definition in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = record[definition["Name"]]
                value = sum(value) if isinstance(value, list) else value
                metrics[definition["Name"]] = metrics.get(definition["Name"], 0) + value
    return metrics
