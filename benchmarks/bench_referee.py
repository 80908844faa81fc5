"""Throughput of full scripted matches straight on the referee, against the lineage's figures.

What is timed: whole matches between the default baselines (reactive fraudster, scripted
investigator, heuristic auditor) through ``Arena().play``, with no PettingZoo in the loop. A step
is one applied action of any role, and the policies' own time is included: this is what an
evaluation table or a self-play rollout on the referee costs. Each task first warms up on other
seeds (the memoised template text and lexical readings fill up in the first few hundred matches,
after which a match costs what it costs in a long run); then its time is cut into three runs and
the median run's rate is reported, so a shared machine's hiccup hits one run, not the figure.
Each task's steps/s is set against the lineage's (CounterFeint's FraudArena, as quoted, not
re-measured here). Also reported: the mean ``Referee.reset_match`` time on task_3.

    python benchmarks/bench_referee.py            # ~3 s per task
    python benchmarks/bench_referee.py --quick    # ~1 s per task
    fraudarena bench --section referee            # the same, from the command line
"""

from __future__ import annotations

import argparse
import time

from fraudarena_env import bench
from fraudarena_env.arena import Arena
from fraudarena_env.referee import Referee
from fraudarena_env.rules.catalog import TASK_IDS

# The lineage's referee throughput for full matches, in steps/s. It has no held-out task figure.
LINEAGE_STEPS_PER_S = {"task_1": 2600.0, "task_2": 2000.0, "task_3": 1800.0}
RUNS = 3  # timed runs per task; the median is reported
WARM_UP = 0.2  # of each task's time, spent on other seeds first


def referee_steps_per_second(task_id: str, seconds: float, first_seed: int = 0) -> dict:
    """Play full scripted matches (seeds ``first_seed``, ``first_seed + 1``, ...) for about
    ``seconds``, after the warm-up; ``steps_per_s_runs`` holds every run's rate."""
    arena = Arena()
    warm_seed = first_seed + 10**6
    warm_until = time.perf_counter() + seconds * WARM_UP
    while time.perf_counter() < warm_until:
        arena.play(task_id, warm_seed)
        warm_seed += 1
    seed = first_seed
    runs = []
    for _ in range(RUNS):
        steps = matches = 0
        start = time.perf_counter()
        deadline = start + seconds / RUNS
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


def reset_us(task_id: str = "task_3", seconds: float = 1.0) -> float:
    """Mean ``Referee.reset_match`` time in microseconds, over as many resets as fit in
    ``seconds`` (at least 50)."""
    ref = Referee()
    ref.reset_match(seed=0, task_id=task_id)
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while n < 50 or time.perf_counter() < deadline:
        ref.reset_match(seed=n, task_id=task_id)
        n += 1
    return (time.perf_counter() - start) / n * 1e6


def run(seconds: float, tasks=TASK_IDS) -> dict:
    """Time each task, print the table against the lineage and return the figures."""
    print(f"== referee: full scripted matches, ~{seconds:g} s per task ==")
    print(f"(median of {RUNS} runs per task)")
    print(f"{'referee, scripted matches':<28}{'steps/s':>10}{'matches/s':>11}{'steps/match':>13}"
          f"{'lineage':>9}{'ours/theirs':>13}")
    results: dict = {}
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
    results["reset_us_task_3"] = reset_us("task_3", seconds)
    print(f"Referee.reset_match (task_3): {results['reset_us_task_3']:,.0f} us mean")
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench.add_arguments(parser, sections=False, memory=False)  # `fraudarena bench`'s
    args = parser.parse_args(argv)
    return run(bench.seconds(args), args.tasks)


if __name__ == "__main__":
    main()
