"""The match archive: one JSON line per finished or evicted match, and replaying one.

A record is ``{"match_id", "episode_id", "reason", "archived_at", "reset", "actions", "state"}``:
``reset`` holds the arguments of ``Referee.reset_match`` (the seed, task and knobs), ``actions``
every applied action in order as ``{"role", "action"}`` (an action model's JSON, or
``{"action_index": k}`` for the tensor face), and ``state`` the final ``RefereeState`` JSON,
unsealed. ``reason`` is ``finished``, ``evicted`` (idle, or its creator reset again) or
``deleted``. Replaying ``reset`` and ``actions`` on a fresh referee reproduces ``state``.
:func:`match_record` builds a record of a match played anywhere (``fraudarena play --archive``
writes one), so ``fraudarena replay`` and its HTML page serve local matches too.

Each record is written with one ``write`` and then flushed and fsynced, so a killed server
loses at most the line it was writing; a torn last line is skipped on load. With
``background=True`` the writes happen on one worker thread, in order, and ``append`` returns a
future that is done once the record is on disk (the server answers the step that finished a
match only then); until then ``get`` serves the record from memory.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .faces.encoding import apply_index
from .referee import Referee

logger = logging.getLogger(__name__)

ARCHIVE_FILE = "matches.jsonl"
SUMMARY_KEYS = ("match_id", "episode_id", "reason", "archived_at")
MEMORY_RECORDS = 256  # kept when there is no data directory


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The short listing of an archived match."""
    state = record.get("state", {})
    return {**{k: record.get(k) for k in SUMMARY_KEYS}, "task_id": state.get("task_id"),
            "phase": state.get("phase"), "end_reason": state.get("end_reason"),
            "grader_score": state.get("grader_score"), "step_count": state.get("step_count")}


class Archive:
    """Archived matches: appended to ``data_dir/matches.jsonl``, or kept in memory (the last
    ``MEMORY_RECORDS``) when there is no data directory."""

    def __init__(self, data_dir: str | os.PathLike | None = None, background: bool = False):
        self.path = None if data_dir is None else Path(data_dir) / ARCHIVE_FILE
        self._offsets: dict[str, int] = {}  # match id -> byte offset of its line
        self._summaries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._memory: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._pending: dict[str, dict[str, Any]] = {}  # appended, not yet on disk
        self._writer = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._load()
            if background:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="archive")

    def _load(self) -> None:
        if not self.path.exists():
            return
        offset = 0
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    record = json.loads(line)
                    match_id = record["match_id"]
                except (ValueError, KeyError, TypeError):
                    logger.warning("skipping a torn or foreign line at byte %d of %s", offset,
                                   self.path)
                else:
                    self._offsets[match_id] = offset
                    self._summaries[match_id] = summary(record)
                offset += len(line)

    def __len__(self) -> int:
        return len(self._summaries)

    def __contains__(self, match_id: str) -> bool:
        return match_id in self._summaries

    def append(self, record: dict[str, Any]) -> Future | None:
        """Archive a record; with a background writer, the future of its write."""
        match_id = record["match_id"]
        self._summaries[match_id] = summary(record)
        if self.path is None:
            self._memory[match_id] = record
            while len(self._memory) > MEMORY_RECORDS:
                old, _ = self._memory.popitem(last=False)
                self._summaries.pop(old, None)
            return None
        if self._writer is None:
            self._write(record)
            return None
        self._pending[match_id] = record
        return self._writer.submit(self._write, record)

    def _write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        with open(self.path, "ab") as f:
            offset = f.tell()
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self._offsets[record["match_id"]] = offset
        self._pending.pop(record["match_id"], None)

    def close(self) -> None:
        """Wait for the background writes (if any) and stop the writer."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None

    def get(self, match_id: str) -> dict[str, Any] | None:
        if self.path is None:
            return self._memory.get(match_id)
        record = self._pending.get(match_id)
        if record is not None:
            return record
        offset = self._offsets.get(match_id)
        if offset is None:
            return None
        with open(self.path, "rb") as f:
            f.seek(offset)
            return json.loads(f.readline())

    def listing(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recently archived matches first."""
        return list(reversed(self._summaries.values()))[:max(0, limit)]


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every whole record in an archive file, in order (a torn line is skipped)."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def replay(record: dict[str, Any],
           on_step: Callable[[Referee, dict[str, Any]], None] | None = None) -> Referee:
    """A referee that has played the archived match again, action by action;
    ``on_step(referee, step)`` is called after each action is applied."""
    ref = Referee()
    ref.reset_match(**record["reset"])
    for step in record["actions"]:
        role, action = step["role"], step["action"]
        if "action_index" in action:
            apply_index(ref, role, action["action_index"])
        else:
            ref.apply_model(role, action)
        if on_step is not None:
            on_step(ref, step)
    return ref


def match_record(ref: Referee, reset: dict[str, Any], actions: list[dict[str, Any]],
                 reason: str = "finished") -> dict[str, Any]:
    """An archive record of the match ``ref`` played from ``reset`` (``Referee.reset_match``'s
    arguments) through ``actions`` (``{"role", "action"}`` each, as archived), with the
    referee's own ids: what the server archives, for a match played elsewhere."""
    record = {"match_id": ref.match_id, "episode_id": ref.episode_id, "reason": reason,
              "archived_at": time.time(), "reset": dict(reset), "actions": list(actions)}
    record["state"] = state_as_archived(ref, record)
    return record


def state_as_archived(ref: Referee, record: dict[str, Any]) -> dict[str, Any]:
    """``ref``'s state JSON with the record's (server's) ids, to compare with
    ``record["state"]``."""
    state = ref.state.model_dump(mode="json")
    state["match_id"], state["episode_id"] = record["match_id"], record["episode_id"]
    return state


__all__ = ["ARCHIVE_FILE", "Archive", "match_record", "read_records", "replay",
           "state_as_archived", "summary"]
