"""One bot identity kept across the invocations of a warm Lambda execution environment.

Joining afresh on every invocation would make Teleport count a new bot instance each time (RFD 0162:
a delegated join that does not present the previous bot certificate starts a new instance). So a
process creates one `BotKeeper` at module level and asks it for a session per invocation: the kept
bot certificate is reused while it has enough life left, and otherwise renewed by a rejoin that
presents it, as tbot renews (`client.join`, `previous=`). Only identities and the facts learnt with
them (proxy discovery, whether the proxy needs the connection upgrade, trust roots) are kept: sockets
and tunnels belong to a session and end with its `close()`, since a frozen execution environment
would leave them dead anyway.

The CAs are not kept: a reused session reads them first thing, over the connection the kept trust
roots still verify, and its trust roots become that CA set (`TeleportSession.authorities`). So a
CA rotation is followed phase by phase: a user CA rotation reissues the bot certificate once the
key that signed it no longer signs (`update_clients`, `rollback`), and an Auth this process can no
longer verify (it missed the phases in between) means a fresh join through the proxy's web
certificate.

Lambda runs one invocation at a time per execution environment. `session()` holds a lock, so
overlapping callers (threads, tests) still join at most once, but sessions themselves are not
meant to be shared between threads.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from botocore.credentials import Credentials, ReadOnlyCredentials

from teleport_argocd.errors import BotDeleted, BotLocked, TeleportError, UntrustedServer
from teleport_argocd.teleport.client import TeleportSession, join
from teleport_argocd.teleport.lifetime import DEFAULT_BOT_TTL, shortened

logger = logging.getLogger("teleport_argocd.teleport")

# A kept bot is renewed once less than a third of its life is left (tbot renews a 60-minute
# certificate every 20 minutes, `lib/tbot/bot/credential_lifetime.go`), and never used with less
# than 5 minutes left: a run makes its Auth calls with the bot certificate at its start, and an
# impersonated certificate cannot outlive the bot certificate that asked for it.
RENEW_FRACTION = 1 / 3
MIN_REMAINING = timedelta(minutes=5)
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class JoinSettings:
    """Where and how to join. A change of proxy, token or proxy trust means another bot: a fresh join."""

    proxy_addr: str
    token: str
    region: str
    ca_pem: bytes | None = field(default=None, repr=False)
    insecure: bool = False
    bot_ttl: timedelta = DEFAULT_BOT_TTL

    def same_bot(self, other: JoinSettings) -> bool:
        return (self.proxy_addr, self.token, self.ca_pem, self.insecure) == (
            other.proxy_addr,
            other.token,
            other.ca_pem,
            other.insecure,
        )


@dataclass(frozen=True)
class _Kept:
    settings: JoinSettings
    joined_at: datetime
    session: TeleportSession  # closed; read for its identity, proxy facts, trust roots and host CAs


class BotKeeper:
    """Keeps one bot identity per process and hands out a `TeleportSession` per invocation."""

    def __init__(self, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: _Kept | None = None
        self._joins: deque[datetime] = deque()

    def session(
        self,
        settings: JoinSettings,
        credentials: Credentials | ReadOnlyCredentials,
        *,
        valid_for: timedelta = timedelta(0),
    ) -> TeleportSession:
        """A session whose bot certificate stays valid for at least `valid_for` (and `MIN_REMAINING`).

        Pass the longest certificate TTL the run will ask `impersonate()` for: Teleport cuts an
        impersonated certificate down to the bot certificate's expiry. The caller closes the session.
        """
        session = self._session(settings, credentials, valid_for, join=True)
        assert session is not None
        return session

    def kept_session(
        self, settings: JoinSettings, credentials: Credentials | ReadOnlyCredentials
    ) -> TeleportSession | None:
        """The kept identity's session if it can serve without a join, its CAs read (one Auth call), or
        None: lets a caller that must not join (a lifecycle failure's backoff) still see a lock lifted
        or a bot recreated. A rotation or an expiry that would need a join is left to the next join."""
        return self._session(settings, credentials, timedelta(0), join=False)

    def _session(
        self,
        settings: JoinSettings,
        credentials: Credentials | ReadOnlyCredentials,
        valid_for: timedelta,
        *,
        join: bool,
    ) -> TeleportSession | None:
        with self._lock:
            now = self._clock()
            kept = self._kept
            if kept is not None and not kept.settings.same_bot(settings):
                logger.info("Teleport proxy or join token changed; joining afresh")
                kept = None
            needed = self._needed(kept, valid_for) if kept is not None and join else MIN_REMAINING
            if kept is not None and now + needed < kept.session.bot.expires:
                session = self._reuse(kept)
                try:
                    authorities = session.authorities  # the run's one read of the CAs, kept for it
                except UntrustedServer as exc:
                    session.close()
                    if not join:
                        return None
                    logger.warning(
                        "Auth is no longer trusted with the CAs this bot last read (%s): a CA rotation "
                        "reached update_servers without a run seeing it; joining afresh",
                        exc,
                    )
                    return self._join(settings, credentials, None, now)
                except TeleportError:
                    session.close()  # the caller never gets it to close
                    raise
                if not join or not authorities.bot_needs_reissue(session.bot.cert_pem):
                    return session
                session.close()
                assert authorities.user is not None
                # Teleport's own clients reissue their certificates in update_clients and rollback;
                # the old key stays trusted until standby, so the rejoin can still present it.
                logger.info(
                    "the bot certificate was signed by a user CA key that no longer signs (%s); reissuing it",
                    authorities.user.describe(),
                )
                kept = self._kept
            elif not join:
                return None
            elif kept is not None:
                logger.info(
                    "bot certificate expires at %s; rejoining with it", kept.session.bot.expires.isoformat()
                )
            return self._join(settings, credentials, kept, now)

    def _join(
        self,
        settings: JoinSettings,
        credentials: Credentials | ReadOnlyCredentials,
        kept: _Kept | None,
        now: datetime,
    ) -> TeleportSession:
        """A join, presenting the kept bot certificate when there is one (a rejoin)."""
        try:
            session = join(
                settings.proxy_addr,
                settings.token,
                credentials=credentials,
                region=settings.region,
                ca_pem=settings.ca_pem,
                insecure=settings.insecure,
                bot_ttl=settings.bot_ttl,
                previous=kept.session.bot if kept is not None else None,
                # The CA set the last run read: it follows a rotation (TeleportSession.authorities).
                trusted_ca_pems=kept.session.trusted_ca_pems if kept is not None else (),
                # Whether the proxy sits behind an L7 load balancer is tested once per bot.
                conn_upgrade=kept.session.proxy.conn_upgrade if kept is not None else None,
            )
        except UntrustedServer as exc:
            if kept is None:
                raise
            logger.warning("the rejoin could not trust Auth (%s); joining afresh", exc)
            return self._join(settings, credentials, None, now)
        except TeleportError as exc:
            # As tbot does, a failed renewal keeps the current identity while it is valid: the run
            # gets shorter certificates (capped at the bot's expiry, logged) rather than none. Not
            # when Teleport refuses the bot itself (a lock, a deleted bot): the kept identity is too.
            if (
                kept is None
                or now + MIN_REMAINING >= kept.session.bot.expires
                or isinstance(exc, BotLocked | BotDeleted)
            ):
                raise
            logger.warning(
                "rejoin failed (%s); using the kept bot certificate until %s",
                exc,
                kept.session.bot.expires.isoformat(),
            )
            return self._reuse(kept)
        self._kept = _Kept(settings, now, session)
        self._record_join(now)
        return session

    @property
    def bot_name(self) -> str:
        """The bot of the kept identity ("" before the first join)."""
        kept = self._kept
        return kept.session.bot.bot_name if kept is not None else ""

    @property
    def bot_instance_id(self) -> str:
        """The bot instance of the kept identity ("" before the first join)."""
        kept = self._kept
        return kept.session.bot_instance_id if kept is not None else ""

    def joins_in_last_hour(self, now: datetime) -> int:
        """How many joins (fresh or rejoins) this process made in the hour before `now`."""
        return sum(1 for at in self._joins if now - _HOUR < at <= now)

    def forget(self) -> None:
        """Drops the kept identity, so the next session joins afresh (e.g. after Auth refused it)."""
        with self._lock:
            self._kept = None

    def _needed(self, kept: _Kept, valid_for: timedelta) -> timedelta:
        lifetime = kept.session.bot.expires - kept.joined_at
        if shortened(kept.settings.bot_ttl, lifetime):
            # Teleport capped the bot certificate (its role's max_session_ttl): a rejoin would get no
            # longer one, so renew it at its own rhythm rather than at every session.
            valid_for = min(valid_for, lifetime * (1 - RENEW_FRACTION))
        return max(lifetime * RENEW_FRACTION, MIN_REMAINING, valid_for)

    def _reuse(self, kept: _Kept) -> TeleportSession:
        previous = kept.session
        session = TeleportSession(
            previous.proxy,
            previous.bot,
            previous.join_protocol,
            proxy_addr=kept.settings.proxy_addr,
            trusted_ca_pems=previous.trusted_ca_pems,
            upgrade=previous.upgrade,
        )
        # The next reuse trusts the CA set this session reads.
        self._kept = _Kept(kept.settings, kept.joined_at, session)
        logger.info(
            "reusing bot %s (instance %s) until %s",
            session.bot.bot_name,
            session.bot_instance_id or "unknown",
            session.bot.expires.isoformat(),
        )
        return session

    def _record_join(self, at: datetime) -> None:
        self._joins.append(at)
        while self._joins and self._joins[0] <= at - _HOUR:
            self._joins.popleft()
