"""``gymnasium.make_vec`` of a role's id: ``RoleVectorEnv``, N matches on the batched core, each
the match ``RoleEnv`` plays on the same seed and learner actions."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import (
    DtypeObservation,
    FlattenObservation,
    NormalizeObservation,
    RecordEpisodeStatistics,
)

import fraudarena_env  # noqa: F401  (registers the ids)
from fraudarena_env.gym_vector import RoleVectorEnv
from fraudarena_env.registration import GYMNASIUM_IDS
from fraudarena_env.role_env import RoleEnv
from fraudarena_env.rules.errors import IllegalActionError

ENDING_KEYS = ("phase", "round", "end_reason", "has_grader", "grader_score")


def _step_alike(env: RoleEnv, i: int, step: int, mask, action, reward, terminated, truncated):
    """Step env ``i``'s RoleEnv on the batch's action, checking the mask the batch offered and
    the reward and ending it reported; RoleEnv's step."""
    np.testing.assert_array_equal(mask, env.action_masks(), err_msg=f"{step} {i}")
    o, r, term, trunc, info = env.step(int(action))
    assert reward == pytest.approx(r, abs=1e-9), (step, i)
    assert (terminated, truncated) == (term, trunc), (step, i)
    return o, r, term, trunc, info


def _lockstep(role: str, task_id, seed: int, num_envs: int, steps: int,
              max_cycles: int = 1000) -> int:
    """Drive ``make_vec``'s env and one RoleEnv per env on the same learner actions: views, masks,
    rewards, terminated and truncated apart, and each ending's last view and info. Returns how
    many matches ended."""
    venv = gymnasium.make_vec(GYMNASIUM_IDS[role], num_envs=num_envs, task_id=task_id,
                              max_cycles=max_cycles)
    obs, infos = venv.reset(seed=seed)
    assert infos == {}
    tasks = (task_id,) if isinstance(task_id, str) else task_id
    envs = [RoleEnv(role, task_id=tasks[i % len(tasks)], max_cycles=max_cycles)
            for i in range(num_envs)]
    resets = [0] * num_envs
    for i, env in enumerate(envs):
        np.testing.assert_array_equal(obs[i], env.reset(seed=seed + i)[0])
    rng = np.random.default_rng(seed)
    ended = 0
    for step in range(steps):
        masks = venv.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        assert obs in venv.observation_space and rewards.dtype == np.float64
        for i, env in enumerate(envs):
            o, r, term, trunc, info = _step_alike(env, i, step, masks[i], actions[i], rewards[i],
                                                  terminated[i], truncated[i])
            if term or trunc:
                ended += 1
                assert infos["_final_obs"][i] and infos["_final_info"][i]
                np.testing.assert_array_equal(infos["final_obs"][i], o,
                                              err_msg=f"last view, step {step} env {i}")
                final = infos["final_info"]
                for key in ENDING_KEYS:
                    assert final[f"_{key}"][i] and final[key][i] == info[key], (key, step, i)
                assert final["return"][i] == pytest.approx(info["return"], abs=1e-9)
                resets[i] += 1
                o, _ = env.reset(seed=seed + i + resets[i] * num_envs)
            elif "_final_obs" in infos:
                assert not infos["_final_obs"][i] and infos["final_obs"][i] is None
            np.testing.assert_array_equal(obs[i], o, err_msg=f"step {step} env {i}")
    return ended


@pytest.mark.parametrize("role", ["investigator", "fraudster"])
@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_each_env_plays_the_match_role_env_plays_on_its_seed(role, task_id):
    assert _lockstep(role, task_id, 40, 4, 80) > 0


def test_the_auditors_seat_and_a_list_of_tasks():
    assert _lockstep("auditor", ("task_2", "task_3_unseen"), 7, 4, 60) > 0


def test_a_match_cut_by_max_cycles_is_truncated_not_terminated():
    assert _lockstep("investigator", "task_3", 3, 3, 60, max_cycles=25) > 0


def test_make_vec_builds_the_batched_env_and_sync_mode_keeps_role_envs():
    venv = gymnasium.make_vec("fraudarena/Fraudster-v0", num_envs=3, task_id="task_2",
                              max_rounds=3)
    assert isinstance(venv, RoleVectorEnv) and venv.role == "fraudster"
    assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    assert venv.observation_space.shape == (3, *venv.single_observation_space.shape)
    assert venv.action_space == gymnasium.spaces.MultiDiscrete([venv.single_action_space.n] * 3)
    venv.reset(seed=0)
    assert venv.venv.state.max_rounds.tolist() == [3, 3, 3]
    sync = gymnasium.make_vec("fraudarena/Fraudster-v0", num_envs=2, task_id="task_2",
                              vectorization_mode="sync")
    assert isinstance(sync, SyncVectorEnv) and isinstance(sync.envs[0].unwrapped, RoleEnv)
    assert sync.single_observation_space == venv.single_observation_space


def test_an_unseeded_reset_starts_on_the_seed_offset_then_on_matches_not_yet_played():
    venv = RoleVectorEnv("investigator", 2, task_id="task_1", seed_offset=500)
    first, _ = venv.reset()
    np.testing.assert_array_equal(first, RoleVectorEnv("investigator", 2, task_id="task_1")
                                  .reset(seed=500)[0])
    again, _ = venv.reset()
    np.testing.assert_array_equal(again, RoleVectorEnv("investigator", 2, task_id="task_1")
                                  .reset(seed=502)[0])


def test_an_action_the_mask_forbids_is_refused_and_changes_nothing():
    venv = RoleVectorEnv("investigator", 3, task_id="task_1")
    twin = RoleVectorEnv("investigator", 3, task_id="task_1")
    venv.reset(seed=9)
    twin.reset(seed=9)
    masks = venv.action_masks()
    bad = np.array([np.flatnonzero(m)[0] for m in masks])
    bad[1] = np.flatnonzero(~masks[1])[0]
    with pytest.raises(IllegalActionError):
        venv.step(bad)
    good = np.array([np.flatnonzero(m)[0] for m in masks])
    for a, b in zip(venv.step(good)[:4], twin.step(good)[:4]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    ({"illegal_action": "penalize"}, "vectorization_mode='sync'"),
    ({"render_mode": "ansi"}, "does not render"),
    ({"num_envs": 2.5}, "num_envs must be a positive integer"),
    ({"role": "referee"}, "unknown role"),
])
def test_what_the_batched_env_cannot_do_is_refused_when_it_is_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RoleVectorEnv(**{"role": "investigator", "num_envs": 2, **kwargs})


@pytest.mark.parametrize("reset, message", [
    ({"options": {"max_rounds": 2}}, "match knobs when it is built"),
    ({"seed": [1, 2]}, "one integer"),
    ({"seed": -1}, "seed"),
    ({"seed": "7"}, "seed must be an integer"),
])
def test_resets_it_cannot_honour_are_refused(reset, message):
    venv = RoleVectorEnv("investigator", 2)
    with pytest.raises(ValueError, match=message):
        venv.reset(**reset)


def test_a_step_before_reset_asks_for_a_reset_with_a_seed():
    with pytest.raises(RuntimeError, match=r"call reset\(seed=\.\.\.\) first"):
        RoleVectorEnv("investigator", 2).step(np.zeros(2, np.int64))


def test_gymnasiums_episode_statistics_wrapper_counts_each_learners_match_total():
    envs = RecordEpisodeStatistics(gymnasium.make_vec("fraudarena/Investigator-v0", num_envs=4,
                                                      task_id="task_1"))
    envs.reset(seed=3)
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(150):
        masks = envs.unwrapped.action_masks()
        np.testing.assert_array_equal(np.stack(envs.unwrapped.call("action_masks")), masks)
        *_, infos = envs.step((rng.random(masks.shape) * masks).argmax(axis=1))
        if "episode" in infos:
            done = infos["_episode"]
            np.testing.assert_allclose(infos["episode"]["r"][done],
                                       infos["final_info"]["return"][done], atol=1e-6)
            episodes += int(done.sum())
    assert episodes > 0
    assert envs.unwrapped.get_attr("role") == ("investigator",) * 4
    with pytest.raises(NotImplementedError, match="only call\\('action_masks'\\)"):
        envs.unwrapped.call("labels_of")


@pytest.mark.parametrize("role, max_cycles", [("investigator", 1), ("auditor", 5)])
def test_a_reset_whose_matches_end_before_the_learners_turn_says_to_raise_max_cycles(
        role, max_cycles):
    """RoleEnv names the cause; the batched reset said only that a match ended."""
    venv = RoleVectorEnv(role, 2, task_id="task_1", max_cycles=max_cycles)
    with pytest.raises(RuntimeError, match=rf"env 0: the match on seed 0 ended before the {role}'s "
                       rf"first turn \(max_cycles={max_cycles} cut it first\); give "
                       r"RoleVectorEnv a larger max_cycles"):
        venv.reset(seed=0)


def test_next_step_autoreset_ends_on_the_last_view_then_starts_the_next_match_on_its_seed():
    """Gymnasium's default mode: the step that ends a match returns its last view and its
    ending's keys; the next step ignores that env's action and returns the new match's first
    view with no reward, what came before the learner's first turn paid on the step after."""
    n, seed, role = 3, 21, "investigator"
    venv = gymnasium.make_vec(GYMNASIUM_IDS[role], num_envs=n, task_id="task_1",
                              autoreset_mode="NextStep")
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert RoleVectorEnv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = venv.reset(seed=seed)
    envs = [RoleEnv(role, task_id="task_1") for _ in range(n)]
    for i, env in enumerate(envs):
        np.testing.assert_array_equal(obs[i], env.reset(seed=seed + i)[0])
    resets, resetting, ended = [0] * n, [False] * n, 0
    rng = np.random.default_rng(0)
    for step in range(130):
        masks = venv.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        for i, env in enumerate(envs):
            if resetting[i]:
                resets[i] += 1
                o, _ = env.reset(seed=seed + i + resets[i] * n)
                assert (rewards[i], terminated[i], truncated[i]) == (0.0, False, False)
                resetting[i] = False
            else:
                o, r, term, trunc, info = _step_alike(env, i, step, masks[i], actions[i],
                                                      rewards[i], terminated[i], truncated[i])
                if term or trunc:
                    ended += 1
                    resetting[i] = True
                    for key in (*ENDING_KEYS, "return"):
                        assert infos[f"_{key}"][i] and infos[key][i] == pytest.approx(info[key])
            np.testing.assert_array_equal(obs[i], o, err_msg=f"step {step} env {i}")
        assert "final_obs" not in infos
    assert ended > 0


@pytest.mark.parametrize("wrapper", [NormalizeObservation, FlattenObservation,
                                     lambda env: DtypeObservation(env, np.float64)])
def test_gymnasiums_observation_wrappers_take_it_in_next_step_mode(wrapper):
    """They refuse SAME_STEP (they would leave final_obs untransformed)."""
    with pytest.raises(ValueError, match="NEXT_STEP"):
        wrapper(RoleVectorEnv("investigator", 2))
    envs = RecordEpisodeStatistics(wrapper(RoleVectorEnv(
        "investigator", 2, autoreset_mode=AutoresetMode.NEXT_STEP)))
    envs.reset(seed=0)
    episodes = 0
    for _ in range(90):
        *_, infos = envs.step(envs.unwrapped.action_masks().argmax(axis=1))
        if "episode" in infos:
            done = infos["_episode"]
            np.testing.assert_allclose(infos["episode"]["r"][done], infos["return"][done])
            episodes += int(done.sum())
    assert episodes > 0


def test_an_autoreset_mode_it_cannot_play_is_refused():
    with pytest.raises(ValueError, match="SAME_STEP .* or NEXT_STEP"):
        RoleVectorEnv("investigator", 2, autoreset_mode=AutoresetMode.DISABLED)


def test_an_action_too_large_for_int64_is_named_as_given():
    venv = RoleVectorEnv("investigator", 2)
    venv.reset(seed=1)
    actions = np.array([0, 2**64 - 1], np.uint64)
    with pytest.raises(IllegalActionError, match=f"env 1: index {2**64 - 1} is outside"):
        venv.step(actions)


def test_a_reset_cut_before_the_learners_turn_leaves_no_matches_to_step_on():
    venv = RoleVectorEnv("auditor", 2, max_cycles=5)
    with pytest.raises(RuntimeError, match="larger max_cycles"):
        venv.reset(seed=0)
    with pytest.raises(RuntimeError, match=r"call reset\(seed=\.\.\.\) first"):
        venv.step(np.zeros(2, np.int64))


def _sb3_seat(opponents):
    sb3_vector = pytest.importorskip("fraudarena_env.sb3_vector")
    envs = sb3_vector.VectorRoleEnv("investigator", 2, opponents=opponents)
    return envs, envs.reset


def _gym_seat(opponents):
    envs = RoleVectorEnv("investigator", 2, opponents=opponents)
    return envs, lambda: envs.reset(seed=0)


@pytest.mark.parametrize("seat", [_gym_seat, _sb3_seat], ids=["gymnasium", "sb3"])
def test_after_an_opponent_raised_the_learners_actions_are_not_played_for_the_opponents(
        seat, failing_opponent):
    """As RoleEnv: an opponent whose move raised left matches on its turn, and the next step
    applied the learner's actions there as the opponent's moves."""
    envs, reset = seat({"fraudster": failing_opponent})
    reset()
    failing_opponent.fail_next()
    end_turn = np.array([np.flatnonzero(m)[-1] for m in envs.action_masks()])
    with pytest.raises(ConnectionError):
        envs.step(end_turn)  # the fraudsters move next
    with pytest.raises(RuntimeError, match="an opponent's move raised an error"):
        envs.step(np.zeros(2, np.int64))
    reset()  # and a reset plays on
    assert envs.action_masks().any(axis=1).all()


def test_set_attr_sets_an_attribute_of_your_own_once_for_every_env():
    """Gymnasium's ``set_attr``: one value for every env, or a list or tuple of one per env (the
    N matches share one, so those must agree); a wrong length is a ValueError."""
    venv = RoleVectorEnv("investigator", 3)
    venv.set_attr("level", 2)
    assert venv.get_attr("level") == (2, 2, 2)
    venv.set_attr("level", [5, 5, 5])
    assert venv.get_attr("level") == (5, 5, 5)
    venv.set_attr("weights", (np.ones(2), np.ones(2), np.ones(2)))
    with pytest.raises(ValueError, match=r"set_attr\('level', \.\.\.\): 2 different values.*"
                       r"one value for all 3 envs.*vectorization_mode='sync'"):
        venv.set_attr("level", [1, 2, 1])
    with pytest.raises(ValueError, match=r"length equal to the number of environments.*`2` "
                       r"values for 3 environments"):
        venv.set_attr("level", (5, 5))
    assert venv.get_attr("level") == (5, 5, 5)  # a refused set_attr changes nothing
    envs = RecordEpisodeStatistics(gymnasium.make_vec("fraudarena/Fraudster-v0", num_envs=2))
    envs.unwrapped.set_attr("level", 1)
    assert envs.unwrapped.get_attr("level") == (1, 1)


@pytest.mark.parametrize("name, what_to_do", [
    ("task_id", r"built with its task_id: setting the attribute would not change the matches; "
                r"build a new env with it: gymnasium.make_vec\(id, num_envs=3, task_id=\.\.\.\)"),
    ("max_rounds", r"gymnasium.make_vec\(id, num_envs=3, max_rounds=\.\.\.\)"),
    ("opponents", r"gymnasium.make_vec\(id, num_envs=3, opponents=\.\.\.\)"),
    ("seed_offset", r"gymnasium.make_vec\(id, num_envs=3, seed_offset=\.\.\.\)"),
    ("role", r"each role's seat has its own id.*'fraudarena/Auditor-v0'"),
    ("action_space", r"and action_space is the batch's own \(its state or its API\), not a "
                     r"setting; set_attr sets attributes of your own"),
    ("action_masks", r"action_masks is the batch's own"),
])
def test_set_attr_refuses_what_the_batch_was_built_with_and_says_what_to_do(name, what_to_do):
    """Setting these on the batch would leave its matches as they were: refused, not ignored."""
    venv = RoleVectorEnv("investigator", 3, task_id="task_1")
    before = getattr(venv, name, None)
    with pytest.raises(ValueError, match=rf"set_attr\('{name}'\): RoleVectorEnv's 3 matches run "
                       rf"as one batch.*{what_to_do}"):
        venv.set_attr(name, "task_3")
    assert getattr(venv, name, None) == before  # (a bound method is made anew on each get)


@pytest.mark.parametrize("mode", ["SameStep", "NextStep"])
def test_workers_play_what_one_process_plays_in_either_autoreset_mode(mode):
    """``workers=3``: the envs in three blocks, each in a worker process; the same views,
    rewards, endings and infos as in one process, the envs that wait on a new match's first view
    (NextStep) included."""
    runs = []
    for workers in (1, 3):
        venv = gymnasium.make_vec(GYMNASIUM_IDS["investigator"], num_envs=5,
                                  task_id=["task_1", "task_2"], autoreset_mode=mode,
                                  workers=workers)
        rng = np.random.default_rng(5)
        seen = [venv.reset(seed=11)]
        for _ in range(70):
            masks = venv.action_masks()
            seen.append((masks, venv.step(np.array([
                np.flatnonzero(m)[-1] if rng.random() < 0.2 else rng.choice(np.flatnonzero(m))
                for m in masks]))))
        venv.close()
        runs.append(seen)
    one, split_up = runs
    np.testing.assert_array_equal(one[0][0], split_up[0][0])
    ended = 0
    for step, ((mask_a, out_a), (mask_b, out_b)) in enumerate(zip(one[1:], split_up[1:])):
        np.testing.assert_array_equal(mask_a, mask_b, err_msg=f"step {step}")
        for a, b in zip(out_a[:4], out_b[:4]):
            np.testing.assert_array_equal(a, b, err_msg=f"step {step}")
        assert out_a[4].keys() == out_b[4].keys(), step
        ended += int(out_a[2].sum() + out_a[3].sum())
        for key, value in out_a[4].items():
            if isinstance(value, dict):
                assert value.keys() == out_b[4][key].keys()
                for k in value:
                    np.testing.assert_array_equal(value[k], out_b[4][key][k])
            elif key == "final_obs":
                for x, y in zip(value, out_b[4][key]):
                    np.testing.assert_array_equal(x, y)
            else:
                np.testing.assert_array_equal(value, out_b[4][key], err_msg=f"{key} {step}")
    assert ended > 0
