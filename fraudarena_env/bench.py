"""Speed benchmarks: the AEC env against PettingZoo's connect_four_v3, and the referee on its own.

**Env section.** The same loop for both envs: ``agent_iter()``, ``last()``, then ``step()`` with a
uniformly random legal action from ``obs["action_mask"]`` (``None`` for a dead agent), resetting
with a new seed when the episode ends. A turn is one ``step()`` call, dead steps included (as in
PettingZoo's ``performance_benchmark``). Also reported: reset time on task_3 and memory per env
instance.

**Referee section.** Full scripted matches (``Arena().play`` with the default baselines: reactive
fraudster, scripted investigator, heuristic auditor) straight on the referee, no PettingZoo in the
loop, after a warm-up on other seeds; the median of three runs per task. A step is one applied
action of any role; the policies' own time is included. Each task's steps/s is set against the
lineage's figure. Also reported: ``Referee.reset_match`` time on task_3.

    fraudarena bench                 # ~3 s per measurement
    fraudarena bench --quick         # ~1 s per measurement
    python benchmarks/bench_env.py   # env section only
    python benchmarks/bench_referee.py --quick
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np

from .rules.catalog import TASK_IDS

TASKS = TASK_IDS
# The lineage's referee throughput for full matches, in steps/s (CounterFeint's FraudArena, as
# quoted for comparison; not re-measured here). It has no held-out task figure.
LINEAGE_STEPS_PER_S = {"task_1": 2600.0, "task_2": 2000.0, "task_3": 1800.0}


def _seconds(args) -> float:
    return args.seconds if args.seconds is not None else (1.0 if args.quick else 3.0)


# ============================================================================ env section
def _import_connect_four():
    """``pettingzoo.classic.connect_four_v3``. Its module imports pygame at the top, but only its
    "human"/"rgb_array" rendering uses it. pygame is not a FraudArena dependency (the ``dev``
    extra installs ``pygame-ce``); without it, an empty stand-in module is registered just for
    this import and removed again, which does not change the measured loop."""
    import os
    import sys
    import types
    import warnings

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
    """Mean ``env.reset(seed=...)`` time of the wrapped env, in microseconds."""
    from . import fraudarena_v0

    env = fraudarena_v0.env(task_id=task_id)
    env.reset(seed=0)
    start = time.perf_counter()
    for s in range(n):
        env.reset(seed=s)
    return (time.perf_counter() - start) / n * 1e6


def bytes_per_instance(task_id: str = "task_3", n: int = 50) -> float:
    from . import fraudarena_v0

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


def run_env(seconds: float, tasks=TASKS, quick: bool = False, memory: bool = True) -> dict:
    """The env section: prints its table and returns the figures."""
    connect_four_v3 = _import_connect_four()
    from . import fraudarena_v0

    results: dict = {}
    c4 = turns_per_second(connect_four_v3.env, seconds)
    results["connect_four_v3"] = c4
    print(f"{'env':<34}{'turns/s':>10}{'episodes/s':>12}{'turns/ep':>10}{'vs c4':>8}")
    print(f"{'connect_four_v3.env()':<34}{c4['turns_per_s']:>10,.0f}"
          f"{c4['episodes_per_s']:>12,.1f}{c4['turns_per_episode']:>10.1f}{1.0:>8.2f}")
    for task in tasks:
        r = turns_per_second(lambda task=task: fraudarena_v0.env(task_id=task), seconds)
        r["ratio_vs_connect_four"] = r["turns_per_s"] / c4["turns_per_s"]
        results[task] = r
        print(f"{'fraudarena_v0.env(' + task + ')':<34}{r['turns_per_s']:>10,.0f}"
              f"{r['episodes_per_s']:>12,.1f}{r['turns_per_episode']:>10.1f}"
              f"{r['ratio_vs_connect_four']:>8.2f}")
    results["reset_us_task_3"] = reset_time_us(n=200 if quick else 1000)
    print(f"env reset (task_3): {results['reset_us_task_3']:,.0f} us mean")
    if memory:
        results["bytes_per_env_task_3"] = bytes_per_instance()
        print(f"memory per env instance (task_3, after reset): "
              f"{results['bytes_per_env_task_3'] / 1024:,.1f} KiB")
    return results


# ============================================================================ referee section
def referee_steps_per_second(task_id: str, seconds: float, first_seed: int = 0,
                             segments: int = 3) -> dict:
    """Play full scripted matches (seeds ``first_seed``, ``first_seed + 1``, ...) for about
    ``seconds``; a step is one applied action of any role. The time is cut into ``segments``
    runs and the median run's rate is reported (a shared machine's hiccups hit one run, not
    the figure); ``steps_per_s_runs`` holds every run's rate."""
    from .arena import Arena

    arena = Arena()
    # Warm-up on other seeds for a fifth of the time: the memoised template text and lexical
    # readings fill up in the first few hundred matches, after which a match costs what it
    # costs in a long training run.
    warm_seed = first_seed + 10**6
    warm_until = time.perf_counter() + seconds / 5
    while time.perf_counter() < warm_until:
        arena.play(task_id, warm_seed)
        warm_seed += 1
    seed = first_seed
    runs = []
    for _ in range(segments):
        steps = matches = 0
        start = time.perf_counter()
        deadline = start + seconds / segments
        while True:
            steps += arena.play(task_id, seed).steps
            matches += 1
            seed += 1
            if time.perf_counter() >= deadline:
                break
        elapsed = time.perf_counter() - start
        runs.append((steps / elapsed, matches / elapsed, steps / matches))
    steps_per_s, matches_per_s, steps_per_match = sorted(runs)[len(runs) // 2]
    return {"steps_per_s": steps_per_s, "matches_per_s": matches_per_s,
            "steps_per_match": steps_per_match, "steps_per_s_runs": [r[0] for r in runs]}


def referee_reset_us(task_id: str = "task_3", seconds: float = 1.0) -> float:
    """Mean ``Referee.reset_match`` time in microseconds, over as many resets as fit in
    ``seconds`` (at least 50)."""
    from .referee import Referee

    ref = Referee()
    ref.reset_match(seed=0, task_id=task_id)
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while n < 50 or time.perf_counter() < deadline:
        ref.reset_match(seed=n, task_id=task_id)
        n += 1
    return (time.perf_counter() - start) / n * 1e6


def run_referee(seconds: float, tasks=TASKS) -> dict:
    """The referee section: prints its table and returns the figures."""
    results: dict = {}
    print("(median of 3 runs per task)")
    print(f"{'referee, scripted matches':<28}{'steps/s':>10}{'matches/s':>11}{'steps/match':>13}"
          f"{'lineage':>9}{'ours/theirs':>13}")
    for task in tasks:
        r = referee_steps_per_second(task, seconds)
        theirs = LINEAGE_STEPS_PER_S.get(task)
        r["lineage_steps_per_s"] = theirs
        r["ratio_vs_lineage"] = r["steps_per_s"] / theirs if theirs else None
        results[task] = r
        lineage = f"{theirs:,.0f}" if theirs else "-"
        ratio = f"{r['ratio_vs_lineage']:.2f}x" if theirs else "-"
        print(f"{task:<28}{r['steps_per_s']:>10,.0f}{r['matches_per_s']:>11,.1f}"
              f"{r['steps_per_match']:>13.1f}{lineage:>9}{ratio:>13}")
    results["reset_us_task_3"] = referee_reset_us("task_3", seconds)
    print(f"Referee.reset_match (task_3): {results['reset_us_task_3']:,.0f} us mean")
    return results


# ============================================================================ entry points
def add_arguments(parser: argparse.ArgumentParser, sections: bool = True) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="about 1 s per measurement instead of 3 s")
    parser.add_argument("--seconds", type=_positive_float, default=None,
                        help="seconds per measurement (overrides --quick)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS),
                        metavar="TASK", help=f"tasks to time (default: all of {', '.join(TASKS)})")
    if sections:
        parser.add_argument("--section", choices=("all", "env", "referee"), default="all",
                            help="which benchmark to run (default: both)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the env's memory-per-instance measurement")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def run(args: argparse.Namespace) -> dict:
    """Run the sections ``args`` asks for (``fraudarena bench``)."""
    seconds = _seconds(args)
    section = getattr(args, "section", "all")
    results: dict = {}
    if section in ("all", "env"):
        print(f"== env: masked-random AEC loop, ~{seconds:g} s per env ==")
        results["env"] = run_env(seconds, args.tasks, quick=seconds < 3.0,
                                 memory=not args.no_memory)
    if section in ("all", "referee"):
        if results:
            print()
        print(f"== referee: full scripted matches, ~{seconds:g} s per task ==")
        results["referee"] = run_referee(seconds, args.tasks)
    return results


def _main(section: str, argv: list[str] | None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, sections=section == "all")
    args = parser.parse_args(argv)
    if section != "all":
        args.section = section
    return run(args)


def main(argv: list[str] | None = None) -> dict:
    """Both sections."""
    return _main("all", argv)


def main_env(argv: list[str] | None = None) -> dict:
    """The env section only (``benchmarks/bench_env.py``)."""
    return _main("env", argv)


def main_referee(argv: list[str] | None = None) -> dict:
    """The referee section only (``benchmarks/bench_referee.py``)."""
    return _main("referee", argv)


if __name__ == "__main__":
    main()
