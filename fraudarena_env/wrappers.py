"""One observation space and one action space for all three roles.

FraudArena's roles see different vectors and choose among different numbers of actions (each
role's ``observation_space(agent)`` and ``action_space(agent)`` are its own). Some libraries and
recipes assume every agent shares the first agent's spaces: PettingZoo's SB3 action-masking
recipe, Tianshou's ``PettingZooEnv``, one shared policy network for self-play. This module gives
them that view without changing the game:

>>> from fraudarena_env.wrappers import shared_space_env
>>> env = shared_space_env(task_id="task_3")      # = SharedSpaceWrapper(fraudarena_v0.env(...))
>>> env.reset(seed=7)
>>> env.observation_space("fraudster") is env.observation_space("auditor")
True

Every agent gets the same two spaces (the same objects on every call):

* ``observation_space(agent)`` is ``Dict({"observation": Box(float32, (3 + D_max,)),
  "action_mask": Box(0, 1, (N_max,), int8)})``. The vector is the role as a one-hot over
  ``possible_agents`` (entries 0-2), then the role's own observation vector, then zeros up to the
  longest role's length ``D_max``. ``observation_layout(agent)`` names the blocks.
* ``action_space(agent)`` is ``Discrete(N_max)``, ``N_max`` the largest role's action count.
  Index ``i`` means the role's own action ``i``; the padded indices (``i >= N_role``) are never in
  the mask, and stepping one is an illegal action like any other (``IllegalActionError``, or a
  charged penalty with ``illegal_action="penalize"``).

Rewards, terminations, truncations, infos, ``render`` and the text face (pydantic models or dicts
passed to ``step``) pass through unchanged. SuperSuit's ``pad_observations_v0`` and
``pad_action_space_v0`` do not take Dict observation spaces, hence this wrapper.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.wrappers import BaseWrapper

from .faces.encoding import OBS_BOUND


class SharedSpaceWrapper(BaseWrapper):
    """A FraudArena AEC env whose agents all share one padded observation space and one padded
    ``Discrete`` action space (see the module docstring)."""

    def __init__(self, env):
        super().__init__(env)
        agents = list(env.possible_agents)
        self.possible_agents = agents
        self._role_index = {a: i for i, a in enumerate(agents)}
        self._role_sizes = {a: env.observation_space(a)["observation"].shape[0] for a in agents}
        self._role_actions = {a: int(env.action_space(a).n) for a in agents}
        n_roles = len(agents)
        self.vector_size = n_roles + max(self._role_sizes.values())
        self.n_actions = max(self._role_actions.values())
        self._observation_space = spaces.Dict({
            "observation": spaces.Box(-OBS_BOUND, OBS_BOUND, (self.vector_size,), np.float32),
            "action_mask": spaces.Box(0, 1, (self.n_actions,), np.int8),
        })
        self._action_space = spaces.Discrete(self.n_actions)

    # ------------------------------------------------------------------ spaces
    def observation_space(self, agent: str) -> spaces.Dict:
        return self._observation_space

    def action_space(self, agent: str) -> spaces.Discrete:
        return self._action_space

    # ------------------------------------------------------------------ observe
    def observe(self, agent: str) -> dict[str, np.ndarray] | None:
        inner = self.env.observe(agent)
        if inner is None:
            return None
        return {"observation": self.pad_observation(agent, inner["observation"]),
                "action_mask": self.pad_mask(inner["action_mask"])}

    def pad_observation(self, agent: str, vector: np.ndarray) -> np.ndarray:
        """``agent``'s own observation vector in the shared layout (a new array)."""
        out = np.zeros(self.vector_size, np.float32)
        out[self._role_index[agent]] = 1.0
        n_roles = len(self.possible_agents)
        out[n_roles:n_roles + vector.shape[0]] = vector
        return out

    def pad_mask(self, mask: np.ndarray) -> np.ndarray:
        """A role's legal-action mask padded with zeros to ``Discrete(N_max)`` (a new array)."""
        out = np.zeros(self.n_actions, np.int8)
        out[:mask.shape[0]] = mask
        return out

    def action_mask(self, agent: str) -> np.ndarray:
        """``agent``'s current legal-action mask, padded (int8)."""
        return self.pad_mask(self.env.unwrapped.action_mask(agent))

    def observation_layout(self, agent: str) -> list[tuple[str, int, tuple[int, ...]]]:
        """(name, offset, shape) of every block of ``agent``'s padded vector: ``role`` (the
        one-hot), the role's own named blocks shifted past it, and ``padding``."""
        n_roles = len(self.possible_agents)
        layout = [("role", 0, (n_roles,))]
        layout += [(name, n_roles + offset, shape)
                   for name, offset, shape in self.env.unwrapped.observation_layout(agent)]
        end = n_roles + self._role_sizes[agent]
        if end < self.vector_size:
            layout.append(("padding", end, (self.vector_size - end,)))
        return layout

    def __str__(self) -> str:
        return str(self.env)


class RenameObservationKey(BaseWrapper):
    """The same env with the vector under another key of the observation dict.

    PettingZoo's convention is ``{"observation", "action_mask"}``; RLlib's action-masking
    RLModule (``ActionMaskingTorchRLModule`` in RLlib's examples) reads ``{"observations",
    "action_mask"}``. ``RenameObservationKey(env, "observations")`` renames the key in both the
    observations and the observation spaces; everything else passes through."""

    def __init__(self, env, key: str = "observations"):
        super().__init__(env)
        if key == "action_mask":
            raise ValueError("the vector cannot take the mask's key 'action_mask'")
        self.key = key
        self._spaces = {a: spaces.Dict({key: env.observation_space(a)["observation"],
                                        "action_mask": env.observation_space(a)["action_mask"]})
                        for a in env.possible_agents}

    def observation_space(self, agent: str) -> spaces.Dict:
        return self._spaces[agent]

    def observe(self, agent: str) -> dict[str, np.ndarray] | None:
        inner = self.env.observe(agent)
        if inner is None:
            return None
        return {self.key: inner["observation"], "action_mask": inner["action_mask"]}

    def __str__(self) -> str:
        return str(self.env)


def shared_space_env(**cfg: Any) -> SharedSpaceWrapper:
    """``SharedSpaceWrapper(fraudarena_v0.env(**cfg))``: the wrapped AEC env with one observation
    and one action space for all agents. ``cfg`` is ``fraudarena_v0.env``'s."""
    from .fraudarena_v0 import env

    return SharedSpaceWrapper(env(**cfg))


__all__ = ["SharedSpaceWrapper", "RenameObservationKey", "shared_space_env"]
