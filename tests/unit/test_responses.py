"""A reload's answer stays under Lambda's 6 MB response limit, cut with a count of what was left out."""

from __future__ import annotations

import json

from teleport_argocd import responses


def registration(i: int) -> dict[str, object]:
    return {"kube_cluster": f"cluster-{i:05d}", "labels": {"env": "prod", "note": "x" * 300}}


def test_an_answer_under_the_limit_is_returned_as_it_is() -> None:
    payload = {"outputs": [{"output": "a", "clusters": [registration(1)]}]}
    assert responses.fit(payload) is payload


def test_twenty_thousand_registrations_are_cut_to_fit_with_a_count() -> None:
    registrations = [registration(i) for i in range(20_000)]
    payload = {
        "outputs": [{"output": "main", "clusters": [registration(i) for i in range(100)]}],
        "status": {"outputs": [{"output": "main", "registrations": registrations}]},
    }
    assert responses.size_of(payload) > 6_000_000

    cut = responses.fit(payload)

    assert len(json.dumps(cut).encode()) <= responses.MAX_RESPONSE_BYTES
    [status] = cut["status"]["outputs"]
    assert len(status["registrations"]) + status["registrations_left_out"] == 20_000
    assert status["registrations"][0]["kube_cluster"] == "cluster-00000"
    assert cut["outputs"][0]["clusters"] == payload["outputs"][0]["clusters"]  # short lists stay whole
    assert "clusters_left_out" not in cut["outputs"][0]
