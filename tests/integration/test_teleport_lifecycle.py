"""The bot's lifecycle as Teleport changes it under a warm keeper: a lock, a deleted bot, a token whose
allow rules stop matching, a role whose max_session_ttl caps the certificates; each named by what
the Teleport stand-in answers (its docstrings name the Teleport source each answer follows)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from botocore.credentials import Credentials

from standins.aws import ACCOUNT_ID, REGION
from standins.teleport import TeleportStandin
from teleport_argocd.errors import BotDeleted, BotLocked, JoinNotAllowed
from teleport_argocd.teleport import BotKeeper, JoinSettings

BOT = "argo"
TOKEN = "argo-token"
ALLOW_ANY_ROLE = [{"aws_account": ACCOUNT_ID}]


class Env:
    def __init__(self, teleport: TeleportStandin, credentials: Credentials) -> None:
        self.teleport = teleport
        self.credentials = credentials

    def settings(self, bot_ttl: timedelta = timedelta(hours=1)) -> JoinSettings:
        return JoinSettings(
            proxy_addr=self.teleport.proxy_addr,
            token=TOKEN,
            region=REGION,
            ca_pem=self.teleport.web_ca_pem,
            bot_ttl=bot_ttl,
        )

    def joins(self) -> int:
        return sum(self.teleport.rpc_calls[m] for m in ("/teleport.join.v1.JoinService/Join",))


@pytest.fixture
def env(credentials: tuple[str, Credentials]) -> Iterator[Env]:
    sts_endpoint, creds = credentials
    with TeleportStandin(sts_endpoint=sts_endpoint) as teleport:
        teleport.add_role("kube-all", kubernetes_labels={"*": ["*"]})
        teleport.add_bot(BOT, roles=["kube-all"])
        teleport.add_iam_token(TOKEN, bot_name=BOT, allow=ALLOW_ANY_ROLE)
        teleport.add_kube_cluster("prod", labels={"env": "prod"})
        yield Env(teleport, creds)


@pytest.mark.parametrize("target", ["user", "role", "bot_instance_id"])
def test_a_lock_refuses_the_kept_identity_and_the_join_by_name_until_removed(env: Env, target: str) -> None:
    keeper = BotKeeper()
    with keeper.session(env.settings(), env.credentials) as first:
        pass
    value = {"user": f"bot-{BOT}", "role": f"bot-{BOT}", "bot_instance_id": first.bot_instance_id}[target]
    env.teleport.lock("incident-42", **{target: value}, message="runner compromised")

    with pytest.raises(BotLocked, match="runner compromised") as kept:
        keeper.session(env.settings(), env.credentials)
    assert "tctl rm locks/" in kept.value.fix
    fresh = BotKeeper()
    if target == "bot_instance_id":
        # A fresh join starts another instance, which that lock does not target.
        with fresh.session(env.settings(), env.credentials) as other:
            assert other.bot_instance_id != first.bot_instance_id
    else:
        with pytest.raises(BotLocked, match="is in force"):
            fresh.session(env.settings(), env.credentials)

    env.teleport.unlock("incident-42")
    with keeper.session(env.settings(), env.credentials) as resumed:
        assert resumed.bot_instance_id == first.bot_instance_id


def test_a_lock_on_an_impersonated_role_refuses_its_certificate_and_the_session_keeps_it(env: Env) -> None:
    keeper = BotKeeper()
    with keeper.session(env.settings(), env.credentials) as session:
        identity = session.impersonate(timedelta(minutes=30))
        env.teleport.lock("maintenance", role="kube-all")
        # Issued before the lock, the certificate is refused at its next request; a new one is not issued.
        with pytest.raises(BotLocked, match='lock targeting Role:"kube-all" is in force'):
            session.list_kube_clusters(identity)
        assert isinstance(session.refused, BotLocked)
        session.reset_findings()
        with pytest.raises(BotLocked, match='Role:"kube-all"'):
            session.impersonate(timedelta(minutes=30))
        assert isinstance(session.refused, BotLocked)


def test_a_deleted_bot_is_named_through_the_kept_identity_and_the_join(env: Env) -> None:
    keeper = BotKeeper()
    with keeper.session(env.settings(), env.credentials):
        pass
    env.teleport.remove_bot(BOT)

    with pytest.raises(BotDeleted, match=f"no longer knows user bot-{BOT}") as kept:
        keeper.session(env.settings(), env.credentials)
    assert f"tctl bots add {BOT}" in kept.value.fix
    with pytest.raises(BotDeleted, match=f'bare "access denied": the bot of join token {TOKEN}'):
        BotKeeper().session(env.settings(), env.credentials)

    env.teleport.add_bot(BOT, roles=["kube-all"])  # `tctl bots add`: the kept certificate works again
    with keeper.session(env.settings(), env.credentials) as session:
        assert session.bot.bot_name == BOT


def test_a_token_that_no_longer_allows_the_role_fails_only_the_join(env: Env) -> None:
    keeper = BotKeeper()
    with keeper.session(env.settings(), env.credentials) as first:
        pass
    env.teleport.add_iam_token(TOKEN, bot_name=BOT, allow=[{"aws_account": "999999999999"}])
    # The kept identity is still Teleport's to honour; a join is refused by name.
    with keeper.session(env.settings(), env.credentials) as kept:
        assert kept.bot.cert_pem == first.bot.cert_pem
    with pytest.raises(JoinNotAllowed, match=f"join token {TOKEN} has no allow rule") as refused:
        BotKeeper().session(env.settings(), env.credentials)
    assert f'aws_account: "{ACCOUNT_ID}"' in refused.value.fix

    env.teleport.add_iam_token(TOKEN, bot_name=BOT, allow=ALLOW_ANY_ROLE)
    with BotKeeper().session(env.settings(), env.credentials) as joined:
        assert joined.bot.bot_name == BOT


def test_a_role_max_session_ttl_below_the_credential_ttl_is_read_from_the_certificate(env: Env) -> None:
    env.teleport.add_role("kube-all", kubernetes_labels={"*": ["*"]}, max_session_ttl=timedelta(minutes=30))
    with BotKeeper().session(env.settings(), env.credentials) as session:
        identity = session.impersonate(timedelta(hours=1))
        assert session.ttl_checked and session.ttl_capped is not None
        assert "for 30m, not the 1h of credential_ttl: the max_session_ttl of role kube-all" in str(
            session.ttl_capped
        )
        assert identity.expires < session.bot.expires
        session.reset_findings()
        session.impersonate(timedelta(minutes=20))
        assert session.ttl_checked and session.ttl_capped is None


def test_a_bot_role_cap_is_named_and_the_keeper_does_not_rejoin_for_it(env: Env) -> None:
    env.teleport.add_bot(BOT, roles=["kube-all"], max_session_ttl=timedelta(minutes=30))
    keeper = BotKeeper()
    settings = env.settings(bot_ttl=timedelta(hours=2))
    with keeper.session(settings, env.credentials, valid_for=timedelta(hours=1)) as first:
        first.impersonate(timedelta(hours=1))
        assert first.ttl_capped is not None
        assert "the max_session_ttl of the bot's role bot-argo caps them" in first.ttl_capped.reason
    joins = env.joins()
    # Asking again for an hour cannot get one: the capped bot is kept, not rejoined at every session.
    with keeper.session(settings, env.credentials, valid_for=timedelta(hours=1)) as second:
        assert second.bot.cert_pem == first.bot.cert_pem
    assert env.joins() == joins
