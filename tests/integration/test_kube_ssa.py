"""Server-side apply in the Kubernetes stand-in, one documented fact per test.

Facts from kubernetes.io/docs/reference/using-api/server-side-apply (named in each docstring),
checked over HTTPS with raw requests as a client sends them.
"""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3

from standins.kubeapi import KubeApiServer

NS = "argocd"


@pytest.fixture(scope="module")
def server() -> Iterator[KubeApiServer]:
    with KubeApiServer() as s:
        s.allow(user="patcher", verbs=["patch"], namespaces=[NS])
        yield s


class Client:
    def __init__(self, server: KubeApiServer, user: str, groups: tuple[str, ...] = ()) -> None:
        cert, key = server.client_credentials(user, groups)
        context = ssl.create_default_context(cadata=server.ca_pem.decode())
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "c").write_bytes(cert + key)
            context.load_cert_chain(str(Path(tmp) / "c"))
        self.pool = urllib3.PoolManager(ssl_context=context, server_hostname=server.hostname)
        self.url = server.url

    def request(
        self, method: str, name: str, body: Any = None, *, content_type: str = "", query: str = ""
    ) -> tuple[int, dict[str, Any]]:
        path = f"/api/v1/namespaces/{NS}/secrets/{name}"
        headers = {"Content-Type": content_type} if content_type else {}
        data = json.dumps(body).encode() if body is not None else None
        answer = self.pool.request(method, self.url + path + query, body=data, headers=headers)
        return answer.status, json.loads(answer.data)

    def apply(self, name: str, body: dict[str, Any], manager: str, *, force: bool = False) -> tuple[int, Any]:
        query = f"?fieldManager={manager}" + ("&force=true" if force else "")
        return self.request("PATCH", name, body, content_type="application/apply-patch+yaml", query=query)

    def get(self, name: str) -> dict[str, Any]:
        return self.request("GET", name)[1]


@pytest.fixture
def admin(server: KubeApiServer) -> Client:
    return Client(server, "admin", ("system:masters",))


def secret(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if labels is not None:
        meta["labels"] = labels
    if annotations is not None:
        meta["annotations"] = annotations
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": meta}
    if data is not None:
        body["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return body


def owners(obj: dict[str, Any]) -> dict[tuple[str, str], Any]:
    return {(e["manager"], e["operation"]): e["fieldsV1"] for e in obj["metadata"].get("managedFields", [])}


def test_apply_creates_an_absent_object_and_records_its_manager(admin: Client) -> None:
    """ "[An apply] either creates a new object ... or is combined ... with the existing object";
    "metadata.managedFields" records each manager, its operation (Apply) and fields (FieldsV1)."""
    status, created = admin.apply(
        "ssa-create", secret("ssa-create", labels={"a": "1"}, data={"k": "v"}), "me"
    )
    assert status == 201
    assert owners(created) == {
        ("me", "Apply"): {"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}}}
    }
    assert created["metadata"]["managedFields"][0]["fieldsType"] == "FieldsV1"
    assert admin.get("ssa-create")["metadata"]["labels"] == {"a": "1"}


def test_apply_requires_a_field_manager(admin: Client) -> None:
    """ "Server-Side Apply requires a client to provide its identity as a field manager"
    (fieldManager is required for apply patch)."""
    status, answer = admin.request(
        "PATCH", "ssa-no-manager", secret("ssa-no-manager"), content_type="application/apply-patch+yaml"
    )
    assert status == 422 and "fieldManager" in answer["message"]


def test_maps_are_granular_each_key_owned_separately(admin: Client) -> None:
    """Labels, annotations and Secret data are granular maps: two managers applying different
    keys of one map both keep theirs."""
    admin.apply("ssa-maps", secret("ssa-maps", labels={"a": "1"}, data={"x": "1"}), "one")
    status, both = admin.apply("ssa-maps", secret("ssa-maps", labels={"b": "2"}, data={"y": "2"}), "two")
    assert status == 200
    assert both["metadata"]["labels"] == {"a": "1", "b": "2"}
    assert set(both["data"]) == {"x", "y"}
    assert owners(both)[("two", "Apply")] == {"f:data": {"f:y": {}}, "f:metadata": {"f:labels": {"f:b": {}}}}


def test_a_field_another_manager_owns_with_another_value_is_a_conflict(admin: Client) -> None:
    """ "Fields that have a different value and are owned by another manager will result in a
    conflict": 409, reason Conflict, the field and the other manager named."""
    admin.apply("ssa-conflict", secret("ssa-conflict", labels={"team": "a"}), "one")
    status, answer = admin.apply("ssa-conflict", secret("ssa-conflict", labels={"team": "b"}), "two")
    assert (status, answer["reason"]) == (409, "Conflict")
    assert answer["message"] == 'Apply failed with 1 conflict: conflict with "one": .metadata.labels.team'
    assert answer["details"]["causes"] == [
        {"reason": "FieldManagerConflict", "message": 'conflict with "one"', "field": ".metadata.labels.team"}
    ]
    assert admin.get("ssa-conflict")["metadata"]["labels"] == {"team": "a"}  # nothing changed


def test_the_same_value_is_no_conflict_and_shares_ownership(admin: Client) -> None:
    """A field applied with the value it already has is shared: both managers own it."""
    admin.apply("ssa-share", secret("ssa-share", labels={"team": "a"}), "one")
    status, shared = admin.apply("ssa-share", secret("ssa-share", labels={"team": "a"}), "two")
    assert status == 200
    assert {k for k, v in owners(shared).items() if "f:team" in v["f:metadata"]["f:labels"]} == {
        ("one", "Apply"),
        ("two", "Apply"),
    }


def test_force_overwrites_and_takes_ownership(admin: Client) -> None:
    """ "Conflicts can be forced, in which case the value will be overridden, and the ownership
    will be transferred" (`force=true`)."""
    admin.apply("ssa-force", secret("ssa-force", labels={"team": "a", "keep": "1"}), "one")
    status, forced = admin.apply("ssa-force", secret("ssa-force", labels={"team": "b"}), "two", force=True)
    assert status == 200
    assert forced["metadata"]["labels"] == {"team": "b", "keep": "1"}
    assert owners(forced)[("one", "Apply")] == {"f:metadata": {"f:labels": {"f:keep": {}}}}
    assert owners(forced)[("two", "Apply")] == {"f:metadata": {"f:labels": {"f:team": {}}}}


def test_a_key_no_longer_applied_is_removed_unless_another_manager_owns_it(admin: Client) -> None:
    """ "If the set of items present in the applied config is not a superset of the items applied
    by the same user last time, each missing item not managed by any other appliers is removed."""
    admin.apply("ssa-remove", secret("ssa-remove", labels={"a": "1", "b": "2"}, data={"x": "1"}), "one")
    admin.apply("ssa-remove", secret("ssa-remove", labels={"b": "2"}), "two")  # shares b
    status, after = admin.apply("ssa-remove", secret("ssa-remove", labels={}), "one")
    assert status == 200
    assert after["metadata"]["labels"] == {"b": "2"}  # a removed; b kept, two still owns it
    assert "data" not in after or not after["data"]
    assert ("one", "Apply") not in owners(after)


def test_an_update_moves_ownership_of_what_it_changes_and_never_conflicts(admin: Client) -> None:
    """ "When a field's value changes, ownership moves from its current manager to the manager
    making the change"; "only the apply operation fails on conflicts while update does not"."""
    admin.apply("ssa-update", secret("ssa-update", labels={"team": "a", "x": "1"}), "one")
    status, updated = admin.request(
        "PATCH",
        "ssa-update",
        {"metadata": {"labels": {"team": "edited"}}},
        content_type="application/merge-patch+json",
        query="?fieldManager=kubectl-edit",
    )
    assert status == 200
    assert owners(updated)[("kubectl-edit", "Update")] == {"f:metadata": {"f:labels": {"f:team": {}}}}
    assert owners(updated)[("one", "Apply")] == {"f:metadata": {"f:labels": {"f:x": {}}}}
    status, answer = admin.apply("ssa-update", secret("ssa-update", labels={"team": "a", "x": "1"}), "one")
    assert status == 409 and 'conflict with "kubectl-edit" using v1' in answer["message"]


def test_clearing_managed_fields(admin: Client) -> None:
    """ "Clearing managedFields": a non-apply write of `managedFields: [{}]` strips every entry; an
    empty list changes nothing. A first apply then finds every existing field owned by
    `before-first-apply` (the API server's field manager)."""
    admin.apply("ssa-clear", secret("ssa-clear", labels={"team": "a"}), "one")
    status, kept = admin.request(
        "PATCH",
        "ssa-clear",
        [{"op": "replace", "path": "/metadata/managedFields", "value": []}],
        content_type="application/json-patch+json",
    )
    assert status == 200 and owners(kept)
    status, cleared = admin.request(
        "PATCH",
        "ssa-clear",
        [{"op": "replace", "path": "/metadata/managedFields", "value": [{}]}],
        content_type="application/json-patch+json",
    )
    assert status == 200 and not cleared["metadata"].get("managedFields")
    status, answer = admin.apply("ssa-clear", secret("ssa-clear", labels={"team": "b"}), "two")
    assert status == 409 and 'conflict with "before-first-apply" using v1' in answer["message"]


def test_a_json_patch_that_does_not_apply_is_422(admin: Client) -> None:
    """A JSON patch (RFC 6902) whose `test` fails or that removes a missing key changes nothing
    and is answered 422 (k8s.io/apiserver `applyJSPatch`)."""
    admin.apply("ssa-json", secret("ssa-json", annotations={"owner": "tbot"}), "one")
    for op in (
        {"op": "test", "path": "/metadata/annotations/owner", "value": "someone"},
        {"op": "remove", "path": "/metadata/annotations/missing"},
    ):
        status, _ = admin.request("PATCH", "ssa-json", [op], content_type="application/json-patch+json")
        assert status == 422
    assert admin.get("ssa-json")["metadata"]["annotations"] == {"owner": "tbot"}


def test_an_apply_that_creates_is_also_authorised_as_create(server: KubeApiServer) -> None:
    """An apply of an absent object needs `create` besides `patch` (k8s.io/apiserver patch.go:
    the create path is authorised with verb create)."""
    patcher = Client(server, "patcher")
    status, answer = patcher.apply("ssa-authz", secret("ssa-authz"), "me")
    assert (status, answer["reason"]) == (403, "Forbidden")
    assert 'cannot create resource "secrets"' in answer["message"]


def test_resource_version_in_an_apply_is_a_precondition(admin: Client) -> None:
    """A `metadata.resourceVersion` in the applied object is checked like any update's: the apply
    patcher merges the body into the live object, the body's value winning (k8s.io/apiserver
    endpoints/handlers/patch.go `applyPatcher`, and the Server-Side Apply docs' merge strategy), and
    the store's update refuses a result whose resourceVersion is not the stored one with 409
    "the object has been modified" (registry/generic/registry/store.go `Update`)."""
    _, first = admin.apply("ssa-rv", secret("ssa-rv", labels={"a": "1"}), "one")
    stale = secret("ssa-rv", labels={"a": "2"})
    stale["metadata"]["resourceVersion"] = "1"
    status, answer = admin.apply("ssa-rv", stale, "one")
    assert status == 409 and "the object has been modified" in answer["message"]
    fresh = secret("ssa-rv", labels={"a": "2"})
    fresh["metadata"]["resourceVersion"] = first["metadata"]["resourceVersion"]
    assert admin.apply("ssa-rv", fresh, "one")[0] == 200


def test_a_no_op_apply_keeps_the_resource_version(admin: Client) -> None:
    """An apply that changes nothing writes nothing: the resourceVersion stays."""
    _, first = admin.apply("ssa-noop", secret("ssa-noop", labels={"a": "1"}), "one")
    _, again = admin.apply("ssa-noop", secret("ssa-noop", labels={"a": "1"}), "one")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
