"""``ShardedVectorFraudArena``: ``VectorFraudArena``'s N matches on several cores.

>>> from fraudarena_env.vector_workers import ShardedVectorFraudArena
>>> venv = ShardedVectorFraudArena(1024, workers=2, task_id="task_3")
>>> batch = venv.reset(seed=0)
>>> batch = venv.step(venv.sample_actions(batch.action_mask))
>>> venv.close()

The N envs are split in ``workers`` contiguous blocks, each a ``VectorFraudArena`` in a worker
process of its own that writes its rows of every batch (observations, masks, rewards, ...) into
memory the processes share; a step hands each block its actions there, the blocks step at the
same time, and the batch is read from that memory. Each block plays its envs' seeds (its k-th
automatic reset of env ``i`` on ``s + i + k * N``: ``seed_stride``) and tasks, so every env plays
exactly what it plays in ``VectorFraudArena(N, ...)``, and ``sample_actions`` draws the same
actions from the same seed: the batches, endings (``final_info``, ``final_view``), global states
and errors are the same, step by step (``tests/test_vector_workers.py``). What it does not have
is the one process's internals (``state``, ``referees``, ``observers``): read a batch, or use
``VectorFraudArena``.

It pays off only with many matches a block: on the 2-core development machine N = 1,024 in two
blocks stepped 0.96-1.23 times as many matches a second as one process, N = 4,096 1.14-1.38
times (``benchmarks/bench_vector.py --envs 1024 4096 --workers 2``; docs/vector.md says where the
time goes). Workers are
forked (Linux and other Unix systems) and stop with ``close()`` (or when the env is collected, or
the program ends); an error in a worker is raised here with its traceback as the cause.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence

import numpy as np

from .rules.catalog import ROLES
from .seat_workers import Shards, split
from .vector import (
    SEED_LIMIT,
    VectorFraudArena,
    VectorStep,
    check_num_envs,
    check_seed,
    first_illegal,
    illegal_action_error,
    read_only,
    sample_legal,
    state_out,
    step_arguments,
    task_list,
)


class _Shared:
    """The batch's arrays in memory shared with the (forked) workers: one anonymous shared
    mapping, each array a view of its own aligned piece."""

    def __init__(self, n: int, width: int, actions: int):
        spec = {"obs": ((n, width), np.float32), "mask": ((n, actions), np.int8),
                "rewards": ((n, len(ROLES)), np.float64), "current_agent": ((n,), np.int64),
                "terminated": ((n,), bool), "truncated": ((n,), bool),
                "actions": ((n,), np.int64), "active": ((n,), bool)}
        sizes = {k: -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // 64) * 64
                 for k, (shape, dtype) in spec.items()}
        self._memory = mmap.mmap(-1, sum(sizes.values()))  # shared with forked children
        at = 0
        for name, (shape, dtype) in spec.items():
            count = int(np.prod(shape))
            setattr(self, name, np.frombuffer(self._memory, dtype, count, at).reshape(shape))
            at += sizes[name]


class _Block:
    """A worker's block: envs ``start`` to ``stop`` of the whole, a ``VectorFraudArena`` writing
    its batches into the shared rows."""

    def __init__(self, shared: _Shared, start: int, stop: int, tasks: Sequence[str], n: int,
                 max_cycles: int, knobs: dict):
        self.shared, self.start, self.stop = shared, start, stop
        rows = slice(start, stop)
        self.venv = VectorFraudArena(stop - start, task_id=list(tasks), max_cycles=max_cycles,
                                     copy=False, seed_stride=n,
                                     buffers=(shared.obs[rows], shared.mask[rows]), **knobs)

    def reset(self, seed: int) -> None:
        self._write(self.venv.reset(seed=seed + self.start))

    def step(self) -> tuple[dict, dict]:
        """Step on the shared actions; the endings, by env of the whole."""
        s, rows = self.shared, slice(self.start, self.stop)
        self._write(self.venv.step(s.actions[rows], s.active[rows]))
        a = self.start
        return ({m + a: info for m, info in self.venv.final_info.items()},
                {m + a: view for m, view in self.venv.final_view.items()})

    def _write(self, batch: VectorStep) -> None:
        """The batch's rows but the views and masks, which the vector env wrote in place."""
        s, rows = self.shared, slice(self.start, self.stop)
        s.current_agent[rows] = batch.current_agent
        s.rewards[rows] = batch.rewards
        s.terminated[rows] = batch.terminated
        s.truncated[rows] = batch.truncated

    def keep_final_view(self, role: str | None) -> None:
        self.venv.keep_final_view = role

    def global_state(self) -> np.ndarray:
        return self.venv.global_state()

    def labels_of(self, envs: np.ndarray, slots: np.ndarray) -> np.ndarray:
        return self.venv.labels_of(envs, slots)

    def illegal_reason(self, m: int, index: int) -> tuple[str, str]:
        return self.venv.illegal_reason(m, index)


class ShardedVectorFraudArena:
    """``num_envs`` matches in ``workers`` blocks, each stepped by a worker process (see the
    module docstring); otherwise as ``VectorFraudArena(num_envs, task_id, max_cycles, copy,
    **knobs)``."""

    agents = ROLES

    def __init__(self, num_envs: int, workers: int = 2, task_id: str | Sequence[str] = "task_1",
                 max_cycles: int = 1000, copy: bool = True, **knobs):
        n = check_num_envs(num_envs)
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or \
                not 1 <= workers <= n:
            raise ValueError(f"workers must be an integer from 1 to num_envs ({n}): the "
                             f"processes the matches are split among; got {workers!r}")
        tasks = task_list(task_id)
        # one match checks the settings (and gives the spaces) here, before any worker starts
        probe = VectorFraudArena(1, task_id=tasks, max_cycles=max_cycles, copy=copy, **knobs)
        self.num_envs, self.workers, self.task_id, self.copy = n, int(workers), task_id, copy
        self.task_ids = tuple(tasks[i % len(tasks)] for i in range(n))
        self.knobs, self.max_steps = probe.knobs, probe.max_steps
        self.vector_size, self.n_actions = probe.vector_size, probe.n_actions
        self.single_observation_space = probe.single_observation_space
        self.single_action_space = probe.single_action_space
        self._shared = shared = _Shared(n, self.vector_size, self.n_actions)
        self._blocks = blocks = split(n, self.workers)
        task_ids = self.task_ids

        def make(w: int) -> _Block:
            start, stop = blocks[w]
            return _Block(shared, start, stop, task_ids[start:stop], n, max_cycles, knobs)

        self._shards = Shards(self.workers, make)
        self._starts = [start for start, _ in blocks]
        self._seed, self._rng, self._ready = 0, np.random.default_rng(0), False
        self._keep_final_view: str | None = None
        self.final_info: dict[int, dict] = {}
        self.final_view: dict[int, np.ndarray] = {}

    @property
    def keep_final_view(self) -> str | None:
        """As ``VectorFraudArena.keep_final_view``."""
        return self._keep_final_view

    @keep_final_view.setter
    def keep_final_view(self, role: str | None) -> None:
        if role is not None and role not in ROLES:
            raise ValueError(f"keep_final_view must be one of {list(ROLES)} or None, got {role!r}")
        self._shards.call("keep_final_view", [(role,)] * self.workers)
        self._keep_final_view = role

    @property
    def seed(self) -> int | None:
        """As ``VectorFraudArena.seed``."""
        return self._seed if self._ready else None

    def reset(self, seed: int | None = None) -> VectorStep:
        """Start every env: env i plays match ``seed + i`` (``seed`` drawn when None)."""
        seed = int(np.random.SeedSequence().entropy % SEED_LIMIT) if seed is None else \
            check_seed(seed)
        self._ready = False
        self._shards.call("reset", [(seed,)] * self.workers)
        self._seed, self._rng, self._ready = seed, np.random.default_rng(seed), True
        self.final_info, self.final_view = {}, {}
        return self._batch()

    def step(self, actions, active=None) -> VectorStep:
        """As ``VectorFraudArena.step``: an illegal action is refused before any block plays."""
        if not self._ready:
            raise RuntimeError("step() before reset(): call reset(seed=...) first")
        s = self._shared
        a, active = step_arguments(actions, active, self.num_envs)
        m = first_illegal(s.mask, a, active)
        if m is not None:
            w = self._block_of(np.asarray([m]))[0]
            raise illegal_action_error(m, int(a[m]), *self._shards.call_one(
                w, "illegal_reason", (m - self._starts[w], int(a[m]))))
        s.actions[:], s.active[:] = a, active
        self._ready = False  # until every block has stepped
        endings = self._shards.call("step", [()] * self.workers)
        self._ready = True
        self.final_info = {m: info for infos, _ in endings for m, info in infos.items()}
        self.final_view = {m: view for _, views in endings for m, view in views.items()}
        return self._batch()

    def _batch(self) -> VectorStep:
        s = self._shared
        obs, mask = (s.obs.copy(), s.mask.copy()) if self.copy else (read_only(s.obs),
                                                                     read_only(s.mask))
        return VectorStep(s.current_agent.copy(), obs, mask, s.rewards.copy(),
                          s.terminated.copy(), s.truncated.copy())

    def _block_of(self, envs: np.ndarray) -> np.ndarray:
        return np.searchsorted(self._starts, envs, side="right") - 1

    def sample_actions(self, action_mask: np.ndarray) -> np.ndarray:
        """As ``VectorFraudArena.sample_actions`` (the same draws from the same seed)."""
        return sample_legal(self._rng, action_mask, self.num_envs)

    def global_state(self, out: np.ndarray | None = None) -> np.ndarray:
        """As ``VectorFraudArena.global_state``."""
        if not self._ready:
            raise RuntimeError("global_state() before reset(): call reset(seed=...) first")
        out = state_out(out, self.num_envs)
        out[...] = np.concatenate(self._shards.call("global_state", [()] * self.workers))
        return out

    def labels_of(self, envs: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """As ``VectorFraudArena.labels_of``."""
        envs, slots = np.asarray(envs, np.int64), np.asarray(slots, np.int64)
        w = self._block_of(envs)
        answers = self._shards.call("labels_of", [
            (envs[w == k] - start, slots[w == k]) for k, start in enumerate(self._starts)])
        out = np.empty(len(envs), answers[0].dtype)
        for k, labels in enumerate(answers):
            out[w == k] = labels
        return out

    def close(self) -> None:
        """Stop the workers."""
        self._shards.close()


__all__ = ["ShardedVectorFraudArena"]
