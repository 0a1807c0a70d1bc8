"""How long bot and impersonated certificates live, and noticing when Teleport grants less than asked.

tbot's defaults and limits (`lib/tbot/bot/credential_lifetime.go`): `credential_ttl` 60 minutes,
`renewal_interval` 20 minutes, and a warning above `defaults.MaxRenewableCertTTL` (7 days in
Teleport 18, `lib/defaults/defaults.go`) because the server would cut the request down. The server
also caps every certificate by the `max_session_ttl` of the roles it carries (`generateUserCert`);
bot roles get 12 hours unless set (`DefaultBotMaxSessionTTL`), and an impersonated certificate
never outlives the bot certificate that asked for it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

logger = logging.getLogger("teleport_argocd.teleport")

DEFAULT_BOT_TTL = timedelta(hours=1)
DEFAULT_RENEWAL_INTERVAL = timedelta(minutes=20)
MAX_BOT_TTL = timedelta(days=7)
DEFAULT_BOT_MAX_SESSION_TTL = timedelta(hours=12)

# Teleport backdates certificates and rounds expiries to the second; a shortfall within this much
# is issuance noise, not a cap.
_SLACK = timedelta(minutes=1)
# How far Teleport backdates a certificate's NotBefore against clock skew (`lib/tlsca/ca.go`).
BACKDATE = timedelta(minutes=1)


def shortened(requested: timedelta, granted: timedelta) -> bool:
    """Whether `granted` falls short of `requested` by more than issuance noise."""
    return granted < requested - _SLACK


def warn_if_shortened(kind: str, requested: timedelta, asked_at: datetime, expires: datetime) -> None:
    """Logs a warning when a `kind` certificate asked for at `asked_at` for `requested` expires early.

    Only durations reach the log, never certificate material.
    """
    granted = expires - asked_at
    if shortened(requested, granted):
        logger.warning(
            "Teleport issued the %s certificate for %s, shorter than the %s asked for: capped by a role's "
            "max_session_ttl or by the certificate that asked for it",
            kind,
            _duration(granted),
            _duration(requested),
        )


def _duration(value: timedelta) -> str:
    seconds = max(int(value.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s"
