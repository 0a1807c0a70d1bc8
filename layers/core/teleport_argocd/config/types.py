"""The configuration's value types and defaults: what the rest of the layer reads.

A leaf: it imports nothing of ours, so a module that only needs an `OutputConfig` does not load
the YAML reader and the rules (those live beside it, in the section modules).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

OUTPUT_TYPE = "kubernetes/argo-cd"
DEFAULT_CLUSTER_NAME_TEMPLATE = "{{.ClusterName}}-{{.KubeName}}"
# tbot's bot.DefaultCredentialLifetime (lib/tbot/bot/credential_lifetime.go).
DEFAULT_CREDENTIAL_TTL = timedelta(minutes=60)
DEFAULT_RENEWAL_INTERVAL = timedelta(minutes=20)
# tbot's CredentialLifetime.Validate checks TTLs against defaults.MaxRenewableCertTTL (24h,
# lib/defaults/defaults.go): Teleport shortens longer certificates, so a longer TTL is never honoured.
MAX_CREDENTIAL_TTL = timedelta(hours=24)
# IAM-joined bots get certificates no longer than their role's max_session_ttl, 12h by default.
MAX_USEFUL_CREDENTIAL_TTL = timedelta(hours=12)
DEFAULT_PRUNE_GRACE_PERIOD = timedelta(hours=1)
DEFAULT_MIN_LISTED_SHARE = 0.5
# A cluster that only stopped being listed (its agent down longer than its heartbeat lives) may come
# back: its Secret waits days, not the hour a cluster deleted or deselected in Teleport waits.
DEFAULT_VANISHED_GRACE_PERIOD = timedelta(days=7)
# At most this share of the registered clusters (at least one) is deleted by one run.
DEFAULT_MAX_DELETES_PER_RUN = 0.1


@dataclass(frozen=True)
class Selector:
    """One `selectors` entry: a cluster name, or labels that must all match."""

    name: str | None
    labels: Mapping[str, str]

    def __str__(self) -> str:
        if self.name:
            return f"name={self.name}"
        if self.labels:
            return "labels={" + ", ".join(sorted(f"{k}={v}" for k, v in self.labels.items())) + "}"
        return "<empty selector>"


# How the writer reaches Secrets (teleport_argocd.destination): server-side apply without reading, or
# read first for clusters without admission policies (it needs `get` on every Secret there).
WriteMode = Literal["apply", "read-first"]
WRITE_MODES: tuple[WriteMode, ...] = ("apply", "read-first")


@dataclass(frozen=True)
class EksDestination:
    """An EKS cluster running Argo CD, reached with an IAM token."""

    cluster_name: str
    region: str
    write_mode: WriteMode = "apply"


@dataclass(frozen=True)
class KubeconfigSecretDestination:
    """A cluster running Argo CD, reached with a kubeconfig kept in Secrets Manager."""

    secret_id: str
    region: str | None
    context: str | None
    write_mode: WriteMode = "apply"


Destination = EksDestination | KubeconfigSecretDestination


@dataclass(frozen=True)
class TeleportConfig:
    """How to reach and join the Teleport cluster. `proxy_addr` is always host:port."""

    proxy_addr: str
    join_token: str
    insecure: bool
    ca_pem: str | None


@dataclass(frozen=True)
class PruneConfig:
    """When registrations of clusters that are no longer listed are deleted.

    A run whose listing returns fewer than `min_listed_share` of the clusters registered for the
    output prunes nothing: a half-empty answer from Teleport must not unregister half the fleet.
    A cluster deleted or deselected in Teleport waits `grace_period` of runs that could have
    pruned; one that merely stopped being listed waits `vanished_grace_period`. A run deletes at
    most `max_deletes_per_run`: an integer is a count, a number below 1 a share of the registered.
    """

    enabled: bool = False
    grace_period: timedelta = DEFAULT_PRUNE_GRACE_PERIOD
    min_listed_share: float = DEFAULT_MIN_LISTED_SHARE
    vanished_grace_period: timedelta = DEFAULT_VANISHED_GRACE_PERIOD
    max_deletes_per_run: int | float = DEFAULT_MAX_DELETES_PER_RUN


@dataclass(frozen=True)
class OutputConfig:
    """One `kubernetes/argo-cd` output: which clusters, and how their Secrets look. Defaults applied."""

    name: str
    selectors: tuple[Selector, ...]
    destination: Destination
    secret_namespace: str
    secret_name_prefix: str
    secret_labels: Mapping[str, str]
    secret_annotations: Mapping[str, str]
    project: str
    namespaces: tuple[str, ...]
    cluster_resources: bool
    cluster_name_template: str
    credential_ttl: timedelta
    renewal_interval: timedelta
    prune: PruneConfig = PruneConfig()
    # Namespaces besides `secret_namespace` (Argo CD's own) where Argo CD reconciles Applications
    # ("Applications in any namespace", its `application.namespaces`): pruning looks there too.
    application_namespaces: tuple[str, ...] = ()

    @property
    def application_search(self) -> tuple[str, ...]:
        """Where the pruning guard lists Applications: Argo CD's namespace first, each namespace once."""
        return tuple(dict.fromkeys((self.secret_namespace, *self.application_namespaces)))


@dataclass(frozen=True)
class Config:
    """The whole configuration, with the non-fatal findings (tbot's "suboptimal" settings)."""

    teleport: TeleportConfig
    outputs: tuple[OutputConfig, ...]
    warnings: tuple[str, ...]

    @property
    def longest_credential_ttl(self) -> timedelta:
        """The bot certificate must last this long: every output's certificate is issued from it."""
        return max(output.credential_ttl for output in self.outputs)
