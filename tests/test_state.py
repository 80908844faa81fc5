"""``state()``: the global state a centralised critic reads in training (faces/state.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pettingzoo.test.state_test import test_state as pettingzoo_state_test
from pettingzoo.test.state_test import test_state_space as pettingzoo_state_space_test

from fraudarena_env import fraudarena_v0
from fraudarena_env.faces.state import N_RINGS, ROLE_SIZES, TRUTH_COLUMNS
from fraudarena_env.rules.catalog import LABELS, MAX_SLOTS, ROLES, TASK_IDS
from fraudarena_env.wrappers import shared_space_env


def _random_play(env, seed: int, steps: int):
    """Masked random play from ``reset(seed)``; yields after every step."""
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        agent = env.agent_selection
        if env.terminations[agent] or env.truncations[agent]:
            return
        env.step(int(rng.choice(np.flatnonzero(env.observe(agent)["action_mask"]))))
        yield agent


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_pettingzoos_state_tests_pass_on_the_env_and_the_shared_space_wrapper(task_id):
    for env in (fraudarena_v0.env(task_id=task_id, illegal_action="penalize"),
                shared_space_env(task_id=task_id, illegal_action="penalize")):
        pettingzoo_state_space_test(env)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any of its warnings (NaN, all zeros, ...) fails
            pettingzoo_state_test(env, num_cycles=20)


def test_the_state_is_every_roles_own_vector_then_each_ads_truth():
    env = fraudarena_v0.env(task_id="task_3")
    env.reset(seed=11)
    names = env.unwrapped.state_feature_names()
    assert len(names) == env.state_space.shape[0] == len(env.state()) == len(set(names))
    ref = env.unwrapped.referee
    for _ in _random_play(env, seed=11, steps=400):
        state = env.state()
        assert env.state_space.contains(state)
        start = 0
        for role in ROLES:  # the acting role's part is what it observes (the fraudster's
            part = state[start:start + ROLE_SIZES[role]]  # view of what it withholds aside)
            if role == env.agent_selection and role != "investigator":
                np.testing.assert_array_equal(part, env.observe(role)["observation"])
            start += ROLE_SIZES[role]
        truth = state[start:].reshape(MAX_SLOTS, len(TRUTH_COLUMNS))
        for slot in range(MAX_SLOTS):
            if not ref.present[slot]:
                assert not truth[slot].any()
                continue
            assert truth[slot, :len(LABELS)].tolist() == [
                float(i == ref.label_of(slot)) for i in range(len(LABELS))]
            ring, own = truth[slot, len(LABELS):-1], bool(ref.is_proposal[slot])  # its own ring
            assert ring.sum() == (ref.ring_of(slot) >= 0)
            assert ref.ring_of(slot) < 0 or ring[-1 if own else ref.ring_of(slot)] == 1.0
            assert truth[slot, -1] == np.float32(ref.severity_of(slot))
    assert ref.phase != "fraudster_turn"  # the match got past its first turns


@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_the_fraudsters_own_network_takes_the_last_ring_index_on_every_task(task_id):
    env = fraudarena_v0.env(task_id=task_id, allowed_categories=["network_crypto", "ecommerce"])
    env.reset(seed=5)
    env.step({"action_type": "propose_ad", "category": "network_crypto", "tactic": "blatant"})
    slot = int(np.flatnonzero(env.unwrapped.referee.is_proposal)[0])
    truth = env.state()[sum(ROLE_SIZES.values()):].reshape(MAX_SLOTS, len(TRUTH_COLUMNS))
    assert truth[slot, len(LABELS):-1].tolist() == [0.0] * (N_RINGS - 1) + [1.0]  # not 0, or 2
    names = env.unwrapped.state_feature_names()[sum(ROLE_SIZES.values()):]
    assert names[len(LABELS) + N_RINGS - 1] == "truth[ad_001].ring.fraudster"


def test_the_same_seed_and_moves_give_the_same_states():
    a, b = fraudarena_v0.env(task_id="task_2"), fraudarena_v0.env(task_id="task_2")
    for _ in zip(_random_play(a, 3, 200), _random_play(b, 3, 200)):
        np.testing.assert_array_equal(a.state(), b.state())


def test_state_before_reset_says_what_to_do():
    with pytest.raises(RuntimeError, match=r"call reset\(\) before state\(\)"):
        fraudarena_v0.env().unwrapped.state()
