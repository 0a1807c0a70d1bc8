"""Wiring for the Lambda handlers: settings from the environment, config from SSM, one run per trigger.

The handlers stay thin: they parse their event into a `Trigger` and call `Runtime`.
Nothing here knows Lambda types; the local demo and the tests drive it the same way.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from teleport_argocd import probe
from teleport_argocd.audit import KUBE_EVENTS, AuditEvent
from teleport_argocd.botstanding import Gate, StandingStore
from teleport_argocd.config import load_config
from teleport_argocd.config.types import Config, Destination, OutputConfig
from teleport_argocd.errors import ConfigError, ConfigProblem, JoinError, NotConfigured, UnknownOutput
from teleport_argocd.fanout import requeue, shard_count
from teleport_argocd.kept_identity import KEPT
from teleport_argocd.model import Registration
from teleport_argocd.reconcile import Connection, Reconciler, Trigger
from teleport_argocd.report import OutputReport
from teleport_argocd.state import StateStore
from teleport_argocd.status import status_report
from teleport_argocd.triggers import Bot, may_heal, runs_for

if TYPE_CHECKING:
    from teleport_argocd import teleport
    from teleport_argocd.destination.secrets import SecretStore

logger = logging.getLogger(__name__)


@functools.cache
def keeper() -> teleport.BotKeeper:
    """The process's bot keeper: the bot identity outlives an invocation, so a warm execution
    environment rejoins with it and Teleport keeps one bot instance (teleport.keeper).

    Made on first use, with the Teleport client's import (grpc, httpx, cryptography: a quarter of
    a cold start), which dropped events and queued triggers never need.
    """
    from teleport_argocd.teleport import BotKeeper

    return BotKeeper()


# With a queue to wait in, a targeted run holds its invocation this long at most for its cluster.
QUEUED_LISTING_WAIT = timedelta(seconds=10)


@dataclass(frozen=True)
class Settings:
    """Deployment settings the SAM template passes as environment variables."""

    config_parameter: str
    state_table: str
    region: str
    lease_seconds: int = 360
    concurrency: int = 16
    wait_for_listing: timedelta = timedelta(seconds=60)
    # The queue of output runs (OUTPUT_RUNS_QUEUE): where a targeted run waiting for its cluster
    # waits, queued again with a delay, rather than in its invocation ("" without one).
    runs_queue: str = ""
    # Registrations one scheduled run carries before the schedule splits the output into shards:
    # 5,000 renew in 50 s from a cold process (32 s of it moto's registry Query) and 156 MB
    # (bench/renewal_bench.py), inside 300 s and 512 MB.
    shard_size: int = 5000

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        missing = [k for k in ("CONFIG_PARAMETER", "STATE_TABLE") if not env.get(k)]
        if missing:
            raise ConfigError([ConfigProblem(k, "environment variable not set") for k in missing])
        try:
            return cls(
                config_parameter=env["CONFIG_PARAMETER"],
                state_table=env["STATE_TABLE"],
                region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                lease_seconds=int(env.get("LEASE_SECONDS", "360")),
                concurrency=max(1, int(env.get("WRITE_CONCURRENCY", "16"))),
                wait_for_listing=timedelta(seconds=float(env.get("EVENT_LISTING_WAIT_SECONDS", "60"))),
                shard_size=max(1, int(env.get("SHARD_SIZE", "5000"))),
                runs_queue=env.get("OUTPUT_RUNS_QUEUE", ""),
            )
        except ValueError as exc:
            raise ConfigError([ConfigProblem("environment", str(exc))]) from None


def load_config_from_ssm(name: str, session: boto3.Session, env: Mapping[str, str] = os.environ) -> Config:
    """The YAML configuration from its SSM parameter (SecureString allowed).

    Read once per invocation through this invocation's session: a change takes effect on
    the next trigger, with no cache to wait out.
    """
    # The client directly rather than Powertools' SSMProvider: its GetParameterError hides whether
    # the parameter is missing (a fresh deploy, see NotConfigured) or unreadable (a failure).
    client = session.client("ssm")
    try:
        text = client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except client.exceptions.ParameterNotFound:
        raise NotConfigured(f"configuration parameter {name} does not exist yet") from None
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError([ConfigProblem(name, f"cannot read the configuration parameter: {exc}")]) from None
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
        # DynamoDB validates every request itself; botocore's client-side check of each 25-item
        # BatchWriteItem cost more CPU than serialising it (bench/renewal_bench.py).
        dynamodb = self.session.client("dynamodb", config=BotoConfig(parameter_validation=False))
        self.state = StateStore(settings.state_table, client=dynamodb, clock=clock)
        self.lifecycle = Gate(
            StandingStore(settings.state_table, client=dynamodb), clock, lambda: keeper().bot_name
        )
        # A manual reload, or an event that may have healed a recorded refusal, tries a join the
        # refusal's backoff would hold back.
        self._force_join = False
        self._teleport: teleport.TeleportSession | None = None
        self._connection: Connection | None = None
        self._stores: dict[Destination, SecretStore] = {}
        self.reconciler = Reconciler(
            state=self.state,
            connect_teleport=self.connection,
            connect_destination=self._connect_destination,
            lease_duration=timedelta(seconds=settings.lease_seconds),
            concurrency=settings.concurrency,
            clock=clock,
            check=probe.check_connection,
            kept=KEPT,
        )

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the Teleport tunnel so nothing leaks into the next warm invocation. The destination
        stores stay open for it: `connect_kept` decides whether they are still good then."""
        if self._teleport is not None:
            self._teleport.close()
            self._teleport = None
        self._connection = None
        self._stores.clear()

    def outputs(self, names: Sequence[str] = ()) -> list[OutputConfig]:
        """The configured outputs, or the named ones, each once; an unknown name is an error, not a
        silent skip (the message names at most ten of them)."""
        if not names:
            return list(self.config.outputs)
        known = {o.name: o for o in self.config.outputs}
        wanted = list(dict.fromkeys(names))
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise UnknownOutput(f"unknown output(s): {_some(unknown)}; configured: {_some(list(known))}")
        return [known[n] for n in wanted]

    def reconcile(self, outputs: Sequence[OutputConfig], trigger: Trigger) -> list[OutputReport]:
        """Run each output in turn; one output's failure is reported and never stops the next."""
        reports = []
        self._force_join = self._force_join or trigger.kind == "reload"
        for output in outputs:
            if self._teleport is not None:
                self._teleport.reset_findings()
            report = self.reconciler.run(output, trigger)
            report = self._note_lifecycle(report)
            logger.info(
                "output %s: %s",
                output.name,
                report.status,
                extra={"counts": report.counts, "run_id": report.run_id},
            )
            reports.append(report)
        return reports

    def _note_lifecycle(self, report: OutputReport) -> OutputReport:
        """What a connected run met, for the bot's standing (`botstanding`): a refusal after the join
        (a lock on a role it impersonates), certificates cut short by a role's max_session_ttl (named
        in the run's errors: the run still wrote, with them), or neither. Returns the report with
        the cap among its errors."""
        session = self._teleport
        if session is None:
            return report
        if session.ttl_capped is not None:
            report = replace(report, errors=(*report.errors, str(session.ttl_capped)))
        self.lifecycle.after_run(
            self._settings_digest(),
            refused=session.refused,
            capped=session.ttl_capped,
            checked=session.ttl_checked,
        )
        return report

    @property
    def lifecycle_failures(self) -> int:
        """Lifecycle failures this invocation recorded afresh (the `TeleportLifecycleFailures` metric)."""
        return self.lifecycle.recorded

    def event_runs(self, event: AuditEvent) -> tuple[list[OutputConfig], Trigger]:
        """The runs an audit event asks for (`triggers.runs_for`), with the facts it needs: the
        registrations for a `kube.*` event, our bot (joining Teleport) for a role or bot event."""
        outputs = self.config.outputs
        if event.type in KUBE_EVENTS:
            registrations = self._registered(event)
            return runs_for(event, outputs, registrations, None, self.listing_wait())
        if event.type in ("bot.create", "bot.delete") and event.name == keeper().bot_name:
            # Our bot was deleted or made again: Teleport may no longer honour the kept identity.
            keeper().forget()
        standing = self.lifecycle.standing()
        if standing.refused and may_heal(event, keeper().bot_name or standing.bot):
            logger.info("%s %s may end the recorded %s: joining now", event.type, event.name, standing.kind)
            self._force_join = True
        self.connection()
        assert self._teleport is not None
        bot = Bot(self._teleport.bot.bot_name, frozenset(self._teleport.impersonated_roles()))
        return runs_for(event, outputs, {}, bot, self.listing_wait())

    def _registered(self, event: AuditEvent) -> dict[str, list[Registration]]:
        """Each output's registrations of the cluster a `kube.*` event names: those items alone, keyed
        by the Teleport cluster the event says it comes from (`cluster_name`); an event without one
        falls back to reading every registration."""
        outputs = [o.name for o in self.config.outputs]
        teleport_cluster = str(event.fields.get("cluster_name") or "")
        if not teleport_cluster:
            return {output: self.state.registrations(output) for output in outputs}
        return self.state.named_registrations(outputs, teleport_cluster, {event.name})

    def listing_wait(self) -> timedelta:
        """How long a targeted run waits in its invocation for Teleport to list its cluster: briefly
        when it can wait longer in the queue (`requeue`), else the whole `wait_for_listing`."""
        wait = self.settings.wait_for_listing
        return min(wait, QUEUED_LISTING_WAIT) if self.settings.runs_queue else wait

    def requeue(self, reports: Sequence[OutputReport], trigger: Trigger) -> int | None:
        """Queue again, with a delay, the targeted runs that ended waiting for their cluster to be
        listed; the delay in seconds, or None when there is no queue or they have waited long enough."""
        waiting = {r.output for r in reports if r.retriable}
        if not waiting or not self.settings.runs_queue:
            return None
        outputs = [o for o in self.config.outputs if o.name in waiting]
        return requeue(self.session.client("sqs"), self.settings.runs_queue, outputs, trigger)

    def shards(self, outputs: Sequence[OutputConfig]) -> dict[str, int]:
        """How many runs each output's schedule is split into, from its registrations."""
        return {
            output.name: shard_count(len(self.state.registrations(output.name)), self.settings.shard_size)
            for output in outputs
        }

    def registry_metrics(self, outputs: Sequence[OutputConfig]) -> tuple[datetime | None, int]:
        """Among clusters still registered and matching, read once: the soonest certificate expiry, and
        how many did not connect at their last check (`probe`)."""
        live = [
            r
            for output in outputs
            for r in self.state.registrations(output.name)
            if r.matches and r.deleted_at is None
        ]
        expiries = [r.cert_expires for r in live if r.cert_expires]
        unreachable = sum(1 for r in live if r.connection not in ("", probe.OK))
        return min(expiries, default=None), unreachable

    def status(self, outputs: Sequence[OutputConfig]) -> dict[str, Any]:
        """Every registration, the lease and the last runs of each output, for an operator."""
        now = self.clock()
        bot = keeper()
        facts = {
            "bot_instance_id": bot.bot_instance_id,
            "joins_in_last_hour": bot.joins_in_last_hour(now),
            "lifecycle": self.lifecycle.standing().status(),
        }
        return status_report(self.state, outputs, teleport=facts)

    # -- seams for the reconciler --------------------------------------------------

    def connection(self) -> Connection:
        """The Teleport connection of this invocation, joined on first use."""
        if self._connection is None:
            self._connection = self._connect_teleport()
        return self._connection

    def _connect_teleport(self) -> Connection:
        from teleport_argocd.teleport import JoinSettings, lifetime

        cfg = self.config.teleport
        credentials = self.session.get_credentials()
        if credentials is None:
            raise JoinError("no AWS credentials available for the IAM join")
        longest = self.config.longest_credential_ttl
        settings = JoinSettings(
            proxy_addr=cfg.proxy_addr,
            token=cfg.join_token,
            region=self.settings.region,
            ca_pem=cfg.ca_pem.encode() if cfg.ca_pem else None,
            insecure=cfg.insecure,
            # Twice the longest output's TTL, so the kept bot serves about half its life between
            # rejoins; Teleport never lets an impersonated certificate outlive the bot's own.
            bot_ttl=min(max(lifetime.DEFAULT_BOT_TTL, 2 * longest), lifetime.DEFAULT_BOT_MAX_SESSION_TTL),
        )
        frozen = credentials.get_frozen_credentials()
        kept = keeper()
        self._teleport = self.lifecycle.connect(
            self._settings_digest(),
            join=lambda: kept.session(settings, frozen, valid_for=longest),
            reuse=lambda: kept.kept_session(settings, frozen),
            force=self._force_join,
        )
        proxy = self._teleport.proxy
        return Connection(session=self._teleport, teleport_cluster=proxy.cluster_name, endpoint=proxy.kube)

    def _settings_digest(self) -> str:
        """What a recorded lifecycle failure depends on: a change of any of it is worth a join."""
        cfg = self.config.teleport
        seen = (cfg.proxy_addr, cfg.join_token, cfg.ca_pem, cfg.insecure)
        ttls = tuple(o.credential_ttl.total_seconds() for o in self.config.outputs)
        return hashlib.sha256(repr((seen, ttls)).encode()).hexdigest()[:32]

    def _connect_destination(self, destination: Destination) -> SecretStore:
        # Imported here: the HTTP client and the EKS and kubeconfig code are a third of a cold
        # start, and dropped events, queued runs and status reports never reach a destination.
        from teleport_argocd.destination.connect import connect_kept, release_others

        if not self._stores:  # the first this invocation: let go of what the configuration dropped
            release_others({o.destination for o in self.config.outputs})
        if destination not in self._stores:
            self._stores[destination] = connect_kept(destination, session=self.session)
        return self._stores[destination]


def _some(names: Sequence[str], most: int = 10) -> str:
    """Up to `most` names, and how many more there are."""
    shown = ", ".join(n[:100] for n in names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def open_runtime(env: Mapping[str, str] = os.environ, session: boto3.Session | None = None) -> Runtime:
    """A Runtime for this invocation: settings from the environment, configuration from SSM.

    Handlers pass a session created at import, so warm invocations reuse its loaded models.
    """
    settings = Settings.from_env(env)
    session = session or boto3.Session(region_name=settings.region)
    return Runtime(settings, load_config_from_ssm(settings.config_parameter, session, env), session=session)
