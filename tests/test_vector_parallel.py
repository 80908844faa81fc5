"""``ParallelVectorFraudArena`` gives exactly ``VectorFraudArena``'s batches, its envs split over
worker processes."""

from __future__ import annotations

import numpy as np
import pytest

from fraudarena_env import IllegalActionError
from fraudarena_env.vector import VectorFraudArena
from fraudarena_env.vector_parallel import ParallelVectorFraudArena, WorkerError


def _same_batches(task_id, num_envs: int, workers: int, steps: int, seed: int = 5,
                  active_every: int = 3, **kwargs) -> int:
    """Step a single-process env and a parallel one on the same actions (and, every
    ``active_every`` steps, the same random subset of active envs); compare every batch and
    every final_info. Returns how many matches ended."""
    one = VectorFraudArena(num_envs, task_id=task_id, **kwargs)
    ended = 0
    with ParallelVectorFraudArena(num_envs, task_id=task_id, workers=workers, **kwargs) as many:
        x, y = one.reset(seed=seed), many.reset(seed=seed)
        for step in range(steps + 1):
            for field in x._fields:
                np.testing.assert_array_equal(getattr(x, field), getattr(y, field),
                                              err_msg=f"{field}, step {step}")
            assert one.final_info == many.final_info, step
            ended += len(one.final_info)
            if step == steps:
                return ended
            actions = one.sample_actions(x.action_mask)
            np.testing.assert_array_equal(actions, many.sample_actions(y.action_mask))
            active = None
            if step % active_every == 0:
                active = np.random.default_rng(step).random(num_envs) < 0.6
            x, y = one.step(actions, active=active), many.step(actions, active=active)
    return ended


@pytest.mark.parametrize("task_id, workers", [("task_3", 2), (("task_1", "task_2"), 3),
                                              ("task_3_unseen", 1)])
def test_every_batch_equals_the_single_process_envs(task_id, workers):
    # short matches (max_cycles 40), so that many end, truncated or not, and reset on their seeds
    assert _same_batches(task_id, 23, workers, steps=250, max_cycles=40) >= 30


def test_more_workers_than_envs_gives_one_env_each():
    with ParallelVectorFraudArena(2, workers=4) as venv:
        assert venv.workers == 2
        batch = venv.reset(seed=0)
        assert batch.observation.shape == (2, venv.vector_size)


def test_match_knobs_reach_the_workers():
    assert _same_batches("task_2", 5, 2, steps=120, max_rounds=2, max_proposals=1) >= 5


def test_an_illegal_action_is_refused_before_any_worker_moves():
    one = VectorFraudArena(6, task_id="task_1")
    with ParallelVectorFraudArena(6, task_id="task_1", workers=2) as many:
        x, y = one.reset(seed=1), many.reset(seed=1)
        actions = one.sample_actions(x.action_mask)
        many.sample_actions(y.action_mask)
        bad = actions.copy()
        bad[4] = int(np.flatnonzero(y.action_mask[4] == 0)[0])  # env 4: the second worker's
        with pytest.raises(IllegalActionError, match="env 4: .*nothing was applied"):
            many.step(bad)
        with pytest.raises(IllegalActionError, match="env 0: .*outside"):
            many.step(np.full(6, 10_000))
        # nothing moved: the same actions give the single-process env's next batch
        x, y = one.step(actions), many.step(actions)
        np.testing.assert_array_equal(x.observation, y.observation)
        np.testing.assert_array_equal(x.rewards, y.rewards)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        ParallelVectorFraudArena(4, workers=0)
    with pytest.raises(ValueError, match="unknown task_id"):
        ParallelVectorFraudArena(4, task_id="task_9")
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        ParallelVectorFraudArena(0)
    with ParallelVectorFraudArena(3) as venv:
        with pytest.raises(RuntimeError, match="before reset"):
            venv.step(np.zeros(3, np.int64))
        venv.reset(seed=0)
        with pytest.raises(ValueError, match="shape"):
            venv.step(np.zeros(2, np.int64))


def test_a_closed_env_says_so_and_closing_twice_is_harmless():
    venv = ParallelVectorFraudArena(3, copy=False)
    batch = venv.reset(seed=0)
    seen = batch.observation.copy()
    processes = list(venv._processes)
    venv.close()
    venv.close()
    assert not any(p.is_alive() for p in processes)
    np.testing.assert_array_equal(batch.observation, seen)  # a batch kept stays readable
    with pytest.raises(RuntimeError, match="closed"):
        venv.step(np.zeros(3, np.int64) + batch.action_mask.argmax(axis=1))


def test_a_workers_failure_is_raised_with_its_traceback():
    with ParallelVectorFraudArena(4, workers=2) as venv:
        venv.reset(seed=0)
        with pytest.raises(WorkerError, match="(?s)worker 0 .*unknown command"):
            venv._command("no such command")


def test_the_vector_benchmark_times_both_envs_against_the_scalar_env():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "bench_vector.py"
    spec = importlib.util.spec_from_file_location("bench_vector", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--envs", "3", "--seconds", "0.05", "--workers", "2"])
    assert set(results) == {"scalar", 3, "scalar_wall", ("parallel", 3)}
    assert all(rate > 0 for rate in results.values())
