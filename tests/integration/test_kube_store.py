"""SecretStore in read-first mode (`write_mode: read-first`) against the Kubernetes API stand-in: a
renewal in one request, merges, adoption, retries. The default mode is in test_kube_apply.py."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from standins.kubeapi import KubeApiServer, cluster_secret
from teleport_argocd.destination.http import Retry
from teleport_argocd.destination.kubeconfig import cluster_access
from teleport_argocd.destination.secrets import SecretStore
from teleport_argocd.destination.writer import CONFLICT_ATTEMPTS, WriteResult
from teleport_argocd.errors import (
    DestinationConflict,
    DestinationError,
    DestinationForbidden,
    DestinationRejected,
    DestinationUnreachable,
    ForeignSecretError,
    NotManagedError,
)
from teleport_argocd.model import MANAGED_KEYS_ANNOTATION, TBOT_VERSION_ANNOTATION, SecretVersion

WRITER = "teleport-argocd"
WRITER_VERBS = ("get", "create", "update", "delete")  # the least-privilege Role: no list, no watch
ARGOCD_REFRESH = "argocd.argoproj.io/refresh"
ARGOCD_VERSION_LABEL = "argocd.argoproj.io/kubernetes-version"
FAST = Retry(base_delay=0.01, max_delay=0.05)
TBOT_ANNOTATIONS = {
    "teleport.dev/bot-name": "argo-bot",
    "teleport.dev/kubernetes-cluster-name": "kube-cluster-1",
    "teleport.dev/teleport-cluster-name": "root",
    "teleport.dev/updated": "2025-07-31T13:35:15Z",
}

_names = (f"cluster-{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def server() -> Iterator[KubeApiServer]:
    with KubeApiServer() as s:
        s.allow(group="teleport-argocd-writers", verbs=WRITER_VERBS, namespaces=["argocd"])
        yield s


@pytest.fixture
def connect(server: KubeApiServer) -> Iterator[Callable[..., SecretStore]]:
    """Stores for the stand-in as a given user (by default our writer with its least-privilege Role)."""
    stores: list[SecretStore] = []

    def make(
        user: str = WRITER, groups: tuple[str, ...] = ("teleport-argocd-writers",), **cluster: Any
    ) -> SecretStore:
        kubeconfig = server.kubeconfig(user, groups)
        kubeconfig["clusters"][0]["cluster"].update(cluster)
        store = SecretStore(
            cluster_access(kubeconfig, context=None),
            description="the stand-in",
            retry=FAST,
            mode="read-first",
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def store(connect: Callable[..., SecretStore]) -> SecretStore:
    return connect()


@pytest.fixture
def name() -> str:
    return next(_names)


def rendered(name: str, updated: str = "t1", **kw: Any) -> dict[str, Any]:
    """A Secret as the renderer makes it for kube-cluster-1 of Teleport cluster root."""
    annotations = {**TBOT_ANNOTATIONS, "teleport.dev/updated": updated, **kw.pop("annotations", {})}
    return cluster_secret(name, annotations=annotations, **kw)


def argocd_touches(server: KubeApiServer, name: str) -> Callable[[], None]:
    """What Argo CD does to a cluster Secret: a refresh annotation and an auto-label."""

    def touch() -> None:
        def change(secret: dict[str, Any]) -> None:
            secret["metadata"].setdefault("annotations", {})[ARGOCD_REFRESH] = "2026-11-21T10:00:00Z"
            secret["metadata"]["labels"][ARGOCD_VERSION_LABEL] = "1.33"

        server.edit_secret("argocd", name, change)

    return touch


def stored(server: KubeApiServer, name: str) -> dict[str, Any]:
    secret = server.secret("argocd", name)
    assert secret is not None
    return secret


def test_create_records_what_we_own(server: KubeApiServer, store: SecretStore, name: str) -> None:
    manifest = rendered(name, labels={"team": "a"})

    result = store.write(manifest, None)

    secret = stored(server, name)
    meta = secret["metadata"]
    assert (result.namespace, result.name, result.action, result.requests) == ("argocd", name, "created", 1)
    assert result.version == SecretVersion(meta["uid"], meta["resourceVersion"])
    assert secret["data"] == manifest["data"] and secret["type"] == "Opaque"
    assert meta["labels"] == manifest["metadata"]["labels"]
    assert json.loads(meta["annotations"].pop(MANAGED_KEYS_ANNOTATION)) == {
        "labels": ["argocd.argoproj.io/secret-type", "team"],
        "annotations": sorted(TBOT_ANNOTATIONS),
    }
    assert meta["annotations"] == manifest["metadata"]["annotations"]
    assert server.requests[-1].method == "POST"


def test_a_renewal_is_one_request(server: KubeApiServer, store: SecretStore, name: str) -> None:
    first = store.write(rendered(name), None)
    server.requests.clear()

    renewed = rendered(name, updated="t2", server="https://new.example.com")
    result = store.write(renewed, first.version)

    assert (result.action, result.requests) == ("updated", 1)
    assert [(r.method, r.status) for r in server.requests] == [("PUT", 200)]
    secret = stored(server, name)
    assert secret["data"] == renewed["data"]
    assert secret["metadata"]["annotations"]["teleport.dev/updated"] == "t2"
    assert result.version == SecretVersion(first.version.uid, secret["metadata"]["resourceVersion"])


def test_a_conflict_after_argocds_edit_is_merged_and_keeps_its_keys(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name), None)
    argocd_touches(server, name)()
    server.requests.clear()

    result = store.write(rendered(name, updated="t2"), first.version)

    assert [(r.method, r.status) for r in server.requests] == [("PUT", 409), ("GET", 200), ("PUT", 200)]
    assert result.requests == 3
    meta = stored(server, name)["metadata"]
    assert meta["labels"][ARGOCD_VERSION_LABEL] == "1.33"
    assert meta["annotations"][ARGOCD_REFRESH] == "2026-11-21T10:00:00Z"
    assert meta["annotations"]["teleport.dev/updated"] == "t2"
    # Argo CD's keys are on it now: the next write must read first, not replace them blind.
    assert result.version == SecretVersion(first.version.uid, "")
    server.requests.clear()
    again = store.write(rendered(name, updated="t3"), result.version)
    assert [r.method for r in server.requests] == ["GET", "PUT"] and again.requests == 2
    assert stored(server, name)["metadata"]["labels"][ARGOCD_VERSION_LABEL] == "1.33"


def test_a_label_we_no_longer_render_goes_and_argocds_stays(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name, labels={"team": "a"}, annotations={"example.com/owner": "x"}), None)
    argocd_touches(server, name)()

    store.write(rendered(name, updated="t2"), first.version)

    meta = stored(server, name)["metadata"]
    assert meta["labels"] == {"argocd.argoproj.io/secret-type": "cluster", ARGOCD_VERSION_LABEL: "1.33"}
    assert "example.com/owner" not in meta["annotations"]
    assert ARGOCD_REFRESH in meta["annotations"]
    assert json.loads(meta["annotations"][MANAGED_KEYS_ANNOTATION])["labels"] == [
        "argocd.argoproj.io/secret-type"
    ]


def test_a_write_after_a_delete_creates_it_again(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name), None)
    server.remove_secret("argocd", name)
    server.requests.clear()

    result = store.write(rendered(name, updated="t2"), first.version)

    assert result.action == "created"
    assert [(r.method, r.status) for r in server.requests] == [("PUT", 404), ("GET", 404), ("POST", 201)]
    assert result.version.uid != first.version.uid


def test_a_hand_made_secret_of_the_same_name_is_left_untouched(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    hand_made = server.put_secret(cluster_secret(name, annotations={"owner": "me"}))

    with pytest.raises(ForeignSecretError) as caught:
        store.write(rendered(name), None)

    message = str(caught.value)
    assert f"argocd/{name}" in message and "secret_name_prefix" in message and "Delete or rename" in message
    assert stored(server, name) == hand_made


def test_a_secret_for_another_cluster_is_left_untouched(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    other = rendered(name, annotations={"teleport.dev/kubernetes-cluster-name": "otkube-cluster-1"})
    theirs = store.write(other, None)

    with pytest.raises(ForeignSecretError, match="otkube-cluster-1"):
        store.write(rendered(name), None)
    assert stored(server, name)["metadata"]["resourceVersion"] == theirs.version.resource_version


def test_a_tbot_secret_is_adopted_and_loses_tbots_version(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    tbot = rendered(name, labels={"team": "billing"}, annotations={TBOT_VERSION_ANNOTATION: "18.2.0"})
    server.put_secret(tbot)
    argocd_touches(server, name)()

    result = store.write(rendered(name, updated="t2"), None)

    assert result.action == "updated"
    meta = stored(server, name)["metadata"]
    assert TBOT_VERSION_ANNOTATION not in meta["annotations"]
    assert MANAGED_KEYS_ANNOTATION in meta["annotations"]
    assert meta["annotations"][ARGOCD_REFRESH] == "2026-11-21T10:00:00Z"
    # tbot replaces every label on each write, so every label there is tbot's: ours replace them.
    assert meta["labels"] == {"argocd.argoproj.io/secret-type": "cluster"}


def test_apply_reads_first(server: KubeApiServer, store: SecretStore, name: str) -> None:
    server.requests.clear()
    assert store.apply(rendered(name)).action == "created"
    assert store.apply(rendered(name, updated="t2")).action == "updated"
    assert [r.method for r in server.requests] == ["GET", "POST", "GET", "PUT"]


def test_conflicts_that_never_end_give_up(server: KubeApiServer, store: SecretStore, name: str) -> None:
    first = store.write(rendered(name), None)
    server.before("update", argocd_touches(server, name), times=CONFLICT_ATTEMPTS + 1)

    with pytest.raises(DestinationConflict, match=f"argocd/{name}"):
        store.write(rendered(name, updated="t2"), first.version)
    assert store.write(rendered(name, updated="t3"), SecretVersion(first.version.uid, "")).action == "updated"


def test_forbidden_namespace_fails_alone(server: KubeApiServer, store: SecretStore) -> None:
    manifests = [rendered("fb-1"), rendered("fb-2", namespace="kube-system"), rendered("fb-3")]
    written, errors = [], []
    for manifest in manifests:  # as the reconcile loops over clusters
        try:
            written.append(store.write(manifest, None).name)
        except DestinationError as exc:
            errors.append(exc)

    assert written == ["fb-1", "fb-3"]
    assert len(errors) == 1 and isinstance(errors[0], DestinationForbidden)
    message = str(errors[0])
    assert "kube-system/fb-2" in message
    assert (
        f'User "{WRITER}" cannot create resource "secrets" in API group "" in the namespace "kube-system"'
        in (message)
    )


def test_messages_never_carry_secret_data(store: SecretStore) -> None:
    manifest = cluster_secret(
        "leak", namespace="kube-system", tls={"keyData": b"-----BEGIN PRIVATE KEY-----"}
    )
    with pytest.raises(DestinationForbidden) as caught:
        store.write(manifest, None)
    assert "PRIVATE KEY" not in str(caught.value)
    assert manifest["data"]["config"] not in str(caught.value)


def test_unauthenticated_is_forbidden(server: KubeApiServer) -> None:
    kubeconfig = server.kubeconfig("nobody")
    kubeconfig["users"][0]["user"] = {}  # the stand-in's CA, no credentials at all
    with (
        SecretStore(cluster_access(kubeconfig, context=None), description="x") as anonymous,
        pytest.raises(DestinationForbidden, match="401 Unauthorized"),
    ):
        anonymous.get("argocd", "anything")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m["metadata"].update(name="Not_A_Name"), "metadata.name: Invalid value"),
        (lambda m: m["metadata"]["labels"].update(team="a/b"), "metadata.labels: Invalid value"),
        (lambda m: m["data"].update(config="not base64!"), "illegal base64"),
        (lambda m: m["metadata"].update(namespace="missing"), 'namespaces "missing" not found'),
    ],
    ids=["name", "label-value", "data", "namespace"],
)
def test_rejected(
    connect: Callable[..., SecretStore], name: str, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    admin = connect("admin", ("system:masters",))
    manifest = rendered(name)
    change(manifest)
    with pytest.raises(DestinationRejected, match=expected):
        admin.write(manifest, None)


# -- delete ------------------------------------------------------------------------


def test_delete(server: KubeApiServer, store: SecretStore, name: str) -> None:
    written = store.write(rendered(name), None)
    argocd_touches(server, name)()  # Argo CD's edits do not stop a prune
    server.requests.clear()

    assert store.delete("argocd", name, written.version) is True
    assert server.secret("argocd", name) is None
    assert store.delete("argocd", name, written.version) is False
    assert [(r.method, r.status) for r in server.requests] == [("GET", 200), ("DELETE", 200), ("GET", 404)]


def test_delete_refuses_a_secret_without_our_annotation(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    tbots = server.put_secret(rendered(name, annotations={TBOT_VERSION_ANNOTATION: "18.2.0"}))
    known = SecretVersion(tbots["metadata"]["uid"], tbots["metadata"]["resourceVersion"])

    with pytest.raises(NotManagedError, match=f"argocd/{name}.*not written by teleport-argocd"):
        store.delete("argocd", name, known)
    assert server.secret("argocd", name) is not None


def test_delete_refuses_a_secret_with_another_uid(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    written = store.write(rendered(name), None)

    with pytest.raises(NotManagedError, match="replaced since we wrote it"):
        store.delete("argocd", name, SecretVersion("another-uid", written.version.resource_version))
    assert server.secret("argocd", name) is not None


def test_delete_rechecks_a_secret_that_changed_hands(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    written = store.write(rendered(name), None)

    def disown() -> None:  # someone takes the Secret over between our GET and our DELETE
        server.edit_secret(
            "argocd", name, lambda s: s["metadata"]["annotations"].pop(MANAGED_KEYS_ANNOTATION)
        )

    server.before("delete", disown)
    with pytest.raises(NotManagedError):
        store.delete("argocd", name, written.version)
    assert server.secret("argocd", name) is not None
    assert [r.status for r in server.requests[-3:]] == [200, 409, 200]  # GET, DELETE refused, GET


# -- transient failures --------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429, 0], ids=["500", "503", "429", "connection-dropped"])
def test_transient_failures_are_retried(
    server: KubeApiServer, store: SecretStore, name: str, status: int
) -> None:
    first = store.write(rendered(name), None)
    server.fail(status, times=2, retry_after=1)
    server.requests.clear()

    result = store.write(rendered(name, updated="t2"), first.version)

    assert [(r.method, r.status) for r in server.requests] == [("PUT", status), ("PUT", status), ("PUT", 200)]
    assert (result.action, result.requests) == ("updated", 3)


def test_transient_failures_that_last_give_up(server: KubeApiServer, store: SecretStore, name: str) -> None:
    server.fail(503, times=FAST.attempts)

    with pytest.raises(DestinationUnreachable, match=f"argocd/{name}.*503 Internal error occurred") as caught:
        store.write(rendered(name), None)
    assert f"after {FAST.attempts} attempts" in str(caught.value)
    assert store.write(rendered(name), None).action == "created"  # the store is still usable


def test_a_retry_after_beyond_the_budget_is_not_waited_for(
    connect: Callable[..., SecretStore], server: KubeApiServer
) -> None:
    store = connect()
    store.retry = Retry(budget=0.5)
    server.fail(429, retry_after=5)
    with pytest.raises(DestinationUnreachable, match="429 Too many requests"):
        store.get("argocd", "anything")
    assert server.requests[-1].status == 429


def test_wrong_tls_name_is_unreachable_and_not_retried(
    connect: Callable[..., SecretStore], server: KubeApiServer
) -> None:
    store = connect(**{"tls-server-name": "other.example.com"})
    with pytest.raises(DestinationUnreachable, match="certificate"):
        store.get("argocd", "anything")
    assert store.calls == 1


def test_closed_port_is_unreachable(connect: Callable[..., SecretStore]) -> None:
    with KubeApiServer() as gone:
        url = gone.url
    store = connect(server=url)
    with pytest.raises(DestinationUnreachable, match="cannot reach"):
        store.get("argocd", "anything")
    assert store.calls == FAST.attempts


# -- many threads, one store -----------------------------------------------------------


def test_sixteen_threads_write_200_secrets_through_one_store(
    server: KubeApiServer, store: SecretStore
) -> None:
    names = [f"pool-{i:03d}" for i in range(200)]
    server.requests.clear()

    with ThreadPoolExecutor(16) as pool:
        created = list(pool.map(lambda n: store.write(rendered(n), None), names))
        versions = {r.name: r.version for r in created}
        renewed: list[WriteResult] = list(
            pool.map(lambda n: store.write(rendered(n, updated="t2"), versions[n]), names)
        )

    assert {r.action for r in created} == {"created"} and {r.action for r in renewed} == {"updated"}
    assert all(stored(server, n)["metadata"]["annotations"]["teleport.dev/updated"] == "t2" for n in names)
    assert len(server.requests) == store.calls == 400  # one request per Secret per pass
    assert len({r.version.uid for r in renewed}) == 200


def test_no_list_or_watch(server: KubeApiServer, store: SecretStore, name: str) -> None:
    server.requests.clear()
    first = store.write(rendered(name), None)
    store.write(rendered(name, updated="t2"), first.version)
    written = store.get("argocd", name)
    assert written is not None
    store.delete("argocd", name, first.version)

    assert {r.verb for r in server.requests} == {"get", "create", "update", "delete"}


def test_a_relabel_reads_and_writes_back_our_labels_with_the_secrets_own_config(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    first = store.write(rendered(name, labels={"team": "a"}, tls={"certData": b"CERT-1"}), None)
    before = stored(server, name)
    server.requests.clear()

    result = store.relabel(
        rendered(name, "t2", labels={"team": "b"}, tls={"certData": b"CERT-2"}), first.version
    )

    after = stored(server, name)
    assert result is not None and result.action == "updated"
    assert [r.method for r in server.requests] == ["GET", "PUT"]
    assert after["data"] == before["data"] and after["metadata"]["labels"]["team"] == "b"
    assert result.version == SecretVersion(first.version.uid, after["metadata"]["resourceVersion"])


def test_a_relabel_of_a_secret_changed_since_our_write_is_not_made(
    server: KubeApiServer, store: SecretStore, name: str
) -> None:
    """Its `config` may no longer be the one we wrote: the caller writes the Secret whole."""
    first = store.write(rendered(name, labels={"team": "a"}), None)
    argocd_touches(server, name)()

    assert store.relabel(rendered(name, "t2", labels={"team": "b"}), first.version) is None
    assert stored(server, name)["metadata"]["labels"]["team"] == "a"
