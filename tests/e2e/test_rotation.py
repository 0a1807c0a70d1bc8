"""End to end through Teleport's CA rotations with a warm function: the same process, the same kept bot
identity, a discovery run after every phase change (`tctl auth rotate --manual`).

In every phase the Secrets written in it reach their cluster through the Teleport stand-in's
Kubernetes proxy exactly as Argo CD uses them (server, caData, certificate, key, serverName), and still
do after the next phase change, before any run has rewritten them: that is the window in which Argo CD
works with what was written (tbot rewrites within seconds, discovery within minutes).

The same with the proxy behind an L7 load balancer: every Teleport connection (join, rejoin, Auth)
passes through `/webapi/connectionupgrade`, where the proxy presents its host certificate, so the
kept trust must follow the host CA through the tunnel too; Argo CD reaches the clusters through the
proxy's dedicated Kubernetes listener, which presents a certificate of the host CA that serves.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from standins.handlers import event, invoke, unload_handlers
from standins.stack import ARGOCD_NAMESPACE, LocalStack
from teleport_argocd.argocd import secret_name
from teleport_argocd.teleport.tls import load_client_identity
from teleport_argocd.teleport.upgrade import ENV_VAR

CLUSTERS = ("prod-eu-west", "prod-us-east")
# (CA types, phase, whether the phase changes what a Secret holds: caData or the key signing certificates)
ROTATIONS = [
    ("all", "init", True),
    ("all", "update_clients", True),
    ("all", "update_servers", False),
    ("all", "standby", True),
    ("host", "init", True),
    ("host", "update_clients", True),
    ("host", "update_servers", False),
    ("host", "standby", True),
    ("host", "init", True),
    ("host", "update_clients", True),
    ("host", "update_servers", False),
    ("host", "rollback", True),
    ("host", "standby", True),
]


@pytest.fixture(params=["tls-routing", "behind-l7-lb"])
def stack(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStack]:
    # A stack of its own: a rotation changes the Teleport stand-in's CAs for every test using it.
    l7 = request.param == "behind-l7-lb"
    monkeypatch.delenv(ENV_VAR, raising=False)  # the upgrade is found by testing the proxy, as deployed
    options = {"teleport_behind_l7_lb": True, "teleport_kube_listener": True} if l7 else {}
    with LocalStack(**options) as stack, stack.environment():
        unload_handlers()
        yield stack


def _secrets(stack: LocalStack) -> dict[str, dict[str, Any]]:
    assert stack.kube is not None
    found = {}
    for cluster in CLUSTERS:
        secret = stack.kube.secret(ARGOCD_NAMESPACE, secret_name("teleport.argocd-cluster", "root", cluster))
        assert secret is not None, cluster
        found[cluster] = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return found


def _connect(data: dict[str, Any]) -> int:
    """`GET /version` the way Argo CD's client makes it from a cluster Secret."""
    tls = json.loads(data["config"])["tlsClientConfig"]
    server = urlsplit(data["server"])
    assert server.hostname is not None and server.port is not None
    context = ssl.create_default_context(cadata=base64.b64decode(tls["caData"]).decode())
    load_client_identity(context, base64.b64decode(tls["certData"]), base64.b64decode(tls["keyData"]))
    raw = socket.create_connection((server.hostname, server.port), timeout=10)
    conn = http.client.HTTPConnection(server.hostname, server.port, timeout=10)
    conn.sock = context.wrap_socket(raw, server_hostname=tls.get("serverName") or server.hostname)
    try:
        conn.request("GET", server.path + "/version", headers={"Accept": "application/json"})
        response = conn.getresponse()
        assert json.loads(response.read())["gitVersion"]
        return response.status
    finally:
        conn.close()


def test_secrets_connect_in_every_phase_of_two_rotations_and_a_rollback(stack: LocalStack) -> None:
    teleport = stack.teleport
    assert teleport is not None
    [output] = invoke("renew", event("schedule.json"))["outputs"]
    assert {c["action"] for c in output["clusters"]} == {"created"}
    [instance] = teleport.bot_instances()
    written = _secrets(stack)
    for ca_type, phase, changes in ROTATIONS:
        teleport.rotate(phase, ca_type=ca_type)
        # What was written in the previous phase still works now that this one began.
        for cluster, data in written.items():
            assert _connect(data) == 200, (ca_type, phase, cluster, "previous phase's Secret")
        [output] = invoke("renew", event("discovery.json"))["outputs"]
        assert output["status"] == ("completed" if changes else "idle"), (ca_type, phase, output)
        actions = {c["kube_cluster"]: (c["action"], c["reason"]) for c in output["clusters"]}
        if changes:
            # Every Secret rewritten in the run that first saw the phase, though discovery renews nothing.
            assert actions == {c: ("updated", "changed") for c in CLUSTERS}, (ca_type, phase)
        written = _secrets(stack)
        trusted = teleport.trusted_ca_pems("host")
        for cluster, data in written.items():
            ca_data = base64.b64decode(json.loads(data["config"])["tlsClientConfig"]["caData"])
            # caData is what tbot writes in this phase: every trusted host CA certificate, active first.
            assert ca_data == b"\n".join(trusted), (ca_type, phase)
            assert _connect(data) == 200, (ca_type, phase, cluster)
    # One warm process, one kept identity: Teleport counted a single bot instance throughout.
    assert [i.id for i in teleport.bot_instances()] == [instance.id]
    if teleport.behind_l7_lb:
        # Every Teleport connection went through the load balancer's upgrade, in every phase.
        assert teleport.conn_upgrades and set(teleport.conn_upgrades) == {"alpn-ping"}
        # And Argo CD's Secrets point at the proxy's Kubernetes listener, through which they connected.
        assert all(d["server"].startswith(f"https://{teleport.kube_addr}/") for d in written.values())


def test_a_warm_worker_that_missed_phases_up_to_update_servers_joins_afresh_and_writes_secrets_that_connect(
    stack: LocalStack,
) -> None:
    teleport = stack.teleport
    assert teleport is not None
    invoke("renew", event("schedule.json"))
    [first] = teleport.bot_instances()
    for phase in ("init", "update_clients", "update_servers"):
        teleport.rotate(phase, ca_type="host")  # no run in between: the kept trust is the old CA alone

    [output] = invoke("renew", event("discovery.json"))["outputs"]

    assert output["status"] == "completed" and not output["errors"], output
    assert {c["action"] for c in output["clusters"]} == {"updated"}
    # Auth's new certificate cannot be verified with what the bot last read: a fresh join, a new instance.
    assert [i.id for i in teleport.bot_instances()][-1] != first.id
    for cluster, data in _secrets(stack).items():
        ca_data = base64.b64decode(json.loads(data["config"])["tlsClientConfig"]["caData"])
        assert ca_data == b"\n".join(teleport.trusted_ca_pems("host")), cluster
        assert _connect(data) == 200, cluster
