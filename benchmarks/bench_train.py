"""Training throughput: env steps/s while MaskablePPO trains, and how much of that time is the env.

For each role, one short ``MaskablePPO.learn`` run on ``RoleEnv`` in a ``DummyVecEnv``,
configured as ``training/selfplay.py`` configures it: the investigator with the slot-structured
policy (``SlotInvestigatorPolicy``), the fraudster with an MLP, the other roles played by the
scripted baselines. Every sub-env is wrapped in ``TimedEnv``, which adds the wall time spent
inside the env's ``reset``, ``step`` and ``action_masks`` to one clock (the opponents' moves
included: from the learner's seat they are part of the env); a callback times the rollouts.
Printed per role and torch thread count:

* steps/s: the timesteps ``learn`` ran over its wall time; steps/CPU-s: over the process's CPU
  time instead (all threads, so a thread that spins while waiting counts too);
* env share: the env's time over ``learn``'s wall time; the rest is the policy (inference in
  rollouts, gradient steps in updates) and SB3's bookkeeping;
* rollout share: time collecting rollouts (env and inference) over wall time; updates are the
  rest;
* threads: ``torch.set_num_threads``. ``training/train.py`` (and so ``selfplay.py``) uses 1: on
  a machine whose cores other jobs keep busy, 1 can be several times faster than 2, as torch's
  two threads wait on each other;
* env-only steps/s: the same ``RoleEnv`` stepped with uniformly random legal actions for a few
  seconds in the same process, and how many times faster that is than training: a ratio that
  carries across machines better than either figure alone.

Needs the training extra (``pip install torch==2.13.0 --index-url
https://download.pytorch.org/whl/cpu && pip install -e ".[train]"``).

    python benchmarks/bench_train.py                       # 4,096 timesteps per role
    python benchmarks/bench_train.py --timesteps 20000 --n-envs 6 --task task_2
    python benchmarks/bench_train.py --against-plain --timesteps 49152   # train.py vs plain

``--against-plain`` times issue #19's comparison instead: ``training/train.py --role R --task
T --timesteps N --imitation-samples 0 --eval-every 0 --seed S --out TMP --no-progress
--no-tensorboard`` (with its defaults, the batched path, and ``--train-args`` appended; it
validates once, at the end) against a plain
sb3-contrib ``MaskablePPO("MlpPolicy")`` on 6 ``RoleEnv``s with ``n_steps=512`` learning the
same timesteps, in the same process, and prints both ratios (wall clock and CPU; train.py's CPU
counts its worker processes' too, ``--workers``).
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass

import gymnasium
import numpy as np
import torch
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from fraudarena_env.catalog import TASK_IDS
from fraudarena_env.role_env import RoleEnv
from fraudarena_env.slot_policy import SlotInvestigatorPolicy

ROLES = ("investigator", "fraudster")  # the roles self-play trains


@dataclass
class Clock:
    seconds: float = 0.0


class TimedEnv(gymnasium.Wrapper):
    """A ``RoleEnv`` whose ``reset``, ``step`` and ``action_masks`` add their wall time to
    ``clock``."""

    def __init__(self, env: RoleEnv, clock: Clock):
        super().__init__(env)
        self.clock = clock

    def reset(self, **kwargs):
        start = time.perf_counter()
        out = self.env.reset(**kwargs)
        self.clock.seconds += time.perf_counter() - start
        return out

    def step(self, action):
        start = time.perf_counter()
        out = self.env.step(action)
        self.clock.seconds += time.perf_counter() - start
        return out

    def action_masks(self) -> np.ndarray:
        start = time.perf_counter()
        mask = self.env.action_masks()
        self.clock.seconds += time.perf_counter() - start
        return mask


class RolloutTimer(BaseCallback):
    """Adds the wall time of every rollout collection to ``seconds``."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self._start = 0.0

    def _on_rollout_start(self) -> None:
        self._start = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.seconds += time.perf_counter() - self._start

    def _on_step(self) -> bool:
        return True


@dataclass
class Throughput:
    """One ``learn`` run: what it ran and where its time went (wall-clock seconds unless named)."""

    role: str
    policy: str
    threads: int
    timesteps: int
    wall_seconds: float
    cpu_seconds: float
    env_seconds: float
    rollout_seconds: float
    env_only_steps_per_s: float


def new_model(role: str, env, args: argparse.Namespace) -> tuple[MaskablePPO, str]:
    """The model ``training/selfplay.py`` builds for ``role`` (its default hyperparameters)."""
    if role == "investigator":
        policy, kwargs, name = SlotInvestigatorPolicy, {}, "SlotInvestigatorPolicy"
    else:
        policy, kwargs, name = "MlpPolicy", {"net_arch": [64, 64]}, "MlpPolicy [64, 64]"
    model = MaskablePPO(policy, env, learning_rate=1e-3, n_steps=args.n_steps,
                        batch_size=args.batch_size, n_epochs=args.n_epochs, gamma=0.99,
                        gae_lambda=0.95, clip_range=0.2, policy_kwargs=kwargs, seed=args.seed,
                        device="cpu", verbose=0)
    return model, name


def env_only_steps_per_s(role: str, task_id: str, seconds: float, seed: int) -> float:
    """The same ``RoleEnv`` (scripted opponents), stepped with uniformly random legal actions for
    ``seconds``."""
    env = RoleEnv(role, task_id=task_id)
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    steps = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        legal = np.flatnonzero(env.action_masks())
        _, _, terminated, truncated, _ = env.step(int(legal[rng.integers(len(legal))]))
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps / elapsed


def measure(role: str, threads: int, env_only: float, args: argparse.Namespace) -> Throughput:
    """One ``learn`` run of ``args.timesteps`` for ``role`` on ``threads`` torch threads;
    ``env_only`` is the role's env-only steps/s."""
    torch.set_num_threads(threads)
    clock = Clock()
    env = DummyVecEnv([lambda: TimedEnv(RoleEnv(role, task_id=args.task), clock)
                       for _ in range(args.n_envs)])
    model, name = new_model(role, env, args)
    timer = RolloutTimer()
    start, cpu_start = time.perf_counter(), time.process_time()
    model.learn(args.timesteps, callback=timer)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return Throughput(role, name, threads, model.num_timesteps, wall, cpu, clock.seconds,
                      timer.seconds, env_only)


def print_table(rows: list[Throughput], args: argparse.Namespace) -> None:
    print(f"MaskablePPO training throughput on {args.task}: {args.n_envs} envs in a DummyVecEnv, "
          f"n_steps {args.n_steps}, batch {args.batch_size}, {args.n_epochs} epochs")
    print()
    print("| role | policy | threads | timesteps | wall s | steps/s | steps/CPU-s | env share | "
          "rollout share | env-only steps/s | env-only / training |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        steps_per_s = r.timesteps / r.wall_seconds
        print(f"| {r.role} | {r.policy} | {r.threads} | {r.timesteps:,} | {r.wall_seconds:.1f} | "
              f"{steps_per_s:,.0f} | {r.timesteps / r.cpu_seconds:,.0f} | "
              f"{r.env_seconds / r.wall_seconds:.0%} | {r.rollout_seconds / r.wall_seconds:.0%} | "
              f"{r.env_only_steps_per_s:,.0f} | {r.env_only_steps_per_s / steps_per_s:,.1f}x |")


PLAIN_ENVS, PLAIN_STEPS = 6, 512  # the plain baseline: sb3-contrib's defaults, 6 RoleEnvs


def cpu_seconds() -> float:
    """This process's CPU time and its finished children's (train.py's worker processes, which
    it stops when it ends)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def against_plain(role: str, args: argparse.Namespace) -> dict[str, float]:
    """``training/train.py``'s command for ``role`` (its defaults, no imitation, no periodic
    validation, plus ``--train-args``) against a plain ``MaskablePPO("MlpPolicy")`` on
    ``PLAIN_ENVS`` RoleEnvs with ``n_steps`` ``PLAIN_STEPS`` (sb3-contrib's other defaults), the
    same timesteps, in this process; seconds of wall clock and of process CPU each."""
    import tempfile

    from fraudarena_env.cli import TRAIN_SCRIPT, load_script

    train = load_script(TRAIN_SCRIPT, "fraudarena_selfplay").one_role
    torch.set_num_threads(1)
    # torch imports its compiler on the first optimizer a process makes (1-2 s): made here,
    # before either clock starts, so that the first of the two runs does not pay for both
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        command = ["--role", role, "--task", args.task, "--timesteps", str(args.timesteps),
                   "--imitation-samples", "0", "--eval-every", "0", "--seed", str(args.seed),
                   "--out", tmp, "--no-progress", "--no-tensorboard", *args.train_args.split()]
        start, cpu = time.perf_counter(), cpu_seconds()
        train.main(command)
        out["train.py"] = (time.perf_counter() - start, cpu_seconds() - cpu)
    env = DummyVecEnv([lambda: RoleEnv(role, task_id=args.task) for _ in range(PLAIN_ENVS)])
    model = MaskablePPO("MlpPolicy", env, n_steps=PLAIN_STEPS, seed=args.seed, device="cpu")
    start, cpu = time.perf_counter(), time.process_time()
    model.learn(args.timesteps)
    out["plain"] = (time.perf_counter() - start, time.process_time() - cpu)
    return out


def print_against_plain(results: dict[str, dict], args: argparse.Namespace) -> None:
    print(f"train.py against plain MaskablePPO (MlpPolicy, {PLAIN_ENVS} RoleEnvs, n_steps "
          f"{PLAIN_STEPS}) on {args.task}, {args.timesteps:,} timesteps each; train.py extra "
          f"args: {args.train_args or '(none)'}")
    print()
    print("| role | train.py wall s | plain wall s | wall ratio | train.py CPU s | plain CPU s "
          "| CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for role, r in results.items():
        (tw, tc), (pw, pc) = r["train.py"], r["plain"]
        print(f"| {role} | {tw:.1f} | {pw:.1f} | {pw / tw:.1f}x | {tc:.1f} | {pc:.1f} | "
              f"{pc / tc:.1f}x |")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--roles", nargs="+", choices=ROLES, default=list(ROLES))
    parser.add_argument("--task", choices=TASK_IDS, default="task_3", help="default: task_3")
    parser.add_argument("--timesteps", type=int, default=4096,
                        help="per role; SB3 rounds up to whole rollouts (n_envs * n_steps)")
    parser.add_argument("--n-envs", type=int, default=4)
    parser.add_argument("--n-steps", type=int, default=256, help="rollout length per env")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-epochs", type=int, default=4)
    parser.add_argument("--reference-seconds", type=float, default=3.0,
                        help="length of the env-only reference run, per role (default 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch.set_num_threads, one run per value (default: 1 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--against-plain", action="store_true",
                        help="time training/train.py's command against plain MaskablePPO "
                             "instead (investigator and fraudster unless --roles)")
    parser.add_argument("--train-args", default="",
                        help="with --against-plain: extra train.py flags, as one value "
                             "after '=' (they begin with '-'), e.g. "
                             "--train-args='--vector-envs 256 --n-steps 32'")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.against_plain:
        roles = [r for r in args.roles if r != "auditor"] if args.roles != list(ROLES) else \
            ["investigator", "fraudster"]
        print_against_plain({role: against_plain(role, args) for role in roles}, args)
        return 0
    rows = []
    for role in args.roles:
        env_only = env_only_steps_per_s(role, args.task, args.reference_seconds, args.seed)
        rows += [measure(role, n, env_only, args) for n in args.threads]
    print_table(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
