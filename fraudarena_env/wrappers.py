"""Other shapes of the same game, for libraries that expect them.

Every wrapper here keeps its ``observation_spaces`` and ``action_spaces`` dicts equal to what its
``observation_space(agent)`` and ``action_space(agent)`` return (the same objects).

* :class:`SharedSpaceWrapper` (below): one observation space and one action space for all roles;
* :class:`RenameObservationKey`: the vector under another key (RLlib's masking module reads
  ``"observations"``);
* :class:`VectorObservation`: the observation vector alone, a plain ``Box``, for models that take no
  dict (RLlib's default models; use it with ``illegal_action="terminate"`` or ``"penalize"``, as
  such models do not read the mask);
* :class:`MaskedRoleEnv`: one role's single-agent view (:class:`~fraudarena_env.RoleEnv`) with the
  observation ``{"observations": vector, "action_mask": mask}``, built from one config dict, the
  shape RLlib's action-masking example env has.

``rllib_multi_agent_env`` and ``MaskedRoleEnv`` are what ``docs/conventions.md`` plugs into
RLlib's own ``pettingzoo_independent_learning.py`` and ``action_masking_rl_module.py`` examples.

One observation space and one action space for all three roles
--------------------------------------------------------------

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

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo.utils.wrappers import BaseWrapper

from .faces.encoding import OBS_BOUND
from .role_env import RoleEnv, match_seed_or_none


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
        self.observation_spaces = dict.fromkeys(agents, self._observation_space)
        self.action_spaces = dict.fromkeys(agents, self._action_space)

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
        self.observation_spaces = {
            a: spaces.Dict({key: env.observation_space(a)["observation"],
                            "action_mask": env.observation_space(a)["action_mask"]})
            for a in env.possible_agents}
        self.action_spaces = {a: env.action_space(a) for a in env.possible_agents}

    def observation_space(self, agent: str) -> spaces.Dict:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def observe(self, agent: str) -> dict[str, np.ndarray] | None:
        inner = self.env.observe(agent)
        if inner is None:
            return None
        return {self.key: inner["observation"], "action_mask": inner["action_mask"]}

    def __str__(self) -> str:
        return str(self.env)


class VectorObservation(BaseWrapper):
    """The same env with each observation reduced to its vector (the ``"observation"`` entry, a
    ``Box``); the legal-action mask stays available from ``action_mask(agent)``.

    For models that take a plain array and do not mask, such as RLlib's default models: pair it
    with ``illegal_action="terminate"`` (an unmasked illegal action ends the match and costs the
    offender ``illegal_reward``) or ``"penalize"`` (a small charge, and play goes on)."""

    def __init__(self, env):
        super().__init__(env)
        self.observation_spaces = {a: env.observation_space(a)["observation"]
                                   for a in env.possible_agents}
        self.action_spaces = {a: env.action_space(a) for a in env.possible_agents}

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def observe(self, agent: str) -> np.ndarray | None:
        inner = self.env.observe(agent)
        return None if inner is None else inner["observation"]

    def action_mask(self, agent: str) -> np.ndarray:
        """``agent``'s current legal-action mask (int8)."""
        return self.env.unwrapped.action_mask(agent)

    def __str__(self) -> str:
        return str(self.env)


class MaskedRoleEnv(gymnasium.Env):
    """One role's seat (:class:`~fraudarena_env.RoleEnv`) with the legal-action mask inside the
    observation: ``{"observations": vector, "action_mask": mask}`` (mask as int8, 1 = legal).

    Built from one config dict, as RLlib builds an env class (``MaskedRoleEnv(env_config)``):
    ``role`` (default ``"investigator"``) and any other :class:`~fraudarena_env.RoleEnv` keyword
    (``opponents``, ``task_id``, ``illegal_action``, ``render_mode``, the match knobs). Keywords
    work too: ``MaskedRoleEnv(role="fraudster", task_id="task_3")``. The ``RoleEnv`` it drives is
    ``role_env``."""

    metadata = RoleEnv.metadata

    def __init__(self, config: Mapping[str, Any] | None = None, **kwargs: Any):
        cfg = {**dict(config or {}), **kwargs}
        role = cfg.pop("role", "investigator")
        self.role_env = RoleEnv(role, **cfg)
        self.render_mode = self.role_env.render_mode
        self.action_space = self.role_env.action_space
        self.observation_space = spaces.Dict({
            "observations": self.role_env.observation_space,
            "action_mask": spaces.Box(0, 1, (int(self.action_space.n),), np.int8)})

    def _observe(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        return {"observations": vector,
                "action_mask": self.role_env.action_masks().astype(np.int8)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = match_seed_or_none(seed)
        super().reset(seed=seed)
        vector, info = self.role_env.reset(seed=seed, options=options)
        return self._observe(vector), info

    def step(self, action):
        vector, reward, terminated, truncated, info = self.role_env.step(action)
        return self._observe(vector), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """The learner's legal-action mask (bool), as on ``RoleEnv``."""
        return self.role_env.action_masks()

    def render(self):
        return self.role_env.render()

    def close(self) -> None:
        self.role_env.close()


def rllib_multi_agent_env(illegal_action: str = "terminate", **cfg: Any) -> VectorObservation:
    """``VectorObservation(fraudarena_v0.env(illegal_action=..., **cfg))``: the AEC env as RLlib's
    ``PettingZooEnv`` and its default (unmasked) models take it. An unmasked illegal action ends
    the match with the offender charged (``illegal_action="terminate"``, the default here)."""
    from .fraudarena_v0 import env

    return VectorObservation(env(illegal_action=illegal_action, **cfg))


def shared_space_env(**cfg: Any) -> SharedSpaceWrapper:
    """``SharedSpaceWrapper(fraudarena_v0.env(**cfg))``: the wrapped AEC env with one observation
    and one action space for all agents. ``cfg`` is ``fraudarena_v0.env``'s."""
    from .fraudarena_v0 import env

    return SharedSpaceWrapper(env(**cfg))


__all__ = ["SharedSpaceWrapper", "RenameObservationKey", "VectorObservation", "MaskedRoleEnv",
           "rllib_multi_agent_env", "shared_space_env"]
