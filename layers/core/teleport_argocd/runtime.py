"""Wiring for the Lambda handlers: settings from the environment, config from SSM, one run per trigger.

The handlers stay thin: they parse their event into a `Trigger` and call `Runtime`.
Nothing here knows Lambda types; the local demo and the tests drive it the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.utilities import parameters

from teleport_argocd import teleport
from teleport_argocd.config import Config, Destination, OutputConfig, load_config
from teleport_argocd.model import KubeCluster
from teleport_argocd.reconcile import Connection, OutputReport, Reconciler, Trigger
from teleport_argocd.selectors import matches
from teleport_argocd.state import StateStore
from teleport_argocd.triggers import KUBE_EVENTS

if TYPE_CHECKING:
    from teleport_argocd import kube

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """Deployment settings the SAM template passes as environment variables."""

    config_parameter: str
    state_table: str
    region: str
    lease_seconds: int = 360

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        missing = [k for k in ("CONFIG_PARAMETER", "STATE_TABLE") if not env.get(k)]
        if missing:
            raise RuntimeError(f"missing environment variables: {', '.join(missing)}")
        return cls(
            config_parameter=env["CONFIG_PARAMETER"],
            state_table=env["STATE_TABLE"],
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            lease_seconds=int(env.get("LEASE_SECONDS", "360")),
        )


def load_config_from_ssm(name: str, session: boto3.Session, env: Mapping[str, str] = os.environ) -> Config:
    """The YAML configuration from its SSM parameter (SecureString allowed).

    Read once per invocation through this invocation's session: a change takes effect on
    the next trigger, with no cache to wait out.
    """
    provider = parameters.SSMProvider(boto3_client=session.client("ssm"))
    text = provider.get(name, decrypt=True, max_age=0)
    return load_config(str(text), env=env)


class Runtime:
    """One invocation's resources: a lazily joined Teleport session shared by all outputs."""

    def __init__(
        self,
        settings: Settings,
        config: Config,
        *,
        session: boto3.Session | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.config = config
        self.session = session or boto3.Session(region_name=settings.region)
        self.clock = clock
        self.state = StateStore(settings.state_table, client=self.session.client("dynamodb"), clock=clock)
        self._teleport: teleport.TeleportSession | None = None
        self._stores: dict[Destination, kube.SecretStore] = {}
        self.reconciler = Reconciler(
            state=self.state,
            connect_teleport=self._connect_teleport,
            connect_destination=self._connect_destination,
            lease_duration=timedelta(seconds=settings.lease_seconds),
            clock=clock,
        )

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the Teleport tunnel so nothing leaks into the next warm invocation."""
        self.reconciler.close()
        if self._teleport is not None:
            self._teleport.close()
            self._teleport = None
        for store in self._stores.values():
            store.close()
        self._stores.clear()

    def outputs(self, names: Sequence[str] = ()) -> list[OutputConfig]:
        """The configured outputs, or the named ones; an unknown name is an error, not a silent skip."""
        if not names:
            return list(self.config.outputs)
        known = {o.name: o for o in self.config.outputs}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown output(s): {', '.join(unknown)}; configured: {', '.join(known)}")
        return [known[n] for n in names]

    def reconcile(self, outputs: Sequence[OutputConfig], trigger: Trigger) -> list[OutputReport]:
        """Run each output in turn; one output's failure is reported and never stops the next."""
        reports = []
        for output in outputs:
            report = self.reconciler.run(output, trigger)
            logger.info(
                "output %s: %s",
                output.name,
                report.status,
                extra={"counts": report.counts, "run_id": report.run_id},
            )
            reports.append(report)
        return reports

    def outputs_for_event(self, event_type: str, detail: Mapping[str, Any]) -> list[OutputConfig]:
        """Outputs an audit event can affect: for kube.* only those whose selectors match the
        cluster or that have it registered; for role/bot/token/discovery changes, all."""
        if event_type not in KUBE_EVENTS:
            return list(self.config.outputs)
        name = str(detail.get("name", ""))
        labels = detail.get("kube_labels") or {}
        cluster = KubeCluster(name=name, labels={str(k): str(v) for k, v in dict(labels).items()})
        return [
            output
            for output in self.config.outputs
            if (event_type != "kube.delete" and any(matches(s, cluster) for s in output.selectors))
            or any(r.kube_cluster == name and r.matches for r in self.state.registrations(output.name))
        ]

    def earliest_expiry(self, outputs: Sequence[OutputConfig]) -> datetime | None:
        """The soonest certificate expiry among clusters still registered and matching."""
        expiries = [
            r.cert_expires
            for output in outputs
            for r in self.state.registrations(output.name)
            if r.matches and r.cert_expires
        ]
        return min(expiries, default=None)

    def status(self, outputs: Sequence[OutputConfig]) -> list[dict[str, Any]]:
        """Every registration, the lease and the last runs of each output, for an operator."""
        report = []
        for output in outputs:
            report.append(
                {
                    "output": output.name,
                    "lease": self.state.lease_status(output.name),
                    "registrations": [_jsonable(r) for r in self.state.registrations(output.name)],
                    "runs": [_jsonable(r, drop="output") for r in self.state.runs(output.name, limit=5)],
                }
            )
        return report

    # -- seams for the reconciler --------------------------------------------------

    def _connect_teleport(self) -> Connection:
        cfg = self.config.teleport
        credentials = self.session.get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials available for the IAM join")
        self._teleport = teleport.join(
            cfg.proxy_addr,
            cfg.join_token,
            credentials=credentials.get_frozen_credentials(),
            region=self.settings.region,
            ca_pem=cfg.ca_pem.encode() if cfg.ca_pem else None,
            insecure=cfg.insecure,
        )
        proxy = self._teleport.proxy
        return Connection(session=self._teleport, teleport_cluster=proxy.cluster_name, endpoint=proxy.kube)

    def _connect_destination(self, destination: Destination) -> kube.SecretStore:
        # Imported here: the kubernetes client is most of a cold start (about 0.9 s), and
        # dropped events, queued triggers and status reports never reach a destination.
        from teleport_argocd import kube

        if destination not in self._stores:
            self._stores[destination] = kube.connect(destination, session=self.session)
        return self._stores[destination]


def record_metrics(
    reports: Sequence[OutputReport],
    add_metric: Callable[[str, str, float], None],
    now: datetime,
    earliest_expiry: datetime | None = None,
) -> None:
    """Publish a run's numbers: registered clusters, Secrets written, failures, time to earliest expiry.

    The expiry comes from the state table when given, so a run skipped by the renewal
    interval still reports it (the alarm treats missing data as breaching).
    """
    ran = [r for r in reports if r.status in ("completed", "failed") and not r.dry_run]
    if ran:
        written = sum(r.count("created", "updated") for r in ran)
        # Every selected cluster whose Secret is fresh counts as registered; a run writes each once.
        add_metric("ClustersRegistered", "Count", written)
        add_metric("SecretsWritten", "Count", written)
        add_metric("Failures", "Count", sum(r.count("failed") + len(r.errors) for r in ran))
        add_metric("RunsFailed", "Count", sum(1 for r in ran if r.status == "failed"))
    expiries = [e for e in [earliest_expiry, *(r.cert_expires for r in ran)] if e]
    if expiries:
        add_metric("CertificateExpirySeconds", "Seconds", max(0.0, (min(expiries) - now).total_seconds()))


def _jsonable(record: Any, drop: str = "") -> dict[str, Any]:
    """A state record's fields for a JSON response, times as ISO 8601."""
    return {
        k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in record.__dict__.items() if k != drop
    }


def open_runtime(env: Mapping[str, str] = os.environ, session: boto3.Session | None = None) -> Runtime:
    """A Runtime for this invocation: settings from the environment, configuration from SSM.

    Handlers pass a session created at import, so warm invocations reuse its loaded models.
    """
    settings = Settings.from_env(env)
    session = session or boto3.Session(region_name=settings.region)
    return Runtime(settings, load_config_from_ssm(settings.config_parameter, session, env), session=session)
