"""Destinations: the Argo CD cluster an output writes to, from the document or the deployment's environment.

The deployment's allow-lists (ALLOWED_EKS_CLUSTERS, ALLOWED_KUBECONFIG_SECRETS) are checked here,
so a destination the IAM policy would refuse is refused at load, with the parameter to change.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from teleport_argocd.config.problems import Reader
from teleport_argocd.config.types import (
    WRITE_MODES,
    Destination,
    EksDestination,
    KubeconfigSecretDestination,
    WriteMode,
)

DESTINATION_KEYS = ("eks", "kubeconfig_secret", "write_mode")
KINDS = ("eks", "kubeconfig_secret")
EKS_KEYS = ("cluster_name", "region")
KUBECONFIG_SECRET_KEYS = ("secret_id", "region", "context")
_EKS_CLUSTER_NAME = re.compile(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}")
_AWS_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d+")


def read_env_destination(reader: Reader) -> Destination | None:
    """The default destination from the deployment's DESTINATION_* variables, or None if unset."""
    cluster = reader.env.get("DESTINATION_EKS_CLUSTER")
    secret_id = reader.env.get("DESTINATION_KUBECONFIG_SECRET")
    region = reader.env.get("DESTINATION_REGION") or None
    if cluster and secret_id:
        reader.problem(
            "DESTINATION_EKS_CLUSTER",
            "set only one of DESTINATION_EKS_CLUSTER and DESTINATION_KUBECONFIG_SECRET",
        )
        return None
    if cluster:
        _eks_cluster_name(reader, cluster, "DESTINATION_EKS_CLUSTER")
        if region is None:
            reader.problem("DESTINATION_REGION", "required with DESTINATION_EKS_CLUSTER")
            return None
        _region(reader, region, "DESTINATION_REGION")
        eks = EksDestination(cluster, region)
        _allowed(reader, eks, "DESTINATION_EKS_CLUSTER")
        return eks
    if secret_id:
        if region is not None:
            _region(reader, region, "DESTINATION_REGION")
        secret = KubeconfigSecretDestination(secret_id, region, None)
        _allowed(reader, secret, "DESTINATION_KUBECONFIG_SECRET")
        return secret
    return None


def read_destination(reader: Reader, value: Any, path: str) -> Destination | None:
    """A `destination` mapping: exactly one of `eks` and `kubeconfig_secret`, and a `write_mode`."""
    section = reader.mapping(value, path, DESTINATION_KEYS)
    if section is None:
        return None
    kinds = [key for key in KINDS if section.get(key) is not None]
    if len(kinds) != 1:
        which = "one of" if not kinds else "only one of"
        reader.problem(path, f"{which} 'eks' and 'kubeconfig_secret' must be specified")
        return None
    mode = _write_mode(
        reader,
        reader.string(section.get("write_mode"), f"{path}.write_mode") or "apply",
        f"{path}.write_mode",
    )
    where = f"{path}.{kinds[0]}"
    found = (
        _eks(reader, section["eks"], where)
        if kinds[0] == "eks"
        else _kubeconfig_secret(reader, section["kubeconfig_secret"], where)
    )
    return None if found is None else replace(found, write_mode=mode)


def _write_mode(reader: Reader, value: str, path: str) -> WriteMode:
    for mode in WRITE_MODES:
        if value == mode:
            return mode
    reader.problem(path, f"must be one of {', '.join(WRITE_MODES)}, not {value!r}")
    return "apply"


def _eks(reader: Reader, value: Any, path: str) -> EksDestination | None:
    section = reader.mapping(value, path, EKS_KEYS)
    if section is None:
        return None
    cluster_name = reader.required_string(section, "cluster_name", path)
    region = reader.required_string(section, "region", path)
    _eks_cluster_name(reader, cluster_name, f"{path}.cluster_name")
    _region(reader, region, f"{path}.region")
    destination = EksDestination(cluster_name, region)
    _allowed(reader, destination, f"{path}.cluster_name")
    return destination


def _kubeconfig_secret(reader: Reader, value: Any, path: str) -> KubeconfigSecretDestination | None:
    section = reader.mapping(value, path, KUBECONFIG_SECRET_KEYS)
    if section is None:
        return None
    secret_id = reader.required_string(section, "secret_id", path)
    region = reader.string(section.get("region"), f"{path}.region") or None
    if region is not None:
        _region(reader, region, f"{path}.region")
    context = reader.string(section.get("context"), f"{path}.context") or None
    destination = KubeconfigSecretDestination(secret_id, region, context)
    _allowed(reader, destination, f"{path}.secret_id")
    return destination


def _allowed(reader: Reader, destination: Destination, path: str) -> None:
    """Refuse a destination the deployment does not allow, naming the template parameter to change.

    The IAM policy limits the same destinations; refusing here says why at load, not at the
    first write. Unset or empty lists allow everything (local runs have no template).
    """
    if isinstance(destination, EksDestination):
        clusters = _csv(reader.env.get("ALLOWED_EKS_CLUSTERS", ""))
        name, region = destination.cluster_name, destination.region
        if clusters and name and not {name, f"{region}/{name}"} & clusters:
            reader.problem(
                path,
                f"EKS cluster {region}/{name} is not allowed by this deployment"
                " (ALLOWED_EKS_CLUSTERS): add it to the template parameter AllowedEksClusters",
            )
    else:
        secrets = _csv(reader.env.get("ALLOWED_KUBECONFIG_SECRETS", ""))
        if secrets and destination.secret_id and destination.secret_id not in secrets:
            reader.problem(
                path,
                "this kubeconfig secret is not allowed by this deployment (ALLOWED_KUBECONFIG_SECRETS):"
                " name it by its full ARN and add the ARN to the template parameter"
                " AllowedKubeconfigSecretArns",
            )


def _eks_cluster_name(reader: Reader, value: str, path: str) -> None:
    if value and not _EKS_CLUSTER_NAME.fullmatch(value):
        reader.problem(path, f"{value!r} is not a valid EKS cluster name")


def _region(reader: Reader, value: str, path: str) -> None:
    if value and not _AWS_REGION.fullmatch(value):
        reader.problem(path, f"{value!r} is not an AWS region, e.g. eu-west-1")


def _csv(text: str) -> frozenset[str]:
    return frozenset(item.strip() for item in text.split(",") if item.strip())
