"""training/quick_seeds.py: the main job's claims, read off each seed's run and counted."""

from __future__ import annotations

import json

import pytest

from fraudarena_env import cli

quick_seeds = cli.load_script(cli.TRAIN_SCRIPT.parent / "quick_seeds.py", "fraudarena_quick_seeds")
TINY = ["--task", "task_1", "--generations", "2", "--timesteps", "256",
        "--fraudster-timesteps", "256", "--eval-seeds", "1000-1001", "--vector-envs", "8",
        "--n-steps", "16", "--batch-size", "64", "--imitation-samples", "200",
        "--fraudster-imitation-samples", "100"]


def _fake_run(path, learned, scripted, blind, fr_learned, fr_reactive, grader_vs_learned,
              elo_inv, elo_fr):
    rows = [
        ("scripted", "scripted", scripted, fr_reactive), ("learned", "scripted", learned, 0.0),
        ("always_reject", "scripted", blind, 0.0), ("random", "scripted", blind - 0.1, 0.0),
        ("scripted", "learned", grader_vs_learned, fr_learned),
        ("learned", "learned", 0.9, 0.0),  # neither claim reads it
    ]
    path.mkdir(parents=True)
    (path / "eval.json").write_text(json.dumps([
        {"task": "task_3", "investigator_policy": i, "fraudster_policy": f,
         "auditor_policy": "scripted", "grader": g, "fraudster_return": r}
        for i, f, g, r in rows]))
    elo = [{"role": "investigator", "player": p, "elo": e} for p, e in zip(("g0", "g1"), elo_inv)]
    elo += [{"role": "fraudster", "player": p, "elo": e} for p, e in zip(("g0", "g1"), elo_fr)]
    (path / "crossplay.json").write_text(json.dumps({"rows": [], "elo": elo}))
    (path / "quick.log").write_text("...\ntrained in 201 s, evaluated in 16.2 s\n")


def test_each_claim_is_read_off_every_seed_and_counted(tmp_path, capsys):
    _fake_run(tmp_path / "seed0", 0.76, 0.70, 0.49, 1.6, 1.5, 0.66, (1000, 1040), (850, 860))
    _fake_run(tmp_path / "seed1", 0.74, 0.70, 0.75, 1.2, 1.5, 0.71, (1000, 990), (850, 860))
    table = quick_seeds.main(["--seeds", "0-1", "--out", str(tmp_path), "--read"])
    assert table in capsys.readouterr().out
    assert (tmp_path / "summary.md").read_text().strip() == table
    lines = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()}

    def row(start):
        return next(line for name, line in lines.items() if name.startswith(start))

    # +0.06 holds the +0.05 bar, +0.04 does not
    assert "| +0.060 | +0.040 | +0.050 ± 0.010 | 1 of 2 |" in row("learned investigator's grader - scripted")
    assert "| +0.270 | -0.010 |" in row("learned investigator's grader - the best blind")
    assert row("Elo rise, first to last generation: investigator").endswith("| 1 of 2 |")
    assert row("Elo rise, first to last generation: fraudster").endswith("| 2 of 2 |")
    assert "| +0.10 | -0.30 |" in row("learned fraudster's return")
    assert row("the scripted investigator's grader").endswith("| 1 of 2 |")
    assert "201 + 16 s, 201 + 16 s" in table


def test_read_refuses_seeds_without_a_run(tmp_path):
    with pytest.raises(SystemExit):
        quick_seeds.main(["--seeds", "0-1", "--out", str(tmp_path), "--read"])


def test_a_seed_runs_the_quick_job_in_its_own_directory(tmp_path):
    """One real (tiny) quick job through the script: its run directory, its log, its table."""
    table = quick_seeds.main(["--seeds", "7", "--out", str(tmp_path), "--", *TINY])
    assert (tmp_path / "seed7" / "eval.json").exists()
    assert "trained in" in (tmp_path / "seed7" / "quick.log").read_text()
    assert "| seed 7 |" in table and table.count(" of 1 |") == len(quick_seeds.CLAIMS)


def test_runs_side_by_side_each_run_in_one_process(tmp_path, monkeypatch):
    """--jobs 2: each run gets selfplay's --workers 1 (the runs already share the cores), unless
    the flags after -- name their own."""
    calls = []

    def run_seed(seed, out, extra):
        calls.append(list(extra))
        _fake_run(out / f"seed{seed}", 0.8, 0.7, 0.5, 1.0, 1.5, 0.66, (1000, 1010), (900, 910))
        return out / f"seed{seed}"

    monkeypatch.setattr(quick_seeds, "run_seed", run_seed)
    quick_seeds.main(["--seeds", "0-1", "--jobs", "2", "--out", str(tmp_path / "a")])
    assert calls == [["--workers", "1"]] * 2
    calls.clear()
    quick_seeds.main(["--seeds", "0", "--out", str(tmp_path / "b")])
    assert calls == [[]]  # one run at a time: selfplay's default
    calls.clear()
    quick_seeds.main(["--seeds", "0-1", "--jobs", "2", "--out", str(tmp_path / "c"), "--",
                      "--workers", "2"])
    assert calls == [["--workers", "2"]] * 2


def test_flags_selfplay_refuses_are_named_before_any_run_starts(tmp_path, capsys):
    """A seed past selfplay's bound, or a bad flag after --, failed each run in turn, its
    reason only in the run's log (and a run directory left holding just that log)."""
    for argv in (["--seeds", "30"], ["--seeds", "0", "--", "--timesteps", "-3"]):
        with pytest.raises(SystemExit) as exc:
            quick_seeds.main([*argv, "--out", str(tmp_path)])
        assert exc.value.code == 2
        assert "selfplay.py refuses these flags" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
