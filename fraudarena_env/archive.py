"""The server's store: finished matches (the archive) and live ones (the journal, see
:mod:`fraudarena_env.journal`) in one SQLite database, and replaying a match from its record.

Where. ``DATA_DIR/fraudarena.sqlite3``. ``fraudarena serve`` uses :func:`default_data_dir` unless
told ``--data-dir`` (or ``--in-memory``): ``$FRAUDARENA_DATA_DIR``, else
``$XDG_DATA_HOME/fraudarena``, else ``~/.local/share/fraudarena``. One server at a time may use a
directory (it holds ``DATA_DIR/fraudarena.lock``). Without a directory the same tables live in
memory, and only the last ``MEMORY_RECORDS`` finished matches are kept.

A record is ``{"match_id", "episode_id", "reason", "archived_at", "reset", "illegal_action",
"opponents", "actions", "state"}``: ``reset`` holds the arguments of ``Referee.reset_match`` (the
seed, task and knobs), ``illegal_action`` how the rules answered a text action they refuse
(``raise``: refused; ``penalize``: charged, the action used, as the lineage's rules did),
``opponents`` the policy SPEC of each seat the server played, ``actions`` every applied action in
order as ``{"role", "action"}`` (an action model's JSON, or ``{"action_index": k}`` for the
tensor face), and ``state`` the final ``RefereeState`` JSON, unsealed. ``reason`` is
``finished``, ``evicted`` (idle, abandoned) or ``deleted``. :func:`replay` plays ``reset`` and
``actions`` on a fresh referee and reaches ``state``.
:func:`match_record` builds a record of a match played anywhere (``fraudarena play --archive``
writes one), so ``fraudarena replay`` and its HTML page serve local matches too.

What is guaranteed. SQLite in WAL mode: each write is one transaction, so a record is stored whole
or not at all, and a crash mid-write (a torn page of the log) costs at most that transaction,
never an earlier or a later one. Archiving a match and taking it out of the journal are one
transaction. Commits reach the operating system before the server acknowledges them, which a
killed server process cannot undo. When a match ends the log's fsync starts
(:meth:`Store.sync`, on a thread of its own; the reply does not wait for it), and the match's
record follows that reply: a restart archives a finished match it finds only in the journal. A
power cut may take the last few milliseconds of commits (SQLite's ``synchronous=NORMAL``). A
write that fails (a full disk, an I/O error) raises
:class:`StorageError` and leaves the database as it was. Checkpoints (folding the log into the
database) run on a worker thread, never in a request.

A damaged record. A row the store holds but cannot read back as a record (JSON cut short or
overwritten, or JSON that is not a record: not an object, a key missing, a value of the wrong
type, another match's id; see :func:`record_refusal`) costs that match alone, never another.
:meth:`Archive.get` raises :class:`DamagedRecord` (the server answers HTTP 410
``damaged_record``, naming the match); :meth:`Archive.listing` marks a summary it cannot read
with why (``damaged``, null for the others); :meth:`Archive.records`, :func:`read_records` (so
``fraudarena export``) and the import of an old ``matches.jsonl`` skip it and log a warning
naming it; ``fraudarena replay`` names it (:func:`read_archive`) and exits 1. Nothing is
deleted: the row stays for an operator to look at.

JSON lines stay the exchange format: ``fraudarena export`` writes a database's records to a
``.jsonl`` file (:func:`write_jsonl`), and :func:`read_records` and ``fraudarena replay`` read
either. A ``matches.jsonl`` left in a data directory by an older server is imported once (torn
lines skipped) and renamed ``matches.jsonl.imported``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .faces.encoding import apply_index, index_refusal
from .referee import Referee
from .rules.catalog import ROLES
from .rules.errors import IllegalActionError, OutOfTurnError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None

logger = logging.getLogger(__name__)

DB_FILE = "fraudarena.sqlite3"
LOCK_FILE = "fraudarena.lock"
LEGACY_FILE = "matches.jsonl"
DATA_DIR_ENV = "FRAUDARENA_DATA_DIR"
SUMMARY_KEYS = ("match_id", "episode_id", "reason", "archived_at")
STATE_SUMMARY_KEYS = ("task_id", "phase", "end_reason", "grader_score", "step_count")
ILLEGAL_ACTION_MODES = ("penalize", "raise")  # a record's ``illegal_action`` (absent: raise)
MEMORY_RECORDS = 256  # kept when there is no data directory
CHECKPOINT_PAGES = 1000  # the log is folded into the database past this many pages

SCHEMA = """
CREATE TABLE IF NOT EXISTS matches (
    match_id TEXT PRIMARY KEY, archived_at REAL NOT NULL, summary TEXT NOT NULL,
    record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS live (
    match_id TEXT PRIMARY KEY, created_at REAL NOT NULL, setup TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seats (
    match_id TEXT NOT NULL, role TEXT NOT NULL, token_hash TEXT NOT NULL,
    PRIMARY KEY (match_id, role)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS steps (
    match_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT NOT NULL, action TEXT NOT NULL,
    PRIMARY KEY (match_id, seq)) WITHOUT ROWID;
"""


def default_data_dir() -> Path:
    """Where ``fraudarena serve`` keeps its store unless told otherwise."""
    explicit = os.environ.get(DATA_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "fraudarena"


class StorageError(RuntimeError):
    """A write the store could not make (full disk, I/O error). Nothing of it was stored."""


class DamagedRecord(ValueError):
    """A record the archive holds for ``match_id`` but cannot read back; ``reason`` says why (no
    part of the record's content)."""

    def __init__(self, match_id: str, reason: str):
        super().__init__(f"the archived record of match {match_id} is damaged: {reason}")
        self.match_id, self.reason = match_id, reason

    def __reduce__(self):
        return type(self), (self.match_id, self.reason)


class Store:
    """One SQLite database, on disk (``data_dir``) or in memory (None). Its connection is used by
    one thread at a time (the server's event loop, once the app runs); checkpoints run on a worker
    with its own, fsyncs on another thread."""

    def __init__(self, data_dir: str | os.PathLike | None = None):
        self.data_dir = None if data_dir is None else Path(data_dir)
        self.path = None if self.data_dir is None else self.data_dir / DB_FILE
        self._lock_file = None
        self._worker: ThreadPoolExecutor | None = None  # checkpoints
        self._worker_conn: sqlite3.Connection | None = None
        self._syncer: ThreadPoolExecutor | None = None  # fsyncs, never behind a checkpoint
        self._sync_lock = threading.Lock()
        self._sync_queued: Future | None = None  # an fsync not started yet: it covers new commits
        self._wal_fd: int | None = None
        self.last_error: str | None = None  # the last write that failed, until one succeeds
        if self.path is None:
            self.conn = sqlite3.connect(":memory:", isolation_level=None,
                                        check_same_thread=False)
            self.conn.executescript(SCHEMA)
            return
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._lock()
            self.conn = sqlite3.connect(self.path, isolation_level=None,
                                        check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            # The worker folds the log into the database; a commit never stalls on it.
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            self.conn.execute("PRAGMA busy_timeout=2000")
            self.conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            if self._lock_file is not None:
                self._lock_file.close()
            raise StorageError(f"cannot open the store in {self.data_dir}: {exc}") from exc
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="store")
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix="store-sync")

    def _lock(self) -> None:
        if fcntl is None:
            return
        self._lock_file = open(self.data_dir / LOCK_FILE, "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            self._lock_file = None
            raise StorageError(f"another fraudarena server is using {self.data_dir}; give each "
                               "server its own --data-dir") from None

    @property
    def persistent(self) -> bool:
        return self.path is not None

    @contextlib.contextmanager
    def transaction(self):
        """One atomic write; nested uses join the outer one. Raises ``StorageError`` (the whole
        transaction rolled back) when SQLite or the disk refuses it."""
        if self.conn.in_transaction:
            yield self.conn
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            raise self._refused(exc) from exc
        self.last_error = None

    def write(self, sql: str, params: tuple) -> None:
        """One statement as one atomic write, or as part of the open transaction. Alone, SQLite
        commits it itself, which spares the round trips of ``BEGIN`` and ``COMMIT`` (a journaled
        step is one). Raises ``StorageError`` as :meth:`transaction` does."""
        if self.conn.in_transaction:  # the transaction's own refusal covers it
            self.conn.execute(sql, params)
            return
        try:
            self.conn.execute(sql, params)
        except (sqlite3.Error, OSError) as exc:
            raise self._refused(exc) from exc
        self.last_error = None

    def _refused(self, exc: Exception) -> StorageError:
        """Roll back what ``exc`` interrupted and remember it: the error to raise."""
        if self.conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
        self.last_error = f"{type(exc).__name__}: {exc}"
        return StorageError(f"the store refused a write: {exc}")

    def _on_worker(self, work) -> Future:
        return _done() if self._worker is None else self._worker.submit(work)

    def _worker_connection(self) -> sqlite3.Connection:
        if self._worker_conn is None:
            self._worker_conn = sqlite3.connect(self.path, isolation_level=None,
                                                check_same_thread=False)
            self._worker_conn.execute("PRAGMA busy_timeout=2000")
        return self._worker_conn

    def sync(self) -> Future:
        """A future done once every commit so far is fsynced (at once in memory), on a thread of
        its own: an fsync takes milliseconds, which the event loop would otherwise sit out. Calls
        made before the last fsync asked for has started share it: one fsync covers them all."""
        if self._syncer is None:
            return _done()
        with self._sync_lock:
            if self._sync_queued is None:
                self._sync_queued = self._syncer.submit(self._fsync)
            return self._sync_queued

    def _fsync(self) -> None:
        with self._sync_lock:
            self._sync_queued = None  # commits from now on need the next fsync
        if self._wal_fd is None:
            wal = Path(f"{self.path}-wal")
            if not wal.exists():
                return
            # Kept open: checkpoints reset the log, but it is not deleted while the store is open
            # (and each open and close would wait for the GIL once more).
            self._wal_fd = os.open(wal, os.O_RDONLY)
        getattr(os, "fdatasync", os.fsync)(self._wal_fd)

    def checkpoint(self, force: bool = False) -> Future:
        """Fold the log into the database on the worker when it has grown (or ``force``)."""
        def fold():
            wal = Path(f"{self.path}-wal")
            if force or (wal.exists() and wal.stat().st_size > CHECKPOINT_PAGES * 4096):
                self._worker_connection().execute("PRAGMA wal_checkpoint(PASSIVE)")
        return self._on_worker(fold)

    def close(self) -> None:
        if self._worker is not None:
            with contextlib.suppress(Exception):
                self.checkpoint(force=True).result()
            self._worker.shutdown(wait=True)
            self._worker = None
        if self._syncer is not None:
            self._syncer.shutdown(wait=True)
            self._syncer = None
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None
        if self._worker_conn is not None:
            self._worker_conn.close()
            self._worker_conn = None
        self.conn.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _done() -> Future:
    done: Future = Future()
    done.set_result(None)
    return done


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The short listing of an archived match."""
    state = record.get("state")
    state = state if isinstance(state, dict) else {}
    return {**{k: record.get(k) for k in SUMMARY_KEYS},
            **{k: state.get(k) for k in STATE_SUMMARY_KEYS}}


def _is_number(value: Any) -> bool:
    """A finite JSON number the store can keep (SQLite's integers are 64-bit): NaN, infinity
    or an integer past 2**63 made the store refuse the whole import it came in."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and -2**63 <= value < 2**63


def _is_text_map(value: Any, keys, none: bool = False) -> bool:
    """Whether ``value`` is a JSON object of text values (or nulls, with ``none``) keyed by
    ``keys``."""
    return isinstance(value, dict) and all(
        (isinstance(v, str) or (none and v is None)) and k in keys for k, v in value.items())


def record_refusal(record: Any, match_id: str | None = None) -> str | None:
    """Why ``record`` is not an archive record (see the module docstring), or None when it is:
    its keys and their types, and the id of the row it was read from (``match_id``), not what its
    actions or state mean (:func:`replay` finds that). The reason quotes none of its content."""
    if not isinstance(record, dict):
        return f"it is a JSON {_json_kind(record)}, not an object"
    for key, test, what in (
            ("match_id", lambda v: isinstance(v, str), "text"),
            ("episode_id", lambda v: isinstance(v, str), "text"),
            ("reason", lambda v: isinstance(v, str), "text"),
            ("archived_at", _is_number, "a number"),
            ("reset", lambda v: isinstance(v, dict), "an object"),
            ("actions", lambda v: isinstance(v, list), "a list"),
            ("state", lambda v: isinstance(v, dict), "an object")):
        if key not in record:
            return f"it has no field {key}"
        if not test(record[key]):
            return f"its field {key} is not {what}"
    if match_id is not None and record["match_id"] != match_id:
        return "it holds the record of another match"
    if record.get("illegal_action", "raise") not in ILLEGAL_ACTION_MODES:
        return f"its field illegal_action is not one of {list(ILLEGAL_ACTION_MODES)}"
    if not _is_text_map(record.get("opponents", {}), ROLES):
        return "its field opponents is not {role: SPEC}"
    if not _is_text_map(record.get("seat_digests", {}), ROLES, none=True):
        return "its field seat_digests is not {role: digest}"
    if not isinstance(record.get("seed_chosen_by_client", False), bool):
        return "its field seed_chosen_by_client is not true or false"
    for n, step in enumerate(record["actions"]):
        if not (isinstance(step, dict) and step.get("role") in ROLES and
                isinstance(step.get("action"), (dict, str))):
            return f"its action {n} is not {{role: ROLE, action: ACTION}}"
    return None


def summary_refusal(value: Any, match_id: str) -> str | None:
    """Why ``value`` is not the stored summary of match ``match_id``, or None when it is."""
    if not isinstance(value, dict):
        return f"it is a JSON {_json_kind(value)}, not an object"
    for key in (*SUMMARY_KEYS, *STATE_SUMMARY_KEYS):
        if key not in value:
            return f"it has no field {key}"
        if isinstance(value[key], (dict, list)):
            return f"its field {key} is not a single value"
    if value["match_id"] != match_id:
        return "it holds the summary of another match"
    return None


def _json_kind(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _loaded(text: Any) -> tuple[Any, str | None]:
    """A row's JSON value, and why it has none (JSON cut short or overwritten) if it has none.
    ``NaN`` and ``Infinity``, which Python writes and reads but JSON has not (no reply could
    carry them), are no JSON either."""
    try:
        return json.loads(text, parse_constant=_no_constant), None
    except (TypeError, ValueError):  # (UnicodeDecodeError is a ValueError)
        return None, "it is not JSON (cut short or overwritten)"
    except RecursionError:
        return None, "its JSON is nested too deep to read"


def read_row(text: Any, match_id: str) -> dict[str, Any]:
    """The record a row of ``matches`` holds for ``match_id``; DamagedRecord when it holds
    none."""
    record, why = _loaded(text)
    why = why or record_refusal(record, match_id)
    if why:
        raise DamagedRecord(match_id, why)
    return record


def _row_or_damage(text: Any, match_id: str) -> dict[str, Any] | DamagedRecord:
    try:
        return read_row(text, match_id)
    except DamagedRecord as exc:
        return exc


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class Archive:
    """Archived matches, by id, in a :class:`Store` (a directory, or memory when None)."""

    def __init__(self, data_dir: str | os.PathLike | Store | None = None):
        self.store = data_dir if isinstance(data_dir, Store) else Store(data_dir)
        if self.store.persistent:
            self._import_legacy()

    def __len__(self) -> int:
        """Records stored: counted in the database, so never one that did not commit."""
        return self.store.conn.execute("SELECT COUNT(*) FROM matches").fetchone()[0]

    def __contains__(self, match_id: str) -> bool:
        return self.store.conn.execute("SELECT 1 FROM matches WHERE match_id = ?",
                                       (match_id,)).fetchone() is not None

    def insert(self, record: dict[str, Any]) -> None:
        """Store a record, inside the caller's transaction if one is open (the server archives a
        match and takes it out of the journal at once). Raises ``StorageError``."""
        text = _dump(record)
        with self.store.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO matches (match_id, archived_at, summary, record) "
                         "VALUES (?, ?, ?, ?)", (record["match_id"], record.get("archived_at")
                                                 or 0.0, _dump(summary(record)), text))
            if not self.store.persistent:
                conn.execute("DELETE FROM matches WHERE rowid NOT IN (SELECT rowid FROM matches "
                             "ORDER BY rowid DESC LIMIT ?)", (MEMORY_RECORDS,))

    def append(self, record: dict[str, Any]) -> Future:
        """Store a record in its own transaction; the future of its fsync."""
        self.insert(record)
        return self.store.sync()

    def get(self, match_id: str) -> dict[str, Any] | None:
        """The record of ``match_id``, None when there is none; :class:`DamagedRecord` when the
        store holds one it cannot read back."""
        row = self.store.conn.execute("SELECT record FROM matches WHERE match_id = ?",
                                      (match_id,)).fetchone()
        return None if row is None else read_row(row[0], match_id)

    def listing(self, limit: int = 50) -> list[dict[str, Any]]:
        """The most recently archived matches first, each with ``damaged``: None, or why its
        stored summary cannot be read (then its other fields are None): a damaged row is marked,
        and the others listed all the same."""
        rows = self.store.conn.execute("SELECT match_id, summary FROM matches "
                                       "ORDER BY rowid DESC LIMIT ?", (max(0, limit),))
        out = []
        for match_id, text in rows:
            match_id = str(match_id)
            value, why = _loaded(text)
            why = why or summary_refusal(value, match_id)
            if why:
                logger.warning("the archived summary of match %s is damaged: %s", match_id, why)
                value = {**dict.fromkeys((*SUMMARY_KEYS, *STATE_SUMMARY_KEYS)),
                         "match_id": match_id}
            out.append({**value, "damaged": why})
        return out

    def records(self):
        """Every record, oldest first; a damaged one is skipped (and logged)."""
        for match_id, text in self.store.conn.execute("SELECT match_id, record FROM matches "
                                                      "ORDER BY rowid"):
            record = _row_or_damage(text, str(match_id))
            if isinstance(record, DamagedRecord):
                logger.warning("skipping match %s in %s: %s", record.match_id,
                               self.store.path or "the archive", record)
            else:
                yield record

    def _import_legacy(self) -> None:
        legacy = self.store.data_dir / LEGACY_FILE
        if not legacy.exists():
            return
        records = []
        for record in read_jsonl(legacy):
            if why := record_refusal(record):
                logger.warning("not importing match %s from %s: its record is damaged: %s",
                               record["match_id"], legacy, why)
            else:
                records.append(record)
        with self.store.transaction():
            for record in records:
                if record["match_id"] not in self:
                    self.insert(record)
        legacy.rename(legacy.with_name(LEGACY_FILE + ".imported"))
        logger.warning("imported %d records from %s into %s", len(records), legacy,
                       self.store.path)

    def close(self) -> None:
        self.store.close()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every whole record of a JSON-lines archive, in order. A torn line (a write cut short) is
    skipped, and so is the fragment a later line was appended onto, but that later record is
    kept: a line is read from each newline-separated piece, and failing that, from its last
    ``{"match_id"`` on."""
    out = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            record = _record_in(line)
            if record is None:
                if line.strip():
                    logger.warning("skipping a torn or foreign line %d of %s", number, path)
                continue
            out.append(record)
    return out


# how many ``{"match_id"`` fragments of one line are tried (each parse reads the line's rest: a
# line of many fragments took time quadratic in its length)
_FRAGMENTS_TRIED = 8


def _record_in(line: bytes) -> dict[str, Any] | None:
    start, tries = 0, 0
    while start >= 0 and tries <= _FRAGMENTS_TRIED:
        tries += 1
        try:
            record = json.loads(line[start:])
        except RecursionError:  # nested past Python's stack: no record of ours
            return None
        except ValueError:
            start = line.find(b'{"match_id"', start + 1)
            continue
        if isinstance(record, dict) and isinstance(record.get("match_id"), str):
            return record
        return None
    return None


def write_jsonl(records, path: str | os.PathLike) -> int:
    """Write records to ``path`` as JSON lines, whole or not at all (a temporary file, fsynced,
    renamed over it); returns how many."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for record in records:
                f.write(_dump(record) + "\n")
                n += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # (no half-written file left beside the target)
        raise
    return n


def read_archive(path: str | os.PathLike, match_id: str | None = None
                 ) -> list[dict[str, Any] | DamagedRecord]:
    """Every record in an archive, in order, a damaged one as the :class:`DamagedRecord` that
    names it: a JSON-lines file, a store's database file, or its data directory; with
    ``match_id``, only that match's (from a database, read by its key: the others are never
    loaded). Reads a database without locking it, so a running server's store can be read."""
    path = Path(path)
    db = path / DB_FILE if path.is_dir() else path
    if db.suffix == ".sqlite3" or db.name == DB_FILE:
        if not db.exists():
            raise FileNotFoundError(2, "No such file or directory", str(db))
        # (as a URI, quoted: a name with "#", "?" or "%" read another file, and made one)
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        query, args = "SELECT match_id, record FROM matches ORDER BY rowid", ()
        if match_id is not None:
            query, args = ("SELECT match_id, record FROM matches WHERE match_id = ? ORDER BY "
                           "rowid"), (match_id,)
        try:
            return [_row_or_damage(text, str(mid)) for mid, text in conn.execute(query, args)]
        finally:
            conn.close()
    return [DamagedRecord(r["match_id"], why) if (why := record_refusal(r)) else r
            for r in read_jsonl(path) if match_id is None or r["match_id"] == match_id]


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every whole record in an archive (see :func:`read_archive`); a damaged one (a row of a
    database, a line of a file) is skipped and logged, as a torn line is."""
    out = []
    for record in read_archive(path):
        if isinstance(record, DamagedRecord):
            logger.warning("skipping match %s in %s: %s", record.match_id, path, record)
        else:
            out.append(record)
    return out


# ============================================================================ playing it again
def play_action(ref: Referee, role: str, action: Any, lenient: bool = False) -> bool:
    """Apply one action: ``{"action_index": k}``, or a text action (its model, or the model's
    JSON). With ``lenient`` (a match whose ``illegal_action`` is ``penalize``), a text action the
    rules refuse is charged and uses up the action, as the lineage's rules answered it; an index
    the mask refuses, and acting out of turn, always raise (``IllegalActionError``,
    ``OutOfTurnError``; the match unchanged). The one step path of the server, its journal's
    recovery and :func:`replay`. Returns whether the action was charged."""
    if isinstance(action, dict) and "action_index" in action:
        index = action["action_index"]
        if why := index_refusal(role, index):  # a record or journal from outside the process
            raise IllegalActionError(role, index, why)
        apply_index(ref, role, index)
        return False
    if isinstance(action, dict) and action.get("ad_copy") is not None and \
            action.get("tactic") is not None:  # recorded before propose_ad took one or the
        action = {k: v for k, v in action.items() if k != "tactic"}  # other: copy set the tactic
    try:
        ref.apply_model(role, action)
    except OutOfTurnError:
        raise
    except IllegalActionError as exc:
        if not lenient:
            raise
        ref.penalize(role, action, exc.reason)
        return True
    return False


def replay(record: dict[str, Any],
           on_step: Callable[[Referee, dict[str, Any]], None] | None = None) -> Referee:
    """A referee that has played the archived match again, action by action;
    ``on_step(referee, step)`` is called after each action is applied."""
    ref = Referee()
    ref.reset_match(**record["reset"])
    lenient = record.get("illegal_action") == "penalize"
    for step in record["actions"]:
        play_action(ref, step["role"], step["action"], lenient)
        if on_step is not None:
            on_step(ref, step)
    return ref


def match_record(ref: Referee, reset: dict[str, Any], actions: list[dict[str, Any]],
                 reason: str = "finished") -> dict[str, Any]:
    """An archive record of the match ``ref`` played from ``reset`` (``Referee.reset_match``'s
    arguments) through ``actions`` (``{"role", "action"}`` each, as archived), with the
    referee's own ids: what the server archives, for a match played elsewhere."""
    record = {"match_id": ref.match_id, "episode_id": ref.episode_id, "reason": reason,
              "archived_at": time.time(), "reset": dict(reset),
              # played in process: every action checked (raise), no seat played by a server
              "illegal_action": "raise", "opponents": {}, "actions": list(actions)}
    record["state"] = state_as_archived(ref, record)
    return record


def state_as_archived(ref: Referee, record: dict[str, Any]) -> dict[str, Any]:
    """``ref``'s state JSON with the record's (server's) ids, to compare with
    ``record["state"]``."""
    state = ref.state.model_dump(mode="json")
    state["match_id"], state["episode_id"] = record["match_id"], record["episode_id"]
    return state


__all__ = ["Archive", "DATA_DIR_ENV", "DB_FILE", "DamagedRecord", "Store", "StorageError",
           "default_data_dir", "match_record", "play_action", "read_archive", "read_jsonl",
           "read_records",
           "read_row", "record_refusal", "replay", "state_as_archived", "summary",
           "summary_refusal", "write_jsonl"]
