"""The one pruning rule (`pruning.prune_due_at`): the status report and the planner decide by it, so
the status never promises a deletion a run that could prune would not carry out (the Argo CD
Applications the run finds being those the last check recorded)."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from teleport_argocd.applications import ApplicationCheck
from teleport_argocd.model import Absence, Outcome, Registration, SecretVersion
from teleport_argocd.plan import Scope, plan
from teleport_argocd.status import registration_status

from .fakes import T0, output

TELEPORT = "example.teleport.sh"
OUT = output(
    prune={
        "enabled": True,
        "grace_period": "1h",
        "vanished_grace_period": "24h",
        "min_listed_share": 0,
        "max_deletes_per_run": 1000,
    }
)
minutes = st.integers(min_value=0, max_value=3000).map(lambda m: timedelta(minutes=m))


@st.composite
def registrations(draw: st.DrawFn, name: str) -> Registration:
    matches = draw(st.booleans())
    return Registration(
        output="main",
        teleport_cluster=TELEPORT,
        kube_cluster=name,
        secret_namespace="argocd",
        secret_name=f"s-{name}",
        version=draw(st.sampled_from([None, SecretVersion("uid", "1"), SecretVersion("uid", "")])),
        matches=matches,
        unmatched_since=None if matches else T0 - draw(minutes),
        deleted_at=draw(st.sampled_from([None, None, None, T0 - timedelta(hours=1)])),
        absence=Absence.NONE if matches else draw(st.sampled_from(list(Absence))),
        absence_banked=draw(minutes),
        absence_seen=draw(st.one_of(st.none(), minutes.map(lambda m: T0 - m))),
        relinquished_at=draw(st.sampled_from([None, None, None, T0 - timedelta(hours=2)])),
        held_by=() if matches else draw(st.sampled_from([(), (), ("argocd/guestbook",)])),
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=12, unique=True).flatmap(
        lambda ids: st.tuples(*(registrations(f"c{i}") for i in ids))
    )
)
def test_the_status_promises_exactly_what_a_run_that_could_prune_deletes(
    regs: tuple[Registration, ...],
) -> None:
    # Teleport still lists by name those whose stored evidence says so, so a run finds nothing new.
    still_listed = frozenset(
        r.kube_cluster for r in regs if r.absence in (Absence.DESELECTED, Absence.DELETED)
    )

    decided = plan(
        OUT,
        teleport_cluster=TELEPORT,
        rendered=[],
        failures=[],
        registrations=regs,
        now=T0,
        scope=Scope(),
        still_listed=still_listed,
        # The Applications a run finds are those the last check recorded.
        applications=ApplicationCheck(holders={r.kube_cluster: r.held_by for r in regs if r.held_by}),
    )

    statuses = {r.kube_cluster: registration_status(OUT, r, T0) for r in regs}
    promised = {n for n, s in statuses.items() if "deletes_at" in s and s["deletes_at"] <= T0.isoformat()}
    assert decided.prune_held is None
    assert {s.kube_cluster for s in decided.steps if s.action is Outcome.WOULD_DELETE} == promised
    # What the status promises for later is when the clock, as the plan reads it, runs out.
    for step in decided.steps:
        if step.action is Outcome.WAITING:
            assert step.clock is not None
            status = statuses[step.kube_cluster]
            if step.clock.get("held_by"):  # held: the status names them and promises nothing
                assert status["prune"]["held_by"] == step.clock["held_by"] and "deletes_at" not in status
            else:
                assert step.clock["deletes_at"] == status.get("deletes_at")


def test_a_secret_we_did_not_write_is_never_promised_for_deletion() -> None:
    reg = Registration(
        "main", TELEPORT, "c", matches=False, absence=Absence.DELETED, absence_banked=timedelta(days=2)
    )
    assert "deletes_at" not in registration_status(OUT, reg, T0)
    decided = plan(
        OUT, teleport_cluster=TELEPORT, rendered=[], failures=[], registrations=[reg], now=T0, scope=Scope()
    )
    assert [s.action for s in decided.steps] == [Outcome.WAITING]


def test_a_due_deletion_is_made_only_once_the_applications_were_checked() -> None:
    reg = Registration(
        "main",
        TELEPORT,
        "c",
        secret_name="s-c",
        version=SecretVersion("uid", "1"),
        matches=False,
        absence=Absence.DESELECTED,
        absence_banked=timedelta(hours=2),
        cluster_name="root-c",
    )

    def decide(applications: ApplicationCheck | None) -> list[tuple[Outcome, str]]:
        decided = plan(
            OUT,
            teleport_cluster=TELEPORT,
            rendered=[],
            failures=[],
            registrations=[reg],
            now=T0,
            scope=Scope(),
            applications=applications,
        )
        assert decided.due == {"c"}
        return [(s.action, s.reason) for s in decided.steps]

    assert decide(None) == [
        (Outcome.WAITING, "deselected, absent for its grace period; waiting for the Applications check")
    ]
    assert decide(ApplicationCheck(failed="pruning held back: ...")) == [
        (
            Outcome.WAITING,
            "deselected, absent for its grace period; held: Argo CD Applications could not be listed",
        )
    ]
    assert decide(ApplicationCheck(holders={"c": ("argocd/a", "team/b")})) == [
        (
            Outcome.WAITING,
            "deselected, absent for its grace period; held by Argo CD Application(s) argocd/a, team/b",
        )
    ]
    assert decide(ApplicationCheck()) == [(Outcome.WOULD_DELETE, "deselected, absent for its grace period")]
