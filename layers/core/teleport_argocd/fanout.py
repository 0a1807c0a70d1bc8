"""Scheduled runs fan out: one queue message per output, each reconciled by its own invocation.

A schedule that reconciled every output in one invocation would let one slow or failing
destination delay all the others, and would put every output's clusters inside one function
timeout. SQS and Lambda's event source mapping (with a maximum concurrency) give each output its
own invocation, retries and dead-letter queue, with no orchestration code of ours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from teleport_argocd.config import OutputConfig
from teleport_argocd.errors import FanOutError, MalformedRunMessage
from teleport_argocd.plan import Renewal, Scope
from teleport_argocd.reconcile import Trigger

# SendMessageBatch takes at most 10 entries.
_BATCH = 10


def message(output: OutputConfig, trigger: Trigger) -> dict[str, str]:
    """The body of one output's run: its name and what the schedule asked for (a whole-output run)."""
    return {
        "output": output.name,
        "kind": trigger.kind,
        "reason": trigger.reason,
        "renew": trigger.scope.renew.value,
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
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedRunMessage(f"not a queued run: {type(exc).__name__}: {exc}"[:300]) from None
    return fields["output"], Trigger(fields["kind"], fields["reason"], Scope(renew=renew))


def enqueue(client: Any, queue_url: str, outputs: Sequence[OutputConfig], trigger: Trigger) -> int:
    """Queue one run per output, ten to a request; raises FanOutError naming the outputs not queued."""
    failed: list[str] = []
    for start in range(0, len(outputs), _BATCH):
        batch = outputs[start : start + _BATCH]
        entries = [
            {"Id": str(i), "MessageBody": json.dumps(message(output, trigger))}
            for i, output in enumerate(batch)
        ]
        try:
            response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            raise FanOutError(f"queueing runs of {', '.join(o.name for o in batch)}: {exc}") from exc
        failed.extend(batch[int(entry["Id"])].name for entry in response.get("Failed", []))
    if failed:
        raise FanOutError(f"SQS refused the runs of output(s) {', '.join(failed)}")
    return len(outputs)
