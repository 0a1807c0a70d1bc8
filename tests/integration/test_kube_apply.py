"""SecretStore in its default mode against the Kubernetes API stand-in: every write one server-side
apply, nothing read, with exactly the Role and admission policy `scripts/rbac.py` prints."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from scripts import rbac
from standins.kubeapi import KubeApiServer, cluster_secret
from teleport_argocd.config import load_config
from teleport_argocd.destination.http import Retry
from teleport_argocd.destination.kubeconfig import cluster_access
from teleport_argocd.destination.secrets import SecretStore
from teleport_argocd.destination.writer import CONFLICT_ATTEMPTS, FIELD_MANAGER
from teleport_argocd.errors import DestinationError, DestinationForbidden, ForeignSecretError, NotManagedError
from teleport_argocd.model import (
    MANAGED_KEYS_ANNOTATION,
    TBOT_VERSION_ANNOTATION,
    VERSION_ANNOTATION,
    SecretVersion,
)

GROUP = rbac.DEFAULT_GROUP
CONFIG = """
teleport: {proxy_addr: teleport.example.com, join_token: t}
destination: {eks: {cluster_name: argocd, region: eu-west-1}}
outputs: [{type: kubernetes/argo-cd, selectors: [{name: x}], secret_namespace: argocd}]
"""
POLICY = rbac.manifests(load_config(CONFIG, env={}), rbac.Subject("Group", GROUP))
ROLE = next(d for d in POLICY if d["kind"] == "Role")
FAST = Retry(base_delay=0.01, max_delay=0.05)
TEAM = "team"
ARGOCD_REFRESH = "argocd.argoproj.io/refresh"
ARGOCD_VERSION_LABEL = "argocd.argoproj.io/kubernetes-version"
CLUSTER_ANNOTATIONS = {
    "teleport.dev/bot-name": "argo-bot",
    "teleport.dev/kubernetes-cluster-name": "kube-cluster-1",
    "teleport.dev/teleport-cluster-name": "root",
}

_names = (f"teleport.argocd-cluster.{i:016x}" for i in itertools.count())


@pytest.fixture(scope="module")
def server() -> Iterator[KubeApiServer]:
    with KubeApiServer() as s:
        s.allow(group=GROUP, verbs=ROLE["rules"][0]["verbs"], namespaces=["argocd"])
        s.admit(POLICY)
        yield s


@pytest.fixture
def store(server: KubeApiServer) -> Iterator[SecretStore]:
    access = cluster_access(server.kubeconfig("teleport-argocd", (GROUP,)), context=None)
    with SecretStore(access, description="the stand-in", retry=FAST) as s:
        yield s


@pytest.fixture
def name() -> str:
    return next(_names)


def rendered(
    name: str, updated: str = "t1", *, labels: dict[str, str] | None = None, **kw: Any
) -> dict[str, Any]:
    """A Secret as the renderer makes it for kube-cluster-1 of Teleport cluster root."""
    annotations = {
        **CLUSTER_ANNOTATIONS,
        "teleport.dev/updated": updated,
        VERSION_ANNOTATION: "1.0.0",
        **kw.pop("annotations", {}),
    }
    return cluster_secret(name, annotations=annotations, labels=labels, **kw)


def tbots(name: str, labels: dict[str, str]) -> dict[str, Any]:
    annotations = {**CLUSTER_ANNOTATIONS, "teleport.dev/updated": "t0", TBOT_VERSION_ANNOTATION: "18.2.0"}
    return cluster_secret(name, annotations=annotations, labels=labels, server="https://old.example.com")


def argocd_touches(server: KubeApiServer, name: str) -> None:
    """What Argo CD does to a cluster Secret (as manager argocd-server): a refresh annotation and
    an auto-label."""

    def change(secret: dict[str, Any]) -> None:
        secret["metadata"].setdefault("annotations", {})[ARGOCD_REFRESH] = "2026-11-21T10:00:00Z"
        secret["metadata"]["labels"][ARGOCD_VERSION_LABEL] = "1.33"

    server.edit_secret("argocd", name, change)


def stored(server: KubeApiServer, name: str) -> dict[str, Any]:
    secret = server.secret("argocd", name)
    assert secret is not None
    return secret


def managers(secret: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["manager"], e["operation"]) for e in secret["metadata"].get("managedFields", [])}


def sent(server: KubeApiServer) -> list[tuple[str, int]]:
    return [(r.method, r.status) for r in server.requests]


def test_the_role_has_no_read_verb() -> None:
    assert ROLE["rules"][0]["verbs"] == ["patch", "create", "delete"]


def test_create_is_one_apply(server: KubeApiServer, store: SecretStore, name: str) -> None:
    server.requests.clear()
    result = store.write(rendered(name, labels={TEAM: "a"}), None)

    secret = stored(server, name)
    assert (result.action, result.requests, sent(server)) == ("created", 1, [("PATCH", 201)])
    assert result.version == SecretVersion(secret["metadata"]["uid"], secret["metadata"]["resourceVersion"])
    assert secret["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "cluster", TEAM: "a"}
    assert MANAGED_KEYS_ANNOTATION not in secret["metadata"]["annotations"]
    assert managers(secret) == {(FIELD_MANAGER, "Apply")}


def test_a_renewal_is_one_forced_apply_and_keeps_argocds_keys(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name, labels={TEAM: "a"}), None)
    argocd_touches(server, name)
    server.requests.clear()

    result = store.write(rendered(name, updated="t2", labels={TEAM: "a"}), first.version)

    assert (result.action, result.requests, sent(server)) == ("updated", 1, [("PATCH", 200)])
    meta = stored(server, name)["metadata"]
    assert meta["labels"][ARGOCD_VERSION_LABEL] == "1.33" and meta["labels"][TEAM] == "a"
    assert meta["annotations"][ARGOCD_REFRESH] == "2026-11-21T10:00:00Z"
    assert meta["annotations"]["teleport.dev/updated"] == "t2"


def test_a_label_we_stop_rendering_goes_without_a_read(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name, labels={TEAM: "a"}, annotations={"example.com/owner": "x"}), None)
    argocd_touches(server, name)
    server.requests.clear()

    store.write(rendered(name, updated="t2"), first.version)

    meta = stored(server, name)["metadata"]
    assert meta["labels"] == {"argocd.argoproj.io/secret-type": "cluster", ARGOCD_VERSION_LABEL: "1.33"}
    assert "example.com/owner" not in meta["annotations"] and ARGOCD_REFRESH in meta["annotations"]
    assert {r.verb for r in server.requests} == {"patch"}


def test_our_field_someone_changed_is_taken_back(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name, labels={TEAM: "a"}), None)
    server.edit_secret(
        "argocd", name, lambda s: s["metadata"]["labels"].update({TEAM: "b"}), manager="kubectl-edit"
    )

    store.write(rendered(name, updated="t2", labels={TEAM: "a"}), first.version)

    assert stored(server, name)["metadata"]["labels"][TEAM] == "a"


def test_a_write_after_a_delete_creates_it_again(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name), None)
    server.remove_secret("argocd", name)
    server.requests.clear()

    result = store.write(rendered(name, updated="t2"), first.version)

    assert (result.action, sent(server)) == ("created", [("PATCH", 201)])
    assert result.version.uid != first.version.uid


def test_a_tbot_secret_is_taken_over_with_its_labels_replaced(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    """tbot replaces every label on each write; a templated label that stopped rendering must go at
    the first write over its Secret, and later ones we stop rendering too."""
    server.put_secret(
        tbots(name, {"argocd.argoproj.io/secret-type": "cluster", TEAM: "billing", "stale": "x"}),
        manager="tbot",
    )
    argocd_touches(server, name)
    server.requests.clear()

    result = store.write(rendered(name, updated="t2", labels={TEAM: "billing"}), None)

    # The apply meets tbot's fields; a JSON patch proves it tbot's for this cluster and replaces
    # the labels; a forced apply; then tbot's ownership is handed to our apply.
    assert sent(server) == [("PATCH", 409), ("PATCH", 200), ("PATCH", 200), ("PATCH", 200)]
    assert result.action == "updated"
    secret = stored(server, name)
    meta = secret["metadata"]
    assert meta["labels"] == {"argocd.argoproj.io/secret-type": "cluster", TEAM: "billing"}
    assert TBOT_VERSION_ANNOTATION not in meta["annotations"]
    assert meta["annotations"][VERSION_ANNOTATION] == "1.0.0"
    assert meta["annotations"][ARGOCD_REFRESH] == "2026-11-21T10:00:00Z"
    assert managers(secret) == {(FIELD_MANAGER, "Apply"), ("argocd-server", "Update")}
    assert (
        cluster_secret(name, server="https://teleport.example.com:443")["data"]["server"]
        == secret["data"]["server"]
    )

    server.requests.clear()
    store.write(rendered(name, updated="t3"), result.version)
    assert stored(server, name)["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "cluster"}
    assert sent(server) == [("PATCH", 200)]


def test_a_secret_of_our_older_writer_loses_its_ownership_list(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    """Secrets written by the update-based writer list our keys in MANAGED_KEYS_ANNOTATION and are
    owned by our manager's Update entry: the first apply removes what we no longer render."""
    access = cluster_access(server.kubeconfig("admin", ("system:masters",)), context=None)
    with SecretStore(access, description="older", mode="read-first") as older:
        first = older.write(rendered(name, labels={TEAM: "a", "old": "1"}), None)
    server.requests.clear()

    store.write(rendered(name, updated="t2", labels={TEAM: "a"}), first.version)

    secret = stored(server, name)
    assert secret["metadata"]["labels"] == {"argocd.argoproj.io/secret-type": "cluster", TEAM: "a"}
    assert MANAGED_KEYS_ANNOTATION not in secret["metadata"]["annotations"]
    assert managers(secret) == {(FIELD_MANAGER, "Apply")}
    assert sent(server) == [("PATCH", 200), ("PATCH", 200)]


def test_a_hand_made_secret_in_the_way_is_refused(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    hand_made = server.put_secret(
        cluster_secret(name, annotations={"owner": "me"}, server="https://elsewhere.example.com")
    )

    with pytest.raises(ForeignSecretError) as caught:
        store.write(rendered(name), None)

    assert f"argocd/{name}" in str(caught.value) and "secret_name_prefix" in str(caught.value)
    assert stored(server, name) == hand_made


def test_a_secret_in_the_way_without_conflicting_fields_is_refused_by_the_admission_policy(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    """An apply that meets no other manager's field would merge into any Secret: the admission
    policy is what refuses a Secret that is neither ours nor tbot's."""
    hand_made = server.put_secret(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "argocd"}}
    )

    with pytest.raises(ForeignSecretError, match="refused by the admission policy"):
        store.write(rendered(name), None)
    assert stored(server, name) == hand_made


def test_a_secret_for_another_cluster_is_refused(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    other = rendered(name, annotations={"teleport.dev/kubernetes-cluster-name": "otkube-cluster-1"})
    theirs = store.write(other, None)

    with pytest.raises(ForeignSecretError, match=r"for this cluster.*written for another cluster"):
        store.write(rendered(name, updated="t2"), None)
    assert stored(server, name)["metadata"]["resourceVersion"] == theirs.version.resource_version


def test_our_secret_without_a_registry_entry_is_written(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    """A registry lost: a conflict on our own Secret (someone edited a field of ours) is resolved
    by proving it ours, then forcing."""
    store.write(rendered(name, labels={TEAM: "a"}), None)
    server.edit_secret(
        "argocd", name, lambda s: s["metadata"]["labels"].update({TEAM: "b"}), manager="kubectl-edit"
    )

    result = store.write(rendered(name, updated="t2", labels={TEAM: "a"}), None)

    assert result.action == "updated" and stored(server, name)["metadata"]["labels"][TEAM] == "a"


def test_the_policy_stops_a_patch_from_reading_other_secrets(
    server: KubeApiServer, store: SecretStore
) -> None:
    server.put_secret(cluster_secret("argocd-secret", annotations={"signing": "key"}))
    with pytest.raises(ForeignSecretError):
        store.write(rendered("argocd-secret"), None)


def test_a_namespace_without_the_role_is_forbidden(store: SecretStore) -> None:
    with pytest.raises(DestinationForbidden, match="cannot patch resource"):
        store.write(rendered("teleport.argocd-cluster.0000000000000000", namespace="kube-system"), None)


def test_endless_proofs_give_up(server: KubeApiServer, store: SecretStore, name: str) -> None:
    server.put_secret(tbots(name, {"argocd.argoproj.io/secret-type": "cluster"}), manager="tbot")

    def tbot_writes_again() -> None:
        server.put_secret(tbots(name, {"argocd.argoproj.io/secret-type": "cluster"}), manager="tbot")

    server.before("patch", tbot_writes_again, times=4 * CONFLICT_ATTEMPTS)
    with pytest.raises(DestinationError, match=r"still modified by someone else|not one teleport-argocd"):
        store.write(rendered(name), None)


# -- delete ------------------------------------------------------------------------


def test_delete_is_one_request(server: KubeApiServer, store: SecretStore, name: str) -> None:
    written = store.write(rendered(name), None)
    argocd_touches(server, name)
    server.requests.clear()

    assert store.delete("argocd", name, written.version) is True
    assert store.delete("argocd", name, written.version) is False
    assert sent(server) == [("DELETE", 200), ("DELETE", 404)]


def test_delete_refuses_another_uid(server: KubeApiServer, store: SecretStore, name: str) -> None:
    written = store.write(rendered(name), None)
    with pytest.raises(NotManagedError, match="replaced since we wrote it"):
        store.delete("argocd", name, SecretVersion("another-uid", written.version.resource_version))
    assert server.secret("argocd", name) is not None


def test_delete_refuses_a_secret_that_is_not_ours(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    hand_made = server.put_secret(cluster_secret(name))
    with pytest.raises(NotManagedError, match="admission policy"):
        store.delete("argocd", name, SecretVersion(hand_made["metadata"]["uid"], ""))
    assert server.secret("argocd", name) is not None


def test_requests_use_only_the_roles_verbs(server: KubeApiServer, store: SecretStore, name: str) -> None:
    server.requests.clear()
    first = store.write(rendered(name), None)
    store.write(rendered(name, updated="t2"), first.version)
    store.delete("argocd", name, first.version)
    assert {r.verb for r in server.requests} <= set(ROLE["rules"][0]["verbs"])
    assert all(r.status < 400 for r in server.requests)


def test_write_and_delete_calls(server: KubeApiServer, store: SecretStore) -> None:
    names = [next(_names) for _ in range(20)]
    calls: list[Callable[[], object]] = [lambda n=n: store.write(rendered(n), None) for n in names]
    for call in calls:
        call()
    assert store.calls == 20


# Labels and annotations alone (`SecretStore.relabel`): a JSON patch (RFC 6902) under our field manager,
# which the API server records as an `Update` owning what it changed (standins.ssa follows
# k8s.io/apimachinery's fieldmanager); the data, so Argo CD's `config`, stays byte for byte.


def test_a_relabel_changes_labels_and_annotations_and_keeps_the_data(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name, labels={TEAM: "a"}, tls={"certData": b"CERT-1"}), None)
    argocd_touches(server, name)
    before = stored(server, name)
    server.requests.clear()

    manifest = rendered(name, updated="t2", labels={TEAM: "b", "tier": "1"}, tls={"certData": b"CERT-2"})
    result = store.relabel(manifest, first.version)

    after = stored(server, name)
    assert result is not None and (result.action, result.requests, sent(server)) == (
        "updated",
        1,
        [("PATCH", 200)],
    )
    assert result.version == SecretVersion(first.version.uid, after["metadata"]["resourceVersion"])
    assert after["data"] == before["data"]
    assert after["metadata"]["labels"] == {
        "argocd.argoproj.io/secret-type": "cluster",
        ARGOCD_VERSION_LABEL: "1.33",
        TEAM: "b",
        "tier": "1",
    }
    annotations = after["metadata"]["annotations"]
    assert (
        annotations["teleport.dev/updated"] == "t2" and annotations[ARGOCD_REFRESH] == "2026-11-21T10:00:00Z"
    )


def test_a_relabel_removes_what_we_stop_rendering_and_keeps_what_others_own(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(
        rendered(name, labels={TEAM: "a", "old": "1"}, annotations={"example.com/x": "1"}), None
    )
    argocd_touches(server, name)
    server.edit_secret(
        "argocd", name, lambda s: s["metadata"]["labels"].update({"theirs": "1"}), manager="kubectl"
    )
    data = stored(server, name)["data"]
    server.requests.clear()

    result = store.relabel(rendered(name, updated="t2", labels={TEAM: "a"}), first.version)

    meta = stored(server, name)["metadata"]
    assert result is not None and sent(server) == [("PATCH", 200), ("PATCH", 200)]
    assert set(meta["labels"]) == {"argocd.argoproj.io/secret-type", TEAM, ARGOCD_VERSION_LABEL, "theirs"}
    assert "example.com/x" not in meta["annotations"] and ARGOCD_REFRESH in meta["annotations"]
    assert stored(server, name)["data"] == data


def test_a_whole_write_after_a_relabel_removes_a_label_only_the_relabel_set(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    """An apply keeps a key another entry co-owns, and the relabel's `Update` entry owns what it set:
    handing that entry over must also remove the keys we no longer render."""
    first = store.write(rendered(name, labels={TEAM: "a"}), None)
    relabelled = store.relabel(rendered(name, labels={TEAM: "a", "extra": "1"}), first.version)
    assert relabelled is not None and stored(server, name)["metadata"]["labels"]["extra"] == "1"

    store.write(
        rendered(name, updated="t3", labels={TEAM: "a"}, tls={"certData": b"NEW"}), relabelled.version
    )

    secret = stored(server, name)
    assert "extra" not in secret["metadata"]["labels"] and secret["metadata"]["labels"][TEAM] == "a"
    assert managers(secret) == {(FIELD_MANAGER, "Apply")}


def test_a_relabel_of_a_secret_deleted_or_replaced_since_is_not_made(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name, labels={TEAM: "a"}), None)
    server.remove_secret("argocd", name)
    assert store.relabel(rendered(name, labels={TEAM: "b"}), first.version) is None
    again = store.write(rendered(name, labels={TEAM: "a"}), None)
    assert again.version.uid != first.version.uid

    assert store.relabel(rendered(name, labels={TEAM: "b"}), first.version) is None
    assert stored(server, name)["metadata"]["labels"][TEAM] == "a"


def test_a_relabel_of_a_secret_no_longer_marked_ours_is_refused_by_the_admission_policy(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name, labels={TEAM: "a"}), None)
    server.edit_secret(
        "argocd", name, lambda s: s["metadata"]["annotations"].pop(VERSION_ANNOTATION), manager="kubectl"
    )

    with pytest.raises(ForeignSecretError, match="admission policy"):
        store.relabel(rendered(name, labels={TEAM: "b"}), first.version)
    assert stored(server, name)["metadata"]["labels"][TEAM] == "a"
