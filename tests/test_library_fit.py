"""FraudArena driven by the major RL libraries, a few hundred steps each, as their users would.

Each test is skipped when its library is not installed; CI installs them (the ``torchrl`` and
``tianshou`` extras in the main virtualenv, the ``rllib`` extra in a virtualenv of its own because
Ray pins another gymnasium; the RLlib test is marked ``rllib`` and runs with ``-m rllib``). Every
test plays with ``illegal_action="raise"`` (the default) unless it says otherwise, so a library
that ignored the action mask would fail on its first illegal action.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest

from fraudarena_env import fraudarena_v0
from fraudarena_env.env import INFO_KEYS
from fraudarena_env.wrappers import RenameObservationKey, shared_space_env

ROLES = ("fraudster", "investigator", "auditor")


# ----------------------------------------------------------------------------- Stable-Baselines3
class OneSeatForAll(gymnasium.Env):
    """The pattern of PettingZoo's SB3 action-masking tutorial: a gymnasium view of an AEC env in
    which one policy takes every turn (whoever's turn it is) and reads the mask through
    ``action_mask()``. It gives every agent the first agent's spaces, which is why it needs the
    shared-space wrapper."""

    def __init__(self, aec):
        self.aec = aec
        first = aec.possible_agents[0]
        self.observation_space = aec.observation_space(first)["observation"]
        self.action_space = aec.action_space(first)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.aec.reset(seed=seed, options=options)
        return self.aec.observe(self.aec.agent_selection)["observation"], {}

    def step(self, action):
        actor = self.aec.agent_selection
        self.aec.step(int(action))
        observation = self.aec.observe(self.aec.agent_selection)["observation"]
        return (observation, float(self.aec._cumulative_rewards[actor]),
                self.aec.terminations[actor], self.aec.truncations[actor],
                dict(self.aec.infos[actor]))

    def action_mask(self) -> np.ndarray:
        return self.aec.observe(self.aec.agent_selection)["action_mask"].astype(bool)


def test_sb3_maskable_ppo_self_play_recipe_through_the_shared_wrapper():
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.wrappers import ActionMasker

    env = ActionMasker(OneSeatForAll(shared_space_env(task_id="task_1")),
                       lambda e: e.action_mask())
    ends = []

    def count_ends(local_vars, _globals) -> bool:
        ends.extend(bool(d) for d in local_vars["dones"] if d)
        return True  # keep training

    model = MaskablePPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=0,
                        policy_kwargs={"net_arch": [32]}, verbose=0)
    model.learn(total_timesteps=384, callback=count_ends)
    assert model.num_timesteps >= 384
    assert len(ends) >= 2, "no match finished in 384 steps"
    obs, _ = env.reset(seed=5)
    action, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=True)
    assert env.action_masks()[int(action)]


def test_the_sb3_recipe_credits_each_step_with_the_actors_own_step_only():
    """What docs/libraries.md warns of: the recipe reads the actor's reward right after its own
    step, so what it earns while the others move (the fraudster's whole return, paid on the
    auditor's report) never reaches the learner."""
    view = OneSeatForAll(shared_space_env(task_id="task_3"))
    view.reset(seed=0)
    rng = np.random.default_rng(0)
    credited = dict.fromkeys(view.aec.possible_agents, 0.0)
    done = False
    while not done:
        actor = view.aec.agent_selection
        legal = np.flatnonzero(view.action_mask())
        _, reward, terminated, truncated, info = view.step(int(rng.choice(legal)))
        credited[actor] += reward
        done = terminated or truncated
    assert credited["fraudster"] == 0.0 != info["return_fraudster"]
    assert round(info["return_fraudster"], 2) == 10.31  # the figure docs/libraries.md quotes
    assert credited["investigator"] != info["return_investigator"]


# ----------------------------------------------------------------------------- TorchRL
@pytest.mark.parametrize("shared", [False, True], ids=["unchanged", "shared_space"])
def test_torchrl_pettingzoo_wrapper_passes_check_env_specs_and_rolls_out(shared):
    pytest.importorskip("torchrl")
    from torchrl.envs import PettingZooWrapper
    from torchrl.envs.utils import MarlGroupMapType, check_env_specs

    if shared:  # one space for all: the three roles can form one group
        aec = shared_space_env(task_id="task_3")
        group_map = MarlGroupMapType.ALL_IN_ONE_GROUP
    else:  # unchanged env: one group per role, each with its own spaces
        aec = fraudarena_v0.env(task_id="task_3")
        group_map = MarlGroupMapType.ONE_GROUP_PER_AGENT
    env = PettingZooWrapper(env=aec, use_mask=True, categorical_actions=True, seed=0,
                            group_map=group_map, return_state=True)
    check_env_specs(env, seed=0)
    rollout = env.rollout(300, break_when_any_done=False)  # random actions within the mask
    assert rollout.batch_size == (300,)
    assert rollout["state"].shape == (300, *aec.state_space.shape)  # for a centralised critic
    assert int(rollout["next", "done"].sum()) >= 2, "no match finished in 300 steps"
    group = "agents" if shared else "investigator"
    assert set(rollout["next", group, "info"].keys()) == set(INFO_KEYS)
    ended = rollout["next", "done"].squeeze(-1)
    graded = rollout["next", group, "info", "has_grader"][ended]
    assert bool(graded.all())


@pytest.mark.parametrize("mode", ["terminate", "raise"])
def test_torchrl_collector_without_a_policy_runs_in_terminate_mode(mode):
    """``Collector(policy=None)`` samples actions without the mask. With
    ``illegal_action="terminate"`` an illegal one ends the match (and the collector goes on to
    the next); with the default "raise" it stops the collector."""
    pytest.importorskip("torchrl")
    from torchrl.collectors import Collector
    from torchrl.envs import PettingZooWrapper

    from fraudarena_env import IllegalActionError

    env = PettingZooWrapper(env=fraudarena_v0.env(task_id="task_1", illegal_action=mode),
                            use_mask=True, categorical_actions=True, seed=0)
    collector = Collector(env, policy=None, frames_per_batch=50, total_frames=100)
    try:
        if mode == "raise":
            with pytest.raises(IllegalActionError):
                next(iter(collector))
            return
        frames = ends = 0
        for batch in collector:
            frames += batch.numel()
            ends += int(batch["next", "done"].sum())
        assert frames == 100 and ends >= 2
    finally:
        collector.shutdown()


# ----------------------------------------------------------------------------- Tianshou
def test_tianshou_collects_masked_random_play_into_a_replay_buffer():
    pytest.importorskip("tianshou")
    from tianshou.algorithm.multiagent.marl import MultiAgentOffPolicyAlgorithm
    from tianshou.algorithm.random import MARLRandomDiscreteMaskedOffPolicyAlgorithm
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv, PettingZooEnv

    def make():
        return PettingZooEnv(shared_space_env(task_id="task_1"))

    probe = make()
    players = MultiAgentOffPolicyAlgorithm(
        algorithms=[MARLRandomDiscreteMaskedOffPolicyAlgorithm(probe.action_space)
                    for _ in probe.agents], env=probe)
    buffer = VectorReplayBuffer(1000, 2)
    collector = Collector(players, DummyVectorEnv([make, make]), buffer)
    collector.reset()
    stats = collector.collect(n_step=300)
    assert stats.n_collected_steps >= 300 and stats.n_collected_episodes >= 2
    assert len(buffer) >= 300
    assert set(INFO_KEYS) <= set(buffer.info.keys())  # Tianshou adds its own env_id
    finished = buffer.terminated[:len(buffer)] | buffer.truncated[:len(buffer)]
    assert buffer.info.has_grader[:len(buffer)][finished].all()
    # What docs/libraries.md warns of: Tianshou's multi-agent algorithms give each agent its own
    # reward entry on its own steps only, and the end-of-match rewards arrive on the auditor's
    # report, so the fraudster's own steps carry none of its return.
    played = buffer[buffer.sample_indices(0)]
    actor = played.obs.agent_id
    fraudster, investigator = ROLES.index("fraudster"), ROLES.index("investigator")
    assert played.rew[:, fraudster].any()
    assert not played.rew[actor == "fraudster", fraudster].any()
    assert played.rew[actor == "auditor", investigator].any()


# ----------------------------------------------------------------------------- RLlib
@pytest.mark.rllib
def test_rllib_example_script_trains_one_iteration_and_evaluates(tmp_path):
    """``training/rllib_example.py`` (one role on RoleEnv) as a user runs it. It starts its own
    Ray runtime, so it runs before the tests below start theirs."""
    pytest.importorskip("ray.rllib")
    script = Path(__file__).resolve().parents[1] / "training" / "rllib_example.py"
    out = subprocess.run(
        [sys.executable, str(script), "--iterations", "1", "--train-batch", "200",
         "--minibatch", "100", "--epochs", "1", "--num-cpus", "1", "--eval-seeds", "1000-1001",
         "--out", str(tmp_path / "checkpoint")],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "iter   1/1" in out.stdout and "| learned |" in out.stdout, out.stdout[-2000:]


@pytest.fixture(scope="module")
def ray_runtime():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.rllib")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.rllib
@pytest.mark.parametrize("shared", [False, True], ids=["one_module_per_role", "one_shared_module"])
def test_rllib_ppo_with_action_masking_on_pettingzoo_env(ray_runtime, shared):
    """RLlib's ``PettingZooEnv`` takes per-agent spaces, so the unchanged env trains one masked
    module per role; through the shared-space wrapper, one module plays all three roles.
    RLlib's masking module reads the vector under ``"observations"``, hence the key rename."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.env.wrappers.pettingzoo_env import PettingZooEnv
    from ray.rllib.examples.rl_modules.classes.action_masking_rlm import (
        ActionMaskingTorchRLModule,
    )
    from ray.rllib.utils.metrics import ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME
    from ray.tune.registry import register_env

    def make(_config):
        aec = shared_space_env(task_id="task_1") if shared else fraudarena_v0.env(task_id="task_1")
        return PettingZooEnv(RenameObservationKey(aec, "observations"))

    name = f"fraudarena_rllib_{'shared' if shared else 'per_role'}"
    register_env(name, make)
    modules = ["shared"] if shared else list(ROLES)
    spec = MultiRLModuleSpec(rl_module_specs={m: RLModuleSpec(
        module_class=ActionMaskingTorchRLModule,
        model_config={"fcnet_hiddens": [32], "head_fcnet_hiddens": [16]}) for m in modules})
    config = (
        PPOConfig()
        # RLlib's pre-check steps one unmasked random action; with the default
        # illegal_action="raise" that is an error, which is the point of this test.
        .environment(name, disable_env_checking=True)
        .env_runners(num_env_runners=0)
        .multi_agent(policies=set(modules),
                     policy_mapping_fn=(lambda aid, *a, **k: "shared") if shared
                     else (lambda aid, *a, **k: aid))
        .training(train_batch_size_per_learner=300, minibatch_size=100, num_epochs=1)
        .rl_module(rl_module_spec=spec)
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        result = algo.train()
        assert result[ENV_RUNNER_RESULTS][NUM_ENV_STEPS_SAMPLED_LIFETIME] >= 300
        assert result[ENV_RUNNER_RESULTS]["num_episodes"] >= 2
    finally:
        algo.stop()
