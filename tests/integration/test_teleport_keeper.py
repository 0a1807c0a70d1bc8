"""Bot instances, the warm-environment keeper, `version` metadata, the join fallback and TTL caps,
against the Teleport stand-in and a signing moto STS."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from botocore.credentials import Credentials

from standins.aws import ACCOUNT_ID, REGION
from standins.teleport import TeleportStandin
from teleport_argocd.errors import JoinError
from teleport_argocd.teleport import BotKeeper, JoinSettings, TeleportSession, join
from teleport_argocd.teleport.iamjoin import LEGACY_PROTOCOL, NEW_PROTOCOL
from teleport_argocd.teleport.metadata import CLIENT_VERSION

NEW_JOIN = "/teleport.join.v1.JoinService/Join"
LEGACY_JOIN = "/proto.JoinService/RegisterUsingIAMMethod"


class Clock:
    """A clock the test moves by hand; starts at the real time so certificates read sensibly."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Env:
    teleport: TeleportStandin
    credentials: Credentials

    def settings(self, token: str = "argo-token", bot_ttl: timedelta = timedelta(hours=1)) -> JoinSettings:
        return JoinSettings(
            proxy_addr=self.teleport.proxy_addr,
            token=token,
            region=REGION,
            ca_pem=self.teleport.web_ca_pem,
            bot_ttl=bot_ttl,
        )

    def join(self, token: str = "argo-token", bot_ttl: timedelta = timedelta(hours=1)) -> TeleportSession:
        return join(
            self.teleport.proxy_addr,
            token,
            credentials=self.credentials,
            region=REGION,
            ca_pem=self.teleport.web_ca_pem,
            bot_ttl=bot_ttl,
        )

    def instances(self, bot: str = "argo") -> set[str]:
        return {i.id for i in self.teleport.bot_instances() if i.bot_name == bot}


@pytest.fixture(scope="module")
def env(credentials: tuple[str, Credentials]) -> Iterator[Env]:
    sts_endpoint, creds = credentials
    with TeleportStandin(sts_endpoint=sts_endpoint) as teleport:
        teleport.add_role("kube-all", kubernetes_labels={"*": ["*"]})
        teleport.add_role("kube-short", kubernetes_labels={"*": ["*"]}, max_session_ttl=timedelta(minutes=10))
        teleport.add_bot("argo", roles=["kube-all"])
        teleport.add_bot("other", roles=["kube-all"])
        teleport.add_bot("capped", roles=["kube-short"], max_session_ttl=timedelta(minutes=30))
        for bot in ("argo", "other", "capped"):
            teleport.add_iam_token(f"{bot}-token", bot_name=bot, allow=[{"aws_account": ACCOUNT_ID}])
        teleport.add_kube_cluster("prod", labels={"env": "prod"})
        yield Env(teleport, creds)


@pytest.fixture(autouse=True)
def _restore(env: Env) -> Iterator[None]:
    yield
    env.teleport.new_join_enabled = True
    env.teleport.fail_new_join(None)


# -- bot instances ---------------------------------------------------------------


def test_a_join_without_a_certificate_starts_a_new_instance_each_time(env: Env) -> None:
    before = env.instances()
    with env.join() as first, env.join() as second:
        assert first.bot_instance_id and second.bot_instance_id
        assert first.bot_instance_id != second.bot_instance_id
    assert env.instances() - before == {first.bot_instance_id, second.bot_instance_id}


@pytest.mark.parametrize("new_join", [True, False], ids=["join.v1", "legacy"])
def test_a_rejoin_presenting_the_certificate_keeps_the_instance(env: Env, new_join: bool) -> None:
    env.teleport.new_join_enabled = new_join
    with (
        env.join() as first,
        join(
            env.teleport.proxy_addr,
            "argo-token",
            credentials=env.credentials,
            region=REGION,
            ca_pem=env.teleport.web_ca_pem,
            previous=first.bot,
            trusted_ca_pems=first.trusted_ca_pems,
        ) as second,
    ):
        assert second.join_protocol == (NEW_PROTOCOL if new_join else LEGACY_PROTOCOL)
        assert second.bot_instance_id == first.bot_instance_id
        assert second.bot.cert_pem != first.bot.cert_pem
        # The renewed identity works.
        assert [c.name for c in second.list_kube_clusters(second.impersonate(timedelta(minutes=5)))] == [
            "prod"
        ]
    joins = {i.id: i.joins for i in env.teleport.bot_instances()}
    assert joins[first.bot_instance_id] == 2


def test_another_bots_certificate_does_not_carry_its_instance_over(env: Env) -> None:
    with (
        env.join("other-token") as other,
        join(
            env.teleport.proxy_addr,
            "argo-token",
            credentials=env.credentials,
            region=REGION,
            ca_pem=env.teleport.web_ca_pem,
            previous=other.bot,
            trusted_ca_pems=other.trusted_ca_pems,
        ) as argo,
    ):
        assert argo.bot.bot_name == "argo"
        assert argo.bot_instance_id != other.bot_instance_id
        assert argo.bot_instance_id in env.instances("argo")


# -- the keeper --------------------------------------------------------------------


def test_the_keeper_keeps_one_instance_across_sessions_and_rejoins(env: Env) -> None:
    clock = Clock()
    keeper = BotKeeper(clock=clock)
    before = env.instances()
    calls = env.teleport.rpc_calls
    joins_before = calls[NEW_JOIN]

    with keeper.session(env.settings(), env.credentials) as first:
        assert first.host_ca_pems
    instance = keeper.bot_instance_id
    assert instance == first.bot_instance_id != ""
    ca_calls = calls["/teleport.trust.v1.TrustService/GetCertAuthorities"]

    # Warm invocations within the first two thirds of the bot's life reuse it: no join, but the CAs
    # (host and user, requested together) are read again by each session, once however often used.
    for minutes in (2, 10, 35):
        clock.now = first.bot.expires - timedelta(hours=1) + timedelta(minutes=minutes)
        with keeper.session(env.settings(), env.credentials) as reused:
            assert reused.bot.cert_pem == first.bot.cert_pem
            assert reused.host_ca_pems == first.host_ca_pems
            assert reused.host_ca_pems == first.host_ca_pems
            assert reused.impersonated_roles() == ("kube-all",)
    assert calls[NEW_JOIN] == joins_before + 1
    assert calls["/teleport.trust.v1.TrustService/GetCertAuthorities"] == ca_calls + 3 * 2

    # Less than a third of its life left: a rejoin presenting it, same instance, new certificate.
    clock.now = first.bot.expires - timedelta(minutes=15)
    with keeper.session(env.settings(), env.credentials) as renewed:
        assert renewed.bot.cert_pem != first.bot.cert_pem
        assert renewed.bot_instance_id == instance
    assert calls[NEW_JOIN] == joins_before + 2
    assert env.instances() - before == {instance}
    assert keeper.joins_in_last_hour(clock.now) == 2
    assert keeper.joins_in_last_hour(clock.now + timedelta(hours=2)) == 0


def test_the_keeper_rejoins_when_the_bot_would_not_outlive_the_run(env: Env) -> None:
    keeper = BotKeeper()
    with keeper.session(env.settings(bot_ttl=timedelta(hours=2)), env.credentials) as first:
        pass
    with keeper.session(env.settings(bot_ttl=timedelta(hours=2)), env.credentials) as reused:
        assert reused.bot.cert_pem == first.bot.cert_pem
    with keeper.session(
        env.settings(bot_ttl=timedelta(hours=2)), env.credentials, valid_for=timedelta(hours=3)
    ) as renewed:
        assert renewed.bot.cert_pem != first.bot.cert_pem
        assert renewed.bot_instance_id == first.bot_instance_id


def test_other_settings_or_forget_mean_a_fresh_instance(env: Env) -> None:
    keeper = BotKeeper()
    with keeper.session(env.settings(), env.credentials) as argo:
        pass
    with keeper.session(env.settings("other-token"), env.credentials) as other:
        assert other.bot.bot_name == "other"
    with keeper.session(env.settings(), env.credentials) as argo_again:
        assert argo_again.bot_instance_id not in (argo.bot_instance_id, other.bot_instance_id)
    keeper.forget()
    with keeper.session(env.settings(), env.credentials) as fresh:
        assert fresh.bot_instance_id != argo_again.bot_instance_id
    assert keeper.joins_in_last_hour(datetime.now(UTC)) == 4


# -- version metadata --------------------------------------------------------------


def test_every_call_carries_the_version_metadata(env: Env) -> None:
    start = len(env.teleport.rpc_versions)
    keeper = BotKeeper()
    with keeper.session(env.settings(), env.credentials) as session:
        identity = session.impersonate(timedelta(minutes=5))
        assert session.host_ca_pems
        session.list_kube_clusters(identity)
    env.teleport.new_join_enabled = False  # the fallback's calls too
    with keeper.session(env.settings(), env.credentials, valid_for=timedelta(hours=2)):
        pass
    calls = env.teleport.rpc_versions[start:]
    methods = {method for method, _ in calls}
    assert {
        NEW_JOIN,
        LEGACY_JOIN,
        "/proto.AuthService/GetRole",
        "/proto.AuthService/GenerateUserCerts",
        "/teleport.trust.v1.TrustService/GetCertAuthorities",
        "/proto.AuthService/ListResources",
    } <= methods
    assert {version for _, version in calls} == {CLIENT_VERSION}


# -- tbot's fallback rules -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "after_init"),
    [
        (grpc.StatusCode.UNIMPLEMENTED, False),
        (grpc.StatusCode.UNAVAILABLE, False),
        (grpc.StatusCode.INTERNAL, False),
        (grpc.StatusCode.NOT_FOUND, False),
        (grpc.StatusCode.UNIMPLEMENTED, True),
    ],
)
def test_the_join_falls_back_like_tbot(env: Env, code: grpc.StatusCode, after_init: bool) -> None:
    env.teleport.fail_new_join(code, "injected", after_init=after_init)
    legacy = env.teleport.rpc_calls[LEGACY_JOIN]
    with env.join() as session:
        assert session.join_protocol == LEGACY_PROTOCOL
    assert env.teleport.rpc_calls[LEGACY_JOIN] == legacy + 1


@pytest.mark.parametrize(
    ("code", "after_init"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, False),
        (grpc.StatusCode.INVALID_ARGUMENT, False),
        (grpc.StatusCode.UNAVAILABLE, True),
        (grpc.StatusCode.PERMISSION_DENIED, True),
    ],
)
def test_the_join_does_not_fall_back_on_other_failures(
    env: Env, code: grpc.StatusCode, after_init: bool
) -> None:
    env.teleport.fail_new_join(code, "injected refusal", after_init=after_init)
    legacy = env.teleport.rpc_calls[LEGACY_JOIN]
    with pytest.raises(JoinError, match=f"{code.name}: injected refusal"):
        env.join()
    assert env.teleport.rpc_calls[LEGACY_JOIN] == legacy


def test_an_unknown_token_is_final_on_the_new_protocol(env: Env) -> None:
    legacy = env.teleport.rpc_calls[LEGACY_JOIN]
    with pytest.raises(JoinError, match="PERMISSION_DENIED"):
        env.join("no-such-token")
    assert env.teleport.rpc_calls[LEGACY_JOIN] == legacy


# -- certificate TTLs ----------------------------------------------------------------


def test_a_capped_bot_certificate_is_logged(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="teleport_argocd.teleport")
    with env.join("capped-token", bot_ttl=timedelta(hours=1)) as session:
        assert session.bot.expires - datetime.now(UTC) <= timedelta(minutes=30)
    warning = next(r.getMessage() for r in caplog.records if "bot certificate" in r.getMessage())
    assert "0h29m" in warning or "0h30m" in warning
    assert "1h00m00s asked for" in warning
    assert "BEGIN" not in caplog.text


def test_a_capped_impersonated_certificate_is_logged(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    with env.join("capped-token", bot_ttl=timedelta(minutes=20)) as session:
        caplog.set_level(logging.WARNING, logger="teleport_argocd.teleport")
        caplog.clear()
        identity = session.impersonate(timedelta(minutes=15))
        assert identity.expires - datetime.now(UTC) <= timedelta(minutes=10)
        assert identity.bot_instance_id == session.bot_instance_id
    messages = [r.getMessage() for r in caplog.records]
    assert any("impersonated certificate" in m and "0h15m00s asked for" in m for m in messages), messages
    assert "BEGIN" not in caplog.text


def test_an_uncapped_certificate_logs_nothing(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="teleport_argocd.teleport")
    with env.join(bot_ttl=timedelta(hours=1)) as session:
        session.impersonate(timedelta(minutes=30))
    assert not [r for r in caplog.records if "shorter than" in r.getMessage()]


def test_a_failed_rejoin_keeps_the_current_bot_while_it_is_valid(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    keeper = BotKeeper(clock=clock)
    with keeper.session(env.settings(), env.credentials) as first:
        pass
    refused = Credentials(
        "AKIAREFUSEDBYSTS0000", "not-the-secret", "not-a-token"
    )  # STS rejects the signature

    clock.now = first.bot.expires - timedelta(minutes=15)  # due for a rejoin
    with (
        caplog.at_level(logging.WARNING, logger="teleport_argocd"),
        keeper.session(env.settings(), refused) as kept,
    ):
        assert kept.bot.cert_pem == first.bot.cert_pem
    assert "rejoin failed" in caplog.text

    clock.now = first.bot.expires - timedelta(minutes=4)  # too close to expiry to be of use
    with pytest.raises(JoinError):
        keeper.session(env.settings(), refused)
