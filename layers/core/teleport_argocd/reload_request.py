"""What a manual reload may ask for: the reload function's request, read by a pydantic model.

The reload function imports this at its first request, not at its own import: pydantic is 60-90 ms
of a cold start, and no other function needs it. The cost moves into the first invocation of an
execution environment, where a reload then spends seconds reconciling anyway.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.utilities.parser import BaseModel, ValidationError, parse
from pydantic import ConfigDict, Field

MAX_OUTPUTS = 100
MAX_NAME = 253


class ReloadRequest(BaseModel):
    """`outputs` empty means all; `force` rewrites every Secret (else only what is new, changed,
    failed or due for renewal); `dry_run` writes nothing; `unchanged` lists unchanged clusters too."""

    model_config = ConfigDict(extra="forbid")

    # Output names are unique and few: a longer list is a mistake, never a reason to run long.
    outputs: list[Annotated[str, Field(max_length=MAX_NAME)]] = Field(default=[], max_length=MAX_OUTPUTS)
    force: bool = True
    dry_run: bool = False
    status_only: bool = False
    unchanged: bool = False


def read_request(event: Any) -> ReloadRequest | list[str]:
    """The request, or every problem with it as `path: message` (an empty event asks for the defaults)."""
    try:
        return parse(event=event or {}, model=ReloadRequest)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
