"""``training/rllib_selfplay.py``: the investigator and the fraudster learning together on RLlib.

Marked ``rllib``: these run only with ``-m rllib`` in the virtualenv that has the ``rllib`` extra
(``.ci/run`` builds it as ``.venv-rllib``; Ray pins its own gymnasium). The default test run
deselects them, and without Ray they skip.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.rllib

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "rllib_selfplay.py"


@pytest.fixture(scope="module")
def selfplay():
    pytest.importorskip("ray.rllib")
    spec = importlib.util.spec_from_file_location("rllib_selfplay", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def play_masked_random(env, seed: int) -> tuple[dict, dict, dict]:
    """One match with a uniformly random legal action for whoever must move; returns the summed
    rewards, the last terminateds and the last infos."""
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    returns = dict.fromkeys(env.possible_agents, 0.0)
    while True:
        assert len(obs) == 1, "one agent moves at a time"
        (agent, observation), = obs.items()
        assert env.observation_spaces[agent].contains(observation)
        legal = np.flatnonzero(observation["action_mask"])
        obs, rewards, terminateds, truncateds, infos = env.step({agent: int(rng.choice(legal))})
        for role, r in rewards.items():
            returns[role] += r
        if terminateds["__all__"] or truncateds["__all__"]:
            return returns, terminateds, infos


def test_only_the_two_learners_move_and_the_scripted_auditor_plays_the_audit(selfplay):
    env = selfplay.TwoLearnerEnv({"task": "task_1"})
    _, terminateds, infos = play_masked_random(env, seed=3)
    assert set(terminateds) == {"fraudster", "investigator", "__all__"}
    assert all(terminateds.values())
    assert all(info["has_grader"] for info in infos.values())


def test_each_learner_receives_exactly_its_match_total(selfplay):
    env = selfplay.TwoLearnerEnv({"task": "task_3"})
    returns, _, infos = play_masked_random(env, seed=5)
    for role, total in returns.items():
        assert total == pytest.approx(infos[role][f"return_{role}"])


def test_one_tiny_iteration_trains_saves_and_evaluates_on_held_out_seeds(tmp_path):
    pytest.importorskip("ray.rllib")
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--iterations", "1", "--train-batch", "300",
         "--minibatch", "100", "--epochs", "1", "--hiddens", "32", "--num-cpus", "1",
         "--eval-seeds", "1000-1001", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "iter   1/1" in done.stdout, done.stdout[-2000:]

    checkpoint = out / "checkpoint" / "learner_group" / "learner" / "rl_module"
    assert (checkpoint / "fraudster").is_dir() and (checkpoint / "investigator").is_dir()
    log = json.loads((out / "train_log.json").read_text())["iterations"]
    assert len(log) == 1 and log[0]["env_steps"] >= 300
    assert all(math.isfinite(log[0][f"{r}_policy_loss"]) for r in ("fraudster", "investigator"))

    rows = json.loads((out / "eval.json").read_text())
    players = {(r["investigator_policy"], r["fraudster_policy"]) for r in rows}
    assert {("scripted", "scripted"), ("learned", "scripted"), ("scripted", "learned"),
            ("learned", "learned")} <= players
    for row in rows:
        assert 0.0 <= row["grader"] <= 1.0
        assert all(math.isfinite(row[f"{r}_return"]) for r in ("fraudster", "investigator"))
    assert (out / "eval.md").read_text() in done.stdout + "\n"
