"""One Lambda execution environment in a fresh process: the worker handler, invoked as SQS invokes it.

    python bench/lambda_process.py OUTPUT RUNS

The clock starts before anything but `time` is imported, so the first (cold) invocation's time
includes loading the handler and the layer, as a cold start's does; the later ones are a warm
environment's. Each invocation is one SQS record asking for a forced renewal of OUTPUT (the
message `teleport_argocd.fanout` queues, built here by hand so that nothing of the package loads
before the clock). Reports, as the last stdout line after `RESULT_MARK`, each invocation's wall
time and this process's CPU time (user + system, every thread; `time.process_time`), the
DynamoDB write requests it sent (a botocore hook reading one header), the time it spent waiting
for DynamoDB by operation (client side, retries included) and its peak memory (VmHWM). The
environment (endpoints, credentials, tables) comes from the parent, which hosts the stand-ins:
nothing here shares an interpreter with them.
"""

from __future__ import annotations

import time

STARTED, STARTED_CPU = time.perf_counter(), time.process_time()

import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULT_MARK = "LAMBDA-PROCESS-RESULT "
WRITES = frozenset({"BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"})


class Context:
    """The attributes of the Lambda context object that Powertools reads."""

    function_name = "teleport-argocd-worker"
    memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"))  # as Lambda sets it
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:teleport-argocd-worker"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def sqs_event(output: str) -> dict[str, Any]:
    """Lambda's SQS event (batch size 1) carrying one queued forced renewal of `output`."""
    body = {"output": output, "kind": "reload", "reason": "benchmark", "renew": "all", "shard": "0/1"}
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "bench",
                "body": json.dumps(body),
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:teleport-argocd-output-runs",
                "awsRegion": "us-east-1",
            }
        ]
    }


def vm_hwm_mb() -> float:
    """This process's own peak resident set (VmHWM, reset by exec), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(output: str, runs: int) -> None:
    # Lambda's order: the function's folder, then the layer (here the dev venv's packages follow).
    sys.path[:0] = [str(ROOT / "functions" / "worker"), str(ROOT / "layers" / "core")]
    spec = importlib.util.spec_from_file_location("app", ROOT / "functions" / "worker" / "app.py")
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    imported, imported_cpu = time.perf_counter(), time.process_time()
    writes = [0]
    waited: dict[str, float] = {}
    calls = threading.local()

    def count(request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        operation = (target.decode() if isinstance(target, bytes) else target).rpartition(".")[2]
        writes[0] += operation in WRITES

    def start(**_: Any) -> None:
        calls.started = time.perf_counter()

    def stop(model: Any, **_: Any) -> None:
        waited[model.name] = waited.get(model.name, 0.0) + time.perf_counter() - calls.started

    app.session.events.register("before-send.dynamodb", count)
    app.session.events.register("before-call.dynamodb", start)
    app.session.events.register("after-call.dynamodb", stop)
    results = []
    started, cpu = STARTED, STARTED_CPU  # the first invocation's clock includes the import
    for _ in range(runs):
        writes[0] = 0
        waited.clear()
        answer = app.handler(sqs_event(output), Context())
        now, now_cpu = time.perf_counter(), time.process_time()
        results.append(
            {
                "seconds": now - started,
                "cpu_seconds": now_cpu - cpu,
                "answer": answer,
                "dynamodb_writes": writes[0],
                "dynamodb_seconds": dict(waited),
            }
        )
        started, cpu = time.perf_counter(), time.process_time()
    report = {
        "import_seconds": imported - STARTED,
        "import_cpu_seconds": imported_cpu - STARTED_CPU,
        "runs": results,
        "peak_mb": vm_hwm_mb(),
    }
    print(RESULT_MARK + json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
