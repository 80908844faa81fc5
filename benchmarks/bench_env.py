"""Throughput of the FraudArena AEC env, against PettingZoo's connect_four_v3 in the same process.

What is timed: the same loop for both envs, through ``env()`` (the wrapped env users get):
``agent_iter()``, ``last()``, then ``step()`` with a uniformly random legal action from
``obs["action_mask"]`` (``None`` for a dead agent), resetting with the next seed when an episode
ends. A turn is one ``step()`` call, dead steps included (as PettingZoo's
``performance_benchmark`` counts them). Each task is timed against connect_four_v3 in turns:
eight alternating slices of each (whole episodes until the slice's time is up), so that a
machine whose speed drifts, or another job starting, slows both alike; the ratio is that
task's turns per second over connect_four_v3's in the same slices. Time is the process's CPU
time, which other processes on the machine do not add to. Also reported: the mean
``env.reset(seed=...)`` time on task_3 and the memory one env instance holds.

    python benchmarks/bench_env.py            # ~3 s per env
    python benchmarks/bench_env.py --quick    # ~1 s per env
    fraudarena bench --section env            # the same, from the command line
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
import types
import warnings

import numpy as np

from fraudarena_env import bench, fraudarena_v0
from fraudarena_env.rules.catalog import TASK_IDS

SLICES = 8  # alternating slices per env and its reference


def import_connect_four():
    """``pettingzoo.classic.connect_four_v3``. Its module imports pygame at the top, but only its
    "human"/"rgb_array" rendering uses it. pygame is not a FraudArena dependency (the ``dev``
    extra installs ``pygame-ce``); without it, an empty stand-in module is registered just for
    this import and removed again, which does not change the timed loop."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # no banner in the report
    stand_in = None
    try:
        import pygame  # noqa: F401
    except ImportError:
        stand_in = sys.modules["pygame"] = types.ModuleType("pygame")
    try:
        with warnings.catch_warnings():  # pettingzoo's note about its own module layout
            warnings.simplefilter("ignore", DeprecationWarning)
            from pettingzoo.classic import connect_four_v3
    finally:
        if stand_in is not None and sys.modules.get("pygame") is stand_in:
            del sys.modules["pygame"]
    return connect_four_v3


class Loop:
    """The masked-random loop on one env, run in slices of CPU time (``run_for``); turns and
    CPU seconds add up over the slices."""

    def __init__(self, make_env, seed: int = 0):
        self.env = make_env()
        self.rng = np.random.default_rng(seed)
        self.episode_seed = seed
        self.turns = self.episodes = 0
        self.seconds = 0.0

    def run_for(self, seconds: float) -> None:
        """Whole episodes until ``seconds`` of the process's CPU time have passed."""
        env, rng = self.env, self.rng
        start = time.process_time()
        deadline = start + seconds
        while True:
            env.reset(seed=self.episode_seed)
            self.episode_seed += 1
            for _agent in env.agent_iter():
                obs, _, terminated, truncated, _ = env.last()
                if terminated or truncated:
                    action = None
                else:
                    legal = np.flatnonzero(obs["action_mask"])
                    action = int(legal[rng.integers(len(legal))])
                env.step(action)
                self.turns += 1
            self.episodes += 1
            if time.process_time() >= deadline:
                break
        self.seconds += time.process_time() - start

    def figures(self) -> dict:
        return {"turns_per_s": self.turns / self.seconds,
                "episodes_per_s": self.episodes / self.seconds,
                "turns_per_episode": self.turns / max(self.episodes, 1)}


def against(ours: Loop, reference: Loop, seconds: float, slices: int = SLICES) -> dict:
    """Run ``reference`` and ``ours`` in ``slices`` alternating slices of ``seconds / slices``
    CPU seconds each; returns ours's figures over them, with the reference's turns per second
    in the same slices (``reference_turns_per_s``) and the ratio (``ratio_vs_reference``)."""
    before = (ours.turns, ours.episodes, ours.seconds, reference.turns, reference.seconds)
    for _ in range(slices):
        reference.run_for(seconds / slices)
        ours.run_for(seconds / slices)
    turns, episodes, spent = (ours.turns - before[0], ours.episodes - before[1],
                              ours.seconds - before[2])
    theirs = (reference.turns - before[3]) / (reference.seconds - before[4])
    mine = turns / spent
    return {"turns_per_s": mine, "episodes_per_s": episodes / spent,
            "turns_per_episode": turns / max(episodes, 1), "reference_turns_per_s": theirs,
            "ratio_vs_reference": mine / theirs}


def reset_time_us(task_id: str = "task_3", n: int = 500) -> float:
    """Mean ``env.reset(seed=...)`` time of the wrapped env, in microseconds."""
    env = fraudarena_v0.env(task_id=task_id)
    env.reset(seed=0)
    start = time.perf_counter()
    for s in range(n):
        env.reset(seed=s)
    return (time.perf_counter() - start) / n * 1e6


def bytes_per_instance(task_id: str = "task_3", n: int = 50) -> float:
    """Memory one reset env holds, from ``tracemalloc`` over ``n`` instances."""
    warm = fraudarena_v0.env(task_id=task_id)  # import-time tables are not per-instance cost
    warm.reset(seed=0)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    envs = []
    for s in range(n):
        e = fraudarena_v0.env(task_id=task_id)
        e.reset(seed=s)
        envs.append(e)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del envs
    return total / n


def run(seconds: float, tasks=TASK_IDS, memory: bool = True) -> dict:
    """Time each task's env against connect_four_v3 (``against``); print the table and return
    the figures (``connect_four_v3``: its figures over all its slices)."""
    print(f"== env: masked-random AEC loop against connect_four_v3.env(), ~{seconds:g} s of CPU "
          f"per env and task, in {SLICES} alternating slices ==")
    connect_four_v3 = import_connect_four()
    c4 = Loop(connect_four_v3.env)
    results: dict = {}
    print(f"{'env':<34}{'turns/s':>10}{'episodes/s':>12}{'turns/ep':>10}{'c4 turns/s':>12}"
          f"{'vs c4':>8}")
    for task in tasks:
        r = against(Loop(lambda task=task: fraudarena_v0.env(task_id=task)), c4, seconds)
        results[task] = r
        print(f"{'fraudarena_v0.env(' + task + ')':<34}{r['turns_per_s']:>10,.0f}"
              f"{r['episodes_per_s']:>12,.1f}{r['turns_per_episode']:>10.1f}"
              f"{r['reference_turns_per_s']:>12,.0f}{r['ratio_vs_reference']:>8.2f}")
    results["connect_four_v3"] = c4.figures()
    c4.env.close()
    results["reset_us_task_3"] = reset_time_us(n=200 if seconds < 3.0 else 1000)
    print(f"env reset (task_3): {results['reset_us_task_3']:,.0f} us mean")
    if memory:
        results["bytes_per_env_task_3"] = bytes_per_instance()
        print(f"memory per env instance (task_3, after reset): "
              f"{results['bytes_per_env_task_3'] / 1024:,.1f} KiB")
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench.add_arguments(parser, sections=False)  # the options of `fraudarena bench`
    args = parser.parse_args(argv)
    return run(bench.seconds(args), args.tasks, memory=not args.no_memory)


if __name__ == "__main__":
    main()
