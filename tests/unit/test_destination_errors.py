"""The one choice of our error from an API server's HTTP status (destination.errors), as a table.

Each row names the meaning the Kubernetes API conventions give the status (api-conventions.md,
"HTTP Status codes"; the Status reason the API server sends with it) and the error it becomes.
"""

from __future__ import annotations

import pytest

from teleport_argocd.destination.errors import error_class, retryable
from teleport_argocd.errors import (
    DestinationConflict,
    DestinationError,
    DestinationForbidden,
    DestinationRejected,
    DestinationUnreachable,
)

TABLE = [
    # (status, Kubernetes reason, our error, retried first)
    (400, "BadRequest: the request itself is malformed", DestinationRejected, False),
    (401, "Unauthorized: no or an expired credential", DestinationForbidden, False),
    (403, "Forbidden: RBAC or an admission policy refuses", DestinationForbidden, False),
    (404, "NotFound: no such namespace, object or resource type", DestinationRejected, False),
    (405, "MethodNotAllowed: the resource does not support the verb", DestinationError, False),
    (409, "Conflict / AlreadyExists: a stale resourceVersion or a name taken", DestinationConflict, False),
    (410, "Gone: an expired list continue token", DestinationError, False),
    (415, "UnsupportedMediaType: a patch type the resource refuses", DestinationError, False),
    (422, "Invalid: a field the object's validation refuses", DestinationRejected, False),
    (429, "TooManyRequests: wait (Retry-After) and try again", DestinationUnreachable, True),
    (500, "InternalError: the server failed; it may work later", DestinationUnreachable, True),
    (502, "BadGateway: a proxy in front of the API server", DestinationUnreachable, True),
    (503, "ServiceUnavailable: the server is not ready", DestinationUnreachable, True),
    (504, "Timeout / ServerTimeout: the server did not finish in time", DestinationUnreachable, True),
]


@pytest.mark.parametrize(("status", "reason", "error", "retried"), TABLE, ids=[str(row[0]) for row in TABLE])
def test_each_status_chooses_its_error(
    status: int, reason: str, error: type[DestinationError], retried: bool
) -> None:
    assert error_class(status) is error, reason
    assert retryable(status) is retried, reason


def test_the_answers_a_writer_expects_are_no_error_class_of_their_own() -> None:
    """200, 201 and 202 are judged by the caller before any error is chosen; were one ever passed, it
    is a plain DestinationError, never one a caller would act on as a refusal or a conflict."""
    assert {error_class(s) for s in (200, 201, 202)} == {DestinationError}
    assert not any(retryable(s) for s in (200, 201, 202, 304))
