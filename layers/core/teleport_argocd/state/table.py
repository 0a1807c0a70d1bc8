"""The requests every part of the state store makes: one table, errors as `StateError`.

Reads are consistent; a write's failed condition is an answer (None or False), not an error;
`BatchWriteItem` leftovers are retried with jittered backoff.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from teleport_argocd.errors import StateError
from teleport_argocd.state.encoding import pk, s

# BatchWriteItem takes at most 25 items, BatchGetItem 100 keys; what DynamoDB leaves unprocessed is
# retried with jittered backoff.
BATCH = 25
_GET_BATCH = 100
_BATCH_ATTEMPTS = 8
_BATCH_BACKOFF = 0.05


def utcnow() -> datetime:
    return datetime.now(UTC)


class Table:
    """The state table and the client that reaches it; counts the requests that write."""

    def __init__(self, table_name: str, *, client: Any, clock: Callable[[], datetime] = utcnow) -> None:
        self._table = table_name
        self._client = client
        self._clock = clock
        self.writes = 0  # requests that write, for the benches; batches are sent from several threads
        self._writes_lock = threading.Lock()

    def _batch_get(self, keys: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items of `keys` that exist, read consistently, 100 keys to a `BatchGetItem`."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), _GET_BATCH):
            wanted: dict[str, Any] = {"Keys": list(keys[start : start + _GET_BATCH]), "ConsistentRead": True}
            for attempt in range(_BATCH_ATTEMPTS):
                _backoff(attempt)
                try:
                    response = self._client.batch_get_item(RequestItems={self._table: wanted})
                except (ClientError, BotoCoreError) as exc:
                    raise self._error("batch_get_item", exc) from exc
                found += response.get("Responses", {}).get(self._table, [])
                wanted = response.get("UnprocessedKeys", {}).get(self._table, {})
                if not wanted.get("Keys"):
                    break
            else:
                raise StateError(
                    f"DynamoDB batch_get_item on table {self._table}: {len(wanted['Keys'])} keys still "
                    f"unprocessed after {_BATCH_ATTEMPTS} attempts"
                )
        return found

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for attempt in range(_BATCH_ATTEMPTS):
            _backoff(attempt)
            with self._writes_lock:
                self.writes += 1
            try:
                response = self._client.batch_write_item(RequestItems={self._table: requests})
            except (ClientError, BotoCoreError) as exc:
                raise self._error("batch_write_item", exc) from exc
            requests = response.get("UnprocessedItems", {}).get(self._table, [])
            if not requests:
                return
        raise StateError(
            f"DynamoDB batch_write_item on table {self._table}: {len(requests)} items still unprocessed "
            f"after {_BATCH_ATTEMPTS} attempts"
        )

    def _query(self, output: str, prefix: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Items of `output` whose sort key starts with `prefix`, across pages."""
        kwargs.setdefault("ExpressionAttributeValues", {})
        kwargs["ExpressionAttributeValues"].update({":pk": s(pk(output)), ":prefix": s(prefix)})
        while True:
            page = self._read(
                "query",
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ConsistentRead=True,
                **kwargs,
            )
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _read(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return self._request(operation, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(operation, exc) from exc

    def _write_returning_old(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        """Issue one conditional write; the item as it was before it, or None when the condition failed."""
        response = self._conditional(operation, ReturnValues="ALL_OLD", **kwargs)
        return None if response is None else dict(response.get("Attributes", {}))

    def _write(self, operation: str, **kwargs: Any) -> bool:
        """Issue one write request; False when its condition did not hold."""
        return self._conditional(operation, **kwargs) is not None

    def _conditional(self, operation: str, **kwargs: Any) -> dict[str, Any] | None:
        with self._writes_lock:
            self.writes += 1
        try:
            return self._request(operation, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise self._error(operation, exc) from exc
        except BotoCoreError as exc:
            raise self._error(operation, exc) from exc

    def _request(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = getattr(self._client, operation)(TableName=self._table, **kwargs)
        return response

    def _error(self, operation: str, exc: Exception) -> StateError:
        return StateError(f"DynamoDB {operation} on table {self._table} failed: {exc}")


def _backoff(attempt: int) -> None:
    """Before a batch's retry: jittered, doubling from 50 ms up to 2 s."""
    if attempt:
        time.sleep(min(_BATCH_BACKOFF * 2**attempt, 2.0) * random.uniform(0.5, 1.0))
