"""Teleport's refusals that mean the bot's lifecycle changed, told apart from other failures by what
Teleport answers, each with the operator's fix.

- **A lock** (`tctl lock`): every Auth request of a matching identity, joins included, is refused with
  AccessDenied (gRPC PERMISSION_DENIED) `lock targeting <target> is in force[: <message>]`
  (`lib/services/lock.go` `LockInForceAccessDenied`; the authorizer's `CheckLockInForce` in
  `lib/authz/permissions.go`, over the user, its roles and, since Teleport 17, the bot instance and
  join token). The target is a `LockTarget` in protobuf's compact text, e.g. `User:"bot-argocd"`.
- **A deleted bot** (`tctl bots rm`): its certificate still verifies, but the authorizer looks its user
  up first (`ContextForLocalUser`), so every Auth request fails with NotFound `user "bot-<name>" is
  not found`; a join with a token that still names it passes the token checks and is refused by
  `generateInitialBotCerts` with a bare AccessDenied `access denied` (the user lookup's error hidden).
- **A token whose allow rules no longer match**: AccessDenied `instance <caller ARN> did not match any
  allow rules in token <name>` (`lib/auth/join_iam.go` `checkIAMAllowRules`).
- **`max_session_ttl` below `credential_ttl`**: no error at all. `generateUserCert` caps the
  certificate at the shortest `max_session_ttl` of the roles it carries (and never past the bot
  certificate that asks for it), so it is seen only in the issued certificate's NotAfter.
"""

from __future__ import annotations

import re
from datetime import timedelta

from teleport_argocd.errors import (
    BotDeleted,
    BotLocked,
    CredentialTTLCapped,
    JoinNotAllowed,
    LifecycleFailure,
)

_LOCK = re.compile(r"lock targeting (?P<target>.+?) is in force(?::\s*(?P<message>.*))?$", re.S)
_USER_NOT_FOUND = re.compile(r'user "(?P<user>[^"]+)" is not found')
_NO_ALLOW_RULE = re.compile(r"instance (?P<arn>\S+) did not match any allow rules in token (?P<token>\S+)")
_ASSUMED_ROLE = re.compile(r"^arn:(?P<partition>[^:]+):sts::(?P<account>\d+):assumed-role/(?P<role>[^/]+)/")
_BOT_USER_PREFIX = "bot-"


def classify(code: str, details: str, *, token: str = "", bot_user: str = "") -> LifecycleFailure | None:
    """The lifecycle failure a gRPC status of an Auth call or a join stands for, or None.

    `code` is the status code's name; `token` (a join's token) and `bot_user` (`bot-<name>`, the
    caller's) name the bot in the fix where known.
    """
    if code == "PERMISSION_DENIED":
        if (lock := _LOCK.search(details)) is not None:
            return _locked(lock.group("target"), lock.group("message") or "")
        if (rule := _NO_ALLOW_RULE.search(details)) is not None:
            return _not_allowed(rule.group("arn"), rule.group("token"))
        if details.strip() == "access denied":
            return _bot_missing(token, bot_user, 'Teleport refused the join with a bare "access denied"')
    user = _USER_NOT_FOUND.search(details) if code == "NOT_FOUND" else None
    if user is not None and user.group("user").startswith(_BOT_USER_PREFIX):
        return _bot_missing(token, user.group("user"), f"Teleport no longer knows user {user.group('user')}")
    return None


def ttl_capped(requested: timedelta, granted: timedelta, roles: str) -> CredentialTTLCapped:
    """The finding for an impersonated certificate that lives `granted` instead of `requested`, capped
    by the `max_session_ttl` of `roles` (e.g. "role bot-argocd"). The granted time is rounded to the
    minute (Teleport rounds to the second, the run measures from its request): the same cap reads the
    same every run."""
    if granted >= timedelta(minutes=1):
        granted = timedelta(minutes=round(granted.total_seconds() / 60))
    return CredentialTTLCapped(
        f"Teleport issued certificates for {_duration(granted)}, not the {_duration(requested)} of "
        f"credential_ttl: the max_session_ttl of {roles} caps them",
        f"raise max_session_ttl of {roles} to at least {_duration(requested)} (`tctl edit role/<name>`: "
        f"spec.options.max_session_ttl), or lower credential_ttl (and renewal_interval) to "
        f"{_duration(granted)} or less",
    )


def _locked(target: str, message: str) -> BotLocked:
    said = f" ({message.strip()})" if message.strip() else ""
    return BotLocked(
        f"Teleport refuses the bot: a lock targeting {target} is in force{said}",
        "find the lock with `tctl get locks` and, once it is safe, remove it with "
        "`tctl rm locks/<lock name>`; runs resume by themselves on the next schedule",
    )


def _not_allowed(arn: str, token: str) -> JoinNotAllowed:
    role = _ASSUMED_ROLE.match(arn)
    rule = (
        f'aws_account: "{role.group("account")}", aws_arn: '
        f'"arn:{role.group("partition")}:sts::{role.group("account")}:assumed-role/{role.group("role")}/*"'
        if role is not None
        else f'aws_arn: "{arn}"'
    )
    return JoinNotAllowed(
        f"join token {token} has no allow rule matching this function's role ({arn})",
        f"add the rule {{{rule}}} to spec.allow of the token (`tctl edit token/{token}`), or deploy "
        f"with TeleportJoinToken naming a token that allows it",
    )


def _bot_missing(token: str, bot_user: str, seen: str) -> BotDeleted:
    name = bot_user.removeprefix(_BOT_USER_PREFIX) if bot_user else "<bot name>"
    bot = " ".join(
        p
        for p in ("the bot", f"of join token {token}" if token else "", f"({name})" if bot_user else "")
        if p
    )
    still = f"token {token} still names it" if token else "the join token still names it"
    return BotDeleted(
        f"{seen}: {bot} no longer exists",
        f"recreate the bot with `tctl bots add {name} --roles=<roles it impersonates>` ({still}), or "
        f"deploy with TeleportJoinToken naming a token of an existing bot",
    )


def _duration(value: timedelta) -> str:
    seconds = max(int(value.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n) or "0s"
