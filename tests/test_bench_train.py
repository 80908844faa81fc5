"""benchmarks/bench_train.py, the training-throughput benchmark: a tiny run prints its table."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sb3_contrib")

from fraudarena_env.cli import load_script  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"
COLUMNS = ["role", "policy", "threads", "timesteps", "wall s", "steps/s", "steps/CPU-s",
           "env share", "rollout share", "env-only steps/s", "env-only / training"]


def test_a_tiny_run_prints_steps_per_second_and_the_env_share_per_role(capsys):
    bench = load_script(SCRIPT, "fraudarena_bench_train")
    assert bench.main(["--task", "task_1", "--timesteps", "128", "--n-envs", "2", "--n-steps",
                       "64", "--batch-size", "64", "--n-epochs", "1", "--threads", "1",
                       "--reference-seconds", "0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("MaskablePPO training throughput on task_1: 2 envs")
    table = [[cell.strip() for cell in line.strip("|").split("|")]
             for line in lines if line.startswith("| ")]
    assert table[0] == COLUMNS
    rows = {row[0]: dict(zip(COLUMNS, row)) for row in table[1:]}
    assert list(rows) == ["investigator", "fraudster"]
    assert rows["investigator"]["policy"] == "SlotInvestigatorPolicy"
    for row in rows.values():
        assert row["threads"] == "1" and row["timesteps"] == "128"  # whole rollouts: 2 x 64
        assert float(row["steps/s"].replace(",", "")) > 0
        assert float(row["env-only steps/s"].replace(",", "")) > 0
        for share in ("env share", "rollout share"):
            assert row[share].endswith("%") and 0 < int(row[share][:-1]) <= 100
        assert row["env-only / training"].endswith("x")


def test_against_plain_prints_both_roles_ratios(capsys):
    bench = load_script(SCRIPT, "fraudarena_bench_train")
    assert bench.main(["--against-plain", "--task", "task_1", "--timesteps", "64",
                       "--train-args", "--vector-envs 8 --n-steps 8 --net mlp "
                       "--val-seeds 3000-3000"]) == 0
    out = capsys.readouterr().out
    out = out[out.index("train.py against plain MaskablePPO"):]  # after train.py's own output
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| ") and not line.startswith("| role")]
    assert [r[0] for r in rows] == ["investigator", "fraudster"]
    for row in rows:
        assert row[3].endswith("x") and float(row[3][:-1]) > 0
        assert row[6].endswith("x") and float(row[6][:-1]) > 0
