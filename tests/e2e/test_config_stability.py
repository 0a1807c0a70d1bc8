"""End to end, one warm process: a Secret's `config` changes only for a new certificate or CA.

Argo CD's application controller invalidates a cluster's cache and lists every resource of it again
whenever the cluster Secret's `config` changes (`reflect.DeepEqual(oldCluster.Config,
newCluster.Config)` in `handleModEvent`, argoproj/argo-cd controller/cache/cache.go); labels and
annotations alone do not. Discovery runs through the worker (the schedule queues them), events
through the audit function; between invocations the world changes: a Teleport label, a
`kube.update`, a host CA rotation, and certificates that are due as soon as written.

The stand-ins run every function in this one process; on Lambda each function has execution
environments of its own, and only the environment that wrote a certificate holds it
(`teleport_argocd.kept_identity`). A change of labels alone needs none (`SecretStore.relabel`), so
the audit function's events here are handled as Lambda would, by an environment that holds nothing
the worker wrote (`KEPT.forget()` before each).
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from standins.handlers import drain_runs, event, invoke, unload_handlers
from standins.stack import ARGOCD_NAMESPACE, LocalStack, default_outputs
from teleport_argocd.argocd import secret_name
from teleport_argocd.kept_identity import KEPT

CLUSTERS = ("prod-us-east", "prod-eu-west")


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    # A stack of its own: a rotation changes the Teleport stand-in's CAs for every test using it.
    with LocalStack(fan_out=True) as stack, stack.environment():
        unload_handlers()
        KEPT.forget()  # a process that has written nothing yet
        yield stack


def discovery(stack: LocalStack) -> None:
    assert invoke("renew", {**event("schedule.json"), "trigger": "discovery"})["status"] == "queued"
    assert drain_runs(stack.queue_url, stack.aws.client("sqs")) == [{"batchItemFailures": []}]


def secrets(stack: LocalStack) -> dict[str, dict[str, Any]]:
    """The Secrets of CLUSTERS now (a missing one is a KeyError at its use)."""
    assert stack.kube is not None
    names = {c: secret_name("teleport.argocd-cluster", "root", c) for c in CLUSTERS}
    found = {c: stack.kube.secret(ARGOCD_NAMESPACE, name) for c, name in names.items()}
    return {c: secret for c, secret in found.items() if secret is not None}


def tls(secret: dict[str, Any]) -> dict[str, str]:
    config: dict[str, dict[str, str]] = json.loads(base64.b64decode(secret["data"]["config"]))
    return config["tlsClientConfig"]


def kube_update(name: str, labels: dict[str, str]) -> dict[str, Any]:
    payload = copy.deepcopy(event("kube_create.json"))
    payload["detail-type"] = "kube.update"
    payload["detail"].update(event="kube.update", uid=str(uuid.uuid4()), name=name, kube_labels=labels)
    return payload


def test_config_changes_only_for_a_new_certificate_or_ca(stack: LocalStack) -> None:
    teleport, kube = stack.teleport, stack.kube
    assert teleport is not None and kube is not None
    assert invoke("renew", event("schedule.json"))["status"] == "queued"
    drain_runs(stack.queue_url, stack.aws.client("sqs"))
    first = secrets(stack)

    # A label that feeds secret_labels changes in Teleport: discovery rewrites that Secret's labels.
    teleport.update_kube_cluster("prod-us-east", labels={"env": "prod", "team": "checkout"})
    discovery(stack)
    relabelled = secrets(stack)
    assert relabelled["prod-us-east"]["metadata"]["labels"]["team"] == "checkout"
    assert (
        relabelled["prod-us-east"]["metadata"]["resourceVersion"]
        != first["prod-us-east"]["metadata"]["resourceVersion"]
    )
    assert relabelled["prod-us-east"]["data"]["config"] == first["prod-us-east"]["data"]["config"]
    assert relabelled["prod-eu-west"] == first["prod-eu-west"]

    # A kube.update that changes nothing rendered writes nothing at all.
    KEPT.forget()
    [output] = invoke("audit_event", kube_update("prod-eu-west", {"env": "prod", "team": "platform"}))[
        "outputs"
    ]
    assert output["clusters"] == [] and output["counts"]["unchanged"] == 1
    assert secrets(stack)["prod-eu-west"] == first["prod-eu-west"]

    # The audit function's environment did not write the Secret and holds no certificate: a
    # kube.update that changes its labels writes them alone, and `config` stays; twice.
    for team in ("platform-2", "search"):
        KEPT.forget()
        teleport.update_kube_cluster("prod-eu-west", labels={"env": "prod", "team": team})
        [output] = invoke("audit_event", kube_update("prod-eu-west", {"env": "prod", "team": team}))[
            "outputs"
        ]
        assert [(c["kube_cluster"], c["action"]) for c in output["clusters"]] == [("prod-eu-west", "updated")]
        assert secrets(stack)["prod-eu-west"]["metadata"]["labels"]["team"] == team
    updated = secrets(stack)
    assert updated["prod-eu-west"]["data"]["config"] == first["prod-eu-west"]["data"]["config"]

    # A host CA rotation begins: every Secret gets the new CA set and a certificate of this run.
    teleport.rotate("init", ca_type="host")
    discovery(stack)
    rotated = secrets(stack)
    trusted = b"\n".join(teleport.trusted_ca_pems("host"))
    for cluster in CLUSTERS:
        assert base64.b64decode(tls(rotated[cluster])["caData"]) == trusted
        assert tls(rotated[cluster])["certData"] != tls(updated[cluster])["certData"], cluster

    # credential_ttl = renewal_interval: each certificate is due as soon as written, so even a label
    # change must write a new one (the kept certificate is never used past its renewal).
    stack.put_config([{**default_outputs()[0], "credential_ttl": "20m", "renewal_interval": "20m"}])
    invoke("reload", event("reload.json"))
    reloaded = secrets(stack)
    teleport.update_kube_cluster("prod-us-east", labels={"env": "prod", "team": "payments"})
    discovery(stack)
    due = secrets(stack)
    assert due["prod-us-east"]["metadata"]["labels"]["team"] == "payments"
    assert tls(due["prod-us-east"])["certData"] != tls(reloaded["prod-us-east"])["certData"]
    assert due["prod-eu-west"] == reloaded["prod-eu-west"]
