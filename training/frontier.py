"""What a fraudster can trade against the scripted investigator, measured.

The fraudster earns reach (rounds an ad runs, times its severity and plausibility) and lowers the
investigator's grader only when its ads go live. Early ads run longest but meet an investigator
with its whole budget; late ones meet an exhausted one, go live more often (an ad still pending at
the end is approved by default) and lower the grader more, but run fewer rounds. This sweeps the
two knobs of ``WaitingFraudster`` (``ReactiveFraudster``'s choice of categories and tactics):
the round it starts proposing in, and the tactics it may use. Each row is paired, match by
match, with ``ReactiveFraudster`` on the same seeds: the return it gains and the grader it takes
off the scripted investigator, with standard errors.

    python training/frontier.py --task task_3 --seeds 500-699

A row meets the training issue's fraudster bar when it earns more than ``ReactiveFraudster`` and
lowers the grader by at least 0.03; the last column says so (with "~" when the return margin is
within two standard errors).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from fraudarena_env.arena import evaluate_matches, standard_error
from fraudarena_env.cli import parse_seeds, parse_task_list, progress_bar
from fraudarena_env.policies import ReactiveFraudster, WaitingFraudster
from fraudarena_env.rules.catalog import TACTICS, TASKS

TACTIC_SETS = {"all": TACTICS, "hidden": ("subtle", "camouflaged"),
               "camouflaged": ("camouflaged",)}
GRADER_BAR = 0.03


def paired(task: str, seeds: Sequence[int], make) -> tuple[np.ndarray, np.ndarray]:
    """Per seed: the fraudster's return and the grader, with ``make(seed)`` as the fraudster."""
    runs = evaluate_matches(task, seeds, lambda seed: {"fraudster": make(seed)})
    return (np.array([m["fraudster"] for m in runs]), np.array([m["grader"] for m in runs]))


def frontier(task: str, seeds: Sequence[int], first_rounds=None, tactic_sets=TACTIC_SETS,
             tick=lambda: None):
    """Rows of (tactics, the first round it proposes in, mean return, return gain and its s.e.,
    grader change and its s.e.) against ``ReactiveFraudster`` on the same seeds. Every round of
    the match by default; round 1 with every tactic is ``ReactiveFraudster`` itself. ``tick()``
    after each fraudster's matches (a progress bar)."""
    rounds = TASKS[task].max_rounds  # proposals are taken in every round but the last
    base_r, base_g = paired(task, seeds, lambda seed: ReactiveFraudster(seed=seed))
    tick()
    rows = []
    for name, tactics in tactic_sets.items():
        for first in first_rounds or range(1, rounds):
            hold = WaitingFraudster.open_share_left(first, rounds)
            r, g = paired(task, seeds,
                          lambda seed, h=hold, t=tactics: WaitingFraudster(h, seed, t))
            tick()
            dr, dg = r - base_r, g - base_g
            rows.append((name, first, float(r.mean()), float(dr.mean()), standard_error(dr),
                         float(dg.mean()), standard_error(dg)))
    return float(base_r.mean()), float(base_g.mean()), rows


def verdict(gain: float, gain_se: float, drop: float) -> str:
    if drop > -GRADER_BAR or gain <= 0:
        return "no"
    return "yes" if gain > 2 * gain_se else "~"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="task_2,task_3", type=parse_task_list)
    p.add_argument("--seeds", type=parse_seeds, default="500-699")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    seeds = a.seeds
    for task in a.task:
        bar = progress_bar(1 + len(TACTIC_SETS) * (TASKS[task].max_rounds - 1), not a.no_progress,
                           desc=task, unit="fraudster")
        base_r, base_g, rows = frontier(task, seeds, tick=bar.update if bar else lambda: None)
        if bar:
            bar.close()
        print(f"\n### {task}: against ReactiveFraudster (return {base_r:+.3f}, grader "
              f"{base_g:.3f}), {len(seeds)} seeds\n")
        print("| tactics | first round | return | return gain (± s.e.) | grader change (± s.e.) | "
              "meets the bar |")
        print("|---|---|---|---|---|---|")
        for name, first, ret, dr, dr_se, dg, dg_se in rows:
            print(f"| {name} | {first} | {ret:+.3f} | {dr:+.3f} ± {dr_se:.3f} | "
                  f"{dg:+.3f} ± {dg_se:.3f} | {verdict(dr, dr_se, dg)} |")


if __name__ == "__main__":
    main()
