"""Scheduled runs fan out: one queue message per output (or per shard of a large output), each
reconciled by its own invocation.

A schedule that reconciled every output in one invocation would let one slow or failing
destination delay all the others, and would put every output's clusters inside one function
timeout. SQS and Lambda's event source mapping (with a maximum concurrency) give each output its
own invocation, retries and dead-letter queue, with no orchestration code of ours. An output with
more registrations than one invocation should carry (`SHARD_SIZE`) is split into shards by a hash
of the cluster name (`plan.shard_of`), each under its own lease.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from teleport_argocd.config.types import OutputConfig
from teleport_argocd.errors import FanOutError, MalformedRunMessage
from teleport_argocd.plan import Renewal, Scope
from teleport_argocd.reconcile import Trigger

# SendMessageBatch takes at most 10 entries.
_BATCH = 10
# A targeted run whose cluster Teleport does not list yet is queued again after each of these
# delays in turn (SQS DelaySeconds, at most 900), about 8 minutes in all, instead of holding an
# invocation while it waits; the worker's maximum concurrency bounds how many check at once.
REQUEUE_DELAYS = (15, 30, 60, 120, 240)
# A run queued again has waited in the queue: it only checks, with one more look a second later.
REQUEUED_LISTING_WAIT = timedelta(seconds=1)
# A targeted run names the few clusters one event concerns.
_MAX_CLUSTERS = 10


def shard_count(registered: int, shard_size: int) -> int:
    """How many runs an output with `registered` registrations is split into."""
    return max(1, math.ceil(registered / shard_size))


def message(output: OutputConfig, trigger: Trigger, shard: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """The body of one run: the output, what the schedule asked for, and which shard ("i/n"); for
    a targeted run, its clusters and how many times it was queued again."""
    body: dict[str, Any] = {
        "output": output.name,
        "kind": trigger.kind,
        "reason": trigger.reason,
        "renew": trigger.scope.renew.value,
        "shard": f"{shard[0]}/{shard[1]}",
    }
    if trigger.scope.clusters is not None:
        body["clusters"] = sorted(trigger.scope.clusters)
        body["attempt"] = trigger.attempt
    return body


def parse(body: str) -> tuple[str, Trigger]:
    """The output name and trigger of a queued run; raises MalformedRunMessage for anything else."""
    try:
        data = json.loads(body)
        if not isinstance(data, Mapping):
            raise TypeError("not an object")
        fields = {key: data[key] for key in ("output", "kind", "reason", "renew")}
        if not all(isinstance(value, str) and value for value in fields.values()):
            raise TypeError("empty or non-string field")
        renew = Renewal(fields["renew"])
        index, count = (int(part) for part in str(data.get("shard", "0/1")).split("/"))
        if not 0 <= index < count:
            raise ValueError(f"shard {index}/{count} out of range")
        clusters = _clusters(data.get("clusters"))
        attempt = data.get("attempt", 0)
        if (
            isinstance(attempt, bool)
            or not isinstance(attempt, int)
            or not 0 <= attempt <= len(REQUEUE_DELAYS)
        ):
            raise ValueError(f"attempt {attempt!r} out of range")
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedRunMessage(f"not a queued run: {type(exc).__name__}: {exc}"[:300]) from None
    scope = Scope(renew=renew, shard=(index, count), clusters=clusters)
    return fields["output"], Trigger(fields["kind"], fields["reason"], scope, attempt=attempt)


def _clusters(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 0 < len(value) <= _MAX_CLUSTERS:
        raise ValueError(f"clusters must be a list of 1 to {_MAX_CLUSTERS} names")
    if not all(isinstance(name, str) and name for name in value):
        raise TypeError("a cluster name is empty or not a string")
    return frozenset(value)


def requeue(client: Any, queue_url: str, outputs: Sequence[OutputConfig], trigger: Trigger) -> int | None:
    """Queue `trigger`'s targeted run of `outputs` again, delayed by the next of `REQUEUE_DELAYS`;
    returns the delay in seconds, or None when the run has waited through them all."""
    if trigger.attempt >= len(REQUEUE_DELAYS):
        return None
    delay = REQUEUE_DELAYS[trigger.attempt]
    again = replace(trigger, attempt=trigger.attempt + 1)
    for output in outputs:
        try:
            client.send_message(
                QueueUrl=queue_url, MessageBody=json.dumps(message(output, again)), DelaySeconds=delay
            )
        except (ClientError, BotoCoreError) as exc:
            raise FanOutError(f"queueing the run of {output.name} again: {exc}") from exc
    return delay


def enqueue(
    client: Any,
    queue_url: str,
    outputs: Sequence[OutputConfig],
    trigger: Trigger,
    shards: Mapping[str, int] | None = None,
) -> int:
    """Queue one run per output and shard (`shards`: output name → count, default 1), ten to a
    request; returns how many were queued, raises FanOutError naming the runs SQS refused."""
    runs = [
        (output, (index, count))
        for output in outputs
        for count in [(shards or {}).get(output.name, 1)]
        for index in range(count)
    ]
    failed: list[str] = []
    for start in range(0, len(runs), _BATCH):
        batch = runs[start : start + _BATCH]
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(message(output, trigger, shard))}
            for i, (output, shard) in enumerate(batch)
        ]
        try:
            response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            raise FanOutError(f"queueing runs of {', '.join(o.name for o, _ in batch)}: {exc}") from exc
        failed.extend(_describe(*batch[int(entry["Id"])]) for entry in response.get("Failed", []))
    if failed:
        raise FanOutError(f"SQS refused the runs of {', '.join(failed)}")
    return len(runs)


def _describe(output: OutputConfig, shard: tuple[int, int]) -> str:
    return output.name if shard[1] == 1 else f"{output.name} (shard {shard[0]}/{shard[1]})"
