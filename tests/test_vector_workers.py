"""``ShardedVectorFraudArena``: the vector env's matches in worker processes play, env by env and
step by step, what ``VectorFraudArena`` plays in one process."""

from __future__ import annotations

import numpy as np
import pytest

from fraudarena_env import IllegalActionError
from fraudarena_env.seat_workers import WorkerError
from fraudarena_env.vector import VectorFraudArena
from fraudarena_env.vector_workers import ShardedVectorFraudArena

SETTINGS = dict(task_id=["task_1", "task_3", "task_2"], max_cycles=60)  # some matches cut


def _same_batch(a, b, step) -> None:
    for name, x, y in zip(a._fields, a, b):
        np.testing.assert_array_equal(x, y, err_msg=f"{name}, step {step}")
        assert x.dtype == y.dtype, (name, step)


@pytest.mark.parametrize("num_envs, workers", [(7, 3), (5, 2), (4, 4)])
def test_every_env_plays_what_the_one_process_env_plays(num_envs, workers):
    """Batches, endings (``final_info``, ``final_view``), global states and sampled actions,
    some steps with only some envs acting, across resets of the matches that end."""
    one = VectorFraudArena(num_envs, **SETTINGS)
    split_up = ShardedVectorFraudArena(num_envs, workers=workers, **SETTINGS)
    try:
        for venv in (one, split_up):
            venv.keep_final_view = "investigator"
        a, b = one.reset(seed=5), split_up.reset(seed=5)
        assert one.seed == split_up.seed == 5
        rng = np.random.default_rng(0)
        endings = 0
        for step in range(260):
            _same_batch(a, b, step)
            assert one.final_info == split_up.final_info, step
            assert one.final_view.keys() == split_up.final_view.keys(), step
            for m, view in one.final_view.items():
                np.testing.assert_array_equal(view, split_up.final_view[m])
            endings += len(one.final_info)
            if step % 23 == 0:
                np.testing.assert_array_equal(one.global_state(), split_up.global_state())
            actions = one.sample_actions(a.action_mask)
            np.testing.assert_array_equal(actions, split_up.sample_actions(b.action_mask))
            active = rng.random(num_envs) < 0.7 if step % 3 == 0 else None
            a, b = one.step(actions, active), split_up.step(actions, active)
        assert endings >= num_envs  # every env ended matches, cut ones included
        envs, slots = np.array([num_envs - 1, 0, 1, num_envs - 1]), np.array([0, 1, 2, 3])
        np.testing.assert_array_equal(one.labels_of(envs, slots),
                                      split_up.labels_of(envs, slots))
    finally:
        split_up.close()


def test_an_illegal_action_is_refused_before_any_block_plays():
    one = VectorFraudArena(4, task_id="task_1")
    split_up = ShardedVectorFraudArena(4, workers=2, task_id="task_1")
    try:
        a, b = one.reset(seed=1), split_up.reset(seed=1)
        actions = one.sample_actions(a.action_mask)
        split_up.sample_actions(b.action_mask)
        bad = actions.copy()
        bad[3] = np.flatnonzero(a.action_mask[3] == 0)[0]
        errors = []
        for venv in (one, split_up):
            with pytest.raises(IllegalActionError, match="env 3: .*nothing was applied") as e:
                venv.step(bad)
            errors.append(str(e.value))
        assert errors[0] == errors[1]
        bad[3] = 5_000  # outside every catalogue
        with pytest.raises(IllegalActionError, match="env 3: index 5000 is outside"):
            split_up.step(bad)
        a, b = one.step(actions), split_up.step(actions)  # as if never tried
        _same_batch(a, b, 0)
        actions = one.sample_actions(a.action_mask)
        split_up.sample_actions(b.action_mask)
        actions[3] = 5_000  # env 3 sits this step out: its action is not read
        active = np.array([True, True, True, False])
        _same_batch(one.step(actions, active), split_up.step(actions, active), 1)
    finally:
        split_up.close()


def test_bad_settings_are_refused_here_before_any_worker_starts():
    with pytest.raises(ValueError, match="unknown task_id 'task_9'"):
        ShardedVectorFraudArena(4, workers=2, task_id="task_9")
    with pytest.raises(ValueError, match=r"unknown match knob\(s\) \['rounds'\]"):
        ShardedVectorFraudArena(4, workers=2, rounds=3)
    for workers in (0, 5, True, 2.0):
        with pytest.raises(ValueError, match=r"workers must be an integer from 1 to num_envs"):
            ShardedVectorFraudArena(4, workers=workers)
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        ShardedVectorFraudArena(0)


def test_steps_before_reset_and_after_close_say_what_to_do():
    venv = ShardedVectorFraudArena(2, workers=2)
    with pytest.raises(RuntimeError, match=r"call reset\(seed=\.\.\.\) first"):
        venv.step(np.zeros(2, np.int64))
    with pytest.raises(RuntimeError, match=r"call reset\(seed=\.\.\.\) first"):
        venv.global_state()
    processes = list(venv._shards.processes)
    venv.close()
    assert not any(p.is_alive() for p in processes)
    with pytest.raises(RuntimeError, match="closed; build a new one"):
        venv.reset(seed=0)


def test_batches_are_copies_or_read_only_views_as_asked():
    for copy in (True, False):
        venv = ShardedVectorFraudArena(2, workers=2, copy=copy)
        try:
            batch = venv.reset(seed=0)
            assert batch.observation.flags.writeable == copy
            assert batch.action_mask.flags.writeable == copy
            before = batch.observation.copy()
            venv.step(venv.sample_actions(batch.action_mask))
            changed = not np.array_equal(batch.observation, before)
            assert changed != copy  # a view follows the env; a copy keeps the step it was
        finally:
            venv.close()


def test_a_wrong_keep_final_view_is_refused_and_an_error_in_a_worker_names_its_cause():
    venv = ShardedVectorFraudArena(2, workers=2)
    try:
        with pytest.raises(ValueError, match="keep_final_view must be one of"):
            venv.keep_final_view = "judge"
        venv.reset(seed=0)
        with pytest.raises(IndexError) as caught:  # env 1 has no slot 99 (raised in its worker)
            venv.labels_of(np.array([1]), np.array([99]))
        assert isinstance(caught.value.__cause__, WorkerError)
        assert "in worker 1" in str(caught.value.__cause__)
    finally:
        venv.close()


def test_a_vector_env_writes_its_batches_into_the_buffers_it_is_given():
    """``buffers``: how a block writes straight into the shared rows."""
    obs, mask = np.zeros((2, VectorFraudArena(1).vector_size), np.float32), \
        np.zeros((2, VectorFraudArena(1).n_actions), np.int8)
    venv = VectorFraudArena(2, copy=False, buffers=(obs, mask))
    batch = venv.reset(seed=3)
    np.testing.assert_array_equal(batch.observation, obs)
    np.testing.assert_array_equal(batch.action_mask, mask)
    assert mask.any(axis=1).all()  # written in place
    with pytest.raises(ValueError, match=r"buffers: the mask array must be a writeable, "
                                         r"C-contiguous int8 array of shape \(2, "):
        VectorFraudArena(2, buffers=(obs, mask.astype(bool)))
    with pytest.raises(ValueError, match="buffers: the observation array"):
        VectorFraudArena(3, buffers=(obs, mask))
