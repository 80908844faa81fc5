"""The PettingZoo AEC env: API conformance, masks, episodes, determinism, the codec, the text
face, illegal actions and reward bookkeeping.

Run as a script (``python tests/test_env.py TASK EPISODES``) it prints the trajectory digest used
by the cross-process determinism test.
"""

from __future__ import annotations

import copy
import hashlib
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from fraudarena_env import IllegalActionError, fraudarena_v0
from fraudarena_env.env import END_REASONS, INFO_KEYS
from fraudarena_env.faces.encoding import N_ACTIONS, OBS_BOUND
from fraudarena_env.models import AdReviewAction, AuditorAction, FraudsterAction
from fraudarena_env.rules.action_catalog import A_SUBMIT
from fraudarena_env.rules.catalog import PHASES, TASK_IDS
from fraudarena_env.rules.errors import OutOfTurnError
from fraudarena_env.rules.scoring import ILLEGAL_PENALTY

AGENTS = ["fraudster", "investigator", "auditor"]
TASKS = list(TASK_IDS)
# Warnings PettingZoo's testers raise for any Dict-observation env with role-named agents.
EXPECTED_API_WARNINGS = ("Observation is not a NumPy array",
                         "Observation space for each agent probably should be",
                         "We recommend agents to be named",
                         "Agents have different observation space sizes",
                         "Observations are different shapes")


def _legal(mask: np.ndarray, rng: np.random.Generator) -> int:
    legal = np.flatnonzero(mask)
    return int(legal[rng.integers(len(legal))])


def play_random_episode(env, seed: int, rng: np.random.Generator, check=None) -> dict:
    """One masked-random episode on the wrapped env. ``check(env, agent, obs)`` runs before each
    live step. Returns per-agent sums of last() rewards and the number of live steps."""
    env.reset(seed=seed)
    returns = dict.fromkeys(AGENTS, 0.0)
    live = 0
    ended_at = None
    for agent in env.agent_iter():
        obs, reward, terminated, truncated, info = env.last()
        returns[agent] += reward
        if terminated or truncated:
            if ended_at is None:
                ended_at = live
                # every agent ends together
                assert all(env.terminations.values()) or all(env.truncations.values())
            env.step(None)
            continue
        if check is not None:
            check(env, agent, obs)
        env.step(_legal(obs["action_mask"], rng))
        live += 1
    assert env.agents == []
    return {"returns": returns, "steps": live}


# ----------------------------------------------------------------------------- PettingZoo tests
@pytest.mark.parametrize("task_id", TASKS)
def test_api_test(task_id):
    from pettingzoo.test import api_test

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api_test(fraudarena_v0.env(task_id=task_id), num_cycles=1000)
    unexpected = [str(w.message) for w in caught if "pettingzoo" in (w.filename or "")
                  and not str(w.message).startswith(EXPECTED_API_WARNINGS)]
    assert not unexpected, unexpected


@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_seed_test(task_id):
    from pettingzoo.test import seed_test

    seed_test(lambda: fraudarena_v0.env(task_id=task_id), num_cycles=500)


def test_render_test(capsys):
    from pettingzoo.test import render_test

    render_test(fraudarena_v0.raw_env)
    render_test(lambda render_mode=None: fraudarena_v0.raw_env(task_id="task_3",
                                                               render_mode=render_mode),
                custom_tests={"ansi": lambda text: "FraudArena task_3" in text})


# ----------------------------------------------------------------------------- spaces and config
def test_metadata_agents_and_spaces():
    env = fraudarena_v0.env()
    raw = env.unwrapped
    assert raw.metadata["name"] == "fraudarena_v0"
    assert raw.metadata["is_parallelizable"] is False
    assert raw.metadata["render_modes"] == ["ansi", "human"]
    assert env.possible_agents == AGENTS
    env.reset(seed=0)
    assert env.agents == AGENTS
    for agent in AGENTS:
        space = env.observation_space(agent)
        assert space is env.observation_space(agent)
        assert env.action_space(agent) is env.action_space(agent)
        assert env.action_space(agent).n == N_ACTIONS[agent]
        box, mask = space["observation"], space["action_mask"]
        assert box.dtype == np.float32 and mask.dtype == np.int8
        assert box.shape == (len(raw.observation_feature_names(agent)),)
        assert np.all(box.low == -OBS_BOUND) and np.all(box.high == OBS_BOUND)
        assert mask.shape == (N_ACTIONS[agent],)
        layout = raw.observation_layout(agent)
        assert sum(int(np.prod(shape)) for _, _, shape in layout) == box.shape[0]
        assert agent in raw.observation_layout(agent, as_text=True)
    # spaces are the same objects on every task: one policy trains across tasks
    other = fraudarena_v0.env(task_id="task_3_unseen")
    for agent in AGENTS:
        assert other.observation_space(agent) == env.observation_space(agent)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="task_id"):
        fraudarena_v0.env(task_id="task_9")
    with pytest.raises(ValueError, match="render_mode"):
        fraudarena_v0.env(render_mode="rgb_array")
    with pytest.raises(ValueError, match="illegal_action"):
        fraudarena_v0.env(illegal_action="ignore")
    with pytest.raises(ValueError, match="max_cycles"):
        fraudarena_v0.env(max_cycles=0)
    with pytest.raises(TypeError):
        fraudarena_v0.env(max_turns=3)
    with pytest.raises(ValueError, match="max_rounds"):  # named when built, not at reset
        fraudarena_v0.env(max_rounds=0)


def test_knobs_in_constructor_and_reset_options():
    env = fraudarena_v0.env(task_id="task_2", max_rounds=2, max_proposals=1)
    env.reset(seed=3)
    ref = env.unwrapped.referee
    assert (ref.task.task_id, ref.max_rounds, ref.max_proposals) == ("task_2", 2, 1)
    env.reset(seed=3, options={"task_id": "task_3", "max_rounds": 3,
                               "allowed_categories": ["saas", "fitness"]})
    assert (ref.task.task_id, ref.max_rounds, ref.max_proposals) == ("task_3", 3, 1)
    assert ref.allowed_categories == ("saas", "fitness")
    # options last one match; the constructor's values come back
    env.reset(seed=3)
    assert (ref.task.task_id, ref.max_rounds) == ("task_2", 2)
    # None, in the options as in the constructor, plays the task's default for that match
    env.reset(seed=3, options={"max_rounds": None})
    default = fraudarena_v0.env(task_id="task_2")
    default.reset(seed=3)
    assert ref.max_rounds == default.unwrapped.referee.max_rounds != 2
    assert ref.max_proposals == 1
    # pettingzoo's api_test probe key is ignored; any other unknown key is an error
    env.reset(seed=0, options={"options": 1})
    with pytest.raises(ValueError, match="max_turns"):
        env.reset(seed=0, options={"max_turns": 4})
    # a task_id of None plays the constructor's task, as None plays a knob's default
    env.reset(seed=3, options={"task_id": None})
    assert ref.task.task_id == "task_2"


@pytest.mark.parametrize("options", [["max_rounds"], "task_id", 3])
def test_reset_options_that_are_no_dict_are_named_as_such(options):
    """A string was read letter by letter ("unknown reset option(s) ['_', 'a', ...]"), a list
    failed inside the env ('list' object has no attribute 'get')."""
    env = fraudarena_v0.env(task_id="task_1")
    with pytest.raises(ValueError, match="options must be a dict of reset options"):
        env.reset(seed=0, options=options)


def test_an_unknown_agent_is_named_by_every_call_that_takes_an_agent():
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=0)
    calls = (env.observe, env.observation_space, env.action_space,
             env.unwrapped.observation_layout, env.unwrapped.role_observation)
    for call in calls:
        for agent in ("nobody", None, 3):
            with pytest.raises(ValueError, match=r"unknown agent .*; agents are \['fraudster'"):
                call(agent)


@pytest.mark.parametrize("bad", [dict(max_rounds=-5), dict(max_proposals="x"),
                                 dict(allowed_categories=["no_such_category"]),
                                 dict(illegal_reward=float("nan")), dict(illegal_reward="-1"),
                                 dict(max_cycles=0)])
def test_bad_settings_are_named_when_the_env_is_built_not_at_its_first_reset(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        fraudarena_v0.env(task_id="task_1", **bad)


def test_observe_is_cached_but_returns_fresh_arrays():
    env = fraudarena_v0.env(task_id="task_3")
    env.reset(seed=1)
    agent = env.agent_selection
    a, b = env.observe(agent), env.observe(agent)
    assert a["observation"] is not b["observation"]
    np.testing.assert_array_equal(a["observation"], b["observation"])
    np.testing.assert_array_equal(a["action_mask"], b["action_mask"])
    a["observation"][:] = 0
    a["action_mask"][:] = 0
    c = env.observe(agent)
    np.testing.assert_array_equal(c["observation"], b["observation"])
    np.testing.assert_array_equal(c["action_mask"], b["action_mask"])


def test_pickle_roundtrip():
    env = fraudarena_v0.raw_env(task_id="task_2", max_rounds=3, render_mode="ansi")
    clone = pickle.loads(pickle.dumps(env))
    clone.reset(seed=5)
    assert clone.referee.max_rounds == 3 and clone.render_mode == "ansi"


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_of_a_live_env_plays_on_exactly_as_the_original(how):
    """Branching a rollout: a deep copy or a pickle round trip mid-match keeps the match, and
    the same actions then give the same observations, rewards and record in both."""
    env = fraudarena_v0.env(task_id="task_3")
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(40):
        env.step(_legal(env.observe(env.agent_selection)["action_mask"], rng))
    twin = copy.deepcopy(env) if how == "deepcopy" else pickle.loads(pickle.dumps(env))
    assert twin.agent_selection == env.agent_selection
    trails = []
    for e in (env, twin):
        rng, trail = np.random.default_rng(1), []
        for agent in e.agent_iter():
            obs, reward, terminated, truncated, _ = e.last()
            trail.append((agent, obs["observation"].tobytes(), reward))
            e.step(None if terminated or truncated else _legal(obs["action_mask"], rng))
        trails.append((trail, e.unwrapped.referee.state.model_dump_json()))
    assert trails[0] == trails[1] and len(trails[0][0]) > 20


_PICKLE_A_LIVE_MATCH = """
import sys, numpy as np
from fraudarena_env import fraudarena_v0
env = fraudarena_v0.env(task_id="task_3")
env.reset(seed=0)
rng = np.random.default_rng(0)
for _ in range(30):
    mask = env.observe(env.agent_selection)["action_mask"]
    env.step(int(rng.choice(np.flatnonzero(mask))))
assert not env.unwrapped.match_over
env.unwrapped.role_observation("fraudster")  # the text face has read the match too
sys.stdout.buffer.write(__import__("pickle").dumps(env))
"""
_RESET_IT_AND_COMPARE = """
import pickle, sys
from fraudarena_env import fraudarena_v0
env = pickle.loads(sys.stdin.buffer.read())
env.reset(seed=5)  # this process's first reset of a referee
fresh = fraudarena_v0.env(task_id="task_3")
fresh.reset(seed=5)
for agent in fresh.possible_agents:
    ours, theirs = env.observe(agent), fresh.observe(agent)
    assert (ours["observation"] == theirs["observation"]).all(), agent
    assert (ours["action_mask"] == theirs["action_mask"]).all(), agent
    assert env.unwrapped.role_observation(agent) == fresh.unwrapped.role_observation(agent)
print("same")
"""


def test_a_live_env_pickled_into_another_process_observes_its_next_match_afresh():
    """Handing a live match to another process: its observers and text once kept the old
    match's reading after the next reset there, when that reset's number (a per-process
    counter) equalled the one they had read (stale vectors, masks and logs)."""
    root = Path(__file__).resolve().parents[1]
    pickled = subprocess.run([sys.executable, "-c", _PICKLE_A_LIVE_MATCH], cwd=root,
                             capture_output=True, timeout=300, check=True).stdout
    out = subprocess.run([sys.executable, "-c", _RESET_IT_AND_COMPARE], input=pickled, cwd=root,
                         capture_output=True, timeout=300)
    assert out.returncode == 0 and out.stdout.decode().strip() == "same", out.stderr.decode()


# ----------------------------------------------------------------------------- episodes and masks
def _step_checks(env, agent, obs):
    space = env.observation_space(agent)
    assert space.contains(obs), f"{agent} observation outside its space"
    mask = obs["action_mask"]
    assert mask.dtype == np.int8 and mask.sum() >= 1
    assert agent == env.unwrapped.referee.current_role
    reference = env.unwrapped.referee.legal_mask(agent)
    np.testing.assert_array_equal(mask, reference)
    built = env.unwrapped.observation_spaces  # the spaces built once, in __init__
    assert space is built[agent], f"{agent}'s observation space was rebuilt during play"
    for other in AGENTS:
        if other != agent:
            other_obs = env.observe(other)
            assert env.observation_space(other) is built[other] and built[other] is not space
            assert env.observation_space(other).contains(other_obs)
            assert not other_obs["action_mask"].any(), f"{other} has a mask out of turn"


@pytest.mark.parametrize("task_id", TASKS)
def test_every_step_in_space_with_one_acting_mask(task_id):
    env = fraudarena_v0.env(task_id=task_id)
    rng = np.random.default_rng(11)
    for seed in range(5):
        play_random_episode(env, seed, rng, check=_step_checks)


def _many_episodes(task_id: str, n: int) -> None:
    env = fraudarena_v0.env(task_id=task_id)
    rng = np.random.default_rng(TASKS.index(task_id))
    ref = env.unwrapped.referee
    max_cycles = env.unwrapped.max_cycles
    for seed in range(n):
        out = play_random_episode(env, seed, rng)
        assert ref.done, "episode did not reach the end of the match"
        assert out["steps"] < max_cycles * len(AGENTS)
        for i, agent in enumerate(AGENTS):
            assert out["returns"][agent] == pytest.approx(ref.totals[i], abs=1e-9)


@pytest.mark.parametrize("task_id", TASKS)
def test_1000_random_episodes(task_id):
    # about 4 s per task here; move under @pytest.mark.slow (keeping a 100-episode run in the
    # default suite) if the four together ever take more than a minute
    _many_episodes(task_id, 1000)


def test_observations_do_not_depend_on_when_they_are_read():
    """Reading observations every step, or only now and then, gives the same vectors as an
    observer filled from scratch."""
    from fraudarena_env.faces.encoding import Observer

    for task_id in ("task_1", "task_3"):
        eager, lazy = fraudarena_v0.env(task_id=task_id), fraudarena_v0.env(task_id=task_id)
        rng = np.random.default_rng(8)
        eager.reset(seed=6)
        lazy.reset(seed=6)
        k = 0
        while not eager.unwrapped.match_over:
            agent = eager.agent_selection
            obs = {a: eager.observe(a) for a in AGENTS}
            i = _legal(obs[agent]["action_mask"], rng)
            np.testing.assert_array_equal(lazy.observe(agent)["action_mask"],
                                          obs[agent]["action_mask"])
            if k % 7 == 0:
                for a in AGENTS:
                    fresh = Observer(a).fill(lazy.unwrapped.referee)
                    np.testing.assert_array_equal(lazy.observe(a)["observation"], fresh)
                    np.testing.assert_array_equal(obs[a]["observation"], fresh)
            eager.step(i)
            lazy.step(i)
            k += 1
        for a in AGENTS:
            fresh = Observer(a).fill(lazy.unwrapped.referee)
            np.testing.assert_array_equal(lazy.observe(a)["observation"], fresh)
            np.testing.assert_array_equal(eager.observe(a)["observation"], fresh)


def test_all_agents_terminate_together_with_the_end_in_infos():
    env = fraudarena_v0.env(task_id="task_3")
    rng = np.random.default_rng(0)
    env.reset(seed=4)
    seen_end = seen_audit = False
    for _agent in env.agent_iter():
        obs, reward, terminated, truncated, info = env.last()
        assert type(terminated) is bool and type(truncated) is bool
        if terminated:
            if not seen_end:
                assert all(env.terminations[a] for a in env.agents)
                assert len(env.agents) == 3
                seen_end = True
            assert END_REASONS[info["end_reason"]] in ("max_rounds", "budget_exhausted",
                                                       "all_decided", "commit_final")
            assert info["phase"] == PHASES.index("done")
            assert info["has_grader"] is True and 0.0 <= info["grader_score"] <= 1.0
            ref = env.unwrapped.referee
            assert info["grader_score"] == ref.grader_score
            assert [info[f"return_{a}"] for a in AGENTS] == ref.totals
            assert not obs["action_mask"].any()
            env.step(None)
        else:
            play_over = info["phase"] >= PHASES.index("audit_phase")
            assert (info["end_reason"] >= 0) is play_over and info["has_grader"] is play_over
            if not play_over:
                assert info["grader_score"] == 0.0
            seen_audit = seen_audit or play_over
            env.step(_legal(obs["action_mask"], rng))
    assert seen_end and seen_audit and env.agents == []


@pytest.mark.parametrize("max_cycles", [None, 2])
def test_infos_have_the_same_numeric_keys_on_every_step(max_cycles):
    """Libraries that stack infos into tensors (TorchRL) or buffers (Tianshou) need one key set
    and numbers only, from reset through the dead steps, truncated or not."""
    cfg = {} if max_cycles is None else {"max_cycles": max_cycles}
    env = fraudarena_v0.env(task_id="task_3", **cfg)
    rng = np.random.default_rng(2)
    env.reset(seed=8)
    types = {"phase": int, "round": int, "end_reason": int, "has_grader": bool,
             "grader_score": float, **{f"return_{a}": float for a in AGENTS}}
    assert tuple(types) == INFO_KEYS
    steps = 0
    for _agent in env.agent_iter():
        for a in env.agents:
            info = env.infos[a]
            assert {k: type(v) for k, v in info.items()} == types, (a, info)
            assert all(np.isfinite(v) for v in info.values()), info
        obs, reward, terminated, truncated, info = env.last()
        steps += 1
        env.step(None if terminated or truncated else _legal(obs["action_mask"], rng))
    assert steps > 3  # the loop really ran, dead steps included


def test_match_summary_says_in_words_what_infos_say_in_numbers():
    env = fraudarena_v0.env(task_id="task_2")
    rng = np.random.default_rng(1)
    play_random_episode(env, 3, rng)
    raw = env.unwrapped
    summary = raw.match_summary()
    ref = raw.referee
    assert summary["task_id"] == "task_2" and summary["match_id"] == ref.match_id
    assert summary["phase"] == "done" and summary["end_reason"] == ref.end_reason
    assert summary["grader_score"] == ref.grader_score and summary["grader_terms"]
    assert summary["returns"] == dict(zip(AGENTS, ref.totals))
    env.reset(seed=3)
    fresh = raw.match_summary()
    assert fresh["end_reason"] is None and fresh["grader_score"] is None
    with pytest.raises(RuntimeError, match="reset"):
        fraudarena_v0.raw_env().match_summary()


def test_reward_bookkeeping_matches_referee_totals():
    env = fraudarena_v0.env(task_id="task_3")
    rng = np.random.default_rng(3)
    for seed in range(10):
        out = play_random_episode(env, seed, rng)
        ref = env.unwrapped.referee
        for i, agent in enumerate(AGENTS):
            assert out["returns"][agent] == pytest.approx(ref.totals[i], abs=1e-9)
        state = ref.state
        assert [state.fraudster_reward, state.investigator_reward, state.auditor_reward] == \
            pytest.approx([out["returns"][a] for a in AGENTS], abs=1e-9)


@pytest.mark.parametrize("max_cycles", [1, 5])
def test_max_cycles_counts_cycles_of_one_step_per_agent(max_cycles):
    env = fraudarena_v0.env(task_id="task_3", max_cycles=max_cycles)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    steps = 0
    dead_steps = dict.fromkeys(AGENTS, 0)
    for agent in env.agent_iter():
        obs, reward, terminated, truncated, info = env.last()
        assert type(truncated) is bool
        if truncated or terminated:
            assert truncated and not terminated
            assert steps == max_cycles * len(AGENTS)
            assert all(env.truncations.values())
            assert END_REASONS[info["end_reason"]] == "max_cycles"
            assert info["has_grader"] is False
            dead_steps[agent] += 1
            env.step(None)
            continue
        env.step(_legal(obs["action_mask"], rng))
        steps += 1
    assert env.agents == [] and dead_steps == dict.fromkeys(AGENTS, 1)
    assert env.unwrapped.match_summary()["end_reason"] == "max_cycles"
    assert "play truncated: max_cycles" in env.unwrapped._render_text()


def test_unseeded_resets_follow_the_seeded_one():
    def run():
        env = fraudarena_v0.env(task_id="task_2")
        env.reset(seed=21)
        ids = []
        for _ in range(3):
            env.reset()
            ids.append(env.unwrapped.referee.match_id)
        return ids

    first = run()
    assert first == run() and len(set(first)) == 3
    env = fraudarena_v0.env()
    env.reset()  # no seed at all: works, some match
    assert env.agents == AGENTS


@pytest.mark.parametrize("options", [{"max_rounds": 0}, {"task_id": "task_9"},
                                     {"allowed_categories": ["no_such_category"]}])
def test_a_refused_reset_leaves_the_match_and_the_seed_stream_as_they_were(options):
    def run(refuse: bool):
        env = fraudarena_v0.env(task_id="task_2")
        env.reset(seed=21)
        env.step(_legal(env.observe("fraudster")["action_mask"], np.random.default_rng(0)))
        before = (env.agent_selection, env.observe(env.agent_selection)["observation"].tobytes())
        if refuse:
            with pytest.raises(ValueError):
                env.reset(options=options)
            assert (env.agent_selection,
                    env.observe(env.agent_selection)["observation"].tobytes()) == before
        env.reset()
        return env.unwrapped.referee.match_id

    assert run(refuse=True) == run(refuse=False)


# ----------------------------------------------------------------------------- determinism
def trajectory_digest(task_id: str, episodes: int) -> str:
    """Hash of everything an episode exposes: observations, masks, rewards, terminations,
    truncations, infos, and at the end the text face, the rendered table and the state."""
    env = fraudarena_v0.env(task_id=task_id, render_mode="ansi")
    raw = env.unwrapped
    rng = np.random.default_rng(1234)
    h = hashlib.sha256()
    for seed in range(episodes):
        env.reset(seed=seed)
        for agent in env.agent_iter():
            obs, reward, terminated, truncated, info = env.last()
            h.update(agent.encode())
            h.update(obs["observation"].tobytes())
            h.update(obs["action_mask"].tobytes())
            h.update(repr((reward, terminated, truncated, sorted(info.items()))).encode())
            if terminated or truncated:
                action = None
            else:
                action = _legal(obs["action_mask"], rng)
                h.update(raw.role_observation(agent).model_dump_json().encode())
            env.step(action)
        h.update(env.render().encode())
        h.update(raw.referee.state.model_dump_json().encode())
    return h.hexdigest()


def test_determinism_across_processes():
    script = Path(__file__).resolve()
    digests = []
    for hashseed in ("0", "4242"):
        envvars = dict(os.environ, PYTHONHASHSEED=hashseed)
        out = subprocess.run([sys.executable, str(script), "task_3", "3"], env=envvars,
                             capture_output=True, text=True, timeout=300, check=True)
        digests.append(out.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1]
    assert digests[0] == trajectory_digest("task_3", 3)


def test_same_seed_same_match_different_seed_different_match():
    a, b = fraudarena_v0.env(task_id="task_3"), fraudarena_v0.env(task_id="task_3")
    a.reset(seed=9)
    b.reset(seed=9)
    np.testing.assert_array_equal(a.observe("fraudster")["observation"],
                                  b.observe("fraudster")["observation"])
    b.reset(seed=10)
    assert a.unwrapped.referee.match_id != b.unwrapped.referee.match_id


# ----------------------------------------------------------------------------- codec, text face
def test_codec_roundtrip_on_every_legal_index_seen():
    seen: dict[str, set[int]] = {a: set() for a in AGENTS}

    def collect(env, agent, obs):
        seen[agent].update(np.flatnonzero(obs["action_mask"]).tolist())

    for task_id in TASKS:
        env = fraudarena_v0.env(task_id=task_id)
        rng = np.random.default_rng(5)
        for seed in range(3):
            play_random_episode(env, seed, rng, check=collect)
    raw = env.unwrapped
    for agent, indices in seen.items():
        assert indices
        for i in sorted(indices):
            model = raw.decode_action(agent, i)
            assert raw.encode_action(agent, model) == i, (agent, i, model)
            assert raw.encode_action(agent, model.model_dump(exclude_none=True)) == i


def test_a_stated_confidence_encodes_to_the_nearest_bucket():
    from fraudarena_env.rules.catalog import nearest_bucket

    assert [nearest_bucket(c) for c in (0.0, 0.6, 0.65, 0.7, 0.85, 1.0)] == \
        [0.55, 0.55, 0.55, 0.75, 0.75, 0.95]  # 0.65 is halfway: the lower bucket
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=0)
    raw = env.unwrapped
    verdict = {"action_type": "verdict", "ad_id": raw.referee.ad_id(
        int(raw.referee.present.nonzero()[0][0])), "verdict": "reject"}
    assert raw.encode_action("investigator", {**verdict, "confidence": 0.9}) == \
        raw.encode_action("investigator", {**verdict, "confidence": 0.95})


def test_encode_returns_none_for_free_text():
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=0)
    raw = env.unwrapped
    assert raw.encode_action("fraudster", FraudsterAction(
        action_type="propose_ad", category="fitness", ad_copy="Join our gym today")) is None
    assert raw.encode_action("investigator", AdReviewAction(
        action_type="verdict", ad_id="ad_001", verdict="reject", confidence=0.95,
        rationale="payment method is a prepaid card")) is None
    assert raw.encode_action("auditor", AuditorAction(
        action_type="flag_investigator", flag_type="bias", note="always rejects")) is None
    i = raw.encode_action("investigator", {"action_type": "end_turn"})
    assert raw.decode_action("investigator", i) == AdReviewAction(action_type="end_turn")
    with pytest.raises(ValueError):
        raw.decode_action("investigator", N_ACTIONS["investigator"])
    with pytest.raises(IllegalActionError):
        raw.encode_action("investigator", {"action_type": "dance"})


@pytest.mark.parametrize("agent", ["Investigator", "judge", ["auditor"]])
def test_the_codec_and_role_observations_name_the_agents_for_an_unknown_one(agent):
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=0)
    raw = env.unwrapped
    for ask in (lambda: raw.role_observation(agent), lambda: raw.decode_action(agent, 0),
                lambda: raw.encode_action(agent, {"action_type": "end_turn"})):
        with pytest.raises(ValueError, match="fraudster.*investigator.*auditor"):
            ask()


def _trajectory(task_id: str, seed: int, face: str) -> list:
    env = fraudarena_v0.env(task_id=task_id)
    raw = env.unwrapped
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    out = []
    for k, agent in enumerate(env.agent_iter()):
        obs, reward, terminated, truncated, info = env.last()
        out.append((agent, obs["observation"].tobytes(), obs["action_mask"].tobytes(), reward,
                    terminated, truncated, repr(sorted(info.items()))))
        if terminated or truncated:
            env.step(None)
            continue
        i = _legal(obs["action_mask"], rng)
        if face == "index":
            env.step(np.int64(i) if k % 2 else i)
        else:
            model = raw.decode_action(agent, i)
            env.step(model if k % 2 else model.model_dump(exclude_none=True))
    out.append(raw.referee.state.model_dump_json())
    return out


@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_models_drive_the_same_trajectory_as_indices(task_id):
    for seed in (0, 1):
        assert _trajectory(task_id, seed, "model") == _trajectory(task_id, seed, "index")


def test_free_text_is_honoured():
    env = fraudarena_v0.env(task_id="task_1")
    raw = env.unwrapped
    env.reset(seed=2)
    assert env.agent_selection == "fraudster"
    copy = "Spin classes for all levels at our downtown studio"
    env.step({"action_type": "propose_ad", "category": "fitness", "ad_copy": copy})
    ref = raw.referee
    slot = ref.proposal_slots[-1]
    assert ref.copy[slot] == copy
    # the investigator reads it once its turn begins (not while the fraudster moves)
    assert copy not in raw.role_observation("investigator").model_dump_json()
    env.step({"action_type": "end_turn"})
    assert env.agent_selection == "investigator"
    assert copy in raw.role_observation("investigator").model_dump_json()


def _scribble(value) -> None:
    """Overwrite every leaf of a nested structure of dicts and lists, in place."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, leaf in list(items):
        if isinstance(leaf, (dict, list)):
            _scribble(leaf)
        else:
            value[key] = "scribbled"


def test_changing_an_observation_or_the_state_leaves_the_match_alone():
    """A caller may edit what it is handed (trim a log for a prompt, round the grader's terms):
    every role observation, the state and the episode record are its own copies."""
    env = fraudarena_v0.env(task_id="task_3")
    raw = env.unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    while raw.referee.phase != "audit_phase":
        env.step(_legal(env.observe(env.agent_selection)["action_mask"], rng))
    env.step(0)  # a flag, so the auditor's log has an entry too

    def everything() -> list:
        return [*(raw.role_observation(a).model_dump_json() for a in AGENTS),
                raw.referee.state.model_dump_json(), repr(raw.referee.episode_record()),
                repr(raw.match_summary())]

    before = everything()
    for agent in AGENTS:
        _scribble(dict(raw.role_observation(agent)))  # the model's own lists and dicts
    _scribble(dict(raw.referee.state))
    _scribble(raw.referee.episode_record())
    assert everything() == before


def test_changing_the_final_states_audit_report_leaves_the_match_alone():
    """The state's audit_report was the referee's own: its flags the very dicts of the
    auditor's flags, so scribbling on a finished match's state rewrote its record."""
    env = fraudarena_v0.env(task_id="task_3", render_mode="ansi")
    raw = env.unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    while raw.referee.phase != "audit_phase":
        env.step(_legal(env.observe(env.agent_selection)["action_mask"], rng))
    env.step(0)  # a flag
    env.step({"action_type": "submit_audit_report", "audit_report": {
        "notes": "mine", "track_a_flags": [{"track": "A", "flag_type": "bias"}]}})
    assert raw.referee.state.audit_report["track_a_flags"]  # the flag is in the report

    def everything() -> list:
        return [*(raw.role_observation(a).model_dump_json() for a in AGENTS),
                raw.referee.state.model_dump_json(), env.render()]

    before = everything()
    _scribble(raw.referee.state.audit_report)
    assert everything() == before


# ----------------------------------------------------------------------------- illegal actions
def _state(env) -> str:
    raw = env.unwrapped
    return raw.referee.state.model_dump_json() + repr(
        (env.agent_selection, env.rewards, env._cumulative_rewards, env.terminations,
         raw.observe(env.agent_selection)["observation"].tobytes()))


@pytest.mark.parametrize("error", [IllegalActionError("investigator", 7, "ad_003 is decided"),
                                   OutOfTurnError("auditor", {"action_type": "x"}, "not yet")])
def test_an_illegal_action_error_survives_the_pickle_a_worker_process_sends(error):
    """A worker (gymnasium's AsyncVectorEnv, SB3's SubprocVecEnv) pickles the error to raise it
    in the parent; unpickling it was a TypeError (missing 'action' and 'reason')."""
    copy_ = pickle.loads(pickle.dumps(error))
    assert type(copy_) is type(error) and str(copy_) == str(error)
    assert (copy_.agent, copy_.action, copy_.reason) == (error.agent, error.action, error.reason)


def test_illegal_index_raises_and_retry_works():
    env = fraudarena_v0.env(task_id="task_3")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    # move on to the investigator, whose mask has many illegal entries
    while env.agent_selection != "investigator":
        env.step(_legal(env.observe(env.agent_selection)["action_mask"], rng))
    agent = env.agent_selection
    mask = env.observe(agent)["action_mask"]
    bad = int(np.flatnonzero(mask == 0)[0])
    before = _state(env)
    with pytest.raises(IllegalActionError) as err:
        env.step(bad)
    assert err.value.agent == agent and err.value.action == bad and err.value.reason
    assert str(bad) in str(err.value) and agent in str(err.value)
    assert _state(env) == before
    n = N_ACTIONS[agent]
    bad_inputs = [n, -1, np.int32(n), 1.5, "3", None, [1], True,
                  {"action_type": "investigate"},  # fails validation
                  {"action_type": "investigate", "ad_id": "ad_999",
                   "investigation_target": "landing_page"},  # unknown ad
                  FraudsterAction(action_type="end_turn"),  # another role's model
                  AdReviewAction(action_type="link_accounts", ad_id="ad_001",
                                 linked_ad_id="ad_001x")]
    for action in bad_inputs:
        with pytest.raises(IllegalActionError) as err:
            env.step(action)
        assert err.value.agent == agent, action
        assert _state(env) == before, action
    good = _legal(mask, rng)
    env.step(good)
    assert _state(env) != before


def test_a_refusal_quotes_an_excerpt_of_a_long_action_not_all_of_it():
    """An LLM's oversized ad copy (or a model of another role full of text) is refused with a
    message short enough to hand back to it: the reason and the start of the action; the whole
    action stays on the error's ``action``."""
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=0)
    for action in ({"action_type": "propose_ad", "category": "fitness", "ad_copy": "buy " * 50_000},
                   AdReviewAction(action_type="verdict", ad_id="ad_001", verdict="reject",
                                  rationale="r" * 2000)):
        with pytest.raises(IllegalActionError) as err:
            env.step(action)
        assert err.value.action is action and err.value.reason in str(err.value)
        assert len(str(err.value)) < len(err.value.reason) + 400


@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_every_index_the_mask_leaves_out_is_refused_and_changes_nothing(task_id):
    """The mask is the whole truth about indices: any index it leaves out, in any phase, raises
    and leaves the match as it was (a sample of them at every step of a random match, and in
    the audit phase every flag already raised, which the text face still takes)."""
    rng = np.random.default_rng(3)
    refused = []

    def refuse_what_the_mask_leaves_out(env, agent, obs):
        mask = obs["action_mask"]
        out = np.flatnonzero(mask == 0)
        sample = rng.choice(out, min(6, len(out)), replace=False).tolist()
        if agent == "auditor" and env.unwrapped.referee.auditor_actions > 0:
            sample += np.flatnonzero(mask[:A_SUBMIT] == 0).tolist()
        before = _state(env)
        for index in sample:
            with pytest.raises(IllegalActionError):
                env.step(index)
            refused.append(index)
        assert _state(env) == before

    play_random_episode(fraudarena_v0.env(task_id=task_id), 3, rng,
                        refuse_what_the_mask_leaves_out)
    assert len(refused) > 100


def test_a_repeated_flag_is_refused_by_index_in_every_mode_and_taken_as_text():
    """The auditor's mask leaves out a flag once raised (it can earn nothing more): by index it
    is refused like any masked action (raise: unchanged; penalize: charged; terminate: the match
    ends), while the text face answers it and counts it once, as the lineage's clients expect."""
    def at_the_audit(mode):
        env = fraudarena_v0.env(task_id="task_1", illegal_action=mode)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        while env.agent_selection != "auditor":
            env.step(_legal(env.observe(env.agent_selection)["action_mask"], rng))
        env.step(0)  # flag_investigator / miscalibration on the match
        assert env.observe("auditor")["action_mask"][0] == 0
        return env

    env = at_the_audit("raise")
    before = _state(env)
    with pytest.raises(IllegalActionError, match="already raised"):
        env.step(0)
    assert _state(env) == before
    text = env.unwrapped.referee.step_as_auditor(
        {"action_type": "flag_investigator", "flag_type": "miscalibration"})
    assert "already raised" in text.feedback and env.unwrapped.referee.step_rewards[2] == 0.0

    env = at_the_audit("penalize")
    flags = env.unwrapped.referee.auditor_actions
    env.step(0)
    assert env.rewards["auditor"] == ILLEGAL_PENALTY
    assert env.unwrapped.referee.auditor_actions == flags + 1

    env = at_the_audit("terminate")
    env.step(0)
    assert all(env.terminations.values())
    assert env.rewards["auditor"] < 0 and END_REASONS[env.infos["auditor"]["end_reason"]] == "illegal_action"


def test_out_of_turn_model_is_illegal():
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=0)
    assert env.agent_selection == "fraudster"
    before = _state(env)
    with pytest.raises(IllegalActionError):
        env.step(AuditorAction(action_type="submit_audit_report"))
    assert _state(env) == before


@pytest.mark.parametrize("action", [AuditorAction(action_type="submit_audit_report"),
                                    AdReviewAction(action_type="end_turn"),
                                    {"action_type": "verdict", "ad_id": "ad_001",
                                     "verdict": "approve"}])
def test_another_roles_action_is_named_as_such_and_changes_nothing(action):
    """A model or a dict whose action_type only another role has: the error says whose action it
    is and whose turn, not a literal error about action_type."""
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=0)
    before = _state(env)
    with pytest.raises(IllegalActionError, match="action, and it is the fraudster's turn: send "
                                                 "a FraudsterAction"):
        env.step(action)
    assert _state(env) == before
    env.step({"action_type": "end_turn"})  # shared by both roles: taken as this role's


def test_an_unknown_category_names_the_one_meant():
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=0)
    before = _state(env)
    with pytest.raises(IllegalActionError, match="did you mean 'ecommerce'"):
        env.step({"action_type": "propose_ad", "category": "Ecommerce", "tactic": "subtle"})
    with pytest.raises(IllegalActionError, match="allowed_categories"):
        env.step({"action_type": "propose_ad", "category": "weapons", "tactic": "subtle"})
    assert _state(env) == before


def test_an_action_for_a_finished_agent_is_an_illegal_action_saying_to_step_none():
    """docs/env.md's loop catches IllegalActionError; PettingZoo's own error for this mistake is
    a bare ValueError (IllegalActionError is one too)."""
    env = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=0)
    while not (env.terminations[env.agent_selection] or env.truncations[env.agent_selection]):
        env.step(int(np.flatnonzero(env.observe(env.agent_selection)["action_mask"])[0]))
    agent = env.agent_selection
    with pytest.raises(IllegalActionError, match=r"terminated: its one step left is "
                                                 r"env.step\(None\)"):
        env.step({"action_type": "end_turn"})
    assert env.agent_selection == agent and agent in env.agents
    env.step(None)


@pytest.mark.parametrize("action", [0, {"action_type": "end_turn"}, None])
def test_the_bare_env_says_to_reset_when_no_match_is_under_way(action):
    """Before the first reset, and once every agent has stepped out of a finished match, a step
    on the bare env says to call reset() (it was an AttributeError and a KeyError)."""
    env = fraudarena_v0.raw_env(task_id="task_1")
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step(action)
    env.reset(seed=0)
    while env.agents:
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            env.step(None)
        else:
            env.step(int(np.flatnonzero(env.observe(agent)["action_mask"])[0]))
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step(action)


@pytest.mark.parametrize("call", [lambda env: env.observe("investigator"),
                                  lambda env: env.role_observation("auditor"),
                                  lambda env: env.state(), lambda env: env.match_summary()])
def test_reading_the_bare_env_before_its_first_reset_says_to_call_reset(call):
    """observe() was an AttributeError ('Referee' object has no attribute 'epoch'), and
    role_observation() told an env user to call the referee's reset_match()."""
    env = fraudarena_v0.raw_env(task_id="task_1")
    with pytest.raises(RuntimeError, match=r"no match yet: call reset\(\) before"):
        call(env)


def test_penalize_mode_charges_and_moves_on():
    env = fraudarena_v0.env(task_id="task_3", illegal_action="penalize")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    while env.agent_selection != "investigator":
        env.step(_legal(env.observe(env.agent_selection)["action_mask"], rng))
    ref = env.unwrapped.referee
    steps, acted = ref.step_count, ref.actions_this_turn
    bad = int(np.flatnonzero(env.observe("investigator")["action_mask"] == 0)[0])
    env.step(bad)
    assert env.rewards["investigator"] == ILLEGAL_PENALTY
    assert ref.step_count == steps + 1 and ref.actions_this_turn == acted + 1
    assert ref.totals[1] == pytest.approx(ILLEGAL_PENALTY + sum(
        e.get("reward", 0.0) for e in ref.investigator_log[:-1]))
    # out-of-range indices and invalid models are charged too
    for action in (N_ACTIONS["investigator"] + 3, {"action_type": "verdict", "ad_id": "ad_001"}):
        if env.agent_selection != "investigator":
            break
        before = ref.step_count
        env.step(action)
        assert ref.step_count == before + 1
        assert env.rewards["investigator"] == ILLEGAL_PENALTY
    # non-integers are never actions, whatever the mode
    with pytest.raises(IllegalActionError):
        env.step("end_turn")


@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_unmasked_random_play_ends_in_penalize_mode(task_id):
    env = fraudarena_v0.env(task_id=task_id, illegal_action="penalize", max_cycles=1000)
    rng = np.random.default_rng(0)
    for seed in range(3):
        env.reset(seed=seed)
        returns = dict.fromkeys(AGENTS, 0.0)
        for agent in env.agent_iter():
            obs, reward, terminated, truncated, info = env.last()
            returns[agent] += reward
            if terminated or truncated:
                env.step(None)
            else:
                env.step(int(rng.integers(env.action_space(agent).n)))
        ref = env.unwrapped.referee
        for i, agent in enumerate(AGENTS):
            assert returns[agent] == pytest.approx(ref.totals[i], abs=1e-9)


# ----------------------------------------------------------------------------- render
def test_render_modes(capsys):
    env = fraudarena_v0.env(task_id="task_3", render_mode="ansi")
    env.reset(seed=7)
    text = env.render()
    assert isinstance(text, str) and "FraudArena task_3" in text and "ad_" in text
    rng = np.random.default_rng(0)
    for _agent in env.agent_iter():
        obs, _, terminated, truncated, _ = env.last()
        env.step(None if terminated or truncated else _legal(obs["action_mask"], rng))
    text = env.render()
    assert "play ended" in text and "truth" in text
    human = fraudarena_v0.env(render_mode="human")
    human.reset(seed=0)
    assert human.render() is None
    assert "FraudArena task_1" in capsys.readouterr().out
    silent = fraudarena_v0.env()
    silent.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert silent.render() is None
    env.close()


def test_observe_is_fill_and_mask_in_one_pass(monkeypatch):
    """``Observer.observe`` (the arena's fast path) returns exactly ``fill`` and ``mask``."""
    from fraudarena_env.arena import Arena
    from fraudarena_env.faces.encoding import Observer

    separate = {a: Observer(a) for a in AGENTS}
    seen = set()
    real_observe = Observer.observe

    def checked(self, ref):
        vector, mask = real_observe(self, ref)
        other = separate[self.role]
        np.testing.assert_array_equal(vector, other.fill(ref))
        np.testing.assert_array_equal(mask, other.mask(ref))
        seen.add(self.role)
        return vector, mask

    monkeypatch.setattr(Observer, "observe", checked)
    arena = Arena()
    for seed in range(3):
        arena.play("task_3", seed)
    assert seen == set(AGENTS)


if __name__ == "__main__":
    print(trajectory_digest(sys.argv[1], int(sys.argv[2])))


def test_a_reset_env_holds_at_most_180_kib():
    """Speed and memory are features: a task_3 env after its reset held 169 KiB until the global
    state's space (two bound arrays of 6,762 floats, 66 KiB) was built with every env; it is now
    made when first asked, and an env that never asks pays nothing for it."""
    import gc
    import tracemalloc

    from fraudarena_env import fraudarena_v0

    fraudarena_v0.env(task_id="task_3").reset(seed=0)  # warm every module-level cache
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    envs = [fraudarena_v0.env(task_id="task_3") for _ in range(10)]
    for k, env in enumerate(envs):
        env.reset(seed=k)
    gc.collect()
    per_env = (tracemalloc.get_traced_memory()[0] - base) / len(envs)
    tracemalloc.stop()
    assert per_env <= 180 * 1024, per_env
    assert envs[0].state_space.shape == envs[0].state().shape  # still there when asked


def test_every_role_observation_begins_with_the_header():
    """In process as on the wire: whose observation, and where in the match. Not the referee's
    match id: it is hashed from the seed, and a player that searched seeds for it would know
    every hidden label (the server sends its own, random, id)."""
    env = fraudarena_v0.env(task_id="task_3")
    env.reset(seed=7)
    for role in env.possible_agents:
        obs = env.unwrapped.role_observation(role)
        assert (obs.role, obs.match_id, obs.phase, obs.round_number, obs.max_rounds,
                obs.rounds_remaining) == (role, "", "fraudster_turn", 1, 5, 5)
        assert env.unwrapped.referee.match_id not in obs.model_dump_json()


def test_the_queue_may_not_grow_once_play_is_over_however_it_ended():
    """A match a terminate-mode illegal action ended read queue_may_grow True in its text
    observation, though nothing can arrive in a finished match."""
    env = fraudarena_v0.env(task_id="task_3", illegal_action="terminate")
    env.reset(seed=0)
    assert env.unwrapped.role_observation("investigator").queue_may_grow
    mask = env.observe("fraudster")["action_mask"]
    env.step(int(np.flatnonzero(mask == 0)[0]))  # a masked index ends the match
    assert env.unwrapped.referee.phase == "done"
    assert not env.unwrapped.role_observation("investigator").queue_may_grow
