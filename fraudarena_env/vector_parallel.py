"""``ParallelVectorFraudArena``: ``VectorFraudArena``'s N matches split over worker processes.

>>> from fraudarena_env.vector_parallel import ParallelVectorFraudArena
>>> with ParallelVectorFraudArena(1024, task_id="task_3", workers=2) as venv:
...     batch = venv.reset(seed=0)
...     batch = venv.step(venv.sample_actions(batch.action_mask))

The same interface and the same batches as ``VectorFraudArena(num_envs, ...)``: reset with the
same seed, step with the same actions, and every observation, mask, reward, ending and
``final_info`` is equal, bit for bit (``sample_actions`` too draws what the single-process env
draws). Each worker process runs a ``VectorFraudArena`` over a contiguous slice of the envs, whose
seeds are those of the same envs in the whole batch, and writes its rows of the batch straight
into memory it shares with this process, so nothing is copied between processes but the
actions and the short ``final_info`` of the matches that ended. A step refused as illegal is
refused here, before any worker moves, so a refused step changes nothing.

One core per worker: on a machine whose cores are free this steps up to ``workers`` times as many
matches per second as ``VectorFraudArena``; on a busy machine, or with a learner that needs a
core, less. What it does not give is the match state: ``VectorRoleEnv`` and the batched scripted
players read ``VectorFraudArena.state``, which lives in the workers here. Workers start with
``multiprocessing``'s default start method (``context``: another one by name, e.g. ``"spawn"``,
which imports the package afresh in each worker); ``close()`` (or leaving a ``with`` block) stops
them.
"""

from __future__ import annotations

import multiprocessing
import traceback
import weakref
from collections.abc import Sequence
from multiprocessing import shared_memory

import numpy as np

from .rules.catalog import ROLES
from .rules.errors import IllegalActionError
from .vector import (
    SEED_LIMIT,
    VectorFraudArena,
    VectorStep,
    check_seed,
    read_only,
    sample_legal,
    step_input,
)


class _Block(shared_memory.SharedMemory):
    """Shared memory that stays mapped as long as anything views it: numpy arrays over a
    ``SharedMemory`` keep its mapping referenced, not open, so ``close`` (which ``__del__`` calls
    too) would unmap memory that a batch handed out without a copy still reads. The mapping is
    freed with the last array over it."""

    def close(self) -> None:
        pass


class WorkerError(RuntimeError):
    """A worker process failed; the message carries its traceback."""


def _layout(num_envs: int, vector_size: int, n_actions: int) -> list[tuple[str, tuple, type]]:
    """The shared arrays: (name, shape, dtype), in the order they sit in the shared block."""
    n = num_envs
    return [("observation", (n, vector_size), np.float32), ("rewards", (n, len(ROLES)), np.float64),
            ("current_agent", (n,), np.int64), ("actions", (n,), np.int64),
            ("action_mask", (n, n_actions), np.int8), ("terminated", (n,), np.bool_),
            ("truncated", (n,), np.bool_), ("active", (n,), np.bool_)]


def _views(buffer, layout) -> dict[str, np.ndarray]:
    out, offset = {}, 0
    for name, shape, dtype in layout:
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        out[name] = np.ndarray(shape, dtype, buffer=buffer, offset=offset)
        offset += -(-size // 64) * 64  # each array on a cache line of its own
    return out


def _block_size(layout) -> int:
    return sum(-(-int(np.prod(shape)) * np.dtype(dtype).itemsize // 64) * 64
               for _, shape, dtype in layout)


class _Slice(VectorFraudArena):
    """Envs ``first`` to ``first + num_envs - 1`` of a batch of ``period``: their seeds and tasks
    are those envs' in the whole batch; the observations and masks are written into ``out``."""

    def __init__(self, first: int, period: int, task_id, max_cycles: int, knobs: dict,
                 out: dict[str, np.ndarray]):
        stop = first + len(out["actions"])
        super().__init__(stop - first, task_id=task_id, max_cycles=max_cycles, copy=False,
                         **knobs)
        tasks = (task_id,) if isinstance(task_id, str) else tuple(task_id)
        self.task_ids = tuple(tasks[i % len(tasks)] for i in range(first, stop))
        self._first, self._period = first, period
        self._obs, self._mask = out["observation"], out["action_mask"]  # written in place


def _work(conn, parent_end, name: str, layout, first: int, stop: int, period: int, task_id,
          max_cycles, knobs) -> None:
    """A worker's loop: build its slice, then answer the parent's commands until ``close`` (or
    until the parent is gone)."""
    parent_end.close()  # so that the parent's exit ends ``recv`` here
    block = _Block(name=name)  # (its resource tracker is the parent's: the parent unlinks it)
    try:
        arrays = _views(block.buf, layout)
        mine = {k: v[first:stop] for k, v in arrays.items()}
        venv = _Slice(first, period, task_id, max_cycles, knobs, mine)
        conn.send(("ready", None))
        while True:
            try:
                command, arg = conn.recv()
            except EOFError:
                break
            if command == "close":
                break
            try:
                conn.send(("ok", _serve(venv, mine, command, arg)))
            except Exception:  # noqa: BLE001 - handed to the parent, which raises it
                conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _serve(venv: _Slice, mine: dict[str, np.ndarray], command: str, arg):
    if command == "reset":
        batch = venv.reset(seed=arg)
    elif command == "step":
        batch = venv.step(mine["actions"], active=mine["active"] if arg else None)
    elif command == "explain":  # why env ``arg`` (an index into this slice) may not act so
        actions, active = np.zeros(venv.num_envs, np.int64), np.zeros(venv.num_envs, bool)
        actions[arg], active[arg] = mine["actions"][arg], True
        try:
            venv._check(actions, active)
        except IllegalActionError as error:
            return error.agent, error.action, error.reason
        return None
    else:
        raise ValueError(f"unknown command {command!r}")
    mine["current_agent"][:] = batch.current_agent
    mine["rewards"][:] = batch.rewards
    mine["terminated"][:] = batch.terminated
    mine["truncated"][:] = batch.truncated
    return {venv._first + m: info for m, info in venv.final_info.items()}


def _stop(processes, conns, block) -> None:
    for conn in conns:
        try:
            conn.send(("close", None))
        except (BrokenPipeError, OSError):
            pass
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
    for conn in conns:
        conn.close()
    block.unlink()  # the name goes now; the memory with the last batch that views it


class ParallelVectorFraudArena:
    """``num_envs`` FraudArena matches over ``workers`` processes (see the module docstring)."""

    agents = ROLES

    def __init__(self, num_envs: int, task_id: str | Sequence[str] = "task_1",
                 max_cycles: int = 1000, copy: bool = True, workers: int = 2,
                 context: str | None = None, **knobs):
        # the arguments are checked, and the spaces worked out, by a one-env VectorFraudArena
        probe = VectorFraudArena(1, task_id=task_id, max_cycles=max_cycles, **knobs)
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or \
                num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or \
                workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        n = self.num_envs = int(num_envs)
        self.workers = min(int(workers), n)
        self.task_id, self.copy, self.knobs = task_id, copy, probe.knobs
        tasks = (task_id,) if isinstance(task_id, str) else tuple(task_id)
        self.task_ids = tuple(tasks[i % len(tasks)] for i in range(n))
        self.max_steps = probe.max_steps
        self.vector_size, self.n_actions = probe.vector_size, probe.n_actions
        self.single_observation_space = probe.single_observation_space
        self.single_action_space = probe.single_action_space
        self.final_info: dict[int, dict] = {}
        self._rng = np.random.default_rng(0)
        self._ready = False
        layout = _layout(n, self.vector_size, self.n_actions)
        block = _Block(create=True, size=_block_size(layout))
        self._arrays = _views(block.buf, layout)
        self._bounds = np.linspace(0, n, self.workers + 1).astype(np.int64)
        context = multiprocessing.get_context(context)
        self._conns, self._processes = [], []
        self._finalizer = weakref.finalize(self, _stop, self._processes, self._conns, block)
        for first, stop in zip(self._bounds[:-1].tolist(), self._bounds[1:].tolist()):
            parent, child = context.Pipe()
            process = context.Process(
                target=_work, args=(child, parent, block.name, layout, first, stop, n,
                                    task_id, max_cycles, self.knobs), daemon=True)
            process.start()
            child.close()
            self._conns.append(parent)
            self._processes.append(process)
        self._gather()

    # ------------------------------------------------------------------ the commands
    def _gather(self) -> list:
        """Every worker's answer to the last command (a worker's failure raises here, once all
        have answered)."""
        answers, failed = [], None
        for w, conn in enumerate(self._conns):
            try:
                status, value = conn.recv()
            except EOFError:
                status, value = "error", "the worker process exited"
            if status == "error" and failed is None:
                failed = f"worker {w} (envs {self._bounds[w]}-{self._bounds[w + 1] - 1}) " \
                         f"failed:\n{value}"
            answers.append(value)
        if failed is not None:
            raise WorkerError(failed)
        return answers

    def _command(self, command: str, arg=None) -> list:
        if not self._finalizer.alive:
            raise RuntimeError("this ParallelVectorFraudArena is closed; build a new one")
        for conn in self._conns:
            conn.send((command, arg))
        return self._gather()

    def reset(self, seed: int | None = None) -> VectorStep:
        """Start every env: env i plays match ``seed + i`` (``seed`` drawn when None)."""
        seed = int(np.random.SeedSequence().entropy % SEED_LIMIT) if seed is None else \
            check_seed(seed)
        self._rng = np.random.default_rng(seed)
        self._command("reset", seed)
        self._ready = True
        self.final_info = {}
        return self._batch()

    def step(self, actions, active=None) -> VectorStep:
        """Apply one action per env (its current agent's); ``VectorFraudArena.step``."""
        if not self._finalizer.alive:
            raise RuntimeError("this ParallelVectorFraudArena is closed; build a new one")
        a, active = step_input(self._ready, actions, active, self.num_envs)
        self._refuse_illegal(a, active)
        self._arrays["actions"][:] = a
        if active is not None:
            self._arrays["active"][:] = active
        self.final_info = {}
        for answer in self._command("step", active is not None):
            self.final_info.update(answer)
        return self._batch()

    def _refuse_illegal(self, a: np.ndarray, active) -> None:
        """Before any worker moves: an illegal action of an active env is refused, with the
        reason its worker's rules give."""
        mask = self._arrays["action_mask"]
        inside = (a >= 0) & (a < self.n_actions)
        legal = inside.copy()
        legal[inside] = mask[np.flatnonzero(inside), a[inside]] == 1
        if active is not None:
            legal |= ~active
        if legal.all():
            return
        m = int(np.flatnonzero(~legal)[0])
        w = int(np.searchsorted(self._bounds, m, side="right") - 1)
        self._arrays["actions"][m] = a[m]
        self._conns[w].send(("explain", m - int(self._bounds[w])))
        status, value = self._conns[w].recv()
        if status == "error":
            raise WorkerError(f"worker {w} failed:\n{value}")
        raise IllegalActionError(*value)

    def _batch(self) -> VectorStep:
        out = self._arrays
        obs, mask = out["observation"], out["action_mask"]
        obs, mask = (obs.copy(), mask.copy()) if self.copy else (read_only(obs), read_only(mask))
        return VectorStep(out["current_agent"].copy(), obs, mask, out["rewards"].copy(),
                          out["terminated"].copy(), out["truncated"].copy())

    def sample_actions(self, action_mask: np.ndarray) -> np.ndarray:
        """One uniformly random legal action per env: the draws ``VectorFraudArena`` makes after
        a reset with the same seed."""
        return sample_legal(self._rng, action_mask, self.num_envs)

    def close(self) -> None:
        """Stop the workers and free the shared memory (idempotent)."""
        self._finalizer()

    def __enter__(self) -> ParallelVectorFraudArena:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["ParallelVectorFraudArena", "WorkerError"]
