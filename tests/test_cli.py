"""The `fraudarena` command line: play, evaluate, bench and the train hand-off."""

from __future__ import annotations

import argparse
import importlib.abc
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from fraudarena_env import cli
from fraudarena_env.arena import Arena

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 0
    return capsys.readouterr().out


# ---------------------------------------------------------------------------- play
def test_play_prints_rounds_verdicts_audit_and_scoreboard(capsys):
    out = run(capsys, "play", "--task", "task_3", "--seed", "7", "--plain")
    assert "=== Round 1 ===" in out
    assert "Fraudster" in out and "Investigator (budget 54" in out
    assert "  propose  " in out
    assert "  verdict  " in out and "| truth " in out
    assert "  pull     " in out
    assert "=== Auto-approved at the end" in out
    assert "=== Audit (heuristic)" in out
    assert "Scoreboard" in out and "grader score" in out and "investigator return" in out


def test_play_transcript_is_deterministic_for_a_seed(capsys):
    first = run(capsys, "play", "--task", "task_3", "--seed", "7")
    second = run(capsys, "play", "--task", "task_3", "--seed", "7")
    assert first == second
    assert "Round 1" in first and "Scoreboard" in first


def test_play_scoreboard_matches_the_arena(capsys):
    out = run(capsys, "play", "--task", "task_2", "--seed", "11", "--plain")
    result = Arena().play("task_2", 11)
    board = {line[:22].strip(): line[22:].strip() for line in
             out.split("Scoreboard", 1)[1].splitlines()[1:]}
    assert board["grader score"].startswith(f"{result.grader:.3f}  (verdicts ")
    assert board["end"] == (f"{result.end_reason}, {result.referee.round_number} round(s), "
                            f"{result.steps} steps")
    for role, value in result.returns.items():
        assert board[f"{role} return"].startswith(f"{value:+.2f}")


def test_transcript_shows_what_each_pull_revealed_when_it_was_made():
    result, _, _ = cli.play_match("task_3", 2)
    pulls = [e for e in result.referee.investigator_log if e["action_type"] == "investigate"]
    assert pulls and all(len(e["revealed"]) == 1 for e in pulls)


def test_play_on_the_text_face(capsys):
    out = run(capsys, "play", "--task", "task_2", "--seed", "3", "--face", "text", "--plain")
    assert "investigator scripted (text face)" in out
    assert "  verdict  " in out and "Scoreboard" in out


def test_play_falls_back_to_the_face_a_policy_has(capsys):
    out = run(capsys, "play", "--task", "task_1", "--seed", "1", "--fraudster", "gibberish",
              "--investigator", "always_reject", "--auditor", "flag_everything", "--plain")
    assert "fraudster gibberish (text face)" in out
    assert "note: fraudster policy GibberishFraudster has no tensor face" in out
    assert "FALSE" in out  # flag-everything raises flags the rule audit does not support


def test_unknown_task_or_policy_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["play", "--task", "task_9"])
    assert exc.value.code == 2
    assert "invalid choice: 'task_9'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["play", "--investigator", "oracle"])
    assert "invalid choice: 'oracle'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["play", "--seed", str(2**63)],
                                  ["evaluate", "--task", "task_1", "--seeds", f"1-{2**63}"]])
def test_a_seed_past_the_seed_range_is_a_usage_error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2 and "2**63 - 1" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_named_before_any_work(capsys, tmp_path):
    missing = tmp_path / "no_such_dir" / "out"
    for argv, path in ((["play", "--archive", str(missing)], missing),
                       (["play", "--archive", str(tmp_path)], tmp_path),
                       (["replay", str(tmp_path / "a.jsonl"), "--html", str(missing)], missing)):
        assert cli.main(argv) == 2
        out, err = capsys.readouterr()
        assert f"cannot write {path}" in err and out == ""  # no match was played first
    assert not any(tmp_path.iterdir())  # and nothing was left behind


def _archive(tmp_path) -> Path:
    archive = tmp_path / "a.jsonl"
    assert cli.main(["play", "--task", "task_1", "--seed", "3", "--archive", str(archive),
                     "--plain"]) == 0
    return archive


def _database(tmp_path) -> Path:
    import sqlite3

    db = tmp_path / "fraudarena.sqlite3"
    sqlite3.connect(db).execute("CREATE TABLE matches (record TEXT)").connection.commit()
    return db


def test_an_output_that_is_the_archive_read_or_a_database_is_refused(capsys, tmp_path):
    archive = _archive(tmp_path)
    db = _database(tmp_path)
    kept = archive.read_bytes(), db.read_bytes()
    capsys.readouterr()
    for argv, said in ((["replay", str(archive), "--html", str(archive)], "is the archive it reads"),
                       (["export", str(tmp_path), str(db)], "is the archive it reads"),
                       (["export", str(db), str(db)], "is the archive it reads"),
                       (["replay", str(archive), "--html", str(db)], "is a server's database"),
                       (["play", "--archive", str(db)], "is a server's database")):
        assert cli.main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert said in err and "Scoreboard" not in out, argv
    assert (archive.read_bytes(), db.read_bytes()) == kept


def test_a_record_that_cannot_be_played_again_is_named_not_a_traceback(capsys, tmp_path):
    import json

    archive = _archive(tmp_path)
    record = json.loads(archive.read_text().splitlines()[-1])
    for damage in ({"reset": None}, {"reset": {**record["reset"], "task_id": "task_9"}},
                   {"actions": [{"role": "investigator", "action": {"action_index": 99999}}]}):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps({**record, **damage}) + "\n")
        assert cli.main(["replay", str(bad), "--plain"]) == 1
        assert "cannot be played again" in capsys.readouterr().err


def test_export_into_a_directory_leaves_nothing_behind(capsys, tmp_path):
    from fraudarena_env.archive import Archive

    store = tmp_path / "store"
    Archive(str(store)).close()
    target = tmp_path / "somedir"
    target.mkdir()
    assert cli.main(["export", str(store), str(target)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["somedir", "store"]


def test_export_from_a_directory_without_an_archive_says_so(capsys, tmp_path):
    """It printed Python's '[Errno 2] No such file or directory: .../fraudarena.sqlite3'."""
    assert cli.main(["export", str(tmp_path), str(tmp_path / "out.jsonl")]) == 2
    assert "holds no archive (no fraudarena.sqlite3)" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def test_a_seed_list_too_long_to_play_is_a_usage_error(capsys):
    for seeds in ("0-9223372036854775807", "0-999999999"):
        with pytest.raises(SystemExit):
            cli.main(["evaluate", "--task", "task_1", "--seeds", seeds])
        assert "too many seeds" in capsys.readouterr().err


def test_the_skill_suite_refuses_the_rows_it_would_ignore(capsys):
    assert cli.main(["evaluate", "--suite", "skill", "--investigator", "always_reject",
                     "--task", "task_1", "--seeds", "1"]) == 2
    assert "--suite skill plays its own players; --investigator" in capsys.readouterr().err


def test_a_checkpoint_named_without_zip_in_the_working_directory_is_found(tmp_path, monkeypatch):
    (tmp_path / "mine.zip").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    spec = cli.parse_policy_spec("investigator", "mine")
    assert spec.path == Path("mine.zip")


@pytest.mark.parametrize("seconds", ["inf", "nan", "0", "1e9"])
def test_bench_wants_a_finite_number_of_seconds(capsys, seconds):
    with pytest.raises(SystemExit):
        cli.main(["bench", "--seconds", seconds])
    assert "at most 3600 seconds" in capsys.readouterr().err


# ---------------------------------------------------------------------------- evaluate
def test_evaluate_prints_a_table_with_the_scripted_row(capsys):
    out = run(capsys, "evaluate", "--task", "task_1", "--seeds", "1-2", "--no-progress")
    assert "| task | policies | grader |" in out
    assert "| task_1 | scripted trio |" in out
    assert "| task_1 | investigator=always_reject |" in out
    assert "| task_1 | fraudster=gibberish |" in out
    assert "| task_1 | auditor=flag_everything |" in out
    assert "Mean over 2 seed(s) (1-2)" in out


def test_evaluate_rows_can_be_picked(capsys):
    out = run(capsys, "evaluate", "--task", "task_1", "--seeds", "5", "--investigator",
              "do_nothing", "--no-progress")
    rows = [line for line in out.splitlines() if line.startswith("| task_1")]
    assert [r.split(" | ")[1] for r in rows] == ["scripted trio", "investigator=do_nothing"]


def test_parse_seeds():
    assert cli.parse_seeds("1000-1003") == [1000, 1001, 1002, 1003]
    assert cli.parse_seeds("1-2,7") == [1, 2, 7]
    with pytest.raises(Exception, match="bad seed range"):
        cli.parse_seeds("5-3")


def test_parse_task_list_keeps_order_and_repeats_and_names_the_tasks_on_a_typo():
    assert cli.parse_task_list("task_3, task_1,task_3") == ("task_3", "task_1", "task_3")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown task.*task_9.*tasks are task_1"):
        cli.parse_task_list("task_1,task_9")
    with pytest.raises(argparse.ArgumentTypeError, match="no task given"):
        cli.parse_task_list(" , ")


# ---------------------------------------------------------------------------- bench
def test_bench_quick_prints_the_ratio_to_the_lineage(capsys):
    out = run(capsys, "bench", "--quick", "--seconds", "0.05", "--no-memory")
    assert "connect_four_v3.env()" in out
    assert "ours/theirs" in out
    task_3 = next(line for line in out.splitlines() if line.startswith("task_3 "))
    assert task_3.split()[-2] == "1,800" and task_3.endswith("x")
    assert "Referee.reset_match (task_3):" in out
    vector = next(line for line in out.splitlines() if line.startswith("VectorFraudArena(num_envs=1024)"))
    assert float(vector.split()[-1]) > 0  # its agent-steps/s over the scalar env's


def test_vector_bench_times_a_roles_seat_batched_and_in_gymnasiums_sync_env(capsys):
    from fraudarena_env.bench import load

    results = load("vector").main(["--envs", "--seats", "4", "--task", "task_1",
                                   "--seconds", "0.05"])
    out = capsys.readouterr().out
    assert set(results) == {"seats"} and set(results["seats"]) == {"investigator", "fraudster"}
    assert all(sync > 0 and batched > 0 for sync, batched in results["seats"].values())
    assert "sync (16 RoleEnvs)" in out and "batched (N=4)" in out


def test_vector_bench_times_a_roles_seat_in_worker_processes_too(capsys):
    from fraudarena_env.bench import load

    bench = load("vector")
    results = bench.main(["--envs", "--seats", "4", "--workers", "2", "--task", "task_1",
                          "--seconds", "0.05"])
    assert all(len(rates) == 3 and min(rates) > 0 for rates in results["seats"].values())
    assert "2 workers (wall)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--envs", "4", "--workers", "2"])  # workers time a seat: --seats is needed


def test_vector_bench_times_a_fixed_workload_the_same_each_repeat(capsys):
    """--fixed plays the same steps from seed 0 every repeat: its best time is over a workload
    that does not change between runs or versions of the code."""
    from fraudarena_env.bench import load

    bench = load("vector")
    results = bench.main(["--envs", "2", "5", "--fixed", "6", "--repeats", "2", "--task",
                          "task_1"])
    assert set(results) == {2, 5} and all(seconds > 0 for seconds in results.values())
    assert "6 steps from seed 0, best of 2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["--envs", "--fixed", "6"])


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("bench_*.py")))
def test_every_benchmark_s_help_says_what_it_times_in_a_whole_sentence(script, capsys,
                                                                       monkeypatch):
    """benchmarks/README.md sends readers to each script's --help; its description is the first
    paragraph of the script's docstring, never a line cut mid-sentence. (In this process: a
    subprocess per script cost seconds of imports each.)"""
    import importlib.util
    import inspect

    spec = importlib.util.spec_from_file_location(f"bench_help_{script[:-3]}",
                                                  ROOT / "benchmarks" / script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # (its dataclasses look it up)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as done:
        module.main(["--help"]) if inspect.signature(module.main).parameters else module.main()
    assert done.value.code == 0
    description = capsys.readouterr().out.split("\n\n")[1]
    assert description.rstrip().endswith((".", ".)")), description


def test_referee_bench_reports_the_median_of_three_runs():
    from fraudarena_env.bench import load

    r = load("referee").referee_steps_per_second("task_1", 0.06)
    assert len(r["steps_per_s_runs"]) == 3
    assert r["steps_per_s"] == sorted(r["steps_per_s_runs"])[1]
    assert r["steps_per_match"] > 1



def test_env_bench_times_each_env_in_slices_alternating_with_its_reference():
    """The ratio compares the two envs over interleaved slices, so a machine that slows down
    halfway slows both alike: here the machine halves its speed after four slices, and the
    ratio still reads the true 2.0."""
    from fraudarena_env.bench import load

    bench_env = load("env")
    order, clock = [], {"slices": 0}

    class Fake:
        def __init__(self, name, turns_per_s):
            self.name, self.rate = name, turns_per_s
            self.turns = self.episodes = 0
            self.seconds = 0.0

        def run_for(self, seconds):
            order.append(self.name)
            clock["slices"] += 1
            slow = 2.0 if clock["slices"] > 8 else 1.0  # the machine halves its speed
            self.turns += int(self.rate * seconds / slow)
            self.episodes += 1
            self.seconds += seconds

    ours, c4 = Fake("ours", 20_000), Fake("c4", 10_000)
    r = bench_env.against(ours, c4, seconds=0.8, slices=8)
    assert order == ["c4", "ours"] * 8
    assert r["ratio_vs_reference"] == pytest.approx(2.0)
    assert r["reference_turns_per_s"] == pytest.approx(7_500)  # its turns over its own slices

# ---------------------------------------------------------------------------- train
def test_train_hands_its_arguments_to_the_training_script(monkeypatch, tmp_path):
    script = tmp_path / "selfplay.py"
    script.write_text("SEEN = []\n\ndef main(argv):\n    SEEN.append(argv)\n    return 0\n")
    monkeypatch.setattr(cli, "TRAIN_SCRIPT", script)
    assert cli.main(["train", "--role", "investigator", "--help"]) == 0
    assert sys.modules["fraudarena_selfplay"].SEEN == [["--role", "investigator", "--help"]]


def test_train_script_is_the_checkouts_training_selfplay():
    assert cli.TRAIN_SCRIPT.is_file()
    assert cli.TRAIN_SCRIPT.parent.name == "training"


def test_train_without_the_extra_says_what_to_install(monkeypatch, tmp_path, capsys):
    script = tmp_path / "selfplay.py"
    script.write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    monkeypatch.setattr(cli, "TRAIN_SCRIPT", script)
    assert cli.main(["train"]) == 1
    assert 'pip install -e ".[train]"' in capsys.readouterr().err


def test_train_without_a_checkout_says_to_clone_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(cli, "TRAIN_SCRIPT", tmp_path / "training" / "selfplay.py")
    assert cli.main(["train"]) == 1
    assert "checkout" in capsys.readouterr().err


def test_serve_hands_its_arguments_to_the_server(monkeypatch):
    seen = []
    fake = types.ModuleType("fraudarena_env.server")
    fake.main = lambda argv: seen.append(argv) or 0
    monkeypatch.setitem(sys.modules, "fraudarena_env.server", fake)
    assert cli.main(["serve", "--port", "8123"]) == 0
    assert seen == [["--port", "8123"]]


def test_serve_without_the_extra_says_what_to_install(monkeypatch, capsys):
    class NoFastAPI(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "fraudarena_env.server":
                raise ModuleNotFoundError("No module named 'fastapi'", name="fastapi")
            return None

    monkeypatch.delitem(sys.modules, "fraudarena_env.server", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoFastAPI(), *sys.meta_path])
    assert cli.main(["serve"]) == 1
    assert 'pip install -e ".[server]"' in capsys.readouterr().err


# ---------------------------------------------------------------------------- entry points
def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "fraudarena"
    return [str(script)] if script.exists() else [sys.executable, "-m", "fraudarena_env.cli"]


@pytest.mark.parametrize("command", [
    _console_script(),
    [sys.executable, "-m", "fraudarena_env"],
], ids=["console-script", "python-m"])
def test_the_command_runs_as_a_program(command):
    proc = subprocess.run([*command, "play", "--task", "task_1", "--seed", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Round 1" in proc.stdout and "Scoreboard" in proc.stdout


@pytest.mark.parametrize("argv", [
    ["play", "--task", "task_1", "--seed", "1"],
    ["evaluate", "--task", "task_1", "--seeds", "1", "--investigator", "oracle", "--json",
     "--no-progress"],
], ids=["play", "evaluate-by-name"])
def test_play_and_evaluate_do_not_need_torch(argv):
    code = (f"import sys; from fraudarena_env.cli import main; main({argv!r}); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_evaluate_skill_suite_prints_premium_headroom_and_the_fraudster_table(capsys):
    out = run(capsys, "evaluate", "--suite", "skill", "--task", "task_1", "--seeds", "1000-1002",
              "--no-progress")
    assert "evidence premium" in out and "headroom" in out
    for row in ("| first_sight_classifier |", "| oracle |", "| scripted |", "| only_blatant |",
                "| never_propose |", "| reactive |"):
        assert row in out
    assert "information value" in out and "camouflaged" in out
    # a fraudster's return varies a lot from seed to seed: each mean comes with its error
    assert "| fraudster | fraudster return (± s.e.) | grader |" in out
    assert re.search(r"\| reactive \| [+-]\d\.\d{3} ± \d\.\d{3} \|", out)


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_serve_wants_a_port_from_0_to_65535(capsys, port):
    pytest.importorskip("fastapi")
    from fraudarena_env.server import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--port", port])
    assert "port" in capsys.readouterr().err


def test_the_install_hint_for_training_gets_torchs_cpu_build():
    """It said `pip install torch==2.13.0`, which on Linux pulls several GB of CUDA libraries
    from PyPI; the hint now names the CPU index, as the README and .ci/run do."""
    hint = cli.install_command("train")
    assert hint.startswith("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu && ")
    assert hint.endswith('pip install -e ".[train]"')
    assert "torch" not in cli.install_command("server")


def test_a_players_text_cannot_drive_the_terminal_a_transcript_prints_it_on():
    """Ad copy and rationales come from players (remote ones included): a transcript shows a
    terminal's escape sequences and bidirectional overrides as escapes, never raw."""
    from fraudarena_env.cli import shorten

    shown = shorten("Buy now \x1b]0;PWNED\x07\x1b[2J \u202ereversed\u200b\n\tend", width=200)
    assert shown == "Buy now \\x1b]0;PWNED\\x07\\x1b[2J \\u202ereversed\\u200b end"
    assert shown.isprintable()
    assert shorten("Plain copy, all printable: caf\u00e9") == "Plain copy, all printable: caf\u00e9"


def test_a_replayed_records_own_id_and_reason_are_printed_as_escapes(tmp_path, capsys):
    """An archive file another person made could set the terminal's title or clear it through
    the id and the reason the transcript's note prints."""
    record = {"match_id": "m_x\x1b]0;PWNED\x07", "episode_id": "e", "reason": "finished\x1b[2J",
              "archived_at": 1.0, "reset": {"seed": 1, "task_id": "task_1"}, "actions": [],
              "state": {}}
    path = tmp_path / "archive.jsonl"
    path.write_text(json.dumps(record) + "\n")
    cli.main(["replay", str(path), "--plain"])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "archived match m_x\\x1b]0;PWNED\\x07 (finished\\x1b[2J)" in out
