"""gRPC plumbing shared by the join and Auth servers: errors as statuses, call counting, version check."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc

from standins.teleport.state import Cluster

F = TypeVar("F", bound=Callable[..., Any])

# Teleport 18 refuses clients older than the previous major (`17.0.0-aa` admits 17 pre-releases too).
OLDEST_SUPPORTED = (17, 0, 0)
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


class Refused(Exception):
    """An RPC failed the way Teleport would fail it; carries the gRPC status the client sees."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def denied(message: str) -> Refused:
    """`trace.AccessDenied` reaches gRPC clients as PERMISSION_DENIED."""
    return Refused(grpc.StatusCode.PERMISSION_DENIED, message)


def bad_parameter(message: str) -> Refused:
    """`trace.BadParameter` reaches gRPC clients as INVALID_ARGUMENT."""
    return Refused(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> Refused:
    return Refused(grpc.StatusCode.NOT_FOUND, message)


def refusals_as_status(method: F) -> F:
    """Turn `Refused` raised by a servicer method (plain or streaming) into the call's status."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def streaming(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from method(self, request, context)
            except Refused as e:
                context.abort(e.code, e.message)

        return streaming  # type: ignore[return-value]

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Refused as e:
            context.abort(e.code, e.message)

    return unary  # type: ignore[return-value]


def version_supported(version: str) -> bool:
    """Semver (no leading `v`) and at least 17.0.0-aa, as Teleport's client version check requires."""
    m = _SEMVER.fullmatch(version)
    if m is None:
        return False
    core = tuple(int(x) for x in m.group(1, 2, 3))
    if core != OLDEST_SUPPORTED:
        return core > OLDEST_SUPPORTED
    pre = m.group(4)
    if pre is None:
        return True
    first, *rest = pre.split(".")
    # A numeric identifier sorts below any alphanumeric one, so `17.0.0-1` < `17.0.0-aa`.
    return not first.isdigit() and (first > "aa" or (first == "aa" and bool(rest)))


def _failing_handler(
    handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    def fail(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(fail)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(fail)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(fail)
    return grpc.unary_unary_rpc_method_handler(fail)


class _CallGate(grpc.ServerInterceptor):
    """Counts every call with its `version` metadata, refusing a value Teleport would refuse.

    Teleport's check (`lib/auth/middleware.go` `ValidateClientVersion`): no value passes; a value
    that is not semver, or older than `teleport.MinClientSemVer()`, is refused.
    """

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        version = dict(details.invocation_metadata or ()).get("version")
        self._cluster.count_call(details.method, None if version is None else str(version))
        handler = continuation(details)
        if handler is not None and version is not None and not version_supported(str(version)):
            return _failing_handler(
                handler, grpc.StatusCode.PERMISSION_DENIED, "client version is unsupported"
            )
        return handler


def new_server(cluster: Cluster, executor: ThreadPoolExecutor) -> grpc.Server:
    """A gRPC server counting and version-checking every call; the caller owns (and shuts down) `executor`."""
    return grpc.server(executor, interceptors=[_CallGate(cluster)], options=[("grpc.so_reuseport", 0)])
