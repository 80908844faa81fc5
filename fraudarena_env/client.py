"""A small synchronous client for the FraudArena WebSocket server (:mod:`fraudarena_env.server`).

    from fraudarena_env.client import FraudArenaClient

    with FraudArenaClient("ws://127.0.0.1:8000", "fraudster") as fr:
        obs = fr.reset(seed=7, task_id="task_3")      # a FraudsterObservation
        match_id = fr.match_id                         # give it to the other two roles
        obs = fr.step({"action_type": "end_turn"})     # a model, a dict or an action index

Each call sends one message and waits for its reply. Observations come back as the role's
pydantic model (``obs_format="json"``, the default) or, with ``obs_format="tensor"``, as a dict
``{"observation": float32 array, "action_mask": int8 array}`` that the baseline policies'
``act`` takes directly. The whole reply of the last call is kept in ``last_data``. An error
reply raises :class:`ServerError`. Needs the ``websockets`` package (the ``server`` extra).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from pydantic import BaseModel
from websockets.sync.client import connect

from .catalog import ROLES
from .models import AuditorObservation, FraudsterObservation, InvestigatorObservation, RefereeState

OBSERVATION_MODELS: dict[str, type[BaseModel]] = {"fraudster": FraudsterObservation,
                                                  "investigator": InvestigatorObservation,
                                                  "auditor": AuditorObservation}
MAX_FRAME = 2**24  # the server's own default frame limit (uvicorn's ws_max_size)


class ServerError(RuntimeError):
    """The server answered with an error reply; ``code`` is one of the protocol's error codes."""

    def __init__(self, code: str, message: str):
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message


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


class FraudArenaClient:
    """One role's connection to a FraudArena server."""

    def __init__(self, url: str, role: str, obs_format: str = "json", timeout: float = 30.0,
                 open_timeout: float = 10.0):
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        if obs_format not in ("json", "tensor"):
            raise ValueError(f"obs_format must be 'json' or 'tensor', got {obs_format!r}")
        self.role = role
        self.url = role_url(url, role)
        self.obs_format = obs_format
        self.timeout = timeout
        self.match_id: str | None = None
        self.last_data: dict[str, Any] | None = None
        # Entered as a context manager, the form every websockets release supports without
        # a deprecation warning; close() exits it.
        self._cm = connect(self.url, open_timeout=open_timeout, max_size=MAX_FRAME)
        self._ws = self._cm.__enter__()
        self._closed = False

    # ------------------------------------------------------------------ protocol
    def _request(self, kind: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._closed:
            raise RuntimeError("this client is closed")
        self._ws.send(json.dumps({"type": kind, "data": data or {}}))
        reply = json.loads(self._ws.recv(timeout=self.timeout))
        payload = reply.get("data") or {}
        if reply.get("type") == "error":
            raise ServerError(payload.get("code", "unknown"), payload.get("message", ""))
        self.last_data = payload
        if "match_id" in payload:
            self.match_id = payload["match_id"]
        return payload

    def _observation(self, data: dict[str, Any]):
        if "observation" in data and "action_mask" in data:
            return {"observation": np.asarray(data["observation"], np.float32),
                    "action_mask": np.asarray(data["action_mask"], np.int8)}
        return OBSERVATION_MODELS[self.role].model_validate(data)

    def _format(self, obs_format: str | None) -> str:
        if obs_format is not None:
            self.obs_format = obs_format
        return self.obs_format

    # ------------------------------------------------------------------ calls
    def reset(self, seed: int | None = None, task_id: str | None = None,
              episode_id: str | None = None, obs_format: str | None = None, **knobs: Any):
        """Create a match (knobs: max_rounds, max_proposals, max_fraudster_actions_per_turn,
        max_investigator_actions_per_turn, allowed_categories); returns this role's
        observation. The new match's id is then in ``match_id``."""
        data = {"seed": seed, "task_id": task_id, "episode_id": episode_id, **knobs,
                "obs_format": self._format(obs_format)}
        return self._observation(self._request("reset", {k: v for k, v in data.items()
                                                         if v is not None}))

    def join(self, match_id: str, obs_format: str | None = None):
        """Attach to a live match; returns this role's current observation."""
        return self._observation(self._request(
            "join", {"match_id": match_id, "obs_format": self._format(obs_format)}))

    def step(self, action: Any):
        """Act: the role's pydantic action model, a dict that validates to it, or an action
        index. Returns this role's observation after the action."""
        if isinstance(action, BaseModel):
            data = action.model_dump(mode="json", exclude_none=True)
        elif isinstance(action, dict):
            data = action
        elif isinstance(action, (int, np.integer)) and not isinstance(action, bool):
            data = {"action_index": int(action)}
        else:
            raise TypeError(f"expected an action model, a dict or an action index, got "
                            f"{type(action).__name__}")
        return self._observation(self._request("step", data))

    def observe(self, obs_format: str | None = None):
        """This role's current observation, without acting."""
        return self._observation(self._request("obs",
                                               {"obs_format": self._format(obs_format)}))

    def state(self) -> RefereeState:
        """The match's full referee state (``match_id`` is the server's id)."""
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

    def __repr__(self) -> str:
        return f"FraudArenaClient({self.url!r}, match_id={self.match_id!r})"


__all__ = ["FraudArenaClient", "ServerError", "role_url"]
