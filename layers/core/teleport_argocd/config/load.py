"""Loading a whole document: each section read by its own module, every problem collected."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from teleport_argocd.config.destination import read_destination, read_env_destination
from teleport_argocd.config.output import read_outputs
from teleport_argocd.config.problems import Reader
from teleport_argocd.config.teleport import read_teleport
from teleport_argocd.config.types import Config
from teleport_argocd.config.yamldoc import read_yaml
from teleport_argocd.errors import ConfigError

ROOT_KEYS = ("teleport", "destination", "outputs")


def load_config(source: str | Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Parse and validate a configuration document (YAML text or already-parsed data).

    `env` (default: the process environment) fills what the document leaves out, as the SAM
    template passes deployment parameters: TELEPORT_PROXY_ADDR and TELEPORT_JOIN_TOKEN;
    DESTINATION_EKS_CLUSTER with DESTINATION_REGION, or DESTINATION_KUBECONFIG_SECRET (with an
    optional DESTINATION_REGION), for outputs without a destination when the document has no
    top-level one; POD_NAMESPACE for `secret_namespace`, as in tbot. ALLOWED_EKS_CLUSTERS
    (`name` or `region/name`) and ALLOWED_KUBECONFIG_SECRETS (ARNs), comma-separated, limit the
    destinations an output may name; unset or empty, any destination is accepted (local runs).
    Raises ConfigError listing every problem found, and nothing else whatever the input.
    """
    reader = Reader(os.environ if env is None else env)
    try:
        config = _document(reader, read_yaml(source) if isinstance(source, str) else source)
    except ConfigError:
        raise
    except Exception as exc:  # a shape no rule foresaw is still a listed problem, not a crash
        # Only the type: the message of an unforeseen error could quote a value of the document.
        reader.problem("", f"the configuration could not be validated ({type(exc).__name__})")
        config = None
    if reader.problems or config is None:
        raise ConfigError(reader.problems)
    return config


def _document(reader: Reader, document: Any) -> Config | None:
    root = reader.mapping({} if document is None else document, "", ROOT_KEYS)
    if root is None:
        return None
    teleport = read_teleport(reader, root.get("teleport"))
    if root.get("destination") is not None:
        default = read_destination(reader, root["destination"], "destination")
    else:
        default = read_env_destination(reader)
    outputs = read_outputs(reader, root.get("outputs"), default)
    if teleport is None or reader.problems:
        return None
    return Config(teleport, outputs, tuple(reader.warnings))
