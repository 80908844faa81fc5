"""FraudArena over WebSockets, for remote and untrusted agents: three role sockets that share one
referee per match, a small REST API, and an archive of every finished match.

Needs the ``server`` extra (``pip install -e ".[server]"``). Start it with ``fraudarena serve``
(or ``python -m fraudarena_env.server``); it binds 127.0.0.1 unless told otherwise.
:mod:`fraudarena_env.client` holds the clients.

Routes

* ``/ws/fraudster``, ``/ws/investigator``, ``/ws/auditor``: one socket speaks for one role.
* ``GET /api/v1/matches``: archived matches (live ones too with ``--diagnostics``);
  ``POST /api/v1/matches`` (body: reset data) creates a match and returns its id and the three
  seat tokens; ``GET /api/v1/matches/{id}``: a live match's public summary or an archived
  record; ``GET /api/v1/matches/{id}/replay.html``: an archived match as one self-contained
  page (:mod:`fraudarena_env.replay_page`); ``DELETE /api/v1/matches/{id}`` (header ``X-Seat-Token``: one of its seat tokens)
  ends and archives it.
* ``GET /matches``: live match ids, only with ``--diagnostics`` (else just their number).
* ``GET /healthz``: liveness and occupancy.

Messages: the lineage's wire format. JSON text frames (or binary frames of UTF-8 JSON) of the
form ``{"type": T, "data": {...}}``; an absent or null ``data`` is ``{}``. T is one of

* ``reset``: data may hold ``seed``, ``episode_id``, ``task_id``, ``max_rounds``,
  ``max_proposals``, ``max_fraudster_actions_per_turn``, ``max_investigator_actions_per_turn``,
  ``allowed_categories`` (bounded; nulls and unknown keys are ignored) and ``obs_format``. It
  creates a match and gives this socket its role's seat;
* ``join``: data holds ``match_id``, and ``seat_token`` to take back a seat already held (a
  reconnect), and optionally ``obs_format``;
* ``step``: the role's action JSON (``metadata`` is accepted and ignored), or
  ``{"action_index": k}`` (the tensor face);
* ``obs`` (data may hold ``obs_format``), ``state``, ``close`` (no reply; the socket closes).

Replies, one per message, in order:

* ``{"type": "observation", "data": {...}}``: the role's observation JSON plus ``match_id``,
  ``role``, ``phase``, ``round_number``, ``max_rounds`` and ``rounds_remaining`` (reset and join
  replies add ``seat_token``). ``obs_format`` ``"tensor"`` adds ``observation`` and
  ``action_mask`` as lists; ``"tensor_sparse"`` sends only those two, as base64 sparse vectors
  (see :func:`sparse_json`), with the header fields, ``done`` and ``reward`` (the fast face).
* ``{"type": "state", "data": {...}}``: ``RefereeState`` JSON as this role may see it (see
  :mod:`fraudarena_env.faces.views`; everything once the match is done).
* ``{"type": "error", "data": {"message", "code"}}``, code one of ``ERROR_CODES``. A refused
  message changes nothing, and its reply quotes at most a short excerpt of it.

Seats and ids. Match ids and seat tokens come from ``secrets``. The first socket to hold a
role's seat keeps it; another socket gets ``role_taken`` unless it presents the seat token from
the holder's reset or join reply, which moves the seat to it (the old socket's next message gets
``no_match``). A seed the server draws is never shown before the match is done.

Limits. At most ``max_matches`` live matches and ``max_matches_per_connection`` created by one
socket and still live (``capacity_reached``); frames over ``max_message_bytes``
(``message_too_large``); a sweeper archives matches idle for ``idle_timeout`` seconds (attached
or not). When a socket resets again, the match it leaves is archived if it made it and no other
socket is attached to it.

Archive. Every finished or evicted match is appended to ``--data-dir``/matches.jsonl (see
:mod:`fraudarena_env.archive`); ``fraudarena replay FILE`` re-renders one.

Only the event loop touches the pool, and no handler awaits between reading a match and changing
it, so each message is applied atomically.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import contextlib
import gc
import hmac
import json
import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import ValidationError

from .archive import Archive, state_as_archived
from .faces.encoding import N_ACTIONS, Observer, apply_index
from .faces.views import sealed_state
from .models import ACTION_MODELS
from .referee import Referee
from .rules.catalog import MATCH_KNOBS, ROLES
from .rules.errors import IllegalActionError

logger = logging.getLogger(__name__)

RESET_KEYS = ("seed", "episode_id", "task_id", *MATCH_KNOBS)
OBS_FORMATS = ("json", "tensor", "tensor_sparse")
assert 2**16 > max(N_ACTIONS.values())  # sparse indices are uint16
MESSAGE_TYPES = ("reset", "join", "step", "obs", "state", "close")
ERROR_CODES = ("invalid_json", "reset_error", "missing_match_id", "unknown_match", "no_match",
               "validation_error", "phase_violation", "execution_error", "unknown_type",
               "fatal_error", "role_taken", "capacity_reached", "message_too_large")
MAX_ID_LENGTH = 128
MAX_ERROR_CHARS = 400  # an error reply's message never runs longer
EXCERPT = 40  # characters of a client's input an error may quote
# How uvicorn should run the app: no per-message compression (it cost more CPU than the rest of
# a step: observations are small and mostly fresh numbers), and the sans-I/O websockets
# protocol. uvicorn closes frames beyond ws_max_size; below it, an oversized message gets a
# ``message_too_large`` reply.
UVICORN_OPTIONS = {"ws": "websockets-sansio", "ws_per_message_deflate": False}


@dataclass
class ServerConfig:
    max_matches: int = 256
    max_matches_per_connection: int = 8
    idle_timeout: float | None = 900.0  # seconds; None: never sweep
    sweep_interval: float = 30.0
    max_message_bytes: int = 64 * 1024
    data_dir: str | None = None  # None: the archive is kept in memory only
    diagnostics: bool = False  # list live match ids on GET /matches and /api/v1/matches
    observer_cache: int = 3 * 128  # tensor-face observers kept (three per recent match)
    # Seconds between the server's own full garbage collections; Python's automatic collector
    # is off while the app runs. Its collections found no garbage (the game state holds no
    # reference cycles) but walked every young object of the live matches: pauses of 5-15 ms,
    # about twice a second under load, that stalled every socket. None: leave it alone.
    collect_interval: float | None = 60.0

    def __post_init__(self):
        for name in ("max_matches", "max_matches_per_connection", "max_message_bytes",
                     "observer_cache"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.idle_timeout is not None and self.idle_timeout < 0:
            raise ValueError(f"idle_timeout must be >= 0 or None, got {self.idle_timeout!r}")
        if self.sweep_interval <= 0:
            raise ValueError(f"sweep_interval must be > 0, got {self.sweep_interval!r}")
        if self.collect_interval is not None and self.collect_interval <= 0:
            raise ValueError(f"collect_interval must be > 0 or None, got "
                             f"{self.collect_interval!r}")


class ProtocolError(Exception):
    """A request the server answers with an error reply (``code`` is one of ERROR_CODES)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """A short repr of client input, safe to quote in a reply."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def validation_message(exc: ValidationError) -> str:
    """What failed validation, by field, without echoing the input."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(excerpt(p, 24) if isinstance(p, str) and len(p) > 24 else str(p)
                         for p in err.get("loc", ())) or "data"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


# ============================================================================ the pool
class Seat:
    """One role's place in a match: its token, and the socket holding it (if any)."""

    __slots__ = ("token", "holder")

    def __init__(self):
        self.token: str | None = None
        self.holder: Session | None = None

    def issue(self) -> str:
        self.token = secrets.token_urlsafe(18)
        return self.token

    def accepts(self, token: Any) -> bool:
        return isinstance(token, str) and self.token is not None and \
            hmac.compare_digest(token.encode("utf-8", "surrogatepass"), self.token.encode())


class MatchEntry:
    """One live match: its referee, its seats, and the actions applied so far."""

    def __init__(self, referee: Referee, reset_args: dict[str, Any], episode_id: str | None):
        self.match_id = "m_" + secrets.token_urlsafe(16)
        self.episode_id = episode_id or self.match_id
        self.referee = referee
        self.reset_args = reset_args
        self.seats = {role: Seat() for role in ROLES}
        self.actions: list[dict[str, Any]] = []
        self.last_active = time.monotonic()
        self.closed: str | None = None  # why it left the pool
        self.archived = False

    @property
    def connected_roles(self) -> list[str]:
        return [r for r in ROLES if self.seats[r].holder is not None]

    def touch(self) -> None:
        self.last_active = time.monotonic()

    def summary(self) -> dict[str, Any]:
        """What anyone holding the id may know."""
        ref = self.referee
        return {"match_id": self.match_id, "task_id": ref.task.task_id, "phase": ref.phase,
                "round_number": ref.round_number, "max_rounds": ref.max_rounds,
                "done": ref.done, "step_count": ref.step_count,
                "connected_roles": self.connected_roles, "live": True}

    def record(self, reason: str) -> dict[str, Any]:
        record = {"match_id": self.match_id, "episode_id": self.episode_id, "reason": reason,
                  "archived_at": time.time(), "reset": self.reset_args, "actions": self.actions}
        record["state"] = state_as_archived(self.referee, record)
        return record


class ObserverCache:
    """Tensor-face observers for the most recently observed (match, role) pairs.

    An observer follows one referee incrementally and rebuilds itself from the event log when
    handed another, so observers can be shared: the recently active matches keep theirs, an
    idle match holds none, and memory stays bounded however many matches are live."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._lru: OrderedDict[tuple[str, str], Observer] = OrderedDict()
        self._spare: dict[str, list[Observer]] = {role: [] for role in ROLES}

    def get(self, match_id: str, role: str) -> Observer:
        key = (match_id, role)
        obs = self._lru.get(key)
        if obs is not None:
            self._lru.move_to_end(key)
            return obs
        if self._spare[role]:
            obs = self._spare[role].pop()
        elif len(self._lru) >= self.capacity:
            obs = self._reuse(role)
        else:
            obs = Observer(role)
        self._lru[key] = obs
        return obs

    def _reuse(self, role: str) -> Observer:
        for key in self._lru:  # the least recently used observer of this role
            if key[1] == role:
                return self._lru.pop(key)
        self._lru.popitem(last=False)
        return Observer(role)

    def forget(self, match_id: str) -> None:
        for role in ROLES:
            obs = self._lru.pop((match_id, role), None)
            if obs is not None:
                self._spare[role].append(obs)


class MatchPool:
    """The live matches of one app, keyed by match id, and the archive of the others."""

    def __init__(self, config: ServerConfig, archive: Archive):
        self.config = config
        self.archive = archive
        self.entries: dict[str, MatchEntry] = {}
        self.observers = ObserverCache(config.observer_cache)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, match_id: str) -> MatchEntry | None:
        return self.entries.get(match_id)

    def create(self, data: dict[str, Any]) -> MatchEntry:
        """A new match from reset data, or ProtocolError (and nothing created)."""
        kwargs = {k: data[k] for k in RESET_KEYS if data.get(k) is not None}
        episode_id = kwargs.pop("episode_id", None)
        if episode_id is not None and (not isinstance(episode_id, str) or not episode_id or
                                       len(episode_id) > MAX_ID_LENGTH or
                                       _has_lone_surrogate(episode_id)):
            raise ProtocolError("reset_error", "episode_id must be a non-empty string of at "
                                f"most {MAX_ID_LENGTH} characters, got {excerpt(episode_id)}")
        if len(self.entries) >= self.config.max_matches:
            self.sweep()
        if len(self.entries) >= self.config.max_matches:
            raise ProtocolError("capacity_reached", f"the server is full ({len(self.entries)} "
                                "live matches); finish or leave one, or try again later")
        if kwargs.get("seed") is None:  # drawn here, so the archive can replay the match
            kwargs["seed"] = secrets.randbits(63)
        referee = Referee()
        try:
            referee.reset_match(**kwargs)
        except (ValueError, TypeError) as exc:
            raise ProtocolError("reset_error", f"could not start the match: {exc}") from None
        entry = MatchEntry(referee, kwargs, episode_id)
        self.entries[entry.match_id] = entry
        logger.info("match %s created (%d live)", entry.match_id, len(self.entries))
        return entry

    def finish(self, entry: MatchEntry):
        """Archive a match that has just ended (it stays live while sockets are attached);
        returns the future of the archive write, if it is still under way."""
        if not entry.archived:
            entry.archived = True
            return self.archive.append(entry.record("finished"))
        return None

    def drop(self, entry: MatchEntry, reason: str) -> None:
        """Take a match out of the pool, archiving it if that was not done yet."""
        if self.entries.get(entry.match_id) is not entry:
            return
        del self.entries[entry.match_id]
        self.observers.forget(entry.match_id)
        entry.closed = reason
        if not entry.archived:
            entry.archived = True
            self.archive.append(entry.record(reason))
        for seat in entry.seats.values():
            if seat.holder is not None:
                seat.holder.lose(f"match {entry.match_id} was {reason}")
        logger.info("match %s %s (%d live)", entry.match_id, reason, len(self.entries))

    def release(self, entry: MatchEntry) -> None:
        """Drop a finished match nobody is attached to."""
        if entry.referee.done and not entry.connected_roles:
            self.drop(entry, "finished")

    def sweep(self, now: float | None = None) -> int:
        """Archive and drop every match idle for ``idle_timeout``; returns how many."""
        timeout = self.config.idle_timeout
        if timeout is None:
            return 0
        now = time.monotonic() if now is None else now
        stale = [e for e in self.entries.values() if now - e.last_active >= timeout]
        for e in stale:
            self.drop(e, "finished" if e.referee.done else "evicted")
        return len(stale)

    def live_ids(self) -> dict[str, dict[str, Any]]:
        return {mid: e.summary() for mid, e in self.entries.items()}


# ============================================================================ one socket
class Session:
    """One socket: its role, the match it holds a seat in, the matches it created and how it
    wants its observations."""

    def __init__(self, role: str):
        self.role = role
        self.entry: MatchEntry | None = None
        self.obs_format = "json"
        self.created: list[MatchEntry] = []
        self.lost: str | None = None  # why this socket lost its seat

    def take_seat(self, entry: MatchEntry) -> str:
        """Hold this role's seat in ``entry`` (moving it from any other socket); returns the
        seat token, issued on first use."""
        seat = entry.seats[self.role]
        if seat.holder is not None and seat.holder is not self:
            seat.holder.lose(f"the {self.role} seat of match {entry.match_id} was taken back "
                             "by a socket presenting its seat token")
        seat.holder = self
        self.entry, self.lost = entry, None
        entry.touch()
        return seat.token or seat.issue()

    def lose(self, why: str) -> None:
        self.entry, self.lost = None, why

    def leave(self, pool: MatchPool) -> None:
        entry, self.entry = self.entry, None
        if entry is not None and entry.seats[self.role].holder is self:
            entry.seats[self.role].holder = None
            entry.touch()
            pool.release(entry)

    def live_created(self) -> int:
        self.created = [e for e in self.created if e.closed is None]
        return len(self.created)


def _message(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "data": data}, separators=(",", ":"))


def error_message(message: str, code: str) -> str:
    if len(message) > MAX_ERROR_CHARS:
        message = message[:MAX_ERROR_CHARS - 3] + "..."
    return _message("error", {"message": message, "code": code})


def _obs_format(data: dict, current: str) -> str:
    fmt = data.get("obs_format")
    if fmt is None:
        return current
    if fmt not in OBS_FORMATS:
        raise ProtocolError("validation_error", f"obs_format must be one of {list(OBS_FORMATS)}"
                            f", got {excerpt(fmt)}")
    return fmt


def _b64(array: np.ndarray) -> str:
    return binascii.b2a_base64(array, newline=False).decode("ascii")


def sparse_json(vector: np.ndarray, values: bool = True) -> str:
    """A mostly-zero vector as the JSON text of ``{"size", "index", "value"}``: base64 of its
    nonzero positions (little-endian uint16) and of their values (little-endian float32; left
    out for a 0/1 mask). An observation is about a sixth nonzero, so this is a fraction of the
    dense JSON. Built as text: base64 needs no escaping, and ``json.dumps`` would scan its few
    kilobytes character by character."""
    index = (vector != 0).nonzero()[0]  # a bool scan: several times faster than on floats
    text = f'{{"size":{vector.size},"index":"{_b64(index.astype("<u2"))}"'
    if values:
        text += f',"value":"{_b64(vector[index].astype("<f4"))}"'
    return text + "}"


def observation_message(pool: MatchPool, entry: MatchEntry, role: str, obs_format: str,
                        obs=None, **extra: Any) -> str:
    """An observation reply: the role's observation (``obs``, its model, when the step just
    built it) with the header fields and ``extra``."""
    ref = entry.referee
    header = {"match_id": entry.match_id, "role": role, "phase": ref.phase,
              "round_number": ref.round_number, "max_rounds": ref.max_rounds,
              "rounds_remaining": ref.rounds_remaining()}
    if obs_format == "tensor_sparse":
        vector, mask = pool.observers.get(entry.match_id, role).observe(ref)
        head = _message("observation", {**header, "done": ref.done,
                                        "reward": ref.totals[ROLES.index(role)],
                                        "metadata": {}, **extra})
        return (f'{head[:-2]},"observation":{sparse_json(vector)},'
                f'"action_mask":{sparse_json(mask, values=False)}}}}}')
    if obs is None:
        obs = getattr(ref, f"build_{role}_observation")()
    if role == "auditor" and not ref.done:  # the record, without the investigator's rewards
        obs = obs.model_copy(update={"investigator_actions": [
            {**e, "reward": None} for e in obs.investigator_actions]})
    if obs_format == "tensor":
        vector, mask = pool.observers.get(entry.match_id, role).observe(ref)
        header.update(observation=vector.tolist(), action_mask=mask.tolist())
    # The observation is serialised by pydantic, straight to text (several times faster than a
    # dict through json.dumps), and the header fields, which replace its own, follow it.
    body = obs.model_dump_json(exclude=header.keys())
    tail = json.dumps({**header, **extra}, separators=(",", ":"))
    sep = "," if body != "{}" else ""
    return f'{{"type":"observation","data":{body[:-1]}{sep}{tail[1:]}}}'


def _apply_step(entry: MatchEntry, role: str, data: dict[str, Any]):
    """Validate and apply one step; returns the role's observation model (None for an index
    step). Raises ProtocolError, and leaves the match untouched, when the step is refused."""
    ref = entry.referee
    index = None
    if "action_index" in data:  # the tensor face
        index = data["action_index"]
        if set(data) - {"action_index", "metadata"}:
            raise ProtocolError("validation_error", "a step by action_index takes no other "
                                f"fields; got {excerpt(sorted(data))}")
        n = N_ACTIONS[role]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise ProtocolError("validation_error", f"action_index must be an integer in "
                                f"[0, {n}) for the {role}, got {excerpt(index)}")
        record = {"action_index": index}
    else:  # the text face
        try:
            action = ACTION_MODELS[role].model_validate(data)
        except ValidationError as exc:
            raise ProtocolError("validation_error", f"invalid {role} action: "
                                f"{validation_message(exc)}") from None
        record = None
    try:
        if index is not None:
            apply_index(ref, role, index)
            obs = None
        else:
            obs = getattr(ref, f"step_as_{role}")(action)
    except PermissionError as exc:  # OutOfTurnError: not this role's turn, or the match is over
        raise ProtocolError("phase_violation", f"{role} cannot act now: "
                            f"{getattr(exc, 'reason', exc)}") from None
    except IllegalActionError as exc:
        what = f"action_index {index} is masked now" if index is not None else \
            f"illegal {role} action"
        raise ProtocolError("execution_error", f"{what}: {exc.reason}; the match is "
                            "unchanged") from None
    if record is None:
        record = action.model_dump(mode="json", exclude_none=True, exclude={"metadata"})
    entry.actions.append({"role": role, "action": record})
    return obs


class Handler:
    """Answers the messages of one socket."""

    def __init__(self, pool: MatchPool, role: str):
        self.pool = pool
        self.session = Session(role)
        self.durable = None  # the archive write the next reply must wait for

    @property
    def role(self) -> str:
        return self.session.role

    def _entry(self) -> MatchEntry:
        entry = self.session.entry
        if entry is None:
            if self.session.lost:
                raise ProtocolError("no_match", f"this socket has no match: {self.session.lost}")
            raise ProtocolError("no_match", f"this {self.role} socket has no match yet: send "
                                "reset (to create one) or join (with a match_id) first")
        entry.touch()
        return entry

    def handle(self, raw: str | bytes) -> str | None:
        """The reply to one frame, or None for ``close``. Raises only on internal faults."""
        try:
            return self._dispatch(raw)
        except ProtocolError as exc:
            return error_message(exc.message, exc.code)

    def _dispatch(self, raw: str | bytes) -> str | None:
        limit = self.pool.config.max_message_bytes
        size = len(raw) if isinstance(raw, bytes) or len(raw) * 4 <= limit else \
            len(raw.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise ProtocolError("message_too_large", f"a message may be at most {limit} bytes; "
                                f"this one has {size}")
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ProtocolError("invalid_json", f"the frame is not valid JSON: {exc.msg} at "
                                f"position {exc.pos}") from None
        except (ValueError, RecursionError) as exc:  # bad UTF-8, too deep, huge numbers
            raise ProtocolError("invalid_json", "the frame is not valid JSON: "
                                f"{type(exc).__name__}") from None
        if not isinstance(msg, dict):
            raise ProtocolError("invalid_json", "a message must be a JSON object "
                                "{\"type\": ..., \"data\": {...}}, got a "
                                f"{type(msg).__name__}")
        kind = msg.get("type")
        if kind not in MESSAGE_TYPES:
            raise ProtocolError("unknown_type", f"message type {excerpt(kind)} is not one of "
                                f"{', '.join(MESSAGE_TYPES)}")
        data = msg.get("data")
        if data is None:
            data = {}
        elif not isinstance(data, dict):
            raise ProtocolError("validation_error", f"'data' must be a JSON object, got a "
                                f"{type(data).__name__}")
        if "\\u" in (raw if isinstance(raw, str) else "\\u") and _has_lone_surrogate(data):
            raise ProtocolError("validation_error", "the data holds a lone UTF-16 surrogate "
                                "(\\ud800-\\udfff), which is not text")
        return getattr(self, f"on_{kind}")(data)

    def _observation(self, entry: MatchEntry, fmt: str, **extra: Any) -> str:
        return observation_message(self.pool, entry, self.role, fmt, **extra)

    def on_reset(self, data: dict[str, Any]) -> str:
        session, pool = self.session, self.pool
        fmt = _obs_format(data, session.obs_format)
        # The match this socket leaves, when it made it and nobody else is attached, is
        # abandoned: it is archived now rather than by the sweeper.
        leaving = session.entry
        abandoned = leaving is not None and leaving in session.created and not any(
            s.holder is not None and s.holder is not session for s in leaving.seats.values())
        cap = pool.config.max_matches_per_connection
        if session.live_created() - abandoned >= cap:
            raise ProtocolError("capacity_reached", f"this socket already created {cap} live "
                                "matches; finish or leave them first")
        entry = pool.create(data)  # raises, and creates nothing, when refused
        if leaving is not None:
            session.leave(pool)
            if abandoned:
                pool.drop(leaving, "finished" if leaving.referee.done else "evicted")
        session.created.append(entry)
        token = session.take_seat(entry)
        session.obs_format = fmt
        return self._observation(entry, fmt, seat_token=token)

    def on_join(self, data: dict[str, Any]) -> str:
        match_id = data.get("match_id")
        if not match_id or not isinstance(match_id, str):
            raise ProtocolError("missing_match_id", "join needs data.match_id, the id a reset "
                                f"reply carried (got {excerpt(match_id)})")
        fmt = _obs_format(data, self.session.obs_format)
        entry = self.pool.get(match_id)
        if entry is None:
            raise ProtocolError("unknown_match", f"no live match has id {excerpt(match_id)} "
                                "(it may have ended and been archived)")
        session = self.session
        seat = entry.seats[self.role]
        token = data.get("seat_token")
        if seat.holder is not session:
            if seat.token is not None and not seat.accepts(token):
                raise ProtocolError("role_taken", f"the {self.role} seat of this match is "
                                    "held; present its seat_token to take it back")
            if session.entry is not None:
                session.leave(self.pool)
        token = session.take_seat(entry)
        session.obs_format = fmt
        return self._observation(entry, fmt, seat_token=token)

    def on_step(self, data: dict[str, Any]) -> str:
        entry = self._entry()
        obs = _apply_step(entry, self.role, data)
        if entry.referee.done:
            self.durable = self.pool.finish(entry)
        return observation_message(self.pool, entry, self.role, self.session.obs_format, obs)

    def on_obs(self, data: dict[str, Any]) -> str:
        entry = self._entry()
        fmt = self.session.obs_format = _obs_format(data, self.session.obs_format)
        return self._observation(entry, fmt)

    def on_state(self, data: dict[str, Any]) -> str:
        entry = self._entry()
        return _message("state", sealed_state(entry.referee, self.role, entry.match_id,
                                              entry.episode_id))

    def on_close(self, data: dict[str, Any]) -> None:
        return None


async def serve_socket(websocket: WebSocket, pool: MatchPool, role: str) -> None:
    """Run one role socket until the client closes it or leaves."""
    await websocket.accept()
    handler = Handler(pool, role)
    try:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            raw = frame.get("text")
            if raw is None:
                raw = frame.get("bytes") or b""
            try:
                reply = handler.handle(raw)
            except Exception as exc:
                match = handler.session.entry.match_id if handler.session.entry else None
                logger.exception("internal fault serving %s (match %s)", role, match)
                await websocket.send_text(error_message(
                    f"internal server error: {type(exc).__name__}", "fatal_error"))
                handler.session.leave(pool)  # before the close frame: the client sees it done
                await websocket.close(code=1011)
                break
            if reply is None:  # close
                handler.session.leave(pool)
                await websocket.close()
                break
            if handler.durable is not None:  # the match is over: on disk before we say so
                durable, handler.durable = handler.durable, None
                await asyncio.wrap_future(durable)
            await websocket.send_text(reply)
    except WebSocketDisconnect:
        pass
    except Exception:  # the client went away mid-send, or the transport failed
        logger.debug("%s socket ended", role, exc_info=True)
    finally:
        handler.session.leave(pool)


# ============================================================================ the app
def create_app(config: ServerConfig | None = None, **options: Any) -> FastAPI:
    """A FastAPI app serving FraudArena. ``options`` are ``ServerConfig`` fields (used when no
    config is given). Its pool is ``app.state.pool``."""
    from . import __version__

    config = config or ServerConfig(**options)
    pool = MatchPool(config, Archive(config.data_dir, background=True))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        async def sweeper():
            while True:
                await asyncio.sleep(config.sweep_interval)
                try:
                    pool.sweep()
                except Exception:  # pragma: no cover - keep sweeping
                    logger.exception("sweep failed")

        async def collector():
            while True:
                await asyncio.sleep(config.collect_interval)
                gc.collect()

        tasks = [asyncio.create_task(sweeper())]
        collecting = gc.isenabled() and config.collect_interval is not None
        if collecting:
            # Everything loaded so far lives as long as the server: out of the collector's way.
            gc.collect()
            gc.freeze()
            gc.disable()
            tasks.append(asyncio.create_task(collector()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if collecting:
                gc.unfreeze()
                gc.enable()
            for entry in list(pool.entries.values()):  # nothing live is lost at shutdown
                pool.drop(entry, "finished" if entry.referee.done else "evicted")
            pool.archive.close()

    app = FastAPI(title="FraudArena", version=__version__, lifespan=lifespan,
                  description="Three-role ad-fraud game: WebSocket role endpoints.")
    app.state.pool = pool

    def endpoint(role: str):
        async def play(websocket: WebSocket) -> None:
            await serve_socket(websocket, pool, role)
        return play

    for role in ROLES:
        app.add_api_websocket_route(f"/ws/{role}", endpoint(role), name=f"ws_{role}")

    def live_listing() -> dict[str, Any]:
        if config.diagnostics:
            return {"active_matches": pool.live_ids(), "live": len(pool)}
        return {"active_matches": {}, "live": len(pool),
                "note": "live match ids are listed only when the server runs with --diagnostics"}

    @app.get("/matches")
    async def matches() -> dict[str, Any]:
        return live_listing()

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "live": len(pool), "max_matches": config.max_matches,
                "archived": len(pool.archive)}

    @app.get("/api/v1/matches")
    async def list_matches(limit: int = 50) -> dict[str, Any]:
        return {**live_listing(), "archived": pool.archive.listing(min(max(limit, 0), 1000))}

    @app.post("/api/v1/matches")
    async def create_match(request: Request):
        body = await request.body()
        if len(body) > config.max_message_bytes:
            return _http_error(413, "message_too_large", "the body is too large")
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return _http_error(400, "invalid_json", "the body is not valid JSON")
        if not isinstance(data, dict) or _has_lone_surrogate(data):
            return _http_error(400, "validation_error", "the body must be a JSON object of "
                               "reset data")
        try:
            entry = pool.create(data)
        except ProtocolError as exc:
            return _http_error(503 if exc.code == "capacity_reached" else 400, exc.code,
                               exc.message)
        return {"match_id": entry.match_id, "episode_id": entry.episode_id,
                "task_id": entry.referee.task.task_id,
                "seat_tokens": {role: entry.seats[role].issue() for role in ROLES}}

    @app.get("/api/v1/matches/{match_id}")
    async def get_match(match_id: str):
        entry = pool.get(match_id)
        if entry is not None:
            return entry.summary()
        record = pool.archive.get(match_id)
        if record is None:
            return _http_error(404, "unknown_match", f"no match has id {excerpt(match_id)}")
        return {**record, "live": False}

    @app.get("/api/v1/matches/{match_id}/replay.html")
    async def replay_page(match_id: str):
        record = pool.archive.get(match_id)
        if record is None:
            return _http_error(404, "unknown_match", f"no archived match has id "
                               f"{excerpt(match_id)} (a live match's page is served once it is "
                               "archived)")
        from .replay_page import replay_html

        # Replaying takes milliseconds per match; off the loop all the same.
        page = await asyncio.to_thread(replay_html, record)
        return HTMLResponse(page)

    @app.delete("/api/v1/matches/{match_id}")
    async def delete_match(match_id: str, request: Request):
        entry = pool.get(match_id)
        if entry is None:
            return _http_error(404, "unknown_match", f"no live match has id {excerpt(match_id)}")
        token = request.headers.get("x-seat-token")
        if not any(seat.accepts(token) for seat in entry.seats.values()):
            return _http_error(403, "role_taken", "deleting a match needs one of its seat "
                               "tokens in the X-Seat-Token header")
        pool.drop(entry, "deleted")
        return {"match_id": match_id, "deleted": True}

    return app


def _http_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message[:MAX_ERROR_CHARS], "code": code}, status_code=status)


# ============================================================================ command line
def spawn(port: int, *options: str, timeout: float = 30.0, quiet: bool = False):
    """Start ``fraudarena serve`` on 127.0.0.1:``port`` in a child process and wait until it
    accepts connections (for benchmarks and tests). Returns the ``Popen``; raises
    ``RuntimeError`` (after killing it) when it does not come up in ``timeout`` seconds."""
    import socket
    import subprocess
    import sys

    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen([sys.executable, "-m", "fraudarena_env.server", "--port", str(port),
                             "--log-level", "warning", *options], stdout=out, stderr=out)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the server did not start on port {port}")


def build_parser(prog: str = "fraudarena serve") -> argparse.ArgumentParser:
    d = ServerConfig()
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve FraudArena over WebSockets: /ws/fraudster, "
        "/ws/investigator, /ws/auditor, and the REST API under /api/v1.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--data-dir", default=None,
                        help="directory of the match archive (matches.jsonl); default: keep "
                        "archived matches in memory only")
    parser.add_argument("--max-matches", type=int, default=d.max_matches,
                        help=f"live matches at most (default {d.max_matches})")
    parser.add_argument("--max-matches-per-connection", type=int,
                        default=d.max_matches_per_connection,
                        help="live matches one socket may have created (default "
                        f"{d.max_matches_per_connection})")
    parser.add_argument("--idle-timeout", type=float, default=d.idle_timeout,
                        help="seconds after which an idle match is archived and dropped "
                        f"(default {d.idle_timeout:g}; negative: never)")
    parser.add_argument("--max-message-bytes", type=int, default=d.max_message_bytes,
                        help=f"largest message accepted (default {d.max_message_bytes})")
    parser.add_argument("--diagnostics", action="store_true",
                        help="list live match ids on GET /matches and /api/v1/matches")
    parser.add_argument("--log-level", default="info",
                        choices=("critical", "error", "warning", "info", "debug"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """``fraudarena serve``: run the app with uvicorn until interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = ServerConfig(
            max_matches=args.max_matches,
            max_matches_per_connection=args.max_matches_per_connection,
            idle_timeout=None if args.idle_timeout < 0 else args.idle_timeout,
            sweep_interval=min(30.0, max(args.idle_timeout, 1.0) / 2),
            max_message_bytes=args.max_message_bytes, data_dir=args.data_dir,
            diagnostics=args.diagnostics)
    except ValueError as exc:
        parser.error(str(exc))
    import uvicorn

    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level,
                **UVICORN_OPTIONS, ws_max_size=4 * config.max_message_bytes)
    return 0


__all__ = ["ERROR_CODES", "UVICORN_OPTIONS", "MatchEntry", "MatchPool", "ServerConfig",
           "create_app", "main", "spawn"]

if __name__ == "__main__":
    raise SystemExit(main())
