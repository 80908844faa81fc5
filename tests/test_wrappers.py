"""The shared-space wrapper: one padded observation space and one padded action space for every
role, with the role's own vector, mask and actions inside; and the observation-key rename."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fraudarena_env import IllegalActionError, fraudarena_v0
from fraudarena_env.faces.encoding import N_ACTIONS
from fraudarena_env.rules.scoring import ILLEGAL_PENALTY
from fraudarena_env.wrappers import (
    MaskedRoleEnv,
    RenameObservationKey,
    SharedSpaceWrapper,
    shared_space_env,
)

AGENTS = ["fraudster", "investigator", "auditor"]


def _legal(mask: np.ndarray, rng: np.random.Generator) -> int:
    legal = np.flatnonzero(mask)
    return int(legal[rng.integers(len(legal))])


def test_every_agent_gets_the_same_space_objects():
    env = shared_space_env(task_id="task_3")
    obs_space, act_space = env.observation_space("fraudster"), env.action_space("fraudster")
    plain = fraudarena_v0.env()
    widest = max(plain.observation_space(a)["observation"].shape[0] for a in AGENTS)
    assert obs_space["observation"].shape == (len(AGENTS) + widest,)
    assert obs_space["observation"].dtype == np.float32
    assert obs_space["action_mask"].shape == (max(N_ACTIONS.values()),)
    assert act_space.n == max(N_ACTIONS.values())
    for agent in AGENTS:
        assert env.observation_space(agent) is obs_space
        assert env.action_space(agent) is act_space


def test_padded_observation_is_role_one_hot_then_the_role_vector_then_zeros():
    plain, env = fraudarena_v0.env(task_id="task_2"), shared_space_env(task_id="task_2")
    plain.reset(seed=4)
    env.reset(seed=4)
    for i, agent in enumerate(AGENTS):
        inner, outer = plain.observe(agent), env.observe(agent)
        vector, n = inner["observation"], len(inner["observation"])
        np.testing.assert_array_equal(outer["observation"][:3], np.eye(3, dtype=np.float32)[i])
        np.testing.assert_array_equal(outer["observation"][3:3 + n], vector)
        assert not outer["observation"][3 + n:].any()
        np.testing.assert_array_equal(outer["action_mask"][:N_ACTIONS[agent]],
                                      inner["action_mask"])
        assert not outer["action_mask"][N_ACTIONS[agent]:].any(), "a padded index is legal"
        assert outer["action_mask"].dtype == np.int8
        np.testing.assert_array_equal(env.action_mask(agent), outer["action_mask"])


def test_observation_layout_names_every_entry_of_the_padded_vector():
    env = shared_space_env()
    for agent in AGENTS:
        layout = env.observation_layout(agent)
        assert layout[0] == ("role", 0, (3,))
        sizes = [int(np.prod(shape)) for _, _, shape in layout]
        offsets = [offset for _, offset, _ in layout]
        assert offsets == list(np.cumsum([0, *sizes[:-1]]))
        assert sum(sizes) == env.vector_size


def test_a_whole_match_through_the_wrapper_is_the_plain_match():
    plain, env = fraudarena_v0.env(task_id="task_3"), shared_space_env(task_id="task_3")
    rng_a, rng_b = np.random.default_rng(6), np.random.default_rng(6)
    plain.reset(seed=12)
    env.reset(seed=12)
    steps = 0
    for agent, other in zip(plain.agent_iter(), env.agent_iter()):
        assert agent == other
        obs, reward, terminated, truncated, info = plain.last()
        wobs, wreward, wterminated, wtruncated, winfo = env.last()
        assert (reward, terminated, truncated, info) == (wreward, wterminated, wtruncated, winfo)
        assert env.observation_space(agent).contains(wobs)
        done = terminated or truncated
        plain.step(None if done else _legal(obs["action_mask"], rng_a))
        env.step(None if done else _legal(wobs["action_mask"], rng_b))
        steps += 1
    assert steps > 20 and plain.agents == env.agents == []
    assert plain.unwrapped.referee.state == env.unwrapped.referee.state


def test_a_padded_index_is_an_illegal_action():
    env = shared_space_env(task_id="task_1")
    env.reset(seed=0)
    agent = env.agent_selection
    before = env.unwrapped.referee.state.model_dump_json()
    with pytest.raises(IllegalActionError, match=f"outside Discrete\\({N_ACTIONS[agent]}\\)"):
        env.step(env.action_space(agent).n - 1)
    assert env.unwrapped.referee.state.model_dump_json() == before
    charged = shared_space_env(task_id="task_1", illegal_action="penalize")
    charged.reset(seed=0)
    charged.step(charged.action_space(agent).n - 1)
    assert charged.rewards[agent] == pytest.approx(ILLEGAL_PENALTY)


def test_pettingzoo_api_and_seed_tests_pass_without_the_space_size_warning():
    from pettingzoo.test import api_test, seed_test

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api_test(shared_space_env(task_id="task_3"), num_cycles=1000)
    messages = [str(w.message) for w in caught]
    assert not any("different observation space sizes" in m for m in messages), messages
    seed_test(lambda: shared_space_env(task_id="task_3"), num_cycles=500)


def test_rename_observation_key_moves_the_vector_and_its_space():
    env = RenameObservationKey(fraudarena_v0.env(task_id="task_1"), "observations")
    plain = fraudarena_v0.env(task_id="task_1")
    env.reset(seed=1)
    plain.reset(seed=1)
    for agent in AGENTS:
        obs = env.observe(agent)
        assert set(obs) == {"observations", "action_mask"}
        assert env.observation_space(agent) is env.observation_space(agent)
        assert env.observation_space(agent).contains(obs)
        np.testing.assert_array_equal(obs["observations"], plain.observe(agent)["observation"])
    with pytest.raises(ValueError, match="action_mask"):
        RenameObservationKey(fraudarena_v0.env(), "action_mask")


def test_the_wrapper_takes_the_raw_env_too():
    env = SharedSpaceWrapper(fraudarena_v0.raw_env(task_id="task_1"))
    env.reset(seed=0)
    assert env.observe(env.agent_selection)["action_mask"].any()
    assert str(env) == "fraudarena_v0"


def test_masked_role_env_takes_a_numpy_integer_seed():
    a, b = MaskedRoleEnv(), MaskedRoleEnv()
    assert a.reset(seed=np.int64(3))[0]["observations"].tobytes() == \
        b.reset(seed=3)[0]["observations"].tobytes()
