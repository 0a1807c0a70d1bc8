"""One local stack for the end-to-end tests that need no special one: each test starts from a reset
(`LocalStack.reset`), with the functions' environment set and the handlers imported afresh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from standins.handlers import unload_handlers
from standins.stack import LocalStack


@pytest.fixture(scope="session")
def shared_stack() -> Iterator[LocalStack]:
    with LocalStack() as stack:
        yield stack


@pytest.fixture
def stack(shared_stack: LocalStack) -> Iterator[LocalStack]:
    shared_stack.reset()
    with shared_stack.environment():
        unload_handlers()
        yield shared_stack
