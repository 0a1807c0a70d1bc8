"""The IAM join as a Machine ID bot, over either of Teleport's join protocols.

`teleport.join.v1.JoinService/Join` is tried first; proxies that predate it (Teleport 17, 18.0)
answer UNIMPLEMENTED and get `proto.JoinService/RegisterUsingIAMMethod` instead. Both are
bidirectional streams with one challenge round trip; they differ in message shapes and encodings
(PEM and authorized_keys in the legacy protocol, DER and SSH wire format in the new one).

The fallback follows tbot's client (`lib/join/joinclient/join.go`, `Join` and `joinWithClient`):
the legacy protocol is used when the new one fails with NotImplemented (gRPC UNIMPLEMENTED) at any
step, or with a "connection error", which there means any failure to open the stream, send
`ClientInit` or receive `ServerInit`, except AccessDenied (PERMISSION_DENIED) and BadParameter
(INVALID_ARGUMENT) on that first answer. A first answer of the wrong type is BadParameter too.
Later failures are final, as is any failure of the legacy protocol.

Both protocols run over any tunnel: the proxy's unauthenticated join route for a first join, or
the mutual-TLS route to Auth, which serves the same two services (`lib/auth/grpcserver.go`), when
a rejoin presents the current bot certificate.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from botocore.credentials import Credentials, ReadOnlyCredentials
from botocore.exceptions import BotoCoreError
from google.protobuf.timestamp_pb2 import Timestamp

from teleport_argocd.errors import JoinError
from teleport_argocd.teleport import keys
from teleport_argocd.teleport.iam import signed_identity_request
from teleport_argocd.teleport.identity import der_to_pem
from teleport_argocd.teleport.lifecycle import classify
from teleport_argocd.teleport.proto import (
    join_v1_pb2,
    join_v1_pb2_grpc,
    joinservice_pb2,
    joinservice_pb2_grpc,
    types_pb2,
)
from teleport_argocd.teleport.tunnel import Tunnel

logger = logging.getLogger("teleport_argocd.teleport")

NEW_PROTOCOL = "teleport.join.v1"
LEGACY_PROTOCOL = "proto.JoinService"
BOT_ROLE = "Bot"
# Teleport gives the whole join about a minute server-side.
JOIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class JoinResult:
    """The bot's certificate and key, and the CA certificates (user CA, then host CA) to trust Auth with."""

    protocol: str
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    ca_pems: list[bytes] = field(repr=False)


@dataclass(frozen=True)
class JoinRequest:
    """What a join needs besides the channel."""

    token: str
    credentials: Credentials | ReadOnlyCredentials = field(repr=False)
    region: str
    fips: bool
    suite: str  # the proxy's signature algorithm suite, used where the protocol does not announce one
    ttl: timedelta


def join_bot(tunnel: Tunnel, request: JoinRequest) -> JoinResult:
    """Joins with the new protocol, falling back to the legacy one by tbot's rules (module docstring)."""
    try:
        return _join_new(tunnel, request)
    except _FallBack as exc:
        logger.info("joining with %s failed (%s); joining with %s", NEW_PROTOCOL, exc, LEGACY_PROTOCOL)
    return _join_legacy(tunnel, request)


def _join_new(tunnel: Tunnel, request: JoinRequest) -> JoinResult:
    stub = join_v1_pb2_grpc.JoinServiceStub(tunnel.channel)
    path = "/teleport.join.v1.JoinService/Join"
    with _Stream(tunnel, stub.Join, path, request.token, may_fall_back=True) as stream:
        stream.send(
            join_v1_pb2.JoinRequest(
                client_init=join_v1_pb2.ClientInit(
                    join_method="iam", token_name=request.token, system_role=BOT_ROLE
                )
            )
        )
        init = stream.receive("init").init
        key = keys.generate_key(init.signature_algorithm_suite or request.suite)
        stream.send(
            join_v1_pb2.JoinRequest(
                iam_init=join_v1_pb2.IAMInit(
                    client_params=join_v1_pb2.ClientParams(
                        bot_params=join_v1_pb2.BotParams(
                            public_keys=join_v1_pb2.PublicKeys(
                                public_tls_key=keys.public_key_der(key), public_ssh_key=keys.ssh_wire(key)
                            ),
                            expires=_expires(request.ttl),
                        )
                    )
                )
            )
        )
        challenge = stream.receive("challenge").challenge.iam_challenge.challenge
        try:
            signed = _sign(request, challenge)
        except JoinError as exc:
            # Tell the server why, as Teleport's own client does, so its logs show the cause too.
            stream.send(
                join_v1_pb2.JoinRequest(
                    giving_up=join_v1_pb2.GivingUp(
                        reason=join_v1_pb2.GivingUp.REASON_CHALLENGE_SOLUTION_FAILED, msg=str(exc)
                    )
                )
            )
            raise
        stream.send(
            join_v1_pb2.JoinRequest(
                solution=join_v1_pb2.ChallengeSolution(
                    iam_challenge_solution=join_v1_pb2.IAMChallengeSolution(sts_identity_request=signed)
                )
            )
        )
        certs = stream.receive("result").result.bot_result.certificates
    return JoinResult(
        protocol=NEW_PROTOCOL,
        cert_pem=der_to_pem(certs.tls_cert),
        key_pem=keys.private_key_pem(key),
        ca_pems=[der_to_pem(c) for c in certs.tls_ca_certs],
    )


def _join_legacy(tunnel: Tunnel, request: JoinRequest) -> JoinResult:
    stub = joinservice_pb2_grpc.JoinServiceStub(tunnel.channel)
    key = keys.generate_key(request.suite)
    path = "/proto.JoinService/RegisterUsingIAMMethod"
    with _Stream(tunnel, stub.RegisterUsingIAMMethod, path, request.token) as stream:
        challenge = stream.receive().challenge  # a plain string field, nothing to check presence of
        stream.send(
            joinservice_pb2.RegisterUsingIAMMethodRequest(
                register_using_token_request=types_pb2.RegisterUsingTokenRequest(
                    Token=request.token,
                    Role=BOT_ROLE,
                    PublicTLSKey=keys.public_key_pem(key),
                    PublicSSHKey=keys.ssh_authorized_key(key),
                    Expires=_expires(request.ttl),
                ),
                sts_identity_request=_sign(request, challenge),
            )
        )
        certs = stream.receive("certs").certs
    return JoinResult(
        protocol=LEGACY_PROTOCOL,
        cert_pem=certs.TLS,
        key_pem=keys.private_key_pem(key),
        ca_pems=list(certs.TLSCACerts),
    )


def _sign(request: JoinRequest, challenge: str) -> bytes:
    if not challenge:
        raise JoinError("Teleport sent an empty IAM join challenge")
    try:
        return signed_identity_request(request.credentials, request.region, challenge, fips=request.fips)
    except BotoCoreError as exc:
        raise JoinError(f"cannot sign sts:GetCallerIdentity for the IAM join: {exc}") from exc


def _expires(ttl: timedelta) -> Timestamp:
    expires = Timestamp()
    expires.FromDatetime(datetime.now(UTC) + ttl)
    return expires


class _FallBack(Exception):
    """The new protocol failed in a way that sends tbot to the legacy one."""


class _Stream:
    """One bidirectional join stream driven step by step: send a message, wait for the answer.

    grpcio consumes requests from an iterator on its own thread; a queue feeds it, and closing the
    stream ends that iterator so the thread always finishes.
    """

    _END = object()

    # What trace makes of these codes (trail.FromGRPC) is what tbot never falls back on at ServerInit.
    _FINAL_AT_FIRST_ANSWER = frozenset({grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT})

    def __init__(
        self,
        tunnel: Tunnel,
        method: Callable[..., Any],
        path: str,
        token: str,
        *,
        may_fall_back: bool = False,
    ) -> None:
        self._tunnel, self._path, self._token = tunnel, path, token
        self._may_fall_back = may_fall_back
        self._answered = False
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._responses = method(self._iterate(), timeout=JOIN_TIMEOUT)

    def __enter__(self) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._requests.put(self._END)
        self._responses.cancel()

    def send(self, message: Any) -> None:
        self._requests.put(message)

    def receive(self, expected: str | None = None) -> Any:
        """The next message; `expected` names the field it must carry (a message field or oneof member)."""
        first, self._answered = not self._answered, True
        try:
            message = next(self._responses)
        except StopIteration:
            if first and self._may_fall_back:
                raise _FallBack("the stream ended before the first answer") from None
            raise JoinError(f"{self._path}: Teleport ended the join early") from None
        except grpc.RpcError as exc:
            raise self._error(exc, first=first) from exc
        if expected is not None and not message.HasField(expected):
            got = message.WhichOneof("payload") if "payload" in message.DESCRIPTOR.oneofs_by_name else None
            raise JoinError(f"{self._path}: expected {expected} from Teleport, got {got or 'something else'}")
        return message

    def _iterate(self) -> Iterator[Any]:
        while (message := self._requests.get()) is not self._END:
            yield message

    def _error(self, exc: grpc.RpcError, *, first: bool) -> Exception:
        code, details = self._tunnel.status(exc)
        if self._may_fall_back and (
            code == grpc.StatusCode.UNIMPLEMENTED or (first and code not in self._FINAL_AT_FIRST_ANSWER)
        ):
            return _FallBack(f"{code.name}: {details}")
        failure = classify(code.name, details, token=self._token)
        if failure is not None:  # a lock, a deleted bot, allow rules that no longer match
            return failure
        return JoinError(
            f"joining with token {self._token!r} via {self._path} failed: {code.name}: {details}"
        )
