"""Rules that ordinary masked play on the tensor face does not reach: the text face's free copy
and edits, knobs far from a task's defaults, the boundaries of the scoring and audit rules.
Each was found unpinned by mutation testing (the rule changed, every other test passed, or only
the determinism digest's hash noticed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fraudarena_env.referee import Referee
from fraudarena_env.rules import audit, scoring
from fraudarena_env.rules.action_catalog import F_MODIFY, F_PROPOSE
from fraudarena_env.rules.actions import EndTurn, Investigate, Modify, Propose, Submit, Verdict
from fraudarena_env.rules.catalog import (
    AD_IDS,
    APPROVE,
    CATEGORIES,
    ESCALATE,
    ESCALATE_V,
    FRAUD,
    LEGIT,
    MAX_SLOTS,
    REJECT,
    TACTICS,
    TARGET_INDEX,
    TARGETS,
    TASKS,
)
from fraudarena_env.rules.evidence import headline, headline_to_signal
from fraudarena_env.rules.roles import legal_mask


def new_match(seed=0, task_id="task_1", **knobs) -> Referee:
    r = Referee()
    r.reset_match(seed=seed, task_id=task_id, **knobs)
    return r


def play_until_audit(r, fraudster, investigator):
    for _ in range(400):
        if r.phase in ("audit_phase", "done"):
            return
        role = r.current_role
        r.apply(role, (fraudster if role == "fraudster" else investigator)(r))
    raise AssertionError("play did not reach the audit phase")


def end_turn(r):
    return EndTurn()


def category(name: str) -> int:
    return next(i for i, c in enumerate(CATEGORIES) if c.name == name)


# rules/machine.py _finish
def test_a_budget_spent_before_the_last_organic_ads_arrive_still_admits_and_approves_them():
    def pull_all_then_reject(r):
        s = int(r.pending_slots()[0])
        free = np.flatnonzero(~r.pulled[s])
        return Investigate(s, int(free[0])) if r.n_pulls[s] < 3 else Verdict(s, 1, 0.95)

    r = new_match(seed=0, task_id="task_2", max_rounds=60, max_investigator_actions_per_turn=1)
    play_until_audit(r, end_turn, pull_all_then_reject)
    assert r.end_reason == "budget_exhausted"
    assert r.round_number < 59  # play ended while organic ads were still to come ...
    # ... and they arrived anyway, unreviewed, and are approved with everything else pending
    assert r.n_base_arrived == r.ep.n_base
    verdicts = r.state.investigator_state["verdicts"]
    assert len(verdicts) == TASKS["task_2"].queue_size
    auto = [s for s in np.flatnonzero(r.present) if not r.manual[s]]
    assert auto and all(r.verdict[s] == APPROVE for s in auto)
    charged = sum(scoring.verdict_reward(APPROVE, int(r.rows.label[r.slot_row[s]]),
                                         float(r.rows.severity[r.slot_row[s]])) for s in auto)
    before = r.totals[1]
    r.apply("auditor", Submit())
    assert r.totals[1] - before == pytest.approx(charged)


# rules/fraudster.py queue_room
def test_a_proposal_needs_a_slot_beyond_those_kept_for_the_organic_ads_to_come():
    # task_3_unseen holds 25 organic ads; with more proposals allowed than slots, the 32-slot
    # queue (organic ads still to come counted in) is what stops the fraudster
    r = new_match(seed=0, task_id="task_3_unseen", max_proposals=MAX_SLOTS,
                  max_fraudster_actions_per_turn=64)
    op = Propose(category("fake_giveaway"), 0)
    while r.check("fraudster", op) is None:
        r.apply("fraudster", op)
    assert r.proposals_used == MAX_SLOTS - TASKS["task_3_unseen"].queue_size
    assert r.check("fraudster", op) == "the queue is full"
    assert not legal_mask(r.match_state, "fraudster")[0, F_PROPOSE:F_MODIFY].any()


# rules/fraudster.py _propose
@pytest.mark.parametrize("n_phrases, tactic", [(0, "camouflaged"), (1, "subtle"),
                                               (2, "standard"), (3, "blatant"), (4, "blatant")])
def test_free_copy_sets_the_tactic_by_its_risk_phrases(n_phrases, tactic):
    phrases = ["Act now", "Guaranteed", "Winner", "Miracle"][:n_phrases]
    copy = " ".join(["Fresh fitness gear for everyone."] + phrases)
    r = new_match(seed=1, task_id="task_1")
    r.apply("fraudster", Propose(category("fake_giveaway"), -1, ad_copy=copy))
    (slot,) = r.proposal_slots
    assert TACTICS[int(r.rows.tactic[r.slot_row[slot]])] == tactic


# rules/fraudster.py _modify
def test_a_second_trust_blurb_does_not_clean_the_landing_page_again():
    r = new_match(seed=1, task_id="task_1")
    r.apply("fraudster", Propose(category("fake_giveaway"), 0, ad_copy="Fresh fitness gear for everyone.",
                                 landing_page_blurb=""))
    (slot,) = r.proposal_slots
    landing = TARGET_INDEX["landing_page"]
    row = r.slot_row[slot]
    before = float(r.rows.evidence[row, landing])
    blurb = "Registered business with a published returns policy."
    r.apply("fraudster", Modify(slot, -1, new_landing_page_blurb=blurb))
    once = float(r.rows.evidence[row, landing])
    assert once == pytest.approx(before - 0.5)
    r.apply("fraudster", Modify(slot, -1, new_landing_page_blurb="Verified business, 30-day returns."))
    assert float(r.rows.evidence[row, landing]) == once


# rules/fraudster.py _modify
def test_a_free_rewrite_shows_as_many_risk_markers_as_its_copy_holds():
    r = new_match(seed=1, task_id="task_1")
    r.apply("fraudster", Propose(category("fake_giveaway"), 0))
    (slot,) = r.proposal_slots
    r.apply("fraudster", Modify(slot, -1, new_ad_copy="Act now! Guaranteed winner, miracle prize."))
    assert r.markers_of(slot) == 4


# rules/scoring.py
def test_the_verdict_reward_table_is_the_published_one():
    table = {(REJECT, LEGIT): -0.35, (APPROVE, LEGIT): 0.10, (ESCALATE_V, LEGIT): -0.10,
             (REJECT, ESCALATE): -0.05, (APPROVE, ESCALATE): -0.20, (ESCALATE_V, ESCALATE): 0.20,
             (ESCALATE_V, FRAUD): -0.10}
    for (verdict, label), reward in table.items():
        for severity in (0.0, 0.7):
            assert scoring.verdict_reward(verdict, label, severity) == pytest.approx(reward)
    assert scoring.verdict_reward(REJECT, FRAUD, 0.5) == pytest.approx(0.30 + 0.1 * 0.5)
    assert scoring.verdict_reward(APPROVE, FRAUD, 0.5) == pytest.approx(-0.30 - 0.3 * 0.5)


# rules/scoring.py
def test_fewer_than_three_manual_verdicts_show_no_calibration():
    # two verdicts whose confidence tracks being right perfectly well still earn nothing ...
    assert scoring.calibration_skill([0.95, 0.05], [True, False]) == 0.0
    # ... a third makes it count
    assert scoring.calibration_skill([0.95, 0.05, 0.95], [True, False, True]) > 0.0


# rules/scoring.py
def test_calibration_bins_are_closed_below_and_open_above():
    # [0, 0.4), [0.4, 0.7), [0.7, 1]: a confidence on a boundary falls in the upper bin
    bins = scoring.calibration_bins([0.0, 0.4, 0.7, 1.0], [False, True, True, True])
    assert [n for n, _, _ in bins] == [1, 1, 2]
    assert bins[2][1] == pytest.approx(0.85)


# rules/audit.py _near
def test_copy_sharing_four_in_five_shingles_reads_as_a_repeated_template():
    a = "Shop our new spring running shoes today"  # 4 four-word shingles
    b = a + " online"  # the same 4 and one more: Jaccard 4/5, exactly the threshold
    assert audit.repeats(a, b)
    flags, plausibility = audit.track_b([audit.ProposalText("ad_001", 0, a, "", ""),
                                         audit.ProposalText("ad_002", 0, b, "", "")])
    assert ("template_repetition", "ad_002") in flags


# rules/evidence.py headline_to_signal
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("signal", [-12.0, 14.0])
def test_a_headline_rounded_to_its_extreme_still_reads_back_as_a_finite_signal(target, signal):
    _, value = headline(target, signal)  # rounded to 3 decimals: the risk reads as 0 or 1
    back = headline_to_signal(target, value)
    assert math.isfinite(back)
    assert (back > 5) == (signal > 0)


def test_the_auditors_record_lists_only_rings_of_two_ads_or_more():
    """One network proposal is no ring yet (it shares with nothing): the record listed it as a
    ring of one; a second makes the fraudster's own ring of two."""
    for n_network in (1, 2):
        r = new_match(seed=7, task_id="task_3")
        for _ in range(n_network):
            r.apply("fraudster", Propose(category("network_crypto"), 0))
        mine = {AD_IDS[s] for s in r.proposal_slots}
        play_until_audit(r, end_turn, end_turn)
        rings = r.build_auditor_observation().full_episode_record["fraud_rings"]
        assert rings and all(len(ring["member_ad_ids"]) >= 2 for ring in rings)
        own = [ring for ring in rings if mine & set(ring["member_ad_ids"])]
        assert [set(ring["member_ad_ids"]) for ring in own] == ([mine] if n_network == 2 else [])
