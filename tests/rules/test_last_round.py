"""The last round brings no new ads: organic ads arrive in every round but the last, and so do
proposals. Were the fraudster free to propose in the last round, an ad that arrived there would be
known for a proposal (no organic ad does), and a proposal is never legit: a free label for an
investigator that reads the round an ad arrived in, as every face shows it."""

from __future__ import annotations

import numpy as np
import pytest

from fraudarena_env.arena import Arena
from fraudarena_env.faces.encoding import Observer
from fraudarena_env.faces.textface import fraudster_observation, investigator_observation
from fraudarena_env.policies import RandomPolicy, WaitingFraudster
from fraudarena_env.referee import Referee
from fraudarena_env.rules.action_catalog import F_MODIFY, F_PROPOSE
from fraudarena_env.rules.actions import EndTurn, Propose
from fraudarena_env.rules.catalog import CATEGORY_INDEX, ROLES, TASK_IDS
from fraudarena_env.rules.errors import IllegalActionError
from fraudarena_env.rules.roles import explain


def _to_last_round(task_id: str, seed: int) -> Referee:
    """A match where both players passed until the fraudster's turn of the last round."""
    ref = Referee()
    ref.reset_match(seed=seed, task_id=task_id)
    while not (ref.phase == "fraudster_turn" and ref.round_number == ref.max_rounds):
        ref.apply(ref.current_role, EndTurn())
    return ref


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_no_ad_arrives_in_the_last_round_whoever_plays(task_id):
    arena = Arena()
    for seed in range(30):
        players = {r: RandomPolicy(r, seed=seed) for r in ROLES}
        for policies in (players, {"fraudster": WaitingFraudster(None, seed=seed)}):
            ref = arena.play(task_id, seed, policies).referee
            arrived = ref.arrived[ref.present.astype(bool)]
            assert arrived.max() < ref.max_rounds, (task_id, seed, sorted(arrived.tolist()))


def test_the_last_round_takes_no_proposal_and_every_face_says_why():
    ref = _to_last_round("task_3", 4)
    category = CATEGORY_INDEX[ref.allowed_categories[0]]
    op = Propose(category, 0)
    reason = explain(ref.match_state, 0, "fraudster", op)
    assert reason is not None and "last" in reason and "takes no new ads" in reason
    assert ref.check("fraudster", op) == reason
    with pytest.raises(IllegalActionError, match="takes no new ads"):
        ref.apply("fraudster", op)
    mask = Observer("fraudster").observe(ref)[1]
    assert not mask[F_PROPOSE:F_MODIFY].any() and mask.any()
    assert not fraudster_observation(ref).can_propose
    assert ref.proposals_used == 0  # not for want of proposals


def test_the_round_before_the_last_still_takes_them():
    ref = Referee()
    ref.reset_match(seed=4, task_id="task_3")
    while not (ref.phase == "fraudster_turn" and ref.round_number == ref.max_rounds - 1):
        ref.apply(ref.current_role, EndTurn())
    assert fraudster_observation(ref).can_propose
    mask = Observer("fraudster").observe(ref)[1]
    assert mask[F_PROPOSE:F_MODIFY].any()


def test_the_investigator_is_told_the_queue_is_closed_once_no_round_takes_ads():
    ref = Referee()
    ref.reset_match(seed=4, task_id="task_3")
    observer = Observer("investigator")
    column = observer.off["queue_may_grow"]
    grows = []
    while ref.phase != "audit_phase":
        if ref.phase == "investigator_turn":
            tensor = bool(observer.observe(ref)[0][column])
            assert tensor == investigator_observation(ref).queue_may_grow
            grows.append((ref.round_number, tensor))
        ref.apply(ref.current_role, EndTurn())
    # organic ads come up to round 4 and proposals up to round 4: from the investigator's turn
    # in round 4 on, nothing more can arrive
    assert grows == [(1, True), (2, True), (3, True), (4, False), (5, False)]


def test_a_single_round_match_takes_no_proposals():
    ref = Referee()
    ref.reset_match(seed=1, task_id="task_1", max_rounds=1)
    assert not np.any(Observer("fraudster").observe(ref)[1][F_PROPOSE:F_MODIFY])


def test_while_the_fraudster_moves_the_queue_may_grow_until_the_last_round():
    # its proposals this turn count while it moves: open in round 4, closed in round 5
    ref = Referee()
    ref.reset_match(seed=4, task_id="task_3")
    observer = Observer("investigator")
    column = observer.off["queue_may_grow"]
    seen = {}
    while ref.phase != "audit_phase":
        if ref.phase == "fraudster_turn":
            tensor = bool(observer.observe(ref)[0][column])
            assert tensor == investigator_observation(ref).queue_may_grow == ref.queue_may_grow()
            seen[ref.round_number] = tensor
        ref.apply(ref.current_role, EndTurn())
    assert seen == {1: True, 2: True, 3: True, 4: True, 5: False}
