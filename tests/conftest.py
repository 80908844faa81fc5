"""Shared pytest configuration: hypothesis profiles.

The "ci" profile (selected when the CI environment variable is set) is derandomized so CI
runs are reproducible; the "dev" profile keeps random exploration for local runs.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=60, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=60)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
