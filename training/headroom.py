"""How much room a task leaves above the scripted investigator, measured.

The scripted investigator decides with the generator's own likelihoods (``policies/belief.py``):
Bayes, with the rules' true model. Give it 8x the action budget and actions per turn and let it
pull any source that promises any expected gain at all: what it still gets wrong comes from the
evidence's own ambiguity, not from its budget or its model. The gap between the two graders is
about what any investigator can gain on that task by deciding verdicts better; the rest of the
grader is links (task_3) and calibration (weight 0.1).

    python training/headroom.py --task task_1,task_2,task_3 --seeds 500-539

It changes the task table of its own process only.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # script_args.py, next to this file

from script_args import int_at_least  # noqa: E402

from fraudarena_env.arena import evaluate  # noqa: E402
from fraudarena_env.cli import parse_seeds, parse_task_list  # noqa: E402
from fraudarena_env.policies import ScriptedInvestigator  # noqa: E402
from fraudarena_env.rules import catalog  # noqa: E402


def headroom(task: str, seeds: Sequence[int], scale: int = 8) -> tuple[float, float]:
    """(the scripted investigator's mean grader, the same with ``scale`` x the budget and a pull
    whenever it is worth anything), against ReactiveFraudster and HeuristicAuditor."""
    base = evaluate(task, seeds, lambda seed: {})["grader"]
    config, price = catalog.TASKS[task], ScriptedInvestigator.PULL_PRICE
    catalog.TASKS[task] = dataclasses.replace(
        config, action_budget=scale * config.action_budget,
        max_investigator_actions_per_turn=scale * config.max_investigator_actions_per_turn)
    ScriptedInvestigator.PULL_PRICE = 1e-6
    try:
        rich = evaluate(task, seeds, lambda seed: {})["grader"]
    finally:
        catalog.TASKS[task], ScriptedInvestigator.PULL_PRICE = config, price
    return base, rich


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="task_1,task_2,task_3", type=parse_task_list)
    p.add_argument("--seeds", type=parse_seeds, default="500-539")
    p.add_argument("--scale", type=int_at_least(1), default=8,
                   help="how many times the budget and actions per turn (default 8)")
    a = p.parse_args(argv)
    seeds = a.seeds
    print(f"| task | scripted | scripted, {a.scale}x budget, pulls any gain | headroom |")
    print("|---|---|---|---|")
    for task in a.task:
        base, rich = headroom(task, seeds, a.scale)
        print(f"| {task} | {base:.3f} | {rich:.3f} | {rich - base:+.3f} |")


if __name__ == "__main__":
    main()
