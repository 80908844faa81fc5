"""Training (training/train.py, training/selfplay.py, fraudarena_env.sb3): the SB3 adapter,
opponent pools, one-role runs with validation, the league with cross-play and Elo, and
`fraudarena train` running the self-play script."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

pytest.importorskip("sb3_contrib")

from fraudarena_env import IllegalActionError, RoleEnv, cli  # noqa: E402
from fraudarena_env.arena import evaluate  # noqa: E402
from fraudarena_env.policies import BLIND_INVESTIGATORS, RandomPolicy  # noqa: E402
from fraudarena_env.sb3 import SB3Policy, TrainSeeds  # noqa: E402

selfplay = cli.load_script(cli.TRAIN_SCRIPT, "fraudarena_selfplay")
one_role = selfplay.one_role  # training/train.py
QUICK, LeagueConfig, main, parse_args = (selfplay.QUICK, selfplay.LeagueConfig, selfplay.main,
                                         selfplay.parse_args)

TINY = ["--task", "task_1", "--generations", "2", "--timesteps", "256",
        "--fraudster-timesteps", "256", "--eval-seeds", "1000-1001", "--n-envs", "2",
        "--n-steps", "128", "--imitation-samples", "200", "--fraudster-imitation-samples", "100",
        "--no-progress", "--no-tensorboard"]


def _untrained(role: str, task_id: str = "task_1"):
    from sb3_contrib import MaskablePPO

    return MaskablePPO("MlpPolicy", RoleEnv(role, task_id=task_id), n_steps=64, batch_size=32,
                       seed=0, device="cpu")


@pytest.mark.parametrize("role", ["investigator", "fraudster", "auditor"])
@pytest.mark.parametrize("fast", [True, False])
def test_sb3_policy_never_picks_a_masked_action(role, fast):
    policy = SB3Policy(_untrained(role), role, fast=fast)
    assert policy.has_tensor_face()
    env = RoleEnv(role, task_id="task_3")
    rng = np.random.default_rng(0)
    # random observations with sparse random masks: the pick is always legal
    n = env.action_space.n
    for _ in range(200):
        vector = env.observation_space.sample().astype(np.float32)
        mask = np.zeros(n, bool)
        mask[rng.choice(n, size=int(rng.integers(1, 4)), replace=False)] = True
        assert mask[policy.act_tensor(vector, mask)]
    # real matches, through both the RoleEnv (as an opponent of nobody: the learner) ...
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            mask = env.action_masks()
            action = policy.act(obs, mask)
            assert mask[action]
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    # ... and the arena, where an illegal action raises
    out = evaluate("task_3", [1000, 1001], lambda seed: {role: policy})
    assert 0.0 <= out["grader"] <= 1.0


def test_sb3_policy_fast_path_matches_predict():
    """The fast path is the same masked argmax as predict(..., deterministic=True)."""
    from sb3_contrib import MaskablePPO

    env = RoleEnv("investigator", task_id="task_3")
    model = MaskablePPO("MlpPolicy", env, n_steps=128, batch_size=64, n_epochs=1, seed=1,
                        device="cpu")
    model.learn(256)  # move the weights away from their near-uniform init
    fast, slow = SB3Policy(model, "investigator"), SB3Policy(model, "investigator", fast=False)
    assert fast._fast and not slow._fast
    rng = np.random.default_rng(1)
    n = 0
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            mask = env.action_masks()
            a = fast.act_tensor(obs, mask)
            assert a == slow.act_tensor(obs, mask) and mask[a]
            sub = mask & (rng.random(mask.size) < 0.3)  # sparser masks too
            if sub.any():
                assert fast.act_tensor(obs, sub) == slow.act_tensor(obs, sub)
            obs, _, terminated, truncated, _ = env.step(int(np.flatnonzero(mask)[
                rng.integers(mask.sum())]))
            done = terminated or truncated
            n += 1
    assert n > 50


def test_pool_policy_draws_reproducibly_from_the_pool(tmp_path):
    model = _untrained("fraudster")
    for g in range(3):
        model.save(str(tmp_path / f"fraudster_g{g}.zip"))
    a, b = (one_role.PoolPolicy("fraudster", sorted(tmp_path.glob("*.zip"))) for _ in "ab")
    assert a.members[0] is None and len(a.members) == 4  # the scripted baseline, 3 snapshots
    picks = []
    for seed in range(40):
        a.reset(seed=seed)
        b.reset(seed=seed)
        pick = "scripted" if a.current is a.scripted else a.current.name
        assert pick == ("scripted" if b.current is b.scripted else b.current.name)
        picks.append(pick)
    assert set(picks) == {"scripted", "fraudster_g0", "fraudster_g1", "fraudster_g2"}
    # a directory SPEC is a pool; as a RoleEnv opponent
    pool = one_role.make_opponent("fraudster", str(tmp_path))
    env = RoleEnv("investigator", opponents={"fraudster": pool}, task_id="task_1")
    obs, _ = env.reset(seed=5)
    assert env.action_space.n and obs.shape == env.observation_space.shape
    with pytest.raises(ValueError, match="no fraudster checkpoint at"):
        one_role.make_opponent("fraudster", str(tmp_path / "missing.zip"))


def test_opponent_specs_name_what_is_wrong_before_any_match(tmp_path):
    """scripted is every role's baseline; an empty SPEC, a directory whose checkpoints sit one
    level down, and a pool holding another role's checkpoint are refused when the opponent is
    built, not when a match first draws the bad member."""
    from fraudarena_env.policies import HeuristicAuditor, ReactiveFraudster

    assert isinstance(one_role.make_opponent("fraudster", "scripted"), ReactiveFraudster)
    assert isinstance(one_role.make_opponent("auditor", "scripted"), HeuristicAuditor)
    with pytest.raises(ValueError, match="give a policy name"):
        one_role.make_opponent("fraudster", "")
    nested = tmp_path / "pool" / "fraudster"
    nested.mkdir(parents=True)
    _untrained("fraudster").save(str(nested / "fraudster_g0.zip"))
    with pytest.raises(ValueError, match="only in its subdirectories"):
        one_role.make_opponent("fraudster", str(tmp_path / "pool"))
    assert one_role.make_opponent("fraudster", str(nested)).paths == [nested / "fraudster_g0.zip"]
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    _untrained("investigator").save(str(wrong / "investigator.zip"))
    with pytest.raises(ValueError, match="not a checkpoint of the fraudster"):
        one_role.make_opponent("fraudster", str(wrong))


@pytest.mark.parametrize("kind", ["PPO", "DQN"])
def test_sb3_policy_keeps_a_model_that_knows_no_masks_to_the_mask(kind):
    import stable_baselines3

    env = RoleEnv("investigator", task_id="task_3")
    model = getattr(stable_baselines3, kind)("MlpPolicy", env, seed=0, device="cpu")
    policy = SB3Policy(model, "investigator")
    rng = np.random.default_rng(0)
    n = env.action_space.n
    vectors = np.stack([env.observation_space.sample() for _ in range(50)]).astype(np.float32)
    masks = np.zeros((50, n), bool)
    for mask in masks:
        mask[rng.choice(n, size=3, replace=False)] = True
    assert all(mask[policy.act_tensor(v, mask)] for v, mask in zip(vectors, masks))
    assert masks[np.arange(50), policy.act_many(vectors, masks)].all()
    with pytest.raises(ValueError, match="not a checkpoint of the fraudster"):
        SB3Policy(model, "fraudster")


def test_training_seeds_avoid_the_eval_seeds():
    env = TrainSeeds(RoleEnv("investigator", task_id="task_1"), (100_000, 200_000))
    env.reset(seed=1)
    seen = [env.unwrapped.match_seed]
    for _ in range(20):
        env.reset()
        seen.append(env.unwrapped.match_seed)
    assert all(100_000 <= s < 200_000 for s in seen) and len(set(seen)) > 15
    assert env.action_masks().any()
    with pytest.raises(ValueError, match="training seed range"):
        one_role.train(one_role.Config(val_seeds=(150_000,), out="unused"))
    with pytest.raises(SystemExit):  # a usage error (tests/test_script_usage.py)
        main(["--eval-seeds", "150000", "--out", "unused"])


def test_cli_options():
    cfg = parse_args(["--quick"])
    assert cfg.tasks == QUICK["tasks"] and cfg.generations == QUICK["generations"]
    assert cfg.net == "slot" and cfg.imitation_samples > 0
    cfg = parse_args(["--task", "task_1,task_3", "--timesteps", "4000", "--seed", "3",
                      "--eval-seeds", "1000-1002,1010", "--out", "runs/x"])
    assert cfg.tasks == ("task_1", "task_3") and cfg.seed == 3 and cfg.out == "runs/x"
    assert cfg.investigator_timesteps == 4000 and cfg.fraudster_timesteps == 1000
    assert cfg.eval_seeds == (1000, 1001, 1002, 1010)
    # the fraudster's quarter is rounded up: a short run trains both roles, not the investigator
    # alone
    assert parse_args(["--timesteps", "3"]).fraudster_timesteps == 1
    assert parse_args(["--timesteps", "0", "--fraudster-timesteps", "5"]).fraudster_timesteps == 5
    # SB3 runs whole rollouts: the progress bar total is what actually runs
    cfg = dataclasses.replace(cfg, generations=2, n_envs=2, n_steps=256)
    assert selfplay.total_timesteps(cfg) == 2 * (4096 + 1024)
    one = one_role.parse_args(["--role", "fraudster", "--opponent", "investigator=random",
                               "--task", "task_2", "--val-seeds", "3000-3001"])
    assert one.opponents == (("investigator", "random"),) and one.val_seeds == (3000, 3001)
    with pytest.raises(SystemExit):
        one_role.parse_args(["--role", "fraudster", "--opponent", "fraudster=random"])
    with pytest.raises(SystemExit):
        one_role.parse_args(["--task", "task_9"])
    with pytest.raises(SystemExit):
        parse_args(["--task", "task_1,task_9"])
    with pytest.raises(SystemExit):
        parse_args(["--vector-envs", "-1"])


def test_the_league_passes_its_workers_to_each_batched_phase(capsys):
    """selfplay.py --workers: each phase's matches in that many worker processes (train.py
    --workers); RoleEnv phases run in one process, and --workers is refused there."""
    cfg = parse_args(["--quick", "--workers", "1"])
    assert cfg.workers == 1
    for role in ("investigator", "fraudster"):
        assert selfplay.phase_config(cfg, role, 0, "", selfplay.Path("pool")).workers == 1
    quick = parse_args(["--quick"])
    assert quick.workers is None  # train.py's default: a worker per core, at most 2
    phase = selfplay.phase_config(quick, "fraudster", 0, "", selfplay.Path("pool"))
    assert phase.workers == one_role.default_workers(QUICK["vector_envs"])
    assert selfplay.phase_config(parse_args([]), "fraudster", 0, "",
                                 selfplay.Path("pool")).workers == 1
    for argv, says in ((["--workers", "2"], "--workers: each phase trains on RoleEnvs"),
                       (["--quick", "--workers", "129"], "--workers must be from 1 to "
                                                         "--vector-envs (128)")):
        with pytest.raises(SystemExit):
            parse_args(argv)
        assert says in capsys.readouterr().err


def test_both_scripts_train_on_one_torch_thread():
    """docs/training.md and docs/performance.md: one torch thread (two were 8-15x slower on a
    shared machine), for train.py's runs and for every phase of the league."""
    assert one_role.Config().threads == 1 and one_role.parse_args([]).threads == 1
    for role in ("investigator", "fraudster"):
        phase = selfplay.phase_config(parse_args([]), role, 0, "", selfplay.Path("pool"))
        assert phase.threads == 1, role


@pytest.mark.parametrize("argv, says", [
    (["--timesteps", "-5"], "--timesteps must be at least 0"),
    (["--eval-every", "-1"], "--eval-every must be at least 0"),
    (["--n-steps", "0"], "--n-steps must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--n-envs", "0"], "--n-envs must be at least 1"),
    (["--seed", "-1"], "--seed must be from 0 to 4,000,000"),
    (["--seed", "5000000"], "--seed must be from 0 to 4,000,000"),
    (["--val-seeds", "abc"], "--val-seeds: bad seeds 'abc'"),
    (["--val-seeds", "100000"], "--val-seeds 100000 falls in the training seeds"),
    (["--role", "fraudster", "--calibration-coef", "5"], "the fraudster states none"),
    (["--opponent", "fraudster=random", "--opponent", "fraudster=scripted"],
     "the fraudster is already 'random'"),
    (["--init", "no_such.zip"], "--init 'no_such.zip': no such checkpoint file"),
])
def test_train_py_names_a_bad_option_as_a_usage_error(capsys, argv, says):
    with pytest.raises(SystemExit) as exc:
        one_role.parse_args(argv)
    assert exc.value.code == 2 and says in capsys.readouterr().err


def test_a_run_that_fails_on_its_opponent_leaves_its_directory_as_it_was(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(SystemExit):  # on the command line, a usage error
        one_role.parse_args(["--opponent", "fraudster=nope", "--out", str(out),
                             "--no-progress", "--no-tensorboard"])
    cfg = dataclasses.replace(one_role.parse_args(["--out", str(out), "--overwrite",
                                                   "--no-progress", "--no-tensorboard"]),
                              opponents=(("fraudster", "nope"),))
    with pytest.raises(ValueError, match="opponent fraudster='nope'"):  # called from code
        one_role.train(cfg)
    assert (out / "config.json").read_text() == "{}"
    with pytest.raises(SystemExit):
        one_role.parse_args(["--out", str(out / "config.json")])


def test_validation_rows_show_the_policy_after_the_steps_they_count(tmp_path):
    """A row labelled N is the policy trained on N steps, validated before the next rollout
    (during a rollout, PPO's update for it is still to come), and the last count appears once;
    the rows were one rollout late, and the last twice."""
    import torch

    cfg = one_role.parse_args(["--task", "task_1", "--val-seeds", "3000", "--timesteps", "64",
                               "--vector-envs", "4", "--n-steps", "8", "--eval-every", "32",
                               "--imitation-samples", "0", "--no-progress", "--no-tensorboard",
                               "--out", str(tmp_path / "run")])
    seen = {}
    real_run = one_role.Validation.run

    def run(self):
        seen[self.model.num_timesteps] = torch.cat(
            [p.detach().flatten().clone() for p in self.model.policy.parameters()])
        real_run(self)

    one_role.Validation.run = run
    try:
        trained = one_role.train(cfg)
    finally:
        one_role.Validation.run = real_run
    assert [row["timesteps"] for row in trained.history] == [0, 32, 64]
    assert not torch.equal(seen[32], seen[0])  # one update done by the row at 32


def test_a_run_of_no_steps_validates_its_start_once(tmp_path):
    """The start and the end of a run of 0 timesteps are one policy: one row (it was two)."""
    cfg = one_role.parse_args(["--task", "task_1", "--val-seeds", "3000", "--timesteps", "0",
                               "--vector-envs", "4", "--n-steps", "8", "--eval-every", "10",
                               "--imitation-samples", "0", "--no-progress", "--no-tensorboard",
                               "--out", str(tmp_path / "run")])
    assert [row["timesteps"] for row in one_role.train(cfg).history] == [0]
    assert (tmp_path / "run" / "validation.csv").read_text().count("\n") == 2


def test_one_role_run_validates_keeps_the_best_and_continues(tmp_path):
    args = ["--task", "task_1", "--timesteps", "256", "--vector-envs", "0", "--n-envs", "2",
            "--n-steps", "128", "--imitation-samples", "200", "--imitation-epochs", "1", "--val-seeds", "3000-3001",
            "--eval-every", "256", "--no-progress", "--no-tensorboard"]
    history = one_role.main([*args, "--out", str(tmp_path / "a")])
    # validated at the start (after imitation) and at the end, once each
    assert [row["timesteps"] for row in history] == [0, 256]
    assert all(0.0 <= row["task_1/grader"] <= 1.0 for row in history)
    assert {"best.zip", "last.zip", "validation.csv", "config.json"} <= {
        p.name for p in (tmp_path / "a").iterdir()}
    # --init continues from a checkpoint, here as a fraudster's opponent elsewhere
    history = one_role.main([*args, "--init", str(tmp_path / "a" / "last.zip"),
                             "--out", str(tmp_path / "b")])
    assert history[0]["task_1/grader"] == pytest.approx(
        one_role.validate(SB3Policy.load(tmp_path / "a" / "last.zip", "investigator").model,
                          one_role.Config(tasks=("task_1",), val_seeds=(3000, 3001)))[
            "task_1/grader"])


def test_a_checkpoint_keeps_the_policy_not_the_rollouts_last_observations(tmp_path):
    import zipfile

    args = ["--role", "fraudster", "--task", "task_1", "--timesteps", "512", "--vector-envs",
            "64", "--n-steps", "8", "--imitation-samples", "0", "--eval-every", "0",
            "--no-progress", "--no-tensorboard", "--out", str(tmp_path / "a")]
    one_role.main(args)
    path = tmp_path / "a" / "last.zip"
    with zipfile.ZipFile(path) as z:
        data = json.loads(z.read("data"))
    assert not set(one_role.ROLLOUT_STATE) & set(data)  # 64 envs' observations would be here
    # it loads, plays, and a run continues from it
    policy = SB3Policy.load(path, "fraudster")
    assert 0.0 <= evaluate("task_1", [7000], lambda seed: {"fraudster": policy})["grader"] <= 1
    one_role.main([*args[:-1], str(tmp_path / "b"), "--init", str(path)])


def test_elo_fit_recovers_the_elo_model_and_ignores_order():
    # one pairing: the fitted gap is Elo's log-odds of the mean score
    rows = [{"investigator": "scripted", "fraudster": "reactive", "graders": [0.8, 0.7, 0.75]}]
    elo = selfplay.fit_elo(rows)
    assert elo["investigator", "scripted"] == pytest.approx(1000.0)
    gap = elo["investigator", "scripted"] - elo["fraudster", "reactive"]
    assert gap == pytest.approx(400 * math.log10(0.75 / 0.25), abs=0.5)
    # a better investigator (higher grader against the same fraudsters) rates higher; a better
    # fraudster (lower graders against the same investigators) too; order does not matter
    rows = [{"investigator": i, "fraudster": f, "graders": [g]}
            for i, f, g in [("scripted", "reactive", 0.7), ("scripted", "g1", 0.6),
                            ("g0", "reactive", 0.5), ("g0", "g1", 0.4),
                            ("g1", "reactive", 0.8), ("g1", "g1", 0.7)]]
    elo = selfplay.fit_elo(rows)
    assert elo["investigator", "g1"] > elo["investigator", "scripted"] > elo["investigator", "g0"]
    assert elo["fraudster", "g1"] > elo["fraudster", "reactive"]
    assert selfplay.fit_elo(rows[::-1]) == pytest.approx(elo)


class RecordingBar:
    """Stands in for tqdm: records every advance with the stage (postfix) it was made in."""

    def __init__(self, total=None, **_):
        self.total, self.n, self.stage, self.updates = total, 0, "", []
        RecordingBar.last = self

    def update(self, n=1):
        self.n += n
        self.updates.append((self.stage, n))

    def set_description(self, desc):
        self.stage = ""

    def set_postfix_str(self, text):
        self.stage = text

    def close(self):
        self.closed = True


def test_the_progress_bar_counts_imitation_first_and_ends_full(tmp_path):
    """The bar advances while the teacher's decisions are recorded and fitted, then through
    PPO; it never sits still through the warm start, and it ends exactly at its total."""
    from fraudarena_env.sb3 import imitation_steps

    cfg = one_role.Config(tasks=("task_1",), timesteps=256, vector_envs=0, n_envs=2, n_steps=128,
                          imitation_samples=200, imitation_epochs=3, val_seeds=(),
                          eval_every=0, tensorboard=False, out=str(tmp_path / "run"))
    bar = RecordingBar(total=one_role.progress_steps(cfg))
    one_role.train(cfg, bar=bar)
    stages = [stage for stage, _ in bar.updates]
    assert stages == sorted(stages, key=["imitation", "PPO"].index)  # imitation, then PPO
    assert bar.updates[0] == ("imitation", 1)  # the first recorded decision moves it
    assert sum(n for stage, n in bar.updates if stage == "imitation") == imitation_steps(200, 3)
    assert bar.n == bar.total == imitation_steps(200, 3) + 256
    # a run that continues from a checkpoint does not imitate, and its bar says so
    cfg = dataclasses.replace(cfg, init=str(tmp_path / "run" / "last.zip"),
                              out=str(tmp_path / "more"))
    bar = RecordingBar(total=one_role.progress_steps(cfg))
    one_role.train(cfg, bar=bar)
    assert bar.n == bar.total == 256 and {stage for stage, _ in bar.updates} == {"PPO"}


def test_tiny_league(tmp_path, capsys, monkeypatch):
    out = tmp_path / "tiny"
    monkeypatch.setattr(selfplay, "tqdm", RecordingBar)
    result = main([*(a for a in TINY if a != "--no-progress"), "--out", str(out)])
    printed = capsys.readouterr().out
    # one bar for the whole league: both first phases' imitation, then every PPO step
    bar = RecordingBar.last
    assert bar.n == bar.total == selfplay.progress_total(parse_args(TINY)) and bar.closed
    assert bar.updates[0] == ("imitation", 1)
    assert bar.total - selfplay.total_timesteps(parse_args(TINY)) == sum(
        n for stage, n in bar.updates if stage == "imitation") > 0
    # a snapshot of both roles for both generations, in the pools
    assert sorted(p.name for p in (out / "pool" / "investigator").iterdir()) == [
        "investigator_g0.zip", "investigator_g1.zip"]
    assert sorted(p.name for p in (out / "pool" / "fraudster").iterdir()) == [
        "fraudster_g0.zip", "fraudster_g1.zip"]
    assert (out / "league.png").stat().st_size > 10_000
    # the evaluation table: learned roles and the references against the scripted opponents
    # (with each mean's standard error where a return spreads widely from seed to seed)
    assert "| task | investigator | fraudster | auditor | grader (± s.e.) | inv. return | " \
           "fr. return (± s.e.) |" in printed
    # each role's column names its players by the names `fraudarena play` takes, with a key
    assert "| task_1 | scripted | reactive | heuristic |" in printed
    assert "reactive = ReactiveFraudster" in result.table
    assert "g1 = the fraudster snapshot" not in result.cross_play_table  # gN, said once
    assert "gN = the fraudster snapshot of generation N" in result.cross_play_table
    assert result.table in printed and (out / "eval.md").read_text().strip() == result.table
    rows = json.loads((out / "eval.json").read_text())
    players = {(r["investigator_policy"], r["fraudster_policy"], r["auditor_policy"])
               for r in rows}
    assert {("scripted", "scripted", "scripted"), ("learned", "scripted", "scripted"),
            ("random", "scripted", "scripted"), ("scripted", "learned", "scripted"),
            ("learned", "learned", "scripted")} <= players
    assert all(0.0 <= r["grader"] <= 1.0 for r in rows)
    assert all(r["grader_sem"] >= 0.0 and r["fraudster_return_sem"] >= 0.0 for r in rows)
    # cross-play: every investigator against every fraudster, Elo for each
    assert result.cross_play_table in printed
    cells = {(r["investigator"], r["fraudster"]) for r in result.cross_play}
    assert cells == {(i, f) for i in ("scripted", "random", "g0", "g1")
                     for f in ("reactive", "random", "g0", "g1")}
    assert set(result.elo) == {(role, name) for role, names in (
        ("investigator", ("scripted", "random", "g0", "g1")),
        ("fraudster", ("reactive", "random", "g0", "g1"))) for name in names}
    saved = json.loads((out / "crossplay.json").read_text())
    assert len(saved["rows"]) == 16 and len(saved["elo"]) == 8
    # every training match was logged, for both roles and both generations
    assert {(e["role"], e["generation"]) for e in result.league.episodes} == {
        ("investigator", 0), ("investigator", 1), ("fraudster", 0), ("fraudster", 1)}
    # league.png names what it plots and marks each generation on the training curves
    fig = selfplay.league_figure(result, parse_args(TINY))
    elo_panel, *curves = fig.axes
    assert "Elo" in elo_panel.get_ylabel() and "held-out" in elo_panel.get_title()
    assert [t.get_text() for t in elo_panel.get_xticklabels()] == ["g0", "g1"]
    for panel, role in zip(curves, ("investigator", "fraudster")):
        assert role in panel.get_title() and "return" in panel.get_ylabel()
        assert [t.get_text() for t in panel.texts] == ["g0", "g1"]


def test_a_league_on_the_batched_path(tmp_path):
    """--vector-envs N: every phase trains on one VectorRoleEnv of N matches (its config says
    so), SB3's whole rollouts count N * n_steps, and the league ends with its snapshots."""
    args = [*TINY, "--generations", "1", "--vector-envs", "8", "--n-steps", "16",
            "--batch-size", "64", "--n-epochs", "2", "--out", str(tmp_path / "vec")]
    cfg = parse_args(args)
    assert (cfg.vector_envs, cfg.n_steps, cfg.batch_size, cfg.n_epochs) == (8, 16, 64, 2)
    assert selfplay.rounded(200, cfg) == 256 and selfplay.total_timesteps(cfg) == 2 * 256
    league = selfplay.run_league(cfg)
    for role in ("investigator", "fraudster"):
        phase = json.loads((tmp_path / "vec" / "phases" / f"{role}_g0" / "config.json")
                           .read_text())
        assert (phase["vector_envs"], phase["n_steps"], phase["batch_size"],
                phase["n_epochs"]) == (8, 16, 64, 2)
        assert [p.name for p in league.snapshots[role]] == [f"{role}_g0.zip"]


def test_fraudarena_train_runs_the_training_script(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "--help"])
    assert exit_.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_runs_are_deterministic_given_the_seed(tmp_path):
    saved = []
    for name in ("a", "b"):
        main([*TINY, "--generations", "1", "--out", str(tmp_path / name)])
        saved.append([(tmp_path / name / f).read_text() for f in ("eval.json", "crossplay.json")])
    assert saved[0] == saved[1]


@pytest.mark.slow  # it measures learning, which moves when the rules are retuned
def test_learned_investigator_beats_random(tmp_path):
    history = one_role.main(["--task", "task_1", "--timesteps", "16384", "--vector-envs", "0",
                             "--n-envs", "4", "--n-steps", "512", "--batch-size", "256",
                             "--n-epochs", "4", "--lr", "1e-4",
                             "--imitation-samples", "0", "--val-seeds", "3000-3009",
                             "--eval-every", "0", "--no-progress", "--no-tensorboard",
                             "--out", str(tmp_path / "inv")])
    learned = SB3Policy.load(tmp_path / "inv" / "last.zip", "investigator")
    seeds = range(3000, 3010)
    ours = evaluate("task_1", seeds, lambda seed: {"investigator": learned})
    rand = evaluate("task_1", seeds, lambda seed: {"investigator": RandomPolicy(
        "investigator", seed=seed)})
    assert ours["investigator"] > rand["investigator"] + 1.0
    assert ours["grader"] > rand["grader"]
    assert history[-1]["task_1/grader"] == pytest.approx(ours["grader"])


def _rllib_example():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "training" / "rllib_example.py"
    spec = importlib.util.spec_from_file_location("rllib_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rllib_example_env_without_ray():
    """The parts of training/rllib_example.py that do not need ray (ray is not installed here):
    its masked-dict env passes gymnasium's checker and keeps masks and vectors in step."""
    import warnings

    from gymnasium.utils.env_checker import check_env

    ex = _rllib_example()
    env = ex.MaskedRoleEnv({"role": "investigator", "task_id": "task_1"}, seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*environment not having a spec.*")
        check_env(env)
    obs, _ = env.reset(seed=3)
    assert set(obs) == {"observations", "action_mask"}
    assert obs["action_mask"].dtype == np.float32 and obs["action_mask"].any()
    assert 100_000 <= env.env.unwrapped.match_seed
    args = ex.parse_args(["--role", "fraudster", "--opponent", "investigator=x.zip"])
    assert args.opponent == [("investigator", "x.zip")] and args.num_env_runners == 0
    try:
        import ray  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit, match=r"pip install -e '\.\[rllib\]'"):
            ex.main([])


# how far the quick job's learned investigator must beat the scripted one in the slow test below
QUICK_JOB_MARGIN = 0.04


def test_the_training_page_states_the_quick_job_test_s_margin():
    """docs/training.md says twice what the slow quick-job test checks; both say this margin."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
    said = re.findall(r"beats\s+the\s+scripted\s+one\s+by\s+(\d\.\d+)", page)
    assert len(said) >= 2 and {float(x) for x in said} == {QUICK_JOB_MARGIN}, said


def test_the_training_page_describes_the_quick_job_as_it_runs():
    """docs/training.md's account of `--quick`: its imitation, generations, steps, batched
    settings and the progress bar's total are what the league runs."""
    from pathlib import Path

    page = " ".join((Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
                    .split())
    cfg = parse_args(["--quick"])
    phase = selfplay.phase_config(cfg, "investigator", 0, "", selfplay.Path("pool"))
    assert phase.imitation_epochs == selfplay.phase_config(
        cfg, "fraudster", 0, "", selfplay.Path("pool")).imitation_epochs
    assert (f"The investigator first imitates {cfg.imitation_samples:,} decisions of the "
            f"scripted investigator ({phase.imitation_epochs} epochs) and the fraudster "
            f"{cfg.fraudster_imitation_samples:,} decisions of `{cfg.fraudster_teacher}`; then "
            f"come {cfg.generations} generations of {cfg.investigator_timesteps:,} investigator "
            f"and {cfg.fraudster_timesteps:,} fraudster PPO steps on the batched path "
            f"({phase.vector_envs} matches at once, {phase.n_steps} steps each a rollout, batch "
            f"{phase.batch_size}, {phase.n_epochs} epochs, lr {phase.learning_rate:.0e}") \
        .replace("e-04", "e-4") in page
    assert (f"The quick job's bar counts {selfplay.progress_total(cfg):,} steps, "
            f"{selfplay.total_timesteps(cfg):,} of them PPO") in page
    # "Reproducible runs": the batched path's match seeds and the largest --seed they allow
    assert (f"`{one_role.TRAIN_SEED_RANGE[0]:,} + seed * {one_role.VECTOR_SEED_BLOCK:,} + i + k * "
            f"N`, all in the training range (so `--seed` goes up to "
            f"{one_role.MAX_VECTOR_RUN_SEED:,} there)") in page


def test_the_training_page_gives_train_py_s_defaults():
    """docs/training.md's "PPO defaults" and "Many matches at once": each path's settings, as
    train.py fills them in for a role that names none."""
    from pathlib import Path

    page = " ".join((Path(__file__).resolve().parents[1] / "docs" / "training.md").read_text()
                    .split())
    inv, fr, auditor = (one_role.parse_args(["--role", role])
                        for role in ("investigator", "fraudster", "auditor"))
    plain = one_role.parse_args(["--vector-envs", "0"])
    assert (auditor.vector_envs, auditor.n_steps) == (inv.vector_envs, inv.n_steps)
    assert (f"the investigator (and the auditor) plays {inv.vector_envs} matches of "
            f"{inv.n_steps} steps per rollout, and the fraudster {fr.vector_envs:,} of "
            f"{fr.n_steps} ({inv.vector_envs * inv.n_steps:,} steps a rollout either way)") in page
    assert inv.vector_envs * inv.n_steps == fr.vector_envs * fr.n_steps
    assert (f"PPO defaults, batched path: {inv.n_steps} steps per env per rollout (`--n-steps`), "
            f"batch {inv.batch_size} (`--batch-size`), {inv.n_epochs} epochs (`--n-epochs`), lr "
            f"{inv.learning_rate:.0e} (`--lr`); the fraudster {fr.n_steps} steps, batch "
            f"{fr.batch_size}, {fr.n_epochs} epochs, lr {fr.learning_rate:.0e}").replace(
                "e-04", "e-4") in page
    assert (f"With `--vector-envs 0`: {plain.n_steps} steps, batch {plain.batch_size}, "
            f"{plain.n_epochs} epochs, lr {plain.learning_rate:.0e}").replace("e-04", "e-4") in page
    assert f"trains on `--n-envs` ({plain.n_envs}) `RoleEnv`s" in page
    assert (plain.clip_range, plain.ent_coef, inv.clip_range, inv.ent_coef) == (0.1, 0, 0.1, 0)


@pytest.mark.slow  # the README's main job, end to end: a few minutes on 2 cores
def test_the_quick_job_learns_an_investigator_that_beats_every_blind_policy(tmp_path):
    result = main(["--quick", "--no-progress", "--no-tensorboard", "--out", str(tmp_path / "q")])
    by = {r["investigator_policy"]: r for r in result.rows
          if r["fraudster_policy"] == "scripted" and r["auditor_policy"] == "scripted"}
    learned = by["learned"]
    assert learned["legit_rejected"] < 0.40  # not the reject-everything shortcut
    # issue 19's bar is +0.05 (docs/training.md: over ten training seeds it holds on most, not
    # all); seed 0 reads +0.049 to +0.055 depending on the CPU's float kernels (the slot
    # network's numerics differ by machine), so this run, on whatever machine runs CI, is held
    # to a clear +0.04
    assert learned["grader"] >= by["scripted"]["grader"] + QUICK_JOB_MARGIN
    for name in ("always_reject", *BLIND_INVESTIGATORS):
        assert learned["grader"] > by[name]["grader"], name
    # the league: every generation rates far above a random investigator, and the second
    # generation of each role rates above the first (Elo rising)
    elo = result.elo
    for g in ("g0", "g1"):
        assert elo["investigator", g] > elo["investigator", "random"] + 100, g
    for role in ("investigator", "fraudster"):
        assert elo[role, "g1"] > elo[role, "g0"], role


def test_evaluation_counts_the_legit_ads_that_ended_rejected():
    from fraudarena_env.policies import AlwaysReject

    rejecting = evaluate("task_1", range(1000, 1003), lambda s: {"investigator": AlwaysReject()})
    assert rejecting["legit_rejected"] == 1.0
    scripted = evaluate("task_1", range(1000, 1003), lambda s: {})
    assert 0.0 <= scripted["legit_rejected"] < 0.5


def _side_by_side(role: str, task_id: str, shaped, player):
    """Plays ``player``'s moves on a plain RoleEnv and on ``shaped`` (a wrapped one) from the
    same seed; yields (the plain env, the action, shaped minus plain reward, info, done)."""
    plain = RoleEnv(role, task_id=task_id)
    plain.reset(seed=3000)
    shaped.reset(seed=3000)
    done = False
    while not done:
        action = player.act(plain.env._vector(role), plain.action_masks())
        _, r_plain, term, trunc, info = plain.step(action)
        _, r_shaped, *_ = shaped.step(action)
        done = term or trunc
        yield plain, action, r_shaped - r_plain, info, done


def test_calibration_reward_adds_a_brier_penalty_to_each_verdict_and_nothing_else():
    """Same match, same moves: the shaped reward differs from the env's by -coef*(c - right)^2
    on a verdict and by nothing on any other action."""
    from fraudarena_env.faces.encoding import OPS
    from fraudarena_env.policies import ScriptedInvestigator
    from fraudarena_env.rules.actions import Verdict
    from fraudarena_env.rules.catalog import CORRECT_VERDICT

    shaped = one_role.CalibrationReward(RoleEnv("investigator", task_id="task_2"), coef=0.5)
    verdicts = 0
    for plain, action, diff, _, _ in _side_by_side("investigator", "task_2", shaped,
                                                   ScriptedInvestigator(seed=1)):
        op = OPS["investigator"][action]
        expected = 0.0
        if isinstance(op, Verdict):
            ref = plain.referee  # a decided ad keeps its row
            right = op.verdict == CORRECT_VERDICT[ref.label_of(op.slot)]
            expected = -0.5 * (op.confidence - right) ** 2
            verdicts += 1
        assert diff == pytest.approx(expected)
    assert verdicts >= 3
    cfg = one_role.parse_args(["--calibration-coef", "0.3", "--vector-envs", "0", "--n-envs", "1"])
    assert isinstance(one_role.make_vec_env(cfg, dict).envs[0].env, one_role.CalibrationReward)


def test_grader_reward_charges_the_fraudster_the_grader_once_at_the_end():
    """Same match, same moves: the fraudster's shaped reward differs from the env's only on the
    step the match ends, by -coef * the investigator's grader; "best" follows the same
    objective; the auditor, who has no stake in the grader, is refused."""
    from fraudarena_env.policies import ReactiveFraudster

    shaped = one_role.GraderReward(RoleEnv("fraudster", task_id="task_3"), coef=2.0)
    steps = 0
    for _, _, diff, info, done in _side_by_side("fraudster", "task_3", shaped,
                                                ReactiveFraudster(seed=1)):
        assert diff == pytest.approx(-2.0 * info["grader_score"] if done else 0.0)
        steps += 1
    assert steps > 1 and info["has_grader"] and info["grader_score"] > 0
    cfg = one_role.parse_args(["--role", "fraudster", "--grader-coef", "3", "--vector-envs", "0",
                               "--n-envs", "1"])
    assert isinstance(one_role.make_vec_env(cfg, dict).envs[0].env, one_role.GraderReward)
    row = {"return": 1.0, "grader": 0.7}
    assert one_role.selection_score(row, cfg) == pytest.approx(1.0 - 3 * 0.7)
    assert one_role.selection_score(row, one_role.parse_args(["--role", "fraudster"])) == 1.0
    with pytest.raises(SystemExit):
        one_role.parse_args(["--role", "auditor", "--grader-coef", "1"])
    with pytest.raises(ValueError, match="not the auditor"):
        one_role.GraderReward(RoleEnv("auditor", task_id="task_3"), coef=1.0)


def test_both_shaping_rewards_stack_on_the_investigator():
    """--calibration-coef with --grader-coef: the grader reward wraps the calibration reward
    and the investigator is paid both, the calibration term on each verdict and the grader
    term once, on the step the match ends."""
    from fraudarena_env.faces.encoding import OPS
    from fraudarena_env.policies import ScriptedInvestigator
    from fraudarena_env.rules.actions import Verdict
    from fraudarena_env.rules.catalog import CORRECT_VERDICT

    cfg = one_role.parse_args(["--calibration-coef", "0.5", "--grader-coef", "2", "--n-envs", "1",
                               "--vector-envs", "0"])
    outer = one_role.make_vec_env(cfg, dict).envs[0].env
    assert isinstance(outer, one_role.GraderReward)
    assert isinstance(outer.env, one_role.CalibrationReward)
    shaped = one_role.GraderReward(
        one_role.CalibrationReward(RoleEnv("investigator", task_id="task_2"), coef=0.5), coef=2.0)
    for plain, action, diff, info, done in _side_by_side("investigator", "task_2", shaped,
                                                         ScriptedInvestigator(seed=1)):
        op = OPS["investigator"][action]
        expected = 2.0 * info["grader_score"] if done else 0.0
        if isinstance(op, Verdict):
            label = plain.referee.label_of(op.slot)
            expected -= 0.5 * (op.confidence - (op.verdict == CORRECT_VERDICT[label])) ** 2
        assert diff == pytest.approx(expected)
    assert done and info["grader_score"] > 0


@pytest.mark.parametrize("role, calibration, grader", [("investigator", 0.5, 2.0),
                                                      ("fraudster", 0.0, 3.0)])
def test_the_batched_path_adds_the_training_rewards_the_role_env_wrappers_add(role, calibration,
                                                                              grader):
    """VectorTrainingRewards over a VectorRoleEnv pays, env by env and step by step, what
    CalibrationReward and GraderReward add on RoleEnvs playing the same matches with the same
    moves; train.py's default path uses it."""
    from fraudarena_env.sb3_vector import VectorRoleEnv

    n, seed = 4, 21
    venv = one_role.VectorTrainingRewards(VectorRoleEnv(role, n, task_id="task_3",
                                                        seed_offset=seed), calibration, grader)
    envs = []
    for _ in range(n):
        env = RoleEnv(role, task_id="task_3")
        if calibration:
            env = one_role.CalibrationReward(env, calibration)
        envs.append(one_role.GraderReward(env, grader))
    venv.reset()
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    resets, verdicts, rng = [0] * n, 0, np.random.default_rng(seed)
    for _ in range(150 if role == "investigator" else 40):
        masks = venv.env_method("action_masks")
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        _, rewards, dones, _ = venv.step(actions)
        verdicts += np.count_nonzero(venv._bonus)
        for i, env in enumerate(envs):
            _, r, term, trunc, _ = env.step(int(actions[i]))
            assert rewards[i] == pytest.approx(np.float32(r), abs=1e-5)
            if term or trunc:
                resets[i] += 1
                env.reset(seed=seed + i + resets[i] * n)
    assert sum(resets) > 0 and (verdicts > 0) == bool(calibration)
    cfg = one_role.parse_args(["--role", role, "--grader-coef", "1"])
    assert isinstance(one_role.make_vec_env(cfg, dict).venv, one_role.VectorTrainingRewards)


@pytest.mark.parametrize("action", [977, -1])
def test_the_batched_training_rewards_leave_an_action_off_the_catalogue_to_the_env(action):
    """An action past the investigator's catalogue was an IndexError of the rewards' tables (and
    -1 read the table's last row); the env's own error names it, and nothing is applied."""
    from fraudarena_env.sb3_vector import VectorRoleEnv

    venv = one_role.VectorTrainingRewards(VectorRoleEnv("investigator", 2, task_id="task_1"),
                                          0.5, 1.0)
    venv.reset()
    with pytest.raises(IllegalActionError, match=f"index {action}"):
        venv.step(np.array([action, 0]))


def test_imitation_follows_the_teacher_it_is_given(capsys):
    """A fraudster imitating WaitingFraudster(0.25) learns to hold its ads in the first round,
    where the scripted ReactiveFraudster proposes at once."""
    from fraudarena_env.faces.encoding import F_END
    from fraudarena_env.policies import WaitingFraudster
    from fraudarena_env.sb3 import imitate

    env = RoleEnv("fraudster", task_id="task_2")
    obs, _ = env.reset(seed=3000)
    firsts = {}
    for name, teacher in (("scripted", None), ("waiting", WaitingFraudster)):
        model = _untrained("fraudster", "task_2")
        imitate(model, "fraudster", ("task_2",), 400, 20, teacher=teacher)
        firsts[name] = SB3Policy(model, "fraudster").act(obs, env.action_masks())
    assert firsts["waiting"] == F_END and firsts["scripted"] != F_END
    with pytest.raises(SystemExit):
        one_role.parse_args(["--role", "fraudster", "--teacher", "nope"])
    assert "--teacher 'nope': use one of reactive, waiting" in capsys.readouterr().err


def test_imitating_the_scripted_fraudster_twice_gives_the_same_weights():
    """ReactiveFraudster draws its tactics: the teacher of each match is seeded from the match,
    so the warm start (and with it a whole train.py run) repeats; it was drawn from the
    operating system's randomness."""
    import torch

    from fraudarena_env.sb3 import imitate

    weights = []
    for _ in range(2):
        model = _untrained("fraudster", "task_3")
        imitate(model, "fraudster", ("task_3",), 300, 2, seed=4)
        weights.append(torch.cat([p.detach().flatten() for p in model.policy.parameters()]))
    assert torch.equal(*weights)


def test_headroom_gives_the_scripted_investigator_more_budget_and_restores_the_task():
    from pathlib import Path

    from fraudarena_env.policies import ScriptedInvestigator
    from fraudarena_env.rules.catalog import TASKS

    script = Path(cli.TRAIN_SCRIPT).parent / "headroom.py"
    headroom = cli.load_script(script, "fraudarena_headroom")
    before = (TASKS["task_3"], ScriptedInvestigator.PULL_PRICE)
    base, rich = headroom.headroom("task_3", range(1000, 1004))
    assert (TASKS["task_3"], ScriptedInvestigator.PULL_PRICE) == before
    assert base == pytest.approx(evaluate("task_3", range(1000, 1004), lambda s: {})["grader"])
    assert rich > base  # on task_3 the budget binds: more of it links and decides better


def test_a_teacher_is_a_policy_name_or_a_checkpoint_never_the_oracle(tmp_path, capsys):
    model = _untrained("fraudster")
    model.save(tmp_path / "fr.zip")
    make = one_role.teacher_factory("fraudster", str(tmp_path / "fr.zip"))
    assert isinstance(make(seed=1), SB3Policy)
    assert one_role.teacher_factory("fraudster", "waiting")(seed=1).hold == 0.25
    with pytest.raises(ValueError, match="--teacher 'oracle': .*reads the truth"):
        one_role.teacher_factory("investigator", "oracle")
    with pytest.raises(ValueError, match=r"--teacher 'gone.zip': .*no such file"):
        one_role.teacher_factory("fraudster", "gone.zip")
    with pytest.raises(SystemExit):
        parse_args(["--fraudster-teacher", "scripted"])  # an investigator's name
    assert "--fraudster-teacher 'scripted': use one of reactive, waiting" in (
        capsys.readouterr().err)
