"""The configuration: Teleport connection, Argo CD destinations, and tbot-compatible outputs.

The document is YAML (the deployment keeps it in an SSM parameter). An output takes the keys of
tbot's `kubernetes/argo-cd` service and applies its rules, plus a `destination`, plus checks for
values that Kubernetes or Argo CD would only refuse later, at the first write. Every problem is
collected with the path of its key, so one failed load lists all of them.

`types` holds the value types and defaults (import them from there when that is all you need);
`yamldoc` reads the YAML, `problems` collects problems and reads typed values, and `teleport`,
`destination` and `output` each read their section with its rules; `load` puts them together.
"""

from teleport_argocd.config.duration import parse_duration
from teleport_argocd.config.load import load_config
from teleport_argocd.config.types import (
    DEFAULT_CLUSTER_NAME_TEMPLATE,
    DEFAULT_CREDENTIAL_TTL,
    DEFAULT_MIN_LISTED_SHARE,
    DEFAULT_PRUNE_GRACE_PERIOD,
    DEFAULT_RENEWAL_INTERVAL,
    MAX_CREDENTIAL_TTL,
    MAX_USEFUL_CREDENTIAL_TTL,
    OUTPUT_TYPE,
    Config,
    Destination,
    EksDestination,
    KubeconfigSecretDestination,
    OutputConfig,
    PruneConfig,
    Selector,
    TeleportConfig,
)

__all__ = [
    "DEFAULT_CLUSTER_NAME_TEMPLATE",
    "DEFAULT_CREDENTIAL_TTL",
    "DEFAULT_MIN_LISTED_SHARE",
    "DEFAULT_PRUNE_GRACE_PERIOD",
    "DEFAULT_RENEWAL_INTERVAL",
    "MAX_CREDENTIAL_TTL",
    "MAX_USEFUL_CREDENTIAL_TTL",
    "OUTPUT_TYPE",
    "Config",
    "Destination",
    "EksDestination",
    "KubeconfigSecretDestination",
    "OutputConfig",
    "PruneConfig",
    "Selector",
    "TeleportConfig",
    "load_config",
    "parse_duration",
]
