"""The referee's rules: illegal input, seeding, the match rules and rewards.

Each test pins down one rule. ``play`` is a seeded random player used by several tests; it only
applies ops the referee says are legal, so a match always runs to the end.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudarena_env.referee import Referee
from fraudarena_env.rules import scoring
from fraudarena_env.rules.actions import (
    CommitFinal,
    EndTurn,
    Flag,
    Investigate,
    Link,
    Modify,
    Op,
    Propose,
    Submit,
    Verdict,
)
from fraudarena_env.rules.catalog import (
    AD_IDS,
    APPROVE,
    AUDIT_TRACK_A,
    AUDIT_TRACK_B,
    CATEGORIES,
    CONFIDENCE_BUCKETS,
    MAX_SLOTS,
    PHASES,
    TARGETS,
    TASK_IDS,
    TASKS,
)
from fraudarena_env.rules.errors import IllegalActionError, OutOfTurnError

ROLES = ("fraudster", "investigator", "auditor")
ALWAYS_LEGAL = {"fraudster": EndTurn(), "investigator": EndTurn(),
                "auditor": Submit()}
NEXT_PHASES = {  # phase -> phases one applied step may lead to
    "fraudster_turn": {"fraudster_turn", "investigator_turn", "audit_phase"},
    "investigator_turn": {"investigator_turn", "fraudster_turn", "audit_phase"},
    "audit_phase": {"audit_phase", "done"},
    "done": {"done"},
}
STEP_BOUND = 400


# ---------------------------------------------------------------------------- helpers
def new_match(seed: int = 0, task_id: str = "task_1", mode: str = "raise", **knobs) -> Referee:
    r = Referee(illegal_action=mode)
    r.reset_match(seed=seed, task_id=task_id, **knobs)
    return r


def state_json(r: Referee) -> str:
    return r.state.model_dump_json()


def snapshot(r: Referee) -> tuple:
    """Everything a caller can see: state, all three observations, rewards."""
    return (state_json(r), r.build_fraudster_observation().model_dump_json(),
            r.build_investigator_observation().model_dump_json(),
            r.build_auditor_observation().model_dump_json(), tuple(r.totals))


def random_op(r: Referee, role: str, rng: np.random.Generator) -> Op:
    """A random op for ``role``: often legal, sometimes not (the caller filters with check)."""
    present = np.flatnonzero(r.present)
    k = rng.random()
    if role == "fraudster":
        if k < 0.45:
            return Propose(int(rng.integers(len(CATEGORIES))), int(rng.integers(4)))
        if k < 0.60:
            pool = r.proposal_slots or list(range(MAX_SLOTS))
            return Modify(int(pool[rng.integers(len(pool))]), int(rng.integers(2)))
        if k < 0.93:
            return EndTurn()
        return CommitFinal()
    if role == "investigator":
        pending = r.pending_slots()
        pool = pending if len(pending) and rng.random() < 0.8 else present
        slot = int(rng.choice(pool)) if rng.random() < 0.95 else int(rng.integers(MAX_SLOTS))
        if k < 0.55:
            return Investigate(slot, int(rng.integers(len(TARGETS))))
        if k < 0.82:
            return Verdict(slot, int(rng.integers(3)), float(rng.choice(CONFIDENCE_BUCKETS)))
        if k < 0.92:
            return Link(slot, int(rng.choice(present)))
        return EndTurn()
    if k < 0.15:
        return Submit()
    track = "A" if rng.random() < 0.5 else "B"
    types = AUDIT_TRACK_A if track == "A" else AUDIT_TRACK_B
    slot = -1 if rng.random() < 0.3 else int(rng.choice(present))
    return Flag(track, slot, types[rng.integers(len(types))])


def all_flag_ops(r: Referee) -> list[Flag]:
    slots = [-1] + [int(s) for s in np.flatnonzero(r.present)]
    return [Flag(track, s, ftype)
            for track, types in (("A", AUDIT_TRACK_A), ("B", AUDIT_TRACK_B))
            for ftype in types for s in slots]


def play(r: Referee, seed: int, auditor: str = "random", on_step=None, tries: int = 30):
    """Play the match in ``r`` to the end with seeded random legal ops.

    Each role draws from its own generator, so changing the auditor's behaviour does not change
    the fraudster's or investigator's ops. ``auditor`` is "random", "submit" (submit at once) or
    "flag_all" (raise every legal flag, then submit). Returns the list of
    ``(role, op, step_rewards)`` for every applied step.
    """
    rngs = dict(zip(ROLES, (np.random.default_rng(s)
                            for s in np.random.SeedSequence(seed).spawn(3))))
    trace = []
    while not r.done:
        assert len(trace) < STEP_BOUND, f"match did not end within {STEP_BOUND} steps"
        role = r.current_role
        op = ALWAYS_LEGAL[role]
        if role == "auditor" and auditor == "flag_all":
            legal = [o for o in all_flag_ops(r) if r.check(role, o) is None]
            op = legal[0] if legal else ALWAYS_LEGAL[role]
        elif role != "auditor" or auditor == "random":
            for _ in range(tries):
                cand = random_op(r, role, rngs[role])
                if r.check(role, cand) is None:
                    op = cand
                    break
        phase_before = r.phase
        r.apply(role, op)
        trace.append((role, op, tuple(r.step_rewards)))
        if on_step is not None:
            on_step(r, role, op, phase_before)
    return trace


def queue_ids(r: Referee) -> set[str]:
    return {AD_IDS[s] for s in np.flatnonzero(r.present)}


def play_until_audit(r: Referee, fraudster, investigator) -> None:
    """Drive the match with two scripted policies (functions of the referee returning ops)."""
    for _ in range(STEP_BOUND):
        if r.phase in ("audit_phase", "done"):
            return
        role = r.current_role
        op = (fraudster if role == "fraudster" else investigator)(r)
        r.apply(role, op)
    raise AssertionError("play did not reach the audit phase")


def end_turn(r: Referee) -> EndTurn:
    return EndTurn()


def decide_all_unseen(r: Referee) -> Op:
    """Reject the first pending ad without looking; pass when nothing is pending."""
    pending = r.pending_slots()
    return Verdict(int(pending[0]), 1, 0.75) if len(pending) else EndTurn()


def to_investigator_turn(r: Referee) -> None:
    r.apply("fraudster", EndTurn())
    assert r.phase == "investigator_turn"


# ---------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_same_seed_and_task_replays_identically(task_id):
    traces = []
    for _ in range(2):
        r = new_match(seed=11, task_id=task_id)
        snaps: list = []
        trace = play(r, seed=11, on_step=lambda r, *_, snaps=snaps: snaps.append(snapshot(r)))
        traces.append((trace, snaps, r.match_id))
    assert traces[0] == traces[1]


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_a_knob_given_at_the_tasks_own_value_is_the_same_match_and_id(task_id):
    """docs/replay.md: a match's id follows from its seed and task; naming a knob at the task's
    default (or its categories in another order) is the same match, so the same id and
    setup."""
    from fraudarena_env.rules.catalog import TASKS

    task = TASKS[task_id]
    plain = new_match(seed=7, task_id=task_id)
    named = new_match(seed=7, task_id=task_id, max_rounds=task.max_rounds,
                      max_proposals=task.max_proposals,
                      allowed_categories=list(reversed(task.allowed_categories)))
    assert named.match_id == plain.match_id and named.setup == plain.setup
    other = new_match(seed=7, task_id=task_id, max_rounds=task.max_rounds - 1)
    assert other.match_id != plain.match_id


def test_different_seeds_give_different_matches():
    a, b = new_match(seed=1, task_id="task_3"), new_match(seed=2, task_id="task_3")
    assert state_json(a) != state_json(b)
    for ref in (a, b):  # the investigator reads the queue from its first turn on
        ref.step_as_fraudster({"action_type": "end_turn"})
    assert a.build_investigator_observation() != b.build_investigator_observation()


CROSS_PROCESS_SCRIPT = r"""
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from test_referee import Referee, TASK_IDS, play, snapshot
h = hashlib.sha256()
for task_id in TASK_IDS:
    for seed in range(40):
        r = Referee()
        r.reset_match(seed=seed, task_id=task_id)
        every_step = seed < 4
        trace = play(r, seed, on_step=lambda r, *_: every_step and h.update(
            repr(snapshot(r)).encode()))
        h.update(repr((trace, snapshot(r))).encode())
print(h.hexdigest())
"""


def _run_with_hash_seed(hash_seed: str) -> str:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    out = subprocess.run([sys.executable, "-c", CROSS_PROCESS_SCRIPT,
                          str(pathlib.Path(__file__).parent)], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return out.stdout.strip()


def test_matches_are_identical_across_processes_with_different_hash_seeds():
    assert _run_with_hash_seed("0") == _run_with_hash_seed("12345")


def test_match_id_is_deterministic_from_seed_task_and_knobs():
    assert new_match(seed=5).match_id == new_match(seed=5).match_id
    assert new_match(seed=5).match_id != new_match(seed=6).match_id
    assert new_match(seed=5).match_id != new_match(seed=5, task_id="task_2").match_id
    assert new_match(seed=5).match_id != new_match(seed=5, max_rounds=2).match_id


def test_one_match_has_one_id_however_its_knobs_are_typed():
    """A knob given as a numpy integer, or categories as a tuple, makes the same match as the
    plain value, so the same id (the id hashes the knobs: once it hashed their repr)."""
    allowed = ["ecommerce", "fake_giveaway"]
    plain = new_match(seed=3, max_rounds=5, allowed_categories=allowed)
    typed = new_match(seed=3, max_rounds=np.int64(5), allowed_categories=tuple(allowed))
    assert typed.match_id == plain.match_id
    assert typed.setup == plain.setup


def test_allowed_categories_are_a_set_in_any_order_one_match_one_id():
    """The categories allow proposals, whatever order they are listed in: the same match, so
    the same id and replay setup, kept in the catalogue's order."""
    one = new_match(seed=3, allowed_categories=["fake_giveaway", "ecommerce", "advance_fee"])
    other = new_match(seed=3, allowed_categories=("advance_fee", "ecommerce", "fake_giveaway"))
    as_set = new_match(seed=3, allowed_categories={"ecommerce", "advance_fee", "fake_giveaway"})
    assert one.match_id == other.match_id == as_set.match_id
    assert one.setup == other.setup == as_set.setup
    assert one.allowed_categories == other.allowed_categories == as_set.allowed_categories == tuple(
        c.name for c in CATEGORIES if c.name in {"fake_giveaway", "ecommerce", "advance_fee"})


def test_ad_ids_are_deterministic_from_seed():
    ids = []
    for _ in range(2):
        r = new_match(seed=9, task_id="task_3")
        play(r, seed=9)
        ids.append([a["ad_id"] for a in r.episode_record()["ads"]])
    assert ids[0] == ids[1]
    assert all(a in AD_IDS for a in ids[0])


def test_game_state_never_touches_uuid_time_or_global_random(monkeypatch):
    import random
    import time
    import uuid

    def forbidden(*_a, **_k):
        raise AssertionError("game state must come from the match seed only")

    for mod, name in ((uuid, "uuid1"), (uuid, "uuid4"), (time, "time"), (time, "time_ns"),
                      (random, "random"), (random, "getrandbits"), (random, "randint"),
                      (random, "choice"), (random, "shuffle")):
        monkeypatch.setattr(mod, name, forbidden)
    r = new_match(seed=4, task_id="task_3")
    play(r, seed=4)
    assert r.done


# ---------------------------------------------------------------------------- whole matches
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_random_matches_end_with_every_ad_decided_and_rewards_adding_up(task_id):
    for seed in range(8):
        r = new_match(seed=seed, task_id=task_id)
        trace = play(r, seed)
        assert len(trace) < STEP_BOUND
        s = r.state
        assert s.phase == "done"
        assert s.investigator_state["pending"] == []
        assert set(s.investigator_state["verdicts"]) == queue_ids(r)
        assert 0.0 <= s.grader_score <= 1.0
        sums = np.sum([rw for _, _, rw in trace], axis=0)
        np.testing.assert_allclose(sums, r.totals, atol=1e-9)
        np.testing.assert_allclose(
            r.totals, [s.fraudster_reward, s.investigator_reward, s.auditor_reward], atol=1e-12)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_whoever_is_on_turn_has_a_legal_action(task_id):
    seen = {"investigator_turn": 0}

    def check(r, *_):
        if r.done:
            return
        assert r.check(r.current_role, ALWAYS_LEGAL[r.current_role]) is None
        if r.phase == "investigator_turn":
            seen["investigator_turn"] += 1
            assert r.check("investigator", EndTurn()) is None

    for seed in range(5):
        r = new_match(seed=seed, task_id=task_id)
        check(r)
        play(r, seed, on_step=check)
    assert seen["investigator_turn"] > 0


def test_terminal_rewards_are_paid_only_when_the_report_is_submitted():
    r = new_match(seed=3, task_id="task_2")
    play_until_audit(r, end_turn, end_turn)
    before = list(r.totals)
    r.apply("auditor", Submit())
    assert r.step_rewards[1] == pytest.approx(r.terminal[1])
    assert r.totals[1] == pytest.approx(before[1] + r.terminal[1])
    assert r.terminal[1] < 0  # unreviewed ads were auto-approved, and some are fraud


# ---------------------------------------------------------------------------- end paths
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_max_rounds_end_auto_approves_every_pending_ad(task_id):
    r = new_match(seed=1, task_id=task_id)
    play_until_audit(r, end_turn, end_turn)
    assert r.end_reason == "max_rounds"
    assert r.round_number == TASKS[task_id].max_rounds
    verdicts = r.state.investigator_state["verdicts"]
    assert set(verdicts) == queue_ids(r)
    assert len(verdicts) == TASKS[task_id].queue_size
    assert all(v["verdict"] == "approve" and v["auto_approved"] for v in verdicts.values())


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_unreviewed_ads_cost_the_investigator_as_approvals(task_id):
    r = new_match(seed=2, task_id=task_id)
    play_until_audit(r, end_turn, end_turn)
    r.apply("auditor", Submit())
    rows = r.rows
    expected = sum(scoring.verdict_reward(APPROVE, int(rows.label[r.slot_row[s]]),
                                          float(rows.severity[r.slot_row[s]]))
                   for s in np.flatnonzero(r.present))
    assert r.totals[1] == pytest.approx(expected)


def test_unreviewed_proposals_count_for_the_fraudster():
    r = new_match(seed=2, task_id="task_2")
    r.apply("fraudster", Propose(CATEGORIES.index(next(
        c for c in CATEGORIES if c.name == "fake_crypto")), 0))
    play_until_audit(r, end_turn, end_turn)
    r.apply("auditor", Submit())
    (slot,) = r.proposal_slots
    sev = float(r.rows.severity[r.slot_row[slot]])
    assert r.state.investigator_state["verdicts"][AD_IDS[slot]]["auto_approved"]
    # proposed in round 1, never reviewed: it ran the whole match and beyond
    reach = r.max_rounds - 1 + scoring.AFTER_MATCH_REACH
    assert r.totals[0] == pytest.approx(
        scoring.REACH_VALUE * sev * r.plausibility[AD_IDS[slot]] * reach)
    assert r.totals[0] > 0


def test_a_proposal_earns_for_each_round_it_ran_before_rejection():
    r = new_match(seed=2, task_id="task_2")
    r.apply("fraudster", Propose(CATEGORIES.index(next(
        c for c in CATEGORIES if c.name == "fake_crypto")), 0))
    (slot,) = r.proposal_slots
    play_until_audit(r, end_turn, lambda r: Verdict(slot, 1, 0.95)
                     if r.round_number == 3 and r.verdict[slot] < 0 else EndTurn())
    r.apply("auditor", Submit())
    sev = float(r.rows.severity[r.slot_row[slot]])
    assert r.decided_round[slot] == 3  # rejected in round 3: it ran rounds 1 and 2
    assert r.totals[0] == pytest.approx(
        scoring.REACH_VALUE * sev * r.plausibility[AD_IDS[slot]] * 2 + scoring.FRAUDSTER_BANNED)


@pytest.mark.parametrize("task_id", ["task_3", "task_3_unseen"])
def test_budget_end_auto_approves_every_pending_ad(task_id):
    def thorough(r):
        s = int(r.pending_slots()[0])
        for t in range(len(TARGETS)):
            if r.check("investigator", Investigate(s, t)) is None:
                return Investigate(s, t)
        return Verdict(s, 1, 0.95)

    r = new_match(seed=4, task_id=task_id)
    play_until_audit(r, end_turn, thorough)
    assert r.end_reason == "budget_exhausted"
    assert r.budget == 0
    verdicts = r.state.investigator_state["verdicts"]
    assert r.state.investigator_state["pending"] == []
    assert set(verdicts) == queue_ids(r)
    auto = [v for v in verdicts.values() if v["auto_approved"]]
    assert auto and all(v["verdict"] == "approve" for v in auto)


def test_budget_ends_play_even_when_rounds_are_plentiful():
    # A cap of one action per turn and many rounds: the budget, not the rounds, ends play.
    def investigate_or_decide(r):
        s = int(r.pending_slots()[0])
        t = int(np.flatnonzero(~r.pulled[s])[0])
        if r.n_pulls[s] < 3:
            return Investigate(s, t)
        return Verdict(s, 1, 0.95)

    r = new_match(seed=0, task_id="task_2", max_rounds=60, max_investigator_actions_per_turn=1)
    play_until_audit(r, end_turn, investigate_or_decide)
    assert r.end_reason == "budget_exhausted"
    assert r.state.investigator_state["pending"] == []


# Organic ads arrive over every round but the last, which takes no proposals either. With the
# task's 4 rounds the last organic ads arrive in round 3, and once they are decided nothing more
# can come (``all_decided``); with 20 rounds they are all in by round 18, and round 19 still takes
# proposals, so a commit there is what closes the queue.
COMMIT_ROUNDS = 20


def test_commit_final_end_when_the_commit_closes_the_queue():
    def fraudster(r):
        done_arriving = r.n_base_arrived == r.ep.n_base and not len(r.pending_slots())
        return CommitFinal() if done_arriving else EndTurn()

    r = new_match(seed=5, task_id="task_1", max_rounds=COMMIT_ROUNDS)
    play_until_audit(r, fraudster, decide_all_unseen)
    assert r.end_reason == "commit_final"
    assert r.state.investigator_state["pending"] == []
    assert set(r.state.investigator_state["verdicts"]) == queue_ids(r)


def test_commit_final_moves_play_straight_to_the_audit_when_nothing_is_left():
    def fraudster(r):
        done_arriving = r.n_base_arrived == r.ep.n_base and not len(r.pending_slots())
        return CommitFinal() if done_arriving else EndTurn()

    r = new_match(seed=5, task_id="task_1", max_rounds=COMMIT_ROUNDS)
    phases = []
    for _ in range(STEP_BOUND):
        if r.phase == "audit_phase":
            break
        role = r.current_role
        before = r.phase
        r.apply(role, fraudster(r) if role == "fraudster" else decide_all_unseen(r))
        phases.append((before, r.phase))
    assert phases[-1] == ("fraudster_turn", "audit_phase")


def test_all_decided_end_after_commit_and_last_verdict():
    r = new_match(seed=6, task_id="task_2")
    r.apply("fraudster", CommitFinal())
    play_until_audit(r, end_turn, decide_all_unseen)
    assert r.end_reason == "all_decided"
    assert r.state.investigator_state["pending"] == []
    verdicts = r.state.investigator_state["verdicts"]
    assert set(verdicts) == queue_ids(r)
    assert not any(v["auto_approved"] for v in verdicts.values())


def test_all_decided_end_when_proposals_are_used_up():
    def fraudster(r):
        cat = next(i for i, c in enumerate(CATEGORIES) if c.name == "fake_giveaway")
        op = Propose(cat, 1)
        return op if r.check("fraudster", op) is None else EndTurn()

    r = new_match(seed=7, task_id="task_1")
    play_until_audit(r, fraudster, decide_all_unseen)
    assert r.proposals_used == r.max_proposals
    assert r.end_reason == "all_decided"
    assert r.state.investigator_state["pending"] == []


# ---------------------------------------------------------------------------- illegal input
@pytest.mark.parametrize("mode", ["raise", "penalize"])
def test_out_of_turn_action_raises_permission_error_and_changes_nothing(mode):
    r = new_match(seed=0, mode=mode)
    before = snapshot(r)
    with pytest.raises(PermissionError) as err:
        r.step_as_investigator({"action_type": "end_turn"})
    assert isinstance(err.value, OutOfTurnError)
    assert "investigator" in str(err.value)
    with pytest.raises(PermissionError):
        r.apply("auditor", Submit())
    assert snapshot(r) == before


def test_acting_after_the_match_is_over_raises_permission_error():
    r = new_match(seed=0)
    play(r, seed=0)
    before = snapshot(r)
    for role in ROLES:
        with pytest.raises(PermissionError):
            r.apply(role, ALWAYS_LEGAL[role])
    assert snapshot(r) == before


def test_verdict_on_unknown_ad_id_raises_illegal_action_and_changes_nothing():
    r = new_match(seed=0)
    to_investigator_turn(r)
    before = snapshot(r)
    with pytest.raises(IllegalActionError) as err:
        r.step_as_investigator({"action_type": "verdict", "ad_id": "ad_999",
                                "verdict": "reject"})
    assert isinstance(err.value, ValueError)
    assert err.value.agent == "investigator"
    assert "investigator" in str(err.value) and "ad_999" in str(err.value)
    assert snapshot(r) == before


def test_action_failing_validation_raises_illegal_action_naming_agent():
    r = new_match(seed=0)
    to_investigator_turn(r)
    before = snapshot(r)
    with pytest.raises(IllegalActionError) as err:
        r.step_as_investigator({"action_type": "verdict", "ad_id": "ad_001"})
    assert err.value.agent == "investigator"
    assert "verdict" in err.value.reason
    assert snapshot(r) == before


def test_action_of_the_wrong_type_raises_illegal_action():
    r = new_match(seed=0)
    before = snapshot(r)
    with pytest.raises(IllegalActionError) as err:
        r.step_as_fraudster(42)
    assert err.value.agent == "fraudster"
    assert snapshot(r) == before


@pytest.mark.parametrize("role, make_op", [
    ("fraudster", lambda r: Modify(int(np.flatnonzero(r.present)[0]), 0)),
    ("investigator", lambda r: Verdict(int(np.flatnonzero(~r.present)[0]), 1, 0.5)),
    ("investigator", lambda r: Link(int(np.flatnonzero(r.present)[0]),
                                int(np.flatnonzero(r.present)[0]))),
    ("investigator", lambda r: ("bogus", int(np.flatnonzero(r.present)[0]))),
])
def test_masked_op_raises_illegal_action_naming_agent_and_reason(role, make_op):
    r = new_match(seed=0, task_id="task_2")
    if role == "investigator":
        to_investigator_turn(r)
    op = make_op(r)
    reason = r.check(role, op)
    assert reason is not None
    before = snapshot(r)
    with pytest.raises(IllegalActionError) as err:
        r.apply(role, op)
    assert isinstance(err.value, ValueError)
    assert err.value.agent == role and err.value.reason == reason
    assert role in str(err.value) and reason in str(err.value)
    assert snapshot(r) == before


@pytest.mark.parametrize("role", ROLES)
def test_unknown_op_kind_is_reported_illegal_not_a_crash(role):
    r = new_match(seed=0)
    if role != "fraudster":
        to_investigator_turn(r)
    if role == "auditor":
        play_until_audit(r, end_turn, end_turn)
    assert r.check(role, ("bogus",)) is not None
    with pytest.raises(IllegalActionError):
        r.apply(role, ("bogus",))


def test_illegal_op_keeps_the_last_steps_rewards():
    r = new_match(seed=0)
    to_investigator_turn(r)
    s = int(r.pending_slots()[0])
    r.apply("investigator", Investigate(s, 2))
    last = list(r.step_rewards)
    assert last[1] == pytest.approx(scoring.INVESTIGATE_COST)
    with pytest.raises(IllegalActionError):
        r.apply("investigator", Investigate(s, 2))
    assert r.step_rewards == last


def test_pulling_the_same_source_twice_is_illegal():
    r = new_match(seed=0)
    to_investigator_turn(r)
    s = int(r.pending_slots()[0])
    r.apply("investigator", Investigate(s, 2))
    before = snapshot(r)
    with pytest.raises(IllegalActionError):
        r.apply("investigator", Investigate(s, 2))
    assert snapshot(r) == before


def test_penalize_mode_charges_illegal_op_and_counts_it_as_an_action():
    r = new_match(seed=0, mode="penalize")
    bad = Modify(int(np.flatnonzero(r.present)[0]), 0)
    reward = r.apply("fraudster", bad)
    assert reward == pytest.approx(scoring.ILLEGAL_PENALTY) == pytest.approx(-0.05)
    assert r.step_rewards == pytest.approx([-0.05, 0.0, 0.0])
    assert r.totals == pytest.approx([-0.05, 0.0, 0.0])
    assert r.state.fraudster_reward == pytest.approx(-0.05)
    assert r.actions_this_turn == 1
    assert r.state.step_count == 1


def test_penalize_mode_illegal_ops_use_up_the_turn():
    r = new_match(seed=0, mode="penalize")
    bad = Modify(int(np.flatnonzero(r.present)[0]), 0)
    for _ in range(TASKS["task_1"].max_fraudster_actions_per_turn):
        assert r.phase == "fraudster_turn"
        r.apply("fraudster", bad)
    assert r.phase == "investigator_turn"


def test_penalize_mode_charges_an_invalid_text_action():
    # A model that fails validation is illegal input like any other: penalize mode charges it.
    r = new_match(seed=0, mode="penalize")
    to_investigator_turn(r)
    r.step_as_investigator({"action_type": "verdict", "ad_id": "ad_999", "verdict": "reject"})
    assert r.totals[1] == pytest.approx(-0.05)
    assert r.actions_this_turn == 1


# ---------------------------------------------------------------------------- rewards
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_fraudster_and_investigator_rewards_do_not_depend_on_the_auditor(task_id):
    for seed in range(3):
        outcomes = []
        for auditor in ("submit", "flag_all"):
            r = new_match(seed=seed, task_id=task_id)
            trace = play(r, seed, auditor=auditor)
            fi_ops = [(role, op) for role, op, _ in trace if role != "auditor"]
            outcomes.append((fi_ops, r.totals[0], r.totals[1], r.grader_score,
                             r.state.fraudster_reward, r.state.investigator_reward))
        assert outcomes[0] == outcomes[1]


def _audit_ready_match() -> tuple[Referee, str, str]:
    """A match in the audit phase with a known true track-A and track-B flag."""
    r = new_match(seed=3, task_id="task_1")
    r.step_as_fraudster({"action_type": "propose_ad", "category": "ecommerce",
                         "ad_copy": "zxqvt brrkpl mnnrgh qqzzkt vvbbnp trrpsk"})
    gib = r.state.fraudster_proposals[-1]["ad_id"]
    r.step_as_fraudster({"action_type": "end_turn"})
    approved = next(a for a in r.build_investigator_observation().available_ads if a != gib)
    r.step_as_investigator({"action_type": "verdict", "ad_id": approved, "verdict": "approve",
                            "confidence": 0.9})
    play_until_audit(r, end_turn, end_turn)
    assert ("missing_citation", approved) in r.truth_flags
    assert ("gibberish", gib) in r.truth_flags
    return r, approved, gib


def test_auditor_true_flag_earns_a_reward():
    r, approved, gib = _audit_ready_match()
    assert scoring.AUDIT_TRUE_FLAG > 0
    assert r.apply("auditor", Flag("A", AD_IDS.index(approved), "missing_citation")) == \
        pytest.approx(scoring.AUDIT_TRUE_FLAG)
    obs = r.step_as_auditor({"action_type": "flag_fraudster", "flag_type": "gibberish",
                             "target_ad_id": gib})
    assert r.step_rewards[2] == pytest.approx(scoring.AUDIT_TRUE_FLAG)
    assert obs.reward == pytest.approx(2 * scoring.AUDIT_TRUE_FLAG)


def test_auditor_false_flag_costs_as_much():
    r, approved, gib = _audit_ready_match()
    other = next(a for a in sorted(queue_ids(r)) if a not in (approved, gib))
    assert ("gibberish", other) not in r.truth_flags
    assert r.apply("auditor", Flag("B", AD_IDS.index(other), "gibberish")) == \
        pytest.approx(scoring.AUDIT_FALSE_FLAG) == -scoring.AUDIT_TRUE_FLAG


def test_a_repeated_flag_is_answered_and_counts_once():
    r, approved, _ = _audit_ready_match()
    op = Flag("A", AD_IDS.index(approved), "missing_citation")
    assert r.apply("auditor", op) == pytest.approx(scoring.AUDIT_TRUE_FLAG)
    assert r.check("auditor", op) is None
    obs = r.step_as_auditor({"action_type": "flag_investigator", "flag_type": "missing_citation",
                             "target_ad_id": approved, "note": "again, differently worded"})
    assert r.step_rewards[2] == 0.0
    assert obs.reward == pytest.approx(scoring.AUDIT_TRUE_FLAG)
    assert "already raised" in obs.feedback
    assert [f["flag_type"] for f in obs.pending_flags] == ["missing_citation"]
    r.apply("auditor", Submit())
    assert r.totals[2] == pytest.approx(scoring.AUDIT_TRUE_FLAG)
    assert len(r.audit_report["track_a_flags"]) == 1


def test_a_queue_level_track_b_flag_is_legal_and_judged():
    r, _, _ = _audit_ready_match()
    obs = r.step_as_auditor({"action_type": "flag_fraudster", "flag_type": "gibberish"})
    assert obs.pending_flags[-1]["target_ad_id"] is None
    assert r.step_rewards[2] == pytest.approx(scoring.AUDIT_FALSE_FLAG)  # not a rule finding
    r.step_as_auditor({"action_type": "flag_fraudster", "flag_type": "gibberish"})
    assert r.step_rewards[2] == 0.0


def test_auditor_return_is_true_minus_false_flags():
    r, approved, gib = _audit_ready_match()
    other = next(a for a in sorted(queue_ids(r)) if a not in (approved, gib))
    r.apply("auditor", Flag("A", AD_IDS.index(approved), "missing_citation"))
    r.apply("auditor", Flag("B", AD_IDS.index(gib), "gibberish"))
    r.apply("auditor", Flag("B", AD_IDS.index(other), "gibberish"))
    r.apply("auditor", Submit())
    assert r.totals[2] == pytest.approx(2 * scoring.AUDIT_TRUE_FLAG + scoring.AUDIT_FALSE_FLAG) \
        == pytest.approx(r.state.auditor_reward)


# ---------------------------------------------------------------------------- configuration
def test_unknown_task_id_is_rejected_by_name():
    with pytest.raises(ValueError, match="task_9"):
        new_match(task_id="task_9")


def test_unknown_knob_is_rejected_by_name():
    with pytest.raises(ValueError, match="max_round"):
        new_match(max_round=3)


@pytest.mark.parametrize("knob, value", [
    ("max_rounds", 0), ("max_rounds", -1), ("max_rounds", 2.5), ("max_rounds", True),
    ("max_proposals", "3"), ("max_fraudster_actions_per_turn", 0),
    ("max_investigator_actions_per_turn", 0), ("max_rounds", 200), ("max_proposals", 33),
    ("max_fraudster_actions_per_turn", 10**9), ("max_investigator_actions_per_turn", 257),
])
def test_bad_knob_value_is_rejected_by_name(knob, value):
    with pytest.raises(ValueError, match=knob):
        new_match(**{knob: value})


@pytest.mark.parametrize("value, says", [(["ecommerce", "not_a_category"],
                                           "unknown: 'not_a_category'$"), ([], "got none$")])
def test_bad_allowed_categories_are_rejected(value, says):
    # the message said unknown: ["'not_a_category'"] (a repr of a repr), and unknown: [] for none
    with pytest.raises(ValueError, match="allowed_categories") as refused:
        new_match(allowed_categories=value)
    assert re.search(says, str(refused.value))


@pytest.mark.parametrize("seed", [-1, 2**63, 10**30, "7", 1.5])
def test_seed_out_of_range_is_rejected(seed):
    with pytest.raises(ValueError, match="seed"):
        new_match(seed=seed)


def test_a_refused_reset_leaves_the_running_match_alone():
    r = new_match(seed=4, task_id="task_2")
    before = r.state.model_dump()
    with pytest.raises(ValueError, match="max_rounds"):
        r.reset_match(seed=5, task_id="task_1", max_rounds=200)
    assert r.state.model_dump() == before


def test_the_longest_match_the_knobs_allow_plays_to_the_end():
    r = new_match(seed=2, task_id="task_1", max_rounds=100, max_investigator_actions_per_turn=1)
    while r.phase != "audit_phase":
        if r.phase == "fraudster_turn":
            r.step_as_fraudster({"action_type": "end_turn"})
        else:
            r.step_as_investigator({"action_type": "end_turn"})
    assert r.round_number == 100 and r.end_reason == "max_rounds"


def test_bad_illegal_action_mode_is_rejected():
    with pytest.raises(ValueError, match="illegal_action"):
        Referee(illegal_action="ignore")


def test_knobs_take_effect():
    r = new_match(seed=0, task_id="task_2", max_rounds=2, max_proposals=1,
                  max_fraudster_actions_per_turn=2, max_investigator_actions_per_turn=4,
                  allowed_categories=["ecommerce"])
    assert (r.max_rounds, r.max_proposals, r.caps[:2]) == (2, 1, (2, 4))
    cat = next(i for i, c in enumerate(CATEGORIES) if c.name == "saas")
    assert r.check("fraudster", Propose(cat, 0)) is not None


# ---------------------------------------------------------------------------- property test
def _decode(r: Referee, code: tuple[int, int, int, int]) -> tuple[str, Op | tuple]:
    """Turn four integers into (role, op); slots may be absent, kinds may be unknown."""
    a, b, c, d = code
    role = r.current_role or ROLES[a % 3]
    if a % 8 == 0:
        role = ROLES[(ROLES.index(role) + 1 + b % 2) % 3]
    present = np.flatnonzero(r.present)
    slot = int(present[c % len(present)]) if d % 4 else c % MAX_SLOTS
    other = int(present[d % len(present)]) if c % 3 else d % MAX_SLOTS
    kind = b % 16
    if role == "fraudster":
        if kind <= 6:
            return role, Propose(c % len(CATEGORIES), d % 4)
        if kind <= 9:
            slots = r.proposal_slots or [slot]
            return role, Modify(int(slots[c % len(slots)]) if d % 2 else slot, d % 2)
        if kind == 10:
            return role, ("bogus",)
        if kind == 15:
            return role, CommitFinal()
        return role, EndTurn()
    if role == "investigator":
        if kind <= 5:
            return role, Investigate(slot, d % len(TARGETS))
        if kind <= 10:
            return role, Verdict(slot, d % 3, CONFIDENCE_BUCKETS[c % 3])
        if kind <= 12:
            return role, Link(slot, other)
        if kind == 13:
            return role, ("bogus", slot)
        return role, EndTurn()
    if kind == 0:
        return role, Submit()
    if kind == 1:
        return role, ("bogus",)
    track = "A" if kind % 2 else "B"
    types = AUDIT_TRACK_A + AUDIT_TRACK_B  # mismatched track/type pairs are illegal
    return role, Flag(track, -1 if c % 5 == 0 else slot, types[d % len(types)])


TEXT_KEYS = ["action_type", "ad_id", "verdict", "investigation_target", "confidence",
             "linked_ad_id", "category", "tactic", "ad_copy", "slot_index", "edit", "flag_type",
             "target_ad_id", "severity", "note", "audit_report", "rationale", "garbage"]
TEXT_WORDS = ["investigate", "verdict", "link_accounts", "end_turn", "propose_ad",
              "modify_pending_ad", "commit_final", "flag_investigator", "flag_fraudster",
              "submit_audit_report", "approve", "reject", "escalate", "landing_page",
              "payment_method", "ecommerce", "fake_crypto", "blatant", "subtle", "soften_copy",
              "gibberish", "missing_citation", "bias"] + list(AD_IDS[:12]) + ["ad_999", ""]
text_value = st.one_of(st.none(), st.booleans(), st.integers(-3, 40),
                       st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                       st.sampled_from(TEXT_WORDS),
                       st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
garbage_text_action = st.dictionaries(st.sampled_from(TEXT_KEYS), text_value, max_size=6)
ad_id = st.sampled_from(AD_IDS[:26] + ("ad_999",))
free_text = st.text(min_size=1, max_size=80)
# Well-formed actions (legal or not in the current state), so the text face is exercised too.
plausible_text_action = st.one_of(
    st.fixed_dictionaries({"action_type": st.just("propose_ad"),
                           "category": st.sampled_from([c.name for c in CATEGORIES] + ["x"]),
                           "tactic": st.sampled_from(["blatant", "standard", "subtle",
                                                      "camouflaged"])}),
    st.fixed_dictionaries({"action_type": st.just("propose_ad"),
                           "category": st.sampled_from([c.name for c in CATEGORIES]),
                           "ad_copy": free_text},
                          optional={"landing_page_blurb": free_text,
                                    "targeting_summary": free_text}),
    st.fixed_dictionaries({"action_type": st.just("modify_pending_ad"),
                           "slot_index": st.integers(0, 4)},
                          optional={"edit": st.sampled_from(["soften_copy", "add_trust_blurb"]),
                                    "new_ad_copy": free_text}),
    st.fixed_dictionaries({"action_type": st.sampled_from(["end_turn", "commit_final"])}),
    st.fixed_dictionaries({"action_type": st.just("investigate"), "ad_id": ad_id,
                           "investigation_target": st.sampled_from(TARGETS)}),
    st.fixed_dictionaries({"action_type": st.just("verdict"), "ad_id": ad_id,
                           "verdict": st.sampled_from(["approve", "reject", "escalate"])},
                          optional={"confidence": st.floats(0, 1), "rationale": free_text}),
    st.fixed_dictionaries({"action_type": st.just("link_accounts"), "ad_id": ad_id,
                           "linked_ad_id": ad_id}),
    st.fixed_dictionaries({"action_type": st.just("flag_investigator"),
                           "flag_type": st.sampled_from(AUDIT_TRACK_A)},
                          optional={"target_ad_id": ad_id}),
    st.fixed_dictionaries({"action_type": st.just("flag_fraudster"), "target_ad_id": ad_id,
                           "flag_type": st.sampled_from(AUDIT_TRACK_B)}),
    st.fixed_dictionaries({"action_type": st.just("submit_audit_report")},
                          optional={"audit_report": st.fixed_dictionaries(
                              {"notes": st.text(max_size=20)})}),
)
step_strategy = st.one_of(
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
              st.integers(0, 255)),
    st.tuples(st.integers(0, 3), garbage_text_action),
    st.tuples(st.just(3), plausible_text_action),
)
knob_strategy = st.one_of(st.just({}), st.fixed_dictionaries({}, optional={
    "max_rounds": st.integers(1, 8), "max_proposals": st.integers(1, 12),
    "max_fraudster_actions_per_turn": st.integers(1, 5),
    "max_investigator_actions_per_turn": st.integers(1, 14)}))


def _assert_invariants(r: Referee, phase_before: str) -> None:
    s = r.state
    assert s.budget_remaining >= 0
    assert s.proposals_used <= s.max_proposals
    assert s.phase in PHASES
    assert s.phase in NEXT_PHASES[phase_before], (phase_before, s.phase)
    if phase_before == "fraudster_turn" and s.phase == "audit_phase":
        assert r.end_reason in ("commit_final", "all_decided")
    if s.phase in ("fraudster_turn", "investigator_turn"):
        assert 0 <= s.actions_this_turn < s.max_actions_per_turn
        assert r.check(r.current_role, ALWAYS_LEGAL[r.current_role]) is None
    np.testing.assert_allclose(r.totals, [s.fraudster_reward, s.investigator_reward,
                                          s.auditor_reward])


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(seed=st.integers(0, 2**32), task_id=st.sampled_from(TASK_IDS),
       mode=st.sampled_from(["raise", "penalize"]), knobs=knob_strategy,
       steps=st.lists(step_strategy, min_size=5, max_size=200))
def test_arbitrary_action_sequences_keep_the_rules(seed, task_id, mode, knobs, steps):
    r = new_match(seed=seed, task_id=task_id, mode=mode, **knobs)
    sums = np.zeros(3)
    for step in steps:
        phase_before = r.phase
        before = state_json(r)
        try:
            if len(step) == 2:  # a text-face dict from any role (3: whoever is on turn)
                role = ROLES[step[0]] if step[0] < 3 else (r.current_role or "auditor")
                r.apply_model(role, step[1])
            else:
                r.apply(*_decode(r, step))
        except (IllegalActionError, PermissionError) as exc:
            assert isinstance(exc, IllegalActionError)
            assert state_json(r) == before
            continue
        sums += r.step_rewards
        _assert_invariants(r, phase_before)
    # Then random legal play to the end, still checking every step.
    trace = play(r, seed, on_step=lambda r, role, op, before: _assert_invariants(r, before))
    sums += np.sum([rw for _, _, rw in trace], axis=0) if trace else 0.0
    assert r.done
    np.testing.assert_allclose(sums, r.totals, atol=1e-9)
    assert 0.0 <= r.grader_score <= 1.0
    assert r.state.investigator_state["pending"] == []


@settings(max_examples=50, deadline=None)
@given(severity=st.lists(st.floats(0.0, 3.0, allow_nan=False), min_size=9, max_size=9))
def test_verdict_rewards_over_arrays_are_verdict_reward_to_the_bit(severity):
    """The array form the vector env charges with is the table every verdict is paid from."""
    verdict = np.tile(np.arange(3), 3)
    label = np.repeat(np.arange(3), 3)
    got = scoring.verdict_rewards(verdict, label, np.asarray(severity))
    want = [scoring.verdict_reward(int(v), int(lab), sev)
            for v, lab, sev in zip(verdict, label, severity)]
    assert got.tolist() == want


def test_a_referee_before_its_first_reset_says_to_reset_it():
    ref = Referee()
    for read in (lambda: ref.state, lambda: ref.build_auditor_observation(),
                 lambda: ref.investigator_log, lambda: ref.episode_record()):
        with pytest.raises(RuntimeError, match=r"no match yet: call reset_match"):
            read()
    for act in (lambda: ref.step_as_fraudster({"action_type": "end_turn"}),
                lambda: ref.apply("fraudster", EndTurn())):  # it said "the match is over"
        with pytest.raises(OutOfTurnError, match=r"no match yet: call reset_match"):
            act()
    ref.reset_match(seed=1)
    assert ref.state.task_id == "task_1"


def test_an_illegal_action_that_ends_the_match_charges_its_maker_and_nothing_more():
    """The env's terminate mode ends the match through the referee: done, for an illegal
    action, the maker charged; no ad approved, no grade, no ending reward."""
    r = new_match(seed=3, task_id="task_1")
    to_investigator_turn(r)
    totals, verdicts = list(r.totals), r.verdict.copy()
    assert r.end_on_illegal("investigator", "bad", "a reason", -2.0) == -2.0
    assert r.done and r.end_reason == "illegal_action" and r.grader_score is None
    assert r.totals == pytest.approx([totals[0], totals[1] - 2.0, totals[2]])
    assert r.step_rewards == pytest.approx([0.0, -2.0, 0.0])
    np.testing.assert_array_equal(r.verdict, verdicts)
    r.load_scalars()  # the end is in the match state, not only on the referee
    assert r.phase == "done" and r.end_reason == "illegal_action"
    with pytest.raises(OutOfTurnError, match="the match is over"):
        r.apply("auditor", Submit())


def test_the_truth_of_an_empty_slot_is_refused_not_read_from_another_ads_row():
    """An empty slot's row is -1, which would index the last ad row: an answer for no ad."""
    ref = Referee()
    ref.reset_match(seed=0, task_id="task_1")
    empty = next(s for s in range(MAX_SLOTS) if not ref.present[s])
    present = next(s for s in range(MAX_SLOTS) if ref.present[s])
    assert ref.label_of(present) in (0, 1, 2)  # LEGIT, FRAUD, ESCALATE
    for read in (ref.label_of, ref.tactic_of):
        with pytest.raises(ValueError, match=f"slot {empty} holds no ad"):
            read(empty)
