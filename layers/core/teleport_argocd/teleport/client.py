"""The facade the reconcile uses: join once, then impersonate, read the CAs and list clusters.

A session holds the bot identity and one Auth tunnel per identity it has used; `close()` ends them
all, so a warm Lambda starts every run with no socket or thread left from the previous one.

A rejoin that presents the current bot certificate keeps the bot instance, as tbot's renewal does
(`lib/tbot/internal/identity/service.go`, `renewIdentity`: the join runs over the bot's existing,
authenticated Auth client). Teleport takes the instance ID only from an authenticated caller's
certificate (`lib/joinserver/joinserver.go` `setBotParameters`; the new service's
`lib/join/internal/authz`); the proxy's `teleport-proxy-grpc` join route does not use client
certificates (`lib/service/service.go` `initPublicGRPCServer`) and its forwarder passes on only the
address and version (`lib/join/joinv1/forwarding_server.go`), so a join there always starts a new
instance. The rejoin therefore goes over the mutual-TLS `teleport-auth@` route, to Auth itself.

Behind an L7 load balancer (`ProxyInfo.conn_upgrade`) every connection, join and Auth alike, goes
through the proxy's connection-upgrade endpoint (`wstunnel`), with the same TLS inside.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from botocore.credentials import Credentials, ReadOnlyCredentials

from teleport_argocd.errors import AuthCallError, CredentialTTLCapped, LifecycleFailure
from teleport_argocd.model import Identity, KubeCluster
from teleport_argocd.teleport import keys
from teleport_argocd.teleport.auth import GET_ROLE, AuthClient
from teleport_argocd.teleport.authorities import Authorities
from teleport_argocd.teleport.iamjoin import JoinRequest, join_bot
from teleport_argocd.teleport.identity import identity_from_certificate, issuer_name, lifetime
from teleport_argocd.teleport.lifecycle import ttl_capped
from teleport_argocd.teleport.lifetime import BACKDATE, DEFAULT_BOT_TTL, shortened, warn_if_shortened
from teleport_argocd.teleport.proxy import ProxyInfo, find_proxy, join_host_port, split_address
from teleport_argocd.teleport.tls import (
    auth_context,
    check_teleport_host_cert,
    encode_cluster_name,
    join_context,
    upgraded_join_context,
    web_context,
)
from teleport_argocd.teleport.tunnel import Tunnel

if TYPE_CHECKING:
    from teleport_argocd.teleport.wstunnel import WebSocketDialer

logger = logging.getLogger("teleport_argocd.teleport")

CONNECT_TIMEOUT = 10.0
# An impersonated certificate ending within this of the bot certificate was capped by it.
_SAME_END = timedelta(seconds=5)


class TeleportSession:
    """A joined bot. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        proxy: ProxyInfo,
        bot: Identity,
        join_protocol: str,
        *,
        proxy_addr: str,
        trusted_ca_pems: Sequence[bytes],
        upgrade: WebSocketDialer | None = None,
    ) -> None:
        self.proxy = proxy
        self.bot = bot
        self.join_protocol = join_protocol
        self.trusted_ca_pems: tuple[bytes, ...] = tuple(trusted_ca_pems)
        self.upgrade = upgrade  # how connections reach a proxy behind an L7 load balancer
        self._host, self._port = split_address(proxy_addr)
        self._clients: dict[bytes, AuthClient] = {}
        self._authorities: Authorities | None = None
        # A run reads the CAs beside its impersonation and listing (reconcile): one Auth tunnel per
        # identity, and one CA read per session, whichever thread asks first.
        self._clients_lock = threading.Lock()
        self._authorities_lock = threading.Lock()
        self._impersonated_roles: tuple[str, ...] | None = None
        # Set when an impersonated certificate came back shorter than asked because a role's
        # max_session_ttl caps it (teleport.lifecycle): Teleport says so only in the NotAfter.
        self.ttl_capped: CredentialTTLCapped | None = None
        self.ttl_checked = False  # whether an impersonated certificate was issued since last reset
        self.refused: LifecycleFailure | None = None  # a lock or a deleted bot met after connecting

    @property
    def bot_instance_id(self) -> str:
        """The bot instance Teleport counts this bot as, read from the bot certificate."""
        return self.bot.bot_instance_id

    @property
    def authorities(self) -> Authorities:
        """The cluster's host and user CAs, read once per session (every run: a rotation has no event).

        They are read over the connection the bot already trusts, and from then on this session's
        trust roots, which a warm environment passes to the next session and to the rejoin, are the
        CA set just read: so Auth is still trusted once it presents a certificate of the new host CA
        (`update_servers`), provided one run saw `init` or `update_clients`.
        """
        with self._authorities_lock:
            if self._authorities is None:
                found = self._client(self.bot).cert_authorities(issuer_name(self.bot.cert_pem))
                for authority in (found.host, found.user):
                    if authority is not None and authority.rotating:
                        logger.info("Teleport %s", authority.describe())
                self._authorities = found
                self.trusted_ca_pems = found.trust_roots
            return self._authorities

    @property
    def host_ca_pems(self) -> list[bytes]:
        """Every trusted TLS host CA certificate (PEM), active then additional: tbot's `caData`."""
        return list(self.authorities.host.trusted)

    def impersonated_roles(self) -> tuple[str, ...]:
        """The roles the bot's own role (`bot-<name>`) lets it impersonate; asked once per session."""
        if self._impersonated_roles is None:
            roles = self._client(self.bot).impersonate_roles(self.bot.username)
            self._impersonated_roles = tuple(roles)
        return self._impersonated_roles

    def reset_findings(self) -> None:
        """Forget what the last run met (`ttl_capped`, `ttl_checked`, `refused`) before the next one."""
        self.ttl_capped, self.ttl_checked, self.refused = None, False, None

    def impersonate(self, ttl: timedelta) -> Identity:
        """A fresh key and a certificate for the roles the bot may impersonate, valid for `ttl`.

        Teleport may grant less (a role's `max_session_ttl`, or the bot certificate's own expiry):
        logged as a warning, and kept in `ttl_capped` when a role's cap is the cause.
        """
        try:
            return self._impersonate(ttl)
        except LifecycleFailure as exc:
            self.refused = exc
            raise

    def _impersonate(self, ttl: timedelta) -> Identity:
        client = self._client(self.bot)
        roles = list(self.impersonated_roles())
        if not roles:
            raise AuthCallError(GET_ROLE, f"role {self.bot.username!r} allows impersonating no roles")
        key = keys.generate_key(self.proxy.signature_suite)
        asked_at = datetime.now(UTC)
        certs = client.generate_user_certs(
            username=self.bot.username, cluster_name=self.bot.cluster_name, roles=roles, key=key, ttl=ttl
        )
        identity = identity_from_certificate(certs.TLS, keys.private_key_pem(key))
        warn_if_shortened("impersonated", ttl, asked_at, identity.expires)
        self.ttl_capped = self._capped_by(roles, ttl, identity.expires - asked_at, identity.expires)
        self.ttl_checked = True
        logger.info(
            "impersonated roles %s as bot %s until %s",
            ",".join(roles),
            identity.bot_name,
            identity.expires.isoformat(),
        )
        return identity

    def _capped_by(
        self, roles: Sequence[str], requested: timedelta, granted: timedelta, expires: datetime
    ) -> CredentialTTLCapped | None:
        """Which `max_session_ttl` cut an impersonated certificate short, if one did: the impersonated
        roles' when it ends before the bot certificate; the bot role's when it ends with a bot
        certificate that was itself issued for less than `requested`. A bot certificate merely near
        its end (a failed renewal kept it) is no cap."""
        if not shortened(requested, granted):
            return None
        if expires < self.bot.expires - _SAME_END:
            return ttl_capped(requested, granted, "role " + ", ".join(roles))
        bot_cap = lifetime(self.bot.cert_pem) - BACKDATE
        if shortened(requested, bot_cap):
            # Named by the bot certificate's own lifetime, the cap itself, not by what this run got
            # from it as it ages: the same cap reads the same every run.
            return ttl_capped(requested, bot_cap, f"the bot's role {self.bot.username}")
        return None

    def list_kube_clusters(
        self, identity: Identity, *, name: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[KubeCluster]:
        """The Kubernetes clusters `identity` may see, optionally narrowed by name or labels."""
        try:
            return self._client(identity).list_kube_clusters(name=name, labels=labels)
        except LifecycleFailure as exc:  # a lock on an impersonated role refuses only these calls
            self.refused = exc
            raise

    def close(self) -> None:
        """Closes every Auth tunnel this session opened."""
        with self._clients_lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            client.close()

    def __enter__(self) -> TeleportSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _client(self, identity: Identity) -> AuthClient:
        with self._clients_lock:
            client = self._clients.get(identity.cert_pem)
            if client is None:
                client = AuthClient(
                    self._host,
                    self._port,
                    cluster_name=self.proxy.cluster_name,
                    identity=identity,
                    trusted_ca_pems=self.trusted_ca_pems,
                    timeout=CONNECT_TIMEOUT,
                    upgrade=self.upgrade,
                )
                self._clients[identity.cert_pem] = client
            return client


def join(
    proxy_addr: str,
    token: str,
    *,
    credentials: Credentials | ReadOnlyCredentials,
    region: str,
    ca_pem: bytes | None = None,
    insecure: bool = False,
    bot_ttl: timedelta = DEFAULT_BOT_TTL,
    previous: Identity | None = None,
    trusted_ca_pems: Sequence[bytes] = (),
    conn_upgrade: bool | None = None,
) -> TeleportSession:
    """Joins the cluster behind `proxy_addr` as the bot of IAM token `token`, proving the Lambda's role.

    With `previous`, the current bot identity (still valid, of this cluster) and `trusted_ca_pems`,
    the CA certificates its join returned, the join goes to Auth presenting that certificate, so
    Teleport keeps the bot instance (module docstring). Without, it goes through the proxy's join
    route and Teleport starts a new bot instance. `conn_upgrade`, when known from an earlier join,
    spares the test for an L7 load balancer.
    """
    # One web context for the discovery, the upgrade test and the join route, used in turn.
    web = web_context(ca_pem=ca_pem, insecure=insecure)
    proxy = find_proxy(
        proxy_addr,
        ca_pem=ca_pem,
        insecure=insecure,
        timeout=CONNECT_TIMEOUT,
        conn_upgrade=conn_upgrade,
        context=web,
    )
    host, port = split_address(proxy_addr)
    upgrade = None
    if proxy.conn_upgrade:
        from teleport_argocd.teleport.wstunnel import WebSocketDialer  # wsproto only when needed

        lb_context = web_context(ca_pem=ca_pem, insecure=insecure)
        upgrade = WebSocketDialer(host, port, lb_context, host_header=join_host_port(host, port))
    request = JoinRequest(
        token=token,
        credentials=credentials,
        region=region,
        fips=proxy.fips,
        suite=proxy.signature_suite,
        ttl=bot_ttl,
    )
    asked_at = datetime.now(UTC)
    presented = _presentable(previous, proxy.cluster_name, trusted_ca_pems, asked_at)
    check_peer = None
    if presented is not None:
        context = auth_context(proxy.cluster_name, trusted_ca_pems, presented.cert_pem, presented.key_pem)
        server_name = encode_cluster_name(proxy.cluster_name)
    elif upgrade is not None and not insecure:
        context, server_name, check_peer = upgraded_join_context(), host, check_teleport_host_cert
    else:
        context, server_name = join_context(web=web), host
    with Tunnel(
        host, port, context, server_name, timeout=CONNECT_TIMEOUT, upgrade=upgrade, check_peer=check_peer
    ) as tunnel:
        result = join_bot(tunnel, request)
    bot = identity_from_certificate(result.cert_pem, result.key_pem)
    warn_if_shortened("bot", bot_ttl, asked_at, bot.expires)
    logger.info(
        "%s cluster %s as bot %s (instance %s) via %s until %s",
        "rejoined" if presented is not None else "joined",
        proxy.cluster_name,
        bot.bot_name,
        bot.bot_instance_id or "unknown",
        result.protocol,
        bot.expires.isoformat(),
    )
    if presented is not None and bot.bot_instance_id != presented.bot_instance_id:
        logger.warning(
            "Teleport started bot instance %s instead of keeping %s",
            bot.bot_instance_id,
            presented.bot_instance_id,
        )
    return TeleportSession(
        proxy, bot, result.protocol, proxy_addr=proxy_addr, trusted_ca_pems=result.ca_pems, upgrade=upgrade
    )


def _presentable(
    previous: Identity | None, cluster_name: str, trusted_ca_pems: Sequence[bytes], now: datetime
) -> Identity | None:
    """`previous` if a rejoin can present it: of this cluster, not expired, with roots to verify Auth."""
    if previous is None:
        return None
    if previous.cluster_name != cluster_name or not trusted_ca_pems:
        logger.info("the previous bot identity is not of cluster %s; joining afresh", cluster_name)
        return None
    if previous.expires <= now:
        # tbot does the same with an expired identity: Auth would refuse it in the TLS handshake.
        logger.warning(
            "the bot certificate expired at %s; joining afresh, which starts a new bot instance",
            previous.expires.isoformat(),
        )
        return None
    return previous
