"""The main job over several seeds: runs ``selfplay.py --quick`` once per training seed and prints
what held across the runs.

The quick job's docs make claims about what it teaches (the learned investigator beats the scripted
one, Elo rises for both roles, ...). One run says little: a claim is only as good as the seeds it
holds on. This script runs the job with ``--seed 0``, ``--seed 1``, ... (``--jobs`` at a time, each
in its own process and run directory), reads each run's ``eval.json`` and ``crossplay.json`` and
prints, per claim, its value on every seed, the mean with its standard error, and on how many seeds
it holds. ``--read`` tabulates runs already made, without training.

    python training/quick_seeds.py --seeds 0-4 --jobs 2 --out runs/quick-seeds
    python training/quick_seeds.py --seeds 0-4 --out runs/quick-seeds --read
    python training/quick_seeds.py --seeds 0-1 -- --timesteps 4096   # extra selfplay flags

Every table is on the job's held-out evaluation seeds (1000-1019), as the job prints them.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # script_args.py, next to this file

from script_args import league_files, run_dir  # noqa: E402

from fraudarena_env.cli import parse_seeds  # noqa: E402

SELFPLAY = Path(__file__).resolve().parent / "selfplay.py"
LEARNED, SCRIPTED = "learned", "scripted"
INVESTIGATOR_BAR = 0.05  # issue 19: the learned investigator >= scripted + 0.05 grader


@dataclass(frozen=True)
class Claim:
    """One thing the docs say the quick job gives: how to read it off a run, and when it holds."""
    name: str
    value: Callable[[dict], float]
    holds: Callable[[float], bool]
    digits: int = 3


def _row(run: dict, investigator: str, fraudster: str) -> dict:
    """The evaluation row of ``investigator`` against ``fraudster`` (the scripted auditor), on the
    run's first task."""
    task = run["eval"][0]["task"]
    for row in run["eval"]:
        if (row["task"], row["investigator_policy"], row["fraudster_policy"],
                row["auditor_policy"]) == (task, investigator, fraudster, SCRIPTED):
            return row
    raise KeyError(f"no row {investigator} vs {fraudster} in {run['dir']}/eval.json")


def _blind_best(run: dict) -> float:
    """The best grader of an investigator that is neither learned nor scripted (a blind or
    degenerate reference), against the scripted fraudster."""
    task = run["eval"][0]["task"]
    return max(r["grader"] for r in run["eval"]
               if r["task"] == task and r["investigator_policy"] not in (LEARNED, SCRIPTED)
               and r["fraudster_policy"] == SCRIPTED and r["auditor_policy"] == SCRIPTED)


def _elo_rise(run: dict, role: str) -> float:
    ratings = {e["player"]: e["elo"] for e in run["elo"] if e["role"] == role}
    generations = sorted((p for p in ratings if re.fullmatch(r"g\d+", p)), key=lambda p: int(p[1:]))
    return ratings[generations[-1]] - ratings[generations[0]]


CLAIMS = (
    Claim(f"learned investigator's grader - scripted's (holds: >= +{INVESTIGATOR_BAR})",
          lambda r: _row(r, LEARNED, SCRIPTED)["grader"] - _row(r, SCRIPTED, SCRIPTED)["grader"],
          lambda v: v >= INVESTIGATOR_BAR),
    Claim("learned investigator's grader - the best blind policy's (holds: > 0)",
          lambda r: _row(r, LEARNED, SCRIPTED)["grader"] - _blind_best(r), lambda v: v > 0),
    Claim("Elo rise, first to last generation: investigator (holds: > 0)",
          lambda r: _elo_rise(r, "investigator"), lambda v: v > 0, 0),
    Claim("Elo rise, first to last generation: fraudster (holds: > 0)",
          lambda r: _elo_rise(r, "fraudster"), lambda v: v > 0, 0),
    Claim("learned fraudster's return - ReactiveFraudster's, against the scripted investigator "
          "(holds: > 0)",
          lambda r: _row(r, SCRIPTED, LEARNED)["fraudster_return"]
          - _row(r, SCRIPTED, SCRIPTED)["fraudster_return"], lambda v: v > 0, 2),
    Claim("the scripted investigator's grader against the learned fraudster - against "
          "ReactiveFraudster (holds: < 0)",
          lambda r: _row(r, SCRIPTED, LEARNED)["grader"] - _row(r, SCRIPTED, SCRIPTED)["grader"],
          lambda v: v < 0),
)


def read_run(path: Path) -> dict:
    """A finished run's tables, and its times when its log is there."""
    cross = json.loads((path / "crossplay.json").read_text())
    run = {"dir": str(path), "eval": json.loads((path / "eval.json").read_text()),
           "elo": cross["elo"]}
    log = path / "quick.log"
    found = re.search(r"trained in (\d+) s, evaluated in ([\d.]+) s",
                      log.read_text()) if log.exists() else None
    if found:
        run["train_seconds"], run["eval_seconds"] = float(found[1]), float(found[2])
    return run


def seed_command(seed: int, out: Path, extra: Sequence[str]) -> list[str]:
    """``selfplay.py``'s arguments for the quick job of ``seed`` into ``out/seed<seed>``."""
    return ["--quick", "--seed", str(seed), "--out", str(out / f"seed{seed}"), "--no-progress",
            "--no-tensorboard", *extra]


def selfplay_accepts(command: Sequence[str]) -> bool:
    """Whether ``selfplay.py`` takes these arguments (it prints why not); nothing is written."""
    import selfplay  # (torch and the rest: only when runs are to be made)

    try:
        selfplay.parse_args(list(command))
    except SystemExit as refused:
        return not refused.code
    return True


def run_seed(seed: int, out: Path, extra: Sequence[str]) -> Path:
    """One quick job, in its own process, into ``out/seed<seed>`` (its stdout in quick.log)."""
    path = out / f"seed{seed}"
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "quick.log", "w") as log:
        done = subprocess.run([sys.executable, str(SELFPLAY), *seed_command(seed, out, extra)],
                              stdout=log, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"seed {seed}: the quick job failed, see {path / 'quick.log'}")
    return path


def summary(runs: dict[int, dict]) -> str:
    """One line per claim: its value on each seed, mean ± standard error, seeds where it holds."""
    seeds = sorted(runs)
    head = "| claim | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± s.e. | holds |"
    lines = [head, "|" + "---|" * (len(seeds) + 3)]
    for claim in CLAIMS:
        values = np.array([claim.value(runs[s]) for s in seeds])
        se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
        d = claim.digits
        held = sum(bool(claim.holds(v)) for v in values)
        lines.append(f"| {claim.name} | " + " | ".join(f"{v:+.{d}f}" for v in values)
                     + f" | {values.mean():+.{d}f} ± {se:.{d}f} | {held} of {len(values)} |")
    times = [(runs[s]["train_seconds"], runs[s]["eval_seconds"]) for s in seeds
             if "train_seconds" in runs[s]]
    if times:
        lines.append("")
        lines.append("time per run (training + evaluation, as each run printed it): "
                     + ", ".join(f"{t:.0f} + {e:.0f} s" for t, e in times))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=partial(parse_seeds, repeats=True), default="0-4",
                   help="training seeds, one quick job each (0-4)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time; with more than one, each runs in one process (selfplay "
                        "--workers 1, unless given after --), one core a run")
    p.add_argument("--out", type=run_dir, default="runs/quick-seeds",
                   help="runs go to OUT/seed<S>")
    p.add_argument("--read", action="store_true", help="only tabulate runs already in OUT")
    p.add_argument("extra", nargs="*", help="after --: more flags for selfplay.py --quick")
    a = p.parse_args(argv)
    seeds, out = list(dict.fromkeys(a.seeds)), Path(a.out)  # a seed given twice runs once
    if a.jobs < 1:
        p.error(f"--jobs must be at least 1, got {a.jobs}")
    done = [s for s in seeds if league_files(out / f"seed{s}")]
    if done and not a.read and "--overwrite" not in a.extra:
        p.error(f"{out} already holds runs for seed(s) {done}: tabulate them with --read, give a "
                "new --out, or pass -- --overwrite to train them again")
    if a.read:
        missing = [s for s in seeds if not (out / f"seed{s}" / "eval.json").exists()]
        if missing:
            p.error(f"no finished run for seed(s) {missing} in {out}; run without --read first")
        paths = {s: out / f"seed{s}" for s in seeds}
    else:
        # runs side by side share the cores: worker processes of their own would only crowd them
        extra = [*a.extra, "--workers", "1"] if a.jobs > 1 and not any(
            x == "--workers" or x.startswith("--workers=") for x in a.extra) else a.extra
        for seed in seeds:  # every run's flags checked before any trains (not in its log)
            if not selfplay_accepts(seed_command(seed, out, extra)):
                p.error(f"seed {seed}: selfplay.py refuses these flags (its message is above)")
        with ThreadPoolExecutor(a.jobs) as pool:
            paths = dict(zip(seeds, pool.map(lambda s: run_seed(s, out, extra), seeds)))
    table = summary({s: read_run(path) for s, path in paths.items()})
    print(table)
    (out / "summary.md").write_text(table + "\n")
    return table


if __name__ == "__main__":
    main()
