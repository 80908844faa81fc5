"""``VectorRoleEnv(..., workers=W)``: the seat split among worker processes plays, env by env,
what the seat plays in one process."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from fraudarena_env import IllegalActionError  # noqa: E402
from fraudarena_env.policies import RandomPolicy  # noqa: E402
from fraudarena_env.sb3_vector import VectorRoleEnv  # noqa: E402
from fraudarena_env.seat_workers import WorkerError, split  # noqa: E402


def _play(venv: VectorRoleEnv, rng: np.random.Generator, steps: int) -> list:
    """Random legal learner actions for ``steps`` steps, the last legal one (the auditor's
    report, the investigator's turn end) a time in five: what the learner saw, step by step."""
    seen = []
    for _ in range(steps):
        masks = venv.action_masks()
        actions = np.array([np.flatnonzero(m)[-1] if rng.random() < 0.2 else
                            rng.choice(np.flatnonzero(m)) for m in masks])
        seen.append((masks, venv.step(actions)))
    return seen


def _assert_same(one: list, other: list) -> None:
    for step, ((masks_a, (obs_a, rew_a, done_a, info_a)),
               (masks_b, (obs_b, rew_b, done_b, info_b))) in enumerate(zip(one, other)):
        np.testing.assert_array_equal(masks_a, masks_b, err_msg=f"masks, step {step}")
        np.testing.assert_array_equal(obs_a, obs_b, err_msg=f"views, step {step}")
        np.testing.assert_array_equal(rew_a, rew_b, err_msg=f"rewards, step {step}")
        np.testing.assert_array_equal(done_a, done_b, err_msg=f"dones, step {step}")
        for i, (a, b) in enumerate(zip(info_a, info_b)):
            assert a.keys() == b.keys(), (step, i)
            for key in a:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{key}, step {step} env {i}")
    assert len(one) == len(other)


def _seat_runs(workers: int, role: str, opponents=None, **kwargs) -> list:
    """Through matches' ends and new matches: a first reset, steps, a seeded reset, steps, an
    unseeded reset (matches none of the envs played), steps."""
    venv = VectorRoleEnv(role, 5, opponents=opponents, task_id=["task_2", "task_3", "task_1"],
                         seed_offset=40, workers=workers, **kwargs)
    rng = np.random.default_rng(3)
    try:
        runs = [venv.reset(), _play(venv, rng, 45)]
        venv.seed(9)
        runs += [venv.reset(), _play(venv, rng, 20)]
        runs += [venv.reset(), _play(venv, rng, 20)]
    finally:
        venv.close()
    return runs


@pytest.mark.parametrize("role, workers", [("fraudster", 2), ("investigator", 2),
                                           ("investigator", 5), ("auditor", 3)])
def test_a_seat_in_workers_plays_what_one_process_plays(role, workers):
    """The same views, masks, rewards and endings (the last view of each match included) as one
    process: each block of envs plays its envs' seeds, tasks and opponents."""
    one, split_up = _seat_runs(1, role), _seat_runs(workers, role)
    for i in (0, 2, 4):  # the views a reset gives
        np.testing.assert_array_equal(one[i], split_up[i])
    for i in (1, 3, 5):
        _assert_same(one[i], split_up[i])
    ended = sum(bool(done.any()) for _, (_, _, done, _) in one[1])
    assert ended  # matches ended, and new ones started on the seeds of their envs


def test_opponents_made_per_env_play_in_their_envs_worker():
    """A callable's fresh opponents (here a random fraudster per env, reseeded per match) play
    as in one process."""
    def opponents():
        return {"fraudster": RandomPolicy()}

    one = _seat_runs(1, "investigator", opponents)
    split_up = _seat_runs(2, "investigator", opponents)
    for i in (1, 3, 5):
        _assert_same(one[i], split_up[i])


def test_an_illegal_action_is_refused_before_any_worker_plays():
    """As in one process: the error names the env (by its place in the whole seat) and why,
    and nothing of the step is applied in any block."""
    venvs = [VectorRoleEnv("investigator", 4, task_id="task_1", workers=w) for w in (1, 2)]
    try:
        masks = [venv.reset() is not None and venv.action_masks() for venv in venvs]
        np.testing.assert_array_equal(*masks)
        bad = np.array([np.flatnonzero(m)[0] for m in masks[0]])
        bad[3] = np.flatnonzero(~masks[0][3])[0]
        messages = []
        for venv in venvs:
            with pytest.raises(IllegalActionError, match="env 3: .*nothing was applied") as caught:
                venv.step(bad)
            messages.append(str(caught.value))
        assert messages[0] == messages[1]
        too_big = bad.copy()
        too_big[2] = 10_000
        with pytest.raises(IllegalActionError, match="env 2: index 10000 is outside"):
            venvs[1].step(too_big)
        good = np.array([np.flatnonzero(m)[0] for m in masks[0]])
        steps = [venv.step(good) for venv in venvs]  # as if never tried
        for a, b in zip(*steps):
            if isinstance(a, list):
                assert a == b
            else:
                np.testing.assert_array_equal(a, b)
    finally:
        for venv in venvs:
            venv.close()


def test_labels_of_reads_each_envs_worker():
    venvs = [VectorRoleEnv("investigator", 5, task_id="task_3", workers=w) for w in (1, 2)]
    try:
        for venv in venvs:
            venv.reset()
        envs, slots = np.nonzero(venvs[0].venv.state.present)  # every ad of every env
        assert set(envs.tolist()) == set(range(5))
        np.testing.assert_array_equal(venvs[0].labels_of(envs, slots),
                                      venvs[1].labels_of(envs, slots))
    finally:
        for venv in venvs:
            venv.close()


@pytest.mark.parametrize("workers", [0, 5, True, 1.5, "2"])
def test_a_number_of_workers_that_cannot_split_the_envs_is_refused(workers):
    with pytest.raises(ValueError, match=r"workers must be an integer from 1 to num_envs \(4\)"):
        VectorRoleEnv("investigator", 4, workers=workers)


def test_close_stops_the_workers_and_a_closed_seat_says_so():
    venv = VectorRoleEnv("fraudster", 4, task_id="task_1", workers=2)
    venv.reset()
    processes = list(venv._shards.processes)
    assert all(p.is_alive() for p in processes)
    venv.close()
    assert not any(p.is_alive() for p in processes)
    venv.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="closed; build a new one"):
        venv.reset()


def test_an_error_in_a_worker_is_raised_here_with_the_workers_traceback():
    """Opponents that fail where they are made (in the worker): the same error as in one
    process, its cause the worker's traceback."""
    def opponents():
        return {"fraudster": "no_such_fraudster"}

    with pytest.raises(ValueError) as here:
        VectorRoleEnv("investigator", 2, opponents=opponents)
    with pytest.raises(ValueError) as there:
        VectorRoleEnv("investigator", 2, opponents=opponents, workers=2)
    assert str(there.value) == str(here.value)
    assert isinstance(there.value.__cause__, WorkerError)
    assert "Traceback" in str(there.value.__cause__)


def test_a_match_cut_before_the_learners_first_turn_names_its_env_in_the_whole_seat():
    """The second block's env is named by its place in the seat (env 1), not in its block."""
    for workers in (1, 2):
        venv = VectorRoleEnv("auditor", 2, task_id="task_1", max_cycles=14, seed_offset=0,
                             workers=workers)
        venv.seed(0)  # env 0 plays seed 0, which reaches the audit in time; env 1 seed 1
        try:
            with pytest.raises(RuntimeError, match="ended before the auditor's first turn") as e:
                venv.reset()
                for _ in range(60):
                    venv.step(np.array([np.flatnonzero(m)[0] for m in venv.action_masks()]))
            if workers == 1:
                expected = str(e.value)
                assert expected.startswith("env 1: the match on seed 1 ")
            else:
                assert str(e.value) == expected
        finally:
            venv.close()


def test_blocks_cover_the_envs_in_order_and_evenly():
    assert split(5, 2) == [(0, 2), (2, 5)] or split(5, 2) == [(0, 3), (3, 5)]
    for n, w in ((1024, 2), (7, 3), (4, 4)):
        blocks = split(n, w)
        assert blocks[0][0] == 0 and blocks[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
        sizes = [b - a for a, b in blocks]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_a_worker_that_dies_stops_the_seat_and_says_to_build_a_new_one():
    import os
    import signal

    venv = VectorRoleEnv("investigator", 4, task_id="task_1", workers=2)
    try:
        venv.reset()
        dead = venv._shards.processes[1]
        os.kill(dead.pid, signal.SIGKILL)
        dead.join(5)
        actions = np.array([np.flatnonzero(m)[0] for m in venv.action_masks()])
        with pytest.raises(RuntimeError, match=r"worker 1 of the seat exited \(exit code -9\); "
                                               r"build a new env"):
            venv.step(actions)
        assert not any(p.is_alive() for p in venv._shards.processes)  # the other one stopped too
        with pytest.raises(RuntimeError, match="closed; build a new one"):
            venv.reset()
    finally:
        venv.close()


class _Failure(Exception):
    """An error of the user's own, raised by an opponent in the middle of play."""


class _IllegalInEnv3(RandomPolicy):
    """A fraudster that plays a masked-out action in the match of env 3 (seed 3 of the seat),
    and random legal actions elsewhere: the error names the env that raised it."""

    def __init__(self, seed: int | None = None):
        super().__init__("fraudster", seed)

    def act_tensor(self, vector, mask):
        if self.seed == _seed_of_env3():
            return int(np.flatnonzero(mask == 0)[0])
        return super().act_tensor(vector, mask)


class _FailingInEnv3(_IllegalInEnv3):
    def act_tensor(self, vector, mask):
        if self.seed == _seed_of_env3():
            raise _Failure("the opponent of env 3 failed")
        return super().act_tensor(vector, mask)


def _seed_of_env3() -> int:
    from fraudarena_env.role_env import _derived_seed
    return _derived_seed(3, "fraudster")  # the fraudster's seed in env 3's first match (s = 0)


@pytest.mark.parametrize("opponent, kind", [(_IllegalInEnv3, IllegalActionError),
                                            (_FailingInEnv3, _Failure)])
def test_an_error_from_a_worker_keeps_its_class_and_names_the_env_in_the_whole_seat(opponent,
                                                                                    kind):
    """The same error as in one process, whatever its class (the package's own, a user's):
    code that catches it works with workers too, and its message names env 3, not env 1 of
    the second block."""
    raised = []
    for workers in (1, 2):
        venv = VectorRoleEnv("investigator", 4, opponents=lambda: {"fraudster": opponent()}, seed_offset=0,
                             workers=workers)
        try:
            with pytest.raises(kind) as error:
                venv.reset()
        finally:
            venv.close()
        raised.append(error.value)
    assert type(raised[1]) is type(raised[0])
    assert str(raised[1]) == str(raised[0])
    assert isinstance(raised[1].__cause__, WorkerError)
    if kind is IllegalActionError:
        assert "env 3:" in str(raised[1])


def test_labels_of_checks_its_arguments_alike_in_one_process_and_in_workers():
    venvs = [VectorRoleEnv("investigator", 4, task_id="task_3", seed_offset=0, workers=w)
             for w in (1, 2)]
    try:
        for venv in venvs:
            venv.reset()
        present = np.flatnonzero(venvs[0].venv.state.present[3])
        empty = np.flatnonzero(~venvs[0].venv.state.present[3])
        for venv in venvs:
            assert venv.labels_of(3, int(present[0])).shape == (1,)  # numbers: one entry
            assert venv.labels_of([], []).shape == (0,)
            with pytest.raises(ValueError, match="envs must be from 0 to 3; got -1"):
                venv.labels_of([-1, 0], [0, 0])
            with pytest.raises(ValueError, match="envs must be from 0 to 3; got 7"):
                venv.labels_of([7], [0])
            with pytest.raises(ValueError, match="slots must be from 0 to 31; got 32"):
                venv.labels_of([0], [32])
            with pytest.raises(ValueError, match="as long as each other"):
                venv.labels_of([0, 1], [0])
            with pytest.raises(ValueError, match=f"env 3 has no ad in slot {empty[0]}"):
                venv.labels_of([3], [int(empty[0])])
        envs, slots = np.nonzero(venvs[0].venv.state.present)
        np.testing.assert_array_equal(venvs[0].labels_of(envs, slots),
                                      venvs[1].labels_of(envs, slots))
    finally:
        for venv in venvs:
            venv.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_closed_seat_refuses_alike_with_one_worker_or_more(workers):
    venv = VectorRoleEnv("fraudster", 4, task_id="task_1", workers=workers)
    with pytest.raises(RuntimeError, match=r"action_masks\(\) before reset\(\)"):
        venv.action_masks()
    venv.reset()
    venv.close()
    for call in (venv.reset, venv.action_masks):
        with pytest.raises(RuntimeError, match="closed; build a new one"):
            call()
