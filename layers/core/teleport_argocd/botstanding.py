"""The bot's standing with Teleport: a lifecycle failure recorded once, and not retried blindly.

A lock, a deleted bot or a join token that no longer allows the function's role does not heal by
itself, and retrying the join every run only fills Teleport's audit log with failed joins. So the
first run that meets one records it in the state table (``pk = "teleport"``, ``sk = "lifecycle"``,
one item for the stack; separate from ``state``, which owns the outputs' items):

    kind           S   errors.LifecycleFailure.kind; absent while the bot is in good standing
    reason, fix    S   what Teleport answered, and the operator's remedy
    settings       S   digest of what it was seen with (proxy, token, trust, credential TTLs)
    since, seen    S   when it was first and last met
    attempts       N   joins refused in a row for it
    retry_after    S   no join before then (5 minutes, doubling to an hour), unless the settings
                       change or a manual reload asks
    recovered_at   S   when the last one was cleared
    bot            S   the bot's name, once a connection or a refusal told it (kept across recoveries)

Until then a run makes no join: it uses the bot identity the process kept, if it can serve without
one (one Auth call, so a lock lifted or a bot recreated is seen at once), or fails at once with the
recorded failure. A certificate capped below `credential_ttl` is recorded the same way (named once,
in the status) but never stops a run: the run writes with the shorter certificates.

The record is read once per invocation (one `GetItem`) and written only when the standing changes,
so a change made by another function's run is seen by the next invocation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from teleport_argocd.errors import (
    BotDeleted,
    BotLocked,
    CredentialTTLCapped,
    JoinNotAllowed,
    LifecycleFailure,
    StateError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_FIRST = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=1)
_KEY = {"pk": {"S": "teleport"}, "sk": {"S": "lifecycle"}}
_REFUSALS: dict[str, type[LifecycleFailure]] = {c.kind: c for c in (BotLocked, BotDeleted, JoinNotAllowed)}
# What a reused kept identity proves when its Auth call succeeds: Teleport no longer refuses the bot.
_CLEARED_BY_AUTH = frozenset({BotLocked.kind, BotDeleted.kind})


@dataclass(frozen=True)
class Standing:
    """The recorded lifecycle failure, or good standing (`kind` empty)."""

    kind: str = ""
    reason: str = ""
    fix: str = ""
    settings: str = ""
    since: datetime | None = None
    seen: datetime | None = None
    attempts: int = 0
    retry_after: datetime | None = None
    recovered_at: datetime | None = None
    bot: str = ""

    def status(self) -> dict[str, Any]:
        """For the status report: `ok`, or the failure with its fix and when a join is tried again."""
        times = {"since": self.since, "seen": self.seen, "retry_after": self.retry_after}
        out: dict[str, Any] = {"state": self.kind or "ok"}
        if self.kind:
            out |= {"reason": self.reason, "fix": self.fix, "attempts": self.attempts}
            out |= {k: v.isoformat() for k, v in times.items() if v is not None}
        if self.recovered_at is not None:
            out["recovered_at"] = self.recovered_at.isoformat()
        return out

    @property
    def refused(self) -> bool:
        """Whether a refusal of the bot is recorded (one that holds joins back)."""
        return self.kind in _REFUSALS

    def blocks_join(self, settings: str, now: datetime) -> bool:
        """Whether a join now would only meet the recorded refusal again."""
        return (
            self.refused
            and self.settings == settings
            and self.retry_after is not None
            and now < self.retry_after
        )

    def failure(self) -> LifecycleFailure:
        """The recorded refusal, to fail a run that did not try again, saying when it will."""
        assert self.retry_after is not None and self.since is not None
        return _REFUSALS[self.kind](
            f"{self.reason} (recorded {self.since.isoformat()}; no join is tried before "
            f"{self.retry_after.isoformat()}, a configuration change or a manual reload)",
            self.fix,
        )


class StandingStore:
    """The one lifecycle item of the state table."""

    def __init__(self, table_name: str, *, client: Any) -> None:
        self._table = table_name
        self._client = client

    def read(self) -> Standing:
        item = self._request("GetItem", Key=_KEY, ConsistentRead=True).get("Item") or {}
        return Standing(
            kind=_text(item, "kind"),
            reason=_text(item, "reason"),
            fix=_text(item, "fix"),
            settings=_text(item, "settings"),
            since=_time(item, "since"),
            seen=_time(item, "seen"),
            attempts=int(item.get("attempts", {}).get("N", "0")),
            retry_after=_time(item, "retry_after"),
            recovered_at=_time(item, "recovered_at"),
            bot=_text(item, "bot"),
        )

    def write(self, standing: Standing) -> None:
        item: dict[str, Any] = dict(_KEY)
        for name in ("kind", "reason", "fix", "settings", "bot"):
            if value := getattr(standing, name):
                item[name] = {"S": value[:1000]}
        for name in ("since", "seen", "retry_after", "recovered_at"):
            if (moment := getattr(standing, name)) is not None:
                item[name] = {"S": moment.astimezone(UTC).isoformat()}
        item["attempts"] = {"N": str(standing.attempts)}
        self._request("PutItem", Item=item)

    def _request(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = getattr(self._client, _snake(operation))(TableName=self._table, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise StateError(f"DynamoDB {operation} of the bot's standing failed: {exc}") from exc
        return answer


class Gate:
    """One invocation's view of the bot's standing: decides whether a connection may join, records
    what the connection and the runs meet, and counts the failures it recorded afresh (one
    `TeleportLifecycleFailures` datum each). `bot_name` tells the bot's name where the process knows
    it ("" otherwise), recorded with a refusal so that a cold process can tell an event about it."""

    def __init__(
        self,
        store: StandingStore,
        clock: Callable[[], datetime],
        bot_name: Callable[[], str] = lambda: "",
    ) -> None:
        self._store = store
        self._clock = clock
        self._bot_name = bot_name
        self._standing: Standing | None = None
        self._joined: bool | None = None  # how the last connection was made: a join, or the kept identity
        self.recorded = 0

    def standing(self) -> Standing:
        if self._standing is None:
            self._standing = self._store.read()
        return self._standing

    def connect(
        self, settings: str, *, join: Callable[[], T], reuse: Callable[[], T | None], force: bool = False
    ) -> T:
        """A connection through `join`, or, while a recorded refusal blocks joining, through `reuse`
        (the kept identity, no join) or not at all: the recorded failure is raised."""
        standing, now = self.standing(), self._clock()
        joined = force or not standing.blocks_join(settings, now)
        try:
            connection = join() if joined else reuse()
        except LifecycleFailure as exc:
            self._refused(exc, settings, joined=joined)
            raise
        if connection is None:
            logger.warning(
                "Teleport refused the bot earlier (%s); no join before %s",
                standing.kind,
                standing.retry_after,
            )
            raise standing.failure()
        self._joined = joined
        return connection

    def after_run(
        self,
        settings: str,
        *,
        refused: LifecycleFailure | None,
        capped: CredentialTTLCapped | None,
        checked: bool,
    ) -> None:
        """What a run that connected met: a refusal (a lock on a role it impersonates), a certificate cut
        below `credential_ttl`, or neither, which clears what its connection proves healed: any
        refusal after a join, a lock or a deletion after the kept identity was accepted."""
        standing, now = self.standing(), self._clock()
        if refused is not None:
            self._refused(refused, settings, joined=False)
            return
        healed = _REFUSALS.keys() if self._joined else _CLEARED_BY_AUTH
        if standing.kind in healed:
            self._recover(now)
        elif capped is not None:
            if (standing.kind, standing.settings, standing.reason) != (capped.kind, settings, capped.reason):
                self._record(capped, settings, now, attempts=0, retry_after=None)
        elif checked and standing.kind == CredentialTTLCapped.kind:
            self._recover(now)

    def _refused(self, failure: LifecycleFailure, settings: str, *, joined: bool) -> None:
        """Record a refusal; the same one met again without a join (the kept identity) changes nothing,
        a join refused again waits twice as long before the next."""
        standing, now = self.standing(), self._clock()
        same = standing.kind == failure.kind and standing.settings == settings
        if same and not joined and standing.retry_after is not None:
            return
        attempts = standing.attempts + 1 if same else 1
        backoff = min(BACKOFF_FIRST * 2 ** (attempts - 1), BACKOFF_MAX)
        self._record(failure, settings, now, attempts=attempts, retry_after=now + backoff)

    def _record(
        self,
        failure: LifecycleFailure,
        settings: str,
        now: datetime,
        *,
        attempts: int,
        retry_after: datetime | None,
    ) -> None:
        standing = self.standing()
        fresh = standing.kind != failure.kind or standing.settings != settings
        updated = replace(
            standing,
            kind=failure.kind,
            reason=failure.reason,
            fix=failure.fix,
            settings=settings,
            since=now if fresh else standing.since,
            seen=now,
            attempts=attempts,
            retry_after=retry_after,
            bot=self._bot_name() or standing.bot,
        )
        self._store.write(updated)
        self._standing = updated
        if fresh:
            self.recorded += 1
            logger.error(
                "Teleport lifecycle failure %s: %s. Fix: %s", failure.kind, failure.reason, failure.fix
            )

    def _recover(self, now: datetime) -> None:
        standing = self.standing()
        logger.info("Teleport lifecycle failure %s cleared (recorded %s)", standing.kind, standing.since)
        recovered = Standing(recovered_at=now, bot=self._bot_name() or standing.bot)
        self._store.write(recovered)
        self._standing = recovered


def _text(item: dict[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("S", ""))


def _time(item: dict[str, Any], name: str) -> datetime | None:
    value = _text(item, name)
    return datetime.fromisoformat(value) if value else None


def _snake(operation: str) -> str:
    return {"GetItem": "get_item", "PutItem": "put_item"}[operation]
