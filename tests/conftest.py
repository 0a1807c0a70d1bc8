"""Fixtures and markers every test directory shares.

Markers, applied by directory: `e2e` (the real handlers against a whole local stack: e2e/, and
iam/ with each function under exactly its role's statements) and `fuzz`
(property-based, FUZZ_EXAMPLES examples a test). The fast suite is what remains:

    .venv/bin/python -m pytest -m "not e2e and not fuzz"
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.aws import MotoServer

TESTS = Path(__file__).parent


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One open moto server for the run (signing off); tests that need a clean account reset it,
    and the rest name their tables, secrets and queues so they never collide."""
    with MotoServer() as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        directory = Path(str(item.path)).relative_to(TESTS).parts[0]
        if directory in ("e2e", "iam"):
            item.add_marker(pytest.mark.e2e)
        elif directory == "fuzz":
            item.add_marker(pytest.mark.fuzz)
