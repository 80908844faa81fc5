"""One learning role's seat split across worker processes: ``VectorRoleEnv(..., workers=W)``.

A seat of N matches spends most of its time in the game (the vector env's steps and the
opponents' batched moves), which runs on one core. With ``W`` workers, each worker process runs
the seat for a contiguous block of the envs (a shard: its own ``VectorFraudArena`` and its own
opponents), and a learner step sends each shard its block of actions and gathers the views,
rewards and endings: one round trip a step, the shards stepping at the same time.

Env ``i`` plays the same matches with the same opponents as in one process: a shard's
``VectorFraudArena`` plays its envs' seeds (``seed_stride``, the whole seat's N), each of its
envs its own task, and the opponents are made per env and reseeded per match from the match's
seed, as they are in one process. The tests hold a seat with workers to the same seat without
them, step by step.

Workers are forked (the ``fork`` start method, so opponents need not be picklable), one torch
thread each. An error in a worker is raised in the learner's process with the worker's
traceback as its cause; a worker that dies stops the seat.
"""

from __future__ import annotations

import builtins
import gc
import multiprocessing
import pickle
import signal
import sys
import traceback
import weakref
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np

_JOIN_SECONDS = 5.0


class WorkerError(RuntimeError):
    """A worker process's error, as its traceback read there (the cause of the error raised in
    the learner's process)."""


def _serve(conn, make: Callable[[int], Any], index: int) -> None:
    """A worker's loop: build its shard, then answer the learner's calls until ``close``."""
    # Ctrl-C reaches every process of the terminal's group: the learner's process stops the
    # workers (its finalizer), which would otherwise each print a traceback of their own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if "torch" in sys.modules:  # an opponent's network: one thread per worker process
        sys.modules["torch"].set_num_threads(1)
    try:
        shard = make(index)
    except BaseException as error:  # (sent to the learner, which raises it)
        conn.send(_failure(error))
        return
    gc.freeze()  # what the worker was forked with and built: not swept again (nor copied)
    conn.send(("ok", None))
    while True:
        try:
            call, args = conn.recv()
        except (EOFError, OSError):  # the learner's process is gone
            return
        if call == "close":
            conn.send(("ok", None))
            return
        try:
            out = getattr(shard, call)(*args)
        except BaseException as error:
            conn.send(_failure(error))
            continue
        conn.send(("ok", out))


def _failure(error: BaseException) -> tuple:
    """What a worker sends for an error: its class's name, its message, the traceback, and
    the error itself pickled when it can be (so the learner raises the same class, the
    package's own and a user's included), else None."""
    try:
        pickled = pickle.dumps(error)
        pickle.loads(pickled)  # (an error whose class takes other arguments cannot be rebuilt)
    except Exception:
        pickled = None
    return "error", type(error).__name__, str(error), traceback.format_exc(), pickled


def _rebuilt(name: str, message: str, pickled: bytes | None) -> BaseException:
    """The worker's error as the learner raises it: the error itself when it came pickled, a
    builtin error by its name, else a RuntimeError that names its class."""
    if pickled is not None:
        try:
            error = pickle.loads(pickled)
        except Exception:  # (its class cannot be imported here)
            error = None
        if isinstance(error, Exception):
            return error
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        return kind(message)
    return RuntimeError(f"{name}: {message}")


def _shut(processes: list, conns: list) -> None:
    """Ask every worker to stop, then make sure it has (a finalizer: also at interpreter exit)."""
    for conn in conns:
        try:
            conn.send(("close", ()))
        except (OSError, ValueError):
            pass
    for process in processes:
        process.join(_JOIN_SECONDS)
        if process.is_alive():
            process.terminate()
            process.join(_JOIN_SECONDS)
    for conn in conns:
        conn.close()


class Shards:
    """``workers`` processes, worker ``w`` holding ``make(w)`` (built in the worker), and calls
    to all of them at once."""

    def __init__(self, workers: int, make: Callable[[int], Any]):
        if "fork" not in multiprocessing.get_all_start_methods():
            raise ValueError("workers > 1 needs the 'fork' start method (Linux, and other Unix "
                             "systems), which this platform lacks; use workers=1")
        context = multiprocessing.get_context("fork")
        self.processes, self.conns = [], []
        for w in range(workers):
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, make, w), daemon=True,
                                      name=f"fraudarena-seat-{w}")
            process.start()
            theirs.close()
            self.processes.append(process)
            self.conns.append(ours)
        self._finalizer = weakref.finalize(self, _shut, self.processes, self.conns)
        try:
            self.gather(range(workers))  # each shard built, or the first error raised
        except BaseException:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def call(self, name: str, args_by_worker: list[tuple]) -> list:
        """``name(*args)`` on every worker at once (``args_by_worker[w]`` for worker ``w``);
        their answers in order, or the first worker's error (after every answer is in)."""
        for w, args in enumerate(args_by_worker):
            self._send(w, name, args)
        return self.gather(range(len(self.conns)))

    def call_one(self, w: int, name: str, args: tuple):
        """``name(*args)`` on worker ``w`` alone."""
        self._send(w, name, args)
        return self.gather([w])[0]

    def _send(self, w: int, name: str, args: tuple) -> None:
        if self.closed:
            raise RuntimeError("this env is closed; build a new one")
        try:
            self.conns[w].send((name, args))
        except OSError:  # (a broken pipe: the worker is gone)
            self._exited(w)

    def _exited(self, w: int) -> NoReturn:
        """Worker ``w`` is gone: stop the others and say so."""
        process = self.processes[w]
        process.join(_JOIN_SECONDS)
        self.close()
        raise RuntimeError(f"worker {w} of the seat exited (exit code {process.exitcode}); "
                           "build a new env") from None

    def gather(self, workers) -> list:
        answers, failure = [], None
        for w in workers:
            try:
                answer = self.conns[w].recv()
            except (EOFError, OSError):
                self._exited(w)
            if answer[0] == "ok":
                answers.append(answer[1])
            elif failure is None:
                failure = (w, *answer[1:])
        if failure is not None:
            w, name, message, remote, pickled = failure
            raise _rebuilt(name, message, pickled) from WorkerError(f"in worker {w}:\n{remote}")
        return answers

    def close(self) -> None:
        self._finalizer()


def split(n: int, workers: int) -> list[tuple[int, int]]:
    """``n`` envs in ``workers`` contiguous blocks (start, stop), as even as they go."""
    bounds = np.linspace(0, n, workers + 1).round().astype(int).tolist()
    return list(zip(bounds[:-1], bounds[1:]))


__all__ = ["Shards", "WorkerError", "split"]
