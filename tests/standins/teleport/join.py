"""The IAM join for bots, over both of Teleport's join protocols.

`proto.JoinService/RegisterUsingIAMMethod` (every version) and `teleport.join.v1.JoinService/Join`
(later 18.x minors; switchable off to answer UNIMPLEMENTED like 17 and 18.0) share one
admission path: token checks, the STS proof, the token's allow rules, then a bot certificate.

The services run on the proxy's unauthenticated join route and on Auth's mutual-TLS server, as in
Teleport (`lib/auth/grpcserver.go` registers both join services on Auth). A join whose caller
presents a valid certificate of the token's bot continues that certificate's bot instance;
anything else starts a new one (`lib/joinserver/joinserver.go` `setBotParameters`: the instance ID
comes only from an authenticated caller's certificate).
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from standins.teleport import ca, sts
from standins.teleport.rpc import Refused, bad_parameter, denied, refusals_as_status
from standins.teleport.state import Cluster, IamToken
from teleport_argocd.teleport.proto import (
    certs_pb2,
    join_v1_pb2,
    join_v1_pb2_grpc,
    joinservice_pb2,
    joinservice_pb2_grpc,
)

T = TypeVar("T")

# Without a requested expiry a bot certificate lives an hour (`DefaultRenewableCertTTL`); any
# request is capped by `MaxRenewableCertTTL` (7 days) and the bot role's `max_session_ttl`
# (Correction 1).
DEFAULT_BOT_TTL = dt.timedelta(hours=1)
MAX_RENEWABLE_CERT_TTL = dt.timedelta(days=7)


def presented_identity(context: grpc.ServicerContext) -> ca.Identity | None:
    """The identity of the client certificate the caller proved, if any (Auth's route only)."""
    pem = (context.auth_context().get("x509_pem_cert") or [b""])[0]
    return ca.Identity.from_certificate(x509.load_pem_x509_certificate(pem)) if pem else None


def new_challenge() -> str:
    """32 random bytes, standard base64 without padding (`base64.RawStdEncoding`)."""
    return base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")


@dataclass(frozen=True)
class BotCredentials:
    tls_cert: x509.Certificate
    ssh_cert: bytes  # authorized_keys line, empty when no SSH key was sent
    tls_cas: tuple[x509.Certificate, ...]  # user CA certificates, then host CA ones
    ssh_ca_keys: tuple[bytes, ...]  # authorized_keys lines


class IamJoiner:
    """Admission and certificate issuance shared by both protocols."""

    def __init__(self, cluster: Cluster, sts_endpoint: str) -> None:
        self._cluster = cluster
        self._sts_endpoint = sts_endpoint

    def check_token(self, token_name: str, role: str) -> IamToken:
        """Teleport's `checkTokenJoinRequestCommon` plus the join-method check."""
        token = self._cluster.token(token_name)
        if token is None:
            raise denied(f'"" can not join the cluster with role "{role}", token expired or not found')
        if role not in token.roles:
            raise denied(f'token "{token_name}" does not allow role "{role}"; it allows {list(token.roles)}')
        if token.join_method != "iam":
            raise denied("this token does not support the IAM join method")
        return token

    def verify(self, token: IamToken, challenge: str, sts_request: bytes) -> sts.AwsIdentity:
        """The STS proof and the token's allow rules; any matching rule admits."""
        request = sts.parse_request(sts_request)
        sts.validate(request, challenge, self._cluster.fips)
        identity = sts.execute(request, self._sts_endpoint)
        for rule in token.allow:
            if rule.aws_account and rule.aws_account != identity.account:
                continue
            if rule.aws_arn and not sts.arn_matches(rule.aws_arn, identity.arn):
                continue
            return identity
        raise denied(f"instance {identity.arn} did not match any allow rules in token {token.name}")

    def issue(
        self,
        token: IamToken,
        tls_key: ca.TlsPublicKey,
        ssh_key: ca.SshPublicKey | None,
        expires: dt.datetime | None,
        caller: ca.Identity | None,
    ) -> BotCredentials:
        bot = self._cluster.bot(token.bot_name)
        role = self._cluster.role(f"bot-{token.bot_name}")
        if bot is None or role is None:
            # `generateInitialBotCerts` hides the failed user lookup behind a bare AccessDenied.
            raise denied("access denied")
        presented = caller.bot_instance_id if caller is not None and caller.is_bot else ""
        # `generateUserCert` refuses a certificate for a locked user or role (the presented bot
        # instance too, through the authorizer of Auth's mutual-TLS route).
        lock = self._cluster.lock_in_force(bot.username, (bot.username,), presented)
        if lock is not None:
            raise denied(lock.refusal())
        start = ca.now()
        not_after = min(
            expires or start + DEFAULT_BOT_TTL, start + MAX_RENEWABLE_CERT_TTL, start + role.max_session_ttl
        )
        if not_after <= start:
            raise bad_parameter("requested certificate expiry is in the past")
        instance = self._cluster.bot_instance_for_join(bot.name, presented)
        identity = ca.Identity(
            username=bot.username,
            roles=(bot.username,),
            teleport_cluster=self._cluster.name,
            route_to_cluster=self._cluster.name,
            bot_name=bot.name,
            bot_instance_id=instance.id,
        )
        tls_cert = self._cluster.user_ca.issue_client(identity, tls_key, not_after)
        ssh_cert = (
            self._cluster.user_ca.issue_ssh_user(
                bot.username, ssh_key, ["-teleport-internal-join"], not_after
            )
            if ssh_key is not None
            else b""
        )
        return BotCredentials(
            tls_cert=tls_cert,
            ssh_cert=ssh_cert,
            # Every trusted certificate of the user CA, then of the host CA (`services.GetTLSCerts`).
            tls_cas=tuple(a.cert for a in self._cluster.user.trusted + self._cluster.host.trusted),
            ssh_ca_keys=(self._cluster.host_ca.ssh_public_line,),
        )


def _keys(tls: bytes, ssh: bytes, *, wire: bool) -> tuple[ca.TlsPublicKey, ca.SshPublicKey | None]:
    """Parse the client's public keys: PEM + authorized_keys (legacy) or DER + SSH wire (join v1)."""
    if not tls:
        raise bad_parameter("missing TLS public key")
    try:
        tls_key = ca.tls_public_key_from_der(tls) if wire else ca.tls_public_key_from_pem(tls)
        if not ssh:
            return tls_key, None
        return tls_key, ca.ssh_public_key_from_wire(ssh) if wire else ca.ssh_public_key_from_text(ssh)
    except ca.BadPublicKey as e:
        raise bad_parameter(str(e)) from e


def _receive(requests: Iterator[T]) -> T:
    message = next(requests, None)
    if message is None:
        raise bad_parameter("the client closed the stream before sending the expected message")
    return message


class LegacyJoinService(joinservice_pb2_grpc.JoinServiceServicer):
    """`/proto.JoinService/RegisterUsingIAMMethod`: challenge first, then one request, then certs (PEM)."""

    def __init__(self, joiner: IamJoiner) -> None:
        self._joiner = joiner

    @refusals_as_status
    def RegisterUsingIAMMethod(
        self, requests: Iterator[joinservice_pb2.RegisterUsingIAMMethodRequest], context: grpc.ServicerContext
    ) -> Iterator[joinservice_pb2.RegisterUsingIAMMethodResponse]:
        challenge = new_challenge()
        yield joinservice_pb2.RegisterUsingIAMMethodResponse(challenge=challenge)
        request = _receive(requests)
        register = request.register_using_token_request
        token = self._joiner.check_token(register.Token, register.Role)
        self._joiner.verify(token, challenge, request.sts_identity_request)
        tls_key, ssh_key = _keys(register.PublicTLSKey, register.PublicSSHKey, wire=False)
        expires = register.Expires.ToDatetime(dt.UTC) if register.HasField("Expires") else None
        creds = self._joiner.issue(token, tls_key, ssh_key, expires, presented_identity(context))
        pem = serialization.Encoding.PEM
        yield joinservice_pb2.RegisterUsingIAMMethodResponse(
            certs=certs_pb2.Certs(
                TLS=creds.tls_cert.public_bytes(pem),
                SSH=creds.ssh_cert,
                TLSCACerts=[c.public_bytes(pem) for c in creds.tls_cas],
                SSHCACerts=list(creds.ssh_ca_keys),
            )
        )


class JoinV1Service(join_v1_pb2_grpc.JoinServiceServicer):
    """`/teleport.join.v1.JoinService/Join`: ClientInit, ServerInit, IAMInit, Challenge, Solution, Result."""

    def __init__(self, joiner: IamJoiner, cluster: Cluster) -> None:
        self._joiner = joiner
        self._cluster = cluster

    @refusals_as_status
    def Join(
        self, requests: Iterator[join_v1_pb2.JoinRequest], context: grpc.ServicerContext
    ) -> Iterator[join_v1_pb2.JoinResponse]:
        if not self._cluster.new_join_enabled:
            # What grpc-go answers for a service the server never registered (Teleport 17, 18.0).
            raise Refused(grpc.StatusCode.UNIMPLEMENTED, "unknown service teleport.join.v1.JoinService")
        fault = self._cluster.new_join_fault
        if fault is not None and not fault.after_init:
            raise Refused(fault.code, fault.message)
        init = _expect(_receive(requests), "client_init").client_init
        token = self._joiner.check_token(init.token_name, init.system_role)
        if init.HasField("join_method") and init.join_method != token.join_method:
            raise denied(
                f'join method "{init.join_method}" does not match token join method "{token.join_method}"'
            )
        yield join_v1_pb2.JoinResponse(
            init=join_v1_pb2.ServerInit(
                join_method=token.join_method, signature_algorithm_suite=self._cluster.signature_suite
            )
        )
        iam_init = _expect(_receive(requests), "iam_init").iam_init
        if fault is not None and fault.after_init:
            raise Refused(fault.code, fault.message)
        if iam_init.client_params.WhichOneof("payload") != "bot_params":
            raise bad_parameter("IAMInit must carry bot_params for a bot join")
        params = iam_init.client_params.bot_params
        challenge = new_challenge()
        yield join_v1_pb2.JoinResponse(
            challenge=join_v1_pb2.Challenge(iam_challenge=join_v1_pb2.IAMChallenge(challenge=challenge))
        )
        solution = _expect(_receive(requests), "solution").solution
        if solution.WhichOneof("payload") != "iam_challenge_solution":
            raise bad_parameter("expected an IAM challenge solution")
        self._joiner.verify(token, challenge, solution.iam_challenge_solution.sts_identity_request)
        tls_key, ssh_key = _keys(
            params.public_keys.public_tls_key, params.public_keys.public_ssh_key, wire=True
        )
        expires = params.expires.ToDatetime(dt.UTC) if params.HasField("expires") else None
        creds = self._joiner.issue(token, tls_key, ssh_key, expires, presented_identity(context))
        der = serialization.Encoding.DER
        certificates = join_v1_pb2.Certificates(
            tls_cert=creds.tls_cert.public_bytes(der),
            tls_ca_certs=[c.public_bytes(der) for c in creds.tls_cas],
            ssh_cert=ca.ssh_text_to_wire(creds.ssh_cert) if creds.ssh_cert else b"",
            ssh_ca_keys=[ca.ssh_text_to_wire(k) for k in creds.ssh_ca_keys],
        )
        yield join_v1_pb2.JoinResponse(
            result=join_v1_pb2.Result(bot_result=join_v1_pb2.BotResult(certificates=certificates))
        )


def _expect(message: join_v1_pb2.JoinRequest, payload: str) -> join_v1_pb2.JoinRequest:
    got = message.WhichOneof("payload")
    if got == "giving_up":
        reason = join_v1_pb2.GivingUp.Reason.Name(message.giving_up.reason)
        raise Refused(grpc.StatusCode.ABORTED, f"client gave up: {reason}: {message.giving_up.msg}")
    if got != payload:
        raise bad_parameter(f"expected {payload} message, got {got or 'an empty message'}")
    return message
