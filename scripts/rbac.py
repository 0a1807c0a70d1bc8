"""Print the Kubernetes RBAC and admission policy the functions need for a configuration.

    .venv/bin/python scripts/rbac.py CONFIG.yaml [--user NAME | --group NAME] > rbac.yaml

One Role and RoleBinding per namespace the outputs write to (`secret_namespace`, defaulted as
the functions default it), and a ValidatingAdmissionPolicy limiting writes to the outputs' name
prefixes (Kubernetes 1.30+). Apply it in the cluster running Argo CD.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "core"))

from teleport_argocd import rbac
from teleport_argocd.config import load_config
from teleport_argocd.errors import ConfigError

# What a document may leave to the deployment; none of it changes the namespaces or prefixes.
PLACEHOLDERS = {
    "TELEPORT_PROXY_ADDR": "teleport.invalid:443",
    "TELEPORT_JOIN_TOKEN": "rbac",
    "DESTINATION_KUBECONFIG_SECRET": "rbac",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", type=Path, help="the YAML configuration (as stored in SSM)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--group", help=f"Kubernetes group of the functions (default {rbac.DEFAULT_GROUP})")
    who.add_argument("--user", help="Kubernetes user of the functions (e.g. a kubeconfig's user)")
    args = parser.parse_args(argv)

    env = {k: v for k, v in os.environ.items() if not k.startswith("ALLOWED_")}
    if not env.get("DESTINATION_EKS_CLUSTER"):
        env = {**PLACEHOLDERS, **env}
    try:
        config = load_config(args.config.read_text(), env=env)
    except ConfigError as exc:
        print(f"{args.config}: {exc}", file=sys.stderr)
        return 1
    if args.user:
        subject = rbac.Subject("User", args.user)
    else:
        subject = rbac.Subject("Group", args.group or rbac.DEFAULT_GROUP)
    sys.stdout.write(yaml.safe_dump_all(rbac.manifests(config, subject), sort_keys=False, width=100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
