"""The `version` gRPC metadata every call to Teleport carries, as Teleport's own clients send it.

Go clients add `version: <api module version>` to every unary and streaming call through
interceptors (`api/metadata/metadata.go`: `StreamClientInterceptor`, `UnaryClientInterceptor`,
value `api/constants.Version`). Auth reads it in `lib/auth/middleware.go` `ValidateClientVersion`:
a missing value is accepted, a value that is not semver, or older than the oldest version the
cluster supports (`teleport.MinClientSemVer()`: the previous major's `.0.0-aa`), is refused and the
connection closed. grpcio's client interceptors are the counterpart of Go's, so one interceptor on
each channel covers every call, the joins included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc

VERSION_KEY = "version"
# The Teleport release whose protocol our messages were checked against (the reference facts
# were read in Teleport 18.0.0's sources). Clusters refuse a client older than their previous
# major, so 18.0.0 is accepted by Teleport 17, 18 and 19; move it when the protocol is re-checked
# against a newer release, and before Teleport 20 (which will refuse anything below 19.0.0-aa).
CLIENT_VERSION = "18.0.0"


class VersionMetadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `version: CLIENT_VERSION` to the metadata of every call, keeping what the call already has."""

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(_with_version(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(_with_version(details), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Iterator[Any]
    ) -> Any:
        return continuation(_with_version(details), requests)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Iterator[Any]
    ) -> Any:
        return continuation(_with_version(details), requests)


class _CallDetails(grpc.ClientCallDetails):
    # grpc.ClientCallDetails is an abstract attribute holder; grpcio provides no concrete one.
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str | bytes]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


def _with_version(details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
    metadata = list(details.metadata or ())
    if not any(key == VERSION_KEY for key, _ in metadata):
        metadata.append((VERSION_KEY, CLIENT_VERSION))
    return _CallDetails(details, metadata)
