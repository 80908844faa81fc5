"""``training/train.py`` names a wrong checkpoint or an output it cannot create as a usage error,
before the run directory is touched."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("sb3_contrib")

ROOT = Path(__file__).parent.parent
CHECKPOINTS = ROOT / "training" / "checkpoints"


def _parse(argv):
    from fraudarena_env import cli

    train = cli.load_script(cli.TRAIN_SCRIPT, "fraudarena_selfplay").one_role  # train.py
    return train.parse_args(argv)


def _refused(tmp_path, capsys, flags) -> str:
    """train.py's usage error for an investigator run on task_1 with ``flags`` (the run
    directory not made)."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        _parse(["--role", "investigator", "--task", "task_1", "--out", str(out), *flags])
    assert exc.value.code == 2
    assert not out.exists()
    return capsys.readouterr().err


@pytest.mark.parametrize("flags, said", [
    (["--opponent", f"fraudster={CHECKPOINTS / 'investigator.zip'}"], "not a checkpoint of the "
                                                                       "fraudster"),
    (["--teacher", str(CHECKPOINTS / "fraudster.zip")], "not a checkpoint of the investigator"),
    (["--init", str(CHECKPOINTS / "fraudster.zip")], "--init: .* not a checkpoint of the "
                                                     "investigator"),
    (["--opponent", "fraudster=README.md"], "cannot load README.md as a MaskablePPO checkpoint"),
])
def test_a_wrong_checkpoint_is_a_usage_error_and_the_run_directory_is_not_made(
        tmp_path, capsys, flags, said):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        _parse(["--role", "investigator", "--task", "task_1", "--out", str(out), *flags])
    assert exc.value.code == 2
    assert re.search(said, capsys.readouterr().err)
    assert not out.exists()


def test_an_output_directory_that_cannot_be_made_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        _parse(["--role", "investigator", "--task", "task_1", "--out",
                str(tmp_path / "file" / "run")])
    assert "cannot create it" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [
    ("--lr", "0"), ("--lr", "nan"), ("--clip-range", "-0.1"), ("--ent-coef", "-1"),
    ("--ent-coef", "inf"), ("--calibration-coef", "nan"), ("--grader-coef", "-2")])
def test_a_number_out_of_range_is_a_usage_error(tmp_path, capsys, flag, value):
    """A learning rate, clip range or reward coefficient that is not finite, or out of its range,
    would train on nan or backwards: refused before the run directory is made."""
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        _parse(["--role", "investigator", "--task", "task_1", "--out", str(out), flag, value])
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("flags", [["--seed", "2147"], ["--seed", "4000000", "--vector-envs", "64"]])
def test_a_seed_whose_batched_matches_would_leave_the_training_range_is_a_usage_error(
        tmp_path, capsys, flags):
    """On the batched path a run plays match seeds 100,000 + seed * 1,000,000 + ...: from
    --seed 2147 on they passed the training range's top (2**31 - 1) unnoticed."""
    assert "--seed must be at most 2,146 on the batched path" in _refused(tmp_path, capsys, flags)


def test_the_largest_batched_seed_and_any_seed_on_the_role_env_path_are_taken(tmp_path):
    from fraudarena_env.sb3 import TRAIN_SEED_RANGE

    cfg = _parse(["--role", "investigator", "--task", "task_1", "--out", str(tmp_path / "a"),
                  "--seed", "2146"])
    assert 100_000 + 2146 * 1_000_000 + 1_000_000 <= TRAIN_SEED_RANGE[1]
    assert cfg.seed == 2146
    assert _parse(["--role", "investigator", "--task", "task_1", "--out", str(tmp_path / "b"),
                   "--seed", "4000000", "--vector-envs", "0"]).seed == 4_000_000


@pytest.mark.parametrize("flags, said", [
    (["--imitation-samples", "0"], "--imitation-samples is 0, so nothing is imitated"),
    (["--init", str(CHECKPOINTS / "fraudster.zip")], "--init continues a checkpoint")])
def test_a_teacher_that_would_imitate_nothing_is_a_usage_error(tmp_path, capsys, flags, said):
    """--teacher with imitation off, or with --init, was accepted, ignored, and written to
    config.json as if the run had imitated it."""
    with pytest.raises(SystemExit) as exc:
        _parse(["--role", "fraudster", "--task", "task_1", "--out", str(tmp_path / "run"),
                "--teacher", "waiting", *flags])
    assert exc.value.code == 2
    assert "--teacher 'waiting' would not be used" in (err := capsys.readouterr().err)
    assert said in err


@pytest.mark.parametrize("flags", [
    ["--batch-size", "1"],
    ["--vector-envs", "0", "--n-envs", "1", "--n-steps", "1"],  # one step a rollout
    ["--vector-envs", "0", "--n-envs", "2", "--n-steps", "2", "--batch-size", "3"],  # 3 + 1
    ["--vector-envs", "8", "--n-steps", "8", "--batch-size", "9"],  # 64 = 7 * 9 + 1
])
def test_a_minibatch_of_one_step_is_a_usage_error(tmp_path, capsys, flags):
    """A minibatch of one step normalises its advantages by the deviation of nothing: every
    weight became NaN, and the run saved them and exited 0 (sb3-contrib does not refuse it)."""
    assert "minibatch of one step" in _refused(tmp_path, capsys, flags)


def test_weights_that_are_no_longer_numbers_are_not_saved(tmp_path):
    import torch
    from sb3_contrib import MaskablePPO

    from fraudarena_env import RoleEnv, cli

    train = cli.load_script(cli.TRAIN_SCRIPT, "fraudarena_selfplay").one_role
    model = MaskablePPO("MlpPolicy", RoleEnv("fraudster", task_id="task_1"), n_steps=8,
                        batch_size=8, device="cpu")
    train.save_checkpoint(model, tmp_path / "fine.zip")
    with torch.no_grad():
        next(model.policy.parameters())[0] = float("nan")
    with pytest.raises(RuntimeError, match="training diverged: 1 weight tensor"):
        train.save_checkpoint(model, tmp_path / "nan.zip")
    assert (tmp_path / "fine.zip").exists() and not (tmp_path / "nan.zip").exists()


def test_an_output_directory_that_holds_a_run_is_refused_unless_overwritten(tmp_path, capsys):
    """A new run in an old run's directory left its config.json over the old run's best.zip and
    validation.csv (a rerun stopped early, or one that failed, left a directory at odds with
    itself)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.zip").write_text("an earlier run's")
    base = ["--role", "investigator", "--task", "task_1", "--out", str(out)]
    with pytest.raises(SystemExit):
        _parse(base)
    assert "already holds a run (best.zip)" in capsys.readouterr().err
    assert _parse([*base, "--overwrite"]).out == str(out)


def test_a_pool_that_holds_no_checkpoint_is_a_usage_error(tmp_path, capsys):
    """It trained against the scripted player alone, and said nothing (a league's root holds
    its snapshots further down, in pool/<role>/)."""
    empty, league = tmp_path / "empty", tmp_path / "league"
    empty.mkdir()
    (league / "pool" / "fraudster").mkdir(parents=True)
    (league / "pool" / "fraudster" / "fraudster_g0.zip").write_text("")
    for pool, said in ((empty, "holds no checkpoint"), (league, "they lie further down: .*"
                                                                 "pool/fraudster")):
        with pytest.raises(SystemExit):
            _parse(["--role", "investigator", "--task", "task_1", "--out", str(tmp_path / "r"),
                    "--opponent", f"fraudster={pool}"])
        assert re.search(said, capsys.readouterr().err)


def test_the_network_asked_for_is_the_network_built_or_refused(tmp_path, capsys):
    base = ["--task", "task_1", "--out", str(tmp_path / "run")]
    assert _parse(["--role", "fraudster", *base]).net == "mlp"  # what config.json records
    assert _parse(["--role", "investigator", *base]).net == "slot"
    refusals = ((["--role", "fraudster", "--net", "slot"], "--net slot is the investigator's"),
                (["--role", "investigator", "--net", "mlp", "--init",
                  str(CHECKPOINTS / "investigator.zip")], "--init continues the checkpoint's"))
    for flags, said in refusals:
        with pytest.raises(SystemExit):
            _parse([*flags, *base])
        assert said in capsys.readouterr().err


@pytest.mark.parametrize("script, argv, said", [
    ("selfplay", ["--fraudster-teacher", str(CHECKPOINTS / "investigator.zip")],
     "--fraudster-teacher: .* not a checkpoint of the fraudster"),
    ("exploit", ["reactive", "--role", "fraudster", "--budget", "64", "--imitation-samples",
                 "10", "--teacher", str(CHECKPOINTS / "fraudster.zip")],
     "--teacher: .* not a checkpoint of the investigator"),
])
def test_a_teacher_of_the_wrong_role_is_a_usage_error_in_every_script(tmp_path, capsys, script,
                                                                      argv, said):
    """selfplay.py and exploit.py printed a traceback (they caught only ValueError)."""
    import importlib
    import sys

    sys.path.insert(0, str(ROOT / "training"))
    try:
        module = importlib.import_module(script)
        with pytest.raises(SystemExit) as exc:
            module.parse_args([*argv, "--out", str(tmp_path / "run")])
    finally:
        sys.path.remove(str(ROOT / "training"))
    assert exc.value.code == 2
    assert re.search(said, capsys.readouterr().err)
