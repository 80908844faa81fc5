"""``VectorFraudArena`` plays exactly the matches ``shared_space_env`` plays, N at a time."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudarena_env import IllegalActionError
from fraudarena_env.rules.action_catalog import (
    F_END,
    F_MODIFY,
    F_PROPOSE,
    I_END,
    I_LINK,
    OPS,
    PAIRS,
)
from fraudarena_env.rules.catalog import CATEGORIES, FRAUDSTER_EDITS, TASK_IDS
from fraudarena_env.rules.roles import legal_mask
from fraudarena_env.rules.state import Edit
from fraudarena_env.vector import VectorFraudArena
from fraudarena_env.wrappers import shared_space_env


def _lockstep(task_id: str, seed: int, num_envs: int, steps: int, max_cycles: int = 1000,
              active_share: float = 1.0, scalar_finish: int | None = None,
              check_state: bool = False, prefer=None, **knobs) -> int:
    """Drive the vector env and one scalar env per match on the same actions; compare every
    observation, mask, reward and ending. Below ``active_share``, each step lets a random
    subset of the envs act (``step(actions, active=...)``); the others, and their scalar envs,
    stay put. ``scalar_finish``: how many matches ending in one step end one by one, through
    their referees (more end in one batch; the env's own threshold when None). ``check_state``:
    compare the global states too (``global_state()`` with each scalar env's ``state()``).
    ``prefer(venv, batch, actions)``: may change the sampled actions (to legal ones) before
    they are played. Returns how many matches ended."""
    venv = VectorFraudArena(num_envs, task_id=task_id, max_cycles=max_cycles, **knobs)
    if scalar_finish is not None:
        venv.scalar_finish = scalar_finish
    batch = venv.reset(seed=seed)
    tasks = (task_id,) if isinstance(task_id, str) else task_id  # env i plays tasks[i % k]
    envs = [shared_space_env(task_id=tasks[i % len(tasks)], max_cycles=max_cycles, **knobs)
            for i in range(num_envs)]
    resets = [0] * num_envs
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    ended = 0
    for step in range(steps + 1):
        states = venv.global_state() if check_state else None
        for i, env in enumerate(envs):
            agent = env.agent_selection
            obs = env.observe(agent)
            if check_state:
                np.testing.assert_array_equal(states[i], env.state(), err_msg=f"{step} {i}")
            assert batch.current_agent[i] == env.possible_agents.index(agent), (step, i)
            np.testing.assert_array_equal(batch.observation[i], obs["observation"])
            np.testing.assert_array_equal(batch.action_mask[i], obs["action_mask"])
        if step == steps:
            return ended
        actions = venv.sample_actions(batch.action_mask)
        if prefer is not None:
            prefer(venv, batch, actions)
        active = np.ones(num_envs, bool)
        if active_share < 1.0:
            active = venv._rng.random(num_envs) < active_share
            actions[~active] = 10_000  # an idle env's action is never read
            batch = venv.step(actions, active=active)
        else:
            batch = venv.step(actions)
        for i, env in enumerate(envs):
            if not active[i]:
                assert not batch.rewards[i].any() and not batch.terminated[i]
                continue
            env.step(int(actions[i]))
            assert list(batch.rewards[i]) == [env.rewards[a] for a in env.possible_agents]
            over = all(env.terminations.values())
            cut = all(env.truncations.values())
            assert batch.terminated[i] == over and batch.truncated[i] == cut
            if over or cut:  # how it ended, the grader to the bit, as the scalar env says
                info = env.infos[env.possible_agents[0]]
                for key, value in venv.final_info[i].items():
                    assert info[key] == value, (key, step, i)
                ended += 1
                resets[i] += 1
                env.reset(seed=seed + i + resets[i] * num_envs)  # the k-th reset's seed
    return ended


def _edits_first(played: list):
    """A ``prefer`` for ``_lockstep``: the fraudster edits whenever it may, three times in four;
    each edit is added to ``played`` as (env, how many matches it had played before, index)."""
    def prefer(venv, batch, actions) -> None:
        fraudster = venv.agents.index("fraudster")
        for i in np.flatnonzero(batch.current_agent == fraudster).tolist():
            legal = F_MODIFY + np.flatnonzero(batch.action_mask[i, F_MODIFY:F_END])
            if len(legal) and venv._rng.random() < 0.75:
                actions[i] = legal[venv._rng.integers(len(legal))]
                played.append((i, int(venv._resets[i]), int(actions[i])))
    return prefer


def _rings_first(venv, batch, actions) -> None:
    """A ``prefer`` for ``_lockstep`` that makes the link term count: the fraudster proposes in
    network categories (its own ring) when it may, half the time, and the investigator links
    only two ads of one ring (read from the hidden state: a test may), when it may, a time in
    six, so that some of the rings' pairs are linked and some not."""
    rng = venv._rng
    for i in range(venv.num_envs):
        role, mask = venv.agents[batch.current_agent[i]], batch.action_mask[i]
        if role == "fraudster" and rng.random() < 0.5:
            ops = [o for o in (F_PROPOSE + np.flatnonzero(mask[F_PROPOSE:F_MODIFY])).tolist()
                   if CATEGORIES[OPS["fraudster"][o].category].family == "network"]
            if ops:
                actions[i] = ops[rng.integers(len(ops))]
        elif role == "investigator":
            ref = venv.referees[i]  # (its arrays are views of the batch's)
            ring = [ref.ring_of(s) if ref.present[s] else -1 for s in range(len(ref.present))]
            links = [I_LINK + k for k, (a, b) in enumerate(PAIRS.tolist())
                     if mask[I_LINK + k] and ring[a] >= 0 and ring[a] == ring[b]]
            if links and rng.random() < 1 / 6:
                actions[i] = links[rng.integers(len(links))]
            elif I_LINK <= actions[i] < I_END:  # no link across rings: another action
                other = np.flatnonzero(np.r_[mask[:I_LINK], mask[I_END:]])
                actions[i] = np.r_[np.arange(I_LINK), np.arange(I_END, len(mask))][
                    other[rng.integers(len(other))]]


@settings(max_examples=12, deadline=None)
@given(task_id=st.sampled_from(TASK_IDS), seed=st.integers(0, 2**31), num_envs=st.integers(1, 5),
       scalar_finish=st.sampled_from([0, None, 5]))
def test_every_env_plays_the_scalar_envs_match_step_by_step(task_id, seed, num_envs,
                                                            scalar_finish):
    _lockstep(task_id, seed, num_envs, steps=140, scalar_finish=scalar_finish)


@pytest.mark.parametrize("scalar_finish", [0, 5])
@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_matches_end_the_same_in_one_batch_and_one_by_one(task_id, scalar_finish):
    """Matches that end in the same step end in one batch of array work, or (a few of them)
    one by one through their referees: the scalar env's ending either way."""
    assert _lockstep(task_id, 50, 4, steps=400, scalar_finish=scalar_finish) >= 8


def test_the_matches_that_end_in_a_step_end_in_one_batch():
    """However play ends (budget spent, nothing left to decide, the last round, the fraudster
    passing with nothing left), every match that ends in a step ends in the same batch."""
    venv = VectorFraudArena(256, task_id=["task_1", "task_3"])
    calls, ends = [], []
    finish = venv._finish_batch

    def counted(env, reason):
        calls.append(len(env))
        ends.append(set(reason.tolist()))
        return finish(env, reason)

    venv._finish_batch = counted
    batch = venv.reset(seed=3)
    per_step = []
    for _ in range(300):
        calls.clear()
        batch = venv.step(venv.sample_actions(batch.action_mask))
        per_step.append(list(calls))
    assert all(len(step) <= 1 for step in per_step)
    assert sum(len(step) for step in per_step) >= 50
    assert len(set().union(*ends)) >= 2  # play ended in more than one way, in the same batches


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_matches_run_to_their_end_and_the_next_starts_with_its_own_seed(task_id):
    assert _lockstep(task_id, 50, 4, steps=400) >= 8


@pytest.mark.parametrize("scalar_finish", [0, 5])
@pytest.mark.parametrize("task_id", ["task_2", "task_3"])
def test_a_fraudster_that_edits_all_it_can_plays_the_scalar_envs_match(task_id, scalar_finish):
    """Edits are array work on the copy's key, markers, severity, blurb and landing page (the
    scalar referee rewrites the text): soften an ad again and again, add trust blurbs, and
    every view, reward and ending stays the scalar env's, whether matches end in one batch (the
    rule audit's track B over copy keys) or through their referees (given the text)."""
    edits: list[tuple[int, int, int]] = []
    assert _lockstep(task_id, 31, 4, steps=300, prefer=_edits_first(edits),
                     scalar_finish=scalar_finish) >= 4
    env, match, index = np.asarray(edits).T
    slot, edit = np.divmod(index - F_MODIFY, len(FRAUDSTER_EDITS))
    assert (edit == Edit.ADD_TRUST_BLURB).sum() >= 5
    soften = edit == Edit.SOFTEN_COPY
    _, times = np.unique(np.stack((env, match, slot))[:, soften], axis=1, return_counts=True)
    assert times.max() >= 2  # an ad softened again


@pytest.mark.parametrize("scalar_finish", [0, 5])
def test_links_within_rings_and_the_fraudsters_own_ring_grade_as_the_scalar_env(scalar_finish):
    """The grader's link term over the rings' pairs, the fraudster's network proposals (its own
    ring) among them, in one batch or through the referees (given the proposals then)."""
    assert _lockstep("task_3", 12, 4, steps=300, prefer=_rings_first,
                     scalar_finish=scalar_finish) >= 4


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_every_envs_global_state_is_the_scalar_envs_state(task_id):
    """``global_state()`` row i is ``state()`` of the scalar env playing env i's match: every
    role's view as its observer keeps it, and the ads' truth."""
    assert _lockstep(task_id, 9, 3, steps=250, check_state=True) >= 3


def test_the_global_state_has_the_scalar_states_size_and_bounds():
    venv = VectorFraudArena(2, task_id="task_3")
    with pytest.raises(RuntimeError, match="before reset"):
        venv.global_state()
    venv.reset(seed=1)
    state = venv.global_state()
    space = shared_space_env(task_id="task_3").state_space
    assert state.shape == (2, *space.shape) and state.dtype == np.float32
    assert all(space.contains(row) for row in state)
    buffer = np.full((2, space.shape[0]), np.nan, np.float32)  # e.g. a rollout buffer's row
    assert venv.global_state(out=buffer) is buffer
    np.testing.assert_array_equal(buffer, state)
    with pytest.raises(ValueError, match="out must be a float32 array of shape"):
        venv.global_state(out=np.zeros((2, 5), np.float32))


def test_envs_play_the_tasks_given_in_turn():
    assert _lockstep(("task_1", "task_3", "task_2"), 4, 5, steps=300) >= 3


def test_a_match_past_max_cycles_is_truncated_as_the_scalar_env_truncates_it():
    assert _lockstep("task_3", 8, 3, steps=60, max_cycles=7) >= 6


@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_envs_left_out_of_a_step_stay_put_and_the_others_play_on(task_id):
    assert _lockstep(task_id, 21, 5, steps=300, active_share=0.4) >= 2


def test_active_must_be_one_bool_per_env():
    venv = VectorFraudArena(3)
    batch = venv.reset(seed=0)
    with pytest.raises(ValueError, match="active must be a bool array of shape"):
        venv.step(venv.sample_actions(batch.action_mask), active=np.ones(3, np.int64))


def test_match_knobs_reach_every_env():
    assert _lockstep("task_2", 3, 3, steps=150, max_rounds=2, max_proposals=1,
                     max_investigator_actions_per_turn=4) >= 3


def test_the_mask_is_the_rules_legal_mask():
    venv = VectorFraudArena(6, task_id="task_3")
    batch = venv.reset(seed=9)
    for _ in range(120):
        for r, role in enumerate(venv.agents):
            rules = legal_mask(venv.state, role)
            rows = batch.current_agent == r
            np.testing.assert_array_equal(batch.action_mask[rows, :rules.shape[1]], rules[rows])
        batch = venv.step(venv.sample_actions(batch.action_mask))


def test_an_illegal_action_is_refused_and_nothing_is_applied():
    venv = VectorFraudArena(3, task_id="task_1")
    batch = venv.reset(seed=1)
    actions = venv.sample_actions(batch.action_mask)
    masked = int(np.flatnonzero(batch.action_mask[1] == 0)[0])
    bad = actions.copy()
    bad[1] = masked
    before = venv.state.scalars.copy(), venv.state.present.copy()
    with pytest.raises(IllegalActionError, match="env 1: .*nothing was applied"):
        venv.step(bad)
    np.testing.assert_array_equal(venv.state.scalars, before[0])
    np.testing.assert_array_equal(venv.state.present, before[1])
    venv.step(actions)  # the batch carries on


@pytest.mark.parametrize("actions", [np.zeros(2, np.int64), np.zeros((3, 1), np.int64),
                                     np.zeros(3, np.float32)])
def test_actions_of_the_wrong_shape_or_type_are_refused(actions):
    venv = VectorFraudArena(3)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="integer array of shape"):
        venv.step(actions)


def test_step_before_reset_says_what_to_do():
    with pytest.raises(RuntimeError, match="reset"):
        VectorFraudArena(2).step(np.zeros(2, np.int64))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_num_envs_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="num_envs"):
        VectorFraudArena(bad)


def test_unknown_tasks_and_knobs_are_named():
    with pytest.raises(ValueError, match="task_9"):
        VectorFraudArena(2, task_id="task_9")
    with pytest.raises(ValueError, match="task_9"):
        VectorFraudArena(2, task_id=("task_1", "task_9"))
    with pytest.raises(ValueError, match="task_id lists no task; give one of"):
        VectorFraudArena(2, task_id=())


@pytest.mark.parametrize("task_id", [None, 3])
def test_a_task_id_that_is_neither_a_name_nor_a_list_is_named(task_id):
    """It was "TypeError: 'NoneType' object is not iterable", where the scalar env names it."""
    with pytest.raises(ValueError, match=f"unknown task_id {task_id}; choose one of"):
        VectorFraudArena(2, task_id=task_id)
    with pytest.raises(ValueError, match="max_round"):
        VectorFraudArena(2, max_round=3)


def test_batches_have_the_documented_shapes_and_spaces():
    venv = VectorFraudArena(4, task_id="task_3")
    batch = venv.reset(seed=0)
    space = venv.single_observation_space
    assert batch.observation.shape == (4, venv.vector_size) == (4, space["observation"].shape[0])
    assert batch.observation.dtype == np.float32 and batch.action_mask.dtype == np.int8
    assert batch.action_mask.shape == (4, venv.single_action_space.n)
    assert batch.rewards.shape == (4, 3) and batch.terminated.shape == (4,)
    for i in range(4):
        assert space.contains({"observation": batch.observation[i],
                               "action_mask": batch.action_mask[i]})
    assert shared_space_env(task_id="task_3").observation_space("fraudster") == space


def test_copy_false_hands_out_read_only_views_of_the_envs_own_buffers():
    venv = VectorFraudArena(2, copy=False)
    first = venv.reset(seed=0)
    second = venv.step(venv.sample_actions(first.action_mask))
    assert np.shares_memory(second.observation, first.observation)
    # a caller that could write the mask could make an illegal action pass the env's check
    with pytest.raises(ValueError, match="read-only"):
        second.action_mask[0, :] = 1
    with pytest.raises(ValueError, match="read-only"):
        second.observation *= 2


def test_keep_final_view_names_a_role_or_nothing():
    venv = VectorFraudArena(2, max_cycles=2)
    with pytest.raises(ValueError, match="keep_final_view must be one of"):
        venv.keep_final_view = "Auditor"
    venv.keep_final_view = "auditor"
    venv.keep_final_view = None


def _to_first_ending(num_envs: int):
    """A vector env that keeps the fraudster's final views, played until a match ends (at
    ``max_cycles`` 2), and its last batch."""
    venv = VectorFraudArena(num_envs, max_cycles=2)
    venv.keep_final_view = "fraudster"
    batch = venv.reset(seed=0)
    while not venv.final_info:
        batch = venv.step(venv.sample_actions(batch.action_mask))
    return venv, batch


def test_a_new_reset_forgets_the_last_runs_endings():
    venv, _ = _to_first_ending(2)
    assert venv.final_view
    venv.reset(seed=1)
    assert venv.final_info == {} and venv.final_view == {}


def test_an_unseeded_run_can_be_played_again_from_the_seed_it_drew():
    def play(venv, seed=None):
        batch = venv.reset(seed=seed)
        out = [batch.observation]
        for _ in range(20):
            batch = venv.step(venv.sample_actions(batch.action_mask))
            out.append(batch.observation)
        return np.stack(out)

    venv = VectorFraudArena(3, task_id="task_3")
    assert venv.seed is None
    drawn = play(venv)
    np.testing.assert_array_equal(play(VectorFraudArena(3, task_id="task_3"), venv.seed), drawn)
    assert not np.array_equal(play(VectorFraudArena(3, task_id="task_3"), venv.seed + 1), drawn)
    venv.reset(seed=7)
    assert venv.seed == 7


def test_the_same_seed_gives_the_same_batches():
    def run():
        venv = VectorFraudArena(5, task_id="task_3")
        batch = venv.reset(seed=77)
        out = []
        for _ in range(60):
            batch = venv.step(venv.sample_actions(batch.action_mask))
            out.append((batch.observation.sum(), batch.rewards.sum()))
        return out

    assert run() == run()


@pytest.mark.parametrize("seed", [-1, 2**62, 2**63, 1.5, True, "0"])
def test_a_seed_whose_auto_resets_would_leave_the_seed_range_is_refused_up_front(seed):
    """Env i's k-th reset plays seed + i + k * N: a base seed near 2**63 would wrap around in
    the middle of a run, so reset refuses it, and a refused reset changes nothing."""
    venv, twin = VectorFraudArena(2, task_id="task_1"), VectorFraudArena(2, task_id="task_1")
    batch, same = venv.reset(seed=5), twin.reset(seed=5)
    with pytest.raises(ValueError, match=r"2\*\*62"):
        venv.reset(seed=seed)
    for _ in range(300):  # it plays on from seed 5, through auto-resets, as if never asked
        batch = venv.step(venv.sample_actions(batch.action_mask))
        same = twin.step(twin.sample_actions(same.action_mask))
        np.testing.assert_array_equal(batch.observation, same.observation)


def test_the_largest_base_seed_plays_through_its_auto_resets():
    venv = VectorFraudArena(2, task_id="task_1", max_cycles=20)
    batch = venv.reset(seed=2**62 - 1)
    for _ in range(400):
        batch = venv.step(venv.sample_actions(batch.action_mask))
    assert venv._resets.min() >= 3  # several matches each, past 2**62 - 1 + i + k * 2


@pytest.mark.parametrize("copy_out", ["no", 0, None])
def test_copy_is_true_or_false(copy_out):
    """copy="no" was taken as true: the caller got copies while asking for views."""
    with pytest.raises(ValueError, match="copy must be True"):
        VectorFraudArena(2, copy=copy_out)


@pytest.mark.parametrize("knob", [dict(max_cycles=0), dict(max_cycles=2.5), dict(max_rounds=-5),
                                  dict(max_proposals="x")])
def test_bad_settings_are_named_when_the_env_is_built(knob):
    with pytest.raises(ValueError, match=next(iter(knob))):
        VectorFraudArena(2, **knob)


def test_a_deep_copy_plays_on_exactly_as_the_original():
    """The vector env's referees, observers and output rows are views of shared arrays; a copy
    keeps them so, and the same actions then give the same batches."""
    venv = VectorFraudArena(3, task_id=("task_1", "task_3"))
    batch = venv.reset(seed=11)
    for _ in range(50):
        batch = venv.step(venv.sample_actions(batch.action_mask))
    twin = copy.deepcopy(venv)
    same = batch
    for _ in range(300):  # through several auto-resets
        batch = venv.step(venv.sample_actions(batch.action_mask))
        same = twin.step(twin.sample_actions(same.action_mask))
        np.testing.assert_array_equal(batch.observation, same.observation)
        np.testing.assert_array_equal(batch.rewards, same.rewards)
    assert venv._resets.sum() >= 3


def test_sample_actions_wants_one_mask_row_per_env():
    venv = VectorFraudArena(2)
    batch = venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"one mask row per env, shape \(2, actions\)"):
        venv.sample_actions(batch.action_mask[0])


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_calibration_of_many_matches_at_once_is_each_matchs_bins_and_skill_to_the_bit(seed):
    from fraudarena_env.rules import scoring
    from fraudarena_env.rules.catalog import CONFIDENCE_BUCKETS, MAX_SLOTS
    from fraudarena_env.vector_end import _Calibration

    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 8))
    values = np.asarray(CONFIDENCE_BUCKETS + (0.1, 0.3), np.float32)  # every bin
    confidence = values[rng.integers(0, len(values), (k, MAX_SLOTS))]
    manual = rng.random((k, MAX_SLOTS)) < rng.random((k, 1))
    right = rng.random((k, MAX_SLOTS)) < 0.7
    calibration = _Calibration(confidence, manual, right)
    for j, bins in enumerate(calibration.bins()):
        by_hand = np.flatnonzero(manual[j])
        conf, ok = confidence[j, by_hand].tolist(), right[j, by_hand].tolist()
        assert bins == scoring.calibration_bins(conf, ok)
        assert calibration.skill[j] == scoring.calibration_skill(conf, ok)


@pytest.mark.parametrize("copy_out", [True, False])
def test_writing_into_a_batchs_current_agent_does_not_change_the_next_batches(copy_out):
    """current_agent was the env's own record of whose view each output row holds: a caller
    writing into it made the env keep stale mask entries, and the next step applied an action
    beyond the role's catalogue (IndexError)."""
    def run(overwrite):
        venv = VectorFraudArena(4, task_id="task_3", copy=copy_out)
        batch, out = venv.reset(seed=3), []
        for _ in range(40):
            actions = venv.sample_actions(batch.action_mask)
            if overwrite:
                batch.current_agent[:] = 0
            batch = venv.step(actions)
            out.append(batch.action_mask.copy())
        return out

    for mine, theirs in zip(run(False), run(True)):
        np.testing.assert_array_equal(mine, theirs)


def test_final_view_holds_only_the_last_steps_endings_even_once_no_role_is_kept():
    venv, batch = _to_first_ending(3)
    assert venv.final_view.keys() == venv.final_info.keys()
    venv.keep_final_view = None
    batch = venv.step(venv.sample_actions(batch.action_mask))
    assert venv.final_view == {}


def test_a_closed_env_refuses_every_call_that_reads_or_plays_its_matches():
    venv = VectorFraudArena(2)
    batch = venv.reset(seed=0)
    venv.close()
    venv.close()  # twice is harmless
    calls = (lambda: venv.step(venv.sample_actions(batch.action_mask)), venv.reset,
             venv.global_state, lambda: venv.labels_of([0], [0]),
             lambda: venv.illegal_reason(0, 0))
    for call in calls:
        with pytest.raises(RuntimeError, match="closed; build a new one"):
            call()


def test_illegal_reason_says_why_or_that_the_index_is_legal_and_checks_its_env():
    venv = VectorFraudArena(2, task_id="task_1")
    with pytest.raises(RuntimeError, match=r"illegal_reason\(\) before reset\(\)"):
        venv.illegal_reason(0, 0)
    batch = venv.reset(seed=0)
    mask = batch.action_mask[0]
    legal, illegal = int(np.flatnonzero(mask)[0]), int(np.flatnonzero(mask == 0)[0])
    with pytest.raises(ValueError, match=f"index {legal} .* is legal in env 0"):
        venv.illegal_reason(0, legal)
    role, reason = venv.illegal_reason(0, illegal)
    assert role == "fraudster" and f"index {illegal} is" in reason
    for m in (-1, 2, 1.0, True):
        with pytest.raises(ValueError, match="m must be an env number from 0 to 1"):
            venv.illegal_reason(m, illegal)


def test_a_huge_unsigned_action_is_named_as_given_not_as_it_would_wrap():
    venv = VectorFraudArena(2, task_id="task_1")
    venv.reset(seed=0)
    actions = np.array([0, 2**63 + 5], np.uint64)
    with pytest.raises(IllegalActionError, match=r"env 1: index 9223372036854775813 is outside"):
        venv.step(actions)


def test_a_shards_errors_name_envs_by_the_whole_batch():
    """A shard of a larger batch (``first_env``: its first env there) names its envs as the
    whole batch does."""
    venv = VectorFraudArena(2, task_id="task_1", first_env=6, seed_stride=8)
    batch = venv.reset(seed=0)
    actions = venv.sample_actions(batch.action_mask)
    actions[1] = int(np.flatnonzero(batch.action_mask[1] == 0)[0])
    with pytest.raises(IllegalActionError, match="env 7: "):
        venv.step(actions)
    empty = int(np.flatnonzero(~venv.state.present[0])[0])
    with pytest.raises(ValueError, match=f"env 6 has no ad in slot {empty}"):
        venv.labels_of([0], [empty])
    with pytest.raises(ValueError, match="first_env must be a non-negative integer"):
        VectorFraudArena(2, first_env=-1)


@pytest.mark.parametrize("tasks", [{"task_1", "task_3"}, frozenset({"task_2"}),
                                   {"task_1": 1}])
def test_tasks_given_in_no_fixed_order_are_refused(tasks):
    """A set's order changes from one process to the next: which env plays which task would
    too, and a run would not replay from its seed."""
    with pytest.raises(ValueError, match="its order is not fixed"):
        VectorFraudArena(2, task_id=tasks)
