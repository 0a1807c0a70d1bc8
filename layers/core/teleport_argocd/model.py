"""Value types and Secret keys shared across module boundaries (no I/O, no library types)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

# Our own version annotation, in place of tbot's `teleport.dev/tbot-version`; it marks a Secret as
# ours (the admission policy lets the functions change only Secrets carrying it or tbot's).
VERSION_ANNOTATION = "teleport-argocd.dev/version"
# The label and annotation keys we wrote, like kubectl's last-applied annotation, for the read-first
# writer: an update removes ours that are no longer rendered and keeps everyone else's. The apply
# writer leaves that to the API server's field ownership and removes this annotation.
MANAGED_KEYS_ANNOTATION = "teleport-argocd.dev/managed-keys"
# The annotation only tbot writes; it marks a Secret we may take over from tbot.
TBOT_VERSION_ANNOTATION = "teleport.dev/tbot-version"

# The keys of an Argo CD cluster Secret as tbot writes it (tbot-argocd.md §1.5): rendering writes
# them, the configuration may not set them, the writer recognises tbot's Secrets by them.
DEFAULT_SECRET_NAME_PREFIX = "teleport.argocd-cluster"
SECRET_TYPE_LABEL = "argocd.argoproj.io/secret-type"
BOT_NAME_ANNOTATION = "teleport.dev/bot-name"
KUBE_CLUSTER_ANNOTATION = "teleport.dev/kubernetes-cluster-name"
TELEPORT_CLUSTER_ANNOTATION = "teleport.dev/teleport-cluster-name"
UPDATED_ANNOTATION = "teleport.dev/updated"
# Labels we always write; user labels may not replace them (tbot's rule).
RESERVED_LABELS = frozenset({SECRET_TYPE_LABEL})
# tbot's five annotations and ours; user annotations may not replace them. Other `teleport.dev/`
# keys are the user's: tbot reserves only its five.
RESERVED_ANNOTATIONS = frozenset(
    {
        BOT_NAME_ANNOTATION,
        KUBE_CLUSTER_ANNOTATION,
        TELEPORT_CLUSTER_ANNOTATION,
        UPDATED_ANNOTATION,
        TBOT_VERSION_ANNOTATION,
        VERSION_ANNOTATION,
        MANAGED_KEYS_ANNOTATION,
    }
)


def is_reserved_annotation(key: str) -> bool:
    """Whether `key` is an annotation we write ourselves, which `secret_annotations` cannot set."""
    return key in RESERVED_ANNOTATIONS


def shard_of(name: str, count: int) -> int:
    """A stable shard of `count` for a name (the same in every process, unlike `hash`): a
    schedule's shard of a cluster (`plan.Scope`), a registration's renewal ledger (`state.renewals`)."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class KubeCluster:
    """A Kubernetes cluster enrolled in Teleport, with static and dynamic labels merged."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KubeEndpoint:
    """Where Kubernetes clients reach the Teleport proxy: base URL and TLS server name ("" for none)."""

    base_url: str
    server_name: str = ""


@dataclass(frozen=True)
class Identity:
    """A Teleport TLS identity. Key and certificate are excluded from repr so they never reach a log."""

    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)
    expires: datetime
    username: str
    bot_name: str
    cluster_name: str
    roles: tuple[str, ...] = ()
    # Bot and impersonated certificates carry the bot instance they belong to ("" when none).
    bot_instance_id: str = ""

    @property
    def cert_id(self) -> str:
        """A digest of the certificate: which one a Secret holds, without storing the certificate."""
        return hashlib.sha256(self.cert_pem).hexdigest()[:32]


@dataclass(frozen=True)
class SecretVersion:
    """What we stored at our last write of a Secret: the precondition for the next write or delete.

    In read-first mode, an empty `resource_version` means the Secret also carries labels or
    annotations someone else added, so the next write must read it first rather than replace it.
    """

    uid: str
    resource_version: str


class Absence(StrEnum):
    """Why a registered cluster is no longer selected: the evidence that sets its grace period."""

    NONE = ""
    VANISHED = "vanished"  # Teleport no longer lists it at all: an agent may only be down
    DESELECTED = "deselected"  # Teleport lists it by name, the selectors no longer pick it
    DELETED = "deleted"  # a kube.delete named it

    @property
    def strength(self) -> int:
        return _ABSENCE_ORDER.index(self)


_ABSENCE_ORDER = (Absence.NONE, Absence.VANISHED, Absence.DESELECTED, Absence.DELETED)


class Outcome(StrEnum):
    """What happens to one cluster in a run: the one vocabulary of the plan, the report, the run
    records and the responses (their strings are what the handlers return and DynamoDB keeps).

    A plan foresees an outcome for each cluster (`would-…`, or one that needs no request); applying
    a step turns a foreseen outcome into what happened. A dry run reports the foreseen ones.
    """

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"  # failed to render, write or delete; an error says why
    UNMATCHED = "unmatched"  # no longer selected: marked, its Secret kept
    WAITING = "waiting"  # unmatched, waiting out its grace period (or held, or deferred)
    DELETED = "deleted"
    # Kubernetes refused: the Secret there is not the one we wrote. Reported as failed, or as
    # relinquished once it has happened `RELINQUISH_AFTER` runs in a row (teleport_argocd.outcomes).
    REFUSED = "refused"
    RELINQUISHED = "relinquished"
    WOULD_CREATE = "would-create"
    WOULD_UPDATE = "would-update"
    WOULD_UNMATCH = "would-unmatch"
    WOULD_DELETE = "would-delete"


@dataclass(frozen=True)
class Registration:
    """What we last wrote (or failed to write) for one cluster of one output."""

    output: str
    teleport_cluster: str
    kube_cluster: str
    secret_namespace: str = ""
    secret_name: str = ""
    server: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    # The part of `fingerprint` without labels and annotations (renewal.data_fingerprint).
    data_fingerprint: str = ""
    version: SecretVersion | None = None
    matches: bool = True
    last_error: str | None = None
    first_written: datetime | None = None
    last_written: datetime | None = None
    last_attempt: datetime | None = None
    cert_expires: datetime | None = None
    # Which certificate the Secret holds (`Identity.cert_id`), so a warm process knows it holds it.
    cert_id: str = ""
    last_error_at: datetime | None = None
    unmatched_since: datetime | None = None
    deleted_at: datetime | None = None
    # The grace clock of an unmatched registration: the absence counted so far (`absence_banked`)
    # up to the last run that could have pruned and saved it (`absence_seen`); None while paused.
    absence: Absence = Absence.NONE
    absence_banked: timedelta = timedelta(0)
    absence_seen: datetime | None = None
    # The last check that the Secret connects as Argo CD will (teleport_argocd.probe): ok,
    # forbidden, unreachable or tls-error, when, and why.
    connection: str = ""
    connection_at: datetime | None = None
    connection_message: str = ""
    # Runs in a row whose write or delete Kubernetes refused because the Secret there is not the
    # one we wrote; after a few, the Secret is `relinquished_at`: left alone until its rendering
    # changes or a forced reload tries again.
    refusals: int = 0
    relinquished_at: datetime | None = None
    # The Secret's Argo CD cluster name (its `name` data) as last written: Applications may target it.
    cluster_name: str = ""
    # The Argo CD Applications (namespace/name) that held its deletion at the last run that checked.
    held_by: tuple[str, ...] = ()
