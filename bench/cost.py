"""What a month costs at 100, 1,000 and 10,000 clusters, which memory size to run at, and how often
Argo CD rebuilds a cluster's cache: the arithmetic on the benches' measured durations.

    .venv/bin/python bench/cost.py [--renewal bench/results/renewal-memory-1000-*.json]
        [--discovery bench/results/discovery-memory-1000-*.json] [--rewrite bench/results/rewrite-100.json]
        [--memory-mb N] [--clusters 100,1000,10000]

Inputs (the defaults are the files committed beside this script):

- `renewal_bench.py --memory-mb ... --save`: the worker's warm and cold renewal of 1,000 clusters at
  each memory size's CPU share, and the requests per cluster per renewal (Kubernetes, DynamoDB);
- `discovery_bench.py --memory-mb ... --save`: a discovery run with nothing changed at each size;
- `rewrite_bench.py --save`: the registration items' size (DynamoDB bills writes per 1 KB, reads
  per 4 KB) and which trigger changes a Secret's `config`.

How often each trigger fires comes from the defaults of template.yaml (renewal schedule every
20 minutes, discovery every 2) and of the configuration (credential_ttl 1h, renewal_interval 20m);
which Secrets a scheduled run renews is `teleport_argocd.renewal.renewal_due` itself, run over a
simulated week. Durations scale linearly with the cluster count from the 1,000-cluster
measurement, never below it (a run of 100 clusters is charged as one of 1,000). List prices,
us-east-1, no free tier; the pages they come from are in `PRICES`.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import statistics
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path[:0] = [str(ROOT / "layers" / "core")]

from teleport_argocd.config import load_config  # noqa: E402
from teleport_argocd.config.types import OutputConfig  # noqa: E402
from teleport_argocd.renewal import renewal_due  # noqa: E402
from teleport_argocd.state.renewals import LEDGERS  # noqa: E402

MINUTES_PER_MONTH = 730 * 60  # AWS bills a month as 730 hours
RENEWAL_SCHEDULE_MINUTES = 20  # template.yaml RenewalIntervalMinutes default
DISCOVERY_MINUTES = 2  # template.yaml DiscoveryIntervalMinutes default
REGISTRY_MAX_AGE_MINUTES = 10  # teleport_argocd.state.REGISTRY_MAX_AGE: a warm copy is read again this old
SHARD_SIZE = 5000  # registrations per worker invocation (teleport_argocd SHARD_SIZE default)

# us-east-1 list prices (USD), as published on these pages on 2026-12-06.
PRICES = {
    "lambda_gb_second_arm64": 0.0000133334,  # https://aws.amazon.com/lambda/pricing/ (Arm, first 7.5B GB-s)
    "lambda_request": 0.20 / 1e6,  # same page
    "dynamodb_write_unit": 0.625 / 1e6,  # https://aws.amazon.com/dynamodb/pricing/on-demand/ (standard table)
    "dynamodb_read_unit": 0.125 / 1e6,  # same page
    "sqs_request": 0.40 / 1e6,  # https://aws.amazon.com/sqs/pricing/ (standard queue)
    "http_api_request": 1.00 / 1e6,  # https://aws.amazon.com/api-gateway/pricing/ (HTTP APIs, first 300M)
    "eventbridge_custom_event": 1.00 / 1e6,  # https://aws.amazon.com/eventbridge/pricing/ (custom events)
    "scheduler_invocation": 1.00 / 1e6,  # same page (EventBridge Scheduler, after 14M free a month)
    "cloudwatch_metric_month": 0.30,  # https://aws.amazon.com/cloudwatch/pricing/ (first 10,000 metrics)
    "cloudwatch_alarm_month": 0.10,  # same page (standard resolution alarm)
    "m7g_large_hour": 0.0816,  # https://aws.amazon.com/ec2/pricing/on-demand/ (2 vCPU, 8 GiB, Linux)
}

# What the benches do not measure, stated (each line of the table names the assumption it uses).
EVENTS_PER_CLUSTER_DAY = (
    1.0  # kube.create/update/delete reaching the stack per cluster per day (a busy fleet)
)
EVENT_SECONDS_UNLIMITED = 0.16  # audit function, one kube.create, warm (README: bench/event_bench.py)
INGEST_SECONDS = 0.05  # ingest function per event (256 MB): one PutEvents; not benched
QUEUE_SECONDS = 0.05  # renew function queueing a run (SendMessage per shard); not benched
EVENT_WRITE_UNITS = 6  # registration, lease acquire and release, run record, idempotency record twice
EVENT_READ_UNITS = 2  # lease and registry stamp GetItem (event_bench), strongly consistent, < 4 KB
RUN_WRITE_UNITS = 3  # a renewal besides registrations: of 43 write requests per 1,000 clusters, 40 batch
IDLE_SQS_RECEIVES_PER_MINUTE = 15  # the worker's event source mapping long-polling an idle queue
METRICS = (
    10  # CloudWatch series published every month: record_metrics' 7, RunsQueued, ColdStart, EventsForwarded
)
ALARMS = 6  # template.yaml's CloudWatch alarms (some optional)
TBOT_POD = (0.1, 0.125)  # tbot's requests, vCPU and GiB, on an m7g.large (2 vCPU, 8 GiB)


@dataclass(frozen=True)
class Measured:
    """The benches' figures for one memory size (seconds per 1,000 clusters, medians over the files)."""

    memory_mb: int
    warm: list[float]  # every warm renewal measured
    warm_cpu: list[float]  # their CPU-seconds
    cold: list[float]
    warm_unlimited: list[float]  # the same runs' worker without a CPU quota
    discovery: list[float]  # discovery runs with nothing changed


def _load(pattern: str) -> list[Any]:
    return [json.loads(Path(p).read_text()) for p in sorted(glob.glob(pattern))]


def measured(renewals: list[Any], discoveries: list[Any]) -> dict[int, Measured]:
    rows = [row for run in renewals for row in run if row["clusters"] == 1000]
    found: dict[int, Measured] = {}
    for mb in sorted({m["memory_mb"] for r in rows for m in r["by_memory"]}):
        at = [m for r in rows for m in r["by_memory"] if m["memory_mb"] == mb]
        no_change = [
            i["seconds"]
            for d in discoveries
            for i in d["by_memory"].get(str(mb), [])
            if i["scenario"] == "no change"
        ]
        found[mb] = Measured(
            mb,
            warm=[t["seconds"] for m in at for t in m["runs"]["warm"]],
            warm_cpu=[t["cpu_seconds"] for m in at for t in m["runs"]["warm"]],
            cold=[t["seconds"] for m in at for t in m["runs"]["cold"]],
            warm_unlimited=[t["seconds"] for r in rows for t in r["runs"]["warm"]],
            discovery=no_change,
        )
    return found


def _output(credential_ttl: str, renewal_interval: str) -> OutputConfig:
    document = {
        "outputs": [
            {
                "type": "kubernetes/argo-cd",
                "name": "cost",
                "destination": {"eks": {"cluster_name": "argocd", "region": "us-east-1"}},
                "selectors": [{"labels": {"env": "prod"}}],
                "credential_ttl": credential_ttl,
                "renewal_interval": renewal_interval,
            }
        ]
    }
    env = {"TELEPORT_PROXY_ADDR": "teleport.example.com:443", "TELEPORT_JOIN_TOKEN": "cost"}
    return load_config(document, env=env).outputs[0]


def renewals_per_day(
    credential_ttl: str, renewal_interval: str, schedule_minutes: int, days: int = 7
) -> float:
    """Certificates written per cluster per day: the schedule's ticks at which `renewal_due` holds,
    counted over `days` after a first day that lets the rhythm settle."""
    output = _output(credential_ttl, renewal_interval)
    tick = start = datetime(2026, 1, 1, tzinfo=UTC)
    settled, end = start + timedelta(days=1), start + timedelta(days=1 + days)
    expires, written = start + output.credential_ttl, 0
    while (tick := tick + timedelta(minutes=schedule_minutes)) < end:
        if renewal_due(output, expires, tick):
            written += tick >= settled
            expires = tick + output.credential_ttl
    return written / days


@dataclass(frozen=True)
class Line:
    item: str
    dollars: dict[int, float]  # by cluster count
    basis: str


def monthly(
    m: Measured,
    sizes: list[int],
    renewal: dict[str, Any],
    item_bytes: int,
    per_day: float,
    ledger_bytes: float,
) -> list[Line]:
    """One month's cost, line by line, for each fleet size at memory size `m`."""
    gb = m.memory_mb / 1024
    slowdown = statistics.median(m.warm) / statistics.median(m.warm_unlimited)
    warm_per_1000 = statistics.median(m.warm)
    discovery_1000 = statistics.median(m.discovery) if m.discovery else 0.2 * slowdown
    ticks = MINUTES_PER_MONTH / RENEWAL_SCHEDULE_MINUTES
    discoveries = MINUTES_PER_MONTH / DISCOVERY_MINUTES
    renewals_per_cluster = per_day * MINUTES_PER_MONTH / 1440
    write_units = math.ceil(item_bytes / 1024)
    # A renewal (with its hourly connection check, when that passes) goes to the renewal ledgers:
    # about `ledger_bytes` a registration, each of `LEDGERS` items rounded up to 1 KB.
    renewal_units = ledger_bytes / 1024
    read_units_per_item = (item_bytes + ledger_bytes) / 4096  # a registry read reads both
    queries = MINUTES_PER_MONTH / REGISTRY_MAX_AGE_MINUTES
    p = PRICES
    lines: list[Line] = []

    def add(item: str, basis: str, cost: Any) -> None:
        lines.append(Line(item, {n: float(cost(n)) for n in sizes}, basis))

    def shards(n: int) -> int:
        return math.ceil(n / SHARD_SIZE)

    def scaled(n: int) -> float:
        return max(n, 1000) / 1000

    events = lambda n: EVENTS_PER_CLUSTER_DAY * n * MINUTES_PER_MONTH / 1440  # noqa: E731
    add(
        "Lambda GB-s: renewals (worker, warm)",
        f"{warm_per_1000:.2f} s per 1,000 clusters at {m.memory_mb} MB, {renewals_per_cluster:,.0f} renewals "
        "a cluster a month (ticks with nothing due cost a discovery run)",
        lambda n: (
            (renewals_per_cluster * warm_per_1000 + (ticks - renewals_per_cluster) * discovery_1000)
            * scaled(n)
            * gb
            * p["lambda_gb_second_arm64"]
        ),
    )
    add(
        "Lambda GB-s: discovery every 2 min (worker)",
        f"{discovery_1000:.2f} s per run of 1,000 clusters, {discoveries:,.0f} runs",
        lambda n: discoveries * discovery_1000 * scaled(n) * gb * p["lambda_gb_second_arm64"],
    )
    add(
        "Lambda GB-s: queueing runs (renew)",
        f"{QUEUE_SECONDS} s per tick (assumed), {ticks + discoveries:,.0f} ticks",
        lambda n: (ticks + discoveries) * QUEUE_SECONDS * gb * p["lambda_gb_second_arm64"],
    )
    add(
        "Lambda GB-s: audit events (ingest 256 MB, audit)",
        f"{EVENTS_PER_CLUSTER_DAY:g} event a cluster a day (assumed); {EVENT_SECONDS_UNLIMITED} s * "
        f"{slowdown:.2f} (the worker's slowdown at this share) + {INGEST_SECONDS} s",
        lambda n: (
            events(n)
            * (EVENT_SECONDS_UNLIMITED * slowdown * gb + INGEST_SECONDS * 0.25)
            * p["lambda_gb_second_arm64"]
        ),
    )
    add(
        "Lambda requests",
        "renew per tick, worker per shard per tick, ingest and audit per event",
        lambda n: ((ticks + discoveries) * (1 + shards(n)) + 2 * events(n)) * p["lambda_request"],
    )
    add(
        "EventBridge Scheduler",
        "one invocation per tick",
        lambda n: (ticks + discoveries) * p["scheduler_invocation"],
    )
    add(
        "SQS",
        f"send, receive, delete per queued run; {IDLE_SQS_RECEIVES_PER_MINUTE} idle polls a minute (assumed)",
        lambda n: (
            ((ticks + discoveries) * shards(n) * 3 + IDLE_SQS_RECEIVES_PER_MINUTE * MINUTES_PER_MONTH)
            * p["sqs_request"]
        ),
    )
    add(
        "DynamoDB writes",
        f"a renewal adds {ledger_bytes:.0f} B to a renewal ledger ({LEDGERS} an output, each rounded "
        f"up to 1 KB), not a registration rewrite ({item_bytes} B: {write_units} WRU); "
        f"{renewal['dynamodb_writes_per_cluster']:.3f} write requests per cluster measured, "
        f"{RUN_WRITE_UNITS} WRU a run, {EVENT_WRITE_UNITS} an event",
        lambda n: (
            (
                renewals_per_cluster * n * renewal_units
                + ticks * shards(n) * (RUN_WRITE_UNITS + LEDGERS)
                + events(n) * EVENT_WRITE_UNITS
            )
            * p["dynamodb_write_unit"]
        ),
    )
    add(
        "DynamoDB reads",
        f"registry Queries (registrations and ledgers) every {REGISTRY_MAX_AGE_MINUTES} min "
        "(strongly consistent, 4 KB units), "
        "2 GetItem per run and per event, an event's ledger bucket (an eighth of the ledgers)",
        lambda n: (
            (
                queries * shards(n) * math.ceil(n * read_units_per_item)
                + (ticks + discoveries) * shards(n) * 2
                + events(n) * (EVENT_READ_UNITS + math.ceil(n * ledger_bytes / LEDGERS / 4096))
            )
            * p["dynamodb_read_unit"]
        ),
    )
    add("API Gateway (HTTP API)", "one request per event", lambda n: events(n) * p["http_api_request"])
    add("EventBridge custom events", "one per event", lambda n: events(n) * p["eventbridge_custom_event"])
    add(
        "CloudWatch metrics and alarms",
        f"{METRICS} metrics, {ALARMS} alarms (logs not counted)",
        lambda n: METRICS * p["cloudwatch_metric_month"] + ALARMS * p["cloudwatch_alarm_month"],
    )
    return lines


def tbot_pod() -> float:
    """A tbot pod's share of an m7g.large: the larger of its CPU and memory requests' shares."""
    cpu, gib = TBOT_POD
    return max(cpu / 2, gib / 8) * PRICES["m7g_large_hour"] * 730


def memory_table(
    found: dict[int, Measured], sizes: list[int], renewal: dict[str, Any], item: int, ledger: float
) -> str:
    per_day = renewals_per_day("1h", "20m", RENEWAL_SCHEDULE_MINUTES)
    lines = [
        "| memory MB | vCPU | warm renewal s per 1,000 (runs) | its CPU-s, ÷ vCPU | cold s (runs) "
        "| discovery s (runs) "
        "| GB-s per warm renewal of 1,000 | $/month at 1,000 clusters | $ * warm s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mb, m in found.items():
        cpu = statistics.median(m.warm_cpu)
        total = sum(line.dollars[1000] for line in monthly(m, [1000], renewal, item, per_day, ledger))
        warm = statistics.median(m.warm)
        each = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
        lines.append(
            f"| {mb:,} | {mb / 1769:.2f} | {warm:.2f} ({each(m.warm)}) | {cpu:.2f}, {cpu * 1769 / mb:.2f} "
            f"| {statistics.median(m.cold):.2f} "
            f"({each(m.cold)}) | {statistics.median(m.discovery) if m.discovery else float('nan'):.2f} "
            f"({each(m.discovery)}) | {warm * mb / 1024:.2f} | {total:.2f} | {total * warm:.1f} |"
        )
    return "\n".join(lines)


def cost_table(m: Measured, sizes: list[int], renewal: dict[str, Any], item: int, ledger: float) -> str:
    per_day = renewals_per_day("1h", "20m", RENEWAL_SCHEDULE_MINUTES)
    lines_ = monthly(m, sizes, renewal, item, per_day, ledger)
    head = " | ".join(f"{n:,} clusters" for n in sizes)
    out = [f"| $/month at {m.memory_mb} MB | {head} | basis |", "|---|" + "---:|" * len(sizes) + "---|"]
    for line in lines_:
        out.append(
            f"| {line.item} | " + " | ".join(f"{line.dollars[n]:.2f}" for n in sizes) + f" | {line.basis} |"
        )
    totals = " | ".join(f"**{sum(line.dollars[n] for line in lines_):.2f}**" for n in sizes)
    out.append(f"| **total** | {totals} | |")
    pod = tbot_pod()
    cpu, gib = TBOT_POD
    out.append(
        "| a tbot pod | " + " | ".join(f"{pod:.2f}" for _ in sizes) + f" | requests {cpu:g} vCPU, "
        f"{gib * 1024:.0f} MiB on an on-demand m7g.large (${PRICES['m7g_large_hour']}/h), the larger share |"
    )
    return "\n".join(out)


SETTINGS = [  # (credential_ttl, renewal_interval, renewal schedule minutes)
    ("1h", "20m", 20),
    ("1h", "40m", 20),
    ("2h", "20m", 20),
    ("1h", "30m", 30),
    ("2h", "40m", 20),
    ("4h", "1h", 60),
    ("8h", "2h", 60),
    ("12h", "4h", 60),
    ("24h", "8h", 60),
]


def rewrites_table(steps: list[dict[str, Any]], sizes: list[int]) -> str:
    """Per cluster per day: `config` changes (each an Argo CD cache rebuild) by setting, and fleet-wide."""
    changed = {s["trigger"]: s["config_changed"] for s in steps}
    discovery = changed.get("discovery, nothing changed", 0)
    lines = [
        "| credential_ttl | renewal_interval | schedule min | `config` changes a cluster a day | "
        + " | ".join(f"Argo CD cache rebuilds a minute, {n:,} clusters" for n in sizes)
        + " |",
        "|---|---|---:|---:|" + "---:|" * len(sizes),
    ]
    for ttl, interval, schedule in SETTINGS:
        per_day = renewals_per_day(ttl, interval, schedule) + discovery * 1440 / DISCOVERY_MINUTES
        lines.append(
            f"| {ttl} | {interval} | {schedule} | {per_day:.0f} | "
            + " | ".join(f"{per_day * n / 1440:.1f}" for n in sizes)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--renewal", default=str(RESULTS / "renewal-memory-1000-*.json"), help="a glob")
    parser.add_argument("--discovery", default=str(RESULTS / "discovery-memory-1000-*.json"), help="a glob")
    parser.add_argument("--rewrite", default=str(RESULTS / "rewrite-100.json"))
    parser.add_argument("--memory-mb", type=int, help="the cost table's memory size (default: least $ * s)")
    parser.add_argument("--clusters", default="100,1000,10000")
    args = parser.parse_args()
    sizes = [int(n) for n in args.clusters.split(",")]
    renewals = _load(args.renewal)
    if not renewals:
        sys.exit(f"no renewal bench results match {args.renewal}")
    rewrite = json.loads(Path(args.rewrite).read_text())
    sizes_b = rewrite["registration_bytes"]
    item = sizes_b[len(sizes_b) // 2]
    ledger = sum(rewrite.get("ledger_bytes", [])) / len(sizes_b)
    renewal = next(row for run in renewals for row in run if row["clusters"] == 1000)
    found = measured(renewals, _load(args.discovery))
    per_day = renewals_per_day("1h", "20m", RENEWAL_SCHEDULE_MINUTES)

    def score(mb: int) -> float:
        m = found[mb]
        return sum(
            line.dollars[1000] for line in monthly(m, [1000], renewal, item, per_day, ledger)
        ) * statistics.median(m.warm)

    chosen = args.memory_mb or min(found, key=score)
    print(
        "Requests per cluster per renewal (renewal bench): Kubernetes "
        f"{renewal['kube_requests_per_cluster']:.2f} "
        f"({', '.join(f'{k} {v:.2f}' for k, v in renewal['kube_requests_by_method'].items())}), DynamoDB "
        f"write requests {renewal['dynamodb_writes_per_cluster']:.3f}; registration item {item} B, "
        f"renewal ledger {ledger:.0f} B a registration; "
        f"{len(renewals)} renewal result file(s).\n"
    )
    print(memory_table(found, sizes, renewal, item, ledger))
    print(f"\nLeast $ * warm s: {min(found, key=score)} MB.\n")
    print(cost_table(found[chosen], sizes, renewal, item, ledger))
    print()
    print(rewrites_table(rewrite["steps"], sizes))


if __name__ == "__main__":
    main()
