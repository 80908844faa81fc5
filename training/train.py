"""Train one FraudArena role with MaskablePPO against chosen opponents.

A CleanRL-style script: copy it, edit it, run it. It reads top to bottom:

1. ``Config``: every hyperparameter, in one dataclass;
2. opponents: a SPEC per opponent role (``scripted``, ``random``, a checkpoint ``.zip``, or a
   directory of checkpoints used as a pool, one member drawn per match);
3. environments: one ``VectorRoleEnv`` of many matches, the opponents moving in batch (or, with
   ``--vector-envs 0``, a ``RoleEnv`` per sub-env stepped one by one), tasks in turn, training
   seeds drawn from a range disjoint from every evaluation seed;
4. the model: the slot-structured investigator (``SlotInvestigatorPolicy``) or an MLP, optionally
   warm-started by imitating the scripted player of the role, or loaded from a checkpoint;
5. callbacks: a progress bar, the training-episode log, and a periodic evaluation on held-out
   validation seeds against the scripted opponents that keeps the best checkpoint;
6. ``main``: train, save ``last.zip`` and ``best.zip``, print the validation history.

One investigator policy trains across task_1-task_3 at once (the sub-envs cycle over the tasks),
which the slot policy allows because its weights do not depend on the queue size.

    python training/train.py --role investigator --timesteps 200000 --out runs/inv
    python training/train.py --role fraudster --opponent investigator=scripted --out runs/fr
    python training/train.py --role investigator --init runs/inv/best.zip --timesteps 50000

Needs the training extra: ``pip install torch==2.13.0 --index-url
https://download.pytorch.org/whl/cpu && pip install -e ".[train]"``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import gc
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gymnasium
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnvWrapper, VecMonitor
from tqdm.auto import tqdm

from fraudarena_env import cli
from fraudarena_env.arena import evaluate
from fraudarena_env.catalog import CORRECT_VERDICT, ROLES, TASK_IDS
from fraudarena_env.cli import parse_seeds
from fraudarena_env.faces.encoding import OPS
from fraudarena_env.policies import BASELINES, Policy
from fraudarena_env.role_env import RoleEnv
from fraudarena_env.rules.actions import Verdict
from fraudarena_env.sb3 import TRAIN_SEED_RANGE, SB3Policy, TrainSeeds, imitate, imitation_steps
from fraudarena_env.sb3_vector import VectorRoleEnv
from fraudarena_env.slot_policy import SlotInvestigatorPolicy


# ============================================================================ 1. configuration
@dataclass
class Config:
    role: str = "investigator"
    # sub-envs cycle over these; list a task twice to train on it twice as often
    tasks: tuple[str, ...] = ("task_1", "task_2", "task_3")
    # opponent role -> SPEC: "scripted", "random", a checkpoint .zip, or a directory of .zip
    # files (a pool: one member per match); roles not named play their scripted baseline
    opponents: tuple[tuple[str, str], ...] = ()
    out: str = "runs/train"
    seed: int = 0
    threads: int = 1  # torch.set_num_threads: one thread is faster when the CPU is shared
    timesteps: int = 200_000
    init: str = ""  # start from this checkpoint instead of a fresh network
    # network: "slot" (the investigator's SlotInvestigatorPolicy) or "mlp"
    net: str = "slot"
    net_arch: tuple[int, ...] = (64, 64)  # the MLP's hidden layers
    # imitation warm start (fresh networks only): fit the scripted player's decisions first
    imitation_samples: int = 60_000
    imitation_epochs: int = 15
    # whom to imitate: a policy name of the role or a checkpoint (default: its scripted one)
    teacher: str = ""
    # MaskablePPO. A setting left None takes its path's default: batched_defaults(role), or
    # ROLE_ENV_DEFAULTS with vector_envs 0.
    # N > 0: one VectorRoleEnv of N matches (the tasks in turn), the opponents moving in batch
    # (the default: many times the steps per second); 0: n_envs RoleEnvs, stepped one by one
    # (the path every shipped checkpoint trained on)
    vector_envs: int | None = None
    # worker processes the batched path's matches are split among (each plays its block with
    # its opponents, the blocks at the same time; the same matches and agent as with one);
    # None: default_workers (with 512 matches or more, one per core, at most 2; else 1)
    workers: int | None = None
    n_envs: int = 6
    n_steps: int | None = None  # per env per rollout
    batch_size: int | None = None
    n_epochs: int | None = None
    learning_rate: float | None = None
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.1
    ent_coef: float = 0.0
    # training-only reward for the investigator's stated confidence: each manual verdict adds
    # -coef * (confidence - right)^2, a proper scoring rule, so the best bucket to state is the
    # one nearest the chance of being right. The grader scores calibration; the env's reward
    # does not, so without it PPO has no reason to pick one bucket over another.
    calibration_coef: float = 0.0
    # training-only reward at the end of each match: +coef * the investigator's grader for the
    # investigator, -coef * it for the fraudster (who is out to lower it as well as to earn
    # reach); 0: the env's reward alone. "best.zip" is then chosen by the same objective.
    grader_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    # seeds: training matches draw from train_seed_range; validation seeds pick the best
    # checkpoint, so report final figures on a third set of seeds
    train_seed_range: tuple[int, int] = TRAIN_SEED_RANGE
    val_seeds: tuple[int, ...] = tuple(range(3000, 3030))
    eval_every: int = 24_576  # timesteps between validations (0: only at the end)
    # output
    progress: bool = True
    tensorboard: bool = True
    verbose: int = 0

    def __post_init__(self):
        defaults = ROLE_ENV_DEFAULTS if self.vector_envs == 0 else batched_defaults(self.role)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.workers is None:
            self.workers = default_workers(self.vector_envs)


# the fewest matches split among workers by default: with fewer, a block's steps cost nearly
# what the whole batch's do, and handing the views over eats the gain (the quick job's 128
# matches trained in 204 s with 2 workers, 192 s in one process)
WORKERS_FROM = 512


def default_workers(vector_envs: int) -> int:
    """Worker processes for ``vector_envs`` matches: with ``WORKERS_FROM`` matches or more,
    one per core this process may use, at most 2 (the development machine's cores; past that
    the learner's own share grows); else 1, as on the RoleEnv path (``vector_envs`` 0)."""
    if not vector_envs or vector_envs < WORKERS_FROM:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(2, cores or 1))


def batched_defaults(role: str) -> dict:
    """The batched path's PPO settings for ``role``, 8,192 steps a rollout. The investigator (and
    the auditor): 256 matches of 32 steps, 2 epochs in batches of 128, lr 3e-4. From scratch on
    task_3 (training/RESULTS.md's run, 147k steps) that reached a validation grader of 0.58,
    where 4 epochs of 256 (the run's own settings, twice the updates' cost) reached 0.53, and
    1 or 2 epochs of 256 to 1,024, or 1 of 64, settled on always-reject or near it. The
    fraudster waits on ~50 steps of the vector env per step of its own (the investigator's turn,
    the auditor's flags), each costing about as much for a few matches as for many, so it plays
    1,024 matches of 8 steps, 4 epochs of 256, lr 1e-4 (train.py's earlier settings): from
    scratch on task_3 it earned as much by 98k steps as with 256 matches of 32, where 2,048
    matches of 4 earned less (all matches start together, so a rollout that short holds the
    same few moves of every match)."""
    if role == "fraudster":
        return dict(vector_envs=1024, n_steps=8, batch_size=256, n_epochs=4, learning_rate=1e-4)
    return dict(vector_envs=256, n_steps=32, batch_size=128, n_epochs=2, learning_rate=3e-4)


# The RoleEnv path's PPO settings (vector_envs 0), train.py's defaults before the batched path
# became the default: 6 RoleEnvs, 512 steps per env per rollout, batch 256, 4 epochs, lr 1e-4.
# The shipped checkpoints trained with them (their commands in training/RESULTS.md name them);
# selfplay.py and exploit.py still do.
ROLE_ENV_DEFAULTS = dict(vector_envs=0, n_envs=6, n_steps=512, batch_size=256, n_epochs=4,
                         learning_rate=1e-4)

# a seed's block of match seeds for --vector-envs (the training range holds 2,000 of them)
VECTOR_SEED_BLOCK = 1_000_000
MAX_RUN_SEED = 4_000_000  # --seed: seed * 1000 + an env's index seeds numpy, below 2**32
# --seed with --vector-envs: the largest whose block of match seeds ends inside the training range
MAX_VECTOR_RUN_SEED = (TRAIN_SEED_RANGE[1] - TRAIN_SEED_RANGE[0]) // VECTOR_SEED_BLOCK - 1


# ============================================================================ 2. opponents
# A checkpoint keeps the policy, not the run's place in its rollout: every env's last observation
# (9 MB of a file with 1,024 matches at once) is left out; a run continued with --init starts its
# envs afresh anyway.
ROLLOUT_STATE = ("_last_obs", "_last_original_obs", "_last_episode_starts")


def save_checkpoint(model: MaskablePPO, path: Path) -> None:
    """Save ``model`` (without its rollout state), or raise if its weights are no longer finite
    numbers: a run that diverged saves no checkpoint that would play as if it were one."""
    bad = [name for name, w in model.policy.state_dict().items()
           if w.is_floating_point() and not bool(w.isfinite().all())]
    if bad:
        raise RuntimeError(f"training diverged: {len(bad)} weight tensor(s) hold NaN or inf "
                           f"(first: {bad[0]}); not saved to {path}. Lower --lr, or give more "
                           f"steps a rollout and a larger --batch-size")
    model.save(str(path), exclude=list(ROLLOUT_STATE))


def minibatch_refusal(vector_envs: int, n_envs: int, n_steps: int, batch_size: int
                      ) -> str | None:
    """Why PPO's minibatches of ``batch_size`` from a rollout (``n_steps`` in each of
    ``vector_envs`` matches, or with 0 of ``n_envs`` RoleEnvs) would break it, or None: a
    minibatch of one step normalises its advantage by a standard deviation of nothing and turns
    the network into NaN (plain SB3 PPO refuses it; sb3-contrib's MaskablePPO does not)."""
    rollout = (vector_envs or n_envs) * n_steps
    if batch_size < 2:
        return f"--batch-size must be at least 2 (a minibatch of one step is NaN), got {batch_size}"
    if rollout < 2:
        return (f"a rollout of {rollout} step would be one minibatch of one step (NaN): give "
                f"more envs or --n-steps")
    if rollout % batch_size == 1:
        return (f"a rollout of {rollout} steps in minibatches of {batch_size} ends with a "
                f"minibatch of one step (NaN): choose a --batch-size that leaves none")
    return None


def make_opponent(role: str, spec: str, seed: int | None = None) -> Policy:
    """One opponent from its SPEC (see ``Config.opponents``): a directory is a pool; anything else
    is what ``fraudarena evaluate --ROLE SPEC`` accepts (a policy name or a checkpoint)."""
    if not spec.strip():
        raise ValueError(f"opponent {role}=: give a policy name, a checkpoint .zip or a "
                         "directory of checkpoints (a pool)")
    if spec == "scripted":  # every role's scripted baseline, whatever its name
        spec = cli.BASELINE_NAMES[role]
    path = Path(spec)
    if path.is_dir():
        members = sorted(path.glob("*.zip"))
        nested = sorted(path.glob("*/*.zip"))
        if not members and nested:
            where = ", ".join(sorted({str(p.parent) for p in nested})[:3])
            raise ValueError(f"opponent {role}={spec!r} holds no checkpoints itself, only in its "
                             f"subdirectories ({where}): name the pool directory itself")
        return PoolPolicy(role, members, seed=seed)
    try:
        return cli.policy_factory(cli.parse_policy_spec(role, spec))(seed)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"opponent {role}={spec!r}: {exc}; or a directory of checkpoints "
                         "(a pool)") from exc


def flagged(flag: str, exc: Exception) -> str:
    """``exc``'s message for a usage error about ``flag`` (``--opponent ROLE=SPEC`` names it by
    its first word), the flag named first unless the message already does."""
    return str(exc) if str(exc).startswith(flag.split()[0]) else f"{flag}: {exc}"


def pool_refusal(role: str, spec: str) -> None:
    """A ValueError for a pool directory a user names that holds no checkpoint (an empty one,
    or a league's root, whose snapshots lie further down): it would train against the scripted
    player alone. (A league's own phases start from empty pools: they do not ask.)"""
    path = Path(spec)
    if path.is_dir() and not any(path.glob("*.zip")):
        deeper = sorted({str(z.parent) for z in path.rglob("*.zip")})[:3]
        raise ValueError(f"opponent {role}={spec!r} holds no checkpoint (.zip) to draw from"
                         + (f"; they lie further down: {', '.join(deeper)}" if deeper else ""))


def teacher_factory(role: str, spec: str, option: str = "--teacher") -> Callable[..., Policy]:
    """``seed -> policy`` to imitate: a policy name of ``role`` (as ``fraudarena play`` takes) or
    a checkpoint, parsed as ``fraudarena evaluate`` parses a SPEC. The oracle reads the truth
    through a referee it is bound to, which imitation does not do, so it is refused."""
    names = ", ".join(cli.POLICIES[role])
    try:
        parsed = cli.parse_policy_spec(role, spec)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"{option} {spec!r}: use one of {names}, or a {role} checkpoint .zip "
                         f"({exc})") from exc
    if parsed.path is None and spec in cli.EVALUATE_ONLY[role]:
        raise ValueError(f"{option} {spec!r}: use one of {names}, or a {role} checkpoint .zip "
                         f"({spec} reads the truth: it cannot be imitated)")
    return cli.policy_factory(parsed)


def idle_teacher(teacher_option: str, teacher: str, samples_option: str, samples: int,
                 init: str = "") -> str | None:
    """Why a teacher named on a command line would imitate nothing (``imitates`` false), or
    None: no samples, or a run that continues a checkpoint (``init``)."""
    if not teacher:
        return None
    if init:
        return (f"{teacher_option} {teacher!r} would not be used: --init continues a checkpoint, "
                f"which is not warm-started by imitation; drop {teacher_option}")
    if samples <= 0:
        return (f"{teacher_option} {teacher!r} would not be used: {samples_option} is 0, so "
                f"nothing is imitated; pass {samples_option} N (N > 0) to warm-start on it, or "
                f"drop {teacher_option}")
    return None


class PoolPolicy(Policy):
    """Draws one member per match from a list of checkpoints (and the scripted baseline).

    RoleEnv reseeds its opponents on every reset from the match seed, so draws are reproducible.
    Checkpoints are loaded once, lazily, and stay frozen.
    """

    def __init__(self, role: str, paths: Sequence[Path], include_scripted: bool = True,
                 seed: int | None = None):
        super().__init__(seed)
        self.role = role
        self.paths = list(paths)
        # every member loaded (and its role checked) now, not when a match first draws it
        self.loaded: dict[Path, SB3Policy] = {p: SB3Policy.load(p, role) for p in self.paths}
        self.scripted = BASELINES[role](seed=seed)
        self.members: list[Path | None] = [*([None] if include_scripted else []), *self.paths]
        if not self.members:
            raise ValueError(f"empty {role} pool")
        self.current: Policy = self.scripted

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        member = self.members[int(self.rng.integers(len(self.members)))]
        if member is None:
            self.current = self.scripted
        else:
            self.current = self.loaded[member]
        self.current.reset(seed=int(self.rng.integers(2**63 - 1)))

    def act_tensor(self, vector, mask) -> int:
        return self.current.act_tensor(vector, mask)

    def shared_player(self):
        """This match's member, when it is a checkpoint: the envs of a batch that drew the same
        one act in one call."""
        return self.current.shared_player()


# ============================================================================ 3. environments
class CalibrationReward(gymnasium.Wrapper):
    """Adds ``-coef * (confidence - right)^2`` to the investigator's reward for each manual
    verdict (``right``: the verdict is the ad's correct one). Reads the truth, so it shapes
    training only; evaluation always scores the env's own reward and the grader."""

    def __init__(self, env: RoleEnv, coef: float):
        super().__init__(env)
        self.coef = coef

    def step(self, action):
        role_env = self.env
        op = OPS["investigator"][int(action)]
        bonus = 0.0
        if isinstance(op, Verdict):
            label = role_env.referee.label_of(op.slot)
            bonus = calibration_term(self.coef, op.confidence, op.verdict == CORRECT_VERDICT[label])
        obs, reward, terminated, truncated, info = role_env.step(action)
        return obs, reward + bonus, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        return self.env.action_masks()


def calibration_term(coef, confidence, right):
    """``-coef * (confidence - right)^2``: a verdict's calibration reward (arrays or floats)."""
    return -coef * (confidence - np.asarray(right, np.float64)) ** 2


def grader_sign(role: str) -> float:
    """The grader reward's sign for ``role`` (``GraderReward.SIGN``); the auditor, who has no
    stake in the grader, is refused."""
    if role not in GraderReward.SIGN:
        raise ValueError(f"the grader reward is for the investigator or the fraudster, "
                         f"not the {role}")
    return GraderReward.SIGN[role]


class GraderReward(gymnasium.Wrapper):
    """Adds ``sign * coef * grader`` to the learner's reward on the step its match ends (``sign``
    +1 for the investigator, -1 for the fraudster). Shapes training only; evaluation always
    scores the env's own reward and the grader."""

    SIGN = {"investigator": 1.0, "fraudster": -1.0}

    def __init__(self, env: gymnasium.Env, coef: float):
        # the role from under CalibrationReward when both shape the reward
        self.scale = grader_sign(env.unwrapped.role) * coef
        super().__init__(env)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and info.get("has_grader"):
            reward += self.scale * float(info["grader_score"])
        return obs, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        return self.env.action_masks()


# Per investigator action: is it a verdict, its slot, verdict and confidence (from the action
# catalogue, as CalibrationReward reads an op).
_VERDICT_OPS = [(isinstance(op, Verdict), getattr(op, "slot", 0), getattr(op, "verdict", 0),
                 getattr(op, "confidence", 0.0)) for op in OPS["investigator"]]
_IS_VERDICT, _VERDICT_SLOT, _VERDICT, _CONFIDENCE = (np.asarray(c) for c in zip(*_VERDICT_OPS))
_CORRECT = np.asarray(CORRECT_VERDICT)  # by label


class VectorTrainingRewards(VecEnvWrapper):
    """``CalibrationReward`` and ``GraderReward`` over a ``VectorRoleEnv``: env by env, the
    same terms on the same steps (``tests/test_train.py`` compares them with the wrappers on
    ``RoleEnv``s)."""

    def __init__(self, venv: VectorRoleEnv, calibration_coef: float, grader_coef: float):
        self.grader = grader_sign(venv.role) * grader_coef if grader_coef else 0.0
        super().__init__(venv)
        self.calibration = calibration_coef if venv.role == "investigator" else 0.0
        self._bonus = np.zeros(venv.num_envs)

    def reset(self):
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        self._bonus[:] = 0.0
        a = np.asarray(actions)
        if self.calibration and a.size == self.num_envs and np.issubdtype(a.dtype, np.integer) \
                and ((a >= 0) & (a < len(_IS_VERDICT))).all():  # else the env names the error
            actions = a.astype(np.int64).reshape(self.num_envs)
            verdict = _IS_VERDICT[actions]
            if verdict.any():  # the truth read before the step, as CalibrationReward reads it
                envs = np.flatnonzero(verdict)
                label = self.venv.labels_of(envs, _VERDICT_SLOT[actions[envs]])
                right = _VERDICT[actions[envs]] == _CORRECT[label]
                self._bonus[envs] = calibration_term(self.calibration,
                                                     _CONFIDENCE[actions[envs]], right)
        self.venv.step_async(actions)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        bonus = self._bonus.copy()
        if self.grader:
            for i in np.flatnonzero(dones):
                if infos[i].get("has_grader"):
                    bonus[i] += self.grader * float(infos[i]["grader_score"])
        return obs, (rewards + bonus).astype(np.float32), dones, infos


def make_vec_env(cfg: Config, opponents: Callable[[], dict[str, Policy]]) -> VecMonitor:
    """``cfg.n_envs`` RoleEnvs for ``cfg.role``, tasks in turn, or with ``cfg.vector_envs``
    one ``VectorRoleEnv``. ``opponents()`` builds a fresh opponent dict per sub-env: opponents
    keep per-match state, so sub-envs must not share."""
    if cfg.vector_envs:
        # matches s + i + k * N from here: a block of the training range of its own per seed
        offset = cfg.train_seed_range[0] + cfg.seed * VECTOR_SEED_BLOCK
        env = VectorRoleEnv(cfg.role, cfg.vector_envs, opponents=opponents, task_id=cfg.tasks,
                            seed_offset=offset, workers=cfg.workers)
        if cfg.calibration_coef or cfg.grader_coef:
            env = VectorTrainingRewards(env, cfg.calibration_coef, cfg.grader_coef)
        return VecMonitor(env)
    def factory(i: int):
        task = cfg.tasks[i % len(cfg.tasks)]

        def make():
            env = RoleEnv(cfg.role, opponents=opponents(), task_id=task)
            if cfg.calibration_coef and cfg.role == "investigator":
                env = CalibrationReward(env, cfg.calibration_coef)
            if cfg.grader_coef:
                env = GraderReward(env, cfg.grader_coef)
            return TrainSeeds(env, cfg.train_seed_range, seed=cfg.seed * 1000 + i)
        return make

    return VecMonitor(DummyVecEnv([factory(i) for i in range(cfg.n_envs)]))


# ============================================================================ 4. the model
def num_envs(cfg: Config) -> int:
    """How many matches each rollout step plays."""
    return cfg.vector_envs or cfg.n_envs


def imitates(cfg: Config) -> bool:
    """A fresh network is warm-started by imitation; a loaded checkpoint is not."""
    return not cfg.init and cfg.imitation_samples > 0


def progress_steps(cfg: Config) -> int:
    """The progress bar's total for ``train(cfg)``: the imitation's steps (see
    ``fraudarena_env.sb3.imitation_steps``), then the PPO timesteps SB3 runs (whole rollouts of
    ``n_envs * n_steps``)."""
    warm = imitation_steps(cfg.imitation_samples, cfg.imitation_epochs) if imitates(cfg) else 0
    rollout = num_envs(cfg) * cfg.n_steps
    return warm + -(-cfg.timesteps // rollout) * rollout


def new_model(cfg: Config, env, tensorboard_dir: Path | None,
              progress: Callable[[int], object] | None = None) -> MaskablePPO:
    policy, kwargs = "MlpPolicy", dict(net_arch=list(cfg.net_arch))
    if cfg.role == "investigator" and cfg.net == "slot":
        policy, kwargs = SlotInvestigatorPolicy, {}
    ppo = dict(learning_rate=cfg.learning_rate, n_steps=cfg.n_steps, batch_size=cfg.batch_size,
               n_epochs=cfg.n_epochs, gamma=cfg.gamma, gae_lambda=cfg.gae_lambda,
               clip_range=cfg.clip_range, ent_coef=cfg.ent_coef, vf_coef=cfg.vf_coef,
               max_grad_norm=cfg.max_grad_norm, device="cpu", verbose=cfg.verbose,
               tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None)
    if cfg.init:
        return MaskablePPO.load(cfg.init, env=env, custom_objects=ppo, **ppo)
    model = MaskablePPO(policy, env, policy_kwargs=kwargs,
                        seed=cfg.seed * 1000 + ROLES.index(cfg.role), **ppo)
    if imitates(cfg):
        teacher = teacher_factory(cfg.role, cfg.teacher) if cfg.teacher else None
        imitate(model, cfg.role, cfg.tasks, cfg.imitation_samples, cfg.imitation_epochs,
                seed=cfg.seed, seed_range=cfg.train_seed_range, teacher=teacher,
                progress=progress)
    return model


# ============================================================================ 5. callbacks
def validate(model, cfg: Config) -> dict[str, float]:
    """Mean grader and the learner's mean return per task on the validation seeds, against the
    scripted opponents (illegal actions raise)."""
    learner = SB3Policy(model, cfg.role)
    row: dict[str, float] = {}
    tasks = tuple(dict.fromkeys(cfg.tasks))  # a task listed twice trains twice as often
    for task in tasks:
        res = evaluate(task, list(cfg.val_seeds), lambda seed: {cfg.role: learner})
        row[f"{task}/grader"] = res["grader"]
        row[f"{task}/return"] = res[cfg.role]
    row["grader"] = float(np.mean([row[f"{t}/grader"] for t in tasks]))
    row["return"] = float(np.mean([row[f"{t}/return"] for t in tasks]))
    return row


def selection_score(row: dict[str, float], cfg: Config) -> float:
    """What "best" means: the investigator's mean grader; the fraudster's mean return, less
    ``grader_coef`` times the mean grader when it trains to lower the grader too."""
    if cfg.role == "investigator":
        return row["grader"]
    return row["return"] - cfg.grader_coef * row["grader"]


class Validation(BaseCallback):
    """Every ``cfg.eval_every`` timesteps: validate, log to TensorBoard and ``validation.csv``,
    and save ``best.zip`` when the selection score improves."""

    def __init__(self, cfg: Config, out: Path, history: list[dict]):
        super().__init__()
        self.cfg, self.out, self.history = cfg, out, history
        self.best = -np.inf
        self.next_at = 0

    def run(self) -> None:
        if not self.cfg.val_seeds:
            return
        if self.history and self.history[-1]["timesteps"] == self.num_timesteps:
            return  # (no step since the last: a run of 0 timesteps validates once)
        row = {"timesteps": int(self.num_timesteps), **validate(self.model, self.cfg)}
        self.history.append(row)
        for key, value in row.items():
            if key != "timesteps":
                self.logger.record(f"validation/{key}", value)
        with open(self.out / "validation.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            writer.writeheader()
            writer.writerows(self.history)
        score = selection_score(row, self.cfg)
        if score > self.best:
            self.best = score
            save_checkpoint(self.model, self.out / "best.zip")

    def _on_training_start(self) -> None:
        if self.cfg.eval_every:  # the starting point (after imitation) is a candidate too
            self.run()
        self.next_at = self.num_timesteps + self.cfg.eval_every

    def _on_rollout_start(self) -> None:
        # here, before the next rollout, the policy has been updated on every step counted so
        # far (during a rollout, and at its end, the update for it is still to come)
        if self.cfg.eval_every and self.num_timesteps >= self.next_at:
            self.run()
            while self.next_at <= self.num_timesteps:
                self.next_at += self.cfg.eval_every

    def _on_step(self) -> bool:
        return True


class EpisodeLog(BaseCallback):
    """Records (timesteps, return, grader) of every finished training match: the curves."""

    def __init__(self, log: list[dict]):
        super().__init__()
        self.log = log

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done:
                self.log.append({"timesteps": int(self.num_timesteps),
                                 "return": float(info["episode"]["r"]),
                                 "grader": float(info["grader_score"])})
        return True


class Progress(BaseCallback):
    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True


# ============================================================================ 6. main
@dataclass
class Trained:
    model: MaskablePPO
    history: list[dict]  # validation rows
    episodes: list[dict]  # training matches


def training_seed_among(seeds: Sequence[int], train_range: tuple[int, int]) -> int | None:
    """The first of ``seeds`` that training matches may draw (validation must not), or None."""
    return next((s for s in seeds if train_range[0] <= s < train_range[1]), None)


def train(cfg: Config, bar=None) -> Trained:
    """Train ``cfg.role``; saves ``last.zip`` (and ``best.zip`` when validating) in ``cfg.out``.
    ``bar``: a shared tqdm bar to advance instead of a bar of its own; either way it counts the
    imitation warm start and then PPO's timesteps, ``progress_steps(cfg)`` in all."""
    if (clash := training_seed_among(cfg.val_seeds, cfg.train_seed_range)) is not None:
        raise ValueError(f"validation seed {clash} falls in the training seed range")
    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    specs = dict(cfg.opponents)
    for role, spec in specs.items():  # a bad SPEC is named before anything is written
        make_opponent(role, spec)
    out.mkdir(parents=True, exist_ok=True)

    def opponents() -> dict[str, Policy]:
        return {r: make_opponent(r, specs[r]) for r in specs}

    env = make_vec_env(cfg, opponents)
    own_bar = bar is None and cfg.progress
    if own_bar:
        bar = tqdm(total=progress_steps(cfg), unit="step", dynamic_ncols=True, mininterval=0.5,
                   desc=f"{cfg.role} ({', '.join(cfg.tasks)})")
    if bar is not None and imitates(cfg):
        bar.set_postfix_str("imitation")
    model = new_model(cfg, env, out / "tb" if cfg.tensorboard else None,
                      progress=bar.update if bar is not None else None)
    # written once the opponents and the model (--init, the warm start) exist: a run that fails
    # before that leaves a run directory as it found it
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    history: list[dict] = []
    episodes: list[dict] = []
    validation = Validation(cfg, out, history)
    callbacks: list[BaseCallback] = [validation, EpisodeLog(episodes)]
    if bar is not None:
        bar.set_postfix_str("PPO")
        callbacks.append(Progress(bar))
    # what exists by now (torch, the model, every match's referee) lives as long as the run:
    # frozen out of the collector's full sweeps, each of which would walk it all again (about
    # 0.2 s a sweep for a fraudster's 1,024 matches)
    gc.freeze()
    try:
        model.learn(cfg.timesteps, callback=callbacks, tb_log_name=cfg.role)
    finally:
        gc.unfreeze()
    validation.run()  # the last state is a candidate for best.zip too
    if own_bar:
        bar.close()
    save_checkpoint(model, out / "last.zip")
    env.close()
    return Trained(model, history, episodes)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--role", choices=("investigator", "fraudster", "auditor"), default=d.role)
    p.add_argument("--task", default=",".join(d.tasks), type=cli.parse_task_list,
                   help=f"comma-separated task ids among {', '.join(TASK_IDS)}")
    p.add_argument("--opponent", action="append", default=[], metavar="ROLE=SPEC",
                   help="SPEC: scripted, random, a checkpoint .zip, or a directory of them "
                        "(a pool); repeatable; unnamed roles play scripted")
    p.add_argument("--timesteps", type=int, default=d.timesteps)
    p.add_argument("--init", default=d.init, help="continue from this checkpoint")
    p.add_argument("--net", choices=("slot", "mlp"), default=None,
                   help="the investigator's network (default slot); the other roles train an "
                   "MLP; --init continues the checkpoint's own")
    p.add_argument("--imitation-samples", type=int, default=d.imitation_samples)
    p.add_argument("--imitation-epochs", type=int, default=d.imitation_epochs)
    p.add_argument("--teacher", default=d.teacher,
                   help="imitate this policy of the role: a name `fraudarena play` takes or a "
                        "checkpoint (default: the scripted one)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 3e-4; the fraudster's, and with --vector-envs 0, "
                        "1e-4)")
    p.add_argument("--n-envs", type=int, default=d.n_envs,
                   help="with --vector-envs 0: how many RoleEnvs")
    p.add_argument("--vector-envs", type=int, default=None, metavar="N",
                   help="play N matches in one VectorRoleEnv (the tasks in turn), the "
                        "opponents in batch (default 256, the fraudster's 1,024); 0: --n-envs "
                        "RoleEnvs, one by one (the shipped checkpoints' path)")
    p.add_argument("--workers", type=int, default=None, metavar="W",
                   help="with --vector-envs: split the matches among W worker processes, each "
                        "playing its block (the same matches and agent as with 1; default: with "
                        "512 matches or more, as the fraudster's 1,024, one per core, at most "
                        "2; else 1)")
    p.add_argument("--n-steps", type=int, default=None,
                   help="steps per env per rollout (default 32, the fraudster's 8; 512 with "
                        "--vector-envs 0)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="PPO's minibatch (default 128, the fraudster's 256; 256 with "
                        "--vector-envs 0)")
    p.add_argument("--n-epochs", type=int, default=None,
                   help="PPO's passes over each rollout (default 2, the fraudster's 4; 4 with "
                        "--vector-envs 0)")
    p.add_argument("--ent-coef", type=float, default=d.ent_coef)
    p.add_argument("--clip-range", type=float, default=d.clip_range)
    p.add_argument("--calibration-coef", type=float, default=d.calibration_coef,
                   help="investigator: training reward -COEF*(confidence-right)^2 per verdict")
    p.add_argument("--grader-coef", type=float, default=d.grader_coef,
                   help="training reward at match end: +COEF*grader (investigator) or "
                        "-COEF*grader (fraudster: lower it as well as earn)")
    p.add_argument("--val-seeds", type=parse_seeds, default=None,
                   help="validation seeds (default 3000-3029)")
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=d.out)
    p.add_argument("--overwrite", action="store_true",
                   help="train into an --out that already holds a run, replacing its files")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--no-tensorboard", action="store_true")
    a = p.parse_args(argv)
    opponents = []
    for item in a.opponent:
        role, sep, spec = item.partition("=")
        if not sep or role not in ROLES or role == a.role:
            p.error(f"--opponent {item!r}: expected ROLE=SPEC with ROLE another role")
        if role in dict(opponents):
            p.error(f"--opponent {item!r}: the {role} is already {dict(opponents)[role]!r}; "
                    "give each role once (a directory of checkpoints is a pool)")
        opponents.append((role, spec))
    if a.init and not Path(a.init).is_file():
        p.error(f"--init {a.init!r}: no such checkpoint file")
    if a.grader_coef and a.role not in GraderReward.SIGN:
        p.error(f"--grader-coef: the grader scores the investigator; the {a.role} has no stake "
                "in it")
    if a.vector_envs is not None and a.vector_envs < 0:
        p.error(f"--vector-envs must be 0 or a positive number of matches, got {a.vector_envs}")
    if a.workers is not None:
        matches = batched_defaults(a.role)["vector_envs"] if a.vector_envs is None else \
            a.vector_envs
        if a.vector_envs == 0 and a.workers != 1:
            p.error("--workers: the RoleEnv path (--vector-envs 0) runs in one process; "
                    "drop --workers or give --vector-envs N")
        if not 1 <= a.workers <= max(matches, 1):
            p.error(f"--workers must be from 1 to the number of matches ({matches}), got "
                    f"{a.workers}")
    if a.calibration_coef and a.role != "investigator":
        p.error(f"--calibration-coef: calibration scores the investigator's confidences; the "
                f"{a.role} states none")
    for flag, value, least in (("--timesteps", a.timesteps, 0), ("--eval-every", a.eval_every, 0),
                               ("--imitation-samples", a.imitation_samples, 0),
                               ("--imitation-epochs", a.imitation_epochs, 1),
                               ("--n-envs", a.n_envs, 1), ("--n-steps", a.n_steps, 1),
                               ("--batch-size", a.batch_size, 1), ("--n-epochs", a.n_epochs, 1)):
        if value is not None and value < least:
            p.error(f"{flag} must be at least {least}, got {value}")
    for flag, value, strict in (("--lr", a.lr, True), ("--clip-range", a.clip_range, True),
                                ("--ent-coef", a.ent_coef, False),
                                ("--calibration-coef", a.calibration_coef, False),
                                ("--grader-coef", a.grader_coef, False)):
        if value is not None and not (math.isfinite(value) and (value > 0 if strict else
                                                                value >= 0)):
            p.error(f"{flag} must be a finite number {'above 0' if strict else 'of 0 or more'}, "
                    f"got {value}")
    if not 0 <= a.seed <= MAX_RUN_SEED:
        p.error(f"--seed must be from 0 to {MAX_RUN_SEED:,} (each env's generator is seeded with "
                f"seed * 1000 + its index, which numpy wants below 2**32), got {a.seed}")
    if a.vector_envs != 0 and a.seed > MAX_VECTOR_RUN_SEED:
        p.error(f"--seed must be at most {MAX_VECTOR_RUN_SEED:,} on the batched path (its matches "
                f"are seeds {TRAIN_SEED_RANGE[0]:,} + seed * {VECTOR_SEED_BLOCK:,} + ..., which "
                f"must stay in the training range), got {a.seed}; or pass --vector-envs 0")
    if Path(a.out).exists() and not Path(a.out).is_dir():
        p.error(f"--out {a.out!r} is a file; give a directory for the run")
    val_seeds = tuple(a.val_seeds) if a.val_seeds else d.val_seeds
    if (clash := training_seed_among(val_seeds, d.train_seed_range)) is not None:
        p.error(f"--val-seeds {clash} falls in the training seeds "
                f"{d.train_seed_range[0]}-{d.train_seed_range[1] - 1}; validate on others")
    # the checkpoints a run reads are loaded now: a wrong one is a usage error, named before
    # the run directory is touched
    checks = [("--teacher", lambda: teacher_factory(a.role, a.teacher))] if a.teacher else []
    for role, spec in opponents:
        checks += [(f"--opponent {role}={spec}", lambda role=role, spec=spec:
                    pool_refusal(role, spec)),
                   (f"--opponent {role}={spec}", lambda role=role, spec=spec:
                    make_opponent(role, spec))]
    if a.init:
        checks.append(("--init", lambda: cli.load_checkpoint(
            cli.PolicySpec(a.role, a.init, Path(a.init)))))
    for flag, check in checks:
        try:
            check()
        except (ValueError, cli.CheckpointError) as exc:
            p.error(flagged(flag, exc))
    if why := idle_teacher("--teacher", a.teacher, "--imitation-samples", a.imitation_samples,
                           a.init):
        p.error(why)
    if a.net is not None and a.init:
        p.error("--net: --init continues the checkpoint's own network; drop --net")
    if a.net == "slot" and a.role != "investigator":
        p.error(f"--net slot is the investigator's network; the {a.role} trains an MLP (--net "
                f"mlp, the default for it)")
    if not a.overwrite and (held := run_refusal(Path(a.out))):
        p.error(held)
    cfg = dataclasses.replace(
        d, role=a.role, tasks=a.task, opponents=tuple(opponents), timesteps=a.timesteps,
        init=a.init, net=a.net or ("slot" if a.role == "investigator" else "mlp"),
        imitation_samples=a.imitation_samples,
        imitation_epochs=a.imitation_epochs, teacher=a.teacher, learning_rate=a.lr,
        n_envs=a.n_envs, vector_envs=a.vector_envs, workers=a.workers, n_steps=a.n_steps,
        batch_size=a.batch_size, n_epochs=a.n_epochs, ent_coef=a.ent_coef,
        clip_range=a.clip_range,
        calibration_coef=a.calibration_coef, grader_coef=a.grader_coef,
        val_seeds=val_seeds,
        eval_every=a.eval_every, seed=a.seed, out=a.out, progress=not a.no_progress,
        tensorboard=not a.no_tensorboard)
    if why := minibatch_refusal(cfg.vector_envs, cfg.n_envs, cfg.n_steps, cfg.batch_size):
        p.error(why)
    try:
        Path(a.out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        p.error(f"--out {a.out!r}: cannot create it ({exc.strerror or exc})")
    return cfg


# what a finished (or started) run leaves in its directory
RUN_FILES = ("config.json", "last.zip", "best.zip", "validation.csv")


def run_refusal(out: Path) -> str | None:
    """Why ``out`` must not take a new run (it holds another's files, which a new run would
    mix with its own), or None."""
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held:
        return (f"--out {str(out)!r} already holds a run ({', '.join(held)}); give a new --out, "
                f"or pass --overwrite to replace it")
    return None


def main(argv: Sequence[str] | None = None) -> list[dict]:
    cfg = parse_args(argv)
    started = time.perf_counter()
    history = train(cfg).history
    print(f"\n{cfg.role} on {', '.join(cfg.tasks)}: {cfg.timesteps:,} timesteps in "
          f"{time.perf_counter() - started:.0f} s -> {cfg.out}/best.zip, last.zip")
    if not history:
        return history
    keys = [k for k in history[0] if k != "timesteps"]
    print("| timesteps | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for row in history:
        print(f"| {row['timesteps']:,} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
    return history


if __name__ == "__main__":
    main()
