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
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from teleport_argocd.config.types import OutputConfig
from teleport_argocd.errors import FanOutError, MalformedRunMessage
from teleport_argocd.plan import Renewal, Scope
from teleport_argocd.reconcile import Trigger

# SendMessageBatch takes at most 10 entries.
_BATCH = 10


def shard_count(registered: int, shard_size: int) -> int:
    """How many runs an output with `registered` registrations is split into."""
    return max(1, math.ceil(registered / shard_size))


def message(output: OutputConfig, trigger: Trigger, shard: tuple[int, int] = (0, 1)) -> dict[str, str]:
    """The body of one run: the output, what the schedule asked for, and which shard ("i/n")."""
    return {
        "output": output.name,
        "kind": trigger.kind,
        "reason": trigger.reason,
        "renew": trigger.scope.renew.value,
        "shard": f"{shard[0]}/{shard[1]}",
    }


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
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedRunMessage(f"not a queued run: {type(exc).__name__}: {exc}"[:300]) from None
    scope = Scope(renew=renew, shard=(index, count))
    return fields["output"], Trigger(fields["kind"], fields["reason"], scope)


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
