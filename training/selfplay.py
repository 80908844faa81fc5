"""Self-play training for FraudArena: MaskablePPO per role, alternating, with snapshot pools.

A CleanRL-style script: copy it, edit it, run it. It reads top to bottom:

1. ``TrainConfig``: every hyperparameter, and the ``--quick`` preset;
2. environments: ``RoleEnv`` per learning role, vectorised, with training match seeds drawn from
   a range disjoint from the evaluation seeds (``fraudarena_env.sb3.TrainSeeds``);
3. opponents: ``OpponentPool`` (the scripted baseline and saved snapshots of one role) and
   ``PoolPolicy`` (an opponent that draws one pool member per match);
4. callbacks: episode returns for the curves, one progress bar over all timesteps;
5. the self-play loop: for each generation, train the investigator against the fraudster pool,
   snapshot it, then train the fraudster against the investigator pool, snapshot it;
6. evaluation on held-out seeds (``fraudarena_env.sb3.evaluate_models``), a markdown table;
7. the curves plot, and ``main(argv)``.

What other code imports (the SB3 model adapter ``SB3Policy``, ``TrainSeeds``, the imitation warm
start, the evaluation table) lives in ``fraudarena_env/sb3.py``; everything else is here.
``fraudarena train ARGS`` runs this file's ``main(ARGS)`` from a checkout.

The auditor. During self-play the auditor is the scripted ``HeuristicAuditor``. With
``auditor_timesteps > 0`` a MaskablePPO auditor is trained once, after the loop, against the
scripted fraudster and investigator. It is off by default: in our short runs PPO quickly learns to
submit its report at once (return 0), which is below the heuristic auditor's return, and an
auditor trained against the scripted pair says little about the self-play pair anyway.

Needs the training extra: ``pip install torch==2.13.0 && pip install -e ".[train]"``, then

    python training/selfplay.py --quick
    python training/selfplay.py --task task_3 --generations 4 --timesteps 100000 --out runs/t3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor
from tqdm.auto import tqdm

from fraudarena_env.catalog import ROLES
from fraudarena_env.cli import parse_seeds
from fraudarena_env.policies import BASELINES, Policy
from fraudarena_env.role_env import RoleEnv
from fraudarena_env.sb3 import (
    TRAIN_SEED_RANGE,
    SB3Policy,
    TrainSeeds,
    evaluate_models,
    format_table,
    imitate,
)
from fraudarena_env.slot_policy import SlotInvestigatorPolicy

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


# ============================================================================ 1. configuration
@dataclass
class TrainConfig:
    # run
    out: str = "runs/selfplay"  # snapshots, curves.png, eval.md, tensorboard logs go here
    tasks: tuple[str, ...] = ("task_1", "task_2", "task_3")  # envs cycle over these tasks
    seed: int = 0
    threads: int = 2  # torch.set_num_threads
    # self-play schedule (timesteps are per generation and per role; SB3 rounds each learn()
    # call up to a whole number of rollouts of n_envs * n_steps)
    generations: int = 4
    investigator_timesteps: int = 100_000
    fraudster_timesteps: int = 25_000
    auditor_timesteps: int = 0  # 0: keep the scripted HeuristicAuditor (see module docstring)
    # opponent pools
    pool_size: int = 5  # most recent snapshots an opponent is drawn from
    latest_prob: float = 0.5  # chance per match of facing the latest snapshot
    pool_include_scripted: bool = True  # the scripted baseline stays in every pool
    # MaskablePPO
    n_envs: int = 6
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 1e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: tuple[int, ...] = (64, 64)  # the MLP of every role the slot policy does not serve
    investigator_net: str = "slot"  # "slot": SlotInvestigatorPolicy (shared per-slot weights)
    # imitation warm start: before its first PPO update the investigator imitates the scripted
    # one on this many of its own decisions (masked cross-entropy), then PPO takes over
    imitation_samples: int = 0
    imitation_epochs: int = 12
    # seeds: training matches draw their seeds from train_seed_range, never from eval_seeds
    train_seed_range: tuple[int, int] = TRAIN_SEED_RANGE
    eval_seeds: tuple[int, ...] = tuple(range(1000, 1020))
    # output
    progress: bool = True
    tensorboard: bool = True
    curve_window: int = 100  # episodes in the rolling mean of the curves
    verbose: int = 0


# ``--quick``: the README's main job, a few minutes on 2 cores including evaluation. The
# slot-structured investigator first imitates the scripted one (about 20k of its decisions), then
# PPO fine-tunes it in self-play against the fraudster pool; task_3 is the task it trains on, and
# the evaluation table sets it against every blind reference policy. See training/README.md.
QUICK = dict(out="runs/quick", tasks=("task_3",), generations=2, investigator_timesteps=12_288,
             fraudster_timesteps=8_192, n_envs=4, learning_rate=1e-4,
             imitation_samples=20_000, imitation_epochs=12)


# ============================================================================ 2. environments
def make_vec_env(role: str, cfg: TrainConfig, opponents: Callable[[], dict[str, Any]]):
    """``cfg.n_envs`` RoleEnvs for ``role`` cycling over ``cfg.tasks``, in a VecMonitor'd
    DummyVecEnv. ``opponents()`` builds one fresh opponent dict per sub-env (opponents keep
    per-match state, so sub-envs must not share them)."""
    def factory(i: int):
        task = cfg.tasks[i % len(cfg.tasks)]
        return lambda: TrainSeeds(RoleEnv(role, opponents=opponents(), task_id=task),
                                  cfg.train_seed_range)

    return VecMonitor(DummyVecEnv([factory(i) for i in range(cfg.n_envs)]))


# ============================================================================ 3. opponents
class OpponentPool:
    """The frozen opponents of one role: the scripted baseline and saved snapshots."""

    def __init__(self, role: str, cfg: TrainConfig):
        self.role = role
        self.cfg = cfg
        self.snapshots: list[SB3Policy] = []  # oldest first; models are loaded from disk

    def add(self, path: Path) -> None:
        self.snapshots.append(SB3Policy.load(path, self.role))

    def members(self) -> list[str | SB3Policy]:
        recent = self.snapshots[-self.cfg.pool_size:] if self.cfg.pool_size > 0 else []
        scripted = ["scripted"] if self.cfg.pool_include_scripted or not recent else []
        return [*scripted, *recent]

    def sample(self, rng: np.random.Generator) -> str | SB3Policy:
        members = self.members()
        if len(members) > 1 and self.snapshots and rng.random() < self.cfg.latest_prob:
            return self.snapshots[-1]
        return members[int(rng.integers(len(members)))]


class PoolPolicy(Policy):
    """A RoleEnv opponent that draws one pool member per match.

    RoleEnv reseeds opponents on every reset from the match seed, so the draw is reproducible.
    """

    def __init__(self, pool: OpponentPool, seed: int | None = None):
        super().__init__(seed)
        self.pool = pool
        self.role = pool.role
        self.scripted = BASELINES[pool.role](seed=seed)
        self.current: Policy = self.scripted

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        member = self.pool.sample(self.rng)
        self.current = self.scripted if isinstance(member, str) else member
        self.current.reset(seed=int(self.rng.integers(2**63 - 1)))

    def act_tensor(self, vector, mask) -> int:
        return self.current.act_tensor(vector, mask)


# ============================================================================ 4. callbacks
class EpisodeLog(BaseCallback):
    """Collects (role timesteps, return, grader) for every finished training match."""

    def __init__(self, role: str, generation: int, log: list[dict]):
        super().__init__()
        self.role, self.generation, self.log = role, generation, log

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done:
                ret = info.get("return", info.get("episode", {}).get("r"))
                self.log.append({"role": self.role, "generation": self.generation,
                                 "timesteps": int(self.num_timesteps), "return": float(ret),
                                 "grader": info["grader_score"] if info.get("has_grader")
                                 else None})
        return True


class Progress(BaseCallback):
    """Advances one shared progress bar (over the whole run) by n_envs per step, showing the
    learner's mean return over its last 100 training matches."""

    def __init__(self, bar, role: str, log: list[dict]):
        super().__init__()
        self.bar, self.role, self.log = bar, role, log

    def _on_step(self) -> bool:
        if self.bar is None:
            return True
        self.bar.update(self.training_env.num_envs)
        if self.n_calls % 256 == 0:
            recent = [e["return"] for e in self.log[-400:] if e["role"] == self.role][-100:]
            if recent:
                self.bar.set_postfix(ret=f"{np.mean(recent):+.2f}", refresh=False)
        return True


# ============================================================================ 5. self-play
@dataclass
class TrainResult:
    out: Path
    models: dict[str, Any]
    snapshots: list[Path]
    episodes: list[dict]
    boundaries: list[dict] = field(default_factory=list)  # role, generation, start timestep
    rows: list[dict] = field(default_factory=list)
    table: str = ""
    curves: Path | None = None
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


def _rollout(cfg: TrainConfig) -> int:
    return cfg.n_envs * cfg.n_steps


def _round_up(steps: int, cfg: TrainConfig) -> int:
    """What SB3 actually runs for ``learn(steps)``: whole rollouts."""
    r = _rollout(cfg)
    return -(-steps // r) * r if steps > 0 else 0


def total_timesteps(cfg: TrainConfig) -> int:
    per_gen = _round_up(cfg.investigator_timesteps, cfg) + _round_up(cfg.fraudster_timesteps, cfg)
    return cfg.generations * per_gen + _round_up(cfg.auditor_timesteps, cfg)


def _new_model(role: str, env, cfg: TrainConfig, out: Path):
    policy, policy_kwargs = "MlpPolicy", dict(net_arch=list(cfg.net_arch))
    if role == "investigator" and cfg.investigator_net == "slot":
        policy, policy_kwargs = SlotInvestigatorPolicy, {}
    return MaskablePPO(
        policy, env, learning_rate=cfg.learning_rate, n_steps=cfg.n_steps,
        batch_size=cfg.batch_size, n_epochs=cfg.n_epochs, gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda, clip_range=cfg.clip_range, ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef, max_grad_norm=cfg.max_grad_norm,
        policy_kwargs=policy_kwargs,
        tensorboard_log=str(out / "tb") if cfg.tensorboard else None,
        seed=cfg.seed * 1000 + ROLES.index(role), device="cpu", verbose=cfg.verbose)


def train(cfg: TrainConfig) -> TrainResult:
    """Alternating self-play. Returns the final models, snapshot paths and episode log."""
    lo, hi = cfg.train_seed_range
    overlap = sorted(s for s in cfg.eval_seeds if lo <= s < hi)
    if overlap:
        raise ValueError(f"eval seeds {overlap[:5]} fall in train_seed_range {lo}..{hi - 1}")
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    snap_dir = out / "snapshots"
    snap_dir.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))

    bar = None
    if cfg.progress:
        bar = tqdm(total=total_timesteps(cfg), unit="step", dynamic_ncols=True,
                   mininterval=0.5)
    pools = {"fraudster": OpponentPool("fraudster", cfg),
             "investigator": OpponentPool("investigator", cfg)}
    # the pool sampling is per match; generation 0's investigator faces only the scripted
    # fraudster because the fraudster pool is still empty
    opponents = {"investigator": lambda: {"fraudster": PoolPolicy(pools["fraudster"])},
                 "fraudster": lambda: {"investigator": PoolPolicy(pools["investigator"])}}
    models: dict[str, Any] = {}
    snapshots: list[Path] = []
    episodes: list[dict] = []
    boundaries: list[dict] = []
    started = time.perf_counter()

    def learn(role: str, steps: int, generation: int, env_opponents) -> None:
        if steps <= 0:
            return
        if role not in models:
            env = make_vec_env(role, cfg, env_opponents)
            models[role] = _new_model(role, env, cfg, out)
            if role == "investigator" and cfg.imitation_samples > 0:
                if bar is not None:
                    bar.set_description("imitating the scripted investigator")
                imitate(models[role], role, cfg.tasks, cfg.imitation_samples,
                        cfg.imitation_epochs, seed=cfg.seed, seed_range=cfg.train_seed_range)
        model = models[role]
        boundaries.append({"role": role, "generation": generation,
                           "timesteps": int(model.num_timesteps)})
        if bar is not None:
            bar.set_description(f"gen {generation}/{cfg.generations - 1} {role}"
                                if generation < cfg.generations else f"{role} vs scripted")
        callbacks = [EpisodeLog(role, generation, episodes), Progress(bar, role, episodes)]
        model.learn(steps, callback=callbacks, tb_log_name=role,
                    reset_num_timesteps=model.num_timesteps == 0)

    def snapshot(role: str, tag: str) -> Path:
        path = snap_dir / f"{role}_{tag}.zip"
        models[role].save(str(path))
        snapshots.append(path)
        return path

    for g in range(cfg.generations):
        learn("investigator", cfg.investigator_timesteps, g, opponents["investigator"])
        if "investigator" in models:
            pools["investigator"].add(snapshot("investigator", f"g{g}"))
        learn("fraudster", cfg.fraudster_timesteps, g, opponents["fraudster"])
        if "fraudster" in models:
            pools["fraudster"].add(snapshot("fraudster", f"g{g}"))
    # the auditor (optional): once, against the scripted fraudster and investigator
    learn("auditor", cfg.auditor_timesteps, cfg.generations, lambda: {})
    if "auditor" in models:
        snapshot("auditor", "final")
    if bar is not None:
        bar.close()
    for env_owner in models.values():
        env_owner.get_env().close()
    return TrainResult(out=out, models=models, snapshots=snapshots, episodes=episodes,
                       boundaries=boundaries, train_seconds=time.perf_counter() - started)


# ============================================================================ 6. evaluation
# ============================================================================ 7. plot and CLI
def plot_curves(episodes: list[dict], rows: list[dict], cfg: TrainConfig, path: Path,
                boundaries: Sequence[dict] = ()) -> Path:
    """Episode return per trained role over its timesteps (rolling mean), with the baselines'
    evaluation returns (against the scripted opponents) as reference lines and the start of each
    generation (where the opponent pool grows) as vertical lines."""
    roles = [r for r in ROLES if any(e["role"] == r for e in episodes)]
    fig, axes = plt.subplots(1, max(len(roles), 1), figsize=(5.5 * max(len(roles), 1), 4),
                             squeeze=False)
    for ax, role in zip(axes[0], roles):
        eps = [e for e in episodes if e["role"] == role]
        x = np.asarray([e["timesteps"] for e in eps])
        y = np.asarray([e["return"] for e in eps])
        w = max(1, min(cfg.curve_window, len(y)))
        smooth = np.convolve(y, np.ones(w) / w, mode="valid")
        ax.plot(x, y, ".", ms=1.5, alpha=0.15, color="tab:blue")
        ax.plot(x[w - 1:], smooth, color="tab:blue", label=f"training (mean of {w})")
        for kind, style in (("scripted", "--"), ("always_reject", "-."), ("random", ":")):
            vals = [r[f"{role}_return"] for r in rows if r[f"{role}_policy"] == kind and
                    all(r[f"{o}_policy"] == "scripted" for o in ROLES if o != role)]
            if vals:
                ax.axhline(float(np.mean(vals)), ls=style, color="gray",
                           label=f"{kind.replace('_', '-')} {role} (eval)")
        starts = [b["timesteps"] for b in boundaries if b["role"] == role and b["timesteps"] > 0]
        for i, t in enumerate(starts):
            ax.axvline(t, color="k", lw=0.6, alpha=0.4,
                       label="next generation (new opponents)" if i == 0 else None)
        ax.set_title(f"{role} ({', '.join(cfg.tasks)})")
        ax.set_xlabel("timesteps (this role)")
        ax.set_ylabel("episode return")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(cfg: TrainConfig) -> TrainResult:
    """Train, evaluate on the held-out seeds, plot, and write eval.md / eval.json."""
    result = train(cfg)
    started = time.perf_counter()
    rows = evaluate_models(result.models, cfg.tasks, cfg.eval_seeds)
    result.rows = rows
    result.table = format_table(rows, len(cfg.eval_seeds))
    result.eval_seconds = time.perf_counter() - started
    (result.out / "eval.md").write_text(result.table + "\n")
    (result.out / "eval.json").write_text(json.dumps(rows, indent=2))
    result.curves = plot_curves(result.episodes, rows, cfg, result.out / "curves.png",
                                result.boundaries)
    return result


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(prog="fraudarena train", description=__doc__.split("\n\n")[0])
    d = TrainConfig()
    p.add_argument("--quick", action="store_true",
                   help=f"small run (a few minutes on 2 cores incl. evaluation): {QUICK}")
    p.add_argument("--task", default=None,
                   help=f"task id(s), comma-separated (default {','.join(d.tasks)})")
    p.add_argument("--generations", type=int, default=None, help=f"default {d.generations}")
    p.add_argument("--timesteps", type=int, default=None,
                   help=f"investigator timesteps per generation (default "
                        f"{d.investigator_timesteps}; the fraudster gets a quarter of it unless "
                        "--fraudster-timesteps)")
    p.add_argument("--fraudster-timesteps", type=int, default=None)
    p.add_argument("--auditor-timesteps", type=int, default=None,
                   help="train an auditor once against the scripted pair (0 keeps it scripted)")
    p.add_argument("--seed", type=int, default=None, help=f"default {d.seed}")
    p.add_argument("--out", default=None,
                   help=f"run directory, e.g. runs/NAME (default {d.out}, --quick: runs/quick)")
    p.add_argument("--eval-seeds", default=None, help="held-out seeds (default 1000-1019)")
    p.add_argument("--n-envs", type=int, default=None, help=f"default {d.n_envs}")
    p.add_argument("--investigator-net", choices=("slot", "mlp"), default=None,
                   help=f"the investigator's network (default {d.investigator_net})")
    p.add_argument("--imitation-samples", type=int, default=None,
                   help="warm-start the investigator by imitating the scripted one on this many "
                   f"decisions (default {d.imitation_samples}; --quick: "
                   f"{QUICK['imitation_samples']}; 0: PPO from scratch)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-tensorboard", action="store_true")
    a = p.parse_args(argv)
    cfg = TrainConfig(**QUICK) if a.quick else TrainConfig()
    changes: dict[str, Any] = {}
    if a.task:
        changes["tasks"] = tuple(t.strip() for t in a.task.split(",") if t.strip())
    if a.generations is not None:
        changes["generations"] = a.generations
    if a.timesteps is not None:
        changes["investigator_timesteps"] = a.timesteps
        changes["fraudster_timesteps"] = a.timesteps // 4
    if a.fraudster_timesteps is not None:
        changes["fraudster_timesteps"] = a.fraudster_timesteps
    if a.auditor_timesteps is not None:
        changes["auditor_timesteps"] = a.auditor_timesteps
    if a.seed is not None:
        changes["seed"] = a.seed
    if a.out:
        changes["out"] = a.out
    if a.eval_seeds:
        changes["eval_seeds"] = tuple(parse_seeds(a.eval_seeds))
    if a.n_envs is not None:
        changes["n_envs"] = a.n_envs
    if a.investigator_net:
        changes["investigator_net"] = a.investigator_net
    if a.imitation_samples is not None:
        changes["imitation_samples"] = a.imitation_samples
    if a.no_progress:
        changes["progress"] = False
    if a.no_tensorboard:
        changes["tensorboard"] = False
    return dataclasses.replace(cfg, **changes)


def main(argv: Sequence[str] | None = None) -> TrainResult:
    cfg = parse_args(argv)
    print(f"FraudArena self-play: tasks {', '.join(cfg.tasks)}, {cfg.generations} generation(s), "
          f"{total_timesteps(cfg):,} timesteps in all, seed {cfg.seed} -> {cfg.out}")
    result = run(cfg)
    print()
    print(result.table)
    print()
    print(f"trained in {result.train_seconds:.0f} s, evaluated in {result.eval_seconds:.1f} s")
    print(f"snapshots: {result.out / 'snapshots'} ({len(result.snapshots)} files)")
    print(f"curves:    {result.curves}")
    print(f"table:     {result.out / 'eval.md'}")
    if cfg.tensorboard:
        print(f"tensorboard --logdir {result.out / 'tb'}")
    return result


if __name__ == "__main__":
    main()
