"""Self-play on Ray RLlib: the investigator and the fraudster learn together, with action masking.

A CleanRL-style script: copy it, edit it, run it. It reads top to bottom:

1. ``Config``: every setting, one dataclass; each field is also a command-line flag;
2. the env: ``TwoLearnerEnv``, an RLlib ``MultiAgentEnv`` over FraudArena's AEC env in which the
   fraudster and the investigator are the agents and the scripted ``HeuristicAuditor`` plays the
   audit phase inside the env;
3. the algorithm: PPO with two policies, one per learning role (agent id = policy id), each an
   RLlib ``ActionMaskingTorchRLModule`` (masked logits, so no illegal action is ever sampled);
4. evaluation: the trained modules, restored from the checkpoint, play whole matches on held-out
   seeds in ``fraudarena_env.arena`` (where an illegal action raises), next to the scripted and
   random baselines; the table is printed and saved;
5. ``main(argv)``: start or join Ray, train, save, evaluate.

Both roles train at the same time against each other (simultaneous self-play, no snapshot pool;
``training/selfplay.py`` does alternating self-play with pools on Stable-Baselines3). The auditor
is left scripted because it moves only after play ends,
and investigator and fraudster rewards never depend on it.

Where it runs. By default Ray starts a small runtime on this machine (``num_cpus=2``) and samples
in the driver process (``num_env_runners=0``): no cluster, nothing to set up. Ray's old
``local_mode=True`` is gone from recent releases and is not used. To scale out, start a cluster
(``ray start --head`` on one node, ``ray start --address HEAD:6379`` on the others, the package
installed on every node), run this script on a cluster node with ``--address auto`` and raise
``--num-env-runners`` (one CPU each; the learner stays in this process).

Tested with Ray 2.60.0 (the ``rllib`` extra). Install it in a virtualenv of its own, because Ray
pins its own gymnasium:

    python3.11 -m venv .venv-rllib && .venv-rllib/bin/pip install torch==2.13.0 \\
        && .venv-rllib/bin/pip install -e ".[rllib]"
    .venv-rllib/bin/python training/rllib_selfplay.py --iterations 20 --out runs/rllib_selfplay

Outputs in ``--out``: ``checkpoint/`` (``algo.save_to_path``; restore the whole algorithm with
``Algorithm.from_checkpoint``, or one role's module with ``RLModule.from_checkpoint(
checkpoint/learner_group/learner/rl_module/ROLE)``), ``train_log.json`` (per-iteration returns
and losses), ``eval.md`` and ``eval.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

try:
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_LEARNER_GROUP, COMPONENT_RL_MODULE
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModule, RLModuleSpec
    from ray.rllib.env.multi_agent_env import MultiAgentEnv
    from ray.rllib.examples.rl_modules.classes.action_masking_rlm import (
        ActionMaskingTorchRLModule,
    )
    from ray.rllib.utils.metrics import (
        ENV_RUNNER_RESULTS,
        EPISODE_MODULE_RETURN_MEAN,
        LEARNER_RESULTS,
        NUM_ENV_STEPS_SAMPLED_LIFETIME,
    )
    from ray.tune.registry import register_env
except ImportError as exc:  # pragma: no cover - depends on the optional extra
    raise SystemExit("This script needs Ray RLlib, an optional extra, in a virtualenv of its own "
                     "(Ray pins gymnasium):\n    pip install torch==2.13.0 --index-url "
                     "https://download.pytorch.org/whl/cpu && pip install -e "
                     f"'.[rllib]'\n(import failed: {exc})") from exc

from fraudarena_env import fraudarena_v0
from fraudarena_env.arena import evaluate
from fraudarena_env.catalog import ROLES
from fraudarena_env.cli import parse_seeds
from fraudarena_env.policies import HeuristicAuditor, Policy, RandomPolicy
from fraudarena_env.sb3 import TRAIN_SEED_RANGE, format_table

LEARNERS = ("fraudster", "investigator")  # the trained roles; also the agent and policy ids
ENV_NAME = "fraudarena_two_learners"


# ============================================================================ 1. configuration
@dataclass
class Config:
    # run
    out: str = "runs/rllib_selfplay"  # checkpoint/, train_log.json, eval.md, eval.json
    task: str = "task_3"
    seed: int = 0
    iterations: int = 20  # algo.train() calls
    # where: a local Ray runtime by default, or an existing cluster
    address: str = ""  # "" starts a local runtime; "auto" (or "HEAD_IP:6379") joins a cluster
    num_cpus: int = 2  # for the local runtime only
    num_env_runners: int = 0  # 0 samples in the driver process
    # torch threads in the driver (sampling and learning both run there by default); more than
    # one made PPO updates several times slower on a busy 2-core machine
    torch_threads: int = 1
    # PPO (one update per iteration for both roles; batch sizes count env steps of both roles)
    train_batch: int = 4000
    minibatch: int = 256
    epochs: int = 4
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    entropy_coeff: float = 0.01
    hiddens: str = "128,128"  # the MLP torso of each role's module, comma-separated widths
    # evaluation on held-out seeds (training matches draw seeds from TRAIN_SEED_RANGE)
    eval_seeds: str = "1000-1009"


def parse_args(argv=None) -> Config:
    """Every ``Config`` field is a flag: ``train_batch`` is ``--train-batch``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(Config):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    return Config(**vars(p.parse_args(argv)))


# ============================================================================ 2. the env
def masked_space(aec, role: str) -> gymnasium.spaces.Dict:
    """The observation RLlib's masking module reads: the role's vector under ``"observations"``
    and its legal-action mask as floats (1 legal, 0 illegal)."""
    n = int(aec.action_space(role).n)
    return gymnasium.spaces.Dict({
        "observations": aec.observation_space(role)["observation"],
        "action_mask": gymnasium.spaces.Box(0.0, 1.0, (n,), np.float32),
    })


class TwoLearnerEnv(MultiAgentEnv):
    """FraudArena with two RLlib agents, ``fraudster`` and ``investigator``.

    Turns are not round robin: whoever must move next is the only agent in the returned
    observations. A role's reward is what it earned since its own last move (the AEC env's
    cumulative reward), so rewards earned while others move reach it on its next turn. The
    auditor's turns are played by the scripted ``HeuristicAuditor`` before control returns. At
    the end every learner that played gets its last observation and pending reward.
    """

    def __init__(self, env_config: dict[str, Any] | None = None):
        super().__init__()
        cfg = env_config or {}
        self.aec = fraudarena_v0.env(task_id=cfg.get("task", "task_3"))
        self.auditor = HeuristicAuditor()
        self.possible_agents = list(LEARNERS)
        self.agents = list(LEARNERS)
        self.observation_spaces = {r: masked_space(self.aec, r) for r in LEARNERS}
        self.action_spaces = {r: self.aec.action_space(r) for r in LEARNERS}
        # every sub-env (RLlib passes an EnvContext) draws its own stream of training seeds
        worker = getattr(env_config, "worker_index", 0)
        vector = getattr(env_config, "vector_index", 0)
        self._seeds = np.random.default_rng([int(cfg.get("seed", 0)), worker, vector])
        self._played: set[str] = set()

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._seeds = np.random.default_rng(seed)
        match_seed = int(self._seeds.integers(*TRAIN_SEED_RANGE))
        self.aec.reset(seed=match_seed)
        self.auditor.reset(seed=match_seed)
        self._played = set()
        obs, _, _, _, _ = self._advance()
        return obs, {}

    def step(self, action_dict):
        self.aec.step(int(action_dict[self.aec.agent_selection]))
        return self._advance()

    def _advance(self):
        """Play the auditor's turns and the end-of-match bookkeeping until a learner must move
        (one agent in the dicts) or the match is over (every learner that played, all done)."""
        obs, rewards, terms, truncs, infos = {}, {}, {}, {}, {}
        aec = self.aec
        while aec.agents:
            role = aec.agent_selection
            observation, reward, terminated, truncated, info = aec.last()
            if terminated or truncated:
                if role in self._played:
                    obs[role] = masked(observation)
                    rewards[role], terms[role], truncs[role] = reward, terminated, truncated
                    infos[role] = info
                aec.step(None)
            elif role == "auditor":
                aec.step(self.auditor.act_tensor(observation["observation"],
                                                 observation["action_mask"]))
            else:
                self._played.add(role)
                return ({role: masked(observation)}, {role: reward},
                        {"__all__": False}, {"__all__": False}, {role: info})
        terms["__all__"] = all(terms.values())
        truncs["__all__"] = not terms["__all__"]  # the match is over: ended, or cut off
        return obs, rewards, terms, truncs, infos


def masked(observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An AEC observation in the layout of ``masked_space``."""
    return {"observations": observation["observation"],
            "action_mask": observation["action_mask"].astype(np.float32)}


# ============================================================================ 3. the algorithm
def build_config(cfg: Config):
    hiddens = [int(w) for w in cfg.hiddens.split(",") if w.strip()]
    module = RLModuleSpec(module_class=ActionMaskingTorchRLModule,
                          model_config={"fcnet_hiddens": hiddens,
                                        "head_fcnet_hiddens": hiddens[-1:]})
    return (
        PPOConfig()
        # RLlib's env pre-check steps a random, unmasked action, which FraudArena rejects as
        # illegal (IllegalActionError), hence disable_env_checking
        .environment(ENV_NAME, env_config={"task": cfg.task, "seed": cfg.seed},
                     disable_env_checking=True)
        .env_runners(num_env_runners=cfg.num_env_runners, num_envs_per_env_runner=1)
        .multi_agent(policies=set(LEARNERS),
                     policy_mapping_fn=lambda agent_id, episode, **kwargs: agent_id,
                     policies_to_train=list(LEARNERS))
        .rl_module(rl_module_spec=MultiRLModuleSpec(
            rl_module_specs={role: module for role in LEARNERS}))
        .training(lr=cfg.lr, gamma=cfg.gamma, lambda_=cfg.gae_lambda,
                  entropy_coeff=cfg.entropy_coeff, train_batch_size_per_learner=cfg.train_batch,
                  minibatch_size=cfg.minibatch, num_epochs=cfg.epochs)
        .debugging(seed=cfg.seed)
    )


def iteration_log(result: dict) -> dict[str, float]:
    """The few numbers worth a line per iteration: env steps so far, each role's mean episode
    return over recent episodes, and each role's policy loss and entropy."""
    runners = result.get(ENV_RUNNER_RESULTS, {})
    returns = runners.get(EPISODE_MODULE_RETURN_MEAN, {})
    learners = result.get(LEARNER_RESULTS, {})
    row = {"env_steps": float(runners.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0))}
    for role in LEARNERS:
        row[f"{role}_return"] = float(returns.get(role, float("nan")))
        stats = learners.get(role, {})
        row[f"{role}_policy_loss"] = float(stats.get("policy_loss", float("nan")))
        row[f"{role}_entropy"] = float(stats.get("entropy", float("nan")))
    return row


# ============================================================================ 4. evaluation
class ModulePolicy(Policy):
    """A trained RLModule on the arena's Policy interface: the action with the highest masked
    logit (deterministic)."""

    def __init__(self, module):
        super().__init__(None)
        self.module = module

    def act_tensor(self, vector, mask) -> int:
        legal = np.asarray(mask, bool)
        obs = {"observations": torch.as_tensor(np.asarray(vector, np.float32))[None],
               "action_mask": torch.as_tensor(legal.astype(np.float32))[None]}
        with torch.no_grad():
            logits = self.module.forward_inference({Columns.OBS: obs})[
                Columns.ACTION_DIST_INPUTS][0].numpy()
        return int(np.argmax(np.where(legal, logits, -np.inf)))


def load_modules(checkpoint: Path) -> dict[str, Any]:
    """Each learning role's RLModule, restored from the algorithm checkpoint (the learner's
    copy, the one PPO updates), the way a user would load a finished run."""
    root = checkpoint / COMPONENT_LEARNER_GROUP / COMPONENT_LEARNER / COMPONENT_RL_MODULE
    return {role: RLModule.from_checkpoint(root / role) for role in LEARNERS}


def evaluation_rows(modules: dict[str, Any], task: str, seeds: list[int]) -> list[dict]:
    """Whole matches on ``seeds`` for each matchup; roles not named play their scripted
    baseline. Learned roles act through ``ModulePolicy``; random ones draw a legal action."""
    learned = {role: ModulePolicy(m) for role, m in modules.items()}
    matchups: list[dict[str, str]] = [
        {}, {"investigator": "learned"}, {"investigator": "random"},
        {"fraudster": "learned"}, {"fraudster": "random"},
        {"investigator": "learned", "fraudster": "learned"},
    ]
    rows = []
    for players in matchups:
        def make(seed, players=players):
            return {role: learned[role] if who == "learned" else RandomPolicy(role, seed=seed)
                    for role, who in players.items()}

        res = evaluate(task, seeds, make)
        rows.append({"task": task, **{f"{r}_policy": players.get(r, "scripted") for r in ROLES},
                     "grader": res["grader"], **{f"{r}_return": res[r] for r in ROLES},
                     "steps": res["steps"], "legit_rejected": res["legit_rejected"]})
    return rows


# ============================================================================ 5. main
def main(argv=None) -> int:
    cfg = parse_args(argv)
    torch.set_num_threads(cfg.torch_threads)
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if cfg.address:
        ray.init(address=cfg.address)
    else:
        ray.init(num_cpus=cfg.num_cpus, include_dashboard=False)
    register_env(ENV_NAME, TwoLearnerEnv)
    algo = build_config(cfg).build_algo()
    log = []
    start = time.perf_counter()
    try:
        for i in range(cfg.iterations):
            row = iteration_log(algo.train())
            row["seconds"] = round(time.perf_counter() - start, 1)
            log.append(row)
            print(f"iter {i + 1:3d}/{cfg.iterations}  env steps {row['env_steps']:8.0f}  "
                  f"return fraudster {row['fraudster_return']:+6.2f}  investigator "
                  f"{row['investigator_return']:+6.2f}  ({row['seconds']:.0f} s)", flush=True)
        checkpoint = Path(algo.save_to_path(str(out / "checkpoint")))
        print(f"checkpoint: {checkpoint}")
    finally:
        algo.stop()
        ray.shutdown()
    (out / "train_log.json").write_text(json.dumps(
        {"config": dataclasses.asdict(cfg), "iterations": log}, indent=2))

    seeds = parse_seeds(cfg.eval_seeds)
    rows = evaluation_rows(load_modules(checkpoint), cfg.task, seeds)
    table = format_table(rows, len(seeds))
    print(table)
    (out / "eval.md").write_text(table + "\n")
    (out / "eval.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
