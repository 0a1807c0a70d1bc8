"""How often each trigger changes a cluster Secret's `config`: each change costs Argo CD a cache rebuild.

    .venv/bin/python bench/rewrite_bench.py [--clusters 100] [--repeat 2] [--json] [--save FILE]

Argo CD's application controller watches cluster Secrets; when a Secret's `config` differs from the
one it holds (`reflect.DeepEqual(oldCluster.Config, newCluster.Config)` in `handleModEvent`,
controller/cache/cache.go), it gives the cluster's cache the new REST config, which invalidates it:
every watched resource of that cluster is listed again. A change of labels or annotations alone
does not. Every new client certificate is a new `config`.

One local stack with `--clusters` clusters and one warm process holding the renew, audit and
reload functions (outputs run inside the invocation), through this sequence, `--repeat` times:

- *discovery, nothing changed* (the every-2-minutes schedule);
- *scheduled renewal, nothing due* (the renewal schedule between two renewals of a certificate);
- *label change, then discovery*: one cluster's Teleport label that feeds the `secret_labels`
  template changes;
- *kube.create* of one new cluster, and *kube.update* of an existing one (audit events);
- *label change, then kube.update, in another process*: the audit function in an environment of its
  own (a second process that has written nothing), as on Lambda, where the worker writes renewals;
- *reload*, forced (`events/reload.json`);
- then, once: the configuration switched to `credential_ttl` equal to `renewal_interval` and a
  forced reload, so every certificate is due as soon as written (as any certificate is once it is
  `renewal_interval` old), and `--repeat` *scheduled renewals, every certificate due*.

Each step's Secrets are read from the Kubernetes stand-in before and after: how many it wrote, how
many of them got a different `config`, how many changed only in labels or annotations. How often
each trigger fires per day is `bench/cost.py`'s arithmetic; this bench measures what one firing does.
It also reports the size of the registration items and of the renewal ledgers in the state table
as DynamoDB counts it (the write and read units a renewal's write-back and a registry read cost,
which `bench/cost.py` reads from `--save`'s JSON).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "layers" / "core"), str(ROOT / "tests")]

from stacks import LABELS, clusters, function_env, kube_create  # noqa: E402
from warm import WRITE_METHODS, WarmFunction  # noqa: E402

from standins.handlers import event  # noqa: E402
from standins.kubeapi import KubeApiServer  # noqa: E402
from standins.stack import ARGOCD_NAMESPACE, STATE_TABLE, LocalStack, default_outputs  # noqa: E402

UPDATED_ANNOTATIONS = ("teleport.dev/updated",)  # a time stamp on every write, not a change of ours


@dataclass
class Step:
    """One trigger's effect on the Secrets that existed before it or that it created."""

    trigger: str
    secrets: int  # Secrets in the namespace after the step
    written: int  # Kubernetes writes (POST/PUT/PATCH) the step sent
    created: int
    config_changed: int  # existing Secrets whose data.config differs afterwards
    certificate_changed: int  # of those, with a new client certificate (tlsClientConfig.certData)
    metadata_only: int  # existing Secrets whose labels or annotations (time stamp aside) changed, config not


def _snapshot(kube: KubeApiServer, names: set[str]) -> dict[str, dict[str, Any]]:
    found = {name: kube.secret(ARGOCD_NAMESPACE, name) for name in names}
    return {name: secret for name, secret in found.items() if secret is not None}


def _metadata(secret: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    meta = secret["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in UPDATED_ANNOTATIONS}
    return meta.get("labels") or {}, annotations


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it: each attribute's name plus its value (strings and binaries
    their length, numbers about one byte per two digits plus one, 3 bytes per map or list and 1 per
    element), per https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
    """
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: dict[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "B":
        return len(base64.b64decode(inner))
    if kind == "N":
        return len(str(inner).lstrip("-").replace(".", "")) // 2 + 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_bytes({kind[0]: v}) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_bytes(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_value_bytes(v) + 1 for v in inner)
    return 1  # BOOL, NULL


def item_sizes(stack: LocalStack, prefix: str) -> list[int]:
    """The size of every item of the state table whose sort key starts with `prefix`: `reg#` for
    the registrations, `renewed#` for the renewal ledgers."""
    pages = stack.aws.client("dynamodb").get_paginator("scan").paginate(TableName=STATE_TABLE)
    items = [item for page in pages for item in page["Items"]]
    return sorted(item_bytes(i) for i in items if i.get("sk", {}).get("S", "").startswith(prefix))


def _certificate(secret: dict[str, Any]) -> str:
    config = json.loads(base64.b64decode(secret["data"]["config"]))
    return str(config["tlsClientConfig"]["certData"])


@dataclass
class Result:
    steps: list[Step]
    registration_bytes: list[int]  # every registration item's size at the end, sorted
    ledger_bytes: list[int]  # every renewal ledger's size at the end (after renewals of every cluster)


def measure(size: int, repeat: int, latency_ms: float = 0.0) -> Result:
    steps: list[Step] = []
    outputs = default_outputs()
    due_now = [{**outputs[0], "credential_ttl": "20m", "renewal_interval": "20m"}]
    with LocalStack(clusters=clusters(size), kube_latency=latency_ms / 1000) as stack:
        kube, teleport = stack.kube, stack.teleport
        assert kube is not None and teleport is not None
        names: set[str] = set()

        with (
            WarmFunction(function_env(stack), ["renew", "audit_event", "reload"]) as warm,
            WarmFunction(function_env(stack), ["audit_event"]) as other,
        ):

            def step(trigger: str, function: str, payload: dict[str, Any], via: WarmFunction = warm) -> None:
                before_requests = len(kube.requests)
                before = _snapshot(kube, names)
                answer = via.invoke(function, payload)["answer"]
                if "outputs" in answer and any(o.get("errors") for o in answer["outputs"]):
                    raise RuntimeError(f"{trigger}: the run failed: {answer['outputs']}")
                writes = [
                    r
                    for r in kube.requests[before_requests:]
                    if r.method in WRITE_METHODS and r.status < 300 and r.resource == "secrets"
                ]
                names.update(r.name for r in writes)
                after = _snapshot(kube, names)
                kept = [n for n in before if n in after]
                config = [n for n in kept if before[n]["data"]["config"] != after[n]["data"]["config"]]
                metadata = [
                    n for n in kept if n not in config and _metadata(before[n]) != _metadata(after[n])
                ]
                certificate = [n for n in config if _certificate(before[n]) != _certificate(after[n])]
                created = len(set(after) - set(before))
                counts = (len(config), len(certificate), len(metadata))
                steps.append(Step(trigger, len(after), len(writes), created, *counts))

            step("discovery: register every cluster", "renew", event("discovery.json"))
            for i in range(repeat):
                step("discovery, nothing changed", "renew", event("discovery.json"))
                step("scheduled renewal, nothing due", "renew", event("schedule.json"))
                teleport.update_kube_cluster("cluster-00000", labels={**LABELS, "team": f"moved-{i}"})
                step("label change, then discovery", "renew", event("discovery.json"))
                teleport.add_kube_cluster(f"enrolled-{i:03d}", labels=LABELS)
                step("kube.create (new cluster)", "audit_event", kube_create(f"enrolled-{i:03d}"))
                update = kube_create("cluster-00001")
                update["detail-type"] = update["detail"]["event"] = "kube.update"
                step("kube.update (existing cluster)", "audit_event", update)
                teleport.update_kube_cluster("cluster-00002", labels={**LABELS, "team": f"moved-{i}"})
                relabel = kube_create("cluster-00002", {**LABELS, "team": f"moved-{i}"})
                relabel["detail-type"] = relabel["detail"]["event"] = "kube.update"
                step("label change, then kube.update, in another process", "audit_event", relabel, other)
                step("reload, forced", "reload", event("reload.json"))
            # Certificates issued under credential_ttl = renewal_interval are due at every tick.
            stack.put_config(due_now)
            step("reload, forced, credential_ttl = renewal_interval", "reload", event("reload.json"))
            for _ in range(repeat):
                step("scheduled renewal, every certificate due", "renew", event("schedule.json"))
        return Result(steps, item_sizes(stack, "reg#"), item_sizes(stack, "renewed#"))


def markdown(result: Result, size: int) -> str:
    steps, sizes = result.steps, result.registration_bytes
    lines = [
        "| trigger | Secrets | Kubernetes writes | created | `config` changed | with a new certificate "
        "| labels/annotations only |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in steps:
        counts = (s.secrets, s.written, s.created, s.config_changed, s.certificate_changed, s.metadata_only)
        lines.append(f"| {s.trigger} | " + " | ".join(str(n) for n in counts) + " |")
    lines += [
        "",
        f"{size} clusters at the start; each step in order, as the stand-in's Secrets showed it. "
        f"Registration items: {sizes[0]} to {sizes[-1]} bytes (median {sizes[len(sizes) // 2]}) as DynamoDB "
        "counts them.",
        f"Renewal ledgers: {len(result.ledger_bytes)} items, {sum(result.ledger_bytes)} bytes in all "
        f"({sum(result.ledger_bytes) / max(1, len(sizes)):.0f} per registration).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead")
    parser.add_argument("--save", type=Path, help="also write the result as JSON here (for bench/cost.py)")
    args = parser.parse_args()
    result = measure(args.clusters, max(1, args.repeat), args.latency_ms)
    if args.save:
        args.save.write_text(json.dumps(asdict(result), indent=2) + "\n")
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(markdown(result, args.clusters))


if __name__ == "__main__":
    main()
