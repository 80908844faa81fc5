"""Throughput of the FraudArena AEC env against PettingZoo's connect_four_v3, in one process.

Loop (the same for both envs): ``agent_iter()``, ``last()``, then ``step()`` with a uniformly random
legal action from ``obs["action_mask"]`` (``None`` for a dead agent), resetting with a new seed when
the episode ends. A turn is one ``step()`` call, dead steps included (as in PettingZoo's
``performance_benchmark``). Also reported: reset time on task_3 and memory per env instance.

    python benchmarks/bench_env.py            # ~3 s per env
    python benchmarks/bench_env.py --quick    # ~1 s per env
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np

TASKS = ("task_1", "task_2", "task_3", "task_3_unseen")


def _import_connect_four():
    """``pettingzoo.classic.connect_four_v3``. Its module imports pygame at the top, but only its
    "human"/"rgb_array" rendering uses it; when pygame is not installed (it is not a FraudArena
    dependency) a placeholder module stands in, which does not change the measured loop."""
    try:
        import pygame  # noqa: F401
    except ImportError:
        import sys
        import types

        sys.modules["pygame"] = types.ModuleType("pygame")
    from pettingzoo.classic import connect_four_v3

    return connect_four_v3


def turns_per_second(make_env, seconds: float, seed: int = 0) -> dict:
    """Run the masked-random loop on ``make_env()`` for about ``seconds``."""
    env = make_env()
    rng = np.random.default_rng(seed)
    episode_seed = seed
    env.reset(seed=episode_seed)
    turns = episodes = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _agent in env.agent_iter():
            obs, _, terminated, truncated, _ = env.last()
            if terminated or truncated:
                action = None
            else:
                legal = np.flatnonzero(obs["action_mask"])
                action = int(legal[rng.integers(len(legal))])
            env.step(action)
            turns += 1
        episodes += 1
        if time.perf_counter() >= deadline:
            break
        episode_seed += 1
        env.reset(seed=episode_seed)
    elapsed = time.perf_counter() - start
    env.close()
    return {"turns_per_s": turns / elapsed, "episodes_per_s": episodes / elapsed,
            "turns_per_episode": turns / max(episodes, 1)}


def reset_time_us(task_id: str = "task_3", n: int = 500) -> float:
    from fraudarena_env import fraudarena_v0

    env = fraudarena_v0.env(task_id=task_id)
    env.reset(seed=0)
    start = time.perf_counter()
    for s in range(n):
        env.reset(seed=s)
    return (time.perf_counter() - start) / n * 1e6


def bytes_per_instance(task_id: str = "task_3", n: int = 50) -> float:
    from fraudarena_env import fraudarena_v0

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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="about 1 s per env instead of 3 s")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per env")
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 3.0)

    connect_four_v3 = _import_connect_four()

    from fraudarena_env import fraudarena_v0

    results: dict = {}
    c4 = turns_per_second(connect_four_v3.env, seconds)
    results["connect_four_v3"] = c4
    print(f"{'env':<34}{'turns/s':>10}{'episodes/s':>12}{'turns/ep':>10}{'vs c4':>8}")
    print(f"{'connect_four_v3.env()':<34}{c4['turns_per_s']:>10,.0f}"
          f"{c4['episodes_per_s']:>12,.1f}{c4['turns_per_episode']:>10.1f}{1.0:>8.2f}")
    for task in args.tasks:
        r = turns_per_second(lambda task=task: fraudarena_v0.env(task_id=task), seconds)
        r["ratio_vs_connect_four"] = r["turns_per_s"] / c4["turns_per_s"]
        results[task] = r
        print(f"{'fraudarena_v0.env(' + task + ')':<34}{r['turns_per_s']:>10,.0f}"
              f"{r['episodes_per_s']:>12,.1f}{r['turns_per_episode']:>10.1f}"
              f"{r['ratio_vs_connect_four']:>8.2f}")
    results["reset_us_task_3"] = reset_time_us(n=200 if args.quick else 1000)
    results["bytes_per_env_task_3"] = bytes_per_instance()
    print(f"reset (task_3): {results['reset_us_task_3']:,.0f} us mean")
    print(f"memory per env instance (task_3, after reset): "
          f"{results['bytes_per_env_task_3'] / 1024:,.1f} KiB")
    return results


if __name__ == "__main__":
    main()
