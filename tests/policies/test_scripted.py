"""The baselines act on either face, and both faces carry the same information.

A policy reading the pydantic observations should play the match it plays from the tensor
observations: that pins the encoding (nothing a decision needs is missing from the vectors)
as much as the policies.
"""

import numpy as np
import pytest

from fraudarena_env.arena import Arena
from fraudarena_env.policies import (
    BASELINES,
    HeuristicAuditor,
    RandomPolicy,
    ReactiveFraudster,
    ScriptedInvestigator,
    WaitingFraudster,
)
from fraudarena_env.referee import Referee
from fraudarena_env.rules.actions import Verdict
from fraudarena_env.rules.catalog import MAX_SLOTS, TASK_IDS

SEEDS = range(1000, 1030)
TENSOR = {"fraudster": "tensor", "investigator": "tensor", "auditor": "tensor"}


def _outcome(result, role):
    return result.grader, result.returns[role], result.steps, result.end_reason


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_reactive_fraudster_plays_the_same_match_on_both_faces(task_id):
    a, b = Arena(), Arena()
    for seed in SEEDS:
        tensor = a.play(task_id, seed, faces=TENSOR)
        text = b.play(task_id, seed, faces={**TENSOR, "fraudster": "text"})
        assert _outcome(tensor, "fraudster") == _outcome(text, "fraudster"), seed


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_scripted_investigator_plays_the_same_match_on_both_faces(task_id):
    # the text face reads headline figures rounded to three decimals (the tensor face reads
    # float32 signals), so a posterior right at a confidence bucket's edge or a tie between two
    # ads can go the other way now and then; nearly every match is the same, and the mean grade
    # is the same to within a few thousandths
    a, b = Arena(), Arena()
    same, diff = 0, []
    for seed in SEEDS:
        tensor = a.play(task_id, seed, faces=TENSOR)
        text = b.play(task_id, seed, faces={**TENSOR, "investigator": "text"})
        diff.append(text.grader - tensor.grader)
        same += _outcome(tensor, "investigator")[1:] == pytest.approx(
            _outcome(text, "investigator")[1:])
    assert same >= 0.85 * len(SEEDS)
    assert abs(np.mean(diff)) < 0.005


def test_heuristic_auditor_raises_the_same_flags_on_both_faces_for_clear_faults():
    a, b = Arena(), Arena()
    for seed in SEEDS:
        tensor = a.play("task_2", seed, faces=TENSOR)
        text = b.play("task_2", seed, faces={**TENSOR, "auditor": "text"})
        flags_tensor = {(f["flag_type"], f["target_ad_id"]) for f in tensor.referee.auditor_flags}
        flags_text = {(f["flag_type"], f["target_ad_id"]) for f in text.referee.auditor_flags}
        # the text face skips the checks that need evidence figures; what it flags, the tensor
        # face flags too, and every flag either raises is true
        assert flags_text <= flags_tensor
        assert flags_tensor <= tensor.referee.truth_flags


@pytest.mark.parametrize("cls", [ScriptedInvestigator, ReactiveFraudster, HeuristicAuditor])
def test_a_baseline_never_picks_a_masked_action(cls):
    arena = Arena()
    for seed in range(5):
        for task_id in TASK_IDS:
            policy = cls(seed=seed)
            arena.play(task_id, seed, {cls.role: policy})
            assert policy.masked_picks == 0, f"{cls.__name__} picked masked actions on " \
                f"{task_id}/{seed}"


def test_a_masked_pick_is_counted_and_replaced_by_the_pass():
    class BlindInvestigator(ScriptedInvestigator):
        def decide(self, *args):
            return Verdict(MAX_SLOTS - 1, 1, 0.95)  # the last slot: empty for most of task_1

    policy = BlindInvestigator(seed=0)
    Arena().play("task_1", 0, {"investigator": policy})  # the referee raises on a masked pick
    assert policy.masked_picks > 0


def test_random_policy_is_reproducible_from_its_seed():
    masks = np.ones(10, np.int8)
    assert [RandomPolicy("x", seed=3).act(np.zeros(1), masks) for _ in range(3)] == \
        [RandomPolicy("x", seed=3).act(np.zeros(1), masks) for _ in range(3)]


def test_tensor_face_needs_the_mask():
    with pytest.raises(ValueError, match="mask"):
        ScriptedInvestigator().act(np.zeros(3))


def test_baselines_act_on_text_observations_from_the_referee():
    ref = Referee()
    ref.reset_match(seed=5, task_id="task_3")
    while not ref.done:
        role = ref.current_role
        obs = getattr(ref, f"build_{role}_observation")()
        ref.apply_model(role, BASELINES[role](seed=5).act(obs))
    assert 0.0 <= ref.grader_score <= 1.0


@pytest.mark.parametrize("hold", [0.25, None])
def test_waiting_fraudster_plays_the_same_match_on_both_faces(hold):
    a, b = Arena(), Arena()
    for task_id in ("task_2", "task_3"):
        for seed in range(1000, 1010):
            play = {"fraudster": WaitingFraudster(hold, seed=seed)}
            tensor = a.play(task_id, seed, play, faces=TENSOR)
            play = {"fraudster": WaitingFraudster(hold, seed=seed)}
            text = b.play(task_id, seed, play, faces={**TENSOR, "fraudster": "text"})
            assert _outcome(tensor, "fraudster") == _outcome(text, "fraudster"), (task_id, seed)


def test_waiting_fraudster_holds_its_ads_for_the_last_round_that_takes_them():
    # a quarter of task_3's four rounds that take proposals is the last of them; task_2 has
    # three, and the fraudster never waits past the last
    arena = Arena()
    for task_id in ("task_2", "task_3"):
        for seed in range(1000, 1010):
            result = arena.play(task_id, seed, {"fraudster": WaitingFraudster(0.25, seed=seed)})
            ref = result.referee
            rounds = [int(ref.arrived[s]) for s in ref.proposal_slots]
            assert rounds and min(rounds) == ref.max_rounds - 1, (task_id, seed, rounds)


def test_waiting_fraudster_that_never_waits_is_the_reactive_fraudster():
    arena = Arena()
    for seed in range(1000, 1010):
        waiting = arena.play("task_3", seed, {"fraudster": WaitingFraudster(1.0, seed=seed)})
        reactive = arena.play("task_3", seed, {"fraudster": ReactiveFraudster(seed=seed)})
        assert _outcome(waiting, "fraudster") == _outcome(reactive, "fraudster"), seed


def test_waiting_fraudster_uses_only_the_tactics_it_is_given_on_both_faces():
    from fraudarena_env.rules.catalog import TACTICS

    a, b = Arena(), Arena()
    for seed in range(1000, 1006):
        fraudster = WaitingFraudster(0.6, seed=seed, tactics=("camouflaged",))
        tensor = a.play("task_3", seed, {"fraudster": fraudster}, faces=TENSOR)
        ref = tensor.referee
        used = {TACTICS[ref.tactic_of(s)] for s in ref.proposal_slots}
        assert used == {"camouflaged"}, (seed, used)
        text = b.play("task_3", seed, {"fraudster": WaitingFraudster(
            0.6, seed=seed, tactics=("camouflaged",))}, faces={**TENSOR, "fraudster": "text"})
        assert _outcome(tensor, "fraudster") == _outcome(text, "fraudster"), seed


@pytest.mark.parametrize("tactics", [(), ("stealthy",), ("camouflaged", "sneaky")])
def test_waiting_fraudster_refuses_tactics_the_game_does_not_have(tactics):
    with pytest.raises(ValueError, match="tactics: one or more of blatant"):
        WaitingFraudster(0.5, tactics=tactics)


@pytest.mark.parametrize("hold", [0.0, 1.5, -0.25])
def test_waiting_fraudster_refuses_a_hold_outside_zero_to_one(hold):
    with pytest.raises(ValueError, match=r"hold .* in \(0, 1\]"):
        WaitingFraudster(hold)


def test_the_reactive_fraudster_commits_once_no_proposal_fits_though_it_has_some_left():
    from fraudarena_env.policies.scripted import ReactiveFraudster, _FraudsterView
    from fraudarena_env.rules.actions import CommitFinal
    from fraudarena_env.rules.catalog import CATEGORY_INDEX

    view = _FraudsterView()
    view.proposals_remaining, view.room, view.allowed = 2, False, (CATEGORY_INDEX["fake_giveaway"],)
    assert type(ReactiveFraudster(seed=0).decide(view)) is CommitFinal
