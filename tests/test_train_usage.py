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


@pytest.mark.parametrize("flags, said", [
    (["--opponent", f"fraudster={CHECKPOINTS / 'investigator.zip'}"], "not a checkpoint of the "
                                                                       "fraudster"),
    (["--teacher", str(CHECKPOINTS / "fraudster.zip")], "not a checkpoint of the investigator"),
    (["--init", str(CHECKPOINTS / "fraudster.zip")], "--init .* not a checkpoint of the "
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
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        _parse(["--role", "investigator", "--task", "task_1", "--out", str(out), *flags])
    assert exc.value.code == 2
    assert "--seed must be at most 2,146 on the batched path" in capsys.readouterr().err
    assert not out.exists()


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
