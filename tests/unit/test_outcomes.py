"""The pure rules of a run's outcomes (`teleport_argocd.outcomes`): a table of step by outcome, each
row naming the registration fields that follow and the line the report shows; then the tally that
builds a pass's report once, and applying a step, which returns a failure as its outcome."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from teleport_argocd.argocd import RenderedSecret
from teleport_argocd.execution import apply_step
from teleport_argocd.model import Absence, KubeCluster, Outcome, Registration, SecretVersion
from teleport_argocd.outcomes import (
    RELINQUISH_AFTER,
    StepOutcome,
    Tally,
    Where,
    cluster_result,
    registration_after,
    without_request,
)
from teleport_argocd.plan import Plan, Step
from teleport_argocd.probe import ConnectionCheck
from teleport_argocd.report import OutputReport

from .fakes import T0, FakeStore

T1 = T0 + timedelta(hours=1)
LABELS = {"env": "prod"}
WHERE = Where("out", "example.teleport.sh", T1 + timedelta(hours=12))
OLD = SecretVersion("uid-a", "1")
NEW = SecretVersion("uid-a", "2")
SECRET = RenderedSecret(
    KubeCluster("a", LABELS),
    "argocd",
    "teleport.argocd-cluster-a",
    "https://proxy.example/a",
    {
        "metadata": {
            "name": "teleport.argocd-cluster-a",
            "annotations": {"teleport.dev/kubernetes-cluster-name": "a"},
        }
    },
    argocd_name="example.teleport.sh-a",
)
REG = Registration(
    output="out",
    teleport_cluster="example.teleport.sh",
    kube_cluster="a",
    secret_namespace="argocd",
    secret_name="teleport.argocd-cluster-a",
    server="https://proxy.example/a",
    labels=LABELS,
    fingerprint="old",
    version=OLD,
    first_written=T0,
    last_written=T0,
    last_attempt=T0,
    connection="ok",
    connection_at=T0,
)
UNMATCHED = replace(REG, matches=False, unmatched_since=T0, absence=Absence.DESELECTED, absence_seen=T0)
CLOCK = {"evidence": "deselected", "clock": "running"}
OK_NOW = ConnectionCheck("ok", T1)
FORBIDDEN_NOW = ConnectionCheck("forbidden", T1, "403")

CREATE = Step("a", Outcome.WOULD_CREATE, "new", SECRET, None, LABELS, "fp")
UPDATE = Step("a", Outcome.WOULD_UPDATE, "changed", SECRET, REG, LABELS, "fp")
UNCHANGED = Step("a", Outcome.UNCHANGED, "up to date", SECRET, REG, LABELS, "old")
PRUNE = Step("a", Outcome.WOULD_DELETE, "deselected, absent for its grace period", registration=UNMATCHED)
PRUNE = replace(PRUNE, clock=CLOCK, due=True)
UNMATCH = Step(
    "a", Outcome.WOULD_UNMATCH, "no longer selected", registration=REG, record=replace(REG, matches=False)
)
WAIT = Step("a", Outcome.WAITING, "deselected, grace clock running", registration=UNMATCHED, clock=CLOCK)
NOT_RENDERED = Step("a", Outcome.FAILED, "cannot render", labels=LABELS, error="template: no such key")


def refused(times: int) -> Step:
    """An update whose Secret Kubernetes refused `times` runs in a row before this one."""
    return replace(UPDATE, registration=replace(REG, refusals=times))


# step, its outcome -> the report's line (action, error), and the registration's fields (None: none stored)
TABLE: list[tuple[str, Step, StepOutcome, tuple[Outcome, str | None], dict[str, Any] | None]] = [
    (
        "created and checked",
        CREATE,
        StepOutcome(Outcome.CREATED, T1, version=NEW, check=OK_NOW),
        (Outcome.CREATED, None),
        {
            "output": "out",
            "teleport_cluster": "example.teleport.sh",
            "secret_name": "teleport.argocd-cluster-a",
            "server": "https://proxy.example/a",
            "version": NEW,
            "fingerprint": "fp",
            "first_written": T1,
            "last_written": T1,
            "cert_expires": WHERE.cert_expires,
            "cluster_name": "example.teleport.sh-a",
            "connection": "ok",
            "connection_at": T1,
        },
    ),
    (
        "updated, not checked: keeps the last check and its first write",
        UPDATE,
        StepOutcome(Outcome.UPDATED, T1, version=NEW),
        (Outcome.UPDATED, None),
        {"version": NEW, "first_written": T0, "last_written": T1, "connection": "ok", "connection_at": T0},
    ),
    (
        "updated and checked: the new check replaces the last",
        UPDATE,
        StepOutcome(Outcome.UPDATED, T1, version=NEW, check=FORBIDDEN_NOW),
        (Outcome.UPDATED, None),
        {"connection": "forbidden", "connection_at": T1, "connection_message": "403"},
    ),
    (
        "written again after a deletion: first written anew",
        replace(CREATE, registration=replace(UNMATCHED, deleted_at=T0, version=None)),
        StepOutcome(Outcome.CREATED, T1, version=NEW),
        (Outcome.CREATED, None),
        {"first_written": T1, "matches": True, "deleted_at": None, "unmatched_since": None},
    ),
    (
        "unchanged, nothing due: nothing stored",
        UNCHANGED,
        without_request(UNCHANGED, T1),
        (Outcome.UNCHANGED, None),
        None,
    ),
    (
        "unchanged, checked: only the check is stored",
        UNCHANGED,
        StepOutcome(Outcome.UNCHANGED, T1, check=FORBIDDEN_NOW),
        (Outcome.UNCHANGED, None),
        {"version": OLD, "last_written": T0, "connection": "forbidden", "connection_at": T1},
    ),
    (
        "write failed: what was written stays, the error is added",
        UPDATE,
        StepOutcome(Outcome.FAILED, T1, error="write secret: 503"),
        (Outcome.FAILED, "write secret: 503"),
        {"version": OLD, "last_written": T0, "last_error": "write secret: 503", "last_error_at": T1},
    ),
    (
        "not rendered, never written: a registration with the error",
        NOT_RENDERED,
        without_request(NOT_RENDERED, T1),
        (Outcome.FAILED, "template: no such key"),
        {"output": "out", "version": None, "labels": LABELS, "last_error": "template: no such key"},
    ),
    (
        "deleted: a tombstone",
        PRUNE,
        StepOutcome(Outcome.DELETED, T1),
        (Outcome.DELETED, None),
        {"deleted_at": T1, "version": None, "matches": False, "last_attempt": T1, "held_by": ()},
    ),
    (
        "delete failed: still unmatched, retried next run",
        PRUNE,
        StepOutcome(Outcome.FAILED, T1, error="delete: 503"),
        (Outcome.FAILED, "delete: 503"),
        {"matches": False, "absence": Absence.DESELECTED, "version": OLD, "last_error": "delete: 503"},
    ),
    (
        "refused once: failed, counted",
        refused(0),
        StepOutcome(Outcome.REFUSED, T1, error="replaced since we wrote it"),
        (Outcome.FAILED, "replaced since we wrote it"),
        {
            "refusals": 1,
            "relinquished_at": None,
            "fingerprint": "old",
            "last_error": "replaced since we wrote it",
        },
    ),
    (
        "refused the last time in a row: relinquished, remembering the rendering",
        refused(RELINQUISH_AFTER - 1),
        StepOutcome(Outcome.REFUSED, T1, error="replaced since we wrote it"),
        (Outcome.RELINQUISHED, "replaced since we wrote it"),
        {"refusals": RELINQUISH_AFTER, "relinquished_at": T1, "fingerprint": "fp"},
    ),
    (
        "unmatched: the planned record",
        UNMATCH,
        without_request(UNMATCH, T1),
        (Outcome.UNMATCHED, None),
        {"matches": False, "version": OLD},
    ),
    (
        "waiting, nothing changed: nothing stored",
        WAIT,
        without_request(WAIT, T1),
        (Outcome.WAITING, None),
        None,
    ),
]


@pytest.mark.parametrize(
    ("step", "done", "line", "fields"), [row[1:] for row in TABLE], ids=[r[0] for r in TABLE]
)
def test_a_step_and_its_outcome_give_the_registration_and_the_report_line(
    step: Step, done: StepOutcome, line: tuple[Outcome, str | None], fields: dict[str, Any] | None
) -> None:
    result = cluster_result(step, done)
    assert (result.kube_cluster, result.action, result.error) == ("a", *line)
    assert result.reason == step.reason and result.prune == step.clock
    assert (result.secret_namespace, result.secret_name) == ("argocd", "teleport.argocd-cluster-a") or (
        step.secret is None and step.registration is None
    )
    reg = registration_after(step, done, WHERE)
    if fields is None:
        assert reg is None
        return
    assert reg is not None and reg.kube_cluster == "a"
    assert {k: getattr(reg, k) for k in fields} == fields


def test_what_a_dry_run_foresees_stores_nothing() -> None:
    for step in (CREATE, UPDATE, PRUNE, UNMATCH):
        assert registration_after(step, StepOutcome(step.action, T1), WHERE) is None


def test_a_tally_reports_each_cluster_once_where_it_first_stood() -> None:
    other = replace(CREATE, kube_cluster="b")
    tally = Tally(notes=("a note",))
    tally.add(UNCHANGED, without_request(UNCHANGED, T1))
    tally.add(other, StepOutcome(Outcome.FAILED, T1, error="503"))
    tally.add(UNCHANGED, StepOutcome(Outcome.UNCHANGED, T1, check=OK_NOW))  # its check came back last
    base = OutputReport(output="out", status="completed", trigger="schedule", run_id="r1", passes=1)
    report = tally.report(base, ["listing: x"], T1, T1)
    assert [(c.kube_cluster, c.action) for c in report.clusters] == [("a", "unchanged"), ("b", "failed")]
    assert (report.status, report.errors, report.notes, report.run_id) == (
        "failed",
        ("listing: x",),
        ("a note",),
        "r1",
    )
    assert report.counts["selected"] == 2 and report.counts["unchanged"] == 1


def test_a_foreseen_plan_reads_as_a_dry_run_report() -> None:
    decided = Plan((CREATE, replace(PRUNE, kube_cluster="p"), replace(UNMATCH, kube_cluster="u")))
    base = OutputReport(output="out", status="completed", trigger="reload", dry_run=True)
    report = Tally.foreseen(decided, T1).report(base, [], None, T1)
    assert report.to_dict()["clusters"] == [
        {
            "kube_cluster": "a",
            "action": "would-create",
            "reason": "new",
            "secret_namespace": "argocd",
            "secret_name": "teleport.argocd-cluster-a",
            "server": "https://proxy.example/a",
            "error": None,
        },
        {
            "kube_cluster": "p",
            "action": "would-delete",
            "reason": PRUNE.reason,
            "secret_namespace": "argocd",
            "secret_name": "teleport.argocd-cluster-a",
            "server": "https://proxy.example/a",
            "error": None,
            "prune": CLOCK,
        },
        {
            "kube_cluster": "u",
            "action": "would-unmatch",
            "reason": "no longer selected",
            "secret_namespace": "argocd",
            "secret_name": "teleport.argocd-cluster-a",
            "server": "https://proxy.example/a",
            "error": None,
        },
    ]
    assert report.status == "completed"
    assert {k: v for k, v in report.counts.items() if v} == {"selected": 1, "unmatched": 1, "deleted": 1}


def test_applying_a_step_returns_its_failure_as_the_outcome() -> None:
    """A refused delete (the Secret there is not the one we wrote) is REFUSED; anything unexpected is
    FAILED with only the exception's type, so no message can carry a key into the registry."""
    store = FakeStore()
    store.versions["teleport.argocd-cluster-a"] = SecretVersion("someone-else", "9")
    done = apply_step(store, PRUNE, None, lambda: T1, "out")
    assert (done.outcome, done.at) == (Outcome.REFUSED, T1) and "replaced since we wrote it" in (
        done.error or ""
    )

    def broken(secret: RenderedSecret, now: Any) -> ConnectionCheck:
        raise ValueError("-----BEGIN PRIVATE KEY----- ...")

    done = apply_step(store, CREATE, broken, lambda: T1, "out")
    assert (done.outcome, done.error) == (Outcome.FAILED, "unexpected ValueError")


def test_applying_a_write_returns_what_kubernetes_said() -> None:
    store = FakeStore()
    first = apply_step(store, CREATE, lambda s, now: OK_NOW, lambda: T1, "out")
    again = apply_step(store, CREATE, None, lambda: T1, "out")
    assert (first.outcome, first.check, again.outcome, again.check) == (
        Outcome.CREATED,
        OK_NOW,
        Outcome.UPDATED,
        None,
    )
    assert again.version == store.versions["teleport.argocd-cluster-a"]
