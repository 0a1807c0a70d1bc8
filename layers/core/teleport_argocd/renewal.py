"""When a Secret is rewritten: a scheduled run renews a certificate by its age (`renewal_due`), and
any run rewrites what renders differently (`fingerprint`: labels, names, settings, the CA set)."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from teleport_argocd.argocd import RenderedSecret
from teleport_argocd.config.types import OutputConfig
from teleport_argocd.model import UPDATED_ANNOTATION

# A schedule fires late by up to a minute; renew that much early so a tick is never missed.
SCHEDULE_SLACK = timedelta(minutes=1)


def renewal_due(output: OutputConfig, cert_expires: datetime | None, now: datetime) -> bool:
    """Whether a scheduled run should rewrite a Secret whose certificate expires at `cert_expires`.

    Due once the certificate is `renewal_interval` old (tbot's rhythm), and in any case when
    it would not outlive the next scheduled run. Judged per registration, from what was really
    written, so no event-driven run between two ticks can postpone a renewal.
    """
    if cert_expires is None:
        return True
    remaining = cert_expires - now
    threshold = max(output.credential_ttl - output.renewal_interval, output.renewal_interval)
    return remaining <= threshold + SCHEDULE_SLACK


def fingerprint(secret: RenderedSecret) -> str:
    """A digest of everything rendered except what changes on every write (the time stamp and
    the client certificate and key), so a change of labels, names, CA or settings shows.

    The CA set enters twice: `caData` (the host CA's trusted certificates) and the user CA key that
    signed the certificate, so each rotation phase that changes either (`init`, `update_clients`,
    `rollback`, `standby`) rewrites every Secret in the run that first sees it, as tbot does.
    """
    meta = secret.manifest["metadata"]
    stable = {
        **_stable_data(secret),
        "labels": meta.get("labels") or {},
        "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if k != UPDATED_ANNOTATION},
    }
    return _digest(stable)


def data_fingerprint(secret: RenderedSecret) -> str:
    """The part of `fingerprint` that is not labels or annotations: where it is unchanged, a rewrite
    needs no new certificate (`destination.relabel`), and Argo CD's `config` stays byte for byte."""
    return _digest(_stable_data(secret))


def _stable_data(secret: RenderedSecret) -> dict[str, Any]:
    manifest = secret.manifest
    meta = manifest["metadata"]
    data: dict[str, Any] = dict(manifest.get("data") or {})
    if "config" in data:
        data["config"] = _stable_config(data["config"])
    return {"name": meta["name"], "namespace": meta["namespace"], "type": manifest.get("type"), "data": data}


def _digest(stable: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=8)
def _stable_config(config_b64: str) -> dict[str, Any]:
    """The `config` data without what changes on every write: the certificate becomes its signer,
    the key goes. Every Secret of a run carries the same `config`, so this is worked out once per
    run; the dict returned is shared between calls and only ever read (serialised)."""
    config = json.loads(base64.b64decode(config_b64))
    tls = dict(config.get("tlsClientConfig") or {})
    tls["certData"] = _signer(str(tls.get("certData", "")))
    tls.pop("keyData", None)
    return {**config, "tlsClientConfig": tls}


@functools.lru_cache(maxsize=8)
def _signer(cert_data: str) -> str:
    """The key that issued a base64 PEM certificate (its authority key identifier), not the certificate:
    one identity serves every Secret of a run, so this is worked out once per run.

    cryptography is imported here, not with the module: the schedules that only queue runs and the
    events dropped before a run never read a certificate, and it is 20-25 ms of their cold start.
    """
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(cert_data))
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except (ValueError, x509.ExtensionNotFound):
        return ""
    return (aki.key_identifier or b"").hex()
