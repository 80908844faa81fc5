"""Clients for the FraudArena WebSocket server (:mod:`fraudarena_env.server`).

    from fraudarena_env.client import FraudArenaClient

    with FraudArenaClient("ws://127.0.0.1:8000", "fraudster") as fr:
        obs = fr.reset(seed=7, task_id="task_3")      # a FraudsterObservation
        match_id = fr.match_id                         # give it to the other two roles
        obs = fr.step({"action_type": "end_turn"})     # a model, a dict or an action index

* :class:`FraudArenaClient`: one role's socket, synchronous. Each call sends one message and
  waits for its reply. Observations come back as the role's pydantic model (``obs_format``
  ``"json"``, the default) or, with ``"tensor"`` or ``"tensor_sparse"`` (the compact one), as a
  dict ``{"observation": float32 array, "action_mask": int8 array}`` that the baseline
  policies' ``act`` takes directly. The whole reply of the last call is in ``last_data``; the
  seat token of the last reset or join in ``seat_token`` (``join(match_id, seat_token=...)``
  takes the seat back after a disconnect). An error reply raises :class:`ServerError`, and so
  does a socket the server closes (with the reason it sent). A call with no reply within
  ``timeout`` raises ``TimeoutError`` and closes the client: the late reply would otherwise
  answer the next call.
* :class:`AsyncFraudArenaClient`: the same calls as coroutines, for many matches at once.
* :class:`RemoteFraudArena`: a PettingZoo AEC env whose one agent is a role played on a server,
  so a local policy (scripted, or an SB3 model) can face remote opponents, or, with
  ``opponents``, the server's own policies in the other seats (one player alone).
* :class:`MatchesAPI`: the REST API: create a match and get its three seat tokens (the server's
  API key, by default from the ``FRAUDARENA_API_KEY`` environment variable), read an archived
  match (the key, or one of its seat tokens), delete a live one.

A reset may name ``opponents``: ``{role: SPEC}`` for seats the server plays, each SPEC one that
``fraudarena evaluate`` takes (a policy name such as ``reactive``, ``scripted``, ``heuristic``,
``random``, or a checkpoint file in the server's ``--checkpoint-dir``). The server moves them
before it answers, so every reply finds this role to act or the match over. ``illegal_action``
(``penalize``, the default, or ``raise``) says how a text action the rules refuse is answered:
charged and used up, as the lineage's rules did, or refused with ``execution_error``.

Needs the ``websockets`` package (the ``server`` extra).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv
from pydantic import BaseModel
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from .faces.encoding import N_ACTIONS, OBS_BOUND, Observer
from .models import AuditorObservation, FraudsterObservation, InvestigatorObservation, RefereeState
from .rules.catalog import PHASE_ROLE, ROLES
from .server_limits import API_KEY_ENV

OBSERVATION_MODELS: dict[str, type[BaseModel]] = {"fraudster": FraudsterObservation,
                                                  "investigator": InvestigatorObservation,
                                                  "auditor": AuditorObservation}
OBS_FORMATS = ("json", "tensor", "tensor_sparse")
_timeout = getattr(asyncio, "timeout", None)  # 3.11+: a deadline without a task per receive
MAX_FRAME = 2**24  # compression is off: replies are small, and deflating them costs more


class ServerError(RuntimeError):
    """The server answered with an error reply; ``code`` is one of the protocol's error codes
    (``retry_after``: the seconds a ``rate_limited`` reply asked to wait)."""

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def __reduce__(self):
        # rebuilt from what it was made of: a worker process (multiprocessing, SubprocVecEnv)
        # pickles it to raise it in the parent (as rules.errors.IllegalActionError)
        return type(self), (self.code, self.message, self.retry_after)


def _retry_delay(exc: ServerError, deadline: float) -> float:
    """How long to wait before sending again a message the server did not read for its rate
    limit; re-raises ``exc`` for any other error, or when the wait would pass ``deadline``."""
    if exc.code != "rate_limited":
        raise exc
    delay = min(1.0, max(0.001, float(exc.retry_after or 0.01)))
    if time.monotonic() + delay > deadline:
        raise exc
    return delay


def role_url(url: str, role: str) -> str:
    """``ws://host:port`` (or ``http://...``, or a URL already ending in ``/ws/<role>``) to the
    role's socket URL."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"expected a ws://, wss://, http:// or https:// URL, got {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith(f"/ws/{role}"):
        path = f"{path}/ws/{role}"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def dense(sparse: dict[str, Any], dtype) -> np.ndarray:
    """A vector sent in the server's sparse form (``{"size", "index", "value"}``, base64)."""
    out = np.zeros(int(sparse["size"]), dtype)
    index = np.frombuffer(base64.b64decode(sparse["index"]), "<u2")
    out[index] = np.frombuffer(base64.b64decode(sparse["value"]), "<f4") \
        if "value" in sparse else 1
    return out


def decode_observation(role: str, data: dict[str, Any]):
    """An observation reply's data as the role's model, or as the tensor dict."""
    vector, mask = data.get("observation"), data.get("action_mask")
    if isinstance(vector, dict) and isinstance(mask, dict):
        return {"observation": dense(vector, np.float32), "action_mask": dense(mask, np.int8)}
    if vector is not None and mask is not None:
        return {"observation": np.asarray(vector, np.float32),
                "action_mask": np.asarray(mask, np.int8)}
    return OBSERVATION_MODELS[role].model_validate(data)


def step_payload(action: Any) -> dict[str, Any]:
    """The ``data`` of a step message: a model's JSON, a dict as is, or an action index."""
    if isinstance(action, BaseModel):
        return action.model_dump(mode="json", exclude_none=True)
    if isinstance(action, dict):
        return action
    if isinstance(action, (int, np.integer)) and not isinstance(action, bool):
        return {"action_index": int(action)}
    raise TypeError(f"expected an action model, a dict or an action index, got "
                    f"{type(action).__name__}")


# the reply each message is answered with (or an error)
_REPLY_TYPE = {"reset": "observation", "join": "observation", "step": "observation",
               "obs": "observation", "state": "state"}


def _check(role: str, obs_format: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if obs_format not in OBS_FORMATS:
        raise ValueError(f"obs_format must be one of {OBS_FORMATS}, got {obs_format!r}")


class _Protocol:
    """What both clients share: the messages they build and how they read the replies."""

    role: str
    obs_format: str

    def _init(self, url: str, role: str, obs_format: str) -> None:
        _check(role, obs_format)
        self.role = role
        self.url = role_url(url, role)
        self.obs_format = obs_format
        self.match_id: str | None = None
        self.seat_token: str | None = None
        self.last_data: dict[str, Any] | None = None
        self._closed = False
        self._why_closed = ""

    def _read(self, raw: str | bytes, expected: str | None = None) -> dict[str, Any]:
        """A reply's data, or its error raised as ``ServerError``; ``expected``: the type the
        call's reply must have (a reply of another type is no answer to it)."""
        reply = json.loads(raw)
        payload = reply.get("data") or {}
        if reply.get("type") == "error":
            raise ServerError(payload.get("code", "unknown"), payload.get("message", ""),
                              payload.get("retry_after"))
        if expected is not None and reply.get("type") != expected:
            raise ServerError("unexpected_reply", f"a {reply.get('type')!r} reply came where a "
                              f"{expected!r} one was due: replies and calls are out of step")
        self.last_data = payload
        if "match_id" in payload:
            self.match_id = payload["match_id"]
        if "seat_token" in payload:
            self.seat_token = payload["seat_token"]
        return payload

    def _why_refused(self, raw: str | bytes | None) -> Exception:
        """Why the server closed the socket: the error frame it sent first (``raw``), as a
        ``ServerError``; else the closing itself."""
        if raw is not None:
            try:
                self._read(raw)
            except ServerError as exc:
                return exc
            except ValueError:
                pass
        return ConnectionError("the server closed the connection; make a new client (and join "
                               "with seat_token to take the seat back)")

    def _timed_out(self, kind: str) -> str:
        return (f"no reply to {kind} within {self.timeout:g} s; the client is closed, since "
                f"that reply could still come and answer the next call: make a new client, and "
                f"join match {self.match_id!r} with seat_token to take the seat back")

    def _format(self, obs_format: str | None) -> str:
        if obs_format is not None:
            _check(self.role, obs_format)
            self.obs_format = obs_format
        return self.obs_format

    def _reset_data(self, seed, task_id, episode_id, obs_format, knobs) -> dict[str, Any]:
        data = {"seed": seed, "task_id": task_id, "episode_id": episode_id, **knobs,
                "obs_format": self._format(obs_format)}
        return {k: v for k, v in data.items() if v is not None}

    def _join_data(self, match_id, seat_token, obs_format) -> dict[str, Any]:
        data = {"match_id": match_id, "obs_format": self._format(obs_format)}
        if seat_token is not None:
            data["seat_token"] = seat_token
        return data

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}, match_id={self.match_id!r})"


class FraudArenaClient(_Protocol):
    """One role's connection to a FraudArena server."""

    def __init__(self, url: str, role: str, obs_format: str = "json", timeout: float = 30.0,
                 open_timeout: float = 10.0):
        self._init(url, role, obs_format)
        self.timeout = timeout
        # Entered as a context manager, the form every websockets release supports without
        # a deprecation warning; close() exits it.
        self._cm = connect(self.url, open_timeout=open_timeout, max_size=MAX_FRAME,
                           compression=None)
        self._ws = self._cm.__enter__()

    def _request(self, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._closed:
            raise RuntimeError(f"this client is closed{self._why_closed}")
        message, deadline = json.dumps({"type": kind, "data": data or {}}), \
            time.monotonic() + self.timeout
        while True:  # a message past the server's rate limit was not read: send it again
            try:
                self._ws.send(message)
                raw = self._ws.recv(timeout=self.timeout)
            except TimeoutError:
                self._give_up(f"no reply to {kind} came within {self.timeout:g} s")
                raise TimeoutError(self._timed_out(kind)) from None
            except ConnectionClosed:
                reason = self._closing_reason()  # (read before the socket is let go)
                self._give_up("the server closed the connection")
                raise reason from None
            try:
                return self._read(raw, _REPLY_TYPE[kind])
            except ServerError as exc:
                if exc.code == "unexpected_reply":
                    self._give_up(exc.message)
                time.sleep(_retry_delay(exc, deadline))  # (raises it but for the rate limit)

    def _give_up(self, why: str) -> None:
        """Close the socket: a reply still on its way would answer the next call instead."""
        self._closed, self._why_closed = True, f" ({why})"
        try:
            self._cm.__exit__(None, None, None)
        except Exception:
            pass

    def _closing_reason(self) -> Exception:
        """The error frame the server sent before it closed the socket (why it did), as a
        ``ServerError``; else the closing itself."""
        try:
            return self._why_refused(self._ws.recv(timeout=0))
        except Exception:  # (no frame was left)
            return self._why_refused(None)

    def reset(self, seed: int | None = None, task_id: str | None = None,
              episode_id: str | None = None, obs_format: str | None = None, **knobs: Any):
        """Create a match (knobs: max_rounds, max_proposals, max_fraudster_actions_per_turn,
        max_investigator_actions_per_turn, allowed_categories, and the server's
        ``opponents`` and ``illegal_action``); returns this role's observation. The new
        match's id is then in ``match_id``."""
        return decode_observation(self.role, self._request(
            "reset", self._reset_data(seed, task_id, episode_id, obs_format, knobs)))

    def join(self, match_id: str, seat_token: str | None = None, obs_format: str | None = None):
        """Take this role's seat in a live match (``seat_token``: to take it back); returns
        this role's current observation."""
        return decode_observation(self.role, self._request(
            "join", self._join_data(match_id, seat_token, obs_format)))

    def step(self, action: Any):
        """Act: the role's pydantic action model, a dict that validates to it, or an action
        index. Returns this role's observation after the action."""
        return decode_observation(self.role, self._request("step", step_payload(action)))

    def observe(self, obs_format: str | None = None):
        """This role's current observation, without acting. An ``obs_format`` given here is
        kept: later replies (steps included) come in it too."""
        return decode_observation(self.role, self._request(
            "obs", {"obs_format": self._format(obs_format)}))

    def state(self) -> RefereeState:
        """The match's referee state, as far as this role may see it."""
        return RefereeState.model_validate(self._request("state"))

    def close(self) -> None:
        """Leave the match and close the socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._ws.send(json.dumps({"type": "close", "data": {}}))
        except Exception:  # already closed by the server: nothing to say
            pass
        self._cm.__exit__(None, None, None)

    def __enter__(self) -> FraudArenaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncFraudArenaClient(_Protocol):
    """One role's connection, as coroutines: ``client = await AsyncFraudArenaClient.open(url,
    role)``, then ``await client.reset(...)`` and so on, and ``await client.close()``."""

    def __init__(self, url: str, role: str, obs_format: str = "json", timeout: float = 30.0):
        self._init(url, role, obs_format)
        self.timeout = timeout
        self._ws = None

    @classmethod
    async def open(cls, url: str, role: str, obs_format: str = "json", timeout: float = 30.0,
                   open_timeout: float = 10.0) -> AsyncFraudArenaClient:
        from websockets.asyncio.client import connect as aconnect

        self = cls(url, role, obs_format, timeout)
        self._ws = await aconnect(self.url, open_timeout=open_timeout, max_size=MAX_FRAME,
                                  compression=None)
        return self

    async def _request(self, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._closed or self._ws is None:
            raise RuntimeError(f"this client is closed or not open{self._why_closed}")
        message, deadline = json.dumps({"type": kind, "data": data or {}}), \
            time.monotonic() + self.timeout
        while True:  # a message past the server's rate limit was not read: send it again
            try:
                await self._ws.send(message)
                if _timeout is None:  # Python 3.10: wait_for wraps the receive in a task
                    raw = await asyncio.wait_for(self._ws.recv(), self.timeout)
                else:
                    async with _timeout(self.timeout):
                        raw = await self._ws.recv()
            except (TimeoutError, asyncio.TimeoutError):  # noqa: UP041 (two classes on 3.10)
                await self._give_up(f"no reply to {kind} came within {self.timeout:g} s")
                raise TimeoutError(self._timed_out(kind)) from None
            except ConnectionClosed:
                reason = await self._closing_reason()  # (read before the socket is let go)
                await self._give_up("the server closed the connection")
                raise reason from None
            try:
                return self._read(raw, _REPLY_TYPE[kind])
            except ServerError as exc:
                if exc.code == "unexpected_reply":
                    await self._give_up(exc.message)
                await asyncio.sleep(_retry_delay(exc, deadline))  # (raises it but for the rate
                # limit)

    async def _give_up(self, why: str) -> None:
        self._closed, self._why_closed = True, f" ({why})"
        try:
            await self._ws.close()
        except Exception:
            pass

    async def _closing_reason(self) -> Exception:
        try:
            return self._why_refused(await asyncio.wait_for(self._ws.recv(), 0.1))
        except Exception:  # (no frame was left)
            return self._why_refused(None)

    async def reset(self, seed: int | None = None, task_id: str | None = None,
                    episode_id: str | None = None, obs_format: str | None = None, **knobs: Any):
        return decode_observation(self.role, await self._request(
            "reset", self._reset_data(seed, task_id, episode_id, obs_format, knobs)))

    async def join(self, match_id: str, seat_token: str | None = None,
                   obs_format: str | None = None):
        return decode_observation(self.role, await self._request(
            "join", self._join_data(match_id, seat_token, obs_format)))

    async def step(self, action: Any):
        return decode_observation(self.role, await self._request("step", step_payload(action)))

    async def observe(self, obs_format: str | None = None):
        return decode_observation(self.role, await self._request(
            "obs", {"obs_format": self._format(obs_format)}))

    async def state(self) -> RefereeState:
        return RefereeState.model_validate(await self._request("state"))

    async def close(self) -> None:
        if self._closed or self._ws is None:
            return
        self._closed = True
        try:
            await self._ws.send(json.dumps({"type": "close", "data": {}}))
        except Exception:
            pass
        await self._ws.close()


class RemoteFraudArena(AECEnv):
    """An AEC env with one agent, ``role``, whose match runs on a server.

    ``reset(seed)`` creates a match there: with ``opponents`` (``{role: SPEC}``, see the module
    docstring) the server plays those seats, so one player can play a whole match alone;
    otherwise the other roles join ``env.match_id``. Given ``match_id`` (and ``seat_token`` to
    take a held seat back) it joins that match instead. Between this role's turns the env polls
    the server until it is this role's turn or the match is over, so ``agent_iter`` yields the
    role only when it can act. Observations are the tensor face (``{"observation",
    "action_mask"}``), as in ``fraudarena_v0``; ``step`` takes an action index, or the role's
    action model or dict. The reward is what the role earned since its last step, including
    while the others moved; ``infos`` carry phase and round."""

    metadata = {"name": "fraudarena_remote_v0", "is_parallelizable": False, "render_modes": []}

    def __init__(self, url: str, role: str, match_id: str | None = None,
                 seat_token: str | None = None, task_id: str = "task_1",
                 opponents: dict[str, str] | None = None,
                 poll_interval: float = 0.01, max_poll_interval: float = 0.2,
                 turn_timeout: float = 600.0, **knobs: Any):
        super().__init__()
        _check(role, "tensor_sparse")
        if opponents is not None and (match_id is not None or role in opponents):
            raise ValueError("opponents are named when creating a match, for the other roles' "
                             f"seats: not with match_id, and not for {role!r} itself")
        self.url, self.role = url, role
        self.task_id, self.knobs = task_id, knobs
        if opponents:
            self.knobs["opponents"] = dict(opponents)
        self._join = (match_id, seat_token)
        self.poll_interval, self.max_poll_interval = poll_interval, max_poll_interval
        self.turn_timeout = turn_timeout
        self.possible_agents = [role]
        self.agents = []
        size = Observer(role).size
        self.observation_spaces = {role: spaces.Dict({
            "observation": spaces.Box(-OBS_BOUND, OBS_BOUND, (size,), np.float32),
            "action_mask": spaces.Box(0, 1, (N_ACTIONS[role],), np.int8)})}
        self.action_spaces = {role: spaces.Discrete(N_ACTIONS[role])}
        self.client: FraudArenaClient | None = None
        self._obs: dict[str, np.ndarray] | None = None
        self._total = 0.0

    @property
    def match_id(self) -> str | None:
        return self.client.match_id if self.client else None

    def observation_space(self, agent: str) -> spaces.Dict:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Discrete:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        if self.client is None:
            self.client = FraudArenaClient(self.url, self.role, obs_format="tensor_sparse")
        match_id, token = self._join
        if match_id is not None:
            self._obs = self.client.join(match_id, seat_token=token)
            self._join = (match_id, self.client.seat_token)  # a later reset resumes the seat
        else:
            opts = {**self.knobs, **(options or {})}
            self._obs = self.client.reset(seed=seed, task_id=opts.pop("task_id", self.task_id),
                                          **opts)
        self.agents = [self.role]
        self.rewards = {self.role: 0.0}
        self._cumulative_rewards = {self.role: 0.0}
        self.terminations = {self.role: False}
        self.truncations = {self.role: False}
        self.infos = {self.role: {}}
        self.agent_selection = self.role
        self._total = float(self.client.last_data.get("reward") or 0.0)
        self._wait_for_turn()

    def _wait_for_turn(self) -> None:
        delay, deadline = self.poll_interval, time.monotonic() + self.turn_timeout
        while True:
            data = self.client.last_data
            if data["done"] or PHASE_ROLE.get(data["phase"]) == self.role:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"the other roles did not move within {self.turn_timeout}s")
            time.sleep(delay)
            delay = min(delay * 1.5, self.max_poll_interval)
            self._obs = self.client.observe()
        total = float(data.get("reward") or 0.0)
        self.rewards[self.role] = total - self._total
        self._cumulative_rewards[self.role] = total - self._total
        self._total = total
        self.infos[self.role] = {"phase": data["phase"], "round": data["round_number"]}
        if data["done"]:
            self.terminations[self.role] = True

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        return {"observation": self._obs["observation"].copy(),
                "action_mask": self._obs["action_mask"].copy()}

    def step(self, action: Any) -> None:
        if self.terminations[self.role] or self.truncations[self.role]:
            self._was_dead_step(action)
            return
        self._obs = self.client.step(action)
        self._wait_for_turn()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


class MatchesAPI:
    """The server's REST API under ``/api/v1/matches`` (``url``: the server, as ``ws://`` or
    ``http://``). ``api_key`` is sent as ``X-API-Key``; None reads it from the environment
    variable ``FRAUDARENA_API_KEY`` (no key: only what the server opens to anyone, and what a
    seat token opens). An error reply raises :class:`ServerError`; a request refused for the
    address's HTTP rate (``rate_limited``) is sent again after the wait the server names, for
    up to ``timeout`` seconds. Needs ``httpx`` (the ``server`` extra)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0):
        import httpx

        parts = urlsplit(url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        if scheme not in ("http", "https"):
            raise ValueError(f"expected a ws://, wss://, http:// or https:// URL, got {url!r}")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._http = httpx.Client(base_url=f"{scheme}://{parts.netloc}/api/v1",
                                  headers={"X-API-Key": key} if key else {}, timeout=timeout)
        self._timeout = timeout

    def _call(self, method: str, path: str = "/matches", seat_token: str | None = None,
              **kwargs: Any) -> dict[str, Any]:
        headers = {"X-Seat-Token": seat_token} if seat_token is not None else None
        deadline = time.monotonic() + self._timeout
        while True:  # a request past the address's HTTP rate was not handled: send it again
            reply = self._http.request(method, path, headers=headers, **kwargs)
            try:
                body = reply.json()
            except ValueError:
                body = {"message": reply.text[:200]}
            if not reply.is_error:
                return body
            exc = ServerError(body.get("code", str(reply.status_code)), body.get("message", ""),
                              body.get("retry_after"))
            time.sleep(_retry_delay(exc, deadline))

    def create(self, seed: int | None = None, task_id: str | None = None,
               episode_id: str | None = None, **knobs: Any) -> dict[str, Any]:
        """A new match: ``{"match_id", "episode_id", "task_id", "seed_chosen_by_client",
        "seat_tokens": {role: token}}``; hand each role its token (``join(match_id,
        seat_token=...)``)."""
        data = {"seed": seed, "task_id": task_id, "episode_id": episode_id, **knobs}
        return self._call("POST", json={k: v for k, v in data.items() if v is not None})

    def get(self, match_id: str, seat_token: str | None = None) -> dict[str, Any]:
        """A live match's summary, or its archived record (the key, or ``seat_token``)."""
        return self._call("GET", _match_path(match_id), seat_token)

    def listing(self, limit: int = 50) -> dict[str, Any]:
        """The most recently archived matches (the key, unless the server opened it)."""
        return self._call("GET", params={"limit": limit})

    def delete(self, match_id: str, seat_token: str | None = None) -> dict[str, Any]:
        """End and archive a live match (the key, or its creator's ``seat_token``)."""
        return self._call("DELETE", _match_path(match_id), seat_token)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MatchesAPI:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_MATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # what the server's ids are made of


def _match_path(match_id: str) -> str:
    """The REST path of one match. An id holding anything but letters, digits, ``_`` and ``-``
    is refused: the server decodes an escaped ``/`` before routing, so ``m_x/replay.html``
    would reach another route."""
    if not isinstance(match_id, str) or not _MATCH_ID.fullmatch(match_id):
        raise ValueError(f"a match id is letters, digits, '_' and '-' (as the server makes "
                         f"them), got {match_id!r:.80}")
    return f"/matches/{match_id}"


__all__ = ["AsyncFraudArenaClient", "FraudArenaClient", "MatchesAPI", "RemoteFraudArena",
           "ServerError", "decode_observation", "dense", "role_url", "step_payload"]
