"""One learning role on ``VectorFraudArena``: a Gymnasium ``VectorEnv`` of N matches.

``gymnasium.make_vec("fraudarena/Investigator-v0", num_envs=256, task_id="task_3")`` (and
``Fraudster-v0``, ``Auditor-v0``) builds ``RoleVectorEnv(role, num_envs, **kwargs)``: the
learner's seat in N matches stepped in lockstep by the batched rules core, the other roles'
opponents moving in batch. ``vectorization_mode="sync"`` still gives Gymnasium's
``SyncVectorEnv`` over N ``RoleEnv``s, one match per Python call.

Env ``i`` plays exactly the match ``RoleEnv(role, ...)`` plays on seed ``seed_offset + s + i``
(``s`` from ``reset(seed=s)``) with the same learner actions: the same observations, masks,
rewards and endings (``tests/test_gym_vector.py`` checks it step by step). A finished env starts
its next match in the same step (``metadata["autoreset_mode"]`` is ``AutoresetMode.SAME_STEP``):
its ``k``-th new match is on seed ``seed_offset + s + i + k * N``, and the observation returned
for it is the new match's first; the last one of the old match is in ``infos["final_obs"][i]``
and its info (the AEC env's keys but the returns of each role: ``phase``, ``round``,
``end_reason``, ``has_grader``, ``grader_score``; and ``return``, the learner's match total, as
``RoleEnv`` reports it) in ``infos["final_info"]``,
each with its ``_``-prefixed mask, as ``SyncVectorEnv`` gives them. ``reset()`` without a seed
starts on seed ``seed_offset`` the first time and, after that, on matches none of the envs has
played.

* ``action_masks()``: the learner's legal actions, one bool row per env (what sb3-contrib's
  masked algorithms call; a CleanRL-style loop masks its logits with it); under Gymnasium's
  vector wrappers (``RecordEpisodeStatistics``, ...) it is ``envs.unwrapped.action_masks()``,
  and ``call("action_masks")`` gives the rows as ``SyncVectorEnv`` does;
* an action the learner's mask forbids raises ``IllegalActionError`` and nothing of the step is
  applied: the batched env has no ``illegal_action="penalize"`` (``RoleEnv``'s default, which
  ``vectorization_mode="sync"`` keeps);
* ``autoreset_mode=AutoresetMode.NEXT_STEP`` (Gymnasium's default, which its observation
  wrappers such as ``NormalizeObservation`` and ``FlattenObservation`` require): the step that
  ends a match returns its last view in ``obs`` and its ending's keys (with ``return``) in
  ``infos``, each with its ``_`` mask; on the next step that env's action is ignored and it
  returns the new match's first view, reward 0, neither terminated nor truncated (its
  ``action_masks()`` row is already the new match's). The seeds are the same in either mode;
* ``opponents``, ``task_id`` (a task or a list of tasks, env ``i`` playing the ``i % k``-th),
  ``seed_offset``, ``max_cycles`` and the match knobs as for ``sb3_vector.VectorRoleEnv``; the
  knobs are fixed when the env is built (reset ``options`` are refused).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .role_seats import RoleSeats


class RoleVectorEnv(RoleSeats, VectorEnv):
    """``role``'s seat in ``num_envs`` matches at once (see the module docstring)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    _RESET_FIRST = "call reset(seed=...) first"

    def __init__(self, role: str, num_envs: int = 1, opponents: Mapping[str, Any] | Callable[
            [], Mapping[str, Any]] | None = None, task_id: str | Sequence[str] = "task_1",
            seed_offset: int = 0, max_cycles: int = 1000, illegal_action: str = "raise",
            render_mode: str | None = None,
            autoreset_mode: str | AutoresetMode = AutoresetMode.SAME_STEP, **knobs: Any):
        if illegal_action != "raise":
            raise ValueError(
                f"illegal_action={illegal_action!r}: the batched env raises IllegalActionError "
                "on an action its mask forbids (mask the policy's choices with action_masks()); "
                "for RoleEnv's illegal_action modes use gymnasium.make_vec(..., "
                "vectorization_mode='sync'), N RoleEnvs")
        if render_mode is not None:
            raise ValueError(f"render_mode={render_mode!r}: the batched env does not render; "
                             "RoleEnv(role, render_mode='ansi') shows one match")
        mode = next((m for m in (AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP)
                     if autoreset_mode in (m, m.value)), None)
        if mode is None:
            raise ValueError(
                f"autoreset_mode={autoreset_mode!r}: give AutoresetMode.SAME_STEP (the default) "
                "or NEXT_STEP (what Gymnasium's observation wrappers, such as "
                "NormalizeObservation, need); a match that ends always starts the next, so "
                "DISABLED is not offered")
        self.metadata = {**self.metadata, "autoreset_mode": mode}
        self.autoreset_mode = mode
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.single_observation_space, self.single_action_space = self._seat(
            role, int(num_envs), opponents, task_id, seed_offset, max_cycles, knobs)
        self.num_envs = int(num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self._return = np.zeros(self.num_envs)  # the learner's total in each env's match so far
        self._resetting = np.zeros(self.num_envs, bool)  # NEXT_STEP: ended on the last step

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """New matches in every env (see the module docstring for the seeds); ``infos`` is
        empty."""
        if options:
            raise ValueError(f"reset(options={options!r}): RoleVectorEnv's matches take their "
                             "match knobs when it is built, e.g. gymnasium.make_vec(id, n, "
                             "max_rounds=3); build a new one to change them")
        if isinstance(seed, (list, tuple, np.ndarray)):
            raise ValueError("reset(seed=...) takes one integer s (env i then plays match "
                             "seed_offset + s + i), not one seed per env")
        self._check_seed(seed)
        obs = self._start(seed)
        self._return[:] = 0.0
        self._resetting[:] = False
        return obs, {}

    def step(self, actions):
        next_step = self.autoreset_mode == AutoresetMode.NEXT_STEP
        idle = self._resetting.copy() if next_step and self._resetting.any() else None
        obs, rewards, endings = self._play(self._checked(actions), idle)
        self._return += rewards
        self._resetting[:] = False
        n = self.num_envs
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        infos: dict[str, Any] = {}
        for m, (info, view, cut) in endings.items():
            (truncated if cut else terminated)[m] = True
            info["return"] = float(self._return[m])
            self._return[m] = 0.0
            if next_step:  # the old match's last view now, the new one's first on the next step
                obs[m] = view
                self._resetting[m] = True
                infos = self._add_info(infos, info, m)
            else:
                infos = self._add_info(infos, {"final_obs": view, "final_info": info}, m)
        return obs, rewards, terminated, truncated, infos

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """``SyncVectorEnv.call`` for ``"action_masks"``: one bool row per env, so a loop that
        reads ``np.stack(envs.call("action_masks"))`` runs on either vectorization mode."""
        if name != "action_masks":
            raise NotImplementedError(
                f"call({name!r}): RoleVectorEnv runs its {self.num_envs} matches as one batch, so "
                "only call('action_masks') is per env; read the batch's own attributes and "
                f"methods directly (envs.unwrapped.{name} under a wrapper)")
        return tuple(self.action_masks(*args, **kwargs))

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """``SyncVectorEnv.get_attr``: the batch's attribute, once per env (all N share it)."""
        return (getattr(self, name),) * self.num_envs

    def close_extras(self, **kwargs: Any) -> None:
        self.venv.close()


__all__ = ["RoleVectorEnv"]
