"""Legality is one set of checks per role: ``legal_mask`` (every op of every match at once) and
``explain`` (one op, with its reason) evaluate the same expressions, so they always agree."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudarena_env.faces.encoding import Observer
from fraudarena_env.policies import RandomPolicy
from fraudarena_env.rules.action_catalog import OPS
from fraudarena_env.rules.actions import (
    EndTurn,
    Flag,
    Investigate,
    Link,
    Modify,
    Propose,
    Verdict,
)
from fraudarena_env.rules.catalog import ROLES, TASK_IDS
from fraudarena_env.rules.errors import IllegalActionError
from fraudarena_env.rules.referee import Referee
from fraudarena_env.rules.roles import ROLE_RULES, explain, legal_mask
from fraudarena_env.rules.state import MatchState


def _play_to(task_id: str, seed: int, steps: int) -> Referee:
    """A match after ``steps`` masked-random actions (or at its end)."""
    ref = Referee()
    ref.reset_match(seed=seed, task_id=task_id)
    observers = {role: Observer(role) for role in ROLES}
    policies = {role: RandomPolicy(role, seed=seed + k) for k, role in enumerate(ROLES)}
    for _ in range(steps):
        if ref.done:
            break
        role = ref.current_role
        ref.apply(role, OPS[role][policies[role].act_tensor(*observers[role].observe(ref))])
    return ref


def _offered(ref: Referee, role: str) -> np.ndarray:
    """The mask by ``explain``, op by op: legal and not a repeated flag."""
    return np.array([explain(ref.match_state, 0, role, op) is None and not ref.repeats(op)
                     for op in OPS[role]], np.int8)


@settings(max_examples=60, deadline=None)
@given(task_id=st.sampled_from(TASK_IDS), seed=st.integers(0, 10_000),
       steps=st.integers(0, 160))
def test_legal_mask_is_true_exactly_where_explain_finds_no_reason(task_id, seed, steps):
    ref = _play_to(task_id, seed, steps)
    for role in ROLES:
        np.testing.assert_array_equal(legal_mask(ref.match_state, role)[0], _offered(ref, role))


def test_legal_mask_answers_for_every_match_of_a_batch_at_once():
    refs = [_play_to(task_id, seed, steps) for task_id, seed, steps in
            [("task_1", 1, 0), ("task_3", 2, 15), ("task_3", 3, 200), ("task_2", 4, 40)]]
    batch = MatchState.stack([ref.match_state for ref in refs])
    for role in ROLES:
        masks = legal_mask(batch, role)
        for m, ref in enumerate(refs):
            np.testing.assert_array_equal(masks[m], legal_mask(ref.match_state, role)[0])


def test_only_the_acting_role_has_legal_actions():
    ref = _play_to("task_3", 5, 10)
    for role in ROLES:
        assert legal_mask(ref.match_state, role).any() == (role == ref.current_role)


def test_a_refusal_names_the_first_check_that_fails():
    ref = _play_to("task_3", 6, 0)
    st_ = ref.match_state
    absent = int(np.flatnonzero(~st_.present[0])[0])
    assert explain(st_, 0, "fraudster", Modify(absent, 0)) == \
        f"ad_{absent + 1:03d} is not your proposal"
    assert "not investigator's turn" in explain(st_, 0, "investigator", Verdict(0, 1, 0.9))
    assert explain(st_, 0, "fraudster", Propose(0, 0)) is None


def test_every_role_declares_checks_for_each_op_its_catalogue_holds():
    for role, rules in ROLE_RULES.items():
        assert {type(op) for op in OPS[role]} == set(rules.CHECKS), role


def test_the_referee_refuses_by_the_same_checks():
    ref = _play_to("task_3", 7, 0)
    ref.apply("fraudster", OPS["fraudster"][-2])  # end_turn: the investigator acts
    slot = int(np.flatnonzero(ref.present)[0])
    for target in range(3):
        ref.apply("investigator", Investigate(slot, target))
    reason = ref.check("investigator", Investigate(slot, 3))
    assert reason == explain(ref.match_state, 0, "investigator", Investigate(slot, 3))
    assert "already had 3 sources pulled" in reason
    assert ref.check("investigator", Link(slot, slot)) == "cannot link an ad to itself"
    assert ref.check("auditor", Flag("A", -1, "bogus")).startswith("it is not auditor's turn")


def test_a_malformed_op_is_refused_by_its_form_and_changes_nothing():
    """Ops built by hand (the rules' typed API): a slot of -1 was taken as the last ad (its
    evidence pulled and logged as ad_032), a verdict index past the catalogue was written into
    the match before an IndexError, and a confidence of 7.0 was legal."""
    ref = _play_to("task_3", 7, 0)
    ref.apply("fraudster", OPS["fraudster"][-2])  # end_turn: the investigator acts
    slot = int(np.flatnonzero(ref.present)[0])
    malformed = {
        Investigate(-1, 0): "slot must be an ad slot", Investigate(40, 0): "slot must be",
        Investigate(slot, 6): "target must be", Investigate(float(slot), 0): "slot must be",
        Verdict(slot, 3, 0.5): "verdict must be", Verdict(slot, 0, 7.0): "confidence must be",
        Verdict(slot, 0, float("nan")): "confidence must be", Link(slot, 32): "other must be",
    }
    before = ref.match_state.scalars.copy(), ref.verdict.copy(), ref.pulled.copy()
    for op, reason in malformed.items():
        assert reason in ref.check("investigator", op), op
        with pytest.raises(IllegalActionError, match=reason):
            ref.apply("investigator", op)
    after = ref.match_state.scalars, ref.verdict, ref.pulled
    assert all((b == a).all() for b, a in zip(before, after))
    fraudster = _play_to("task_3", 7, 0)
    for op, reason in {Propose(17, 0): "category must be", Propose(0, 4): "tactic must be",
                       Modify(-1, 0): "slot must be", Modify(slot, 2): "edit must be"}.items():
        assert reason in fraudster.check("fraudster", op), op
    audited = _play_to("task_1", 3, 0)
    while audited.phase != "audit_phase":  # both pass every turn: play ends on max_rounds
        audited.apply(audited.current_role, EndTurn())
    for op, reason in {Flag("C", 0, "bias"): "track must be", Flag("A", -2, "bias"): "slot must",
                       Flag("B", 32, "gibberish"): "slot must", Flag("A", 0, "bias", 1.5):
                       "severity must be"}.items():
        assert reason in audited.check("auditor", op), op
