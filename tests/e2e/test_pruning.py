"""End to end: pruning through the real Kubernetes writer, and Secrets that are not ours.

Deletion is preconditioned on the uid and resourceVersion we checked (Kubernetes API reference,
DeleteOptions.preconditions), and only ever of a Secret carrying our ownership annotation.
"""

from __future__ import annotations

import base64
import itertools
import time
from dataclasses import dataclass
from typing import Any

from standins.handlers import event, invoke
from standins.kubeapi import APPLICATIONS
from standins.stack import ARGOCD_NAMESPACE, STATE_TABLE, WRITER, LocalStack, default_outputs
from teleport_argocd.argocd import secret_name
from teleport_argocd.state import StateStore

PRUNE_AT_ONCE = {"prune": {"enabled": True, "grace_period": "0s"}}


def name(cluster: str) -> str:
    return secret_name("teleport.argocd-cluster", "root", cluster)


def registrations(stack: LocalStack) -> dict[str, Any]:
    store = StateStore(STATE_TABLE, client=stack.aws.client("dynamodb"))
    return {r.kube_cluster: r for r in store.registrations("production")}


def deselect(stack: LocalStack, cluster: str) -> None:
    assert stack.teleport is not None
    stack.teleport.update_kube_cluster(cluster, labels={"env": "retired", "team": "payments"})


def test_a_deselected_cluster_is_pruned_after_the_grace_period(stack: LocalStack) -> None:
    assert stack.kube is not None
    stack.put_config([{**default_outputs()[0], **PRUNE_AT_ONCE}])
    invoke("renew", event("schedule.json"))
    deselect(stack, "prod-us-east")

    marked = invoke("renew", event("discovery.json"))["outputs"][0]
    assert [(c["kube_cluster"], c["action"]) for c in marked["clusters"]] == [("prod-us-east", "unmatched")]
    assert stack.kube.secret(ARGOCD_NAMESPACE, name("prod-us-east")) is not None
    preview = invoke("reload", {"dry_run": True, "force": False})["outputs"][0]
    assert [(c["kube_cluster"], c["action"]) for c in preview["clusters"]] == [
        ("prod-us-east", "would-delete")
    ]

    pruned = invoke("renew", event("discovery.json"))["outputs"][0]

    assert [(c["kube_cluster"], c["action"]) for c in pruned["clusters"]] == [("prod-us-east", "deleted")]
    assert stack.kube.secret(ARGOCD_NAMESPACE, name("prod-us-east")) is None
    assert stack.kube.secret(ARGOCD_NAMESPACE, name("prod-eu-west")) is not None
    tombstone = registrations(stack)["prod-us-east"]
    assert tombstone.deleted_at is not None and tombstone.version is None
    deletes = [r for r in stack.kube.requests if r.verb == "delete"]
    assert len(deletes) == 1


def test_a_secret_replaced_by_someone_else_is_never_pruned(stack: LocalStack) -> None:
    assert stack.kube is not None
    stack.put_config([{**default_outputs()[0], **PRUNE_AT_ONCE}])
    invoke("renew", event("schedule.json"))
    ours = stack.kube.secret(ARGOCD_NAMESPACE, name("prod-us-east"))
    assert ours is not None
    # Deleted and made again by a person: same name and annotations, another uid.
    stack.kube.remove_secret(ARGOCD_NAMESPACE, name("prod-us-east"))
    stack.kube.put_secret({**ours, "metadata": {k: v for k, v in ours["metadata"].items() if k != "uid"}})
    deselect(stack, "prod-us-east")
    invoke("renew", event("discovery.json"))

    result = invoke("renew", event("discovery.json"))["outputs"][0]

    [failed] = [c for c in result["clusters"] if c["kube_cluster"] == "prod-us-east"]
    assert failed["action"] == "failed" and "not deleting it" in failed["error"]
    assert stack.kube.secret(ARGOCD_NAMESPACE, name("prod-us-east")) is not None
    # Nothing read: the delete is conditional on the uid we wrote, and the API server refuses it.
    assert [r.status for r in stack.kube.requests if r.verb == "delete"] == [409]


def test_a_listing_that_returns_nothing_prunes_nothing(stack: LocalStack) -> None:
    assert stack.kube is not None and stack.teleport is not None
    stack.put_config([{**default_outputs()[0], **PRUNE_AT_ONCE}])
    invoke("renew", event("schedule.json"))
    for cluster in list(stack.clusters):
        stack.teleport.remove_kube_cluster(cluster)  # an RBAC change or an outage, as seen by a listing
    invoke("renew", event("discovery.json"))

    result = invoke("renew", event("discovery.json"))["outputs"][0]

    assert "pruning held back" in result["notes"][0]
    assert stack.kube.secret(ARGOCD_NAMESPACE, name("prod-us-east")) is not None
    assert stack.kube.secret(ARGOCD_NAMESPACE, name("prod-eu-west")) is not None


def test_a_hand_made_secret_in_the_way_is_left_alone_and_named(stack: LocalStack) -> None:
    assert stack.kube is not None
    hand_made = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name("prod-us-east"), "namespace": ARGOCD_NAMESPACE, "labels": {"owner": "me"}},
        "data": {"token": "c2VjcmV0"},
    }
    stack.kube.put_secret(hand_made)

    result = invoke("renew", event("schedule.json"))["outputs"][0]

    [failed] = [c for c in result["clusters"] if c["kube_cluster"] == "prod-us-east"]
    assert failed["action"] == "failed" and name("prod-us-east") in failed["error"]
    kept = stack.kube.secret(ARGOCD_NAMESPACE, name("prod-us-east"))
    assert (
        kept is not None
        and kept["data"] == {"token": "c2VjcmV0"}
        and kept["metadata"]["labels"] == {"owner": "me"}
    )
    assert registrations(stack)["prod-us-east"].last_error


def test_an_argo_cd_application_holds_the_pruning_of_its_cluster(stack: LocalStack) -> None:
    """Through the real writer and the stand-in: an Application in Argo CD's namespace targeting the
    cluster's server URL, and one in another namespace targeting its Argo CD cluster name, each hold
    the deletion; the run, the dry run and the status name them; it goes once they are gone."""
    assert stack.kube is not None
    stack.kube.add_namespace("team-a")
    stack.kube.allow(user=WRITER, verbs=("list",), resources=(APPLICATIONS,), namespaces=("team-a",))
    stack.put_config([{**default_outputs()[0], **PRUNE_AT_ONCE, "application_namespaces": ["team-a"]}])
    invoke("renew", event("schedule.json"))
    secret = stack.kube.secret(ARGOCD_NAMESPACE, name("prod-us-east"))
    assert secret is not None
    server = base64.b64decode(secret["data"]["server"]).decode()
    argocd_name = base64.b64decode(secret["data"]["name"]).decode()
    stack.kube.put_application(ARGOCD_NAMESPACE, "payments", server=server)
    stack.kube.put_application("team-a", "payments-canary", cluster_name=argocd_name, deleting=True)
    deselect(stack, "prod-us-east")
    invoke("renew", event("discovery.json"))  # unmatched: no list yet, nothing is due
    assert [r for r in stack.kube.requests if r.resource == APPLICATIONS] == []

    preview = invoke("reload", {"dry_run": True, "force": False})
    held = invoke("renew", event("discovery.json"))["outputs"][0]
    status = invoke("reload", {"status_only": True})["status"]["outputs"][0]

    holders = ["argocd/payments", "team-a/payments-canary"]
    for report in (preview["outputs"][0], held):
        [c] = [c for c in report["clusters"] if c["kube_cluster"] == "prod-us-east"]
        assert c["action"] == "waiting" and c["prune"]["held_by"] == holders
        assert "held by Argo CD Application(s) argocd/payments, team-a/payments-canary" in c["reason"]
    [reg] = [r for r in status["registrations"] if r["kube_cluster"] == "prod-us-east"]
    assert reg["held_by"] == holders and reg["prune"]["held_by"] == holders and "deletes_at" not in reg
    assert stack.kube.secret(ARGOCD_NAMESPACE, name("prod-us-east")) is not None
    lists = [(r.namespace, r.status) for r in stack.kube.requests if r.resource == APPLICATIONS]
    assert lists == [(ARGOCD_NAMESPACE, 200), ("team-a", 200)] * 2  # once per namespace, per run

    stack.kube.remove_application(ARGOCD_NAMESPACE, "payments")
    stack.kube.remove_application("team-a", "payments-canary")  # Argo CD's finalizer finished
    pruned = invoke("renew", event("discovery.json"))["outputs"][0]

    assert [(c["kube_cluster"], c["action"]) for c in pruned["clusters"]] == [("prod-us-east", "deleted")]
    assert stack.kube.secret(ARGOCD_NAMESPACE, name("prod-us-east")) is None


def test_applications_that_cannot_be_listed_hold_every_deletion(stack: LocalStack) -> None:
    """No `list` on Applications in a namespace searched: the API answers 403 and nothing is deleted."""
    assert stack.kube is not None
    stack.kube.add_namespace("team-b")  # no grant there
    stack.put_config([{**default_outputs()[0], **PRUNE_AT_ONCE, "application_namespaces": ["team-b"]}])
    invoke("renew", event("schedule.json"))
    deselect(stack, "prod-us-east")
    invoke("renew", event("discovery.json"))

    result = invoke("renew", event("discovery.json"))["outputs"][0]

    [note] = [n for n in result["notes"] if "Applications could not be listed" in n]
    assert "403" in note and "team-b" in note
    assert [c["action"] for c in result["clusters"] if c["kube_cluster"] == "prod-us-east"] == ["waiting"]
    assert stack.kube.secret(ARGOCD_NAMESPACE, name("prod-us-east")) is not None
    assert [r for r in stack.kube.requests if r.verb == "delete"] == []


FLEET = {f"c{i}": {"env": "prod", "team": "platform"} for i in range(10)}


@dataclass
class Run:
    """One discovery run as the test saw it: when it started and ended, and whether it could prune."""

    before: float
    after: float
    trusted: bool
    absent: frozenset[str]
    phase: str


def test_ten_clusters_through_short_partial_and_recovering_listings(stack: LocalStack) -> None:
    """No Secret is deleted before it was absent for its own grace period counted over runs that
    could prune: held runs (a short or failing listing) neither start nor advance a clock, and the
    share is measured against a mark that pruning does not lower."""
    assert stack.kube is not None and stack.teleport is not None
    teleport = stack.teleport
    grace, vanished_grace = 1.5, 3.0
    prune = {
        "enabled": True,
        "grace_period": f"{grace}s",
        "vanished_grace_period": f"{vanished_grace}s",
        "max_deletes_per_run": 1,
    }
    stack.put_config([{**default_outputs()[0], "selectors": [{"labels": {"env": "prod"}}], "prune": prune}])
    teleport.set_kube_clusters(FLEET)
    invoke("renew", event("schedule.json"))
    assert len(secrets(stack)) == 10
    runs: list[Run] = []
    deleted_by: dict[str, int] = {}

    def listing(phase: str, listed: dict[str, dict[str, str]], seconds: float) -> None:
        """Teleport lists exactly `listed` while discovery runs back to back for `seconds`."""
        teleport.set_kube_clusters(listed)
        selected = {n for n, labels in listed.items() if labels.get("env") == "prod"}
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            before = time.monotonic()
            report = invoke("renew", event("discovery.json"))["outputs"][0]
            trusted = not any("pruning held back" in note for note in report["notes"])
            runs.append(Run(before, time.monotonic(), trusted, frozenset(FLEET) - selected, phase))
            for c in report["clusters"]:
                if c["action"] == "deleted":
                    deleted_by[c["kube_cluster"]] = len(runs) - 1
            time.sleep(0.2)

    def only(*names: str) -> dict[str, dict[str, str]]:
        return {n: FLEET[n] for n in names}

    everyone = [f"c{i}" for i in range(10)]
    listing("short", only("c0", "c1"), 2 * vanished_grace)  # 2 of 10, held throughout
    listing("partial", only(*everyone[:7]), 1.0)  # 7 of 10, above the guard; c7-c9 start their clocks
    listing("short again", only("c0", "c1", "c2", "c3"), 2 * vanished_grace)  # 4 of 10: held
    # Recovering: all but c9; c8 deselected (still listed by name), so the shorter grace applies to it.
    listing(
        "recovering", {**only(*everyone[:9]), "c8": {"env": "dev", "team": "platform"}}, 2 * vanished_grace
    )

    assert set(deleted_by) == {"c8", "c9"}  # c7 came back in time and was written again
    assert secrets(stack) == [name(c) for c in everyone[:8]]
    held = {
        phase: {r.trusted for r in runs if r.phase == phase} for phase in ("short", "partial", "short again")
    }
    assert held == {"short": {False}, "partial": {True}, "short again": {False}}
    for cluster, index in deleted_by.items():
        own = grace if cluster == "c8" else vanished_grace
        # The most absence any implementation could have counted: the spans between consecutive
        # runs that could prune, both missing the cluster (a run's clock reads within its span).
        counted = sum(
            later.after - earlier.before
            for earlier, later in itertools.pairwise(runs[: index + 1])
            if earlier.trusted and later.trusted and cluster in earlier.absent and cluster in later.absent
        )
        assert counted >= own, (cluster, counted, own)
    # At most one deletion per run (prune.max_deletes_per_run).
    assert len(set(deleted_by.values())) == len(deleted_by)


def secrets(stack: LocalStack) -> list[str]:
    assert stack.kube is not None
    return [
        n for n in (name(f"c{i}") for i in range(10)) if stack.kube.secret(ARGOCD_NAMESPACE, n) is not None
    ]
