"""A warm worker rewrites a Secret whose data changed but whose certificate is not due with the
certificate it holds, so Argo CD, which rebuilds a cluster's cache whenever `config` changes
(`handleModEvent`, argoproj/argo-cd controller/cache/cache.go), sees the Secret change and `config`
not; and it never does so past the certificate's renewal, across a CA change or for other settings.

Here a cluster's `team` label renders both a Secret label and the Argo CD `project` (data), so a
team change is not labels alone (those need no certificate at all: tests/unit/test_relabel.py).
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from standins.teleport import ca
from standins.teleport.ca import CertAuthority
from teleport_argocd.kept_identity import KeptIdentities
from teleport_argocd.model import Identity, KubeCluster
from teleport_argocd.plan import Renewal, Scope
from teleport_argocd.reconcile import Reconciler, Trigger
from teleport_argocd.report import OutputReport

from .fakes import Clock, FakeSession, FakeState, FakeStore, output, reconciler

CLUSTERS = {"a": {"env": "prod", "team": "payments"}, "b": {"env": "prod", "team": "search"}}
TEAM = '{{ index .Labels "team" }}'
LABELLED = output(secret_labels={"team": TEAM}, project=TEAM)
RENEWAL = Trigger("schedule", "tick", Scope(renew=Renewal.DUE))
DISCOVERY = Trigger("discovery", "tick", Scope(renew=Renewal.NONE))
FORCED = Trigger("reload", "manual", Scope(renew=Renewal.ALL))
KUBE_UPDATE = Trigger("audit", "kube.update a", Scope(renew=Renewal.ALL, clusters=frozenset({"a"})))


class MintingSession(FakeSession):
    """Each impersonation a new certificate (a new key), signed by `signer`, for `roles`."""

    def __init__(self, clusters: dict[str, dict[str, str]], clock: Clock) -> None:
        super().__init__(clusters, clock)
        self.signer = CertAuthority("example.teleport.sh")
        self.roles: tuple[str, ...] = ("kube",)

    def impersonate(self, ttl: timedelta) -> Identity:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = ca.Identity("bot-argocd", self.roles, "example.teleport.sh")
        # The certificate's own validity is the CA's clock; the run reads the expiry from `Identity`.
        cert = self.signer.issue_client(subject, key.public_key(), ca.now() + ttl)
        return Identity(
            cert.public_bytes(serialization.Encoding.PEM),
            b"KEY",
            self.clock() + ttl,
            "bot-argocd",
            "argocd",
            "example.teleport.sh",
            roles=self.roles,
        )


def warm(clock: Clock | None = None) -> tuple[Reconciler, FakeState, FakeStore, MintingSession]:
    clock = clock or Clock()
    rec, state, store, _ = reconciler({}, clock)
    session = MintingSession(CLUSTERS, clock)
    connection = rec.connect_teleport()
    rec.connect_teleport = lambda: type(connection)(session, connection.teleport_cluster, connection.endpoint)
    rec.kept = KeptIdentities()
    return rec, state, store, session


def secret(store: FakeStore, cluster: str) -> dict[str, Any]:
    [found] = [
        s
        for s in store.secrets.values()
        if s["metadata"]["annotations"]["teleport.dev/kubernetes-cluster-name"] == cluster
    ]
    return found


def cert_data(store: FakeStore, cluster: str) -> str:
    config = json.loads(base64.b64decode(secret(store, cluster)["data"]["config"]))
    return str(config["tlsClientConfig"]["certData"])


def started() -> tuple[Clock, Reconciler, FakeState, FakeStore, MintingSession]:
    """A warm worker that has registered every cluster."""
    clock = Clock()
    rec, state, store, session = warm(clock)
    rec.run(LABELLED, RENEWAL)
    return clock, rec, state, store, session


def relabelled(
    clock: Clock,
    rec: Reconciler,
    session: MintingSession,
    cluster: str,
    team: str,
    after: timedelta = timedelta(minutes=2),
    **settings: Any,
) -> OutputReport:
    """`after` on, `cluster`'s team label is `team`, and discovery runs (with `settings`, if any)."""
    clock.advance(after)
    session.clusters[cluster] = KubeCluster(cluster, {"env": "prod", "team": team})
    out = (
        output(secret_labels=dict(LABELLED.secret_labels), project=TEAM, **settings) if settings else LABELLED
    )
    return rec.run(out, DISCOVERY)


def test_a_label_change_in_a_warm_worker_keeps_config_byte_identical_and_changes_the_labels() -> None:
    clock, rec, state, store, session = started()
    before = secret(store, "a")
    written_until = state.regs[("main", "example.teleport.sh", "a")].cert_expires

    report = relabelled(clock, rec, session, "a", "checkout")

    updated = [c.kube_cluster for c in report.clusters if c.action == "updated"]
    assert updated == ["a"]
    after = secret(store, "a")
    assert after["data"]["config"] == before["data"]["config"]
    assert [s["metadata"]["labels"]["team"] for s in (before, after)] == ["payments", "checkout"]
    # The registration still records the certificate the Secret holds, so its renewal is not postponed.
    assert state.regs[("main", "example.teleport.sh", "a")].cert_expires == written_until


def test_a_kube_update_event_rewrites_its_cluster_with_the_certificate_it_holds() -> None:
    clock, rec, _state, store, _session = started()
    before, writes = secret(store, "a")["data"]["config"], len(store.writes)
    clock.advance(timedelta(minutes=5))

    report = rec.run(LABELLED, KUBE_UPDATE)

    assert [(c.kube_cluster, c.action) for c in report.clusters] == [("a", "updated")]
    assert store.writes[writes:] == ["a"] and secret(store, "a")["data"]["config"] == before


def test_a_forced_reload_and_a_due_renewal_write_a_new_certificate() -> None:
    clock, rec, _state, store, session = started()
    first = cert_data(store, "a")
    clock.advance(timedelta(minutes=5))
    rec.run(LABELLED, FORCED)
    forced = cert_data(store, "a")
    assert forced != first
    # 20 minutes after the forced reload's certificate it is due (renewal_interval), so a label
    # change rewrites with a new one although discovery renews nothing.
    relabelled(clock, rec, session, "a", "checkout", after=timedelta(minutes=20))
    assert cert_data(store, "a") not in (first, forced)


def test_a_changed_host_ca_set_or_user_ca_signer_writes_a_new_certificate() -> None:
    clock, rec, _state, store, session = started()
    first = {c: cert_data(store, c) for c in CLUSTERS}
    # A host CA rotation's init: another trusted host CA; every Secret is rewritten, none with the kept one.
    session.host_cas = [*session.host_cas, CertAuthority("example.teleport.sh").cert_pem]
    clock.advance(timedelta(minutes=2))
    rec.run(LABELLED, DISCOVERY)
    second = {c: cert_data(store, c) for c in CLUSTERS}
    assert all(second[c] != first[c] for c in CLUSTERS)
    # update_clients of the user CA: the run's certificate has another signer than the kept one.
    session.signer = CertAuthority("example.teleport.sh")
    relabelled(clock, rec, session, "b", "checkout")
    assert cert_data(store, "b") != second["b"]


def test_changed_roles_or_credential_ttl_write_a_new_certificate() -> None:
    clock, rec, _state, store, session = started()
    first = cert_data(store, "a")
    session.roles = ("kube", "kube-admin")
    relabelled(clock, rec, session, "a", "checkout")
    with_roles = cert_data(store, "a")
    assert with_roles != first
    # A shorter credential_ttl: the kept certificate would outlive what the output now allows.
    relabelled(clock, rec, session, "a", "search", credential_ttl="30m", renewal_interval="20m")
    assert cert_data(store, "a") != with_roles


def test_a_cold_worker_or_another_workers_write_means_a_new_certificate() -> None:
    clock, rec, state, store, session = started()
    first = cert_data(store, "a")
    clock.advance(timedelta(minutes=2))
    # Another warm worker (its own memory, the same table and Secrets) forces a reload: the
    # registrations now record its certificate, which this worker does not hold.
    other = Reconciler(
        state=state,
        connect_teleport=rec.connect_teleport,
        connect_destination=rec.connect_destination,
        clock=clock,
        kept=KeptIdentities(),
    )
    other.run(LABELLED, FORCED)
    by_other = cert_data(store, "a")
    relabelled(clock, rec, session, "a", "checkout")
    assert cert_data(store, "a") not in (first, by_other)
    # A cold worker holds nothing.
    assert rec.kept is not None
    rec.kept.forget()
    before_cold = cert_data(store, "a")
    relabelled(clock, rec, session, "a", "search")
    assert cert_data(store, "a") != before_cold


def test_two_certificates_with_one_expiry_are_told_apart_by_their_digest() -> None:
    """A new cluster registered in the same second as the others gets another certificate with the
    same expiry; a later rewrite of an older Secret must use the certificate that Secret holds."""
    clock, rec, state, store, session = started()
    held_by_a = cert_data(store, "a")
    session.clusters["c"] = KubeCluster("c", {"env": "prod", "team": "data"})
    rec.run(LABELLED, DISCOVERY)  # no time passes: c's certificate expires when a's does
    regs = {c: state.regs[("main", "example.teleport.sh", c)] for c in ("a", "c")}
    assert regs["a"].cert_expires == regs["c"].cert_expires and regs["a"].cert_id != regs["c"].cert_id

    relabelled(clock, rec, session, "a", "checkout")

    assert cert_data(store, "a") == held_by_a
