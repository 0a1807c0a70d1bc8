"""X-Ray tracing of a handler, only when the function traces.

Powertools' Tracer imports the X-Ray SDK even when tracing is disabled (its handler decorator
opens subsegments on a disabled recorder), about 100 ms of every cold start. The template sets
POWERTOOLS_TRACE_DISABLED unless `EnableTracing` is on; then the handler is returned untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

Handler = TypeVar("Handler", bound=Callable[..., object])


def capture(handler: Handler) -> Handler:
    """Powertools' `capture_lambda_handler` when tracing is on, else `handler` itself."""
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true"):
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(handler)  # type: ignore[return-value]
