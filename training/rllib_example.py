"""Ray RLlib example: PPO with action masking for one FraudArena role.

Tested with Ray 2.60.0 (RLlib's "new API stack": ``PPOConfig().environment(...)
.env_runners(...).training(...).rl_module(...)``, ``config.build_algo()``,
``algo.save_to_path()``, ``algo.get_module()``, and the action-masking RLModule that ships with
RLlib's examples, ``ActionMaskingTorchRLModule``). CI runs this script for one short iteration in
its RLlib virtualenv (``tests/test_library_fit.py``, marked ``rllib``); other Ray releases may
rename things.

What this script trains, and what else RLlib can do
    One role learns; the other two are opponents played inside the env. Each role's
    :class:`fraudarena_env.RoleEnv` (the same single-agent view the SB3 trainer uses) is
    registered with ``ray.tune.registry.register_env``, and its observation is turned into the
    ``{"observations", "action_mask"}`` dict that RLlib's masking module expects.
    RLlib's ``PettingZooEnv`` also takes FraudArena's AEC env directly, although the roles'
    spaces differ (fraudster 1727-dim vector and 134 actions, investigator 2638 / 977, auditor
    2141 / 326): RLlib gives every agent its own spaces, so all three roles can learn at once,
    one masked module per role, or one shared module through
    :mod:`fraudarena_env.wrappers`. ``docs/libraries.md`` has that setup.

Opponents
    By default the scripted baselines. ``--opponent fraudster=runs/quick/pool/fraudster/
    fraudster_g1.zip`` plays a frozen SB3 snapshot from ``training/selfplay.py`` instead (needs
    the ``train`` extra on every Ray worker). One role trains per run; for alternating self-play
    run it once per role and feed each run's opponent the other's latest snapshot, as the SB3
    trainer does.

"Local mode"
    By default Ray starts a single-machine runtime (``ray.init(num_cpus=2)``) and samples in the
    driver process (``num_env_runners=0``). Ray's old ``ray.init(local_mode=True)`` is deprecated
    and removed from recent releases, so it is not used. To scale out, connect to a cluster with
    ``--address auto`` (or ``ray://host:10001``) and raise ``--num-env-runners``.

    python training/rllib_example.py --role investigator --task task_3 --iterations 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from fraudarena_env import RoleEnv
from fraudarena_env.arena import evaluate
from fraudarena_env.catalog import ROLES
from fraudarena_env.cli import parse_seeds
from fraudarena_env.policies import Policy, RandomPolicy
from fraudarena_env.sb3 import TRAIN_SEED_RANGE, TrainSeeds, format_table

ENV_NAME = "fraudarena_role"


def require_ray():
    try:
        import ray  # noqa: F401
        from ray.rllib.algorithms.ppo import PPOConfig  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise SystemExit("This example needs Ray RLlib, which is an optional extra:\n"
                         "    pip install -e '.[rllib]'\n"
                         f"(import failed: {exc})") from exc


# ============================================================================ the env
class MaskedRoleEnv(gymnasium.Env):
    """A RoleEnv whose observation is RLlib's masking dict.

    ``observation_space = Dict(observations=Box, action_mask=Box(0, 1, (n,), float32))``.
    Matches draw their seeds from ``TRAIN_SEED_RANGE``, so evaluation seeds stay unseen.
    """

    metadata = {"render_modes": []}

    def __init__(self, env_config: dict[str, Any] | None = None, seed: int | None = None):
        cfg = dict(env_config or {})
        role = cfg.get("role", "investigator")
        opponents = {r: load_opponent(r, path) for r, path in cfg.get("opponents", {}).items()}
        base = RoleEnv(role, opponents=opponents, task_id=cfg.get("task_id", "task_3"))
        self.env = TrainSeeds(base, tuple(cfg.get("train_seed_range", TRAIN_SEED_RANGE)), seed)
        n = int(base.action_space.n)
        self.action_space = base.action_space
        self.observation_space = gymnasium.spaces.Dict({
            "observations": base.observation_space,
            "action_mask": gymnasium.spaces.Box(0.0, 1.0, (n,), np.float32),
        })

    def _obs(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        return {"observations": vector, "action_mask": self.env.action_masks().astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        vector, info = self.env.reset(seed=seed, options=options)
        return self._obs(vector), info

    def step(self, action):
        vector, reward, terminated, truncated, info = self.env.step(int(action))
        return self._obs(vector), reward, terminated, truncated, info


def load_opponent(role: str, path: str):
    """A frozen SB3 snapshot (from training/selfplay.py) as a RoleEnv opponent."""
    from fraudarena_env.sb3 import SB3Policy

    return SB3Policy.load(path, role)


def make_env(env_config) -> MaskedRoleEnv:
    """RLlib's env creator. ``env_config`` is an EnvContext: a dict with ``worker_index`` and
    ``vector_index`` attributes, used to give every sub-env its own stream of match seeds."""
    worker = getattr(env_config, "worker_index", 0)
    vector = getattr(env_config, "vector_index", 0)
    seed = int(env_config.get("seed", 0)) * 10_007 + worker * 1_009 + vector
    return MaskedRoleEnv(dict(env_config), seed=seed)


# ============================================================================ the algorithm
def build_config(args: argparse.Namespace):
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.examples.rl_modules.classes.action_masking_rlm import (
        ActionMaskingTorchRLModule,
    )

    env_config = {"role": args.role, "task_id": args.task, "seed": args.seed,
                  "opponents": dict(args.opponent)}
    return (
        PPOConfig()
        .environment(env=ENV_NAME, env_config=env_config)
        .env_runners(num_env_runners=args.num_env_runners,
                     num_envs_per_env_runner=args.num_envs_per_env_runner)
        .training(lr=args.lr, gamma=0.99, train_batch_size_per_learner=args.train_batch,
                  minibatch_size=args.minibatch, num_epochs=args.epochs, entropy_coeff=0.0)
        .rl_module(rl_module_spec=RLModuleSpec(
            module_class=ActionMaskingTorchRLModule,
            model_config={"fcnet_hiddens": [64, 64], "head_fcnet_hiddens": [64]}))
        .debugging(seed=args.seed)
    )


class RLlibPolicy(Policy):
    """A trained RLModule on the Policy interface (masked argmax of the inference logits)."""

    def __init__(self, module, role: str):
        super().__init__(None)
        self.module, self.role = module, role

    def act_tensor(self, vector, mask) -> int:
        import torch
        from ray.rllib.core.columns import Columns

        mask = np.asarray(mask, bool)
        batch = {Columns.OBS: {
            "observations": torch.as_tensor(np.asarray(vector, np.float32))[None],
            "action_mask": torch.as_tensor(mask.astype(np.float32))[None]}}
        with torch.no_grad():
            out = self.module.forward_inference(batch)
        logits = out[Columns.ACTION_DIST_INPUTS][0].cpu().numpy()
        return int(np.argmax(np.where(mask, logits, -np.inf)))


def eval_rows(policy: Policy, role: str, task: str, seeds) -> list[dict]:
    rows = []
    for who, make in (("scripted", lambda s: {}),
                      ("learned", lambda s: {role: policy}),
                      ("random", lambda s: {role: RandomPolicy(role, seed=s)})):
        res = evaluate(task, list(seeds), make)
        rows.append({"task": task, **{f"{r}_policy": who if r == role else "scripted"
                                      for r in ROLES},
                     "grader": res["grader"], **{f"{r}_return": res[r] for r in ROLES},
                     "legit_rejected": res["legit_rejected"]})
    return rows


# ============================================================================ main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--role", choices=ROLES, default="investigator")
    p.add_argument("--task", default="task_3")
    p.add_argument("--iterations", type=int, default=20, help="algo.train() calls")
    p.add_argument("--train-batch", type=int, default=4000)
    p.add_argument("--minibatch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--num-env-runners", type=int, default=0,
                   help="0 samples in the driver process (single machine)")
    p.add_argument("--num-envs-per-env-runner", type=int, default=4)
    p.add_argument("--num-cpus", type=int, default=2, help="for the local Ray runtime")
    p.add_argument("--address", default=None,
                   help="connect to a running Ray cluster (e.g. 'auto') instead of starting one")
    p.add_argument("--opponent", action="append", default=[], metavar="ROLE=SNAPSHOT.zip",
                   type=lambda s: tuple(s.split("=", 1)),
                   help="a frozen SB3 snapshot from training/selfplay.py as an opponent")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-seeds", default="1000-1019")
    p.add_argument("--out", default=None, help="checkpoint directory (default runs/rllib_ROLE)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    require_ray()
    import ray
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, EPISODE_RETURN_MEAN
    from ray.tune.registry import register_env

    args = parse_args(argv)
    for role, _ in args.opponent:
        if role not in ROLES or role == args.role:
            raise SystemExit(f"--opponent {role}=...: must be one of the other roles")
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    register_env(ENV_NAME, make_env)
    config = build_config(args)
    algo = config.build_algo() if hasattr(config, "build_algo") else config.build()  # < 2.41
    out = Path(args.out or f"runs/rllib_{args.role}").resolve()
    try:
        for i in range(args.iterations):
            result = algo.train()
            ret = result.get(ENV_RUNNER_RESULTS, {}).get(EPISODE_RETURN_MEAN, float("nan"))
            print(f"iter {i + 1:3d}/{args.iterations}  {args.role} episode return "
                  f"{ret:+.2f}", flush=True)
        print(f"checkpoint: {algo.save_to_path(str(out))}")
        policy = RLlibPolicy(algo.get_module(), args.role)
        seeds = parse_seeds(args.eval_seeds)
        print(format_table(eval_rows(policy, args.role, args.task, seeds), len(seeds)))
    finally:
        algo.stop()
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
