"""One learning role on ``VectorFraudArena``: a Stable-Baselines3 ``VecEnv`` of N matches.

``VectorRoleEnv(role, num_envs, opponents=None, task_id="task_1", **knobs)`` is to
:class:`~fraudarena_env.vector.VectorFraudArena` what :class:`~fraudarena_env.role_env.RoleEnv`
is to the AEC env (``task_id`` may list tasks: env ``i`` plays the ``i % k``-th): the learner
acts in every env at once, then the other roles' opponents move in batch, env by env, until it
is the learner's turn in every env again. Env ``i`` plays exactly
the match ``RoleEnv(role, ...)`` plays on seed ``seed_offset + s + i`` (``s`` from
``seed(s)``, 0 by default) with the same learner actions: the same observations, masks,
rewards and endings (``tests/test_sb3_vector.py`` checks it step by step). A finished env
starts its next match at once, the vector env's ``k``-th reset of env ``i`` using seed
``seed_offset + s + i + k * N``, and its opponents are reseeded from that seed as ``RoleEnv``
reseeds them. A later ``reset()`` without a seed plays on with matches none of the envs has
played (as ``DummyVecEnv``'s unseeded resets do; it replayed the first ones), so ``learn`` in
chunks never trains twice on a match.

* ``action_masks()`` (and ``env_method("action_masks")``, which sb3-contrib's ``MaskablePPO``
  calls) gives the learner's legal actions, one bool row per env;
* ``opponents``: ``None`` (the scripted baselines), a dict ``role -> spec`` or a callable
  returning such a dict. A spec is ``"scripted"``, ``"random"``, an SB3 model (played as in
  ``RoleEnv``, kept to the mask; one model in every env predicts for all the envs waiting on it
  at once) or a :class:`~fraudarena_env.policies.Policy`;
  a ``Policy`` keeps per-match state, so pass a callable that builds fresh ones: it is called
  once per env. The scripted investigator decides for all the envs waiting on it at once too
  (``policies.BatchedScriptedInvestigator``, the same choices); other opponents are asked env
  by env (every role's players are a ``policies.BatchPolicy``);
* ``infos[i]`` is empty while env ``i`` plays on; when its match ends it has ``raw_env``'s info
  keys for that match (``end_reason``, ``has_grader``, ``grader_score``, ...; not the returns:
  SB3's ``VecMonitor`` counts them), ``terminal_observation`` (the learner's view as the match
  ended, the one ``RoleEnv`` returns: SB3 bootstraps a truncated match from it) and
  ``TimeLimit.truncated``. A match cut by ``max_cycles`` before the learner's first turn is an
  error, as in ``RoleEnv``;
* an action the learner's mask forbids raises ``IllegalActionError`` and nothing of the step is
  applied, as ``RoleEnv(illegal_action="raise")`` does (``RoleEnv`` defaults to ``"penalize"``):
  train a masked algorithm (``MaskablePPO``) on it, or mask the policy's choices yourself;
* the match knobs are given when it is built (all N matches share them): ``set_options`` with
  knobs, which ``DummyVecEnv`` would hand to each env's next reset, is refused.
* ``workers=W`` (default 1) splits the envs in ``W`` blocks, each played (with its opponents)
  in a worker process of its own (``fraudarena_env.seat_workers``), the blocks stepping at the
  same time: the same matches, views, rewards and endings as with one process
  (``tests/test_seat_workers.py``), on up to ``W`` cores. Workers are forked (Linux and other
  Unix systems); ``close()`` stops them.

Needs the training extra (``pip install torch==2.13.0 --index-url
https://download.pytorch.org/whl/cpu && pip install -e ".[train]"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from .role_seats import RoleSeats


class VectorRoleEnv(RoleSeats, VecEnv):
    """``role``'s seat in ``num_envs`` matches at once (see the module docstring)."""

    render_mode = None
    _RESET_FIRST = "call reset() first (seed(s) before it chooses the matches)"

    def __init__(self, role: str, num_envs: int, opponents: Mapping[str, Any] | Callable[
            [], Mapping[str, Any]] | None = None, task_id: str | Sequence[str] = "task_1",
            seed_offset: int = 0, max_cycles: int = 1000, workers: int = 1, **knobs: Any):
        observation_space, action_space = self._seat(role, num_envs, opponents, task_id,
                                                     seed_offset, max_cycles, knobs, workers)
        VecEnv.__init__(self, num_envs, observation_space, action_space)
        self._actions: np.ndarray | None = None

    # ------------------------------------------------------------------ VecEnv API
    def reset(self):
        obs = self._start(self._seeds[0])
        self._reset_seeds()
        return obs

    def seed(self, seed: int | None = None):
        """Seed the next ``reset``: env ``i`` then plays match ``seed_offset + seed + i``."""
        self._check_seed(seed)  # refused now: a stored bad seed would fail every later reset
        return super().seed(seed)

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        """Reset options are refused, not ignored: the N matches share their match knobs, which
        are given when the env is built."""
        if options and (isinstance(options, dict) or any(options)):
            raise ValueError(f"set_options({options!r}): VectorRoleEnv's matches take their "
                             "match knobs when it is built, e.g. VectorRoleEnv(role, n, "
                             "max_rounds=3); build a new one to change them")
        super().set_options(options)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = self._checked(actions)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(actions)")
        actions, self._actions = self._actions, None
        obs, rewards, endings = self._play(actions)
        done = np.zeros(self.num_envs, bool)
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        for m, (info, view, truncated) in endings.items():
            done[m] = True
            infos[m] = info
            info["terminal_observation"] = view
            info["TimeLimit.truncated"] = truncated
        return obs, rewards.astype(np.float32), done, infos

    def close(self) -> None:
        self._close_seats()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        self._whole_batch("set_attr", attr_name, indices)
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        if method_name == "action_masks":
            return [self._masks[i].copy() for i in self._get_indices(indices)]
        self._whole_batch("env_method", method_name, indices)
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def _whole_batch(self, call: str, name: str, indices) -> None:
        """The N matches are one vector env: an attribute or a method is the whole batch's, so
        asking it of some envs only (which ``DummyVecEnv`` would do) is refused, not widened."""
        if sorted(set(self._get_indices(indices))) != list(range(self.num_envs)):
            raise NotImplementedError(
                f"{call}({name!r}, indices={indices!r}): VectorRoleEnv runs its {self.num_envs} "
                "matches as one vector env, so this acts on all of them; call it without "
                "indices")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def has_attr(self, attr_name: str) -> bool:
        return hasattr(self, attr_name)


__all__ = ["VectorRoleEnv"]
