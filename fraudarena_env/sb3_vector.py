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

Needs the training extra (``pip install torch==2.13.0 && pip install -e ".[train]"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from .faces.encoding import N_ACTIONS, OBS_BOUND
from .policies import BATCHED_BASELINES, Policy
from .policies.base import BatchPolicy, PerEnvPolicies
from .role_env import _derived_seed, _make_actor, model_actions, opponent_dict
from .rules.catalog import ROLES
from .vector import SEED_LIMIT, VectorFraudArena, check_seed

_N_ROLES = len(ROLES)


class VectorRoleEnv(VecEnv):
    """``role``'s seat in ``num_envs`` matches at once (see the module docstring)."""

    render_mode = None

    def __init__(self, role: str, num_envs: int, opponents: Mapping[str, Any] | Callable[
            [], Mapping[str, Any]] | None = None, task_id: str | Sequence[str] = "task_1",
            seed_offset: int = 0, max_cycles: int = 1000, **knobs: Any):
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {list(ROLES)}")
        self.venv = VectorFraudArena(num_envs, task_id=task_id, max_cycles=max_cycles,
                                     copy=False, **knobs)
        self.venv.keep_final_view = role
        self.role, self._r = role, ROLES.index(role)
        self.task_id = task_id
        if isinstance(seed_offset, bool) or not isinstance(seed_offset, (int, np.integer)) or \
                not 0 <= seed_offset < SEED_LIMIT:
            raise ValueError(f"seed_offset must be an integer from 0 to 2**62 - 1 (env i plays "
                             f"match seed_offset + seed + i), got {seed_offset!r}")
        self.seed_offset = int(seed_offset)
        self._size = {r: self.venv._views[r].size for r in ROLES}
        space = spaces.Box(-OBS_BOUND, OBS_BOUND, (self._size[role],), np.float32)
        super().__init__(num_envs, space, spaces.Discrete(N_ACTIONS[role]))
        self._players = self._opponents(opponents)
        n = num_envs
        self._carry = np.zeros(n)
        self._masks = np.zeros((n, N_ACTIONS[role]), bool)
        self._match_seed = np.zeros(n, np.int64)
        self._actions: np.ndarray | None = None
        self._base = self.seed_offset
        self._played = False  # whether a reset has started matches (see reset)
        self._stopped = False  # an opponent's move raised: matches wait on an opponent

    def _opponents(self, opponents) -> dict[str, BatchPolicy]:
        """Per other role, its player in every env: one SB3 model predicting for all of them,
        the batched baseline where there is one (``BATCHED_BASELINES``) and the role is left
        to the scripted baseline in every env, else a player per env."""
        n = self.num_envs
        dicts = [opponent_dict(self.role, opponents() if callable(opponents) else opponents)
                 for _ in range(n)]
        players: dict[str, BatchPolicy] = {}
        for other in ROLES:
            if other == self.role:
                continue
            specs = [d.get(other) for d in dicts]
            if hasattr(specs[0], "predict") and all(spec is specs[0] for spec in specs):
                players[other] = _ModelPlayer(specs[0])
                continue
            if other in BATCHED_BASELINES and all(spec is None or (isinstance(spec, str) and
                                                                   spec == "scripted")
                                                  for spec in specs):
                players[other] = BATCHED_BASELINES[other](n)
                continue
            if n > 1 and isinstance(specs[0], Policy) and specs[0] is specs[1]:
                raise ValueError(f"one {type(specs[0]).__name__} for {other} in every env: a "
                                 "Policy keeps per-match state; pass a callable that returns "
                                 "fresh opponents (it is called once per env)")
            made = [_make_actor(other, spec) for spec in specs]
            players[other] = PerEnvPolicies([act for act, _ in made], [obj for _, obj in made])
        return players

    # ------------------------------------------------------------------ VecEnv API
    def reset(self):
        seed = self._seeds[0]
        if seed is None and self._played:  # unseeded: new matches, after every one played
            base = self._base + self.num_envs * (int(self.venv._resets.max()) + 1)
        else:
            base = self.seed_offset + (0 if seed is None else int(seed))
        self._base = check_seed(base, "seed_offset + seed")
        self._played = True
        self._reset_seeds()
        self._carry[:] = 0.0
        batch = self.venv.reset(seed=self._base)
        self._new_matches(np.arange(self.num_envs))
        batch, _, _ = self._advance(batch, np.zeros(self.num_envs), np.zeros(self.num_envs, bool))
        return self._observe(batch)

    def seed(self, seed: int | None = None):
        """Seed the next ``reset``: env ``i`` then plays match ``seed_offset + seed + i``."""
        if seed is not None and (isinstance(seed, bool) or
                                 not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        if seed is not None:  # refused now: a stored bad seed would fail every later reset
            check_seed(self.seed_offset + int(seed), "seed_offset + seed")
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
        if not self._played:  # (the vector env's own message asks for its reset(seed=...))
            raise RuntimeError("step() before reset(): call reset() first (seed(s) before it "
                               "chooses the matches)")
        if self._stopped:  # the learner's actions would be played for the opponents
            raise RuntimeError("an opponent's move raised an error, and the matches stopped "
                               "before the learner's turn; call reset()")
        a = np.asarray(actions)
        if a.size != self.num_envs or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be {self.num_envs} integers, one Discrete action per "
                             f"env; got {a.dtype} {a.shape}")
        self._actions = a.reshape(self.num_envs)

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(actions)")
        n = self.num_envs
        actions, self._actions = self._actions.astype(np.int64), None
        batch = self.venv.step(actions)
        rewards = batch.rewards[:, self._r].copy()
        done = batch.terminated | batch.truncated
        infos: list[dict] = [{} for _ in range(n)]
        self._record_endings(batch, infos)
        carried = self._carry.copy()
        self._carry[:] = 0.0
        batch, rewards, done = self._advance(batch, rewards, done, infos)
        rewards = carried + rewards  # RoleEnv: carry + what the step and the opponents paid
        return self._observe(batch), rewards.astype(np.float32), done, infos

    def action_masks(self) -> np.ndarray:
        """The learner's legal actions in every env, (N, A) bool."""
        return self._masks.copy()

    def labels_of(self, envs: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """The true label (``catalog.LEGIT``, ``FRAUD`` or ``ESCALATE``) of the ad in
        ``slots[k]`` of env ``envs[k]``, as ``Referee.label_of`` gives it: hidden from every
        role during play; for training-only shaping."""
        return self.venv.labels_of(envs, slots)

    def close(self) -> None:
        self.venv.close()

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

    # ------------------------------------------------------------------ helpers
    def _advance(self, batch, rewards, done, infos=None):
        """Opponents move, in batch, until the learner is to act in every env. What they earn
        the learner goes to this step's reward in an env still playing its match, and to the
        carry of the next match's first step in an env whose match ended."""
        r = self._r
        self._stopped = True  # until the learner is to act in every env again
        while True:
            waiting = batch.current_agent != r
            if not waiting.any():
                self._stopped = False
                return batch, rewards, done
            actions = np.zeros(self.num_envs, np.int64)
            for other, o in ((x, ROLES.index(x)) for x in ROLES if x != self.role):
                idx = np.flatnonzero(batch.current_agent == o)
                if len(idx):
                    actions[idx] = self._act(other, idx, batch)
            batch = self.venv.step(actions, active=waiting)
            paid = batch.rewards[:, r]
            playing = waiting & ~done
            rewards[playing] += paid[playing]
            ended = waiting & done
            self._carry[ended] += paid[ended]
            if infos is not None:
                self._record_endings(batch, infos)
            elif self.venv.final_info:
                raise RuntimeError("a match ended before the learner's first turn")
            done = done | batch.terminated | batch.truncated

    def _act(self, role: str, idx: np.ndarray, batch) -> np.ndarray:
        size, width = self._size[role], N_ACTIONS[role]
        obs = batch.observation[idx, _N_ROLES:_N_ROLES + size]
        mask = batch.action_mask[idx, :width]
        return self._players[role].act_batch(idx, obs, mask)

    def _record_endings(self, batch, infos: list[dict]) -> None:
        """Infos of the envs whose match ended in the vector env's last step; their opponents
        are reseeded for the next match."""
        if not self.venv.final_info:
            return
        for m, info in self.venv.final_info.items():
            if infos[m]:  # a second ending in one step: the new match never reached the learner
                raise RuntimeError(
                    f"env {m}: the match on seed {int(self._match_seed[m])} ended before the "
                    f"{self.role}'s first turn (max_cycles={self.venv.max_steps // _N_ROLES} cut "
                    "it first); give VectorRoleEnv a larger max_cycles (the auditor acts only "
                    "once play is over)")
            infos[m] = dict(info)
            infos[m]["terminal_observation"] = self.venv.final_view[m]
            infos[m]["TimeLimit.truncated"] = bool(batch.truncated[m])
        self._new_matches(np.fromiter(self.venv.final_info, np.int64))

    def _new_matches(self, env: np.ndarray) -> None:
        n = self.num_envs
        self._match_seed[env] = self._base + env + self.venv._resets[env] * n
        seeds = self._match_seed[env].tolist()
        for role, player in self._players.items():
            player.reset_envs(env, [_derived_seed(seed, role) for seed in seeds])

    def _observe(self, batch) -> np.ndarray:
        size, width = self._size[self.role], N_ACTIONS[self.role]
        self._masks[:] = batch.action_mask[:, :width]
        return batch.observation[:, _N_ROLES:_N_ROLES + size].copy()


class _ModelPlayer(BatchPolicy):
    """An SB3 model as one role's player in every env: its moves predicted for all the envs
    waiting on it at once (deterministic, so nothing to reseed)."""

    def __init__(self, model):
        self.model = model
        self._act = model_actions(model)

    def reset_envs(self, envs, seeds=None) -> None:
        pass

    def act_batch(self, envs, vectors, masks) -> np.ndarray:
        return self._act(np.asarray(vectors, np.float32), masks.astype(bool))


__all__ = ["VectorRoleEnv"]
