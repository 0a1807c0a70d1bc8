"""A change of labels or annotations alone writes them alone (`SecretStore.relabel`): the Secret keeps
its certificate, so Argo CD, which rebuilds a cluster's cache whenever `config` changes
(`handleModEvent`, argoproj/argo-cd controller/cache/cache.go), does not; in any process, cold or
warm, since nothing of the certificate is needed. Through the real `Reconciler`; what the writer
sends is in tests/integration/test_kube_apply.py and test_kube_store.py."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

from teleport_argocd.model import KubeCluster, Registration
from teleport_argocd.plan import Renewal, Scope
from teleport_argocd.reconcile import Trigger

from .fakes import Clock, FakeSession, FakeState, FakeStore, output, reconciler

CLUSTERS = {"a": {"env": "prod", "team": "payments"}, "b": {"env": "prod", "team": "search"}}
TEAM = '{{ index .Labels "team" }}'
LABELLED = output(secret_labels={"team": TEAM})
RENEWAL = Trigger("schedule", "tick", Scope(renew=Renewal.DUE))
DISCOVERY = Trigger("discovery", "tick", Scope(renew=Renewal.NONE))
FORCED = Trigger("reload", "manual", Scope(renew=Renewal.ALL))
KUBE_UPDATE = Trigger("audit", "kube.update a", Scope(renew=Renewal.NONE, clusters=frozenset({"a"})))
KEY = ("main", "example.teleport.sh", "a")


def started() -> tuple[Clock, Any, FakeState, FakeStore, FakeSession]:
    """Every cluster registered by a scheduled run; the next certificates differ from those written."""
    clock = Clock()
    rec, state, store, session = reconciler(CLUSTERS, clock)
    rec.run(LABELLED, RENEWAL)
    session.cert_pem = b"ANOTHER CERT"
    return clock, rec, state, store, session


def cert_data(store: FakeStore, cluster: str) -> str:
    [secret] = [
        s
        for s in store.secrets.values()
        if s["metadata"]["annotations"]["teleport.dev/kubernetes-cluster-name"] == cluster
    ]
    return str(json.loads(base64.b64decode(secret["data"]["config"]))["tlsClientConfig"]["certData"])


def retag(session: FakeSession, cluster: str, team: str) -> None:
    session.clusters[cluster] = KubeCluster(cluster, {"env": "prod", "team": team})


def test_a_label_change_writes_the_labels_alone_and_keeps_the_certificate() -> None:
    clock, rec, state, store, session = started()
    written = state.regs[KEY]
    certificate, writes = cert_data(store, "a"), len(store.writes)
    clock.advance(timedelta(minutes=3))
    retag(session, "a", "checkout")

    report = rec.run(LABELLED, DISCOVERY)

    assert [(c.kube_cluster, c.action, c.reason) for c in report.clusters if c.action != "unchanged"] == [
        ("a", "updated", "labels or annotations changed")
    ]
    assert store.relabels == ["a"] and len(store.writes) == writes
    assert cert_data(store, "a") == certificate
    reg = state.regs[KEY]
    # The registration still records the certificate the Secret holds, so its renewal is not postponed,
    # and the new rendering, so the next run leaves it alone.
    assert reg.cert_expires == written.cert_expires and reg.data_fingerprint == written.data_fingerprint
    assert reg.fingerprint != written.fingerprint and reg.version != written.version
    assert rec.run(LABELLED, DISCOVERY).clusters[0].action == "unchanged"


def test_an_event_for_one_cluster_relabels_it_alone() -> None:
    clock, rec, _state, store, session = started()
    clock.advance(timedelta(minutes=3))
    retag(session, "a", "checkout")

    report = rec.run(LABELLED, KUBE_UPDATE)

    assert [(c.kube_cluster, c.action) for c in report.clusters] == [("a", "updated")]
    assert store.relabels == ["a"]


def test_a_due_renewal_a_forced_reload_or_a_data_change_write_a_new_certificate() -> None:
    clock, rec, _state, store, session = started()
    # 20 minutes on, the certificate is due (renewal_interval): the labels go with a new certificate.
    clock.advance(timedelta(minutes=20))
    retag(session, "a", "checkout")
    rec.run(LABELLED, RENEWAL)
    assert store.relabels == [] and cert_data(store, "a") == base64.b64encode(b"ANOTHER CERT").decode()

    session.cert_pem = b"THIRD CERT"
    clock.advance(timedelta(minutes=2))
    retag(session, "a", "search")
    rec.run(LABELLED, FORCED)
    assert store.relabels == [] and cert_data(store, "a") == base64.b64encode(b"THIRD CERT").decode()

    # The team also renders the Argo CD project (data): not labels alone.
    session.cert_pem = b"FOURTH CERT"
    clock.advance(timedelta(minutes=2))
    retag(session, "a", "payments")
    rec.run(output(secret_labels={"team": TEAM}, project=TEAM), DISCOVERY)
    assert store.relabels == [] and cert_data(store, "a") == base64.b64encode(b"FOURTH CERT").decode()


def test_a_registration_written_before_the_data_fingerprint_is_written_whole_once() -> None:
    clock, rec, state, store, session = started()
    state.regs[KEY] = replace(state.regs[KEY], data_fingerprint="")
    clock.advance(timedelta(minutes=3))
    retag(session, "a", "checkout")

    rec.run(LABELLED, DISCOVERY)
    assert store.relabels == [] and state.regs[KEY].data_fingerprint

    retag(session, "a", "search")
    rec.run(LABELLED, DISCOVERY)
    assert store.relabels == ["a"]


def test_a_secret_replaced_since_our_write_is_written_whole_with_the_new_certificate() -> None:
    clock, rec, state, store, session = started()
    [name] = [
        n
        for n, s in store.secrets.items()
        if s["metadata"]["annotations"]["teleport.dev/kubernetes-cluster-name"] == "a"
    ]
    store.versions[name] = replace(store.versions[name], uid="someone-else")
    clock.advance(timedelta(minutes=3))
    retag(session, "a", "checkout")

    report = rec.run(LABELLED, DISCOVERY)

    assert [(c.kube_cluster, c.action) for c in report.clusters if c.action != "unchanged"] == [
        ("a", "updated")
    ]
    assert store.relabels == [] and cert_data(store, "a") == base64.b64encode(b"ANOTHER CERT").decode()
    reg: Registration = state.regs[KEY]
    assert reg.cert_expires == clock() + LABELLED.credential_ttl


def test_a_dry_run_says_labels_alone_would_change() -> None:
    clock, rec, _state, store, session = started()
    clock.advance(timedelta(minutes=3))
    retag(session, "a", "checkout")

    report = rec.run(LABELLED, replace(DISCOVERY, dry_run=True))

    assert [(c.kube_cluster, c.action, c.reason) for c in report.clusters if c.action != "unchanged"] == [
        ("a", "would-update", "labels or annotations changed")
    ]
    assert store.relabels == []
