"""The `teleport` section: how to reach and join the Teleport cluster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from teleport_argocd.config.problems import Reader
from teleport_argocd.config.types import TeleportConfig

TELEPORT_KEYS = ("proxy_addr", "join_token", "insecure", "ca_pem")


def read_teleport(reader: Reader, value: Any) -> TeleportConfig | None:
    """The `teleport` section; proxy_addr and join_token may come from the environment instead."""
    section = reader.mapping({} if value is None else value, "teleport", TELEPORT_KEYS) or {}
    proxy_addr = _from_env(reader, section, "proxy_addr", "teleport", "TELEPORT_PROXY_ADDR")
    join_token = _from_env(reader, section, "join_token", "teleport", "TELEPORT_JOIN_TOKEN")
    insecure = reader.boolean(section.get("insecure"), "teleport.insecure")
    ca_pem = reader.string(section.get("ca_pem"), "teleport.ca_pem") or None
    if ca_pem is not None and "-----BEGIN CERTIFICATE-----" not in ca_pem:
        reader.problem(
            "teleport.ca_pem", "expected one or more PEM certificates (-----BEGIN CERTIFICATE-----)"
        )
    if proxy_addr is None or join_token is None:
        return None
    return TeleportConfig(_proxy_addr(reader, *proxy_addr), join_token[0], insecure, ca_pem)


def _from_env(
    reader: Reader, section: Mapping[str, Any], key: str, path: str, variable: str
) -> tuple[str, str] | None:
    """A required string from the document, else from `variable`; returns it with where it came from."""
    path = f"{path}.{key}"
    if section.get(key) not in (None, ""):
        value = reader.string(section[key], path)
        return (value, path) if value else None
    if reader.env.get(variable):
        return reader.env[variable], variable
    reader.problem(path, "required")
    return None


def _proxy_addr(reader: Reader, value: str, path: str) -> str:
    """Normalise host[:port] to host:port (443 by default)."""
    if "://" in value or any(c in value for c in "/?#@ "):
        reader.problem(
            path,
            f"expected host[:port] without scheme or path, e.g. teleport.example.com:443, got {value!r}",
        )
        return value
    try:
        parts = urlsplit(f"//{value}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        reader.problem(path, f"expected host[:port], got {value!r}: {exc}")
        return value
    if not host or port == 0:
        reader.problem(path, f"expected host[:port], got {value!r}")
        return value
    netloc = parts.netloc
    return netloc if port is not None else f"{netloc.rstrip(':')}:443"
