"""The `version` metadata interceptor, against a real gRPC server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from standins.teleport.rpc import version_supported
from teleport_argocd.teleport.metadata import CLIENT_VERSION, VersionMetadata


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    versions = [v for k, v in context.invocation_metadata() if k == "version"]
    return ",".join(str(v) for v in versions).encode()


def _echo_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for _ in requests:
        yield _echo(b"", context)


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_echo),
        "Stream": grpc.stream_stream_rpc_method_handler(_echo_stream),
    }
    with ThreadPoolExecutor(max_workers=2) as executor:
        server = grpc.server(executor)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Echo", handlers)])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        with grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{port}"), VersionMetadata()) as channel:
            yield channel
        server.stop(grace=None).wait()


def test_the_version_is_a_semver_teleport_accepts() -> None:
    assert version_supported(CLIENT_VERSION)


def test_unary_and_streaming_calls_carry_the_version(channel: grpc.Channel) -> None:
    unary: Any = channel.unary_unary("/test.Echo/Unary")
    stream: Any = channel.stream_stream("/test.Echo/Stream")
    assert unary(b"") == CLIENT_VERSION.encode()
    assert list(stream(iter([b"", b""]))) == [CLIENT_VERSION.encode()] * 2


def test_a_version_the_call_already_sets_is_kept(channel: grpc.Channel) -> None:
    unary: Any = channel.unary_unary("/test.Echo/Unary")
    assert unary(b"", metadata=[("version", "17.5.0"), ("other", "x")]) == b"17.5.0"
