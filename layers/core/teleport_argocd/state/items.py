"""A registration as a DynamoDB item (`sk = "reg#<teleport cluster>#<kube cluster>"`) and back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from teleport_argocd.model import Absence, Registration, SecretVersion
from teleport_argocd.state.encoding import MAX_ERROR, iso, key, n, s, seconds, string, time_of, truncate

REG_TIMES = (
    "first_written",
    "last_written",
    "last_attempt",
    "cert_expires",
    "last_error_at",
    "unmatched_since",
    "deleted_at",
    "absence_seen",
    "connection_at",
    "relinquished_at",
)


def reg_item(reg: Registration) -> dict[str, Any]:
    item: dict[str, Any] = {
        **key(reg.output, reg_key(reg.teleport_cluster, reg.kube_cluster)),
        "teleport_cluster": s(reg.teleport_cluster),
        "kube_cluster": s(reg.kube_cluster),
        "secret_namespace": s(reg.secret_namespace),
        "secret_name": s(reg.secret_name),
        "server": s(reg.server),
        "labels": {"M": {k: s(v) for k, v in reg.labels.items()}},
        "fingerprint": s(reg.fingerprint),
        "matches": {"BOOL": reg.matches},
    }
    if reg.version is not None:
        item["secret_uid"] = s(reg.version.uid)
        item["resource_version"] = s(reg.version.resource_version)
    if reg.data_fingerprint:
        item["data_fingerprint"] = s(reg.data_fingerprint)
    if reg.cert_id:
        item["cert_id"] = s(reg.cert_id)
    if reg.last_error is not None:
        item["last_error"] = s(truncate(reg.last_error, MAX_ERROR))
    if reg.absence:
        item["absence"] = s(reg.absence.value)
    if reg.absence_banked:
        item["absence_banked"] = n(seconds(reg.absence_banked))
    if reg.connection:
        item["connection"] = s(reg.connection)
        item["connection_message"] = s(truncate(reg.connection_message, MAX_ERROR))
    if reg.refusals:
        item["refusals"] = n(reg.refusals)
    if reg.cluster_name:
        item["cluster_name"] = s(reg.cluster_name)
    if reg.held_by:
        item["held_by"] = {"L": [s(a) for a in reg.held_by]}
    for name in REG_TIMES:
        moment = getattr(reg, name)
        if moment is not None:
            item[name] = s(iso(moment))
    return item


def registration(output: str, item: Mapping[str, Any]) -> Registration:
    uid, resource_version = string(item, "secret_uid"), string(item, "resource_version")
    return Registration(
        output=output,
        teleport_cluster=item["teleport_cluster"]["S"],
        kube_cluster=item["kube_cluster"]["S"],
        secret_namespace=string(item, "secret_namespace") or "",
        secret_name=string(item, "secret_name") or "",
        server=string(item, "server") or "",
        labels={k: v["S"] for k, v in item.get("labels", {}).get("M", {}).items()},
        fingerprint=string(item, "fingerprint") or "",
        data_fingerprint=string(item, "data_fingerprint") or "",
        cert_id=string(item, "cert_id") or "",
        # An empty resourceVersion is the store's way of saying "read before the next write".
        version=SecretVersion(uid, resource_version or "") if uid else None,
        matches=item["matches"]["BOOL"],
        last_error=string(item, "last_error"),
        absence=_absence(item),
        absence_banked=_duration(item, "absence_banked"),
        connection=string(item, "connection") or "",
        connection_message=string(item, "connection_message") or "",
        refusals=int(item["refusals"]["N"]) if "refusals" in item else 0,
        cluster_name=string(item, "cluster_name") or "",
        held_by=tuple(v["S"] for v in item.get("held_by", {}).get("L", ()) if "S" in v),
        **{name: time_of(item, name) for name in REG_TIMES},
    )


def _absence(item: Mapping[str, Any]) -> Absence:
    """The stored evidence; a value this version does not know counts as the weakest (vanished)."""
    value = string(item, "absence") or ""
    return Absence(value) if value in Absence._value2member_map_ else Absence.VANISHED


def _duration(item: Mapping[str, Any], name: str) -> timedelta:
    return timedelta(microseconds=int(Decimal(item[name]["N"]).scaleb(6))) if name in item else timedelta(0)


def reg_sk(reg: Registration) -> str:
    return reg_key(reg.teleport_cluster, reg.kube_cluster)


def reg_key(teleport_cluster: str, kube_cluster: str) -> str:
    return f"reg#{teleport_cluster}#{kube_cluster}"
