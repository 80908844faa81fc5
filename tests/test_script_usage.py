"""The training scripts' command lines: a bad option is a usage error (exit code 2, the reason on
stderr, no traceback) found before anything is trained, evaluated or written, and a rerun of the
league does not delete a finished one."""

from __future__ import annotations

import json
import sys

import pytest

from fraudarena_env import cli

TRAINING = cli.TRAIN_SCRIPT.parent
TINY = ["--task", "task_1", "--generations", "1", "--timesteps", "128", "--fraudster-timesteps",
        "128", "--eval-seeds", "1000", "--n-envs", "2", "--n-steps", "64", "--imitation-samples",
        "0", "--fraudster-imitation-samples", "0", "--no-progress", "--no-tensorboard"]


def _script(file: str, name: str):
    """The script, loaded once (other test modules load it under the same name)."""
    return sys.modules.get(name) or cli.load_script(TRAINING / file, name)


selfplay = _script("selfplay.py", "fraudarena_selfplay")
exploit = _script("exploit.py", "fraudarena_exploit")
headroom = _script("headroom.py", "fraudarena_headroom")
quick_seeds = _script("quick_seeds.py", "fraudarena_quick_seeds")
results = _script("results.py", "fraudarena_results")


def _usage_error(capsys, call, *words: str) -> str:
    """``call()`` exits with argparse's usage error; its message names every one of ``words``."""
    with pytest.raises(SystemExit) as exit_:
        call()
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "error:" in err and "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize("flag, value", [
    ("--seed", "-1"), ("--seed", "100000"), ("--n-steps", "0"), ("--n-envs", "0"),
    ("--batch-size", "0"), ("--batch-size", "1"), ("--n-epochs", "0"), ("--generations", "-1"),
    ("--generations", "0"), ("--timesteps", "-5"), ("--fraudster-timesteps", "-1"),
    ("--imitation-samples", "-1"), ("--fraudster-imitation-samples", "-1"), ("--seed", "x"),
    ("--calibration-coef", "-1"), ("--calibration-coef", "nan"),
    ("--investigator-grader-coef", "inf"), ("--investigator-grader-coef", "-0.5")])
def test_selfplay_refuses_a_bad_number(capsys, flag, value):
    _usage_error(capsys, lambda: selfplay.parse_args([flag, value]), flag, value)


def test_the_league_s_reward_coefficients_reach_the_investigator_phases_only():
    cfg = selfplay.parse_args(["--calibration-coef", "0.5", "--investigator-grader-coef", "3"])
    investigator = selfplay.phase_config(cfg, "investigator", 0, "", selfplay.Path("pool"))
    fraudster = selfplay.phase_config(cfg, "fraudster", 0, "", selfplay.Path("pool"))
    assert (investigator.calibration_coef, investigator.grader_coef) == (0.5, 3.0)
    assert (fraudster.calibration_coef, fraudster.grader_coef) == (0.0, 0.0)
    quick = selfplay.parse_args(["--quick", "--investigator-grader-coef", "2"])
    assert (quick.calibration_coef, quick.investigator_grader_coef) == (0.0, 2.0)


def test_selfplay_seed_bound_is_train_py_s(capsys):
    """Generation g trains with train.py's seed SEED * 100 + g, which train.py takes up to
    MAX_RUN_SEED: the largest seed passes, one more is refused."""
    most = selfplay.max_seed(4)
    assert most * 100 + 3 <= selfplay.one_role.MAX_RUN_SEED < (most + 1) * 100 + 3
    assert selfplay.parse_args(["--seed", str(most)]).seed == most
    _usage_error(capsys, lambda: selfplay.parse_args(["--seed", str(most + 1)]), f"{most:,}")


def test_the_quick_leagues_seed_bound_keeps_its_batched_matches_in_the_training_range(capsys):
    """The quick job trains on the batched path, whose train.py seeds go up to
    MAX_VECTOR_RUN_SEED: --quick --seed 22 trained on match seeds past the training range."""
    most = selfplay.max_seed(2, batched=True)
    assert most == 21 and most * 100 + 1 <= selfplay.one_role.MAX_VECTOR_RUN_SEED
    assert selfplay.parse_args(["--quick", "--seed", "21"]).seed == 21
    _usage_error(capsys, lambda: selfplay.parse_args(["--quick", "--seed", "22"]),
                 "at most 2,146 on the batched path")


def test_exploit_keeps_its_batched_matches_in_the_training_range(capsys):
    argv = ["scripted", "--role", "investigator", "--budget", "1000", "--vector-envs", "64",
            "--seed", "2147"]
    _usage_error(capsys, lambda: exploit.parse_args(argv),
                 "--seed must be at most 2,146 with --vector-envs")


def test_selfplay_refuses_a_league_that_would_train_nothing(capsys):
    _usage_error(capsys, lambda: selfplay.parse_args(["--timesteps", "0"]), "nothing would train")


def test_held_out_seeds_in_the_training_range_are_a_usage_error(tmp_path, capsys, no_evaluation):
    """The league's tables, exploit.py's and results.py's are on held-out seeds: one a training
    match may draw is refused naming the flag, the seed and seeds to use instead (the league's
    was a bare SystemExit from main, and results.py took any)."""
    for call, flag, example in (
            (lambda: selfplay.main(["--eval-seeds", "1000,150000", "--out", str(tmp_path)]),
             "--eval-seeds", "1000-1019"),
            (lambda: exploit.parse_args(["scripted", "--role", "investigator", "--budget", "100",
                                         "--seeds", "150000"]), "--seeds", "9000-9199"),
            (lambda: results.main(["--seeds", "150000"]), "--seeds", "7000-7039"),
            (lambda: results.main(["--paired-seeds", "8000,150000"]), "--paired-seeds",
             "7000-7039")):
        _usage_error(capsys, call, flag, "150000", "training seed range", example)
    assert not any(tmp_path.iterdir())


def test_selfplay_refuses_a_file_as_out(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    _usage_error(capsys, lambda: selfplay.parse_args(["--out", str(tmp_path / "file")]),
                 "--out", "is a file")


def test_fraudarena_train_gives_the_same_usage_errors(capsys):
    _usage_error(capsys, lambda: cli.main(["train", "--seed", "-1"]), "--seed")
    _usage_error(capsys, lambda: cli.main(["train", "--generations", "-1"]), "--generations")


def _finished_league(out):
    (out / "pool" / "investigator").mkdir(parents=True)
    (out / "config.json").write_text('{"old": true}')
    (out / "pool" / "investigator" / "investigator_g0.zip").write_text("old snapshot")
    return {p: p.read_text() for p in out.rglob("*") if p.is_file()}


def test_a_rerun_does_not_delete_a_finished_league(tmp_path, capsys):
    out = tmp_path / "league"
    before = _finished_league(out)

    def unchanged():
        assert {p: p.read_text() for p in out.rglob("*") if p.is_file()} == before

    # a bad option is refused before --out is touched, even with --overwrite
    _usage_error(capsys, lambda: selfplay.main([*TINY, "--seed", "-1", "--out", str(out),
                                                "--overwrite"]), "--seed")
    unchanged()
    # a league in --out is kept: the message names the directory and the ways on
    err = _usage_error(capsys, lambda: selfplay.main([*TINY, "--out", str(out)]),
                       str(out), "--overwrite", "new --out", "1 snapshot")
    assert "config.json" in err
    unchanged()
    _usage_error(capsys, lambda: cli.main(["train", *TINY, "--out", str(out)]), "--overwrite")
    unchanged()
    # run_league, called directly, refuses too unless the config says overwrite
    cfg = selfplay.parse_args([*TINY, "--out", str(out)])
    assert not cfg.overwrite
    with pytest.raises(FileExistsError, match="--overwrite"):
        selfplay.run_league(cfg)
    unchanged()
    assert selfplay.parse_args([*TINY, "--out", str(out), "--overwrite"]).overwrite
    # a directory without a league (an empty one, another script's run) is fine
    (tmp_path / "empty").mkdir()
    selfplay.parse_args([*TINY, "--out", str(tmp_path / "empty")], fresh_out=True)


def test_selfplay_help_names_overwrite(capsys):
    with pytest.raises(SystemExit):
        selfplay.parse_args(["--help"])
    assert "--overwrite" in capsys.readouterr().out


@pytest.mark.parametrize("flag, value", [
    ("--seed", "-1"), ("--seed", "4000001"), ("--n-steps", "0"), ("--n-envs", "0"),
    ("--lr", "-1"), ("--lr", "0"), ("--imitation-samples", "-1"), ("--imitation-epochs", "0")])
def test_exploit_refuses_a_bad_number(capsys, flag, value):
    _usage_error(capsys, lambda: exploit.parse_args(
        ["scripted", "--role", "investigator", "--budget", "100", flag, value]), flag, value)


def test_a_teacher_that_would_imitate_nothing_is_refused(capsys):
    """exploit.py --teacher without --imitation-samples (0 by default), and the league's
    --fraudster-teacher with --fraudster-imitation-samples 0, trained from scratch as if the
    teacher had not been given."""
    _usage_error(capsys, lambda: exploit.parse_args(
        ["scripted", "--role", "investigator", "--budget", "100", "--teacher", "waiting"]),
        "--teacher 'waiting' would not be used", "--imitation-samples N")
    _usage_error(capsys, lambda: selfplay.parse_args(
        ["--fraudster-teacher", "waiting", "--fraudster-imitation-samples", "0"]),
        "--fraudster-teacher 'waiting' would not be used", "--fraudster-imitation-samples N")
    assert exploit.parse_args(["scripted", "--role", "investigator", "--budget", "100",
                               "--teacher", "waiting", "--imitation-samples", "10"])[0].teacher
    assert selfplay.parse_args(["--fraudster-teacher", "waiting"]).fraudster_teacher == "waiting"


def test_exploit_refuses_a_file_as_out(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    _usage_error(capsys, lambda: exploit.parse_args(
        ["scripted", "--role", "investigator", "--budget", "100", "--out",
         str(tmp_path / "file")]), "--out", "is a file")


@pytest.mark.parametrize("argv, words", [
    (["--seeds", "5-3"], ["--seeds", "5-3"]), (["--seeds", ""], ["--seeds"]),
    (["--scale", "0"], ["--scale", "at least 1"]), (["--scale", "-2"], ["--scale", "-2"])])
def test_headroom_refuses_bad_seeds_and_scales(capsys, argv, words):
    _usage_error(capsys, lambda: headroom.main(argv), *words)


@pytest.mark.parametrize("seeds", ["5-3", ""])
def test_quick_seeds_refuses_bad_seeds(tmp_path, capsys, seeds):
    _usage_error(capsys, lambda: quick_seeds.main(["--seeds", seeds, "--out", str(tmp_path),
                                                   "--read"]), "--seeds")


def test_quick_seeds_keeps_finished_runs(tmp_path, capsys, monkeypatch):
    """A rerun into runs already made is refused before any job starts (each job would refuse
    its league after quick.log was overwritten); -- --overwrite trains them again."""
    _finished_league(tmp_path / "seed0")
    (tmp_path / "seed0" / "quick.log").write_text("trained in 200 s, evaluated in 9.0 s")

    def no_training(seed, out, extra):
        raise AssertionError("a quick job started")

    monkeypatch.setattr(quick_seeds, "run_seed", no_training)
    _usage_error(capsys, lambda: quick_seeds.main(["--seeds", "0-1", "--out", str(tmp_path)]),
                 "--read", "--overwrite", "[0]")
    assert (tmp_path / "seed0" / "quick.log").read_text().startswith("trained in 200 s")
    with pytest.raises(AssertionError, match="a quick job started"):
        quick_seeds.main(["--seeds", "0-1", "--out", str(tmp_path), "--", "--overwrite"])


@pytest.fixture
def no_evaluation(monkeypatch):
    """results.py may not play a match: a usage error comes first."""
    def played(*args, **kwargs):
        raise AssertionError("results.py evaluated before refusing its options")

    for name in ("investigator_table", "fraudster_table", "crossplay_table", "paired_table",
                 "plot_curves"):
        monkeypatch.setattr(results, name, played)


def test_results_refuses_a_missing_curves_file(tmp_path, capsys, no_evaluation):
    _usage_error(capsys, lambda: results.main(["--curves", str(tmp_path / "validation.csv")]),
                 "--curves", "no such file")
    (tmp_path / "validation.csv").write_text("timesteps\n")  # no config.json next to it
    _usage_error(capsys, lambda: results.main(["--curves", str(tmp_path / "validation.csv")]),
                 "--curves", "config.json")


def test_results_refuses_an_unwritable_plot(tmp_path, capsys, no_evaluation):
    (tmp_path / "validation.csv").write_text("timesteps\n")
    (tmp_path / "config.json").write_text(json.dumps({"role": "investigator"}))
    curves = ["--curves", str(tmp_path / "validation.csv")]
    _usage_error(capsys, lambda: results.main([*curves, "--plot", str(tmp_path / "no" / "x.png")]),
                 "--plot", "does not exist")
    _usage_error(capsys, lambda: results.main([*curves, "--plot", str(tmp_path)]),
                 "--plot", "is a directory")


def test_results_tables_name_the_seeds_they_played():
    """Seeds 7000,7005 are two seeds, not the range 7000-7005 the headings used to print."""
    from fraudarena_env.policies import ReactiveFraudster

    table = results.paired_table("fraudster", ["task_1"], [7000, 7005], ReactiveFraudster(seed=0))
    assert table.startswith("Fraudster checkpoint minus ReactiveFraudster, paired by seed, on 2 "
                            "seeds (7000,7005)")


def test_quick_seeds_refuses_a_file_as_out(tmp_path, capsys):
    (tmp_path / "file").write_text("")  # was a NotADirectoryError traceback from the first job
    _usage_error(capsys, lambda: quick_seeds.main(["--seeds", "0", "--out",
                                                   str(tmp_path / "file")]), "--out", "is a file")


def test_quick_seeds_runs_a_seed_given_twice_once(tmp_path, monkeypatch):
    """--seeds 0-1,1 ran seed 1 twice, at once with --jobs 2, into the same run directory."""
    started = []
    monkeypatch.setattr(quick_seeds, "run_seed", lambda seed, out, extra: started.append(seed))
    monkeypatch.setattr(quick_seeds, "read_run", lambda path: {})
    monkeypatch.setattr(quick_seeds, "summary", lambda runs: "")
    quick_seeds.main(["--seeds", "0-1,1", "--jobs", "2", "--out", str(tmp_path)])
    assert sorted(started) == [0, 1]


def test_the_league_s_eval_json_is_json_with_one_eval_seed():
    """With --eval-seeds 1000 (docs/training.md's tiny league) each standard error is nan, and
    eval.json held the bare NaN that JSON parsers other than Python's refuse; it is null."""
    rows = [{"task": "task_1", "grader": 0.8, "grader_sem": float("nan"), "steps": 42.0}]
    text = selfplay.eval_json(rows)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in eval.json")) == [
        {"task": "task_1", "grader": 0.8, "grader_sem": None, "steps": 42.0}]


def test_exploit_s_table_heading_reads_as_english():
    cfg = exploit.Config(spec="reactive", role="fraudster", seeds=(9000, 9001))
    assert "frozen, against an investigator best response" in exploit.report_table(cfg, {})
