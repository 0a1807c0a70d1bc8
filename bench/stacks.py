"""What the warm-invocation benches share: the simulated clusters, the functions' environment, the
events they send and the way they count and print requests."""

from __future__ import annotations

import os
import statistics
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from warm import WRITE_METHODS

from standins import handlers
from standins.kubeapi import KubeApiServer
from standins.stack import LocalStack

# Selected by the default output (env=prod); `team` feeds its secret_labels template.
LABELS = {"env": "prod", "team": "bench"}


def clusters(size: int) -> dict[str, dict[str, str]]:
    return {f"cluster-{i:05d}": dict(LABELS) for i in range(size)}


def function_env(stack: LocalStack) -> dict[str, str]:
    """This shell's environment with the template's variables for the functions on top."""
    return {**os.environ, **stack.env()}


def kube_create(name: str, labels: Mapping[str, str] = LABELS) -> dict[str, Any]:
    """The EventBridge envelope of a `kube.create` audit event, unique so idempotency never drops it."""
    envelope = handlers.event("kube_create.json")
    envelope["id"] = str(uuid.uuid4())
    envelope["detail"].update(uid=str(uuid.uuid4()), name=name, kube_labels=dict(labels))
    return envelope


def kube_requests(kube: KubeApiServer, since: int) -> Counter[str]:
    """The requests the Kubernetes stand-in served after the first `since`, by HTTP method."""
    return Counter(r.method for r in kube.requests[since:])


def kube_writes(requests: Mapping[str, int]) -> int:
    return sum(n for method, n in requests.items() if method in WRITE_METHODS)


def ops(counts: Mapping[str, float]) -> str:
    """`{"t:GetItem": 1}` → `GetItem 1`; the table is left out when only one table is involved."""
    one_table = len({key.partition(":")[0] for key in counts}) <= 1
    name = {k: k.partition(":")[2] if one_table and ":" in k else k for k in counts}
    return ", ".join(f"{name[k]} {v:g}" for k, v in sorted(counts.items())) or "none"


def median_counts(samples: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Per key, the median over samples (a key a sample lacks counts 0 there)."""
    rows = list(samples)
    keys = sorted({k for r in rows for k in r})
    return {k: statistics.median(r.get(k, 0) for r in rows) for k in keys}


def sqs_record(body: str) -> dict[str, Any]:
    """One message as Lambda's SQS event source hands it to the worker (batch size 1 in the template)."""
    message = {"MessageId": str(uuid.uuid4()), "ReceiptHandle": "bench", "Body": body, "MD5OfBody": ""}
    return handlers.sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:teleport-argocd-output-runs")
