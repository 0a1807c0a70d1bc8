"""A full reconcile on the local stand-ins: `make demo`.

Starts moto, the Teleport stand-in and the Kubernetes stand-in (tests/standins), then
invokes the real handlers with the files in events/: a scheduled renewal fanned out to the
worker, an Event Handler POST through the ingest function and the bus to the audit function
(arriving before its cluster is listed), a duplicate and a malformed event, a cluster that
joins without any event found by discovery, and a dry-run reload. Prints what Argo CD would
list and stops everything it started.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "core"), str(ROOT / "tests")]
# Quiet structured logs: the demo prints its own summary of each step.
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

from cryptography import x509  # noqa: E402

from standins.handlers import (  # noqa: E402
    LambdaContext,
    deliver_audit_events,
    drain_runs,
    event,
    invoke,
    load_handler,
)
from standins.stack import STATE_TABLE, LocalStack  # noqa: E402
from teleport_argocd.state import StateStore  # noqa: E402

ARGO_LABEL = "argocd.argoproj.io/secret-type"


def argocd_clusters(stack: LocalStack) -> list[tuple[str, str, str, str]]:
    """(Secret, name, server, certificate expiry) of every cluster Secret recorded in the state table."""
    assert stack.kube is not None
    state = StateStore(STATE_TABLE, client=stack.aws.client("dynamodb"))
    rows = []
    for reg in state.registrations("production"):
        secret = stack.kube.secret(reg.secret_namespace, reg.secret_name)
        if secret is None or secret["metadata"].get("labels", {}).get(ARGO_LABEL) != "cluster":
            continue
        name = reg.secret_name
        data = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
        tls = json.loads(data["config"])["tlsClientConfig"]
        cert = x509.load_pem_x509_certificate(base64.b64decode(tls["certData"]))
        rows.append((name, data["name"], data["server"], cert.not_valid_after_utc.isoformat()))
    return sorted(rows, key=lambda r: r[1])


def show(title: str, rows: list[tuple[str, ...]]) -> None:
    print(f"\n{title}")
    if not rows:
        print("  (none)")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  " + "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)))


def summary(result: dict) -> str:
    parts = []
    for out in result.get("outputs", []):
        clusters = ", ".join(f"{c['kube_cluster']}={c['action']}" for c in out["clusters"]) or "no clusters"
        parts.append(f"output {out['output']}: {out['status']} ({clusters})")
    return "; ".join(parts) or json.dumps(result)


def post_event(name: str, labels: dict[str, str]) -> dict:
    """What Teleport's Event Handler plugin sends: one audit event as the body of an HTTPS POST,
    here wrapped as API Gateway's HTTP API hands it to the ingest function (events/ingest_http.json)."""
    payload = copy.deepcopy(event("ingest_http.json"))
    body = json.loads(payload["body"])
    body.update(uid=str(uuid.uuid4()), name=name, kube_labels=labels)
    payload["body"] = json.dumps(body)
    return payload


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    print("Starting moto (DynamoDB, SSM, Secrets Manager, SQS, EventBridge; STS with signature checks),")
    print("the Teleport stand-in and the Kubernetes stand-in where Argo CD runs ...")
    with LocalStack(fan_out=True, audit_bus=True) as stack, stack.environment():
        assert stack.teleport is not None and stack.kube is not None
        os.environ["EVENT_LISTING_WAIT_SECONDS"] = "20"
        sqs = stack.aws.client("sqs")
        print(f"Teleport proxy {stack.teleport.proxy_addr}; kube clusters: " + ", ".join(stack.clusters))
        print("Selectors of output 'production': labels env=prod, labels team=platform")

        print("\n1. Scheduled renewal (events/schedule.json): one queued run per output, then the worker")
        print("   schedule: " + json.dumps(invoke("renew", event("schedule.json"))))
        answers = drain_runs(stack.queue_url, sqs)
        failed = sum(len(a["batchItemFailures"]) for a in answers)
        print(f"   worker: {len(answers)} invocation(s), {failed} failed")
        show("   Argo CD would list:", [r[1:] for r in argocd_clusters(stack)])

        print("\n2. staging-eu is created in Teleport: the Event Handler POSTs kube.create before the agent")
        print("   heartbeats the cluster; ingest function -> EventBridge bus -> audit rule -> audit function")
        labels = {"env": "staging", "team": "platform"}
        ingest = load_handler("ingest").http_handler
        answer = ingest(
            post_event("staging-eu", labels), LambdaContext(function_name="teleport-argocd-ingest")
        )
        print(f"   ingest answered {answer['statusCode']} (the plugin counts only 200 as delivered)")
        heartbeat = threading.Timer(2.0, stack.teleport.add_kube_cluster, ("staging-eu",), {"labels": labels})
        heartbeat.start()
        started = time.monotonic()
        [(delivered, result)] = deliver_audit_events(stack.audit_queue_url, sqs)
        heartbeat.join()
        waited = time.monotonic() - started
        print(f"   the audit function waited for the listing; done in {waited:.1f} s: " + summary(result))
        requests = len(stack.kube.requests)
        again = invoke("audit_event", delivered)
        print(
            "   the same event again (at-least-once delivery): stored result returned, "
            f"{len(stack.kube.requests) - requests} Kubernetes requests made"
            + ("" if again == result else " (unexpected: result differs)")
        )

        print("\n3. A malformed event (events/malformed.json) is logged and dropped, not retried")
        print("   " + json.dumps(invoke("audit_event", event("malformed.json"))))

        print("\n4. prod-apac joins through the kube agent chart: heartbeats only, no audit event")
        print("   discovery before it joins: " + json.dumps(invoke("renew", event("discovery.json"))), end="")
        requests = len(stack.kube.requests)
        drain_runs(stack.queue_url, sqs)
        print(f" -> {len(stack.kube.requests) - requests} Kubernetes requests (nothing changed)")
        stack.teleport.add_kube_cluster("prod-apac", labels={"env": "prod", "team": "payments"})
        invoke("renew", event("discovery.json"))
        requests = len(stack.kube.requests)
        drain_runs(stack.queue_url, sqs)
        made = len(stack.kube.requests) - requests
        listed = "root-prod-apac" in {row[1] for row in argocd_clusters(stack)}
        print(f"   next discovery run: {made} Kubernetes request(s); prod-apac registered: {listed}")

        print(
            "\n5. prod-us-east leaves the selection (relabelled env=retired); dry-run reload shows the plan"
        )
        stack.teleport.update_kube_cluster("prod-us-east", labels={"env": "retired", "team": "payments"})
        result = invoke("reload", {**event("reload_dry_run.json"), "force": False})
        print("   " + summary(result) + "  (nothing written)")

        show(
            "What Argo CD would list (NAME, SERVER, CERTIFICATE EXPIRES):",
            [r[1:] for r in argocd_clusters(stack)],
        )
        show(
            "State in DynamoDB (CLUSTER, SECRET, LAST WRITE, MATCHES):",
            [
                (r["kube_cluster"], r["secret_name"], r["last_written"] or "-", str(r["matches"]))
                for out in result["status"]["outputs"]
                for r in out["registrations"]
            ],
        )
        bot = result["status"]["teleport"]
        print(
            f"\nTeleport bot instance {bot['bot_instance_id']}: {bot['joins_in_last_hour']} join(s) this hour"
        )
        print(f"Demo finished at {datetime.now(UTC):%H:%M:%S} UTC; stopping every server it started.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
