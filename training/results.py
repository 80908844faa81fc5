"""The evaluation behind ``training/RESULTS.md``: shipped checkpoints against the references, on
seeds never used in training, validation or tuning.

    python training/results.py --investigator training/checkpoints/investigator.zip \
        --fraudster training/checkpoints/fraudster.zip --seeds 7000-7039 \
        --curves runs/inv/validation.csv runs/fr/validation.csv --plot training/results.png

Prints two Markdown tables and writes the learning curves:

* investigators, per task: the scripted investigator, the checkpoint, the oracle (reads the truth:
  the ceiling), the best blind reference and always-reject, each against ``ReactiveFraudster`` and
  ``HeuristicAuditor``: mean grader (and its standard error), the investigator's return, the
  share of legit ads rejected; then the checkpoint's margin over the scripted investigator (paired
  by seed, with its standard error) and the share of the scripted-to-oracle gap it closes;
* fraudsters, per task, against the scripted investigator: ``ReactiveFraudster``, the checkpoint,
  ``WaitingFraudster`` (reactive, holding its ads for the last quarter of the rounds that
  take proposals) and never proposing: the fraudster's return and the grader it leaves the investigator, each with its
  standard error; then the checkpoint's margins over ``ReactiveFraudster``, paired by seed;
* with both checkpoints, the scripted and the checkpoint investigator against the reactive, the
  waiting and the checkpoint fraudster: whether a late fraudster exploits either investigator.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # script_args.py, next to this file

from script_args import held_out_seeds  # noqa: E402

from fraudarena_env import cli  # noqa: E402
from fraudarena_env.arena import evaluate, evaluate_matches, mean_metrics, standard_error  # noqa: E402
from fraudarena_env.catalog import TASK_IDS  # noqa: E402
from fraudarena_env.cli import parse_seeds, parse_task_list  # noqa: E402
from fraudarena_env.policies import (  # noqa: E402
    BLIND_INVESTIGATORS,
    AlwaysReject,
    NeverPropose,
    OracleInvestigator,
    WaitingFraudster,
)
from fraudarena_env.sb3 import TRAIN_SEED_RANGE, SB3Policy  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def play(task: str, seeds, role: str, make, face: str = "") -> dict:
    """Means of ``match_metrics`` of ``make(seed)`` playing ``role`` (``None``: the scripted
    player), with the standard errors of the grader (``sem``) and of the fraudster's return
    (``fraudster_sem``), and the per-match metrics (``matches``, for paired margins)."""
    per_match = evaluate_matches(task, seeds, lambda seed: {role: make(seed)} if make else {},
                                 {role: face} if face else None)
    out = mean_metrics(per_match)
    out["sem"] = standard_error([m["grader"] for m in per_match])
    out["fraudster_sem"] = standard_error([m["fraudster"] for m in per_match])
    out["matches"] = per_match
    return out


def paired(mine: dict, theirs: dict, key: str, digits: int = 3) -> str:
    """``mine - theirs`` in ``key`` for two rows of ``play`` on the same seeds
    (``margin``)."""
    return margin(mine["matches"], theirs["matches"], key, digits)


def margin(mine: list[dict], theirs: list[dict], key: str, digits: int = 3) -> str:
    """``mine - theirs`` in ``key``, match by match (per-match metrics on the same seeds): the
    mean difference ± its standard error. Pairing removes the seed-to-seed spread."""
    diff = [a[key] - b[key] for a, b in zip(mine, theirs)]
    return f"{np.mean(diff):+.{digits}f} ± {standard_error(diff):.{digits}f}"


def investigator_rows(task: str, seeds, checkpoint: SB3Policy) -> dict[str, dict[str, float]]:
    # the arena binds the oracle to its referee
    rows = {"scripted": play(task, seeds, "investigator", None),
            "checkpoint": play(task, seeds, "investigator", lambda s: checkpoint),
            "oracle": play(task, seeds, "investigator", lambda s: OracleInvestigator(),
                           face="text"),
            "always_reject": play(task, seeds, "investigator", lambda s: AlwaysReject(seed=s))}
    blind = {name: play(task, seeds, "investigator", lambda s, m=make: m(seed=s))
             for name, make in BLIND_INVESTIGATORS.items()}
    best = max(blind, key=lambda n: blind[n]["grader"])
    rows[f"best blind ({best})"] = blind[best]
    return rows


def fraudster_rows(task: str, seeds, checkpoint: SB3Policy) -> dict[str, dict[str, float]]:
    return {"reactive": play(task, seeds, "fraudster", None),
            "checkpoint": play(task, seeds, "fraudster", lambda s: checkpoint),
            "waiting": play(task, seeds, "fraudster", lambda s: WaitingFraudster(seed=s)),
            "never_propose": play(task, seeds, "fraudster", lambda s: NeverPropose(seed=s))}


def investigator_table(tasks, seeds, checkpoint: SB3Policy) -> str:
    lines = [f"Investigators on {len(seeds)} seeds ({cli._seeds_label(seeds)}), against "
             "ReactiveFraudster and HeuristicAuditor", "",
             "| task | investigator | grader (± s.e.) | inv. return | legit rejected |",
             "|---|---|---|---|---|"]
    summary = ["", "| task | checkpoint - scripted, paired (± s.e.) | share of the scripted-to-oracle "
               "gap closed |", "|---|---|---|"]
    for task in tasks:
        rows = investigator_rows(task, seeds, checkpoint)
        for name, r in rows.items():
            bold = "**" if name == "checkpoint" else ""
            lines.append(f"| {task} | {bold}{name}{bold} | {bold}{r['grader']:.3f}{bold} ± "
                         f"{r['sem']:.3f} | {r['investigator']:+.2f} | "
                         f"{r['legit_rejected']:.0%} |")
        margin = rows["checkpoint"]["grader"] - rows["scripted"]["grader"]
        gap = rows["oracle"]["grader"] - rows["scripted"]["grader"]
        summary.append(f"| {task} | {paired(rows['checkpoint'], rows['scripted'], 'grader')} | "
                       f"{margin / gap:+.0%} |")
    return "\n".join(lines + summary)


def fraudster_table(tasks, seeds, checkpoint: SB3Policy) -> str:
    """Per task and fraudster: the fraudster's return and the investigator's grader, each with its
    standard error (a fraudster's return varies a lot from seed to seed: a difference of means
    on tens of seeds can be noise); then the checkpoint's margins over ``ReactiveFraudster``,
    paired by seed."""
    lines = [f"Fraudsters on {len(seeds)} seeds ({cli._seeds_label(seeds)}), against "
             "ScriptedInvestigator and HeuristicAuditor", "",
             "| task | fraudster | fraudster return (± s.e.) | investigator's grader (± s.e.) |",
             "|---|---|---|---|"]
    summary = ["", "| task | checkpoint - reactive, paired: fraudster return (± s.e.) | "
               "investigator's grader (± s.e.) |", "|---|---|---|"]
    for task in tasks:
        rows = fraudster_rows(task, seeds, checkpoint)
        for name, r in rows.items():
            bold = "**" if name == "checkpoint" else ""
            lines.append(f"| {task} | {bold}{name}{bold} | {bold}{r['fraudster']:+.2f}{bold} ± "
                         f"{r['fraudster_sem']:.2f} | {r['grader']:.3f} ± {r['sem']:.3f} |")
        mine, theirs = rows["checkpoint"], rows["reactive"]
        summary.append(f"| {task} | {paired(mine, theirs, 'fraudster', 2)} | "
                       f"{paired(mine, theirs, 'grader')} |")
    return "\n".join(lines + summary)


def crossplay_table(tasks, seeds, investigator: SB3Policy, fraudster: SB3Policy) -> str:
    """The scripted and the checkpoint investigator against fraudsters that wait as well as the
    reactive one: a ReactiveFraudster-only score says nothing of an investigator that a late
    fraudster can exploit. Mean grader per cell."""
    investigators = {"scripted": None, "checkpoint": lambda s: investigator}
    fraudsters = {"reactive": None, "waiting": lambda s: WaitingFraudster(seed=s),
                  "checkpoint fraudster": lambda s: fraudster}
    lines = [f"Investigators against waiting fraudsters on {len(seeds)} seeds "
             f"({cli._seeds_label(seeds)}), HeuristicAuditor: mean grader", "",
             "| task | investigator | " + " | ".join(fraudsters) + " |",
             "|---|---|" + "---|" * len(fraudsters)]
    for task in tasks:
        for name, make_inv in investigators.items():
            cells = []
            for make_fr in fraudsters.values():
                def policies(seed, mi=make_inv, mf=make_fr):
                    return {role: make(seed) for role, make in
                            (("investigator", mi), ("fraudster", mf)) if make}
                cells.append(f"{evaluate(task, seeds, policies)['grader']:.3f}")
            bold = "**" if name == "checkpoint" else ""
            lines.append(f"| {task} | {bold}{name}{bold} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(role: str, tasks, seeds, checkpoint: SB3Policy) -> str:
    """The checkpoint against the scripted player of its role (ScriptedInvestigator or
    ReactiveFraudster) match by match, on the same seeds and against the same opponents: the mean
    per-match difference in the role's return and in the investigator's grader, with the
    standard error of that mean. Pairing removes the seed-to-seed spread that two separate means
    carry."""
    scripted = "ScriptedInvestigator" if role == "investigator" else "ReactiveFraudster"
    lines = [f"{role.capitalize()} checkpoint minus {scripted}, paired by seed, on {len(seeds)} "
             f"seeds ({cli._seeds_label(seeds)})", "",
             f"| task | {role} return (± s.e.) | investigator's grader (± s.e.) |",
             "|---|---|---|"]
    for task in tasks:
        theirs = evaluate_matches(task, seeds, lambda seed: {})
        ours = evaluate_matches(task, seeds, lambda seed: {role: checkpoint})
        lines.append(f"| {task} | {margin(ours, theirs, role)} | "
                     f"{margin(ours, theirs, 'grader')} |")
    return "\n".join(lines)


def plot_curves(paths: Sequence[str], out: Path) -> Path:
    """One panel per validation.csv (training/train.py): the learner's validation grader
    (investigator) or return (fraudster) per task and their mean over timesteps, with the scripted
    player of the role on the same seeds as dashed lines."""
    cols = min(3, len(paths))
    rows_ = -(-len(paths) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(5.5 * cols, 4 * rows_), squeeze=False)
    for ax in axes.flat[len(paths):]:
        ax.set_visible(False)
    for ax, path in zip(axes.flat, paths):
        with open(path) as f:
            rows = list(csv.DictReader(f))
        x = [int(r["timesteps"]) for r in rows]
        cfg = json.loads((Path(path).parent / "config.json").read_text())
        role = cfg["role"]
        metric = "grader" if role == "investigator" else "return"
        key_of = {"grader": "grader", "return": role}
        for k, task in enumerate(dict.fromkeys(cfg["tasks"])):  # a task may train twice
            line, = ax.plot(x, [float(r[f"{task}/{metric}"]) for r in rows], ".-", lw=1,
                            label=task, color=f"C{k}")
            scripted = evaluate(task, cfg["val_seeds"], lambda seed: {})[key_of[metric]]
            ax.axhline(scripted, ls="--", lw=1, color=line.get_color(),
                       label=f"{task}, scripted {role}")
        ax.plot(x, [float(r[metric]) for r in rows], "o-", lw=2, color="k", label="mean")
        ax.set_title(f"{Path(path).parent.name}: validation {metric}")
        ax.set_xlabel("PPO timesteps (0: after imitation)")
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def validation_csv(text: str) -> str:
    """An argparse ``type=`` for ``--curves``: a train.py ``validation.csv`` with the run's
    ``config.json`` next to it (``plot_curves`` reads both)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: no such file; give a validation.csv that "
                                         "training/train.py wrote")
    if not (path.parent / "config.json").is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: no config.json next to it; give a "
                                         "validation.csv in the run directory train.py wrote")
    return text


def unwritable(path: Path) -> str | None:
    """Why a file cannot be written at ``path``, or None when it can."""
    if path.is_dir():
        return "is a directory; give a file name such as results.png"
    if not path.parent.is_dir():
        return f"its directory {str(path.parent)!r} does not exist"
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        return "is not writable here"
    return None


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--investigator", default="training/checkpoints/investigator.zip")
    p.add_argument("--fraudster", default="training/checkpoints/fraudster.zip")
    held_out = held_out_seeds(parse_seeds, TRAIN_SEED_RANGE, "7000-7039")
    p.add_argument("--seeds", type=held_out, default="7000-7039")
    p.add_argument("--task", default=",".join(TASK_IDS), type=parse_task_list)
    p.add_argument("--paired-seeds", type=lambda t: held_out(t) if t else [], default="",
                   help="also compare each checkpoint with its role's scripted player match by "
                        "match on these seeds (e.g. 8000-8199)")
    p.add_argument("--curves", nargs="*", type=validation_csv, default=[],
                   help="validation.csv files to plot")
    p.add_argument("--plot", default="training/results.png", help="where --curves are plotted")
    a = p.parse_args(argv)
    if a.curves and (why := unwritable(Path(a.plot))):  # before any match is played
        p.error(f"--plot {a.plot!r} {why}")
    seeds = a.seeds
    tasks = list(a.task)
    players = {}
    for role in ("investigator", "fraudster"):  # "" skips a role
        if getattr(a, role):
            try:  # a missing file or another role's checkpoint, named before any match
                spec = cli.parse_policy_spec(role, getattr(a, role))
                if spec.path is None:
                    p.error(f"--{role}: {getattr(a, role)!r} is not a checkpoint .zip")
                players[role] = cli.load_checkpoint(spec)
            except (argparse.ArgumentTypeError, cli.CheckpointError) as exc:
                p.error(f"--{role}: {exc}")
    if a.investigator:
        investigator = players["investigator"]
        print(investigator_table(tasks, seeds, investigator))
        print()
        if a.paired_seeds:
            print(paired_table("investigator", tasks, a.paired_seeds, investigator))
            print()
    if a.fraudster:
        fraudster = players["fraudster"]
        print(fraudster_table(tasks, seeds, fraudster))
        if a.paired_seeds:
            print()
            print(paired_table("fraudster", tasks, a.paired_seeds, fraudster))
    if a.investigator and a.fraudster:
        print()
        print(crossplay_table(tasks, seeds, investigator, fraudster))
    if a.curves:
        print(f"\ncurves: {plot_curves(a.curves, Path(a.plot))}")


if __name__ == "__main__":
    main()
