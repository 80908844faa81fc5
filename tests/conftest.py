"""Shared pytest configuration: hypothesis profiles, and where servers started by tests keep
their store.

The "ci" profile (selected when the CI environment variable is set) is derandomized so CI
runs are reproducible; the "dev" profile keeps random exploration for local runs.
"""

from __future__ import annotations

import itertools
import os

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
