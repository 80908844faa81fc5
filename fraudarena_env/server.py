"""FraudArena over WebSockets: three role endpoints that share one referee per match.

Needs the ``server`` extra (``pip install -e ".[server]"``). Start it with
``python -m fraudarena_env.server --port 8000``; :func:`main` takes the same arguments, for the
CLI's ``serve`` command. :mod:`fraudarena_env.client` is a small synchronous client for it.

Routes

* ``/ws/fraudster``, ``/ws/investigator``, ``/ws/auditor``: one socket speaks for one role. The
  socket that sends ``reset`` creates a match; the other roles ``join`` it by ``match_id``.
* ``GET /matches``: the live matches (``{"active_matches": {match_id: {...}}, ...}``).
* ``GET /healthz``: liveness and pool occupancy.

Messages (JSON text frames, or binary frames of UTF-8 JSON; the lineage's multi-agent wire
format)

Client to server, ``{"type": T, "data": {...}}`` (a missing, null or empty ``data`` is ``{}``)
with T one of

* ``reset``: data may hold ``seed``, ``episode_id``, ``task_id``, ``max_rounds``,
  ``max_proposals``, ``max_fraudster_actions_per_turn``, ``max_investigator_actions_per_turn``,
  ``allowed_categories`` (null values are ignored, other keys too) and ``obs_format``;
* ``join``: data holds ``match_id`` (and optionally ``obs_format``);
* ``step``: data is the role's action JSON (validated with its pydantic action model), or
  ``{"action_index": k}`` for action ``k`` of the role's discrete catalogue (the tensor face);
* ``obs`` (data may hold ``obs_format``), ``state``, ``close`` (no reply; the socket closes).

Server to client, one reply per message, in order:

* ``{"type": "observation", "data": {...}}``: the role's observation model as JSON, plus
  ``match_id``, ``role``, ``phase``, ``round_number``, ``max_rounds`` and ``rounds_remaining``.
  With ``obs_format: "tensor"`` it also carries ``observation`` (the role's float vector, as in
  the PettingZoo env) and ``action_mask`` (0/1 per action index; all zeros off turn). The
  format is remembered by the socket until changed; the default is ``"json"``.
* ``{"type": "state", "data": {...}}``: the referee's ``RefereeState`` as JSON, plus
  ``match_id``.
* ``{"type": "error", "data": {"message": ..., "code": ...}}`` where code is one of
  ``invalid_json`` (not JSON, or not a JSON object), ``reset_error`` (bad reset data, unknown
  task, server full), ``missing_match_id``, ``unknown_match``, ``no_match`` (step/obs/state
  before reset or join), ``validation_error`` (the data does not validate, or an action index
  outside the catalogue), ``phase_violation`` (not this role's turn, or the match is over),
  ``execution_error`` (a well-formed action that the rules refuse now, e.g. a masked action
  index), ``unknown_type`` or ``fatal_error`` (an internal fault; the socket is then closed).
  After any error but ``fatal_error`` the socket stays usable, and a refused step leaves the
  match exactly as it was.

Match ids. The referee derives a match id from the seed, task and knobs, so two resets with the
same settings would collide. The pool key is ``episode_id`` when the reset gives one, else the
referee's id; if that key is already live, ``-2``, ``-3``, ... is appended (the smallest free
suffix). The id in every reply is the pool key, so always join by the id the server returned.

Pool. Matches live in ``app.state.pool`` (no module-level state), at most ``max_matches`` of
them. A match is dropped as soon as it is over and no socket is attached to it. When a reset
finds the pool full, it evicts one match that no other socket is attached to and that is over,
or is the one the resetting socket is leaving, or has been idle ``idle_timeout`` seconds
(finished ones first, then least recently used); failing that it is refused with
``reset_error``. A match left unfinished by all its sockets stays joinable until evicted.

Each match has an ``asyncio.Lock``; every read or change of its referee happens under it, and
every message is answered inside its own ``try``, so bad input costs one error reply and nothing
else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from .catalog import MATCH_KNOBS, ROLES
from .encoding import N_ACTIONS, OPS, Observer, op_to_model
from .errors import IllegalActionError
from .models import ACTION_MODELS
from .referee import Referee

logger = logging.getLogger(__name__)

RESET_KEYS = ("seed", "episode_id", "task_id", *MATCH_KNOBS)
OBS_FORMATS = ("json", "tensor")
ERROR_CODES = ("invalid_json", "reset_error", "missing_match_id", "unknown_match", "no_match",
               "validation_error", "phase_violation", "execution_error", "unknown_type",
               "fatal_error")
MAX_ID_LENGTH = 128
DEFAULT_MAX_MATCHES = 256
DEFAULT_IDLE_TIMEOUT = 900.0


class ProtocolError(Exception):
    """A request the server answers with an error reply (``code`` is one of ERROR_CODES)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# ============================================================================ the pool
class MatchEntry:
    """One live match: its referee, its lock, the sockets attached per role and one tensor-face
    ``Observer`` per role (made on first use)."""

    def __init__(self, match_id: str, referee: Referee):
        self.match_id = match_id
        self.referee = referee
        self.lock = asyncio.Lock()
        self.connections = dict.fromkeys(ROLES, 0)
        self.observers: dict[str, Observer] = {}
        self.created = self.last_active = time.monotonic()

    @property
    def n_connections(self) -> int:
        return sum(self.connections.values())

    @property
    def connected_roles(self) -> list[str]:
        return sorted(r for r, n in self.connections.items() if n > 0)

    def observer(self, role: str) -> Observer:
        obs = self.observers.get(role)
        if obs is None:
            obs = self.observers[role] = Observer(role)
        return obs

    def touch(self) -> None:
        self.last_active = time.monotonic()

    def summary(self) -> dict[str, Any]:
        ref = self.referee
        return {"phase": ref.phase, "round_number": ref.round_number, "done": ref.done,
                "connected_roles": self.connected_roles, "task_id": ref.task.task_id,
                "step_count": ref.step_count, "end_reason": ref.end_reason}


class MatchPool:
    """The live matches of one app, keyed by match id.

    Only the event loop touches it, and no method awaits, so each call is atomic."""

    def __init__(self, max_matches: int = DEFAULT_MAX_MATCHES,
                 idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT):
        if isinstance(max_matches, bool) or not isinstance(max_matches, int) or max_matches < 1:
            raise ValueError(f"max_matches must be a positive integer, got {max_matches!r}")
        if idle_timeout is not None and idle_timeout < 0:
            raise ValueError(f"idle_timeout must be >= 0 or None, got {idle_timeout!r}")
        self.max_matches = max_matches
        self.idle_timeout = idle_timeout
        self.entries: dict[str, MatchEntry] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, match_id: str) -> MatchEntry | None:
        return self.entries.get(match_id)

    def free_id(self, base: str) -> str:
        """``base``, or ``base-2``, ``base-3``, ...: the first one not live."""
        if base not in self.entries:
            return base
        k = 2
        while f"{base}-{k}" in self.entries:
            k += 1
        return f"{base}-{k}"

    def add(self, referee: Referee, base_id: str, leaving: MatchEntry | None = None) -> MatchEntry:
        """Register a freshly reset referee under a free id. ``leaving`` is the match the
        requesting socket is about to leave (it counts as detached for eviction)."""
        if len(self.entries) >= self.max_matches and not self._evict_one(leaving):
            raise ProtocolError("reset_error", f"server is full: {len(self.entries)} live "
                                f"matches (max_matches={self.max_matches}) and none can be "
                                "evicted; finish or leave a match first")
        entry = MatchEntry(self.free_id(base_id), referee)
        self.entries[entry.match_id] = entry
        logger.info("match %s created (%d live)", entry.match_id, len(self.entries))
        return entry

    def _evict_one(self, leaving: MatchEntry | None) -> bool:
        now = time.monotonic()
        candidates = []
        for e in self.entries.values():
            if e.n_connections - (e is leaving) > 0:
                continue
            stale = self.idle_timeout is not None and now - e.last_active >= self.idle_timeout
            if e.referee.done or e is leaving or stale:
                candidates.append(e)
        if not candidates:
            return False
        victim = min(candidates, key=lambda e: (not e.referee.done, e.last_active))
        del self.entries[victim.match_id]
        logger.info("match %s evicted to make room", victim.match_id)
        return True

    def release(self, entry: MatchEntry) -> None:
        """Drop ``entry`` if it is over and no socket is attached to it."""
        if entry.referee.done and entry.n_connections == 0 and \
                self.entries.get(entry.match_id) is entry:
            del self.entries[entry.match_id]
            logger.info("match %s finished and dropped", entry.match_id)

    def summary(self) -> dict[str, dict[str, Any]]:
        return {mid: e.summary() for mid, e in self.entries.items()}


# ============================================================================ one socket
class Session:
    """What one socket is attached to, and how it wants its observations."""

    def __init__(self, role: str):
        self.role = role
        self.entry: MatchEntry | None = None
        self.obs_format = "json"

    def attach(self, entry: MatchEntry) -> None:
        entry.connections[self.role] += 1
        entry.touch()
        self.entry = entry

    def detach(self, pool: MatchPool) -> None:
        entry, self.entry = self.entry, None
        if entry is not None:
            entry.connections[self.role] -= 1
            entry.touch()
            pool.release(entry)


def _message(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "data": data})


def error_message(message: str, code: str) -> str:
    return _message("error", {"message": message, "code": code})


def _obs_format(data: dict, current: str, code: str) -> str:
    fmt = data.get("obs_format")
    if fmt is None:
        return current
    if fmt not in OBS_FORMATS:
        raise ProtocolError(code, f"obs_format must be one of {list(OBS_FORMATS)}, got {fmt!r}")
    return fmt


def observation_data(entry: MatchEntry, role: str, obs_format: str, obs=None) -> dict[str, Any]:
    """The ``data`` of an observation reply (call it under the match lock)."""
    ref = entry.referee
    if obs is None:
        obs = getattr(ref, f"build_{role}_observation")()
    data = obs.model_dump(mode="json")
    data["match_id"] = entry.match_id
    data["role"] = role
    data.setdefault("phase", ref.phase)
    data.setdefault("round_number", ref.round_number)
    data.setdefault("max_rounds", ref.max_rounds)
    data.setdefault("rounds_remaining", ref.rounds_remaining())
    if obs_format == "tensor":
        observer = entry.observer(role)
        data["observation"] = observer.fill(ref).tolist()
        data["action_mask"] = observer.mask(ref).tolist()
    return data


def state_data(entry: MatchEntry) -> dict[str, Any]:
    data = entry.referee.state.model_dump(mode="json")
    data["match_id"] = entry.match_id
    return data


def _describe(role: str, index: int) -> str:
    try:
        return json.dumps(op_to_model(role, OPS[role][index]).model_dump(mode="json",
                                                                          exclude_none=True))
    except Exception:  # pragma: no cover - a description only
        return repr(OPS[role][index])


def _apply_step(entry: MatchEntry, role: str, data: dict[str, Any]):
    """Validate and apply one step; returns the role's observation model (None for an index
    step). Raises ProtocolError, and leaves the match untouched, when the step is refused."""
    ref = entry.referee
    index = None
    if "action_index" in data:  # the tensor face
        index = data["action_index"]
        if set(data) != {"action_index"}:
            raise ProtocolError("validation_error", "a step by action_index takes no other "
                                f"fields; got {sorted(data)}")
        n = N_ACTIONS[role]
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
            raise ProtocolError("validation_error", f"action_index must be an integer in "
                                f"[0, {n}) for the {role}, got {index!r}")
    else:  # the text face
        try:
            action = ACTION_MODELS[role].model_validate(data)
        except ValidationError as exc:
            raise ProtocolError("validation_error", str(exc)) from None
    try:
        if index is not None:
            ref.apply(role, OPS[role][index])
            return None
        return getattr(ref, f"step_as_{role}")(action)
    except PermissionError as exc:  # OutOfTurnError: not this role's turn, or the match is over
        raise ProtocolError("phase_violation", f"{role} cannot act now: "
                            f"{getattr(exc, 'reason', exc)}") from None
    except IllegalActionError as exc:
        what = f"action_index {index} ({_describe(role, index)}) is masked now" \
            if index is not None else f"illegal {role} action"
        raise ProtocolError("execution_error", f"{what}: {exc.reason}; the match is "
                            "unchanged") from None
    except Exception as exc:  # a fault in the rules, not in the request: report, keep the socket
        logger.exception("step by %s in match %s failed", role, entry.match_id)
        raise ProtocolError("execution_error", f"the step could not be executed: "
                            f"{type(exc).__name__}: {exc}") from None


class Handler:
    """Answers the messages of one socket."""

    def __init__(self, pool: MatchPool, role: str):
        self.pool = pool
        self.session = Session(role)

    @property
    def role(self) -> str:
        return self.session.role

    def _entry(self) -> MatchEntry:
        entry = self.session.entry
        if entry is None:
            raise ProtocolError("no_match", f"this {self.role} socket has no match yet: send "
                                "reset (to create one) or join (with a match_id) first")
        entry.touch()
        return entry

    async def handle(self, raw: str | bytes) -> str | None:
        """The reply to one frame, or None for ``close``. Raises only on internal faults."""
        try:
            return await self._dispatch(raw)
        except ProtocolError as exc:
            return error_message(exc.message, exc.code)

    async def _dispatch(self, raw: str | bytes) -> str | None:
        try:
            msg = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # also bad UTF-8 in a binary frame
            raise ProtocolError("invalid_json", f"the frame is not valid JSON: {exc}") from None
        if not isinstance(msg, dict):
            raise ProtocolError("invalid_json", "a message must be a JSON object "
                                f"{{\"type\": ..., \"data\": {{...}}}}, got a "
                                f"{type(msg).__name__}")
        kind = msg.get("type")
        data = msg.get("data")
        if not data:  # absent, null or empty: no data (the lineage's reading)
            data = {}
        if kind not in ("reset", "join", "step", "obs", "state", "close"):
            raise ProtocolError("unknown_type", f"message type {kind!r} is not one of reset, "
                                "join, step, obs, state, close")
        if not isinstance(data, dict):
            raise ProtocolError("reset_error" if kind == "reset" else "validation_error",
                                f"'data' must be a JSON object, got a {type(data).__name__}")
        return await getattr(self, f"on_{kind}")(data)

    async def on_reset(self, data: dict[str, Any]) -> str:
        fmt = _obs_format(data, self.session.obs_format, "reset_error")
        kwargs = {k: data[k] for k in RESET_KEYS if data.get(k) is not None}
        episode_id = kwargs.get("episode_id")
        if episode_id is not None and (not isinstance(episode_id, str) or not episode_id or
                                       len(episode_id) > MAX_ID_LENGTH):
            raise ProtocolError("reset_error", "episode_id must be a non-empty string of at "
                                f"most {MAX_ID_LENGTH} characters, got {episode_id!r}")
        referee = Referee()
        try:
            referee.reset_match(**kwargs)
        except Exception as exc:
            raise ProtocolError("reset_error", f"could not start the match: {exc}") from None
        pool, session = self.pool, self.session
        entry = pool.add(referee, episode_id or referee.match_id, leaving=session.entry)
        session.detach(pool)
        session.attach(entry)
        session.obs_format = fmt
        async with entry.lock:
            return _message("observation", observation_data(entry, self.role, fmt))

    async def on_join(self, data: dict[str, Any]) -> str:
        match_id = data.get("match_id")
        if not match_id or not isinstance(match_id, str):
            raise ProtocolError("missing_match_id", "join needs data.match_id, the id a reset "
                                f"reply carried (got {match_id!r})")
        fmt = _obs_format(data, self.session.obs_format, "validation_error")
        entry = self.pool.get(match_id)
        if entry is None:
            raise ProtocolError("unknown_match", f"no live match has id {match_id!r} (it may "
                                "have finished and been dropped); GET /matches lists them")
        session = self.session
        if session.entry is not entry:
            session.detach(self.pool)
            session.attach(entry)
        session.obs_format = fmt
        async with entry.lock:
            return _message("observation", observation_data(entry, self.role, fmt))

    async def on_step(self, data: dict[str, Any]) -> str:
        entry = self._entry()
        async with entry.lock:
            obs = _apply_step(entry, self.role, data)
            reply = observation_data(entry, self.role, self.session.obs_format, obs)
        return _message("observation", reply)

    async def on_obs(self, data: dict[str, Any]) -> str:
        entry = self._entry()
        fmt = _obs_format(data, self.session.obs_format, "validation_error")
        self.session.obs_format = fmt
        async with entry.lock:
            return _message("observation", observation_data(entry, self.role, fmt))

    async def on_state(self, data: dict[str, Any]) -> str:
        entry = self._entry()
        async with entry.lock:
            return _message("state", state_data(entry))

    async def on_close(self, data: dict[str, Any]) -> None:
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
                reply = await handler.handle(raw)
            except Exception as exc:
                match = handler.session.entry.match_id if handler.session.entry else None
                logger.exception("internal fault serving %s (match %s)", role, match)
                await websocket.send_text(error_message(
                    f"internal server error: {type(exc).__name__}: {exc}", "fatal_error"))
                handler.session.detach(pool)  # before the close frame: the client sees it done
                await websocket.close(code=1011)
                break
            if reply is None:  # close
                handler.session.detach(pool)
                await websocket.close()
                break
            await websocket.send_text(reply)
    except WebSocketDisconnect:
        pass
    except Exception:  # the client went away mid-send, or the transport failed
        logger.debug("%s socket ended", role, exc_info=True)
    finally:
        handler.session.detach(pool)


# ============================================================================ the app
def create_app(max_matches: int = DEFAULT_MAX_MATCHES,
               idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT) -> FastAPI:
    """A FastAPI app serving FraudArena's role sockets. Its match pool is ``app.state.pool``.

    ``max_matches`` bounds the live matches; ``idle_timeout`` (seconds, None for never) is how
    long a match nobody is attached to must sit untouched before a reset may evict it."""
    from . import __version__

    app = FastAPI(title="FraudArena", version=__version__,
                  description="Three-role ad-fraud game: WebSocket role endpoints.")
    pool = MatchPool(max_matches, idle_timeout)
    app.state.pool = pool

    async def fraudster(websocket: WebSocket) -> None:
        await serve_socket(websocket, pool, "fraudster")

    async def investigator(websocket: WebSocket) -> None:
        await serve_socket(websocket, pool, "investigator")

    async def auditor(websocket: WebSocket) -> None:
        await serve_socket(websocket, pool, "auditor")

    for role, endpoint in zip(ROLES, (fraudster, investigator, auditor)):
        app.add_api_websocket_route(f"/ws/{role}", endpoint, name=f"ws_{role}")

    @app.get("/matches")
    async def matches() -> dict[str, Any]:
        """The live matches."""
        return {"active_matches": pool.summary(), "max_matches": pool.max_matches}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "matches": len(pool), "max_matches": pool.max_matches}

    return app


# ============================================================================ command line
def build_parser(prog: str = "fraudarena serve") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve FraudArena over WebSockets: /ws/fraudster, "
        "/ws/investigator, /ws/auditor, GET /matches.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--max-matches", type=int, default=DEFAULT_MAX_MATCHES,
                        help=f"live matches at most (default {DEFAULT_MAX_MATCHES})")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT,
                        help="seconds before an abandoned match may be evicted "
                        f"(default {DEFAULT_IDLE_TIMEOUT:g}; negative: never)")
    parser.add_argument("--log-level", default="info",
                        choices=("critical", "error", "warning", "info", "debug"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """``fraudarena serve``: run the app with uvicorn until interrupted."""
    args = build_parser().parse_args(argv)
    if args.max_matches < 1:
        build_parser().error(f"--max-matches must be >= 1, got {args.max_matches}")
    import uvicorn

    idle = None if args.idle_timeout < 0 else args.idle_timeout
    app = create_app(max_matches=args.max_matches, idle_timeout=idle)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


__all__ = ["ERROR_CODES", "MatchEntry", "MatchPool", "create_app", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
