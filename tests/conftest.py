"""Shared pytest configuration: hypothesis profiles, where servers started by tests keep
their store, and an opponent whose move fails on demand.

The "ci" profile (selected when the CI environment variable is set) is derandomized so CI
runs are reproducible; the "dev" profile keeps random exploration for local runs.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=60, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


_stores = itertools.count()


@pytest.fixture(autouse=True)
def _server_store_in_a_temporary_directory(tmp_path_factory, monkeypatch):
    """A server a test starts without ``--data-dir`` keeps its store in a fresh directory of the
    test run (made only if used), never in the user's (``archive.default_data_dir``)."""
    store = tmp_path_factory.getbasetemp() / f"store-{next(_stores)}"
    monkeypatch.setenv("FRAUDARENA_DATA_DIR", str(store))


class FailingOpponent:
    """An opponent ``(vector, mask) -> its first legal action`` whose next move after
    ``fail_next()`` raises ConnectionError (a remote player gone)."""

    def __init__(self):
        self.armed = False

    def fail_next(self) -> None:
        self.armed = True

    def __call__(self, vector, mask) -> int:
        if self.armed:
            self.armed = False
            raise ConnectionError("the opponent's server went away")
        return int(np.flatnonzero(mask)[0])


@pytest.fixture
def failing_opponent() -> FailingOpponent:
    return FailingOpponent()
