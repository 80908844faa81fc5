"""The journal of live matches: what a restarted server needs to resume every match it was
serving, in the store of :mod:`fraudarena_env.archive`.

A match is deterministic from its setup and its actions, so that is all the journal keeps: the
setup when the match is created (ids, ``reset_match`` arguments, how illegal text actions are
answered, the server's opponents), a hash of each seat token when it is issued, and each accepted
action, each in its own transaction committed before the server answers the message that caused
it. A seat token itself is never stored: a reconnecting player presents it, and its SHA-256 is
compared. Archiving a match deletes its journal in the same transaction that stores its record.

On start the server reads :meth:`Journal.matches` and plays each one again
(``fraudarena_env.server.MatchPool.recover``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from .archive import Store

SEQ_GAP = "journal of match {match_id} skips from action {have} to {seq}"


def token_hash(token: str) -> str:
    """What the journal (and a live seat) keeps of a seat token. Tokens are 144 random bits, so a
    plain SHA-256 cannot be reversed by search."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: Any, digest: str | None) -> bool:
    return isinstance(token, str) and digest is not None and \
        hmac.compare_digest(token_hash(token), digest)


@dataclass
class JournaledMatch:
    """One live match as the journal holds it."""

    match_id: str
    setup: dict[str, Any]
    seats: dict[str, str] = field(default_factory=dict)  # role -> token hash
    actions: list[dict[str, Any]] = field(default_factory=list)  # {"role", "action"}, in order
    broken: str | None = None  # why its actions cannot be played again, if they cannot


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _object(text: Any) -> dict[str, Any] | None:
    """A journal row's JSON object, or None when the row holds something else."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):  # (a value nested past Python's stack)
        return None
    return value if isinstance(value, dict) else None


class Journal:
    """Writes and reads the live matches of one :class:`~fraudarena_env.archive.Store`. Every
    write raises ``StorageError`` (and stores nothing) when the store refuses it."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, match_id: str, setup: dict[str, Any], created_at: float) -> None:
        self.store.write("INSERT INTO live (match_id, created_at, setup) VALUES (?, ?, ?)",
                         (match_id, created_at, _dump(setup)))

    def seat(self, match_id: str, role: str, digest: str) -> None:
        self.store.write("INSERT OR REPLACE INTO seats (match_id, role, token_hash) "
                         "VALUES (?, ?, ?)", (match_id, role, digest))

    def step(self, match_id: str, seq: int, role: str, action: dict[str, Any]) -> None:
        """Action number ``seq`` (from 0) of the match."""
        self.store.write("INSERT INTO steps (match_id, seq, role, action) VALUES (?, ?, ?, ?)",
                         (match_id, seq, role, _dump(action)))

    def discard(self, match_id: str) -> None:
        """Forget a match (inside the transaction that archives it)."""
        with self.store.transaction() as conn:
            for table in ("steps", "seats", "live"):
                conn.execute(f"DELETE FROM {table} WHERE match_id = ?", (match_id,))

    def __len__(self) -> int:
        return self.store.conn.execute("SELECT COUNT(*) FROM live").fetchone()[0]

    def __contains__(self, match_id: str) -> bool:
        return self.store.conn.execute("SELECT 1 FROM live WHERE match_id = ?",
                                       (match_id,)).fetchone() is not None

    def matches(self) -> list[JournaledMatch]:
        """Every journaled match, oldest first. A match whose rows cannot be read back (actions
        not numbered 0, 1, 2, ..., a setup or an action that is not a JSON object: a journal
        edited by hand, or damaged) says so in ``broken``; the others are read all the same."""
        conn = self.store.conn
        out = {}
        for mid, text in conn.execute("SELECT match_id, setup FROM live "
                                      "ORDER BY created_at, rowid"):
            setup = _object(text)
            out[mid] = JournaledMatch(mid, setup or {}, broken=None if setup is not None else
                                      f"the setup of match {mid} is not a JSON object")
        for mid, role, digest in conn.execute("SELECT match_id, role, token_hash FROM seats"):
            if mid in out:
                out[mid].seats[role] = digest
        for mid, seq, role, text in conn.execute(
                "SELECT match_id, seq, role, action FROM steps ORDER BY match_id, seq"):
            match = out.get(mid)
            if match is None or match.broken:
                continue
            action = _object(text)
            if seq != len(match.actions):
                match.broken = SEQ_GAP.format(match_id=mid, have=len(match.actions), seq=seq)
            elif action is None:
                match.broken = f"action {seq} of match {mid} is not a JSON object"
            else:
                match.actions.append({"role": role, "action": action})
        return list(out.values())


__all__ = ["Journal", "JournaledMatch", "token_hash", "token_matches"]
