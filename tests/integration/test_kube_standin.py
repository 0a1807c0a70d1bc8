"""The API stand-in itself, through the official client: the semantics other tests rely on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes.client import (
    ApiClient,
    Configuration,
    CoreV1Api,
    CustomObjectsApi,
    V1DeleteOptions,
    V1Preconditions,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.config import load_kube_config_from_dict

from standins.kubeapi import APPLICATIONS, KubeApiServer, cluster_secret


@pytest.fixture(scope="module")
def server() -> Iterator[KubeApiServer]:
    with KubeApiServer() as s:
        s.allow(user="reader", verbs=["get"], namespaces=["argocd"])
        yield s


def api_for(server: KubeApiServer, tmp_path: Path, user: str, groups: tuple[str, ...] = ()) -> CoreV1Api:
    configuration = Configuration()
    load_kube_config_from_dict(
        server.kubeconfig(user, groups), client_configuration=configuration, temp_file_path=str(tmp_path)
    )
    return CoreV1Api(ApiClient(configuration))


@pytest.fixture
def api(server: KubeApiServer, tmp_path: Path) -> CoreV1Api:
    return api_for(server, tmp_path, "admin", ("system:masters",))


def status_of(caught: pytest.ExceptionInfo[ApiException]) -> dict[str, object]:
    return json.loads(caught.value.body or "{}")  # type: ignore[no-any-return]


def test_resource_versions_and_conflicts(api: CoreV1Api) -> None:
    created = api.create_namespaced_secret("argocd", cluster_secret("sv-1"))
    assert created.metadata.uid and created.metadata.creation_timestamp

    with pytest.raises(ApiException) as caught:
        api.create_namespaced_secret("argocd", cluster_secret("sv-1"))
    assert (caught.value.status, status_of(caught)["reason"]) == (409, "AlreadyExists")

    fresh = api.patch_namespaced_secret("sv-1", "argocd", {"metadata": {"annotations": {"a": "1"}}})
    assert int(fresh.metadata.resource_version) > int(created.metadata.resource_version)

    stale = cluster_secret("sv-1")
    stale["metadata"]["resourceVersion"] = created.metadata.resource_version
    with pytest.raises(ApiException) as caught:
        api.replace_namespaced_secret("sv-1", "argocd", stale)
    assert caught.value.status == 409
    assert "the object has been modified" in str(status_of(caught)["message"])

    unchanged = api.replace_namespaced_secret("sv-1", "argocd", api.read_namespaced_secret("sv-1", "argocd"))
    assert unchanged.metadata.resource_version == fresh.metadata.resource_version  # a no-op update

    with pytest.raises(ApiException) as caught:
        api.delete_namespaced_secret(
            "sv-1", "argocd", body=V1DeleteOptions(preconditions=V1Preconditions(resource_version="1"))
        )
    assert caught.value.status == 409
    api.delete_namespaced_secret(
        "sv-1",
        "argocd",
        body=V1DeleteOptions(preconditions=V1Preconditions(resource_version=fresh.metadata.resource_version)),
    )
    with pytest.raises(ApiException) as caught:
        api.read_namespaced_secret("sv-1", "argocd")
    assert status_of(caught)["message"] == 'secrets "sv-1" not found'


def test_merge_patch_removes_keys_set_to_null(api: CoreV1Api) -> None:
    api.create_namespaced_secret("argocd", cluster_secret("sv-2", labels={"team": "a"}))
    patched = api.patch_namespaced_secret(
        "sv-2",
        "argocd",
        {"metadata": {"labels": {"team": None, "env": "prod"}}},
        _content_type="application/merge-patch+json",
    )
    assert patched.metadata.labels["env"] == "prod" and "team" not in patched.metadata.labels


def test_label_selectors(api: CoreV1Api) -> None:
    api.create_namespaced_secret("default", cluster_secret("sel-a", "default", labels={"env": "prod"}))
    api.create_namespaced_secret("default", cluster_secret("sel-b", "default", labels={"env": "dev"}))
    api.create_namespaced_secret("default", cluster_secret("sel-c", "default"))

    def names(selector: str) -> list[str]:
        return [s.metadata.name for s in api.list_namespaced_secret("default", label_selector=selector).items]

    assert names("env=prod") == ["sel-a"]
    assert names("env!=prod") == ["sel-b", "sel-c"]
    assert names("env") == ["sel-a", "sel-b"]
    assert names("!env,argocd.argoproj.io/secret-type==cluster") == ["sel-c"]


def test_invalid_objects(api: CoreV1Api) -> None:
    bad = cluster_secret("Bad_Name", labels={"-team": "x"})
    with pytest.raises(ApiException) as caught:
        api.create_namespaced_secret("argocd", bad)
    status = status_of(caught)
    assert (caught.value.status, status["reason"]) == (422, "Invalid")
    assert [c["field"] for c in status["details"]["causes"]] == ["metadata.name", "metadata.labels"]  # type: ignore[index]

    too_long = cluster_secret("a" * 254)
    with pytest.raises(ApiException) as caught:
        api.create_namespaced_secret("argocd", too_long)
    assert caught.value.status == 422


def test_forbidden_message(server: KubeApiServer, tmp_path: Path) -> None:
    reader = api_for(server, tmp_path, "reader")
    with pytest.raises(ApiException) as caught:
        reader.create_namespaced_secret("argocd", cluster_secret("sv-3"))
    assert caught.value.status == 403
    assert status_of(caught)["message"] == (
        'secrets is forbidden: User "reader" cannot create resource "secrets" '
        'in API group "" in the namespace "argocd"'
    )
    with pytest.raises(ApiException) as caught:
        reader.list_namespaced_secret("argocd")
    assert server.requests[-1].verb == "list" and server.requests[-1].status == 403


def test_namespaces_and_discovery(api: CoreV1Api) -> None:
    assert {n.metadata.name for n in api.list_namespace().items} >= {"default", "argocd"}
    assert api.read_namespace("argocd").status.phase == "Active"
    assert [r.name for r in api.get_api_resources().resources] == ["namespaces", "secrets"]


def test_injected_faults(api: CoreV1Api, server: KubeApiServer) -> None:
    # urllib3 under the official client honours a 429's Retry-After by itself.
    server.fail(429, retry_after=1)
    assert api.read_namespace("argocd").status.phase == "Active"
    assert [r.status for r in server.requests[-2:]] == [429, 200]

    server.fail(500)
    with pytest.raises(ApiException) as caught:
        api.read_namespace("argocd")
    assert (caught.value.status, status_of(caught)["reason"]) == (500, "InternalError")
    assert api.read_namespace("argocd").status.phase == "Active"  # only the next request fails


def test_applications_are_listed_per_namespace_with_rbac_and_pages(
    server: KubeApiServer, tmp_path: Path
) -> None:
    """Argo CD's Application CRD (argoproj/argo-cd manifests/crds/application-crd.yaml): group
    argoproj.io, version v1alpha1, plural applications, namespaced; the destination names the
    cluster by `server` or by `name`. The official client lists it as a custom object."""
    server.allow(user="app-reader", verbs=["list"], resources=[APPLICATIONS], namespaces=["argocd"])
    for i in range(5):
        server.put_application("argocd", f"app-{i}", server=f"https://c{i}.example.com")
    server.put_application("team-a", "by-name", cluster_name="root-prod")
    configuration = Configuration()
    load_kube_config_from_dict(
        server.kubeconfig("app-reader"), client_configuration=configuration, temp_file_path=str(tmp_path)
    )
    custom = CustomObjectsApi(ApiClient(configuration))

    first = custom.list_namespaced_custom_object("argoproj.io", "v1alpha1", "argocd", "applications", limit=3)
    rest = custom.list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argocd", "applications", limit=3, _continue=first["metadata"]["continue"]
    )

    assert first["kind"] == "ApplicationList" and first["metadata"]["remainingItemCount"] == 2
    names = [a["metadata"]["name"] for a in first["items"] + rest["items"]]
    assert names == [f"app-{i}" for i in range(5)] and "continue" not in rest["metadata"]
    assert first["items"][0]["spec"]["destination"]["server"] == "https://c0.example.com"
    assert server.requests[-1].resource == APPLICATIONS and server.requests[-1].verb == "list"
    # No grant in team-a: refused with the group named, as the API server words it.
    with pytest.raises(ApiException) as caught:
        custom.list_namespaced_custom_object("argoproj.io", "v1alpha1", "team-a", "applications")
    assert caught.value.status == 403
    assert status_of(caught)["message"] == (
        'applications.argoproj.io is forbidden: User "app-reader" cannot list resource "applications" '
        'in API group "argoproj.io" in the namespace "team-a"'
    )
    # A grant on Secrets is not a grant on Applications, nor the other way round.
    reader = api_for(server, tmp_path, "app-reader")
    with pytest.raises(ApiException) as caught:
        reader.list_namespaced_secret("argocd")
    assert caught.value.status == 403
