"""The measurement scripts RESULTS.md quotes: ``training/headroom.py`` (room above the scripted
investigator) and ``training/frontier.py`` (what a fraudster's timing and tactics trade against
it). Both only read the rules, so they run without the train extra."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest

from fraudarena_env import cli
from fraudarena_env.policies import ScriptedInvestigator
from fraudarena_env.rules import catalog

TRAINING = Path(__file__).resolve().parents[1] / "training"
headroom = cli.load_script(TRAINING / "headroom.py", "fraudarena_headroom")
frontier = cli.load_script(TRAINING / "frontier.py", "fraudarena_frontier")
SEEDS = range(1000, 1004)


def test_headroom_gives_the_scripted_investigator_more_budget_and_then_restores_the_rules():
    config, price = catalog.TASKS["task_3"], ScriptedInvestigator.PULL_PRICE
    base, rich = headroom.headroom("task_3", SEEDS, scale=8)
    assert catalog.TASKS["task_3"] is config and ScriptedInvestigator.PULL_PRICE == price
    assert 0.0 < base < 1.0 and 0.0 < rich <= 1.0
    assert rich > base  # eight times the budget finds more on a ring task


def test_frontier_pairs_each_fraudster_with_the_reactive_one_on_the_same_seeds():
    ticks = []
    base_r, base_g, rows = frontier.frontier(
        "task_3", SEEDS, first_rounds=(1, 4),
        tactic_sets={"all": frontier.TACTIC_SETS["all"], "camouflaged": ("camouflaged",)},
        tick=lambda: ticks.append(1))
    assert len(ticks) == 1 + 4  # the reactive fraudster, then each row
    assert [(name, hold) for name, hold, *_ in rows] == [
        ("all", 1), ("all", 4), ("camouflaged", 1), ("camouflaged", 4)]
    never_waits = rows[0]  # from round 1 with every tactic: ReactiveFraudster
    assert never_waits[2] == pytest.approx(base_r) and never_waits[3:] == (0.0, 0.0, 0.0, 0.0)
    assert 0.0 < base_g < 1.0
    assert any(row[3] != 0.0 for row in rows[1:])


def test_frontier_on_one_seed_leaves_the_standard_errors_undefined_without_warnings():
    """--seeds 500: numpy warned twice per row (degrees of freedom <= 0, invalid divide) before
    printing nan; the arena's standard_error gives the same nan quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, rows = frontier.frontier("task_2", [500], first_rounds=(2,),
                                       tactic_sets={"all": frontier.TACTIC_SETS["all"]})
    assert math.isnan(rows[0][4]) and math.isnan(rows[0][6])


@pytest.mark.parametrize("gain, se, drop, expected", [
    (0.10, 0.02, -0.04, "yes"), (0.03, 0.02, -0.04, "~"), (0.10, 0.02, -0.02, "no"),
    (-0.01, 0.02, -0.05, "no")])
def test_frontier_says_whether_a_row_meets_the_fraudster_bar(gain, se, drop, expected):
    assert frontier.verdict(gain, se, drop) == expected


def test_frontier_prints_a_table_per_task(capsys, monkeypatch):
    monkeypatch.setattr(frontier, "frontier", lambda task, seeds, tick: (1.0, 0.7, [
        ("all", 1, 1.0, 0.0, 0.0, 0.0, 0.0)]))
    frontier.main(["--task", "task_2,task_3", "--seeds", "1000-1001"])
    out = capsys.readouterr().out
    assert "### task_2" in out and "### task_3" in out and "| all | 1 | +1.000 |" in out


@pytest.mark.parametrize("script", [headroom, frontier])
def test_measurement_scripts_refuse_an_unknown_task(script, capsys):
    with pytest.raises(SystemExit):
        script.main(["--task", "task_9", "--seeds", "1000"])
    assert "unknown task(s) task_9" in capsys.readouterr().err


def test_the_frontier_sweeps_the_rounds_that_take_proposals_and_no_more():
    # the last round takes none: a fraudster told to start there would never propose
    rows = frontier.frontier("task_2", SEEDS[:1], tactic_sets={"all": frontier.TACTIC_SETS["all"]})[2]
    assert [first for _, first, *_ in rows] == list(range(1, catalog.TASKS["task_2"].max_rounds))
    assert rows[-1][2] != 0.0  # proposing from the last round that takes proposals still earns
