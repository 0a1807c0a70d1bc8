"""The requests every part of the state store makes: one table, errors as `StateError`.

Reads are consistent; a write's failed condition is an answer (None or False), not an error;
`BatchWriteItem` leftovers are retried with jittered backoff.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from teleport_argocd.errors import StateError
from teleport_argocd.state.encoding import pk, s

# BatchWriteItem takes at most 25 items; unprocessed ones are retried with jittered backoff.
BATCH = 25
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

    def _batch_write(self, requests: list[dict[str, Any]]) -> None:
        for attempt in range(_BATCH_ATTEMPTS):
            if attempt:
                time.sleep(min(_BATCH_BACKOFF * 2**attempt, 2.0) * random.uniform(0.5, 1.0))
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
        self.writes += 1
        try:
            response = self._request(operation, ReturnValues="ALL_OLD", **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise self._error(operation, exc) from exc
        except BotoCoreError as exc:
            raise self._error(operation, exc) from exc
        return dict(response.get("Attributes", {}))

    def _write(self, operation: str, **kwargs: Any) -> bool:
        """Issue one write request; False when its condition did not hold."""
        return self._write_returning_old(operation, **kwargs) is not None

    def _request(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        response: dict[str, Any] = getattr(self._client, operation)(TableName=self._table, **kwargs)
        return response

    def _error(self, operation: str, exc: Exception) -> StateError:
        return StateError(f"DynamoDB {operation} on table {self._table} failed: {exc}")
