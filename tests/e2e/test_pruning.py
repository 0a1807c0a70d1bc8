"""End to end: pruning through the real Kubernetes writer, and Secrets that are not ours.

Deletion is preconditioned on the uid and resourceVersion we checked (Kubernetes API reference,
DeleteOptions.preconditions), and only ever of a Secret carrying our ownership annotation.
"""

from __future__ import annotations

from typing import Any

from standins.handlers import event, invoke
from standins.stack import ARGOCD_NAMESPACE, STATE_TABLE, LocalStack, default_outputs
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
    assert [r for r in stack.kube.requests if r.verb == "delete"] == []


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
