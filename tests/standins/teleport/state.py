"""What the stand-in cluster knows: roles, bots, provision tokens, Kubernetes clusters, CAs, and logs.

One `Cluster` object is shared by the join service, the Auth server, the Kubernetes proxy and
the web API, the way Teleport's backend is shared by its services. Everything that tests
change at runtime goes through it under one lock.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import grpc

from standins.teleport.ca import CertAuthority
from standins.teleport.rotation import RotatingAuthority
from teleport_argocd.teleport.proto import authservice_pb2, types_pb2

DISCOVERED_NAME_LABEL = "teleport.internal/discovered-name"
DEFAULT_NAMESPACE = "default"
# A role's `max_session_ttl` unless set (`api/defaults` `MaxCertDuration`); bot roles get 12 h
# (`DefaultBotMaxSessionTTL`, Correction 1).
DEFAULT_MAX_SESSION_TTL = dt.timedelta(hours=30)
DEFAULT_BOT_MAX_SESSION_TTL = dt.timedelta(hours=12)


def _label_value_pattern(value: str) -> re.Pattern[str]:
    """Role label values are globs (`*`), or regular expressions when written as `^…$`."""
    if value.startswith("^") and value.endswith("$"):
        return re.compile(value)
    return re.compile("^" + re.escape(value).replace(r"\*", ".*") + "$")


@dataclass(frozen=True)
class Role:
    """A Teleport role, reduced to what decides Kubernetes access and impersonation."""

    name: str
    kubernetes_labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    impersonate_roles: tuple[str, ...] = ()
    max_session_ttl: dt.timedelta = DEFAULT_MAX_SESSION_TTL
    # The Kubernetes groups the proxy impersonates for it; a role with none (and no kubernetes_users,
    # which the stand-in leaves out) lists the clusters its labels allow but cannot use them.
    kubernetes_groups: tuple[str, ...] = ()

    @cached_property
    def _patterns(self) -> dict[str, tuple[re.Pattern[str], ...]]:
        return {k: tuple(_label_value_pattern(v) for v in vs) for k, vs in self.kubernetes_labels.items()}

    def allows_kube(self, labels: Mapping[str, str]) -> bool:
        """Teleport's `MatchLabels`: `{"*": "*"}` matches all; else every key must exist and match a value."""
        if not self.kubernetes_labels:
            return False
        if tuple(self.kubernetes_labels.get("*", ())) == ("*",):
            return True
        for key, patterns in self._patterns.items():
            value = labels.get(key)
            if value is None:
                return False
            if "*" not in self.kubernetes_labels[key] and not any(p.match(value) for p in patterns):
                return False
        return True


@dataclass(frozen=True)
class Bot:
    name: str
    roles: tuple[str, ...]
    max_session_ttl: dt.timedelta = DEFAULT_BOT_MAX_SESSION_TTL

    @property
    def username(self) -> str:
        return f"bot-{self.name}"


@dataclass(frozen=True)
class AllowRule:
    aws_account: str = ""
    aws_arn: str = ""


@dataclass(frozen=True)
class IamToken:
    """A provision token with `join_method: iam` for a bot."""

    name: str
    bot_name: str
    allow: tuple[AllowRule, ...]
    join_method: str = "iam"
    roles: tuple[str, ...] = ("Bot",)


@dataclass(frozen=True)
class Lock:
    """A `lock` resource (`tctl lock`): refuses every request of an identity it targets.

    Teleport matches locks on the caller's user, each of its roles, its bot instance and the token it
    joined with (`services.LockTargetsFromTLSIdentity`), and at certificate issuance on the user and
    the roles (`generateUserCert`). The refusal names the target as protobuf's compact text of the
    `LockTarget` (`lib/services/lock.go` `LockInForceAccessDenied`); the bot-instance field's name
    in that text is taken to be `BotInstanceID`, like the other CamelCase gogoproto names.
    """

    name: str
    user: str = ""
    role: str = ""
    bot_instance_id: str = ""
    message: str = ""

    def matches(self, user: str, roles: Sequence[str], bot_instance_id: str) -> bool:
        return bool(
            (self.user and self.user == user)
            or (self.role and self.role in roles)
            or (self.bot_instance_id and self.bot_instance_id == bot_instance_id)
        )

    def refusal(self) -> str:
        """`trace.AccessDenied` text Teleport sends for it (gRPC PERMISSION_DENIED)."""
        fields = (("User", self.user), ("Role", self.role), ("BotInstanceID", self.bot_instance_id))
        target = " ".join(f'{name}:"{value}"' for name, value in fields if value)
        return f"lock targeting {target} is in force" + (f": {self.message}" if self.message else "")


@dataclass(frozen=True)
class JoinFault:
    """How `teleport.join.v1` fails: before `ServerInit` (as a proxy that cannot reach Auth, or an
    Auth refusing the token) or after it (at the challenge)."""

    code: grpc.StatusCode
    message: str
    after_init: bool = False


@dataclass
class BotInstance:
    """One running bot as Teleport counts it (RFD 0162): created by a join that proves no instance."""

    id: str
    bot_name: str
    joins: int = 1


class KubeRequest(NamedTuple):
    """One request the Kubernetes proxy served for a kube cluster (path without the routing prefix)."""

    kube_cluster: str
    method: str
    path: str
    user: str


@dataclass(frozen=True)
class KubeEntry:
    """One listable resource, precomputed so a 1,000-cluster listing costs no proto building."""

    key: str
    cluster: str
    labels: Mapping[str, str]
    resource: authservice_pb2.PaginatedResource


@dataclass
class KubeCluster:
    name: str
    labels: dict[str, str]
    dynamic_labels: dict[str, str]
    servers: int
    version: str

    @property
    def all_labels(self) -> dict[str, str]:
        return {**self.labels, **self.dynamic_labels}

    def _cluster_proto(self) -> types_pb2.KubernetesClusterV3:
        spec = types_pb2.KubernetesClusterSpecV3()
        for key, result in self.dynamic_labels.items():
            spec.DynamicLabels[key].CopyFrom(
                types_pb2.CommandLabelV2(
                    Period=60_000_000_000, Command=["/bin/sh", "-c", "echo"], Result=result
                )
            )
        return types_pb2.KubernetesClusterV3(
            Kind="kube_cluster",
            Version="v3",
            Metadata=types_pb2.Metadata(Name=self.name, Namespace=DEFAULT_NAMESPACE, Labels=self.labels),
            Spec=spec,
        )

    def entries(self) -> dict[str, list[KubeEntry]]:
        """This cluster's `kube_cluster` entry and one `kube_server` entry per heartbeating agent."""
        cluster = self._cluster_proto()
        labels = self.all_labels
        servers = []
        for i in range(self.servers):
            host_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"kube-agent/{self.name}/{i}"))
            server = types_pb2.KubernetesServerV3(
                Kind="kube_server",
                Version="v3",
                Metadata=types_pb2.Metadata(Name=self.name, Namespace=DEFAULT_NAMESPACE),
                Spec=types_pb2.KubernetesServerSpecV3(
                    Version=self.version, Hostname=f"kube-agent-{i}", HostID=host_id, Cluster=cluster
                ),
            )
            servers.append(
                KubeEntry(
                    f"{self.name}/{host_id}",
                    self.name,
                    labels,
                    authservice_pb2.PaginatedResource(KubernetesServer=server),
                )
            )
        return {
            "kube_cluster": [
                KubeEntry(
                    self.name, self.name, labels, authservice_pb2.PaginatedResource(KubeCluster=cluster)
                )
            ],
            "kube_server": servers,
        }


class Cluster:
    """The shared state of one stand-in Teleport cluster."""

    def __init__(
        self, *, name: str, server_version: str, signature_suite: str, fips: bool, new_join_enabled: bool
    ) -> None:
        self.name = name
        self.server_version = server_version
        self.signature_suite = signature_suite
        self.fips = fips
        self.new_join_enabled = new_join_enabled
        self.new_join_fault: JoinFault | None = None
        self.list_limit_exceeded_above: int | None = None
        self.user = RotatingAuthority(name)
        self.host = RotatingAuthority(name)
        self.ca_generation = 0  # bumped by every rotation phase change, so servers reload their TLS
        self.rpc_calls: Counter[str] = Counter()
        self.rpc_versions: list[tuple[str, str | None]] = []
        self._bot_instances: dict[tuple[str, str], BotInstance] = {}
        self.kube_requests: list[KubeRequest] = []
        self.lock = threading.RLock()
        self._roles: dict[str, Role] = {}
        self._bots: dict[str, Bot] = {}
        self._tokens: dict[str, IamToken] = {}
        self._locks: dict[str, Lock] = {}
        self._kube: dict[str, KubeCluster] = {}
        self.agents_down: set[str] = set()  # kube clusters whose agents' tunnels are gone
        self._entries: dict[str, dict[str, list[KubeEntry]]] = {}
        self._index: dict[str, tuple[list[str], list[KubeEntry]]] | None = None

    @property
    def user_ca(self) -> CertAuthority:
        """The user CA key that signs client certificates now."""
        return self.user.signer

    @property
    def host_ca(self) -> CertAuthority:
        """The host CA key that signs new host certificates now."""
        return self.host.signer

    def authority(self, ca_type: str) -> RotatingAuthority:
        return {"host": self.host, "user": self.user}[ca_type]

    def rotate(self, ca_types: Sequence[str], phase: str) -> None:
        """Moves each CA type to `phase` (all or none: a refused transition changes nothing)."""
        with self.lock:
            rotations = [self.authority(t) for t in ca_types]
            for rotation in rotations:
                rotation.check(phase)
            for rotation in rotations:
                rotation.rotate(phase)
            self.ca_generation += 1

    @property
    def encoded_name(self) -> str:
        """Teleport's `EncodeClusterName`: hex of the name plus the internal API domain."""
        return self.name.encode().hex() + ".teleport.cluster.local"

    # -- roles, bots, tokens ------------------------------------------------------------

    def add_role(self, role: Role) -> None:
        with self.lock:
            self._roles[role.name] = role

    def role(self, name: str) -> Role | None:
        with self.lock:
            return self._roles.get(name)

    def roles(self, names: Sequence[str]) -> list[Role]:
        with self.lock:
            return [self._roles[n] for n in names if n in self._roles]

    def add_bot(self, bot: Bot) -> None:
        with self.lock:
            self._bots[bot.name] = bot
            self._roles[bot.username] = Role(
                bot.username, impersonate_roles=bot.roles, max_session_ttl=bot.max_session_ttl
            )

    def bot(self, name: str) -> Bot | None:
        with self.lock:
            return self._bots.get(name)

    def remove_bot(self, name: str) -> None:
        """`tctl bots rm`: the bot's user and role and its instances go; tokens naming it stay."""
        with self.lock:
            if self._bots.pop(name, None) is None:
                raise KeyError(f"bot {name!r} does not exist")
            self._roles.pop(f"bot-{name}", None)
            for key in [k for k in self._bot_instances if k[0] == name]:
                del self._bot_instances[key]

    def user_exists(self, username: str) -> bool:
        """Bots' users only (`bot-<name>`); other test users are taken to exist."""
        with self.lock:
            if not username.startswith("bot-"):
                return True
            return any(bot.username == username for bot in self._bots.values())

    def put_lock(self, lock: Lock) -> None:
        with self.lock:
            self._locks[lock.name] = lock

    def remove_lock(self, name: str) -> None:
        with self.lock:
            if self._locks.pop(name, None) is None:
                raise KeyError(f"lock {name!r} does not exist")

    def lock_in_force(self, user: str, roles: Sequence[str], bot_instance_id: str = "") -> Lock | None:
        with self.lock:
            return next((lk for lk in self._locks.values() if lk.matches(user, roles, bot_instance_id)), None)

    def bot_instance_for_join(self, bot_name: str, presented_id: str) -> BotInstance:
        """The instance a join continues (the presented one, if it exists for this bot) or a new one.

        Teleport looks instances up by bot name and ID, so another bot's instance ID is not found
        and the join starts a new instance, as does a join that presents none.
        """
        with self.lock:
            instance = self._bot_instances.get((bot_name, presented_id)) if presented_id else None
            if instance is not None:
                instance.joins += 1
                return instance
            instance = BotInstance(str(uuid.uuid4()), bot_name)
            self._bot_instances[(bot_name, instance.id)] = instance
            return instance

    def bot_instances(self) -> list[BotInstance]:
        with self.lock:
            return [BotInstance(i.id, i.bot_name, i.joins) for i in self._bot_instances.values()]

    def add_token(self, token: IamToken) -> None:
        with self.lock:
            self._tokens[token.name] = token

    def token(self, name: str) -> IamToken | None:
        with self.lock:
            return self._tokens.get(name)

    # -- Kubernetes clusters --------------------------------------------------------------

    def put_kube_cluster(self, cluster: KubeCluster) -> None:
        with self.lock:
            self._kube[cluster.name] = cluster
            self._entries[cluster.name] = cluster.entries()
            self._index = None

    def kube_cluster(self, name: str) -> KubeCluster | None:
        with self.lock:
            return self._kube.get(name)

    def kube_cluster_names(self) -> list[str]:
        with self.lock:
            return list(self._kube)

    def remove_kube_cluster(self, name: str) -> None:
        with self.lock:
            if self._kube.pop(name, None) is None:
                raise KeyError(f"kube cluster {name!r} does not exist")
            del self._entries[name]
            self._index = None

    def kube_index(self, resource_type: str) -> tuple[list[str], list[KubeEntry]]:
        """Entries of one resource type sorted by key, with the keys alongside for bisecting."""
        with self.lock:
            if self._index is None:
                index: dict[str, list[KubeEntry]] = {"kube_cluster": [], "kube_server": []}
                for per_cluster in self._entries.values():
                    for kind, entries in per_cluster.items():
                        index[kind].extend(entries)
                self._index = {}
                for kind, entries in index.items():
                    entries.sort(key=lambda e: e.key)
                    self._index[kind] = ([e.key for e in entries], entries)
            return self._index[resource_type]

    def can_access_kube(self, role_names: Sequence[str], labels: Mapping[str, str]) -> bool:
        return any(role.allows_kube(labels) for role in self.roles(role_names))

    def kube_groups(self, role_names: Sequence[str], labels: Mapping[str, str]) -> tuple[str, ...]:
        """The groups of the roles that allow a cluster with `labels` (`CheckKubeGroupsAndUsers`)."""
        return tuple(g for r in self.roles(role_names) if r.allows_kube(labels) for g in r.kubernetes_groups)

    # -- logs -------------------------------------------------------------------------

    def count_call(self, method: str, version: str | None) -> None:
        with self.lock:
            self.rpc_calls[method] += 1
            self.rpc_versions.append((method, version))

    def log_kube_request(self, request: KubeRequest) -> None:
        with self.lock:
            self.kube_requests.append(request)
