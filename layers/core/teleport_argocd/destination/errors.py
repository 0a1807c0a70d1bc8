"""Which of our errors an API server's answer means: chosen from its HTTP status here and nowhere else.

The Kubernetes API conventions (community/contributors/devel/sig-architecture/api-conventions.md,
"HTTP Status codes") give each status one meaning; each maps to the error a caller acts on:
a refusal to fix credentials or RBAC for, an object to fix, a conflict to retry, a server to wait for.
"""

from __future__ import annotations

from http import HTTPStatus

from teleport_argocd.errors import (
    DestinationConflict,
    DestinationError,
    DestinationForbidden,
    DestinationRejected,
    DestinationUnreachable,
)


def retryable(status: int) -> bool:
    """Whether the API server may answer otherwise later: 429 TooManyRequests (it asks us to wait),
    500 InternalError, 503 ServiceUnavailable, 504 Timeout and any other 5xx."""
    return status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR


def error_class(status: int) -> type[DestinationError]:
    """The error for an answer the caller did not expect.

    401 Unauthorized and 403 Forbidden: our credentials or RBAC. 400 BadRequest, 404 NotFound (a
    namespace or resource that is not there) and 422 Invalid (UnprocessableEntity): the request
    itself. 409 Conflict (AlreadyExists, a stale resourceVersion): someone else changed it. 429 and
    5xx once retried in vain: the server. Anything else is a plain DestinationError.
    """
    if status in (HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN):
        return DestinationForbidden
    if status in (HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.UNPROCESSABLE_ENTITY):
        return DestinationRejected
    if status == HTTPStatus.CONFLICT:
        return DestinationConflict
    if retryable(status):
        return DestinationUnreachable
    return DestinationError
