"""Fuzzing the handlers that take input from outside: whatever arrives, each returns its documented
answer and never raises.

- audit function (`functions/audit_event`): EventBridge envelopes of the right shape with hostile
  `detail` values (wrong types, deep nesting, huge strings, unicode, missing fields), and envelopes
  that are not one at all; the answer is `dropped` (with a reason), `processed` (with the outputs)
  or `not configured`. Its one documented exception, the retriable `ClusterNotListed`, cannot be
  reached here: EVENT_LISTING_WAIT_SECONDS is 0, so a targeted run never waits for a cluster;
- reload function: any JSON request; the answer is an `error` (with `problems` when it has them)
  or the `outputs` and `status`;
- ingest function: API Gateway HTTP API v2.0 payloads (events/ingest_http.json) with any body,
  base64 flag and route, answered 200, 400, 413 or 503 with a JSON body; and DynamoDB stream
  batches with any item image, answered with a `batchItemFailures` list naming only records of the
  batch.

Runs stay cheap: one LocalStack for the module, whose Teleport lists no kube cluster, so a run that
gets through (a reload, a `kube.*` event an output could select, a role event about our bot) joins
once per process (the bot is kept warm), lists nothing and writes no Secret; the module checks at
the end that the Kubernetes stand-in saw no write. Most examples are refused before any I/O.

Two inputs the properties' strategies leave out are tested on their own: strings holding a lone
surrogate (a JSON "\\ud800" escape, which Teleport's encoder never writes) and non-ASCII text
flagged as base64 (API Gateway always sends ASCII base64).

FUZZ_EXAMPLES sets the examples per test (2,000 by default; a quarter of that for the reload and
stream tests, whose examples cost most). A longer run:

    FUZZ_EXAMPLES=50000 .venv/bin/python -m pytest tests/fuzz/test_handlers_fuzz.py
"""

from __future__ import annotations

import base64
import copy
import json
import os
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as label
from hypothesis import strategies as st

from standins.handlers import LambdaContext, event, load_handler, unload_handlers
from standins.stack import LocalStack
from teleport_argocd.audit import REACTED_EVENTS
from teleport_argocd.errors import ClusterNotListed

pytestmark = [
    pytest.mark.fuzz,
    # A refused request publishes no metric, and Powertools says so every time.
    pytest.mark.filterwarnings("ignore:No application metrics to publish"),
]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "2000"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
# The reload and stream examples cost several times more (a reload that runs joins, lists and reads
# the state table; a stream batch carries up to ten events): a quarter of the examples keeps the
# file within about a minute on two cores.
FUZZ_COSTLY = settings(FUZZ, max_examples=max(1, EXAMPLES // 4))


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    """One stack for every example: a Teleport that lists nothing, the audit bus for the ingest
    function, and a targeted run that never waits for a listing."""
    with LocalStack(clusters={}, audit_bus=True) as local, local.environment():
        os.environ["EVENT_LISTING_WAIT_SECONDS"] = "0"
        os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"  # thousands of invocations; their logs are noise here
        unload_handlers()
        yield local
        assert local.kube is not None
        written = [r for r in local.kube.requests if r.verb in ("create", "update", "patch", "delete")]
        assert written == [], "a fuzzed event reached a Kubernetes write"
        unload_handlers()


@pytest.fixture(scope="module")
def audit(stack: LocalStack) -> ModuleType:
    return load_handler("audit_event")


@pytest.fixture(scope="module")
def reload_app(stack: LocalStack) -> ModuleType:
    return load_handler("reload")


@pytest.fixture(scope="module")
def ingest(stack: LocalStack) -> ModuleType:
    return load_handler("ingest")


def context(function: str) -> LambdaContext:
    return LambdaContext(function_name=f"teleport-argocd-{function}")


# -- hostile values ---------------------------------------------------------------------------

HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "\u202e\u0000",
    "é中文🙂",
    "\ufeffkube.create",
    "kube.create ",
    "KUBE.CREATE",
    "kube.create\n",
    "argocd",
    "bot-argocd",
    "argocd-clusters",
    "prod-us-east",
    "{{ .Name }}",
    "../../etc/passwd",
    "0001-01-01T00:00:00Z",
    "2025-06-02T09:14:07.512Z",
    "9999-12-31T23:59:59.999999999Z",
    "2025-13-45T99:99:99Z",
    "NaN",
    "null",
    "[]",
    "{}",
    "a" * 300,
]

texts = st.one_of(st.sampled_from(HOSTILE_STRINGS), st.text(max_size=40))
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=24)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**30, max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)),
    max_leaves=12,
)


def nested(depth: int, mapping: bool) -> Any:
    value: Any = "core"
    for _ in range(depth):
        value = {"x": value} if mapping else [value]
    return value


def mostly(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], one_in: int = 5
) -> st.SearchStrategy[Any]:
    """`good`, and `bad` once in `one_in` draws (`st.one_of` would weigh each of bad's branches alike)."""
    return st.integers(1, one_in).flatmap(lambda n: bad if n == 1 else good)


deep = st.builds(nested, st.integers(1, 60), st.booleans())
# Around the size limits: the audit function's and the ingest bodies' (EventBridge's 256 KB).
huge = st.integers(200_000, 270_000).map(lambda n: "x" * n)
# NaN and infinities: a Python dict may hold them, JSON may not (Lambda's decoder accepts them).
hostile = mostly(
    st.one_of(json_values, json_values, deep), st.sampled_from([float("nan"), float("-inf")]), 10
)

event_types = mostly(st.sampled_from(sorted(REACTED_EVENTS)), texts, one_in=3)
labels = st.one_of(st.dictionaries(texts, texts, max_size=4), st.just({"env": "prod"}))
uids = st.uuids().map(str)
ours = st.sampled_from(["argocd", "bot-argocd", "argocd-clusters"])  # our bot, its role, the role it uses
# Shaped like a Teleport event, its fields mostly of the right type (so the checks after parsing are
# reached too), each now and then hostile or missing.
details = st.fixed_dictionaries(
    {"event": mostly(event_types, hostile), "uid": mostly(uids, hostile)},
    optional={
        "time": mostly(st.sampled_from(HOSTILE_STRINGS), hostile),
        "code": mostly(st.just("T3010I"), hostile),
        "cluster_name": mostly(st.just("root"), hostile),
        "name": mostly(
            st.one_of(names, st.sampled_from(["argocd", "bot-argocd", "argocd-clusters"])), hostile
        ),
        "kube_labels": mostly(labels, hostile),
        "ei": mostly(st.integers(0, 10), hostile),
        "extra": mostly(hostile, huge, one_in=8),
    },
)
missing_fields = mostly(st.just([]), st.lists(st.sampled_from(["event", "uid", "time", "name"]), max_size=2))
details = st.builds(lambda d, drop: {k: v for k, v in d.items() if k not in drop}, details, missing_fields)
ENVELOPE = {k: v for k, v in event("kube_create.json").items() if k != "detail"}


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    """An EventBridge envelope with a hostile detail; now and then an envelope field missing or of
    the wrong type (1 in 4), or something that is not an envelope at all (1 in 20)."""
    if draw(st.integers(0, 19)) == 0:
        return draw(hostile)
    envelope: dict[str, Any] = copy.deepcopy(ENVELOPE)
    envelope["detail"] = draw(mostly(details, hostile))
    if isinstance(envelope["detail"], dict) and isinstance(envelope["detail"].get("event"), str):
        envelope["detail-type"] = envelope["detail"]["event"]
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(sorted(ENVELOPE)))
        if draw(st.booleans()):
            del envelope[key]
        else:
            envelope[key] = draw(hostile)
    return envelope


# -- audit function -----------------------------------------------------------------------------


@FUZZ
@given(payload=envelopes())
def test_audit_handler_answers_every_envelope(audit: ModuleType, payload: Any) -> None:
    try:
        result = audit.handler(payload, context("audit_event"))
    except ClusterNotListed:  # documented and retriable; unreachable with no wait for a listing
        return
    assert isinstance(result, dict)
    assert result["status"] in ("dropped", "processed", "not configured"), result
    label(f"audit: {result['status']} {str(result.get('reason', ''))[:20]}")
    if result["status"] == "dropped":
        assert isinstance(result["reason"], str) and result["reason"]
        assert all(isinstance(p, str) for p in result.get("problems", []))
    elif result["status"] == "processed":
        assert result["event"] in REACTED_EVENTS
        assert isinstance(result["outputs"], list)
        assert all(o["status"] in ("completed", "failed", "idle", "queued") for o in result["outputs"])
    json.dumps(result)  # what Lambda returns must encode


# -- reload function ------------------------------------------------------------------------------

RELOAD_KEYS = ("outputs", "force", "dry_run", "status_only", "unchanged")
requests = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "outputs": st.one_of(
                st.just(["production"]), st.lists(st.one_of(names, texts), max_size=3), hostile
            ),
            "force": st.one_of(st.booleans(), hostile),
            "dry_run": st.one_of(st.booleans(), hostile),
            "status_only": st.one_of(st.booleans(), hostile),
            "unchanged": st.one_of(st.booleans(), hostile),
        },
    ),
    st.dictionaries(st.one_of(st.sampled_from(RELOAD_KEYS), texts), hostile, max_size=4),
    hostile,
)


@FUZZ_COSTLY
@given(request=requests)
def test_reload_handler_answers_every_request(reload_app: ModuleType, request: Any) -> None:
    result = reload_app.handler(request, context("reload"))

    assert isinstance(result, dict)
    label(f"reload: {result.get('error', 'ran')[:30]}")
    if "error" in result:
        assert isinstance(result["error"], str) and result["error"]
        assert set(result) <= {"error", "problems"}
        assert all(isinstance(p, str) for p in result.get("problems", []))
    else:
        assert set(result) == {"outputs", "status"}
        assert isinstance(result["outputs"], list) and isinstance(result["status"], dict)
        assert all(o["output"] == "production" for o in result["outputs"])
    json.dumps(result)


# -- ingest function: the Event Handler plugin's POSTs ----------------------------------------------

HTTP = event("ingest_http.json")
SAMPLE = json.loads(HTTP["body"])
ROUTES = ["POST /events", "POST /sessions/{proxy+}", "$default", "GET /events", ""]

audit_events = st.builds(
    lambda base, changes, drop: {**{k: v for k, v in base.items() if k not in drop}, **changes},
    st.just(SAMPLE),
    details,
    missing_fields,
)
raw_bodies = st.one_of(
    audit_events.map(lambda e: json.dumps(e, allow_nan=True)),
    hostile.map(lambda v: json.dumps(v, allow_nan=True)),
    st.text(max_size=200),
    st.sampled_from(["", "{", '{"event":', "\x00", "\ufeff{}", '{"event":"kube.create"}' * 3]),
    st.integers(3_000, 50_000).map(lambda n: "[" * n + "]" * n),
    huge.map(lambda pad: json.dumps({"event": "kube.create", "uid": "u", "time": "t", "pad": pad})),
)


@st.composite
def http_payloads(draw: st.DrawFn) -> dict[str, Any]:
    payload = copy.deepcopy(HTTP)
    body = draw(raw_bodies)
    encoding = draw(st.sampled_from(["plain", "base64", "base64-broken", "bytes"]))
    if encoding == "plain":
        payload["body"], payload["isBase64Encoded"] = body, False
    elif encoding == "base64":
        payload["body"], payload["isBase64Encoded"] = base64.b64encode(body.encode()).decode(), True
    elif encoding == "base64-broken":  # API Gateway's base64 is ASCII; the plugin's bytes are not
        payload["body"] = body.encode("ascii", "replace").decode()
        payload["isBase64Encoded"] = True
    else:  # any bytes at all, as API Gateway base64-encodes a body it does not take for text
        payload["body"] = base64.b64encode(draw(st.binary(max_size=200))).decode()
        payload["isBase64Encoded"] = True
    if draw(st.booleans()):
        del payload["body"]
    route = draw(st.one_of(st.sampled_from(ROUTES), texts))
    payload["routeKey"] = payload["requestContext"]["routeKey"] = route
    if draw(st.integers(0, 9)) == 0:
        payload["requestContext"].pop("authentication")
    return payload


@FUZZ
@given(payload=http_payloads())
def test_ingest_http_answers_every_post(ingest: ModuleType, payload: dict[str, Any]) -> None:
    response = ingest.http_handler(payload, context("ingest"))

    assert response["statusCode"] in (200, 400, 413, 503), response
    body = json.loads(response["body"])
    label(f"http: {response['statusCode']} {body['status']}")
    assert body["status"] in ("forwarded", "ignored", "malformed", "failed")
    assert isinstance(body["detail"], str)
    assert (response["statusCode"] == 200) == (body["status"] in ("forwarded", "ignored"))


# -- ingest function: the audit table's stream ------------------------------------------------------

STREAM_RECORD = event("ingest_stream.json")["Records"][0]

TYPES = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS", "Q", ""]


def attribute_values(depth: int = 3) -> st.SearchStrategy[Any]:
    """DynamoDB attribute values, well formed or not: wrong payloads, unknown type tags, bad numbers."""
    leaf = st.one_of(
        st.builds(lambda s: {"S": s}, texts),
        st.builds(
            lambda n: {"N": n},
            st.one_of(
                st.integers().map(str),
                st.sampled_from(
                    ["abc", "NaN", "sNaN", "Infinity", "-Infinity", "1e400", "1e-400", "9" * 50, "1_0", ""]
                ),
            ),
        ),
        st.builds(lambda b: {"BOOL": b}, st.one_of(st.booleans(), hostile)),
        st.just({"NULL": True}),
        st.builds(lambda b: {"B": b}, st.one_of(st.binary(max_size=8), texts)),
        st.builds(lambda t, v: {t: v}, st.sampled_from(TYPES), hostile),
        st.builds(lambda v: {"S": "a", "N": v}, st.just("1")),
        st.just({}),
        hostile,
    )
    if depth == 0:
        return leaf
    inner = attribute_values(depth - 1)
    return st.one_of(
        leaf,
        st.builds(lambda m: {"M": m}, st.dictionaries(texts, inner, max_size=4)),
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=4)),
    )


def dynamo_map(value: Any) -> Any:
    """A plain event as DynamoDB would store it (what Teleport writes as FieldsMap)."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, int | float):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [dynamo_map(v) for v in value]}
    return {"M": {str(k): dynamo_map(v) for k, v in value.items()}}


fields_maps = st.one_of(
    audit_events.map(dynamo_map),  # shaped like Teleport's, values hostile
    attribute_values(),
    st.builds(nested, st.integers(1, 40), st.just(True)).map(dynamo_map),
)
images = st.one_of(
    st.builds(lambda fm: {"FieldsMap": fm}, fields_maps),
    st.builds(lambda f: {"Fields": {"S": f}}, raw_bodies),
    st.builds(lambda f: {"Fields": f}, attribute_values(1)),
    st.dictionaries(texts, attribute_values(1), max_size=3),
    hostile,
)


@st.composite
def stream_batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    records = []
    for i, image in enumerate(draw(st.lists(images, min_size=1, max_size=10))):
        record = copy.deepcopy(STREAM_RECORD)
        record["eventID"] = f"event-{i}"
        record["dynamodb"]["SequenceNumber"] = str(1000 + i)
        if draw(st.integers(0, 9)) == 0:
            del record["dynamodb"]["NewImage"]
        else:
            record["dynamodb"]["NewImage"] = image
        records.append(record)
    return records


@FUZZ_COSTLY
@given(records=stream_batches())
def test_ingest_stream_answers_every_batch(ingest: ModuleType, records: list[dict[str, Any]]) -> None:
    result = ingest.stream_handler({"Records": records}, context("ingest-stream"))

    assert set(result) == {"batchItemFailures"}
    failures = result["batchItemFailures"]
    label(f"stream: {len(failures)} failed")
    assert isinstance(failures, list)
    sequence_numbers = {r["dynamodb"]["SequenceNumber"] for r in records}
    assert all(set(f) == {"itemIdentifier"} and f["itemIdentifier"] in sequence_numbers for f in failures)


def test_ingest_http_refuses_a_non_ascii_base64_body(ingest: ModuleType) -> None:
    payload = copy.deepcopy(HTTP)
    payload["body"], payload["isBase64Encoded"] = "\x80", True

    response = ingest.http_handler(payload, context("ingest"))

    assert response["statusCode"] == 400


def test_ingest_http_refuses_a_lone_surrogate(ingest: ModuleType) -> None:
    payload = copy.deepcopy(HTTP)
    payload["body"] = json.dumps({**SAMPLE, "name": "\ud800"})  # json.dumps escapes it: \ud800

    response = ingest.http_handler(payload, context("ingest"))

    assert response["statusCode"] == 400


def test_ingest_stream_skips_a_lone_surrogate(ingest: ModuleType) -> None:
    record = copy.deepcopy(event("ingest_stream.json")["Records"][1])  # the legacy `Fields` string
    assert "Fields" in record["dynamodb"]["NewImage"]
    record["dynamodb"]["NewImage"]["Fields"] = {"S": json.dumps({**SAMPLE, "name": "\ud800"})}

    result = ingest.stream_handler({"Records": [record]}, context("ingest-stream"))

    assert result == {"batchItemFailures": []}


def deeply(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


def http_shape(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    payload = copy.deepcopy(HTTP)
    change(payload)
    return payload


# Shapes API Gateway never sends; each is answered 400 rather than crashing the function.
IMPOSSIBLE_POSTS = {
    "client certificate without subjectDN": http_shape(
        lambda p: p["requestContext"]["authentication"]["clientCert"].pop("subjectDN")
    ),
    "clientCert not an object": http_shape(
        lambda p: p["requestContext"]["authentication"].update(clientCert=7)
    ),
    "requestContext a string": http_shape(lambda p: p.update(requestContext="ctx")),
    "body an object": http_shape(lambda p: p.update(body=SAMPLE)),
    "body a number": http_shape(lambda p: p.update(body=12)),
    "body nested 500 levels": http_shape(lambda p: p.update(body=deeply(500))),
    "the request nested 500 levels": deeply(500),
    "isBase64Encoded a string": http_shape(lambda p: p.update(isBase64Encoded="yes")),
    "routeKey a number": http_shape(lambda p: p.update(routeKey=5)),
    "a body with a lone surrogate": http_shape(lambda p: p.update(body='{"event": "\ud800"}')),
    "not an object at all": ["POST /events"],
}


@pytest.mark.parametrize("payload", IMPOSSIBLE_POSTS.values(), ids=IMPOSSIBLE_POSTS.keys())
def test_ingest_http_answers_400_to_shapes_api_gateway_never_sends(ingest: ModuleType, payload: Any) -> None:
    response = ingest.http_handler(payload, context("ingest"))
    assert response["statusCode"] == 400, response
    assert json.loads(response["body"])["status"] == "malformed"


def stream_shape(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    batch = {"Records": [copy.deepcopy(STREAM_RECORD)]}
    change(batch)
    return batch


IMPOSSIBLE_BATCHES = {
    "Records missing": {},
    "Records an object": {"Records": {"a": 1}},
    "not an object at all": [STREAM_RECORD],
    "a record that is a string": stream_shape(lambda b: b["Records"].append("record")),
    "dynamodb not an object": stream_shape(lambda b: b["Records"][0].update(dynamodb="change")),
    "NewImage nested 500 levels": stream_shape(
        lambda b: b["Records"][0]["dynamodb"].update(NewImage={"FieldsMap": dynamo_map(deeply(500))})
    ),
}


@pytest.mark.parametrize("batch", IMPOSSIBLE_BATCHES.values(), ids=IMPOSSIBLE_BATCHES.keys())
def test_ingest_stream_skips_shapes_a_stream_never_sends(ingest: ModuleType, batch: Any) -> None:
    """A record that can never be forwarded is skipped (failing it would only block the shard)."""
    assert ingest.stream_handler(batch, context("ingest-stream")) == {"batchItemFailures": []}
