"""SecretStore.list_applications against the Kubernetes API stand-in: the pruning guard's one read,
with nothing but `list` on applications.argoproj.io, page by page, and every failure an error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from standins.kubeapi import APPLICATIONS, KubeApiServer
from teleport_argocd.applications import Application
from teleport_argocd.destination import secrets
from teleport_argocd.destination.http import Retry
from teleport_argocd.destination.kubeconfig import cluster_access
from teleport_argocd.destination.secrets import SecretStore
from teleport_argocd.errors import DestinationError, DestinationForbidden

READER = "teleport-argocd"


@pytest.fixture
def server() -> Iterator[KubeApiServer]:
    with KubeApiServer(namespaces=("argocd", "team-a", "team-b")) as s:
        s.allow(user=READER, verbs=["list"], resources=[APPLICATIONS], namespaces=["argocd", "team-a"])
        yield s


@pytest.fixture
def store(server: KubeApiServer) -> Iterator[SecretStore]:
    access = cluster_access(server.kubeconfig(READER), context=None)
    with SecretStore(access, description="the stand-in", retry=Retry(base_delay=0.01, max_delay=0.05)) as s:
        yield s


def test_every_application_of_a_namespace_is_listed_page_by_page(
    server: KubeApiServer, store: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets, "APPLICATION_PAGE", 2)
    for i in range(5):
        server.put_application("team-a", f"app-{i}", server=f"https://c{i}.example.com/")
    server.put_application("team-a", "by-name", cluster_name="root-prod", deleting=True)
    server.put_application("argocd", "elsewhere", server="https://x.example.com")

    found = store.list_applications("team-a")

    assert found[0] == Application("team-a", "app-0", server="https://c0.example.com/")
    assert Application("team-a", "by-name", cluster_name="root-prod") in found  # deleting still counts
    assert len(found) == 6
    lists = [r for r in server.requests if r.resource == APPLICATIONS]
    assert [(r.verb, r.namespace, r.status) for r in lists] == [("list", "team-a", 200)] * 3
    assert store.list_applications("argocd") == [
        Application("argocd", "elsewhere", server="https://x.example.com")
    ]


def test_a_namespace_without_the_grant_is_refused_by_name(store: SecretStore) -> None:
    with pytest.raises(DestinationForbidden) as caught:
        store.list_applications("team-b")
    assert str(caught.value).startswith(
        "list applications.argoproj.io in namespace team-b in the stand-in: 403 applications.argoproj.io "
        'is forbidden: User "teleport-argocd" cannot list resource "applications" in API group "argoproj.io"'
    )


def test_an_unreadable_application_fails_the_list(server: KubeApiServer, store: SecretStore) -> None:
    """One we cannot read might target any cluster: the guard must not judge from the rest."""
    server.put_application("argocd", "odd", server="https://x.example.com")

    def corrupt() -> None:
        server._applications["argocd", "odd"]["spec"]["destination"] = "in-cluster"

    server.before("list", corrupt, resource=APPLICATIONS)
    with pytest.raises(DestinationError, match=r"Application argocd/odd has no readable spec\.destination"):
        store.list_applications("argocd")
