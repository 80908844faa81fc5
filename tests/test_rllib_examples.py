"""RLlib's own example scripts, as the installed Ray ships them, run on FraudArena with only the
environment changed (docs/conventions.md, "RLlib's examples").

Each test copies the script out of ``ray/rllib/examples``, replaces the lines that build the
environment (every replaced line must be found exactly once, so a changed upstream script fails
here rather than running something else), and runs it for one training iteration
(``--no-tune --stop-iters=1``, command-line options the scripts take) with the scripts' own
training settings (PPO's 4000 steps a batch, 30 epochs; the independent-learning script trains
three models, which makes it the slowest RLlib test).
Marked ``rllib``: run in the RLlib virtualenv with ``-m rllib``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.rllib

REPO = Path(__file__).resolve().parents[1]
# (upstream line, replacement): the environment, and nothing else.
INDEPENDENT_LEARNING = [
    ("from pettingzoo.sisl import waterworld_v4\n",
     "from fraudarena_env.wrappers import rllib_multi_agent_env\n"),
    ('register_env("env", lambda _: PettingZooEnv(waterworld_v4.env()))',
     'register_env("env", lambda _: PettingZooEnv(rllib_multi_agent_env(task_id="task_1")))'),
    ('policies = {f"pursuer_{i}" for i in range(args.num_agents)}',
     'policies = {"fraudster", "investigator", "auditor"}'),
]
ACTION_MASKING = [
    ("from ray.rllib.examples.envs.classes.action_mask_env import ActionMaskEnv\n",
     "from fraudarena_env.wrappers import MaskedRoleEnv\n"),
    ("""            env=ActionMaskEnv,
            env_config={
                "action_space": Discrete(100),
                # This defines the 'original' observation space that is used in the
                # `RLModule`. The environment will wrap this space into a
                # `gym.spaces.Dict` together with an 'action_mask' that signals the
                # `RLModule` to adapt the action distribution inputs for the underlying
                # `DefaultPPORLModule`.
                "observation_space": Box(-1.0, 1.0, (5,)),
            },""",
     """            env=MaskedRoleEnv,
            env_config={"role": "investigator", "task_id": "task_1"},"""),
]
# One short iteration on two cores: small batches, no extra env-runner processes.
ONE_ITERATION = ["--no-tune", "--stop-iters=1", "--num-env-runners=0", "--num-cpus=2",
                 "--num-learners=0"]


def example_source(relative: str) -> str:
    examples = pytest.importorskip("ray.rllib.examples")
    path = Path(examples.__file__).parent / relative
    assert path.is_file(), f"the installed Ray has no {relative}"
    return path.read_text()


def with_environment_changed(source: str, replacements: list[tuple[str, str]]) -> str:
    for old, new in replacements:
        assert source.count(old) == 1, f"the upstream example changed; not found once: {old!r}"
        source = source.replace(old, new)
    return source


def run_script(source: str, tmp_path: Path, args: list[str]) -> subprocess.CompletedProcess:
    script = tmp_path / "example.py"
    script.write_text(source)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        RAY_DEDUP_LOGS="0", RAY_USAGE_STATS_ENABLED="0")
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=2400, cwd=tmp_path, env=env)


def test_pettingzoo_independent_learning_example_trains_on_fraudarena(tmp_path):
    source = with_environment_changed(
        example_source("multi_agent/pettingzoo_independent_learning.py"), INDEPENDENT_LEARNING)
    out = run_script(source, tmp_path, ["--num-agents=3", *ONE_ITERATION])
    assert out.returncode == 0, out.stderr[-4000:]
    assert "iter=0 R=" in out.stdout, out.stdout[-2000:]


def test_action_masking_rl_module_example_trains_on_fraudarena(tmp_path):
    source = with_environment_changed(
        example_source("rl_modules/action_masking_rl_module.py"), ACTION_MASKING)
    out = run_script(source, tmp_path, ONE_ITERATION)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "iter=0 R=" in out.stdout and "R(eval)=" in out.stdout, out.stdout[-2000:]
