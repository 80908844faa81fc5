"""The grader, one match at a time (``grade``) and many at once (``grade_batch``): the same
score and terms, to the bit."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fraudarena_env.rules import scoring
from fraudarena_env.rules.catalog import MAX_SLOTS, TASK_IDS

S = MAX_SLOTS


@st.composite
def matches(draw):
    """k matches: every slot's label, severity and verdict, which slots count, and the rest."""
    k = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    shown = rng.random((k, S)) < rng.random((k, 1))  # from none to every slot shown
    if draw(st.booleans()):  # matches with as many ads, summed together in one group
        shown[:] = shown[0]
    return dict(task_ids=[draw(st.sampled_from(TASK_IDS)) for _ in range(k)],
                labels=rng.integers(0, 3, (k, S)), severities=rng.random((k, S)),
                verdicts=rng.integers(0, 3, (k, S)), shown=shown,
                calibration=rng.random(k).tolist(),
                n_correct_links=rng.integers(0, 6, k).tolist(),
                n_wrong_links=rng.integers(0, 6, k).tolist(),
                n_ring_pairs=rng.integers(0, 8, k).tolist())


@settings(max_examples=200, deadline=None)
@given(matches())
def test_grading_many_matches_at_once_gives_each_match_its_own_grade_to_the_bit(m):
    batch = scoring.grade_batch(**m)
    for j, (score, terms) in enumerate(batch):
        ads = np.flatnonzero(m["shown"][j])
        assert (score, terms) == scoring.grade(
            m["task_ids"][j], m["labels"][j, ads].tolist(), m["severities"][j, ads].tolist(),
            m["verdicts"][j, ads].tolist(), m["calibration"][j], m["n_correct_links"][j],
            m["n_wrong_links"][j], m["n_ring_pairs"][j]), j


def test_a_queue_of_eight_or_more_ads_is_summed_pairwise_as_numpy_sums():
    # eight or more: numpy's pairwise sum differs from a running sum in the last bit
    rng = np.random.default_rng(3)
    labels, sev, verdicts = rng.integers(0, 3, 29), rng.random(29), rng.integers(0, 3, 29)
    expected = scoring.grade("task_3", labels.tolist(), sev.tolist(), verdicts.tolist(), 0.4,
                             2, 1, 4)
    got = scoring.grade_batch(["task_3"], labels[None], sev[None], verdicts[None],
                              np.ones((1, 29), bool), [0.4], [2], [1], [4])[0]
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_each_proposals_outcome_in_an_array_is_its_scalar_outcome_to_the_bit(seed):
    rng = np.random.default_rng(seed)
    n = 40
    verdict = rng.integers(0, 3, n)
    severity, plausibility = rng.random(n) * 2, rng.random(n)
    arrival = rng.integers(1, 8, n)
    decided = arrival + rng.integers(0, 4, n)
    max_rounds = rng.integers(8, 12, n)
    got = scoring.fraudster_outcomes(verdict, severity, plausibility, arrival, decided,
                                     max_rounds).tolist()
    assert got == [scoring.fraudster_outcome(
        v, s, p, scoring.proposal_reach(v, a, d, m)) for v, s, p, a, d, m in zip(
            verdict.tolist(), severity.tolist(), plausibility.tolist(), arrival.tolist(),
            decided.tolist(), max_rounds.tolist())]


@settings(max_examples=200, deadline=None)
@given(confidence=st.lists(st.floats(0, 1), max_size=S), seed=st.integers(0, 2**32 - 1))
def test_the_skill_depends_only_on_the_count_the_hits_and_the_exact_squared_errors(
        confidence, seed):
    right = (np.random.default_rng(seed).random(len(confidence)) < 0.6).tolist()
    expected = scoring.calibration_skill(confidence, right)
    if len(confidence) >= scoring.MIN_CALIBRATION_VERDICTS:
        squared = math.fsum((c - ok) ** 2 for c, ok in zip(confidence, right))
        assert scoring.brier_skill(len(confidence), sum(right), squared) == expected
    else:
        assert expected == 0.0
