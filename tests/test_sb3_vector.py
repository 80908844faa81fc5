"""``VectorRoleEnv`` plays, env by env, the matches ``RoleEnv`` plays on the same seeds."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from fraudarena_env.policies import (  # noqa: E402
    BatchedScriptedInvestigator,
    PerEnvPolicies,
    RandomPolicy,
    ScriptedInvestigator,
)
from fraudarena_env.role_env import RoleEnv  # noqa: E402
from fraudarena_env.rules.catalog import TASK_IDS  # noqa: E402
from fraudarena_env.sb3_vector import VectorRoleEnv  # noqa: E402


def _lockstep(role: str, task_id, seed: int, num_envs: int, steps: int,
              opponents=None, small_batch: int | None = None, max_cycles: int = 1000) -> int:
    """Drive VectorRoleEnv and one RoleEnv per env on the same learner actions; compare
    observations, masks, rewards and endings (the last observation of a match included, which
    SB3 bootstraps a truncated match from). Returns how many episodes ended. ``small_batch``:
    the batched scripted investigator's (0: it decides every batch with arrays)."""
    venv = VectorRoleEnv(role, num_envs, opponents=opponents, task_id=task_id, seed_offset=seed,
                         max_cycles=max_cycles)
    if small_batch is not None:
        venv._players["investigator"].small_batch = small_batch
    obs = venv.reset()
    tasks = (task_id,) if isinstance(task_id, str) else task_id
    envs = [RoleEnv(role, opponents=opponents() if callable(opponents) else opponents,
                    task_id=tasks[i % len(tasks)], max_cycles=max_cycles)
            for i in range(num_envs)]
    resets = [0] * num_envs
    for i, env in enumerate(envs):
        first, _ = env.reset(seed=seed + i)
        np.testing.assert_array_equal(obs[i], first)
    rng = np.random.default_rng(seed)
    ended = 0
    for step in range(steps):
        masks = venv.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        for i, env in enumerate(envs):
            np.testing.assert_array_equal(masks[i], env.action_masks(), err_msg=f"{step} {i}")
        obs, rewards, dones, infos = venv.step(actions)
        for i, env in enumerate(envs):
            o, r, term, trunc, info = env.step(int(actions[i]))
            assert rewards[i] == np.float32(r), (step, i)
            assert dones[i] == (term or trunc), (step, i)
            if term or trunc:
                ended += 1
                assert infos[i]["grader_score"] == info["grader_score"]
                assert infos[i]["end_reason"] == info["end_reason"]
                assert infos[i]["TimeLimit.truncated"] == (trunc and not term)
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o,
                                              err_msg=f"last view, step {step} env {i}")
                resets[i] += 1
                o, _ = env.reset(seed=seed + i + resets[i] * num_envs)
            else:
                assert infos[i] == {}
            np.testing.assert_array_equal(obs[i], o, err_msg=f"step {step} env {i}")
    return ended


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_the_investigators_seat_plays_role_envs_matches(task_id):
    assert _lockstep("investigator", task_id, seed=11, num_envs=4, steps=120) > 0


@pytest.mark.parametrize("task_id", ["task_2", "task_3"])
def test_the_fraudsters_seat_plays_role_envs_matches(task_id):
    assert _lockstep("fraudster", task_id, seed=5, num_envs=4, steps=40) > 0


def test_several_tasks_in_turn():
    assert _lockstep("investigator", ("task_3", "task_1"), seed=2, num_envs=4, steps=100) > 0


def test_the_auditors_seat_plays_role_envs_matches():
    assert _lockstep("auditor", ("task_1", "task_3"), seed=3, num_envs=4, steps=60) > 0


@pytest.mark.parametrize("role, max_cycles", [("investigator", 5), ("investigator", 12),
                                              ("fraudster", 8)])
def test_a_match_cut_by_max_cycles_ends_on_the_view_role_env_ends_on(role, max_cycles):
    """SB3 bootstraps a truncated match from ``terminal_observation``: it must be the view the
    learner would have now (it was the view of its last turn: another round, phase and budget,
    and, while the fraudster moves, ads the investigator does not see yet)."""
    assert _lockstep(role, ("task_3", "task_2"), seed=0, num_envs=4, steps=150,
                     max_cycles=max_cycles) > 10


def test_the_fraudsters_seat_through_many_matches_with_the_batched_investigator():
    """Long enough to meet a state where every pending ad has had all its pulls (the batched
    investigator once pulled a decided ad there, masked, and played end_turn)."""
    assert _lockstep("fraudster", ("task_1", "task_2", "task_3_unseen"), seed=5, num_envs=6,
                     steps=300) > 100


@pytest.mark.parametrize("task_id", ["task_1", "task_3"])
def test_the_batched_scripted_investigator_plays_role_envs_matches(task_id):
    assert _lockstep("fraudster", task_id, seed=9, num_envs=6, steps=30, small_batch=0) > 0


def test_the_scripted_investigator_opponent_is_batched_and_others_are_per_env():
    assert isinstance(VectorRoleEnv("fraudster", 2)._players["investigator"],
                      BatchedScriptedInvestigator)
    def own():
        return {"investigator": ScriptedInvestigator()}
    assert isinstance(VectorRoleEnv("fraudster", 2, opponents=own)._players["investigator"],
                      PerEnvPolicies)


def test_random_opponents_built_per_env():
    def opponents():
        return {"fraudster": RandomPolicy("fraudster"), "auditor": "random"}
    assert _lockstep("investigator", "task_3", seed=3, num_envs=3, steps=80,
                     opponents=opponents) > 0


def test_one_policy_object_for_every_env_is_refused():
    shared = RandomPolicy("fraudster")
    with pytest.raises(ValueError, match="callable that returns fresh opponents"):
        VectorRoleEnv("investigator", 2, opponents={"fraudster": shared})


def test_maskable_ppo_learns_on_it_and_never_picks_a_masked_action():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    venv = VectorRoleEnv("investigator", 8, task_id="task_1", seed_offset=100_000)
    model = MaskablePPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=0,
                        policy_kwargs=dict(net_arch=[32]), device="cpu")
    model.learn(256)
    obs = venv.reset()
    for _ in range(20):
        masks = get_action_masks(venv)
        actions, _ = model.predict(obs, action_masks=masks, deterministic=False)
        assert masks[np.arange(8), actions].all()
        obs, *_ = venv.step(actions)


def _train_module():
    from fraudarena_env import cli

    return cli.load_script(cli.TRAIN_SCRIPT, "fraudarena_selfplay").one_role  # train.py


@pytest.mark.parametrize("role, path", [("investigator", ["--vector-envs", "16", "--n-steps", "16"]),
                                        ("fraudster", ["--vector-envs", "16", "--n-steps", "16"]),
                                        ("investigator", ["--vector-envs", "0", "--n-envs", "2",
                                                          "--n-steps", "64"]),
                                        ("investigator", ["--net", "slot"]),  # the defaults
                                        ("fraudster", [])])
def test_train_py_gives_the_same_agent_twice(tmp_path, capsys, role, path):
    """Reproducible runs: the same train.py command and seed, on the batched path (train.py's
    default, the slot network's sampler included) or on RoleEnvs, give the same weights, and checkpoints that play identically (``fraudarena
    evaluate --json`` equal)."""
    import torch
    from sb3_contrib import MaskablePPO

    from fraudarena_env import cli

    train = _train_module()
    args = ["--role", role, "--task", "task_2", "--timesteps", "256",
            "--imitation-samples", "0", "--eval-every", "0", "--val-seeds", "3000-3001",
            "--net", "mlp", "--no-progress", "--no-tensorboard", *path]
    runs = []
    for name in "ab":
        train.main([*args, "--out", str(tmp_path / name)])
        checkpoint = tmp_path / name / "last.zip"
        weights = [p.detach().clone() for p in
                   MaskablePPO.load(checkpoint, device="cpu").policy.parameters()]
        capsys.readouterr()
        cli.main(["evaluate", "--task", "task_2", "--seeds", "7000-7002", f"--{role}",
                  str(checkpoint), "--json", "--no-progress"])
        played = capsys.readouterr().out.replace(str(tmp_path / name), "CHECKPOINT")
        runs.append((weights, played))
    (wa, pa), (wb, pb) = runs
    assert all(torch.equal(x, y) for x, y in zip(wa, wb))
    assert pa == pb and "CHECKPOINT" in pa


@pytest.mark.parametrize("role", ["fraudster", "investigator"])
def test_train_py_gives_the_same_agent_with_workers_as_in_one_process(tmp_path, role):
    """``--workers``: the matches split among worker processes are the same matches, so the
    same command trains the same weights with any number of workers."""
    import torch
    from sb3_contrib import MaskablePPO

    train = _train_module()
    args = ["--role", role, "--task", "task_2,task_3", "--timesteps", "256", "--vector-envs",
            "16", "--n-steps", "16", "--imitation-samples", "0", "--eval-every", "0",
            "--val-seeds", "3000-3001", "--net", "mlp", "--no-progress", "--no-tensorboard"]
    weights = []
    for workers in ("1", "3"):
        out = tmp_path / workers
        train.main([*args, "--workers", workers, "--out", str(out)])
        assert json.loads((out / "config.json").read_text())["workers"] == int(workers)
        weights.append([p.detach().clone() for p in MaskablePPO.load(
            out / "last.zip", device="cpu").policy.parameters()])
    assert all(torch.equal(x, y) for x, y in zip(*weights))


@pytest.mark.parametrize("argv, error", [
    (["--workers", "0"], "--workers must be from 1 to the number of matches (256)"),
    (["--vector-envs", "4", "--workers", "5"], "--workers must be from 1 to the number of "
                                               "matches (4)"),
    (["--vector-envs", "0", "--workers", "2"], "--workers: the RoleEnv path (--vector-envs 0) "
                                              "runs in one process")])
def test_train_py_refuses_workers_it_cannot_use(capsys, argv, error):
    train = _train_module()
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "task_1", *argv])
    assert error in capsys.readouterr().err


def test_train_py_uses_a_worker_per_core_up_to_two_for_many_matches(monkeypatch):
    """The fraudster's 1,024 matches in 2 workers on 2 cores or more; the investigator's 256
    (and the quick job's 128), which gain nothing from them, in one process."""
    train = _train_module()
    monkeypatch.setattr(train.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert train.Config(role="fraudster").workers == 2
    assert train.Config(role="fraudster", vector_envs=512).workers == 2
    assert train.Config(role="fraudster", vector_envs=511).workers == 1
    assert train.Config(role="investigator").workers == 1
    assert train.Config(vector_envs=0).workers == 1  # RoleEnvs: one process
    monkeypatch.setattr(train.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert train.Config(role="fraudster").workers == 1


def test_train_py_refuses_a_negative_number_of_matches(capsys):
    train = _train_module()
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "task_1", "--vector-envs", "-2"])
    assert "positive number" in capsys.readouterr().err


def _checkpoint(tmp_path, role: str, seed: int):
    from sb3_contrib import MaskablePPO

    path = tmp_path / f"{role}_{seed}.zip"
    MaskablePPO("MlpPolicy", RoleEnv(role, task_id="task_2"), seed=seed, device="cpu",
                policy_kwargs=dict(net_arch=[16])).save(path)
    return path


def test_checkpoint_opponents_act_in_one_call_per_network_and_play_role_envs_matches(
        tmp_path, monkeypatch):
    """A pool of checkpoints as the fraudster: each env draws its member per match, the envs
    that drew the same one are asked together (``act_many``), and every env still plays the
    match RoleEnv plays with the same pool."""
    from fraudarena_env.sb3 import SB3Policy

    pool = [_checkpoint(tmp_path, "fraudster", s) for s in (1, 2)]
    train = _train_module()
    calls = []
    many = SB3Policy.act_many

    def spy(self, vectors, masks):
        calls.append(len(vectors))
        out = many(self, vectors, masks)
        one = [self.act_tensor(v, m) for v, m in zip(vectors, masks)]
        assert out.tolist() == one  # the same moves as one match at a time
        return out

    monkeypatch.setattr(SB3Policy, "act_many", spy)

    def opponents():
        return {"fraudster": train.PoolPolicy("fraudster", pool)}

    assert _lockstep("investigator", "task_2", seed=4, num_envs=8, steps=60,
                     opponents=opponents) > 0
    assert calls and max(calls) > 1


def test_an_unseeded_reset_plays_on_with_matches_not_yet_played():
    """As DummyVecEnv's unseeded resets do: learn() in chunks never trains twice on a match (a
    reset without a seed replayed the first matches)."""
    venv = VectorRoleEnv("investigator", 3, task_id="task_1")
    venv.reset()  # no seed(): matches 0, 1, 2 first
    first = set(venv._match_seed.tolist())
    assert first == {0, 1, 2}
    for _ in range(60):
        venv.step(np.array([np.flatnonzero(m)[0] for m in venv.action_masks()]))
    played = first | set((venv._base + np.arange(3)[:, None] + 3 * np.arange(
        venv.venv._resets.max() + 1)).ravel().tolist())
    venv.reset()
    assert not set(venv._match_seed.tolist()) & played
    venv.seed(0)
    venv.reset()
    assert set(venv._match_seed.tolist()) == first  # a seeded reset starts where it says


def test_a_match_cut_before_the_learners_first_turn_is_an_error_as_in_role_env():
    """Seed 0's match reaches the audit within 14 cycles; the next ones do not (they were
    skipped silently, and the learner's info described the last of them)."""
    venv = VectorRoleEnv("auditor", 1, task_id="task_1", max_cycles=14)
    venv.reset()
    with pytest.raises(RuntimeError, match="ended before the auditor's first turn"):
        for _ in range(60):
            venv.step(np.array([np.flatnonzero(venv.action_masks()[0])[0]]))


def test_attributes_and_methods_of_some_envs_only_are_refused_not_widened():
    venv = VectorRoleEnv("investigator", 3, task_id="task_1")
    venv.reset()
    with pytest.raises(NotImplementedError, match="call it without indices"):
        venv.set_attr("flag", 1, indices=[1])
    with pytest.raises(NotImplementedError, match="call it without indices"):
        venv.env_method("reset", indices=[1])
    venv.set_attr("flag", 1)
    assert venv.get_attr("flag") == [1, 1, 1]
    assert [m.shape for m in venv.env_method("action_masks", indices=[2])] == [(977,)]


def _unmaskable(role: str, seed: int):
    from stable_baselines3 import PPO

    return PPO("MlpPolicy", RoleEnv(role, task_id="task_2"), n_steps=8, batch_size=8, seed=seed,
               device="cpu", policy_kwargs=dict(net_arch=[16]))


def test_a_model_that_knows_no_masks_plays_the_legal_move_it_scores_highest_in_both_envs():
    model = _unmaskable("fraudster", 3)
    assert _lockstep("investigator", "task_2", seed=6, num_envs=3, steps=60,
                     opponents={"fraudster": model}) > 0


def test_each_envs_own_opponent_is_played_even_when_the_first_is_a_model():
    """The spec of env 0 was given to every env when it was a model."""
    import itertools

    models = [_unmaskable("fraudster", 1), _unmaskable("fraudster", 2), "random"]
    count = itertools.count()

    def opponents():
        return {"fraudster": models[next(count) % 3]}

    venv = VectorRoleEnv("investigator", 3, opponents=opponents, task_id="task_2")
    assert isinstance(venv._players["fraudster"], PerEnvPolicies)
    count = itertools.count()  # the lockstep's own envs draw the same specs in turn
    assert _lockstep("investigator", "task_2", seed=8, num_envs=3, steps=60,
                     opponents=opponents) > 0


@pytest.mark.parametrize("actions", [np.array([1.7, 25.7]), np.array([True, False]),
                                     np.array([0, 1, 2])])
def test_actions_that_are_not_one_integer_per_env_are_refused(actions):
    venv = VectorRoleEnv("investigator", 2, task_id="task_1")
    venv.reset()
    with pytest.raises(ValueError, match="actions must be 2 integers"):
        venv.step(actions)


@pytest.mark.parametrize("seed", [1.5, True, "3"])
def test_a_seed_that_is_not_an_integer_is_refused(seed):
    venv = VectorRoleEnv("investigator", 2, task_id="task_1")
    with pytest.raises(ValueError, match="seed must be an integer"):
        venv.seed(seed)
    with pytest.raises(ValueError, match="seed_offset must be an integer"):
        VectorRoleEnv("investigator", 2, task_id="task_1", seed_offset=seed)


def test_the_masks_env_method_gives_are_the_callers_to_keep():
    venv = VectorRoleEnv("investigator", 2, task_id="task_1")
    venv.reset()
    kept = venv.env_method("action_masks")
    before = [m.copy() for m in kept]
    venv.step(np.array([np.flatnonzero(m)[0] for m in venv.action_masks()]))
    for m, b in zip(kept, before):
        np.testing.assert_array_equal(m, b)


def test_an_action_the_learners_mask_forbids_is_refused_and_changes_nothing():
    from fraudarena_env import IllegalActionError

    venv = VectorRoleEnv("investigator", 2, task_id="task_1")
    first = venv.reset()
    masks = venv.action_masks()
    bad = np.array([np.flatnonzero(~masks[0])[0], np.flatnonzero(masks[1])[0]])
    with pytest.raises(IllegalActionError, match="env 0"):
        venv.step(bad)
    np.testing.assert_array_equal(venv.action_masks(), masks)
    other = VectorRoleEnv("investigator", 2, task_id="task_1")
    np.testing.assert_array_equal(other.reset(), first)
    good = np.array([np.flatnonzero(m)[0] for m in masks])
    np.testing.assert_array_equal(venv.step(good)[0], other.step(good)[0])  # as if never tried


def test_reset_options_are_refused_not_ignored():
    """DummyVecEnv hands set_options' knobs to each env's next reset; VectorRoleEnv played on
    with its own knobs as if never asked."""
    venv = VectorRoleEnv("investigator", 2, task_id="task_1")
    with pytest.raises(ValueError, match=r"when it is built, e.g. VectorRoleEnv\(role, n, max"):
        venv.set_options({"max_rounds": 2})
    with pytest.raises(ValueError, match="match knobs"):
        venv.set_options([{}, {"max_rounds": 2}])
    venv.set_options(None)
    venv.set_options([{}, {}])
    assert venv.reset().shape[0] == 2


@pytest.mark.parametrize("opponents, error", [
    (["random"], r"TypeError: opponents must be a dict role -> opponent"),
    (lambda: ["x"], r"TypeError: opponents must be a dict role -> opponent"),
    ({"Auditor": "random"}, r"ValueError: unknown opponent role\(s\) \['Auditor'\]"),
    ({"investigator": "random"}, r"ValueError: 'investigator' is the learning role")])
def test_opponents_are_checked_as_role_env_checks_them(opponents, error):
    """A list was 'dictionary update sequence element #0 has length 6; 2 is required'."""
    with pytest.raises((TypeError, ValueError)) as caught:
        VectorRoleEnv("investigator", 2, opponents=opponents)
    assert caught.match(error.split(": ", 1)[1]) and caught.typename == error.split(":")[0]


@pytest.mark.parametrize("seed", [-5, 2**62])
def test_a_seed_out_of_range_is_refused_by_seed_and_the_next_reset_plays_on(seed):
    """seed(-5) was taken, and then every reset() failed on it until seed() was called again."""
    venv = VectorRoleEnv("investigator", 2, task_id="task_1", seed_offset=3)
    with pytest.raises(ValueError, match=r"seed_offset \+ seed must be an integer from 0 to 2\*\*62"):
        venv.seed(seed)
    np.testing.assert_array_equal(venv.reset(), VectorRoleEnv("investigator", 2, task_id="task_1",
                                                               seed_offset=3).reset())


@pytest.mark.parametrize("seed_offset", [-1, 2**62])
def test_a_seed_offset_out_of_range_is_refused_when_the_env_is_built(seed_offset):
    with pytest.raises(ValueError, match=r"seed_offset must be an integer from 0 to 2\*\*62 - 1"):
        VectorRoleEnv("investigator", 2, task_id="task_1", seed_offset=seed_offset)


def test_a_step_before_reset_asks_for_the_vecenvs_own_reset():
    """It asked for reset(seed=...), which a VecEnv's reset does not take."""
    venv = VectorRoleEnv("investigator", 2, task_id="task_1")
    with pytest.raises(RuntimeError, match=r"call reset\(\) first \(seed\(s\) before it"):
        venv.step(np.zeros(2, np.int64))
