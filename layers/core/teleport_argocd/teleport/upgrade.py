"""Whether the proxy sits behind a load balancer that terminates TLS and drops ALPN and SNI.

An L7 load balancer (an AWS ALB, say) answers the TLS handshake itself and offers only `h2` and
`http/1.1`, so Teleport's ALPN routes (`teleport-proxy-grpc`, `teleport-auth@…`) never reach the
proxy. Teleport's clients then tunnel each connection through the proxy's connection-upgrade
endpoint (`wstunnel`). They decide as `IsALPNConnUpgradeRequired` does (`api/client/alpn_conn_upgrade.go`):

* `TELEPORT_TLS_ROUTING_CONN_UPGRADE`, when set, decides: a list of `<addr>=<bool>` and `<bool>`
  separated by `,` or `;`, the entry naming the address winning over the bare one (default false);
* otherwise a TLS dial offering only ALPN `teleport-reversetunnel`: an upgrade is needed when the
  server negotiates no protocol, alerts "no application protocol", or picks a protocol that was
  not offered. Any other failure means no upgrade, and the direct route reports the real error.

The environment variable is Teleport's own, so a deployment that set it for tbot keeps working.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
from collections.abc import Mapping

logger = logging.getLogger("teleport_argocd.teleport")

ENV_VAR = "TELEPORT_TLS_ROUTING_CONN_UPGRADE"
PROBE_ALPN = "teleport-reversetunnel"  # an old, stable protocol every proxy routes
PROBE_TIMEOUT = 5.0  # Teleport's probe uses a 5 s I/O timeout

# Go's `utils.ParseBool` (`api/utils/conv.go`): these words, any case.
_TRUE = frozenset({"yes", "yeah", "y", "true", "1", "on"})
_FALSE = frozenset({"no", "nope", "n", "false", "0", "off"})


def parse_bool(text: str) -> bool | None:
    """Go's `utils.ParseBool`; None for anything else."""
    word = text.lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return None


def required_by_env(addrs: tuple[str, ...], value: str) -> bool:
    """The env variable's answer for a proxy known by any of `addrs` (`isALPNConnUpgradeRequiredByEnv`)."""
    for_all = False
    for token in value.replace(";", ",").split(","):
        if "=" in token:
            for addr in addrs:
                if f"{addr}=" in token:
                    # Go returns false for an unparsable value here
                    return parse_bool(token.split(f"{addr}=", 1)[1]) is True
        elif (parsed := parse_bool(token)) is not None:
            for_all = parsed
    return for_all


def conn_upgrade_required(
    host: str,
    port: int,
    addrs: tuple[str, ...],
    context: ssl.SSLContext,
    *,
    timeout: float = PROBE_TIMEOUT,
    env: Mapping[str, str] = os.environ,
) -> bool:
    """Whether connections to the proxy at `host:port` must go through the upgrade endpoint.

    `context` verifies the proxy's web certificate as every other web call does; this function sets
    its ALPN list, so pass a fresh one.
    """
    if value := env.get(ENV_VAR, ""):
        required = required_by_env(addrs, value)
        logger.info("%s=%s: connection upgrade for %s %s", ENV_VAR, value, addrs[0], _say(required))
        return required
    context.set_alpn_protocols([PROBE_ALPN])
    try:
        with (
            socket.create_connection((host, port), timeout=min(timeout, PROBE_TIMEOUT)) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            selected = tls.selected_alpn_protocol()
    except ssl.SSLError as exc:
        if "NO_APPLICATION_PROTOCOL" in (exc.reason or ""):
            return _decided(addrs[0], True, "the server refused every offered ALPN protocol")
        logger.info("connection upgrade test for %s failed (%s); connecting directly", addrs[0], exc)
        return False
    except OSError as exc:
        logger.info("connection upgrade test for %s failed (%s); connecting directly", addrs[0], exc)
        return False
    if selected is None:
        return _decided(addrs[0], True, "the server negotiated no ALPN protocol")
    if selected != PROBE_ALPN:
        return _decided(addrs[0], True, f"the server selected ALPN {selected!r}, which was not offered")
    return _decided(addrs[0], False, "the server routes on ALPN")


def _decided(addr: str, required: bool, why: str) -> bool:
    logger.info("connection upgrade for %s %s: %s", addr, _say(required), why)
    return required


def _say(required: bool) -> str:
    return "required" if required else "not required"
