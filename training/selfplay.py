"""League self-play for FraudArena: alternating best responses against snapshot pools, then a
cross-play table with Elo ratings.

A CleanRL-style script built on ``training/train.py`` (one role, MaskablePPO, against chosen
opponents). It reads top to bottom:

1. ``LeagueConfig``: the schedule and every hyperparameter, and the ``--quick`` preset;
2. the league: for each generation, train the investigator against the fraudster pool (the
   scripted ``ReactiveFraudster`` and every fraudster snapshot so far, one drawn per match),
   snapshot it into the investigator pool, then train the fraudster against the investigator
   pool and snapshot it. Each phase continues from the role's previous snapshot; the first
   investigator starts by imitating the scripted one, the first fraudster by imitating
   ``ReactiveFraudster`` holding back its ads for a share of the match drawn per match;
3. cross-play: every investigator (scripted, random, each snapshot) against every fraudster
   (reactive, random, each snapshot) on held-out seeds, a table of mean grader and returns;
4. Elo: one rating per player on one scale, fitted to all cross-play matches at once;
5. the evaluation table (learned roles and every blind reference policy against the scripted
   opponents), the plots, and ``main(argv)``.

The auditor stays the scripted ``HeuristicAuditor`` throughout (``training/train.py --role
auditor`` trains one on its own).

Needs the training extra: ``pip install torch==2.13.0 --index-url
https://download.pytorch.org/whl/cpu && pip install -e ".[train]"``, then

    python training/selfplay.py --quick
    python training/selfplay.py --task task_1,task_2,task_3 --generations 4 --out runs/league
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # train.py, next to this file

import train as one_role  # noqa: E402
from script_args import (  # noqa: E402
    held_out_seeds,
    int_at_least,
    league_refusal,
    non_negative_float,
    run_dir,
)

from fraudarena_env import cli  # noqa: E402
from fraudarena_env.arena import evaluate_matches  # noqa: E402
from fraudarena_env.cli import parse_seeds, parse_task_list  # noqa: E402
from fraudarena_env.policies import BASELINES, RandomPolicy  # noqa: E402
from fraudarena_env.sb3 import SB3Policy, evaluate_models, format_table  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LEAGUE_ROLES = ("investigator", "fraudster")


# ============================================================================ 1. configuration
@dataclass
class LeagueConfig:
    out: str = "runs/league"  # pool/, phases/, crossplay.md, elo.png, eval.md go here
    tasks: tuple[str, ...] = ("task_1", "task_2", "task_3")
    seed: int = 0
    generations: int = 4
    investigator_timesteps: int = 100_000  # per generation (SB3 runs whole rollouts)
    fraudster_timesteps: int = 25_000
    include_scripted: bool = True  # the scripted baseline stays in every pool
    # the first investigator imitates the scripted one on this many decisions first
    imitation_samples: int = 60_000
    imitation_epochs: int = 15
    # the first fraudster imitates this fraudster (a name `fraudarena play` takes) first:
    # ReactiveFraudster whose hold-back is drawn per match, so PPO starts from a fraudster
    # that varies when it proposes and can learn when waiting pays (0: PPO from scratch)
    fraudster_teacher: str = "waiting_any"
    fraudster_imitation_samples: int = 20_000
    # MaskablePPO (see training/train.py's Config for the rest)
    n_envs: int = 6
    # 0: n_envs RoleEnvs; N > 0: one VectorRoleEnv of N matches per phase, opponents batched
    # (train.py --vector-envs; use a short n_steps)
    vector_envs: int = 0
    # with vector_envs: worker processes each phase's matches are split among (train.py
    # --workers; None: its default: with 512 matches or more, a worker per core, at most 2; else
    # 1); the same league either way
    workers: int | None = None
    n_steps: int = 512
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 1e-4
    # the investigator's training-only rewards (train.py's --calibration-coef and --grader-coef):
    # -coef * (confidence - right)^2 per manual verdict, +coef * grader when its match ends
    calibration_coef: float = 0.0
    investigator_grader_coef: float = 0.0
    net: str = "slot"  # the investigator's network: "slot" or "mlp"
    # seeds: cross-play and the evaluation table use eval_seeds, never met in training
    eval_seeds: tuple[int, ...] = tuple(range(1000, 1020))
    progress: bool = True
    tensorboard: bool = True
    # replace a league already in out (its config.json and pool/ snapshots); False: refuse
    overwrite: bool = False


# ``--quick``: the README's main job, a few minutes on 2 cores including evaluation. The
# slot-structured investigator first imitates the scripted one, then PPO fine-tunes it in
# self-play against the fraudster pool, on task_3, on the batched path (128 matches at once,
# the opponents moving in batch); the tables set it against every blind reference policy and
# every generation against every other. training/quick_seeds.py checks what it gives on five
# training seeds (docs/training.md).
QUICK = dict(out="runs/quick", tasks=("task_3",), generations=2, investigator_timesteps=98_304,
             fraudster_timesteps=16_384, vector_envs=128, n_steps=32, batch_size=512,
             imitation_samples=20_000, imitation_epochs=12, fraudster_imitation_samples=5_000)


def phase_config(cfg: LeagueConfig, role: str, generation: int, init: str, pool: Path
                 ) -> one_role.Config:
    """The one-role run of ``role`` in ``generation``: against the other role's pool."""
    other = "fraudster" if role == "investigator" else "investigator"
    return one_role.Config(
        n_envs=cfg.n_envs, vector_envs=cfg.vector_envs, n_steps=cfg.n_steps,
        workers=cfg.workers if cfg.vector_envs else 1,
        batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, learning_rate=cfg.learning_rate,
        role=role, tasks=cfg.tasks, opponents=((other, str(pool / other)),),
        out=str(Path(cfg.out) / "phases" / f"{role}_g{generation}"),
        seed=cfg.seed * 100 + generation, init=init,
        timesteps=cfg.investigator_timesteps if role == "investigator"
        else cfg.fraudster_timesteps,
        net=cfg.net, imitation_samples=cfg.imitation_samples if role == "investigator"
        else cfg.fraudster_imitation_samples,
        teacher="" if role == "investigator" else cfg.fraudster_teacher,
        imitation_epochs=cfg.imitation_epochs, val_seeds=(), eval_every=0, progress=False,
        calibration_coef=cfg.calibration_coef if role == "investigator" else 0.0,
        grader_coef=cfg.investigator_grader_coef if role == "investigator" else 0.0,
        tensorboard=cfg.tensorboard)


def rounded(steps: int, cfg: LeagueConfig) -> int:
    """What SB3 actually runs for ``learn(steps)``: whole rollouts of n_envs * n_steps."""
    r = (cfg.vector_envs or cfg.n_envs) * cfg.n_steps
    return -(-steps // r) * r if steps > 0 else 0


def total_timesteps(cfg: LeagueConfig) -> int:
    """PPO timesteps of the whole league."""
    return cfg.generations * (rounded(cfg.investigator_timesteps, cfg)
                              + rounded(cfg.fraudster_timesteps, cfg))


def progress_total(cfg: LeagueConfig) -> int:
    """The progress bar's total: every phase's ``train.progress_steps`` (the first generation's
    imitation warm starts, then PPO's timesteps)."""
    total = 0
    for g in range(cfg.generations):
        for role in LEAGUE_ROLES:
            phase = phase_config(cfg, role, g, "" if g == 0 else "previous.zip", Path("pool"))
            if phase.timesteps > 0:
                total += one_role.progress_steps(phase)
    return total


# ============================================================================ 2. the league
@dataclass
class League:
    out: Path
    snapshots: dict[str, list[Path]]  # role -> snapshot per generation, oldest first
    episodes: list[dict] = field(default_factory=list)  # training matches, every phase
    train_seconds: float = 0.0


def run_league(cfg: LeagueConfig) -> League:
    out = Path(cfg.out)
    if not cfg.overwrite and (refusal := league_refusal(out)):
        raise FileExistsError(refusal)
    pool = out / "pool"
    for role in LEAGUE_ROLES:
        (pool / role).mkdir(parents=True, exist_ok=True)
        for old in (pool / role).glob("*.zip"):
            old.unlink()  # --overwrite: the rerun starts a fresh league
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    league = League(out, {role: [] for role in LEAGUE_ROLES})
    bar = tqdm(total=progress_total(cfg), unit="step", dynamic_ncols=True,
               mininterval=0.5) if cfg.progress else None
    started = time.perf_counter()
    for g in range(cfg.generations):
        for role in LEAGUE_ROLES:
            if bar is not None:
                bar.set_description(f"gen {g} {role}")
            previous = league.snapshots[role][-1] if league.snapshots[role] else ""
            phase = phase_config(cfg, role, g, str(previous), pool)
            if phase.timesteps <= 0:
                continue
            trained = one_role.train(phase, bar=bar)
            snap = pool / role / f"{role}_g{g}.zip"
            shutil.copyfile(Path(phase.out) / "last.zip", snap)
            league.snapshots[role].append(snap)
            league.episodes += [{"role": role, "generation": g, **e} for e in trained.episodes]
    if bar is not None:
        bar.close()
    league.train_seconds = time.perf_counter() - started
    return league


# ============================================================================ 3. cross-play
def players(league: League) -> dict[str, dict[str, Any]]:
    """role -> player name -> factory(seed) of its Policy (a snapshot is loaded once and reused:
    it acts deterministically and keeps no state between matches)."""
    table: dict[str, dict[str, Any]] = {}
    for role in LEAGUE_ROLES:
        scripted = "scripted" if role == "investigator" else "reactive"
        table[role] = {scripted: lambda seed, r=role: BASELINES[r](seed=seed),
                       "random": lambda seed, r=role: RandomPolicy(r, seed=seed)}
        for path in league.snapshots[role]:
            learned = SB3Policy.load(path, role)
            table[role][path.stem.split("_")[-1]] = lambda seed, p=learned: p
    return table


def cross_play(league: League, cfg: LeagueConfig) -> list[dict]:
    """Every investigator against every fraudster, on every task and eval seed; one row per
    (investigator, fraudster, task) with means, plus the per-match graders for Elo."""
    roster = players(league)
    rows = []
    for task in cfg.tasks:
        for inv_name, make_inv in roster["investigator"].items():
            for fr_name, make_fr in roster["fraudster"].items():
                matches = evaluate_matches(task, cfg.eval_seeds, lambda seed, mi=make_inv,
                                           mf=make_fr: {"investigator": mi(seed),
                                                        "fraudster": mf(seed)})
                rows.append({"task": task, "investigator": inv_name, "fraudster": fr_name,
                             "grader": float(np.mean([m["grader"] for m in matches])),
                             **{f"{role}_return": float(np.mean([m[role] for m in matches]))
                                for role in LEAGUE_ROLES},
                             "graders": [m["grader"] for m in matches]})
    return rows


# ============================================================================ 4. Elo
ELO_ANCHOR = ("investigator", "scripted", 1000.0)


def fit_elo(rows: list[dict], iterations: int = 2000) -> dict[tuple[str, str], float]:
    """Elo ratings of every player, fitted to every cross-play match at once.

    A match is a game between its investigator and its fraudster; the investigator scores its
    grader (in [0, 1]), the fraudster one minus it. Ratings maximise the likelihood of those
    scores under Elo's model, P(investigator wins) = 1 / (1 + 10 ** ((R_f - R_i) / 400)), and are
    shifted so that the scripted investigator stands at 1000. Unlike sequential Elo updates,
    the fit does not depend on the order of the matches.
    """
    names = sorted({("investigator", r["investigator"]) for r in rows}
                   | {("fraudster", r["fraudster"]) for r in rows})
    index = {n: k for k, n in enumerate(names)}
    inv = np.asarray([index["investigator", r["investigator"]] for r in rows for _ in r["graders"]])
    fr = np.asarray([index["fraudster", r["fraudster"]] for r in rows for _ in r["graders"]])
    score = np.asarray([g for r in rows for g in r["graders"]])
    theta = np.zeros(len(names))  # natural-log scale
    for _ in range(iterations):  # gradient ascent on the (concave) log-likelihood
        p = 1.0 / (1.0 + np.exp(theta[fr] - theta[inv]))
        grad = np.zeros(len(names))
        np.add.at(grad, inv, score - p)
        np.add.at(grad, fr, p - score)
        counts = np.bincount(inv, minlength=len(names)) + np.bincount(fr, minlength=len(names))
        theta += 2.0 * grad / np.maximum(counts, 1)
    elo = theta * 400.0 / np.log(10.0)
    role, name, value = ELO_ANCHOR
    elo += value - elo[index[role, name]]
    return {n: float(elo[k]) for n, k in index.items()}


def format_cross_play(rows: list[dict], elo: dict[tuple[str, str], float], n_seeds: int) -> str:
    lines = []
    investigators = list(dict.fromkeys(r["investigator"] for r in rows))
    fraudsters = list(dict.fromkeys(r["fraudster"] for r in rows))
    for task in dict.fromkeys(r["task"] for r in rows):
        cell = {(r["investigator"], r["fraudster"]): r for r in rows if r["task"] == task}
        lines += [f"### {task}: mean grader (fraudster return) over {n_seeds} held-out seeds", "",
                  "| investigator \\ fraudster | " + " | ".join(fraudsters) + " |",
                  "|---" * (len(fraudsters) + 1) + "|"]
        for i in investigators:
            lines.append(f"| {i} | " + " | ".join(
                f"{cell[i, f]['grader']:.3f} ({cell[i, f]['fraudster_return']:+.2f})"
                for f in fraudsters) + " |")
        lines.append("")
    lines += ["Players. investigator: scripted = ScriptedInvestigator, random = RandomPolicy (a "
              "uniform draw of a legal action), gN = the investigator snapshot of generation N "
              "(pool/investigator/investigator_gN.zip); fraudster: reactive = ReactiveFraudster "
              "(the scripted fraudster), random = RandomPolicy, gN = the fraudster snapshot of "
              "generation N (pool/fraudster/fraudster_gN.zip); the auditor is HeuristicAuditor "
              "throughout.", ""]
    lines += ["### Elo (all tasks; an investigator scores its grader, a fraudster one minus it; "
              "scripted investigator = 1000)", "", "| role | player | Elo |", "|---|---|---|"]
    for (role, name), value in sorted(elo.items(), key=lambda kv: (kv[0][0], -kv[1])):
        lines.append(f"| {role} | {name} | {value:.0f} |")
    return "\n".join(lines)


# ============================================================================ 5. tables, plots
@dataclass
class LeagueResult:
    league: League
    cross_play: list[dict]
    elo: dict[tuple[str, str], float]
    cross_play_table: str
    rows: list[dict]  # the evaluation table's rows
    table: str
    eval_seconds: float


def league_figure(result: LeagueResult, cfg: LeagueConfig):
    """``league.png``. Left: each role's Elo by generation (from cross-play on the held-out
    seeds), scripted and random as reference lines. Then one panel per role: the return of each
    of its training matches (a moving mean), generation by generation, each generation shaded and
    named. A
    generation trains against the other role's pool, which gains a snapshot every generation, so
    a return may fall while the player improves: its opponents got stronger."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    colours = {"investigator": "tab:blue", "fraudster": "tab:red"}
    references = {"investigator": "scripted", "fraudster": "reactive"}
    for role in LEAGUE_ROLES:
        gens = [int(p.stem.split("_g")[-1]) for p in result.league.snapshots[role]]
        ax.plot(gens, [result.elo[role, f"g{g}"] for g in gens], "o-", color=colours[role],
                label=f"{role} snapshots g0..g{max(gens)}" if gens else role)
        for ref, style in ((references[role], "--"), ("random", ":")):
            ax.axhline(result.elo[role, ref], ls=style, color=colours[role], alpha=0.6,
                       label=f"{ref} {role}")
    ax.set_xticks(range(cfg.generations), [f"g{g}" for g in range(cfg.generations)])
    ax.set_xlabel("generation (snapshot taken at the end of it)")
    ax.set_ylabel("Elo (scripted investigator = 1000)")
    ax.set_title(f"Elo from cross-play, {len(cfg.eval_seeds)} held-out seeds")
    ax.legend(fontsize=7)
    for ax2, role in zip(axes[1:], LEAGUE_ROLES):
        eps = [e for e in result.league.episodes if e["role"] == role]
        other = "fraudster" if role == "investigator" else "investigator"
        ax2.set_title(f"{role}: training-match return\n(against the {other} pool: "
                      f"{references[other]} + earlier snapshots)", fontsize=9)
        ax2.set_xlabel(f"{role} training match (in order, all generations)")
        ax2.set_ylabel("return (sum of the role's rewards in a match)")
        if not eps:
            continue
        y = np.asarray([e["return"] for e in eps])
        w = max(1, min(50, len(y) // 8))  # a window well inside one generation
        ax2.plot(np.arange(w, len(y) + 1), np.convolve(y, np.ones(w) / w, mode="valid"),
                 color=colours[role], label=f"moving mean of {w} matches")
        generation = np.asarray([e["generation"] for e in eps])
        for g in np.unique(generation):
            idx = np.flatnonzero(generation == g)
            lo, hi = idx[0] + 1, idx[-1] + 1
            if g % 2:
                ax2.axvspan(lo - 0.5, hi + 0.5, color="grey", alpha=0.12, lw=0)
            ax2.axvline(lo - 0.5, color="grey", lw=0.8)
            ax2.text((lo + hi) / 2, 0.97, f"g{g}", transform=ax2.get_xaxis_transform(),
                     ha="center", va="top", fontsize=9)
        ax2.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def plot(result: LeagueResult, cfg: LeagueConfig, path: Path) -> Path:
    fig = league_figure(result, cfg)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def eval_json(rows: list[dict]) -> str:
    """``eval.json``: the evaluation table's rows, a standard error over one seed (nan, which JSON
    has no word for) written as null."""
    return json.dumps([{k: None if isinstance(v, float) and math.isnan(v) else v
                        for k, v in r.items()} for r in rows], indent=2, allow_nan=False)


def run(cfg: LeagueConfig) -> LeagueResult:
    """The league, then cross-play, Elo, the evaluation table and the plot, all saved in out."""
    league = run_league(cfg)
    started = time.perf_counter()
    xp = cross_play(league, cfg)
    elo = fit_elo(xp)
    xp_table = format_cross_play(xp, elo, len(cfg.eval_seeds))
    final = {role: SB3Policy.load(paths[-1], role).model
             for role, paths in league.snapshots.items() if paths}
    rows = evaluate_models(final, cfg.tasks, cfg.eval_seeds)
    result = LeagueResult(league, xp, elo, xp_table, rows,
                          format_table(rows, len(cfg.eval_seeds)), 0.0)
    result.eval_seconds = time.perf_counter() - started
    out = league.out
    (out / "crossplay.md").write_text(xp_table + "\n")
    (out / "crossplay.json").write_text(json.dumps(
        {"rows": [{k: v for k, v in r.items() if k != "graders"} for r in xp],
         "elo": [{"role": r, "player": n, "elo": v} for (r, n), v in elo.items()]}, indent=2))
    (out / "eval.md").write_text(result.table + "\n")
    (out / "eval.json").write_text(eval_json(rows))
    plot(result, cfg, out / "league.png")
    return result


def max_seed(generations: int, batched: bool = False) -> int:
    """The largest ``--seed`` for ``generations``: generation g trains with train.py's seed
    ``seed * 100 + g``, which train.py takes up to ``MAX_RUN_SEED``, or on the batched path
    (``batched``: ``--vector-envs``, as ``--quick``) ``MAX_VECTOR_RUN_SEED``."""
    top = one_role.MAX_VECTOR_RUN_SEED if batched else one_role.MAX_RUN_SEED
    return (top - max(generations - 1, 0)) // 100


def parse_args(argv: Sequence[str] | None = None, fresh_out: bool = False) -> LeagueConfig:
    """The run's configuration; every option is checked here, before anything is written.
    ``fresh_out``: refuse an ``--out`` that holds a league unless ``--overwrite`` (``main``)."""
    d = LeagueConfig()
    p = argparse.ArgumentParser(prog="fraudarena train", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"the README's main job (a few minutes on 2 cores): {QUICK}")
    p.add_argument("--task", default=None, type=parse_task_list,
                   help=f"task id(s), comma-separated (default {','.join(d.tasks)})")
    p.add_argument("--generations", type=int_at_least(1), default=None,
                   help=f"default {d.generations}")
    p.add_argument("--timesteps", type=int_at_least(0), default=None,
                   help=f"investigator timesteps per generation (default "
                        f"{d.investigator_timesteps}; the fraudster gets a quarter of it, rounded "
                        "up, unless --fraudster-timesteps)")
    p.add_argument("--fraudster-timesteps", type=int_at_least(0), default=None)
    p.add_argument("--imitation-samples", type=int_at_least(0), default=None,
                   help="the first investigator imitates the scripted one on this many decisions "
                        f"(default {d.imitation_samples}; 0: PPO from scratch)")
    p.add_argument("--fraudster-imitation-samples", type=int_at_least(0), default=None,
                   help="the first fraudster imitates --fraudster-teacher on this many decisions "
                        f"(default {d.fraudster_imitation_samples}; 0: PPO from scratch)")
    p.add_argument("--fraudster-teacher", default=None,
                   help="a fraudster name `fraudarena play` takes or a checkpoint (default "
                        f"{d.fraudster_teacher})")
    p.add_argument("--n-envs", type=int_at_least(1), default=None, help=f"default {d.n_envs}")
    p.add_argument("--vector-envs", type=int, default=None, metavar="N",
                   help="train each phase on N matches at once, opponents batched (train.py "
                        f"--vector-envs; default {d.vector_envs}: --n-envs RoleEnvs)")
    p.add_argument("--workers", type=int_at_least(1), default=None, metavar="W",
                   help="with --vector-envs (as --quick): split each phase's matches among W "
                        "worker processes (train.py --workers; the same league with any W; "
                        "default: train.py's, with 512 matches or more a worker per core, at most 2, "
                        "else 1)")
    p.add_argument("--n-steps", type=int_at_least(1), default=None, help=f"default {d.n_steps}")
    p.add_argument("--batch-size", type=int_at_least(2), default=None,  # SB3 wants 2 or more
                   help=f"default {d.batch_size}")
    p.add_argument("--n-epochs", type=int_at_least(1), default=None,
                   help=f"default {d.n_epochs}")
    p.add_argument("--investigator-net", choices=("slot", "mlp"), default=None)
    p.add_argument("--calibration-coef", type=non_negative_float, default=None,
                   help="investigator phases: training reward -COEF*(confidence-right)^2 per "
                        f"manual verdict (default {d.calibration_coef})")
    p.add_argument("--investigator-grader-coef", type=non_negative_float, default=None,
                   help="investigator phases: training reward +COEF*grader when a match ends "
                        f"(default {d.investigator_grader_coef})")
    p.add_argument("--seed", type=int_at_least(0), default=None,
                   help=f"default {d.seed}; at most {max_seed(d.generations):,}, with "
                        f"--vector-envs (as --quick) {max_seed(QUICK['generations'], True):,} "
                        "(generation g trains with train.py's seed SEED * 100 + g)")
    p.add_argument("--out", type=run_dir, default=None,
                   help=f"run directory (default {d.out}; --quick: {QUICK['out']}); one that "
                        "already holds a league is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the league already in --out (its config.json and pool/ "
                        "snapshots) instead of refusing")
    p.add_argument("--eval-seeds", default=None, help="held-out seeds (default 1000-1019)",
                   type=held_out_seeds(parse_seeds, one_role.TRAIN_SEED_RANGE, "1000-1019"))
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-tensorboard", action="store_true")
    a = p.parse_args(argv)
    if a.fraudster_teacher:
        try:
            one_role.teacher_factory("fraudster", a.fraudster_teacher, "--fraudster-teacher")
        except (ValueError, cli.CheckpointError) as exc:
            p.error(one_role.flagged("--fraudster-teacher", exc))
    if a.vector_envs is not None and a.vector_envs < 0:
        p.error(f"--vector-envs must be 0 or a positive number of matches, got {a.vector_envs}")
    cfg = LeagueConfig(**QUICK) if a.quick else d
    changes: dict[str, Any] = {}
    if a.task:
        changes["tasks"] = a.task
    if a.timesteps is not None:
        changes["investigator_timesteps"] = a.timesteps
        # a quarter, rounded up: a few investigator steps still give the fraudster one rollout
        changes["fraudster_timesteps"] = -(-a.timesteps // 4)
    for name in ("generations", "fraudster_timesteps", "imitation_samples", "n_envs",
                 "vector_envs", "workers", "n_steps", "batch_size", "n_epochs",
                 "seed", "out", "fraudster_imitation_samples", "fraudster_teacher",
                 "calibration_coef", "investigator_grader_coef"):
        if getattr(a, name) is not None:
            changes[name] = getattr(a, name)
    if a.investigator_net:
        changes["net"] = a.investigator_net
    if a.eval_seeds:
        changes["eval_seeds"] = tuple(a.eval_seeds)
    if a.no_progress:
        changes["progress"] = False
    if a.no_tensorboard:
        changes["tensorboard"] = False
    if a.overwrite:
        changes["overwrite"] = True
    cfg = dataclasses.replace(cfg, **changes)
    if cfg.seed > (most := max_seed(cfg.generations, batched := cfg.vector_envs != 0)):
        top = one_role.MAX_VECTOR_RUN_SEED if batched else one_role.MAX_RUN_SEED
        p.error(f"--seed must be from 0 to {most:,} with {cfg.generations} generation(s) "
                f"(generation g trains with train.py's seed SEED * 100 + g, at most "
                f"{top:,}{' on the batched path' if batched else ''}), got {cfg.seed}")
    if cfg.workers is not None and cfg.workers > 1 and not cfg.vector_envs:
        p.error("--workers: each phase trains on RoleEnvs in one process (--vector-envs 0); "
                "give --vector-envs N (as --quick does) or drop --workers")
    if cfg.workers is not None and cfg.vector_envs and cfg.workers > cfg.vector_envs:
        p.error(f"--workers must be from 1 to --vector-envs ({cfg.vector_envs}), got "
                f"{cfg.workers}")
    if why := one_role.minibatch_refusal(cfg.vector_envs, cfg.n_envs, cfg.n_steps,
                                         cfg.batch_size):
        p.error(why)
    if cfg.investigator_timesteps == cfg.fraudster_timesteps == 0:
        p.error("--timesteps and --fraudster-timesteps are both 0: nothing would train; give "
                "either role some timesteps")
    if why := one_role.idle_teacher("--fraudster-teacher", a.fraudster_teacher or "",
                                    "--fraudster-imitation-samples",
                                    cfg.fraudster_imitation_samples):
        p.error(why)
    if fresh_out and not cfg.overwrite and (refusal := league_refusal(Path(cfg.out))):
        p.error(refusal)
    return cfg


def main(argv: Sequence[str] | None = None) -> LeagueResult:
    cfg = parse_args(argv, fresh_out=True)
    print(f"FraudArena league: tasks {', '.join(cfg.tasks)}, {cfg.generations} generation(s), "
          f"{total_timesteps(cfg):,} timesteps in all, seed {cfg.seed} -> {cfg.out}")
    result = run(cfg)
    print()
    print(result.table)
    print()
    print(result.cross_play_table)
    print()
    out = result.league.out
    print(f"trained in {result.league.train_seconds:.0f} s, evaluated in "
          f"{result.eval_seconds:.1f} s")
    print(f"snapshots: {out / 'pool'}; tables: {out / 'eval.md'}, {out / 'crossplay.md'}; "
          f"plot: {out / 'league.png'}")
    if cfg.tensorboard:
        print(f"tensorboard --logdir {out / 'phases'}")
    return result


if __name__ == "__main__":
    main()
