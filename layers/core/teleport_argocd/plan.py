"""What one run must do for each cluster of one output, decided from reads alone.

Pure: the listing (already selected and rendered), the registry read at the start of the
run, the output's configuration and the trigger's scope go in; one step per cluster comes
out. Apply carries the steps out; a dry run shows them. Both use this one function, so what
a dry run promises is what a run does.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509

from teleport_argocd.argocd import RenderedSecret
from teleport_argocd.config import OutputConfig
from teleport_argocd.model import UPDATED_ANNOTATION, KubeCluster, Registration, SecretVersion

# A schedule fires late by up to a minute; renew that much early so a tick is never missed.
SCHEDULE_SLACK = timedelta(minutes=1)


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    UNMATCHED = "unmatched"
    PRUNE = "prune"
    CANNOT_RENDER = "cannot-render"


class Renewal(StrEnum):
    """Which unchanged, healthy registrations a run rewrites with a fresh certificate."""

    ALL = "all"  # a forced reload
    DUE = "due"  # a scheduled renewal: those whose certificate is due (see `renewal_due`)
    NONE = "none"  # discovery: only what is new, changed or failed


@dataclass(frozen=True)
class Scope:
    """How much of an output a trigger concerns.

    `clusters` None is the whole output; otherwise only those kube clusters (an audit event),
    and `removed` says Teleport deleted them, so they are unmatched without being looked up.
    `shard` (i, n): only the clusters whose name hashes to i of n, when a schedule splits a
    large output into runs side by side.
    """

    renew: Renewal = Renewal.DUE
    clusters: frozenset[str] | None = None
    removed: bool = False
    shard: tuple[int, int] = (0, 1)

    def covers(self, kube_cluster: str) -> bool:
        if self.clusters is not None and kube_cluster not in self.clusters:
            return False
        index, count = self.shard
        return count == 1 or shard_of(kube_cluster, count) == index

    @property
    def shard_id(self) -> str:
        """The shard's name in state ("" for a whole output)."""
        index, count = self.shard
        return "" if count == 1 else f"{index}/{count}"


def shard_of(kube_cluster: str, count: int) -> int:
    """A stable shard for a cluster name (the same in every process, unlike `hash`)."""
    digest = hashlib.sha256(kube_cluster.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Step:
    """One cluster's part of a run: what to do, why, and what to do it with."""

    kube_cluster: str
    action: Action
    reason: str
    secret: RenderedSecret | None = None
    registration: Registration | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    error: str | None = None

    @property
    def writes(self) -> bool:
        return self.action in (Action.CREATE, Action.UPDATE)

    @property
    def known(self) -> SecretVersion | None:
        """The precondition for the write: our last write of this same Secret, if there is one."""
        reg, secret = self.registration, self.secret
        if reg is None or secret is None or reg.deleted_at is not None:
            return None
        if (reg.secret_namespace, reg.secret_name) != (secret.namespace, secret.name):
            return None
        return reg.version


@dataclass(frozen=True)
class Plan:
    """The steps, and why pruning was held back this run if it was (None when it was not)."""

    steps: tuple[Step, ...]
    prune_held: str | None = None

    @property
    def writes(self) -> list[Step]:
        return [s for s in self.steps if s.writes]

    @property
    def deletes(self) -> list[Step]:
        return [s for s in self.steps if s.action is Action.PRUNE]

    @property
    def idle(self) -> bool:
        """Nothing to write to Kubernetes and nothing to record."""
        return all(s.action is Action.UNCHANGED for s in self.steps)


def plan(
    output: OutputConfig,
    *,
    teleport_cluster: str,
    rendered: Sequence[RenderedSecret],
    failures: Sequence[tuple[KubeCluster, str]],
    registrations: Sequence[Registration],
    now: datetime,
    scope: Scope,
) -> Plan:
    """One step per selected cluster, per cluster that failed to render, and per registration
    of this Teleport cluster that the selectors no longer pick (within the scope)."""
    known = {
        r.kube_cluster: r
        for r in registrations
        if r.teleport_cluster == teleport_cluster and scope.covers(r.kube_cluster)
    }
    steps: list[Step] = []
    seen: set[str] = set()
    if not scope.removed:
        for secret in rendered:
            name = secret.cluster.name
            seen.add(name)
            if scope.covers(name):
                steps.append(_write_step(output, secret, known.get(name), now, scope.renew))
        for cluster, message in failures:
            seen.add(cluster.name)
            if scope.covers(cluster.name):
                steps.append(
                    Step(
                        cluster.name,
                        Action.CANNOT_RENDER,
                        "cannot render",
                        registration=known.get(cluster.name),
                        labels=dict(cluster.labels),
                        error=message,
                    )
                )
    # Events concern one cluster each: only a run over the whole output (or shard) prunes.
    pruning = output.prune.enabled and scope.clusters is None
    held = _prune_guard(output, len(seen), known.values()) if pruning else None
    for name, reg in sorted(known.items()):
        if name in seen or reg.deleted_at is not None:
            continue
        if reg.matches:
            reason = "deleted in Teleport" if scope.removed else "no longer selected"
            steps.append(Step(name, Action.UNMATCHED, reason, registration=reg, labels=dict(reg.labels)))
        elif pruning and held is None and _prunable(output, reg, now):
            grace = output.prune.grace_period
            steps.append(Step(name, Action.PRUNE, f"unmatched for more than {grace}", registration=reg))
    return Plan(tuple(steps), prune_held=held)


def _prune_guard(output: OutputConfig, listed: int, registered: Iterable[Registration]) -> str | None:
    """Why this run must prune nothing, or None: a listing far shorter than the registry is more
    likely a Teleport outage or an RBAC change than clusters leaving, and must not empty Argo CD."""
    live = sum(1 for r in registered if r.deleted_at is None)
    share = output.prune.min_listed_share
    if live and listed < share * live:
        return (
            f"pruning held back: Teleport listed {listed} cluster(s) against {live} registered "
            f"(prune.min_listed_share {share})"
        )
    return None


def _prunable(output: OutputConfig, reg: Registration, now: datetime) -> bool:
    """Unmatched for longer than the grace period, and a Secret we wrote to delete."""
    since = reg.unmatched_since
    return reg.version is not None and since is not None and now - since >= output.prune.grace_period


def renewal_due(output: OutputConfig, cert_expires: datetime | None, now: datetime) -> bool:
    """Whether a scheduled run should rewrite a Secret whose certificate expires at `cert_expires`.

    Due once the certificate is `renewal_interval` old (tbot's rhythm), and in any case when
    it would not outlive the next scheduled run. Judged per registration, from what was really
    written, so no event-driven run between two ticks can postpone a renewal.
    """
    if cert_expires is None:
        return True
    remaining = cert_expires - now
    threshold = max(output.credential_ttl - output.renewal_interval, output.renewal_interval)
    return remaining <= threshold + SCHEDULE_SLACK


def fingerprint(secret: RenderedSecret) -> str:
    """A digest of everything rendered except what changes on every write (the time stamp and
    the client certificate and key), so a change of labels, names, CA or settings shows.

    The CA set enters twice: `caData` (the host CA's trusted certificates) and the user CA key that
    signed the certificate, so each rotation phase that changes either (`init`, `update_clients`,
    `rollback`, `standby`) rewrites every Secret in the run that first sees it, as tbot does.
    """
    manifest = secret.manifest
    meta = manifest["metadata"]
    data = dict(manifest.get("data") or {})
    if "config" in data:
        config = json.loads(base64.b64decode(data["config"]))
        tls = dict(config.get("tlsClientConfig") or {})
        tls["certData"] = _signer(str(tls.get("certData", "")))
        tls.pop("keyData", None)
        data["config"] = {**config, "tlsClientConfig": tls}
    stable = {
        "name": meta["name"],
        "namespace": meta["namespace"],
        "labels": meta.get("labels") or {},
        "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if k != UPDATED_ANNOTATION},
        "type": manifest.get("type"),
        "data": data,
    }
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=8)
def _signer(cert_data: str) -> str:
    """The key that issued a base64 PEM certificate (its authority key identifier), not the certificate:
    one identity serves every Secret of a run, so this is worked out once per run."""
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(cert_data))
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except (ValueError, x509.ExtensionNotFound):
        return ""
    return (aki.key_identifier or b"").hex()


def _write_step(
    output: OutputConfig,
    secret: RenderedSecret,
    reg: Registration | None,
    now: datetime,
    renew: Renewal,
) -> Step:
    digest = fingerprint(secret)
    labels = dict(secret.cluster.labels)

    def step(action: Action, reason: str) -> Step:
        return Step(secret.cluster.name, action, reason, secret, reg, labels, digest)

    if reg is None or reg.version is None or reg.deleted_at is not None:
        return step(Action.CREATE, "new")
    if reg.last_error is not None:
        return step(Action.UPDATE, "failed last time")
    if not reg.matches:
        return step(Action.UPDATE, "selected again")
    if reg.fingerprint != digest:
        return step(Action.UPDATE, "changed")
    if renew is Renewal.ALL:
        return step(Action.UPDATE, "forced")
    if renew is Renewal.DUE and renewal_due(output, reg.cert_expires, now):
        return step(Action.UPDATE, "renewal due")
    return step(Action.UNCHANGED, "up to date")
