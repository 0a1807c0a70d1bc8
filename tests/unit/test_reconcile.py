"""The reconcile's decisions, on in-memory seams (tests/unit/fakes.py): what each trigger writes,
to Kubernetes and to the state table, and what it leaves alone."""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from standins.teleport import ca
from standins.teleport.ca import CertAuthority
from teleport_argocd.applications import Application
from teleport_argocd.argocd import RenderedSecret
from teleport_argocd.errors import DestinationForbidden, DestinationUnreachable, StateError
from teleport_argocd.model import KubeCluster
from teleport_argocd.plan import Renewal, Scope, shard_of
from teleport_argocd.probe import ConnectionCheck
from teleport_argocd.reconcile import Trigger

from .fakes import Clock, output, reconciler

PROD = {"a": {"env": "prod"}, "b": {"env": "prod"}, "c": {"env": "prod"}, "d": {"env": "dev"}}
RENEWAL = Trigger("schedule", "tick", Scope(renew=Renewal.DUE))
DISCOVERY = Trigger("discovery", "tick", Scope(renew=Renewal.NONE))
FORCED = Trigger("reload", "manual", Scope(renew=Renewal.ALL))


def event(name: str, *, removed: bool = False, wait: int = 0) -> Trigger:
    scope = Scope(renew=Renewal.ALL, clusters=frozenset({name}), removed=removed)
    return Trigger("audit", f"kube event {name}", scope, wait_for_listing=timedelta(seconds=wait))


def test_first_run_creates_every_selected_cluster_and_batches_state_writes() -> None:
    rec, state, store, _ = reconciler(PROD)
    report = rec.run(output(), RENEWAL)
    assert report.status == "completed"
    assert report.counts["created"] == 3 and report.counts["selected"] == 3
    assert sorted(store.writes) == ["a", "b", "c"]
    # lease, one batch of registrations, run record, release
    assert state.writes == 4
    assert {r.kube_cluster for r in state.regs.values()} == {"a", "b", "c"}
    assert all(r.version is not None and r.last_error is None for r in state.regs.values())


def test_nothing_due_writes_nothing_anywhere() -> None:
    rec, state, store, _ = reconciler(PROD)
    rec.run(output(), RENEWAL)
    writes, kube = state.writes, len(store.writes)
    for trigger in (RENEWAL, DISCOVERY):
        report = rec.run(output(), trigger)
        assert report.status == "idle"
        assert report.counts["unchanged"] == 3
    assert state.writes == writes and len(store.writes) == kube


def test_renewal_follows_each_certificate_expiry_with_the_stored_version() -> None:
    clock = Clock()
    rec, state, _store, _ = reconciler(PROD, clock)
    rec.run(output(), RENEWAL)
    first = {r.kube_cluster: r.version for r in state.regs.values()}
    clock.advance(timedelta(minutes=19) - timedelta(seconds=1) - timedelta(minutes=1))
    assert rec.run(output(), RENEWAL).status == "idle"
    clock.advance(timedelta(minutes=1) + timedelta(seconds=2))
    report = rec.run(output(), RENEWAL)
    assert report.counts["updated"] == 3
    assert {c.reason for c in report.clusters} == {"renewal due"}
    renewed = {r.kube_cluster: r for r in state.regs.values()}
    assert all(
        renewed[n].version != first[n] and renewed[n].cert_expires == clock() + timedelta(hours=1)
        for n in first
    )


def test_an_event_run_never_postpones_the_renewal_of_other_clusters() -> None:
    clock = Clock()
    rec, _state, _store, session = reconciler(PROD, clock)
    rec.run(output(), RENEWAL)
    clock.advance(timedelta(minutes=15))
    session.clusters["e"] = session.clusters["a"].__class__("e", {"env": "prod"})
    assert rec.run(output(), event("e")).counts["created"] == 1
    clock.advance(timedelta(minutes=5))
    report = rec.run(output(), RENEWAL)
    assert {c.kube_cluster for c in report.clusters if c.action == "updated"} == {"a", "b", "c"}
    assert [c.kube_cluster for c in report.clusters if c.action == "unchanged"] == ["e"]


def test_discovery_writes_only_the_new_cluster() -> None:
    rec, _state, store, session = reconciler(PROD)
    rec.run(output(), RENEWAL)
    session.clusters["e"] = session.clusters["a"].__class__("e", {"env": "prod"})
    before = len(store.writes)
    report = rec.run(output(), DISCOVERY)
    assert store.writes[before:] == ["e"]
    assert report.counts == {**report.counts, "created": 1, "updated": 0, "unchanged": 3}


def test_a_label_change_rewrites_that_cluster_only() -> None:
    rec, _state, _store, session = reconciler(PROD)
    out = output(secret_labels={"team": '{{ index .Labels "team" }}'})
    rec.run(out, RENEWAL)
    session.clusters["b"] = session.clusters["b"].__class__("b", {"env": "prod", "team": "payments"})
    report = rec.run(out, DISCOVERY)
    assert [(c.kube_cluster, c.action, c.reason) for c in report.clusters if c.action != "unchanged"] == [
        ("b", "updated", "labels or annotations changed")
    ]


def test_a_changed_host_ca_set_rewrites_every_secret_in_a_discovery_run() -> None:
    rec, _state, store, session = reconciler(PROD)
    rec.run(output(), RENEWAL)
    # A host CA rotation's init: the new certificate is trusted besides the active one.
    session.host_cas = [*session.host_cas, CertAuthority("example.teleport.sh").cert_pem]
    before = len(store.writes)
    report = rec.run(output(), DISCOVERY)
    assert sorted(store.writes[before:]) == ["a", "b", "c"]
    assert {(c.action, c.reason) for c in report.clusters} == {("updated", "changed")}
    assert rec.run(output(), DISCOVERY).status == "idle"  # once per phase change, not every run


def test_a_new_user_ca_signer_rewrites_every_secret_and_a_new_certificate_alone_does_not() -> None:
    rec, _state, store, session = reconciler(PROD)
    old, new = CertAuthority("example.teleport.sh"), CertAuthority("example.teleport.sh")
    session.cert_pem = _client_cert(old)
    rec.run(output(), RENEWAL)
    session.cert_pem = _client_cert(old)  # another certificate from the same key: nothing to do
    assert rec.run(output(), DISCOVERY).status == "idle"
    session.cert_pem = _client_cert(new)  # update_clients: the new user CA key signs
    before = len(store.writes)
    rec.run(output(), DISCOVERY)
    assert sorted(store.writes[before:]) == ["a", "b", "c"]


def _client_cert(authority: CertAuthority) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    identity = ca.Identity("bot-argocd", ("kube",), "example.teleport.sh")
    cert = authority.issue_client(identity, key.public_key(), ca.now() + timedelta(hours=1))
    return cert.public_bytes(serialization.Encoding.PEM)


class Checks:
    """A connection check that answers `status` per kube cluster (ok by default) and counts its calls."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.calls: list[str] = []

    def __call__(self, secret: RenderedSecret, now: datetime) -> ConnectionCheck:
        name = secret.cluster.name
        self.calls.append(name)
        status = self.status.get(name, "ok")
        return ConnectionCheck(status, now, "" if status == "ok" else f"{name} is {status}")


def test_every_written_secret_is_checked_and_the_outcome_recorded() -> None:
    clock = Clock()
    rec, state, _store, _session = reconciler(PROD, clock)
    rec.check = checks = Checks()
    checks.status["b"] = "forbidden"
    rec.run(output(), RENEWAL)
    assert sorted(checks.calls) == ["a", "b", "c"]
    regs = {r.kube_cluster: r for r in state.registrations("main")}
    assert {n: (r.connection, r.connection_at) for n, r in regs.items()} == {
        "a": ("ok", clock()),
        "b": ("forbidden", clock()),
        "c": ("ok", clock()),
    }
    assert regs["b"].connection_message == "b is forbidden"


def test_unchanged_registrations_are_checked_hourly_even_when_nothing_is_written() -> None:
    clock = Clock()
    rec, state, store, _session = reconciler(PROD, clock)
    rec.check = checks = Checks()
    rec.run(output(), RENEWAL)
    checks.calls.clear()
    clock.advance(timedelta(minutes=30))
    assert rec.run(output(), DISCOVERY).status == "idle" and checks.calls == []
    clock.advance(timedelta(minutes=31))
    writes = len(store.writes)
    checks.status["c"] = "unreachable"
    report = rec.run(output(), DISCOVERY)
    assert report.status == "completed" and report.counts["written"] == 0 and len(store.writes) == writes
    assert sorted(checks.calls) == ["a", "b", "c"]
    regs = {r.kube_cluster: r for r in state.registrations("main")}
    assert (regs["c"].connection, regs["c"].connection_at) == ("unreachable", clock())
    assert regs["a"].last_written < clock() - timedelta(hours=1)  # checked, not rewritten
    # One that did not connect is checked again after ten minutes, so a recovery shows soon.
    checks.calls.clear()
    clock.advance(timedelta(minutes=11))
    del checks.status["c"]
    rec.run(output(), DISCOVERY)
    assert checks.calls == ["c"]
    assert {r.kube_cluster: r.connection for r in state.registrations("main")}["c"] == "ok"


def test_a_renewal_alone_is_not_checked_again_within_the_hour_and_a_change_is() -> None:
    clock = Clock()
    rec, state, store, session = reconciler(PROD, clock)
    out = output(secret_labels={"team": '{{ index .Labels "team" }}'})
    rec.check = checks = Checks()
    rec.run(out, RENEWAL)
    checks.calls.clear()
    clock.advance(timedelta(minutes=25))  # certificates due for renewal, checks not due
    session.clusters["b"] = session.clusters["b"].__class__("b", {"env": "prod", "team": "payments"})
    before = len(store.writes)
    rec.run(out, RENEWAL)
    assert sorted(store.writes[before:]) == ["a", "b", "c"]
    assert checks.calls == ["b"]  # only the Secret whose content changed
    # The renewed registrations keep the check they had; the next renewal checks nothing.
    regs = {r.kube_cluster: r for r in state.registrations("main")}
    assert regs["a"].connection_at == clock() - timedelta(minutes=25) and regs["b"].connection_at == clock()
    clock.advance(timedelta(minutes=25))
    rec.run(out, RENEWAL)
    assert checks.calls == ["b"]


def test_a_deselected_cluster_is_marked_unmatched_and_its_secret_kept() -> None:
    clock = Clock()
    rec, state, store, session = reconciler(PROD, clock)
    rec.run(output(), RENEWAL)
    session.clusters["c"] = session.clusters["c"].__class__("c", {"env": "dev"})
    report = rec.run(output(), DISCOVERY)
    assert [(c.kube_cluster, c.action) for c in report.clusters if c.action != "unchanged"] == [
        ("c", "unmatched")
    ]
    reg = next(r for r in state.regs.values() if r.kube_cluster == "c")
    assert reg.matches is False and reg.unmatched_since == clock()
    assert len(store.secrets) == 3
    # Marked once: the next discovery run has nothing to do.
    assert rec.run(output(), DISCOVERY).status == "idle"


def test_one_failing_cluster_never_stops_the_others_and_is_retried_next_time() -> None:
    rec, state, store, _ = reconciler(PROD)
    store.failing.add("b")
    report = rec.run(output(), RENEWAL)
    assert report.status == "failed"
    assert {c.kube_cluster: c.action for c in report.clusters} == {
        "a": "created",
        "b": "failed",
        "c": "created",
    }
    failed = next(r for r in state.regs.values() if r.kube_cluster == "b")
    assert failed.version is None and "503" in (failed.last_error or "")
    store.failing.clear()
    retry = rec.run(output(), DISCOVERY)
    assert [(c.kube_cluster, c.action) for c in retry.clusters if c.action != "unchanged"] == [
        ("b", "created")
    ]
    assert retry.status == "completed"


def test_failed_and_oldest_clusters_are_written_first() -> None:
    rec, _state, store, _ = reconciler(PROD)
    store.failing.add("c")
    rec.run(output(), RENEWAL)
    store.failing.clear()
    store.writes.clear()
    rec.concurrency = 1
    rec.run(output(), FORCED)
    assert store.writes[0] == "c"


def test_dry_run_plans_without_writing() -> None:
    rec, state, store, session = reconciler(PROD)
    rec.run(output(), RENEWAL)
    session.clusters["e"] = session.clusters["a"].__class__("e", {"env": "prod"})
    session.clusters["a"] = session.clusters["a"].__class__("a", {"env": "dev"})
    writes, kube = state.writes, len(store.writes)
    report = rec.run(output(), Trigger("reload", "preview", Scope(renew=Renewal.DUE), dry_run=True))
    assert {c.kube_cluster: c.action for c in report.clusters} == {
        "b": "unchanged",
        "c": "unchanged",
        "e": "would-create",
        "a": "would-unmatch",
    }
    assert state.writes == writes and len(store.writes) == kube


def test_targeted_event_writes_one_secret_and_one_state_batch() -> None:
    rec, state, store, _session = reconciler(PROD)
    rec.run(output(), RENEWAL)
    writes, kube = state.writes, len(store.writes)
    report = rec.run(output(), event("b"))
    assert [(c.kube_cluster, c.action) for c in report.clusters] == [("b", "updated")]
    assert store.writes[kube:] == ["b"]
    assert state.writes - writes == 4  # lease, one registration, run record, release


def test_event_for_a_cluster_no_selector_picks_writes_nothing() -> None:
    rec, state, store, _ = reconciler(PROD)
    report = rec.run(output(), event("d"))
    assert report.status == "idle" and store.writes == [] and state.writes == 0


def test_event_before_the_cluster_is_listed_waits_then_writes_it() -> None:
    clock = Clock()
    rec, _state, _store, session = reconciler(PROD, clock)
    calls = 0
    real_list = session.list_kube_clusters

    def appears_on_third_look(identity, *, name=None, labels=None):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 3:
            session.clusters["late"] = session.clusters["a"].__class__("late", {"env": "prod"})
        return real_list(identity, name=name, labels=labels)

    session.list_kube_clusters = appears_on_third_look  # type: ignore[method-assign]
    start = clock()
    report = rec.run(output(), event("late", wait=60))
    assert [(c.kube_cluster, c.action) for c in report.clusters] == [("late", "created")]
    assert calls == 3 and clock() - start == timedelta(seconds=1 + 2)  # backed off 1 s, then 2 s


def test_event_for_a_cluster_never_listed_fails_retriably_after_the_bounded_wait() -> None:
    clock = Clock()
    start = clock()
    rec, state, store, _ = reconciler(PROD, clock)
    report = rec.run(output(), event("ghost", wait=60))
    assert report.status == "failed" and report.retriable
    assert "ghost" in report.errors[0]
    assert timedelta(seconds=60) <= clock() - start <= timedelta(seconds=75)
    assert store.writes == [] and state.runs[-1].errors == tuple(report.errors)


def test_kube_delete_marks_only_that_cluster_unmatched() -> None:
    rec, state, _store, session = reconciler(PROD)
    rec.run(output(), RENEWAL)
    del session.clusters["a"]
    listings = session.listings
    report = rec.run(output(), event("a", removed=True))
    assert [(c.kube_cluster, c.action) for c in report.clusters] == [("a", "unmatched")]
    assert session.listings == listings + 1  # looked up once by name, never waited for
    assert {r.kube_cluster: r.matches for r in state.regs.values()} == {"a": False, "b": True, "c": True}


def test_a_kube_delete_for_a_cluster_teleport_still_lists_changes_nothing() -> None:
    """A stale or forged kube.delete: what Teleport lists decides, not the event."""
    rec, state, store, _session = reconciler(PROD)
    out = output(prune={"enabled": True, "grace_period": "0s"})
    rec.run(out, RENEWAL)
    writes = len(store.writes)
    report = rec.run(
        out,
        Trigger("audit", "kube.delete a", Scope(renew=Renewal.NONE, clusters=frozenset({"a"}), removed=True)),
    )
    assert report.status == "idle" and [c.action for c in report.clusters] == ["unchanged"]
    assert all(r.matches for r in state.regs.values()) and len(store.writes) == writes
    assert rec.run(out, DISCOVERY).counts["deleted"] == 0 and len(store.secrets) == 3


def test_triggers_during_a_run_make_it_go_round_once_more() -> None:
    rec, state, _store, _ = reconciler(PROD)
    state.pending = 1  # as if a trigger had arrived while the lease was held
    report = rec.run(output(), RENEWAL)
    assert report.passes == 2 and state.holder is None


def test_a_trigger_that_finds_the_lease_held_is_queued() -> None:
    rec, state, store, _ = reconciler(PROD)
    state.holder = "another-run"
    report = rec.run(output(), RENEWAL)
    assert report.status == "queued" and state.pending == 1 and store.writes == []


# -- pruning ---------------------------------------------------------------------------------

PRUNE = {"prune": {"enabled": True, "grace_period": "1h"}}


def test_pruning_is_off_by_default_and_secrets_stay() -> None:
    clock = Clock()
    rec, _state, store, session = reconciler(PROD, clock)
    rec.run(output(), RENEWAL)
    del session.clusters["c"]
    rec.run(output(), DISCOVERY)
    clock.advance(timedelta(days=3))
    rec.run(output(), RENEWAL)
    assert len(store.secrets) == 3


def deselect(session: Any, name: str) -> None:
    session.clusters[name] = session.clusters[name].__class__(name, {"env": "dev"})


PREVIEW = Trigger("reload", "preview", Scope(renew=Renewal.NONE), dry_run=True)


def test_a_deselected_cluster_is_pruned_after_the_grace_period_and_leaves_a_tombstone() -> None:
    clock = Clock()
    rec, state, store, session = reconciler(PROD, clock)
    out = output(**PRUNE)
    rec.run(out, RENEWAL)
    deselect(session, "c")  # still listed by name: the selectors no longer pick it
    rec.run(out, DISCOVERY)
    clock.advance(timedelta(minutes=59))
    assert rec.run(out, DISCOVERY).counts["deleted"] == 0
    [waiting] = [c for c in rec.run(out, PREVIEW).clusters if c.kube_cluster == "c"]
    assert waiting.action == "waiting" and waiting.prune is not None
    assert waiting.prune["evidence"] == "deselected" and waiting.prune["clock"] == "running"
    assert waiting.prune["absent_seconds"] == 59 * 60 and waiting.prune["grace_seconds"] == 3600
    clock.advance(timedelta(minutes=2))
    assert [c.action for c in rec.run(out, PREVIEW).clusters if c.kube_cluster == "c"] == ["would-delete"]
    assert len(store.secrets) == 3

    report = rec.run(out, DISCOVERY)

    assert [(c.kube_cluster, c.action) for c in report.clusters if c.action != "unchanged"] == [
        ("c", "deleted")
    ]
    assert len(store.secrets) == 2
    tomb = next(r for r in state.regs.values() if r.kube_cluster == "c")
    assert tomb.deleted_at == clock() and tomb.version is None and tomb.matches is False
    assert rec.run(out, DISCOVERY).status == "idle"  # a tombstone is not pruned twice


def test_a_cluster_that_only_vanished_waits_the_longer_grace_period() -> None:
    clock = Clock()
    rec, _state, store, session = reconciler(PROD, clock)
    out = output(prune={"enabled": True, "grace_period": "1h", "vanished_grace_period": "48h"})
    rec.run(out, RENEWAL)
    del session.clusters["c"]  # an agent down past its heartbeat: Teleport no longer lists it at all
    rec.run(out, DISCOVERY)
    clock.advance(timedelta(hours=47))
    report = rec.run(out, DISCOVERY)
    assert report.counts["deleted"] == 0 and len(store.secrets) == 3
    [c] = [c for c in report.clusters if c.kube_cluster == "c"]
    assert c.prune is not None and c.prune["evidence"] == "vanished" and c.prune["grace_seconds"] == 48 * 3600
    clock.advance(timedelta(hours=1, seconds=1))
    assert rec.run(out, DISCOVERY).counts["deleted"] == 1 and len(store.secrets) == 2


def test_a_kube_delete_is_evidence_for_the_short_grace_period() -> None:
    clock = Clock()
    rec, state, _store, session = reconciler(PROD, clock)
    out = output(**PRUNE)
    rec.run(out, RENEWAL)
    del session.clusters["c"]
    rec.run(out, event("c", removed=True))  # marks it unmatched; an event run never starts a clock
    reg = next(r for r in state.regs.values() if r.kube_cluster == "c")
    assert reg.absence == "deleted" and reg.absence_seen is None
    rec.run(out, DISCOVERY)  # the first run that could prune starts the clock
    clock.advance(timedelta(hours=1, seconds=1))
    assert rec.run(out, DISCOVERY).counts["deleted"] == 1


def test_a_held_run_pauses_the_clock_and_a_later_run_resumes_it() -> None:
    clock = Clock()
    rec, state, _store, session = reconciler(PROD, clock)
    out = output(**PRUNE)
    rec.run(out, RENEWAL)
    deselect(session, "c")
    rec.run(out, DISCOVERY)  # clock starts
    clock.advance(timedelta(minutes=30))
    rec.run(out, RENEWAL)  # a run that writes anyway saves the clock: 30 minutes banked
    hidden = dict(session.clusters)
    session.clusters.clear()  # an outage: every run is held for three hours
    for _ in range(6):
        clock.advance(timedelta(minutes=30))
        report = rec.run(out, DISCOVERY)
        assert report.counts["deleted"] == 0 and "pruning held back" in report.notes[0]
    reg = next(r for r in state.regs.values() if r.kube_cluster == "c")
    assert reg.absence_seen is None and reg.absence_banked == timedelta(minutes=30)
    session.clusters.update(hidden)
    clock.advance(timedelta(minutes=5))
    assert rec.run(out, DISCOVERY).counts["deleted"] == 0  # resumed, with 30 of 60 minutes counted
    clock.advance(timedelta(minutes=29))
    assert rec.run(out, DISCOVERY).counts["deleted"] == 0
    clock.advance(timedelta(minutes=1, seconds=1))
    assert rec.run(out, DISCOVERY).counts["deleted"] == 1


def test_pruning_vanished_clusters_does_not_lower_the_bar_for_the_next_short_listing() -> None:
    clusters = {f"c{i}": {"env": "prod"} for i in range(10)}
    clock = Clock()
    rec, _state, store, session = reconciler(clusters, clock)
    out = output(prune={"enabled": True, "vanished_grace_period": "1h", "max_deletes_per_run": 10})
    rec.run(out, RENEWAL)
    for gone in ("c6", "c7", "c8", "c9"):
        del session.clusters[gone]  # 6 of 10 listed: above the guard
    rec.run(out, DISCOVERY)
    clock.advance(timedelta(hours=1, seconds=1))
    assert rec.run(out, DISCOVERY).counts["deleted"] == 4
    for gone in ("c3", "c4", "c5"):
        del session.clusters[gone]  # 3 listed: half of the 6 left, but under half of the 10 there were
    report = rec.run(out, DISCOVERY)
    assert "3 cluster(s) against 10 registered" in report.notes[0]
    clock.advance(timedelta(hours=2))
    assert rec.run(out, DISCOVERY).counts["deleted"] == 0 and len(store.secrets) == 6


def test_a_run_deletes_at_most_max_deletes_per_run_and_says_how_many_wait() -> None:
    clusters = {f"c{i}": {"env": "prod"} for i in range(10)}
    clock = Clock()
    rec, _state, store, session = reconciler(clusters, clock)
    out = output(prune={"enabled": True, "grace_period": "0s", "max_deletes_per_run": 2})
    rec.run(out, RENEWAL)
    for name in ("c0", "c1", "c2", "c3", "c4"):
        deselect(session, name)
    rec.run(out, DISCOVERY)
    deleted = []
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        report = rec.run(out, DISCOVERY)
        deleted.append(report.counts["deleted"])
    assert deleted == [2, 2, 1]
    assert len(store.secrets) == 5


def test_a_listing_far_shorter_than_the_registry_prunes_nothing_and_says_why() -> None:
    clock = Clock()
    rec, _state, store, session = reconciler(PROD, clock)
    out = output(**PRUNE)
    rec.run(out, RENEWAL)
    session.clusters.clear()  # a Teleport answer with nothing in it (RBAC change, outage)
    rec.run(out, DISCOVERY)
    clock.advance(timedelta(hours=2))
    report = rec.run(out, DISCOVERY)
    assert report.counts["deleted"] == 0
    assert len(store.secrets) == 3
    assert "pruning held back" in report.notes[0] and "0 cluster(s) against 3" in report.notes[0]


def test_a_secret_replaced_since_we_wrote_it_is_never_pruned() -> None:
    clock = Clock()
    rec, state, store, session = reconciler(PROD, clock)
    out = output(**PRUNE)
    rec.run(out, RENEWAL)
    deselect(session, "c")
    rec.run(out, DISCOVERY)
    [name] = [
        n
        for n, m in store.secrets.items()
        if m["metadata"]["annotations"]["teleport.dev/kubernetes-cluster-name"] == "c"
    ]
    store.versions[name] = store.versions[name].__class__("someone-elses-uid", "99")
    clock.advance(timedelta(hours=2))

    report = rec.run(out, DISCOVERY)

    [c] = [c for c in report.clusters if c.kube_cluster == "c"]
    assert c.action == "failed" and "replaced since we wrote it" in (c.error or "")
    assert name in store.secrets
    reg = next(r for r in state.regs.values() if r.kube_cluster == "c")
    assert reg.deleted_at is None and reg.version is not None and reg.last_error

    # Refused again and again: relinquished once, then neither tried nor reported as a failure.
    actions = [
        [c.action for c in rec.run(out, DISCOVERY).clusters if c.kube_cluster == "c"] for _ in range(3)
    ]
    assert actions == [["failed"], ["relinquished"], []]
    reg = next(r for r in state.regs.values() if r.kube_cluster == "c")
    assert reg.relinquished_at is not None and reg.refusals == 3 and name in store.secrets


# -- the Applications guard ----------------------------------------------------------------


def secret_of(store: Any, cluster: str) -> dict[str, Any]:
    [manifest] = [
        m
        for m in store.secrets.values()
        if m["metadata"]["annotations"]["teleport.dev/kubernetes-cluster-name"] == cluster
    ]
    return manifest


def due_for_deletion(out: Any) -> tuple[Any, Any, Any, Clock]:
    """Three clusters written, c deselected and past its grace: its deletion is due."""
    clock = Clock()
    rec, state, store, session = reconciler(PROD, clock)
    rec.run(out, RENEWAL)
    deselect(session, "c")
    rec.run(out, DISCOVERY)
    clock.advance(timedelta(hours=1, seconds=1))
    store.application_lists.clear()
    return rec, state, store, clock


def test_applications_are_listed_only_when_a_deletion_is_due() -> None:
    clock = Clock()
    rec, _state, store, session = reconciler(PROD, clock)
    out = output(**PRUNE, application_namespaces=["team-a"])
    rec.run(out, RENEWAL)
    deselect(session, "c")
    rec.run(out, DISCOVERY)
    clock.advance(timedelta(minutes=30))
    rec.run(out, DISCOVERY)
    rec.run(out, PREVIEW)
    assert store.application_lists == []  # waiting, nothing due: not one request more
    clock.advance(timedelta(minutes=31))
    assert rec.run(out, DISCOVERY).counts["deleted"] == 1
    assert store.application_lists == ["argocd", "team-a"]  # once per namespace searched


def test_an_application_targeting_the_server_url_holds_the_deletion_and_is_named() -> None:
    out = output(**PRUNE, application_namespaces=["team-a"])
    rec, state, store, clock = due_for_deletion(out)
    server = base64.b64decode(secret_of(store, "c")["data"]["server"]).decode()
    store.applications["team-a"] = [
        Application("team-a", "guestbook", server=server + "/"),  # Argo CD trims the trailing slash
        Application("team-a", "elsewhere", server="https://other.example.com"),
    ]

    preview = rec.run(out, PREVIEW)
    report = rec.run(out, DISCOVERY)

    for result in (preview, report):
        [c] = [c for c in result.clusters if c.kube_cluster == "c"]
        assert c.action == "waiting" and c.reason.endswith("held by Argo CD Application(s) team-a/guestbook")
        assert c.prune is not None and c.prune["held_by"] == ["team-a/guestbook"]
        assert result.counts["deleted"] == 0
        assert any("Argo CD Applications still target c" in n for n in result.notes)
    reg = next(r for r in state.regs.values() if r.kube_cluster == "c")
    assert reg.held_by == ("team-a/guestbook",) and reg.deleted_at is None
    assert len(store.secrets) == 3
    # Held, and checked again each run; once the Application is gone, the Secret goes.
    assert rec.run(out, DISCOVERY).status == "idle"
    store.applications["team-a"] = store.applications["team-a"][1:]
    clock.advance(timedelta(minutes=2))
    report = rec.run(out, DISCOVERY)
    assert [(c.kube_cluster, c.action) for c in report.clusters if c.action != "unchanged"] == [
        ("c", "deleted")
    ]
    tomb = next(r for r in state.regs.values() if r.kube_cluster == "c")
    assert tomb.deleted_at == clock() and tomb.held_by == ()


def test_an_application_targeting_the_argo_cd_cluster_name_holds_the_deletion() -> None:
    out = output(**PRUNE)
    rec, state, store, _clock = due_for_deletion(out)
    name = base64.b64decode(secret_of(store, "c")["data"]["name"]).decode()
    assert next(r for r in state.regs.values() if r.kube_cluster == "c").cluster_name == name
    store.applications["argocd"] = [Application("argocd", "by-name", cluster_name=name)]

    report = rec.run(out, DISCOVERY)

    assert report.counts["deleted"] == 0 and len(store.secrets) == 3
    [c] = [c for c in report.clusters if c.kube_cluster == "c"]
    assert c.prune is not None and c.prune["held_by"] == ["argocd/by-name"]


def test_a_registration_without_a_recorded_name_is_matched_by_the_rendered_one() -> None:
    """Registrations written before the name was recorded: the name the template gives the cluster."""
    out = output(**PRUNE)
    rec, state, store, _clock = due_for_deletion(out)
    key = next(k for k, r in state.regs.items() if r.kube_cluster == "c")
    state.regs[key] = replace(state.regs[key], cluster_name="")
    name = base64.b64decode(secret_of(store, "c")["data"]["name"]).decode()
    store.applications["argocd"] = [Application("argocd", "by-name", cluster_name=name)]
    assert rec.run(out, DISCOVERY).counts["deleted"] == 0
    store.applications["argocd"] = []
    assert rec.run(out, DISCOVERY).counts["deleted"] == 1


@pytest.mark.parametrize(
    "error",
    [
        DestinationForbidden(
            "list applications.argoproj.io in namespace team-a: 403 applications.argoproj.io is forbidden"
        ),
        DestinationUnreachable("list applications.argoproj.io in namespace team-a: 503 (after 4 attempts)"),
    ],
)
def test_a_list_refused_or_failed_holds_every_deletion_and_says_why(error: Exception) -> None:
    clusters = {f"c{i}": {"env": "prod"} for i in range(10)}
    clock = Clock()
    rec, _state, store, session = reconciler(clusters, clock)
    out = output(
        prune={"enabled": True, "grace_period": "1h", "max_deletes_per_run": 10},
        application_namespaces=["team-a"],
    )
    rec.run(out, RENEWAL)
    for name in ("c0", "c1"):
        deselect(session, name)
    rec.run(out, DISCOVERY)
    clock.advance(timedelta(hours=2))
    store.refusing["team-a"] = error

    for trigger in (PREVIEW, DISCOVERY):
        report = rec.run(out, trigger)
        assert report.counts["deleted"] == 0
        [note] = [n for n in report.notes if "Applications could not be listed" in n]
        assert str(error) in note and "no Secret is deleted" in note
        assert {c.kube_cluster for c in report.clusters if c.action == "waiting"} == {"c0", "c1"}
    assert len(store.secrets) == 10
    del store.refusing["team-a"]
    assert rec.run(out, DISCOVERY).counts["deleted"] == 2


def test_held_deletions_leave_the_budget_to_the_others() -> None:
    clusters = {f"c{i}": {"env": "prod"} for i in range(10)}
    clock = Clock()
    rec, _state, store, session = reconciler(clusters, clock)
    out = output(prune={"enabled": True, "grace_period": "0s", "max_deletes_per_run": 2})
    rec.run(out, RENEWAL)
    for name in ("c0", "c1", "c2"):
        deselect(session, name)
    rec.run(out, DISCOVERY)
    server = base64.b64decode(secret_of(store, "c0")["data"]["server"]).decode()
    store.applications["argocd"] = [Application("argocd", "app", server=server)]
    clock.advance(timedelta(minutes=1))
    report = rec.run(out, DISCOVERY)
    assert sorted(c.kube_cluster for c in report.clusters if c.action == "deleted") == ["c1", "c2"]
    [held] = [c for c in report.clusters if c.kube_cluster == "c0"]
    assert held.action == "waiting" and held.prune is not None and held.prune["held_by"] == ["argocd/app"]
    assert not any("deferred" in n for n in report.notes)  # the held one took no share of the budget


def test_a_deferred_deletion_no_longer_held_forgets_its_applications() -> None:
    clusters = {f"c{i}": {"env": "prod"} for i in range(10)}
    clock = Clock()
    rec, state, store, session = reconciler(clusters, clock)
    out = output(prune={"enabled": True, "grace_period": "0s", "max_deletes_per_run": 1})
    rec.run(out, RENEWAL)
    for name in ("c0", "c1"):
        deselect(session, name)
    rec.run(out, DISCOVERY)
    servers = {c: base64.b64decode(secret_of(store, c)["data"]["server"]).decode() for c in ("c0", "c1")}
    store.applications["argocd"] = [Application("argocd", f"app-{c}", server=s) for c, s in servers.items()]
    clock.advance(timedelta(minutes=1))
    rec.run(out, DISCOVERY)
    assert {r.kube_cluster: r.held_by for r in state.regs.values() if r.held_by} == {
        "c0": ("argocd/app-c0",),
        "c1": ("argocd/app-c1",),
    }
    store.applications["argocd"] = []
    report = rec.run(out, DISCOVERY)  # one deleted, the other deferred by the budget
    assert report.counts["deleted"] == 1 and report.notes == (
        "1 deletion(s) due but deferred to later runs (prune.max_deletes_per_run)",
    )
    assert all(r.held_by == () for r in state.regs.values())


def test_a_run_reads_the_registry_once_unless_another_run_finished_since() -> None:
    clock = Clock()
    rec, state, _store, _ = reconciler(PROD, clock)
    rec.run(output(), FORCED)
    assert state.reads == 1
    state.reads = 0
    state.last_finished = clock() + timedelta(seconds=1)  # a run released the lease after our read
    rec.run(output(), FORCED)
    assert state.reads == 2


def test_a_targeted_run_over_a_large_registry_reads_only_its_cluster_and_leaves_the_rest() -> None:
    """An event's run reads the registration of the cluster it names, not the registry (no Query), and
    judges nothing else: clusters due for deletion stay, deselected ones are not marked, no
    Applications are listed, and every other registration is left exactly as it was."""
    clock = Clock()
    fleet = {f"c{i:04d}": {"env": "prod"} for i in range(2000)}
    rec, state, store, session = reconciler(fleet, clock)
    out = output(**PRUNE)
    rec.run(out, RENEWAL)
    for name in ("c0001", "c0002"):
        deselect(session, name)
    rec.run(out, DISCOVERY)  # unmatched, clocks running
    clock.advance(timedelta(hours=2))  # their grace is over: a run over the output would delete them
    deselect(session, "c0003")  # not seen by any run yet: still registered as matching
    session.clusters["c1999"] = session.clusters["c1999"].__class__("c1999", {"env": "prod", "new": "label"})
    before = dict(state.regs)
    secrets = dict(store.secrets)
    state.reads, writes = 0, len(store.writes)

    report = rec.run(out, event("c1999"))

    assert [(c.kube_cluster, c.action) for c in report.clusters] == [("c1999", "updated")]
    assert state.reads == 0 and state.named_reads[-1] == {"c1999"}
    assert store.writes[writes:] == ["c1999"] and store.application_lists == []
    changed = {key for key, reg in state.regs.items() if before.get(key) is not reg}
    assert {kube for _, _, kube in changed} == {"c1999"}
    assert store.secrets.keys() == secrets.keys()  # nothing deleted
    assert len([n for n, s in store.secrets.items() if s is not secrets[n]]) == 1  # c1999's alone
    # The same fleet's next run over the whole output still sees everything.
    report = rec.run(out, DISCOVERY)
    assert state.reads == 1
    assert {c.kube_cluster for c in report.clusters if c.action in ("deleted", "unmatched")} == {
        "c0001",
        "c0002",
        "c0003",
    }


def test_shards_of_an_output_split_its_clusters_between_them_under_their_own_leases() -> None:
    clusters = {f"c{i:02d}": {"env": "prod"} for i in range(40)}
    rec, state, _store, _ = reconciler(clusters)
    written: list[str] = []
    for index in range(4):
        report = rec.run(output(), Trigger("schedule", "tick", Scope(renew=Renewal.DUE, shard=(index, 4))))
        assert report.shard == f"{index}/4"
        written += [c.kube_cluster for c in report.clusters if c.action == "created"]
    assert sorted(written) == sorted(clusters)  # every cluster once, in exactly one shard
    assert state.shard_leases == ["0/4", "1/4", "2/4", "3/4"]
    assert all(any(shard_of(n, 4) == i for n in clusters) for i in range(4))  # no shard is empty


def test_a_shard_prunes_and_unmarks_only_its_own_clusters() -> None:
    clusters = {f"c{i:02d}": {"env": "prod"} for i in range(20)}
    rec, _state, _store, session = reconciler(clusters)
    rec.run(output(), RENEWAL)
    session.clusters.clear()  # gone from Teleport
    report = rec.run(output(), Trigger("discovery", "tick", Scope(renew=Renewal.NONE, shard=(1, 2))))
    unmatched = {c.kube_cluster for c in report.clusters if c.action == "unmatched"}
    assert unmatched == {n for n in clusters if shard_of(n, 2) == 1}


def test_the_lease_is_extended_while_writes_go_on() -> None:
    rec, state, store, _ = reconciler(PROD)
    rec.lease_duration = timedelta(seconds=0.15)  # extended every 0.05 s of a run
    rec.concurrency = 1
    slow_write = store.write

    def write(manifest: Any, known: Any) -> Any:
        time.sleep(0.06)
        return slow_write(manifest, known)

    store.write = write  # type: ignore[method-assign]
    extends = 0
    real_extend = state.extend

    def counting_extend(lease: Any, duration: timedelta) -> Any:
        nonlocal extends
        extends += 1
        return real_extend(lease, duration)

    state.extend = counting_extend  # type: ignore[method-assign]
    assert rec.run(output(), FORCED).counts["created"] == 3
    assert extends >= 2


def test_a_state_table_outage_is_reported_not_raised() -> None:
    rec, state, store, _ = reconciler(PROD)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise StateError("DynamoDB query on table state failed: Could not connect")

    state.registrations = unreachable  # type: ignore[method-assign]
    state.put_run = unreachable  # type: ignore[method-assign]
    report = rec.run(output(), RENEWAL)
    assert report.status == "failed" and "Could not connect" in report.errors[0]
    assert store.writes == []


def test_info_logs_what_changed_and_debug_a_renewal_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec, _state, _store, session = reconciler(PROD)
    caplog.set_level(logging.DEBUG, logger="teleport_argocd.execution")

    def lines(level: int) -> set[str]:
        return {r.getMessage() for r in caplog.records if r.levelno == level}

    labelled = output(secret_labels={"team": '{{ index .Labels "team" }}'})
    rec.run(labelled, RENEWAL)
    assert lines(logging.INFO) == {f"output main: cluster {n} created (new)" for n in "abc"}
    caplog.clear()
    rec.run(labelled, FORCED)
    assert not lines(logging.INFO)
    assert lines(logging.DEBUG) == {f"output main: cluster {n} updated (forced)" for n in "abc"}
    caplog.clear()
    session.clusters["a"] = KubeCluster("a", {"env": "prod", "team": "payments"})
    rec.run(labelled, DISCOVERY)
    assert lines(logging.INFO) == {"output main: cluster a updated (labels or annotations changed)"}
