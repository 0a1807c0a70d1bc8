"""Everything the functions talk to, on loopback: the local demo, end-to-end tests and benchmarks use it.

- moto, open: DynamoDB (tables created from template.yaml), SSM (the configuration),
  Secrets Manager (the destination kubeconfig);
- moto with SigV4 enforced: the STS that the Teleport stand-in forwards IAM joins to;
- the Teleport stand-in with a bot, its role, an IAM join token and labelled clusters;
- the Kubernetes API stand-in where Argo CD lives (namespace `argocd`), which lets the
  functions' identity write Secrets there and nowhere else with the Role and admission policy
  `scripts/rbac.py` prints for the configuration stored: patch, create and delete, no read.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from standins.aws import ACCOUNT_ID, REGION, AwsCredentials, MotoServer, lambda_role_credentials
from standins.kubeapi import APPLICATIONS, KubeApiServer
from standins.teleport import TeleportStandin
from standins.template import audit_rule, create_tables
from teleport_argocd.config import load_config
from teleport_argocd.errors import ConfigError

ROLE_NAME = "teleport-argocd-RenewFunctionRole"
JOIN_TOKEN = "teleport-argocd-iam"
BOT_NAME = "argocd"
ARGOCD_NAMESPACE = "argocd"
WRITER = "teleport-argocd"  # the Kubernetes user the functions' kubeconfig authenticates as
CONFIG_PARAMETER = "/teleport-argocd/config"
KUBECONFIG_SECRET = "teleport-argocd/argocd-kubeconfig"
STATE_TABLE = "teleport-argocd-state"
IDEMPOTENCY_TABLE = "teleport-argocd-idempotency"
OUTPUT_RUNS_QUEUE = "teleport-argocd-output-runs"
AUDIT_RULE_QUEUE = "teleport-argocd-audit-rule"

DEMO_CLUSTERS: dict[str, dict[str, str]] = {
    "prod-us-east": {"env": "prod", "team": "payments"},
    "prod-eu-west": {"env": "prod", "team": "platform"},
    "dev-sandbox": {"env": "dev", "team": "payments"},
}


def _load_rbac() -> ModuleType:
    """scripts/rbac.py, which prints the Role and admission policy an operator applies."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "rbac.py"
    spec = importlib.util.spec_from_file_location("teleport_argocd_rbac_script", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rbac: Any = _load_rbac()


def default_outputs() -> list[dict[str, Any]]:
    return [
        {
            "type": "kubernetes/argo-cd",
            "name": "production",
            "destination": {"kubeconfig_secret": {"secret_id": KUBECONFIG_SECRET}},
            "selectors": [{"labels": {"env": "prod"}}, {"labels": {"team": "platform"}}],
            "secret_namespace": ARGOCD_NAMESPACE,
            "secret_labels": {"team": '{{ index .Labels "team" }}'},
            "project": "platform",
        }
    ]


@dataclass
class LocalStack:
    """Start with `with LocalStack() as stack:`; `stack.env()` is what the template gives the functions."""

    clusters: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: dict(DEMO_CLUSTERS))
    outputs: Sequence[Mapping[str, Any]] = field(default_factory=default_outputs)
    lease_seconds: int = 360
    # Scheduled runs queued one per output for the worker function, as template.yaml wires them.
    fan_out: bool = False
    # The audit bus with the template's rule, delivering to a queue the caller drains into the
    # audit function (moto cannot invoke a function: the rule's target here is SQS).
    audit_bus: bool = False
    kube_latency: float = 0.0  # seconds per Kubernetes request, as a real API server's round trip
    # The admission policy scripts/rbac.py prints, evaluated by the stand-in with cel-python: about
    # 9 ms of the stand-in's CPU per write (a real API server runs compiled CEL in microseconds), so
    # the renewal bench turns it off to measure the writer rather than the evaluator.
    admission: bool = True
    # The Teleport proxy behind an L7 load balancer (an ALB), reached through its connection upgrade;
    # with its dedicated Kubernetes listener (kube_public_addr) too, Argo CD's way around the balancer.
    teleport_behind_l7_lb: bool = False
    teleport_kube_listener: bool = False
    aws: MotoServer = field(default_factory=MotoServer)
    sts: MotoServer = field(default_factory=lambda: MotoServer(signing=True))
    credentials: AwsCredentials | None = None
    teleport: TeleportStandin | None = None
    kube: KubeApiServer | None = None

    def start(self) -> LocalStack:
        self.aws.launch()
        self.sts.launch()
        self.aws.wait()
        self.sts.wait()
        self.credentials = lambda_role_credentials(
            self.sts, role_name=ROLE_NAME, session="teleport-argocd-renew"
        )
        self.sts.enforce_signing()
        self.teleport = TeleportStandin(
            sts_endpoint=self.sts.endpoint,
            behind_l7_lb=self.teleport_behind_l7_lb,
            kube_listener=self.teleport_kube_listener,
        ).start()
        self.teleport.add_role("argocd-clusters", kubernetes_labels={"*": "*"})
        self.teleport.add_bot(BOT_NAME, roles=["argocd-clusters"])
        self.teleport.add_iam_token(
            JOIN_TOKEN,
            bot_name=BOT_NAME,
            allow=[
                {
                    "aws_account": ACCOUNT_ID,
                    "aws_arn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{ROLE_NAME}/*",
                }
            ],
        )
        for name, labels in self.clusters.items():
            self.teleport.add_kube_cluster(name, labels=dict(labels))
        self.kube = KubeApiServer(latency=self.kube_latency).start()
        self.kube.allow(user=WRITER, verbs=rbac.VERBS["apply"], namespaces=(ARGOCD_NAMESPACE,))
        # The pruning guard's read, as scripts/rbac.py prints it for Argo CD's namespace.
        self.kube.allow(
            user=WRITER, verbs=("list",), resources=(APPLICATIONS,), namespaces=(ARGOCD_NAMESPACE,)
        )
        self._provision()
        return self

    def reset(self) -> None:
        """Back to what `start` left, without restarting a server: the end-to-end tests share one
        stack (starting one costs about two seconds). The STS and the Teleport bot, role and token
        stay; so does a warm process's kept bot identity, as in a warm Lambda environment."""
        assert self.teleport is not None and self.kube is not None
        self.aws.reset()
        self._provision()
        self.teleport.set_kube_clusters(self.clusters)
        self.kube.reset()

    def stop(self) -> None:
        for server in (self.kube, self.teleport, self.sts, self.aws):
            if server is not None:
                server.stop()

    def __enter__(self) -> LocalStack:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _provision(self) -> None:
        """Tables as template.yaml declares them, the kubeconfig secret, the configuration parameter."""
        assert self.kube is not None and self.teleport is not None
        create_tables(
            self.aws.client("dynamodb"), {"StateTable": STATE_TABLE, "IdempotencyTable": IDEMPOTENCY_TABLE}
        )
        self.aws.client("secretsmanager").create_secret(
            Name=KUBECONFIG_SECRET, SecretString=self.kubeconfig()
        )
        self.put_config(self.outputs)
        if self.fan_out:
            self.aws.client("sqs").create_queue(QueueName=OUTPUT_RUNS_QUEUE)
        if self.audit_bus:
            self._create_audit_bus()

    def _create_audit_bus(self) -> None:
        rule = audit_rule()
        events, sqs = self.aws.client("events"), self.aws.client("sqs")
        events.create_event_bus(Name=rule["bus"])
        sqs.create_queue(QueueName=AUDIT_RULE_QUEUE)
        arn = sqs.get_queue_attributes(QueueUrl=self.audit_queue_url, AttributeNames=["QueueArn"])
        events.put_rule(
            Name="teleport-audit", EventBusName=rule["bus"], EventPattern=json.dumps(rule["pattern"])
        )
        events.put_targets(
            Rule="teleport-audit",
            EventBusName=rule["bus"],
            Targets=[{"Id": "audit", "Arn": arn["Attributes"]["QueueArn"]}],
        )

    def put_config(self, outputs: Sequence[Mapping[str, Any]]) -> None:
        assert self.teleport is not None
        config = {"teleport": {"ca_pem": self.teleport.web_ca_pem.decode()}, "outputs": list(outputs)}
        text = yaml.safe_dump(config)
        self.aws.client("ssm").put_parameter(
            Name=CONFIG_PARAMETER, Value=text, Type="SecureString", Overwrite=True
        )
        # The operator applies what scripts/rbac.py prints for the configuration (kept as it was
        # for a configuration the functions would refuse).
        try:
            loaded = load_config(
                text, env={"TELEPORT_PROXY_ADDR": self.teleport.proxy_addr, "TELEPORT_JOIN_TOKEN": JOIN_TOKEN}
            )
        except ConfigError:
            return
        assert self.kube is not None
        if self.admission:
            self.kube.admit(rbac.manifests(loaded, rbac.Subject("User", WRITER)))

    def kubeconfig(self) -> str:
        """A kubeconfig for the Argo CD cluster with a client certificate for the functions' user."""
        assert self.kube is not None
        return writer_kubeconfig(self.kube)

    def env(self) -> dict[str, str]:
        """The functions' environment, as template.yaml sets it, plus the Lambda role's credentials."""
        assert self.teleport is not None and self.credentials is not None
        return {
            **self.credentials.env(),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.aws.endpoint,
            "CONFIG_PARAMETER": CONFIG_PARAMETER,
            "STATE_TABLE": STATE_TABLE,
            "IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
            "TELEPORT_PROXY_ADDR": self.teleport.proxy_addr,
            "TELEPORT_JOIN_TOKEN": JOIN_TOKEN,
            "LEASE_SECONDS": str(self.lease_seconds),
            "POWERTOOLS_SERVICE_NAME": "teleport-argocd",
            "POWERTOOLS_METRICS_NAMESPACE": "TeleportArgoCD",
            "POWERTOOLS_TRACE_DISABLED": "true",
            **({"OUTPUT_RUNS_QUEUE": self.queue_url} if self.fan_out else {}),
            **(
                {"EVENT_BUS_NAME": audit_rule()["bus"], "EVENT_SOURCE": audit_rule()["source"]}
                if self.audit_bus
                else {}
            ),
        }

    @property
    def audit_queue_url(self) -> str:
        return f"{self.aws.endpoint}/{ACCOUNT_ID}/{AUDIT_RULE_QUEUE}"

    @property
    def queue_url(self) -> str:
        return f"{self.aws.endpoint}/{ACCOUNT_ID}/{OUTPUT_RUNS_QUEUE}"

    @contextmanager
    def environment(self) -> Iterator[None]:
        """Set `env()` in this process for the duration (handlers read os.environ)."""
        saved = dict(os.environ)
        os.environ.update(self.env())
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def writer_kubeconfig(kube: KubeApiServer, user: str = WRITER) -> str:
    """A kubeconfig for the Argo CD cluster stand-in with a client certificate for `user`."""
    cert, key = kube.client_credentials(user)
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "argocd",
                    "cluster": {
                        "server": kube.url,
                        "certificate-authority-data": b64(kube.ca_pem),
                        "tls-server-name": kube.hostname,
                    },
                }
            ],
            "users": [
                {"name": user, "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)}}
            ],
            "contexts": [{"name": "argocd", "context": {"cluster": "argocd", "user": user}}],
            "current-context": "argocd",
        }
    )
