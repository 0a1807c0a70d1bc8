"""Each function in an execution environment of its own: a process with only its environment and role.

In Lambda every function runs in its own execution environments, with the variables the template
gives it and its own role's credentials, and a warm environment keeps its module state between
invocations. Running all handlers in one test process would share the layer's module state (the
bot keeper, boto3 sessions) and one set of credentials; here each function gets a process of its
own (`multiprocessing`, spawned), started once and invoked as often as a test likes, warm.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

# Kept from the test process: what Python and TLS need, nothing of AWS.
_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "PYTHONHASHSEED")


class FunctionError(Exception):
    """The handler raised: Lambda reports it as a function error (and retries an async invoke)."""

    def __init__(self, kind: str, message: str, trace: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.trace = trace


def _serve(conn: Connection, function: str, handler: str, env: Mapping[str, str]) -> None:
    for name in list(os.environ):
        if name not in _KEEP:
            del os.environ[name]
    os.environ.update(env)
    from standins.handlers import LambdaContext, load_handler

    entry = getattr(load_handler(function), handler)
    while True:
        payload = conn.recv()
        if payload is None:
            return
        try:
            answer = entry(payload, LambdaContext(function_name=f"teleport-argocd-{function}"))
            conn.send(("ok", answer))
        except Exception as exc:
            conn.send(("error", (type(exc).__name__, str(exc), traceback.format_exc())))


@dataclass
class ExecutionEnvironment:
    """One function's warm execution environment: `invoke` runs its handler there."""

    function: str  # the folder under functions/
    env: Mapping[str, str]
    handler: str = "handler"
    _conn: Connection | None = field(default=None, repr=False)
    _proc: BaseProcess | None = field(default=None, repr=False)

    def start(self) -> ExecutionEnvironment:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._proc = context.Process(
            target=_serve, args=(child, self.function, self.handler, dict(self.env)), daemon=True
        )
        self._proc.start()
        return self

    def invoke(self, payload: Any, timeout: float = 300.0) -> Any:
        if self._conn is None:
            self.start()
        assert self._conn is not None
        self._conn.send(payload)
        if not self._conn.poll(timeout):
            raise TimeoutError(f"{self.function} did not answer within {timeout} s")
        status, answer = self._conn.recv()
        if status == "error":
            raise FunctionError(*answer)
        return answer

    def stop(self) -> None:
        if self._conn is not None and self._proc is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self._conn = self._proc = None
