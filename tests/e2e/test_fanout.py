"""Scheduled runs fan out through SQS, one message per output, to the worker function."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from standins.handlers import drain_runs, emitted_metrics, event, invoke, unload_handlers
from standins.stack import ARGOCD_NAMESPACE, LocalStack, default_outputs
from teleport_argocd import fanout
from teleport_argocd.argocd import secret_name
from teleport_argocd.errors import MalformedRunMessage
from teleport_argocd.plan import Renewal


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    second = {**default_outputs()[0], "name": "platform", "secret_name_prefix": "platform"}
    second["selectors"] = [{"labels": {"team": "payments"}}]
    with LocalStack(fan_out=True, outputs=[*default_outputs(), second]) as stack, stack.environment():
        unload_handlers()
        yield stack


def test_the_schedule_queues_one_run_per_output_and_the_worker_runs_each(stack: LocalStack) -> None:
    assert stack.kube is not None
    result = invoke("renew", event("schedule.json"))
    assert result == {"status": "queued", "outputs": 2}
    assert not stack.kube.requests  # the schedule itself writes nothing

    answers = drain_runs(stack.queue_url, stack.aws.client("sqs"))

    assert answers == [{"batchItemFailures": []}, {"batchItemFailures": []}]
    written = {
        (prefix, cluster)
        for prefix in ("teleport.argocd-cluster", "platform")
        for cluster in ("prod-us-east", "prod-eu-west", "dev-sandbox")
        if stack.kube.secret(ARGOCD_NAMESPACE, secret_name(prefix, "root", cluster))
    }
    assert written == {
        ("teleport.argocd-cluster", "prod-us-east"),
        ("teleport.argocd-cluster", "prod-eu-west"),
        ("platform", "prod-us-east"),
        ("platform", "dev-sandbox"),
    }


def test_discovery_queues_runs_that_write_only_what_changed(stack: LocalStack) -> None:
    invoke("renew", event("schedule.json"))
    drain_runs(stack.queue_url, stack.aws.client("sqs"))
    assert stack.kube is not None and stack.teleport is not None
    writes = len(stack.kube.requests)
    stack.teleport.add_kube_cluster("agent-enrolled", labels={"env": "prod", "team": "platform"})

    invoke("renew", {**event("schedule.json"), "trigger": "discovery"})
    drain_runs(stack.queue_url, stack.aws.client("sqs"))

    new = [r for r in stack.kube.requests[writes:] if r.verb != "get"]
    assert [(r.verb, r.status) for r in new] == [("patch", 201)]  # one apply that created it


def test_a_queued_run_names_its_output_and_renewal() -> None:
    name, trigger = fanout.parse(
        '{"output": "production", "kind": "discovery", "reason": "tick", "renew": "none"}'
    )
    assert (name, trigger.kind, trigger.scope.renew) == ("production", "discovery", Renewal.NONE)
    targeted = (
        '{"output": "p", "kind": "audit", "reason": "r", "renew": "all", "clusters": ["a"], "attempt": 2}'
    )
    name, trigger = fanout.parse(targeted)
    assert (trigger.scope.clusters, trigger.attempt) == (frozenset({"a"}), 2)
    base = '{"output": "x", "kind": "k", "reason": "r", "renew": "all"'
    for body in (
        "",
        "[]",
        '{"output": "x"}',
        '{"output": "x", "kind": "k", "reason": "r", "renew": "sometimes"}',
        base + ', "clusters": []}',
        base + ', "clusters": [1]}',
        base + ', "clusters": "a"}',
        base + f', "clusters": {json.dumps([str(i) for i in range(11)])}}}',
        base + ', "clusters": ["a"], "attempt": -1}',
        base + ', "clusters": ["a"], "attempt": true}',
        base + ', "clusters": ["a"], "attempt": 99}',
    ):
        with pytest.raises(MalformedRunMessage):
            fanout.parse(body)


def test_a_large_output_is_split_into_shards_that_each_write_only_their_clusters(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.kube is not None and stack.teleport is not None
    monkeypatch.setenv("SHARD_SIZE", "1")  # one registration a shard, so two outputs of two make four
    invoke("renew", event("schedule.json"))
    drain_runs(stack.queue_url, stack.aws.client("sqs"))
    new = [f"prod-new-{i}" for i in range(6)]
    for name in new:
        stack.teleport.add_kube_cluster(name, labels={"env": "prod"})
    before = len(stack.kube.requests)

    assert invoke("renew", event("schedule.json")) == {"status": "queued", "outputs": 4}
    answers = drain_runs(stack.queue_url, stack.aws.client("sqs"))

    assert answers == [{"batchItemFailures": []}] * 4
    creates = [r for r in stack.kube.requests[before:] if (r.verb, r.status) == ("patch", 201)]
    assert len(creates) == len(new)  # each new cluster written once, by the one shard it hashes to
    for name in new:
        assert stack.kube.secret(ARGOCD_NAMESPACE, secret_name("teleport.argocd-cluster", "root", name))


@pytest.fixture
def waiting(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    """An event run waits a second in its invocation, and in the queue without delay (moto honours
    SQS DelaySeconds, which would only slow the test)."""
    monkeypatch.setenv("EVENT_LISTING_WAIT_SECONDS", "1")
    monkeypatch.setattr(fanout, "REQUEUE_DELAYS", (0, 0, 0))
    return stack


def kube_create(name: str) -> dict[str, Any]:
    payload = event("kube_create.json")
    payload["detail"].update(name=name, uid=str(uuid.uuid4()), kube_labels={"env": "prod"})
    return payload


def test_an_event_whose_cluster_is_not_listed_yet_waits_in_the_queue_not_in_its_invocation(
    waiting: LocalStack,
) -> None:
    stack = waiting
    assert stack.kube is not None and stack.teleport is not None
    started = time.monotonic()
    answer = invoke("audit_event", kube_create("late-prod"))
    assert answer["status"] == "waiting" and answer["retry_in_seconds"] == 0
    assert time.monotonic() - started < 10  # one second of waiting, not the minute it held before
    stack.teleport.add_kube_cluster("late-prod", labels={"env": "prod"})  # its agent heartbeats

    answers = drain_runs(stack.queue_url, stack.aws.client("sqs"))

    assert answers == [{"batchItemFailures": []}] * len(answers) and answers
    assert stack.kube.secret(ARGOCD_NAMESPACE, secret_name("teleport.argocd-cluster", "root", "late-prod"))


def test_an_event_for_a_cluster_that_never_appears_is_given_up_after_the_last_delay(
    waiting: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = waiting
    assert invoke("audit_event", kube_create("ghost"))["status"] == "waiting"
    capsys.readouterr()

    answers = drain_runs(stack.queue_url, stack.aws.client("sqs"))

    # The one output whose selectors could pick it (env: prod) checks once per delay, then gives up.
    assert answers == [{"batchItemFailures": []}] * 3
    assert emitted_metrics(capsys.readouterr().out)["EventRunsAbandoned"] == 1
