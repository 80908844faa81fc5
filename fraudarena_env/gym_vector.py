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
  and ``call("action_masks")`` gives the rows as ``SyncVectorEnv`` does (``get_attr``,
  ``call`` and ``set_attr``: see ``RoleVectorEnv``);
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
  ``seed_offset``, ``max_cycles``, ``workers`` (the envs split in blocks among that many worker
  processes, the same matches: ``seat_workers``) and the match knobs as for
  ``sb3_vector.VectorRoleEnv``; the knobs are fixed when the env is built (reset ``options``
  are refused).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .registration import GYMNASIUM_IDS
from .role_seats import RoleSeats
from .rules.catalog import MATCH_KNOBS
from .vector import check_num_envs


class RoleVectorEnv(RoleSeats, VectorEnv):
    """``role``'s seat in ``num_envs`` matches at once (see the module docstring).

    Gymnasium's per-env attribute API, for a batch whose N matches share one set of attributes:

    * ``get_attr(name)``: the batch's attribute, once per env;
    * ``call("action_masks")``: one mask row per env; any other name raises
      ``NotImplementedError`` (call the batch's own method directly);
    * ``set_attr(name, values)``: an attribute of your own, one value for every env, or a list or
      tuple of ``num_envs`` values that must all be the same value; a wrong length, or
      different values, raises ``ValueError``. A name the batch was built with or holds (the
      constructor's arguments such as ``task_id`` and ``opponents``, the match knobs, its
      state, spaces and methods) raises ``ValueError`` too, saying what to do instead
      (``gymnasium.make_vec(id, num_envs=N, name=...)`` for a setting): setting it would not
      change the matches. For attributes that differ per env, use
      ``vectorization_mode="sync"``.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    _RESET_FIRST = "call reset(seed=...) first"

    def __init__(self, role: str, num_envs: int = 1, opponents: Mapping[str, Any] | Callable[
            [], Mapping[str, Any]] | None = None, task_id: str | Sequence[str] = "task_1",
            seed_offset: int = 0, max_cycles: int = 1000, illegal_action: str = "raise",
            render_mode: str | None = None,
            autoreset_mode: str | AutoresetMode = AutoresetMode.SAME_STEP, workers: int = 1,
            **knobs: Any):
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
        self.num_envs = check_num_envs(num_envs)
        self.single_observation_space, self.single_action_space = self._seat(
            role, self.num_envs, opponents, task_id, seed_offset, max_cycles, knobs, workers)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self._return = np.zeros(self.num_envs)  # the learner's total in each env's match so far
        self._resetting = np.zeros(self.num_envs, bool)  # NEXT_STEP: ended on the last step
        self._own_attrs: set[str] = set()  # what set_attr has set (it may set them again)

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

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """``SyncVectorEnv.set_attr`` for an attribute of your own: ``values`` is one value for
        every env, or a list or tuple of one per env, which must then be the same value (the N
        matches are one batch, and ``get_attr`` gives the batch's one value for each). What the
        batch was built with or holds (its settings, its state, its methods) is refused with a
        ``ValueError`` saying what to do instead: changing it would not change the matches."""
        n = self.num_envs
        if (name not in self._own_attrs and hasattr(self, name)) or name in self._settings():
            raise ValueError(f"set_attr({name!r}): RoleVectorEnv's {n} matches run as one batch, "
                             f"{self._instead(name)}")
        if not isinstance(values, (list, tuple)):
            values = [values] * n
        if len(values) != n:
            raise ValueError("Values must be a list or tuple with length equal to the number of "
                             f"environments. Got `{len(values)}` values for {n} environments.")
        distinct = [v for k, v in enumerate(values) if not any(
            _same(v, u) for u in values[:k])]
        if len(distinct) > 1:
            raise ValueError(
                f"set_attr({name!r}, ...): {len(distinct)} different values, one per env, but "
                f"RoleVectorEnv's {n} matches run as one batch with one {name}; give one value "
                f"for all {n} envs, or build N RoleEnvs, each with its own attributes: "
                f"gymnasium.make_vec(id, num_envs={n}, vectorization_mode='sync')")
        setattr(self, name, values[0])
        self._own_attrs.add(name)

    def _settings(self) -> set[str]:
        """The names the batch is built with: its constructor's arguments and the match knobs."""
        return {*inspect.signature(type(self).__init__).parameters, *MATCH_KNOBS} - {
            "self", "knobs"}

    def _instead(self, name: str) -> str:
        """Why ``set_attr(name, ...)`` is refused for a name the batch has, and what to do."""
        if name in self._settings():
            built = (f"built with its {name}: setting the attribute would not change the "
                     "matches; ")
            if name == "role":
                ids = ", ".join(repr(env_id) for env_id in GYMNASIUM_IDS.values())
                return (f"{built}each role's seat has its own id, {ids}: build the one you want "
                        f"with gymnasium.make_vec(id, num_envs={self.num_envs})")
            return (f"{built}build a new env with it: gymnasium.make_vec(id, "
                    f"num_envs={self.num_envs}, {name}=...)")
        return (f"and {name} is the batch's own (its state or its API), not a setting; set_attr "
                "sets attributes of your own")

    def close_extras(self, **kwargs: Any) -> None:
        self._close_seats()


def _same(a: Any, b: Any) -> bool:
    """Whether two of ``set_attr``'s values are one value (arrays compared element by element;
    values that cannot be compared count as different)."""
    if a is b:
        return True
    try:
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            return bool(np.array_equal(a, b))
        return bool(a == b)
    except (TypeError, ValueError):
        return False


__all__ = ["RoleVectorEnv"]
