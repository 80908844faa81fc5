"""One learning role's seat in many matches at once, the part both batched single-role envs
share: ``sb3_vector.VectorRoleEnv`` (a Stable-Baselines3 ``VecEnv``) and
``gym_vector.RoleVectorEnv`` (a Gymnasium ``VectorEnv``, what ``gymnasium.make_vec`` builds).

``RoleSeats`` runs a ``VectorFraudArena`` for one role: the learner acts in every env at once,
then the other roles' opponents move in batch, env by env, until it is the learner's turn in
every env again. Env ``i`` plays exactly the match ``RoleEnv(role, ...)`` plays on seed
``seed_offset + s + i`` with the same learner actions, and its ``k``-th new match uses seed
``seed_offset + s + i + k * N`` (its opponents reseeded from it as ``RoleEnv`` reseeds them).
What the learner earns while the others move goes to its next step's reward, as in ``RoleEnv``.
The adapters only translate: seeds and resets, and how endings are reported. With ``workers``
above 1 the envs are split in blocks among worker processes (``seat_workers``), each running
this seat for its block; env ``i`` plays the same matches either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from .faces.encoding import N_ACTIONS, OBS_BOUND, Observer
from .policies import BATCHED_BASELINES, Policy
from .policies.base import BatchPolicy, PerEnvPolicies
from .role_env import _derived_seed, _make_actor, model_actions, opponent_dict
from .rules.catalog import ROLES
from .rules.errors import IllegalActionError
from .seat_workers import Shards, split
from .vector import (
    SEED_LIMIT,
    VectorFraudArena,
    check_num_envs,
    check_seed,
    first_illegal,
    first_past_int64,
    illegal_action_error,
    label_query,
    task_list,
)

_N_ROLES = len(ROLES)


class Ending(NamedTuple):
    """How one env's match ended within a step: the AEC env's info keys for it, the learner's
    view as it ended (the one ``RoleEnv`` returns) and whether ``max_cycles`` cut it."""

    info: dict
    view: np.ndarray
    truncated: bool


class RoleSeats:
    """``role``'s seat in ``num_envs`` matches (see the module docstring). Subclasses call
    ``_seat`` from their ``__init__``, ``_start`` from their reset and ``_play`` from their
    step."""

    _RESET_FIRST = "call reset() first"  # how a step before any reset is told what to do
    _env_offset = 0  # a shard's first env in the whole seat (its errors name envs by it)
    _seat_name = ""  # ... and the whole seat's class, which they name
    _shards: Shards | None = None

    def _seat(self, role: str, num_envs: int, opponents: Mapping[str, Any] | Callable[
            [], Mapping[str, Any]] | None, task_id: str | Sequence[str], seed_offset: int,
              max_cycles: int, knobs: dict, workers: int = 1, seed_stride: int | None = None
              ) -> tuple[spaces.Box, spaces.Discrete]:
        """Build the matches and the opponents (here, or in ``workers`` processes); the
        learner's observation and action spaces."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {list(ROLES)}")
        if isinstance(seed_offset, bool) or not isinstance(seed_offset, (int, np.integer)) or \
                not 0 <= seed_offset < SEED_LIMIT:
            raise ValueError(f"seed_offset must be an integer from 0 to 2**62 - 1 (env i plays "
                             f"match seed_offset + seed + i), got {seed_offset!r}")
        n = check_num_envs(num_envs)
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or \
                not 1 <= workers <= n:
            raise ValueError(f"workers must be an integer from 1 to num_envs ({n}): the "
                             f"processes the matches are split among; got {workers!r}")
        self.role, self._r = role, ROLES.index(role)
        self.task_id = task_id
        self.seed_offset = int(seed_offset)
        self.workers = int(workers)
        self._size = {r: Observer(r).size for r in ROLES}
        if workers == 1:
            self.venv = VectorFraudArena(num_envs, task_id=task_id, max_cycles=max_cycles,
                                         copy=False, seed_stride=seed_stride,
                                         first_env=self._env_offset, **knobs)
            self.venv.keep_final_view = role
            self._n = n
            self._players = self._opponents(opponents)
        else:  # (each worker builds its block's vector env and opponents)
            self.venv = None
            self._n = n
            self._players = {}
            self._blocks = split(n, int(workers))
            self._starts = [a for a, _ in self._blocks]
            self._shards = Shards(int(workers), self._shard_maker(
                opponents, task_id, max_cycles, knobs))
            self._shard_resets = [0] * int(workers)
        self._carry = np.zeros(n)
        self._masks = np.zeros((n, N_ACTIONS[role]), bool)
        self._match_seed = np.zeros(n, np.int64)
        self._base = self.seed_offset
        self._played = False  # whether a reset has started matches (see _start)
        self._stopped = False  # an opponent's move raised: matches wait on an opponent
        return (spaces.Box(-OBS_BOUND, OBS_BOUND, (self._size[role],), np.float32),
                spaces.Discrete(N_ACTIONS[role]))

    def _opponents(self, opponents) -> dict[str, BatchPolicy]:
        """Per other role, its player in every env: one SB3 model predicting for all of them,
        the batched baseline where there is one (``BATCHED_BASELINES``) and the role is left
        to the scripted baseline in every env, else a player per env."""
        n = self._n
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

    def _shard_maker(self, opponents, task_id, max_cycles: int, knobs: dict):
        """What a worker builds: the seat of its block of envs (each playing its own task, on
        the whole seat's seeds)."""
        role, n, blocks, offset = self.role, self._n, self._blocks, self.seed_offset
        name = type(self).__name__
        tasks = task_list(task_id)

        def make(w: int) -> _Shard:
            a, b = blocks[w]
            own = [tasks[i % len(tasks)] for i in range(a, b)]
            return _Shard(role, b - a, opponents, own, offset + a, max_cycles, knobs, n, a,
                          name)
        return make

    # ------------------------------------------------------------------ for the adapters
    def _start(self, seed: int | None) -> np.ndarray:
        """New matches in every env: on ``seed_offset + seed + i``, or (``seed`` None) on the
        first seeds, then, once matches have been played, on matches none of the envs has
        played. The learner's first views."""
        if seed is None and self._played:
            resets = max(self._shard_resets) if self._shards else int(self.venv._resets.max())
            base = self._base + self._n * (resets + 1)
        else:
            base = self.seed_offset + (0 if seed is None else int(seed))
        base = check_seed(base, "seed_offset + seed")
        if self._shards is None:
            return self._start_at(base)
        self._base, self._played = base, True
        try:
            answers = self._shards.call("start_shard", [(base + a,) for a, _ in self._blocks])
        except BaseException:
            self._played = False
            raise
        self._stopped = False
        return self._take_views(answers)

    def _start_at(self, base: int) -> np.ndarray:
        """``_start`` on this process's matches: env ``i`` on ``base + i``."""
        self._base = base
        self._played = True
        self._carry[:] = 0.0
        batch = self.venv.reset(seed=self._base)
        self._new_matches(np.arange(self._n))
        try:
            batch, _ = self._advance(batch, np.zeros(self._n), None)
        except RuntimeError:  # a match cut before the learner's first turn: no step plays on
            self._played = False
            raise
        return self._observe(batch)

    def _check_seed(self, seed) -> None:
        """Refuse a seed now that would fail the next reset."""
        if seed is not None and (isinstance(seed, bool) or
                                 not isinstance(seed, (int, np.integer))):
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        if seed is not None:
            check_seed(self.seed_offset + int(seed), "seed_offset + seed")

    def _play(self, actions, idle: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray, dict[int, Ending]]:
        """The learner's actions (``_checked``'s (N,) array), then the opponents' moves: the
        learner's next views, its rewards (float64) and the envs whose match ended (a new one
        started at once). ``idle`` (N,) bool: envs that sit this step out, their actions ignored
        (what they earned before the learner's first turn waits for its first step there)."""
        actions = actions.astype(np.int64, copy=False)
        if self._shards is not None:
            return self._play_shards(actions, idle)
        batch = self.venv.step(actions) if idle is None else self.venv.step(actions, ~idle)
        rewards = batch.rewards[:, self._r].copy()
        endings: dict[int, Ending] = {}
        self._record_endings(batch, endings)
        carried = self._carry.copy()
        if idle is None:
            self._carry[:] = 0.0
        else:
            carried[idle] = 0.0
            self._carry[~idle] = 0.0
        batch, rewards = self._advance(batch, rewards, endings)
        return self._observe(batch), carried + rewards, endings

    def _play_shards(self, actions: np.ndarray, idle: np.ndarray | None
                     ) -> tuple[np.ndarray, np.ndarray, dict[int, Ending]]:
        """``_play`` in the workers: each its block, all at once; an illegal action is refused
        before any worker plays."""
        self._refuse_illegal(actions, idle)
        try:
            answers = self._shards.call("play_shard", [
                (actions[a:b], None if idle is None else idle[a:b]) for a, b in self._blocks])
        except BaseException:  # some blocks may have played: the matches wait on a reset
            self._stopped = True
            raise
        rewards = np.concatenate([answer[2] for answer in answers])
        endings = {m + a: ending for a, answer in zip(self._starts, answers)
                   for m, ending in answer[3].items()}
        return self._take_views(answers), rewards, endings

    def _take_views(self, answers: list) -> np.ndarray:
        """The learner's views in every block's answer (each begins ``views, masks`` and ends
        with its block's most resets of an env), as the whole seat's; its masks kept."""
        self._masks[:] = np.concatenate([answer[1] for answer in answers])
        self._shard_resets = [answer[-1] for answer in answers]
        return np.concatenate([answer[0] for answer in answers])

    def _refuse_illegal(self, actions: np.ndarray, idle: np.ndarray | None) -> None:
        """An ``IllegalActionError`` for the first acting env whose action its mask refuses,
        worded as the vector env words it (asked of that env's worker); nothing is played."""
        m = first_illegal(self._masks, actions, np.ones(self._n, bool) if idle is None else ~idle)
        if m is None:
            return
        w = int(np.searchsorted(self._starts, m, side="right")) - 1
        raise illegal_action_error(m, int(actions[m]), *self._shards.call_one(
            w, "illegal_reason", (m - self._starts[w], int(actions[m]))))

    def _close_seats(self) -> None:
        """Stop the workers (if any); the matches are over."""
        if self._shards is not None:
            self._shards.close()
        else:
            self.venv.close()

    def _checked(self, actions) -> np.ndarray:
        """The learner's actions as an (N,) array, or why they cannot be."""
        if not self._played:  # (the vector env's own message asks for its reset(seed=...))
            raise RuntimeError(f"step() before reset(): {self._RESET_FIRST}")
        if self._stopped:  # the learner's actions would be played for the opponents
            raise RuntimeError("an opponent's move raised an error, and the matches stopped "
                               "before the learner's turn; call reset()")
        a = np.asarray(actions)
        if a.shape not in ((self._n,), (self._n, 1)) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be {self._n} integers, one Discrete action per "
                             f"env (shape ({self._n},) or ({self._n}, 1)); got {a.dtype} "
                             f"{a.shape}")
        a = a.reshape(self._n)
        if (m := first_past_int64(a)) is not None:
            raise IllegalActionError(self.role, int(a[m]), f"env {m}: index {int(a[m])} is "
                                     f"outside {self.role}'s Discrete({N_ACTIONS[self.role]})")
        return a

    def action_masks(self) -> np.ndarray:
        """The learner's legal actions in every env, (N, A) bool."""
        self._refuse_unplayable("action_masks()")
        return self._masks.copy()

    def _refuse_unplayable(self, what: str) -> None:
        """A RuntimeError for ``what`` on a closed seat, or before its first reset."""
        if (self._shards or self.venv).closed:
            raise RuntimeError("this env is closed; build a new one")
        if not self._played:
            raise RuntimeError(f"{what} before reset(): {self._RESET_FIRST}")

    def labels_of(self, envs: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """The true label (``catalog.LEGIT``, ``FRAUD`` or ``ESCALATE``) of the ad in
        ``slots[k]`` of env ``envs[k]``, as ``Referee.label_of`` gives it: hidden from every
        role during play; for training-only shaping."""
        if self._shards is None:
            return self.venv.labels_of(envs, slots)
        envs, slots = label_query(envs, slots, self._n)
        w = np.searchsorted(self._starts, envs, side="right") - 1
        answers = self._shards.call("labels_of", [
            (envs[w == k] - a, slots[w == k]) for k, a in enumerate(self._starts)])
        out = np.empty(len(envs), answers[0].dtype)
        for k, labels in enumerate(answers):
            out[w == k] = labels
        return out

    # ------------------------------------------------------------------ helpers
    def _advance(self, batch, rewards, endings: dict[int, Ending] | None):
        """Opponents move, in batch, until the learner is to act in every env. What they earn
        the learner goes to this step's reward in an env still playing its match, and to the
        carry of the next match's first step in an env whose match ended (``endings``; None
        while matches start: none may end then)."""
        r = self._r
        done = np.zeros(self._n, bool)
        if endings:
            done[list(endings)] = True
        self._stopped = True  # until the learner is to act in every env again
        while True:
            waiting = batch.current_agent != r
            if not waiting.any():
                self._stopped = False
                return batch, rewards
            actions = np.zeros(self._n, np.int64)
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
            if endings is not None:
                self._record_endings(batch, endings)
            elif self.venv.final_info:
                raise self._cut_before_first_turn(min(self.venv.final_info))
            done = done | batch.terminated | batch.truncated

    def _act(self, role: str, idx: np.ndarray, batch) -> np.ndarray:
        size, width = self._size[role], N_ACTIONS[role]
        obs = batch.observation[idx, _N_ROLES:_N_ROLES + size]
        mask = batch.action_mask[idx, :width]
        return self._players[role].act_batch(idx, obs, mask)

    def _record_endings(self, batch, endings: dict[int, Ending]) -> None:
        """The envs whose match ended in the vector env's last step; their opponents are
        reseeded for the next match."""
        if not self.venv.final_info:
            return
        for m, info in self.venv.final_info.items():
            if m in endings:  # a second ending in one step: the new match never reached the learner
                raise self._cut_before_first_turn(m)
            endings[m] = Ending(dict(info), self.venv.final_view[m], bool(batch.truncated[m]))
        self._new_matches(np.fromiter(self.venv.final_info, np.int64))

    def _cut_before_first_turn(self, m: int) -> RuntimeError:
        """The error for env ``m``'s match, cut by ``max_cycles`` before the learner's first
        turn (``RoleEnv`` refuses it too)."""
        seat = self._seat_name or type(self).__name__
        return RuntimeError(
            f"env {m + self._env_offset}: the match on seed {int(self._match_seed[m])} ended "
            f"before the {self.role}'s first turn (max_cycles="
            f"{self.venv.max_steps // _N_ROLES} cut it first); give {seat} a larger max_cycles "
            "(the auditor acts only once play is over)")

    def _new_matches(self, env: np.ndarray) -> None:
        stride = self.venv.seed_stride  # N, or the whole seat's N for a worker's block
        self._match_seed[env] = self._base + env + self.venv._resets[env] * stride
        seeds = self._match_seed[env].tolist()
        for role, player in self._players.items():
            player.reset_envs(env, [_derived_seed(seed, role) for seed in seeds])

    def _observe(self, batch) -> np.ndarray:
        size, width = self._size[self.role], N_ACTIONS[self.role]
        self._masks[:] = batch.action_mask[:, :width]
        return batch.observation[:, _N_ROLES:_N_ROLES + size].copy()


class _Shard(RoleSeats):
    """A worker's block of a seat's envs (``seat_workers``): envs ``first`` to ``first + n`` of
    the whole, on its seeds (``seed_stride``: the whole seat's N)."""

    def __init__(self, role: str, n: int, opponents, tasks, seed_offset: int, max_cycles: int,
                 knobs: dict, seed_stride: int, first: int, seat_name: str):
        self._env_offset, self._seat_name = first, seat_name
        self._seat(role, n, opponents, tasks, seed_offset, max_cycles, knobs,
                   seed_stride=seed_stride)

    def start_shard(self, base: int) -> tuple:
        obs = self._start_at(base)
        return obs, self._masks, int(self.venv._resets.max())

    def play_shard(self, actions: np.ndarray, idle: np.ndarray | None) -> tuple:
        obs, rewards, endings = self._play(actions, idle)
        return obs, self._masks, rewards, endings, int(self.venv._resets.max())

    def illegal_reason(self, m: int, index: int) -> tuple[str, str]:
        return self.venv.illegal_reason(m, index)


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


__all__ = ["Ending", "RoleSeats"]
