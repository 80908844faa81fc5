"""Skill pays (docs/rules.md, "What the rules guarantee"), over 50 seeds per task that no tuning used.

Evidence must be worth pulling: every blind reference policy scores well below the scripted
investigator, which in turn leaves an oracle clear headroom. First-sight features are informative
but not decisive, and two well-chosen sources are. Camouflage hides a proposal at first sight,
blatant copy does not, and a fraudster that mixes tactics earns more than one that does not.
"""

from functools import cache

import pytest

from fraudarena_env import skill
from fraudarena_env.rules.catalog import TASK_IDS
from fraudarena_env.rules.scoring import calibration_skill

SEEDS = range(1000, 1050)
HARD = ("task_2", "task_3", "task_3_unseen")


@cache
def investigators(task_id):
    return skill.investigator_table(task_id, SEEDS)


@cache
def fraudsters(task_id):
    return skill.fraudster_table(task_id, SEEDS)


@cache
def information(task_id):
    return skill.information_value(task_id, SEEDS)


@pytest.mark.parametrize("task_id", TASK_IDS)
@pytest.mark.parametrize("blind", skill.BLIND_NAMES)
def test_every_blind_policy_scores_well_below_the_scripted_investigator(task_id, blind):
    rows = investigators(task_id)
    margin = 0.15 if task_id in HARD else 0.10
    assert rows[blind]["grader"] <= rows["scripted"]["grader"] - margin, (blind, rows[blind])
    assert rows[blind]["investigator"] < rows["scripted"]["investigator"]


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_degenerate_and_random_investigators_stay_below_scripted(task_id):
    rows = investigators(task_id)
    for name in ("random", "always_reject", "always_approve", "always_escalate",
                 "investigate_spam", "do_nothing", "link_everything"):
        assert rows[name]["grader"] < rows["scripted"]["grader"], name
        assert rows[name]["investigator"] < rows["scripted"]["investigator"], name


@pytest.mark.parametrize("task_id", ["task_3", "task_3_unseen"])
def test_the_oracle_leaves_the_scripted_investigator_headroom_on_ring_tasks(task_id):
    rows = investigators(task_id)
    assert rows["scripted"]["grader"] <= 0.85 * rows["oracle"]["grader"]


def test_the_oracle_leaves_headroom_on_task_2():
    rows = investigators("task_2")
    assert rows["oracle"]["grader"] - rows["scripted"]["grader"] >= 0.10


def test_tasks_form_a_difficulty_ladder():
    scripted = [investigators(t)["scripted"]["grader"] for t in TASK_IDS]
    assert scripted[0] > scripted[2] > scripted[3]
    assert scripted[1] > scripted[2]


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_first_sight_is_informative_but_not_decisive(task_id):
    info = information(task_id)
    assert 0.55 <= info["first_sight"] <= 0.75, info


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_two_well_chosen_sources_are_nearly_decisive(task_id):
    info = information(task_id)
    assert info["2_sources"] >= 0.88, info
    assert info["first_sight"] < info["1_sources"] < info["2_sources"] <= info["3_sources"] + 0.01


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_camouflage_hides_a_proposal_and_blatant_copy_does_not(task_id):
    told = skill.camouflage(task_id, SEEDS)
    assert told["camouflaged"] <= 0.65, told
    assert told["blatant"] >= 0.90, told


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_the_reactive_fraudster_beats_never_proposing_and_every_single_tactic(task_id):
    rows = fraudsters(task_id)
    reactive = rows["reactive"]["fraudster"]
    assert reactive > rows["never_propose"]["fraudster"]
    for name in ("only_blatant", "only_standard", "only_subtle", "only_camouflaged"):
        assert reactive > rows[name]["fraudster"], (name, rows)


def test_a_constant_confidence_earns_no_calibration_whatever_its_value():
    right = [True] * 8 + [False] * 2
    for c in (0.55, 0.75, 0.8, 0.95):
        assert calibration_skill([c] * 10, right) == 0.0


def test_confidence_that_follows_being_right_earns_calibration():
    right = [True] * 8 + [False] * 2
    assert calibration_skill([0.95] * 8 + [0.55] * 2, right) > 0.3
    assert calibration_skill([0.55] * 8 + [0.95] * 2, right) == 0.0


def test_a_perfect_record_earns_calibration_only_when_sure():
    assert calibration_skill([1.0] * 5, [True] * 5) == 1.0
    assert calibration_skill([0.75] * 5, [True] * 5) == 0.0


def test_fewer_than_three_verdicts_earn_no_calibration():
    assert calibration_skill([1.0, 0.0], [True, False]) == 0.0


def _page_section(heading: str) -> list[str]:
    """The table rows under ``heading`` in docs/skill.md's full output."""
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[1] / "docs" / "skill.md").read_text().splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return [line for line in lines[start:end] if line.startswith("| ") and "---" not in line][1:]


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_the_skill_page_quotes_the_suite_as_it_runs_today(task_id):
    """docs/skill.md's full output is what `fraudarena evaluate --suite skill --seeds 1000-1049`
    prints now, table row by table row."""
    assert _page_section(f"### {task_id}: investigators (grader / investigator return)") == \
        skill.investigator_rows(investigators(task_id))
    assert _page_section(f"### {task_id}: fraudsters against the scripted investigator") == \
        skill.fraudster_rows(fraudsters(task_id))
