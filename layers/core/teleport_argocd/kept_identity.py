"""The certificates a warm worker wrote, kept in memory so that a rewrite which is not a renewal keeps
a Secret's `config` byte for byte.

Argo CD invalidates and rebuilds a cluster's cache whenever its Secret's `config` changes
(`handleModEvent`, argoproj/argo-cd controller/cache/cache.go), and every run mints a fresh
certificate. A change of labels or annotations alone needs no certificate (`Step.relabel`); without
this, a change of other data (an Argo CD name, `project` or `namespaces` rendered from a Teleport
label) would write a new certificate and cost Argo CD a rebuild. Private keys are never
stored (DynamoDB, logs) and the apply writer cannot read a Secret back, so the certificate in a
Secret can only be known by the process that wrote it: a cold worker holds nothing and writes the
fresh certificate, as before.

When a kept certificate goes stale, and the fresh one is written instead:
- the registration does not record it (its `cert_id` is another certificate's, or none), or the
  step is a renewal, a retry after a failure, or a forced rewrite of the whole output (a forced
  reload, a role or bot event); an event's rewrite of its one cluster (`kube.create`,
  `kube.update`) keeps the certificate;
- the certificate is due for renewal (`renewal.renewal_due`) or expired;
- the host CA set changed, or the user CA key that signed the run's fresh certificate is not the
  one that signed it (the rendered fingerprint, which holds both, must be unchanged);
- the principal changed (user, bot, bot instance, Teleport cluster, roles) or `credential_ttl` did.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from teleport_argocd.argocd import RenderedSecret
from teleport_argocd.config.types import OutputConfig
from teleport_argocd.errors import RenderError
from teleport_argocd.model import Identity, Outcome
from teleport_argocd.plan import Plan, Renewal, Scope, Step
from teleport_argocd.renewal import fingerprint, renewal_due

# Certificates kept per output and Teleport cluster: one per run that wrote, newest first. A
# certificate serves at most `renewal_interval`, so a few cover every run of that window but a storm.
KEPT_PER_OUTPUT = 4

Render = Callable[[Identity, RenderedSecret], RenderedSecret]


@dataclass(frozen=True)
class _Kept:
    identity: Identity
    ca_digest: str  # the host CA set rendered into `caData` beside it
    credential_ttl: timedelta


class KeptIdentities:
    """The identities this process wrote Secrets with, per output and Teleport cluster; thread-safe."""

    def __init__(self, most: int = KEPT_PER_OUTPUT) -> None:
        self._most = most
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, str], list[_Kept]] = {}

    def remember(
        self, output: OutputConfig, teleport_cluster: str, identity: Identity, ca_pems: Sequence[bytes]
    ) -> None:
        """Keep `identity`, with which this run writes Secrets rendered with `ca_pems`."""
        kept = _Kept(identity, _ca_set(ca_pems), output.credential_ttl)
        with self._lock:
            held = self._kept.setdefault((output.name, teleport_cluster), [])
            if all(k.identity.cert_pem != identity.cert_pem for k in held):
                held.insert(0, kept)
                del held[self._most :]

    def find(
        self,
        output: OutputConfig,
        teleport_cluster: str,
        fresh: Identity,
        ca_digest: str,
        cert_id: str,
        now: datetime,
    ) -> Identity | None:
        """The kept identity a Secret recorded as written with the certificate `cert_id` may be
        rewritten with, or None (see the module's rules); `ca_digest` is the run's host CA set's."""
        with self._lock:
            held = list(self._kept.get((output.name, teleport_cluster), ()))
        for kept in held:
            identity = kept.identity
            if (
                identity.cert_id == cert_id
                and kept.ca_digest == ca_digest
                and kept.credential_ttl == output.credential_ttl
                and _principal(identity) == _principal(fresh)
                and identity.expires > now
                and not renewal_due(output, identity.expires, now)
            ):
                return identity
        return None

    def reuse(
        self,
        decided: Plan,
        output: OutputConfig,
        scope: Scope,
        teleport_cluster: str,
        fresh: Identity,
        ca_pems: Sequence[bytes],
        render: Render,
        now: datetime,
    ) -> Plan:
        """The plan with each rewrite that is not a renewal rendered with the kept certificate its
        Secret holds (found by the registration's `cert_id`); keeps the run's `fresh` identity
        when any write still uses it."""

        digest = _ca_set(ca_pems)

        def find(cert_id: str) -> Identity | None:
            return self.find(output, teleport_cluster, fresh, digest, cert_id, now)

        fresh_used = False
        steps: list[Step] = []
        for step in decided.steps:
            reused = _reused(step, output, scope, find, render, now) if step.writes else None
            fresh_used = fresh_used or (step.writes and reused is None)
            steps.append(reused or step)
        if fresh_used:
            self.remember(output, teleport_cluster, fresh, ca_pems)
        return replace(decided, steps=tuple(steps))

    def forget(self) -> None:
        """Drop every kept identity, as a new execution environment starts without any."""
        with self._lock:
            self._kept.clear()


def _reused(
    step: Step,
    output: OutputConfig,
    scope: Scope,
    find: Callable[[str], Identity | None],
    render: Render,
    now: datetime,
) -> Step | None:
    """The step rendered with the kept identity its Secret holds, or None to write the fresh one."""
    reg, secret = step.registration, step.secret
    if (
        (scope.renew is Renewal.ALL and scope.clusters is None)
        or step.action is not Outcome.WOULD_UPDATE
        or step.relabel  # its certificate is not sent at all
        or secret is None
        or reg is None
        or reg.version is None
        or reg.deleted_at is not None
        or reg.last_error is not None
        or not reg.cert_id
        or renewal_due(output, reg.cert_expires, now)
    ):
        return None
    identity = find(reg.cert_id)
    if identity is None:
        return None
    try:
        rendered = render(identity, secret)
    except RenderError:  # it rendered with the fresh identity: write that rather than fail
        return None
    if fingerprint(rendered) != step.fingerprint:
        return None  # another signer or CA set: the Secret needs the fresh certificate
    return replace(step, secret=rendered, cert_expires=identity.expires, cert_id=identity.cert_id)


def _principal(identity: Identity) -> tuple[object, ...]:
    return (
        identity.username,
        identity.bot_name,
        identity.cluster_name,
        tuple(sorted(identity.roles)),
        identity.bot_instance_id,
    )


def _ca_set(ca_pems: Sequence[bytes]) -> str:
    """A host CA set, as `find` compares it."""
    return hashlib.sha256(b"\0".join(ca_pems)).hexdigest()


# The process's kept identities: a warm execution environment keeps them between invocations.
KEPT = KeptIdentities()
