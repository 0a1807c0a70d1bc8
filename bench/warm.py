"""A warm Lambda execution environment in a child process, and the DynamoDB request counter.

The child loads handlers once (as Lambda's init phase does) and then takes one invocation per
line on stdin, answering one JSON line on its own channel: its wall time, the DynamoDB requests it
made by table and operation (a botocore `before-send` hook, so retries count) and the handler's
answer. The handlers' own stdout (Powertools logs and metrics) goes to stderr, into a file the
parent shows when the child fails. Kubernetes requests are counted by the stand-in, in the parent.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Any

from cpu_share import CpuShare

ROOT = Path(__file__).resolve().parents[1]
PATHS = [str(ROOT / "layers" / "core"), str(ROOT / "tests")]
DYNAMODB_WRITES = frozenset({"BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems"})
INVOKE_TIMEOUT = 900.0  # seconds; an invocation past this is broken, not slow
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# template.yaml's default LogLevel: the functions' log lines cost CPU too, so they are measured.
LOG_LEVEL = "INFO"


def vm_hwm_mb() -> float:
    """This process's own peak resident set (VmHWM, reset by exec), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


class DynamoCounter:
    """DynamoDB requests by operation and table, and the items BatchWriteItem carried.

    `registration_items` counts the PutRequests whose sort key is a registration's (`reg#…`).
    """

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()  # "table:Operation"
        self.seconds: Counter[str] = Counter()  # "Operation": client time, retries included
        self.batch_items = 0
        self.registration_items = 0
        self._started = threading.local()

    def reset(self) -> None:
        self.requests.clear()
        self.seconds.clear()
        self.batch_items = self.registration_items = 0

    def attach(self, events: Any) -> None:
        """Count every request sent by clients created from `events` (a session's or a client's)."""
        events.register("before-send.dynamodb", self._count)
        events.register("before-call.dynamodb", self._start)
        events.register("after-call.dynamodb", self._stop)

    def _start(self, **_: Any) -> None:
        self._started.at = time.perf_counter()

    def _stop(self, model: Any, **_: Any) -> None:
        self.seconds[model.name] += time.perf_counter() - self._started.at

    def _count(self, request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        operation = (target.decode() if isinstance(target, bytes) else target).rpartition(".")[2]
        body = json.loads(request.body or b"{}")
        if operation == "BatchGetItem":
            for table in body.get("RequestItems", {}):
                self.requests[f"{table}:{operation}"] += 1
            return
        if operation == "BatchWriteItem":
            for table, items in body.get("RequestItems", {}).items():
                self.requests[f"{table}:{operation}"] += 1
                self.batch_items += len(items)
                keys = [i.get("PutRequest", {}).get("Item", {}).get("sk", {}).get("S", "") for i in items]
                self.registration_items += sum(1 for k in keys if k.startswith("reg#"))
            return
        self.requests[f"{body.get('TableName', '?')}:{operation}"] += 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "writes": sum(n for k, n in self.requests.items() if k.rpartition(":")[2] in DYNAMODB_WRITES),
            "seconds": dict(self.seconds),
            "reads": sum(n for k, n in self.requests.items() if k.rpartition(":")[2] not in DYNAMODB_WRITES),
            "batch_items": self.batch_items,
            "registration_items": self.registration_items,
        }


# -- the child --------------------------------------------------------------------------------


def serve(functions: list[str]) -> None:
    """Load `functions`' handlers, then answer invocations from stdin until it closes."""
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # everything else the process prints goes to stderr
    sys.stdout = sys.stderr
    sys.path[:0] = PATHS
    import importlib
    import pkgutil

    import teleport_argocd
    from standins.handlers import invoke, load_handler

    # The whole package before any clock: a warm environment has imported what it uses.
    for module in pkgutil.walk_packages(teleport_argocd.__path__, "teleport_argocd."):
        importlib.import_module(module.name)
    counter = DynamoCounter()
    for function in functions:
        _attach(counter, load_handler(function))
    print(json.dumps({"ready": True}), file=channel, flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        counter.reset()
        started_at, started, cpu = time.time(), time.perf_counter(), time.process_time()
        answer = invoke(command["function"], command["event"])
        seconds = time.perf_counter() - started
        result = {
            "started_at": started_at,  # epoch seconds, to compare with what a stand-in recorded
            "seconds": seconds,
            "cpu_seconds": time.process_time() - cpu,
            "dynamodb": counter.snapshot(),
            "answer": answer,
            "peak_mb": vm_hwm_mb(),
        }
        print(json.dumps(result, default=str), file=channel, flush=True)


def _attach(counter: DynamoCounter, handler: ModuleType) -> None:
    """The handler's session: each invocation's clients, the idempotency store's included, come from it."""
    counter.attach(handler.session.events)


# -- the parent -------------------------------------------------------------------------------


class WarmFunction:
    """`with WarmFunction(env, ["audit_event"]) as warm: warm.invoke("audit_event", event)`.

    With `memory_mb`, the child runs at the CPU share Lambda gives that memory size (`cpu_share.py`).
    """

    def __init__(self, env: Mapping[str, str], functions: list[str], memory_mb: int | None = None) -> None:
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.share = CpuShare(memory_mb) if memory_mb is not None else None
        argv = [sys.executable, __file__, *functions]
        sized = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb)} if memory_mb is not None else {}
        self._process = subprocess.Popen(
            self.share.command(argv) if self.share else argv,
            env={**env, **sized, "PYTHONPATH": os.pathsep.join(PATHS), "POWERTOOLS_LOG_LEVEL": LOG_LEVEL},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self._read()  # ready

    def invoke(self, function: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """One invocation; its wall time (in the child), DynamoDB requests and the handler's answer."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"function": function, "event": event}) + "\n")
        self._process.stdin.flush()
        return self._read()

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], INVOKE_TIMEOUT)
        line = self._process.stdout.readline() if ready else ""
        if line:
            result: dict[str, Any] = json.loads(line)
            return result
        self._process.kill()
        self._process.wait()
        self._log.seek(0)
        tail = self._log.read().decode(errors="replace")[-4000:]
        raise RuntimeError(f"warm function exited ({self._process.poll()}):\n{tail}")

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()
        if self.share is not None:
            self.share.close()

    def __enter__(self) -> WarmFunction:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


if __name__ == "__main__":
    serve(sys.argv[1:])
