"""Rewards and the grader.

Investigator and fraudster rewards depend only on ground truth and the env's own rule audit, never
on what the auditor submits. The grader is a weighted mean of bounded terms, each in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np

from .catalog import APPROVE, ESCALATE, ESCALATE_V, FRAUD, LEGIT, REJECT

INVESTIGATE_COST = -0.02
LINK_CORRECT = 0.40
LINK_WRONG = -0.25
ILLEGAL_PENALTY = -0.05  # only in illegal_action="penalize" mode
FRAUDSTER_BANNED = -0.05  # a rejected proposal burns the account that placed it
REACH_VALUE = 1.0  # per round a proposal ran, times severity x plausibility
AFTER_MATCH_REACH = 2  # rounds an approved ad keeps running after the match
AUDIT_TRUE_FLAG = 0.25  # per flag the rule audit confirms (deduplicated)
AUDIT_FALSE_FLAG = -0.25  # per flag it does not


def verdict_reward(verdict: int, label: int, severity: float) -> float:
    """Reward for one verdict (also charged for every auto-approved ad at the end).

    | verdict \\ truth | fraud           | legit  | escalate |
    | reject          | +0.30 + 0.1 sev | -0.35  | -0.05    |
    | approve         | -0.30 - 0.3 sev | +0.10  | -0.20    |
    | escalate        | -0.10           | -0.10  | +0.20    |
    """
    if label == FRAUD:
        if verdict == REJECT:
            return 0.30 + 0.1 * severity
        if verdict == APPROVE:
            return -0.30 - 0.3 * severity
        return -0.10
    if label == LEGIT:
        return _LEGIT_REWARD[verdict]
    return _ESCALATE_REWARD[verdict]


# the table's legit and escalate columns, by verdict (APPROVE, REJECT, ESCALATE_V)
_LEGIT_REWARD = (0.10, -0.35, -0.10)
_ESCALATE_REWARD = (-0.20, -0.05, 0.20)


def verdict_rewards(verdict, label, severity) -> np.ndarray:
    """``verdict_reward`` elementwise over arrays (the same table, the same arithmetic)."""
    verdict, label, severity = np.asarray(verdict), np.asarray(label), np.asarray(severity)
    fraud = np.select([verdict == REJECT, verdict == APPROVE],
                      [0.30 + 0.1 * severity, -0.30 - 0.3 * severity], -0.10)
    legit = np.asarray(_LEGIT_REWARD)[verdict]
    escalate = np.asarray(_ESCALATE_REWARD)[verdict]
    return np.where(label == FRAUD, fraud, np.where(label == LEGIT, legit, escalate))


def verdict_bounds(label: int, severity: float) -> tuple[float, float]:
    values = [verdict_reward(v, label, severity) for v in (APPROVE, REJECT, ESCALATE_V)]
    return min(values), max(values)


# verdict_reward as (base, slope) pairs, indexed [label][verdict]: reward = base + slope * sev
_REWARD_TERMS = [[(verdict_reward(v, lab, 0.0),
                   verdict_reward(v, lab, 1.0) - verdict_reward(v, lab, 0.0)) for v in range(3)]
                 for lab in range(3)]

CALIBRATION_BINS = (0.4, 0.7)
MIN_CALIBRATION_VERDICTS = 3


def calibration_bins(confidence, correct) -> list[tuple[int, float, float]]:
    """Per confidence bin ([0, 0.4), [0.4, 0.7), [0.7, 1]): (count, mean confidence,
    accuracy). Shared by the grader, the rule audit and the auditor's observation."""
    sums = [[0, 0.0, 0.0] for _ in range(len(CALIBRATION_BINS) + 1)]
    for c, ok in zip(confidence, correct):
        b = 0 if c < CALIBRATION_BINS[0] else 1 if c < CALIBRATION_BINS[1] else 2
        row = sums[b]
        row[0] += 1
        row[1] += c
        row[2] += ok
    return [(n, sc / n, so / n) if n else (0, 0.0, 0.0) for n, sc, so in sums]


def calibration_skill(confidence, correct) -> float:
    """How much the stated confidences know beyond the base rate: a Brier skill score in [0, 1].

    The reference forecaster states the match's base rate (the share of manual verdicts that
    were right) for every verdict, so a constant confidence, whatever its value, scores 0; only
    confidence that rises and falls with being right earns. Skill is
    ``1 - sum((c - right)^2) / sum((base - right)^2)``, clipped at 0. When every verdict was right
    (or every one wrong) there is no spread to tell apart: the base rate is then shrunk by half a
    verdict toward the other outcome, so only near-certain confidence scores.

    Fewer than three manual verdicts earn nothing: calibration must be shown, not assumed.
    """
    n = len(confidence)
    if n < MIN_CALIBRATION_VERDICTS:
        return 0.0
    return brier_skill(n, sum(correct), math.fsum((c - ok) ** 2 for c, ok in zip(confidence,
                                                                              correct)))


def brier_skill(n: int, hits: int, brier: float) -> float:
    """``calibration_skill`` from the number of manual verdicts (at least
    ``MIN_CALIBRATION_VERDICTS``), how many were right, and the sum of their squared errors
    (exactly rounded, as ``math.fsum`` gives it): the skill depends on nothing else."""
    hits = float(hits)
    base = hits / n
    if hits == 0 or hits == n:
        base = (hits + 0.5) / (n + 1)
    right = int(hits)
    reference = math.fsum([(base - 1) ** 2] * right + [base ** 2] * (n - right))
    return float(max(0.0, 1.0 - brier / reference))


GRADER_WEIGHTS = {  # verdicts, links, calibration
    "task_1": (0.9, 0.0, 0.1),
    "task_2": (0.9, 0.0, 0.1),
    "task_3": (0.65, 0.25, 0.1),
    "task_3_unseen": (0.65, 0.25, 0.1),
}


def grade(task_id: str, labels, severities, verdicts, calibration: float, n_correct_links: int,
          n_wrong_links: int, n_ring_pairs: int) -> tuple[float, dict[str, float]]:
    """Grader score in [0, 1] and its terms.

    * verdicts: the verdict rewards of every ad (auto-approvals included), normalised between the
      worst and best achievable for that queue;
    * links: (correct - 0.625 wrong) / ring pairs, clipped to [0, 1]; its weight moves to the
      verdict term when the match has no ring;
    * calibration: ``calibration_skill`` of the manual verdicts.
    """
    # Plain lists: queues are short, and numpy scalars are slow one by one (``grade_batch`` is
    # the same arithmetic over arrays, for many matches; tests/rules/test_scoring.py pins the two
    # equal to the bit).
    labels, severities, verdicts = map(_as_list, (labels, severities, verdicts))
    chosen, best, worst = [], [], []
    for label, sev, verdict in zip(labels, severities, verdicts):
        (b0, k0), (b1, k1), (b2, k2) = _REWARD_TERMS[label]
        rewards = (b0 + k0 * sev, b1 + k1 * sev, b2 + k2 * sev)
        chosen.append(rewards[verdict])
        best.append(max(rewards))
        worst.append(min(rewards))
    # Summed by numpy (pairwise), as the grader always has: a plain sum can differ in the last bit.
    raw, best, worst = np.asarray([chosen, best, worst]).sum(axis=1).tolist()
    verdict_term = (raw - worst) / (best - worst) if best > worst else 0.0
    link_term = 0.0
    if n_ring_pairs:
        link_term = min(max((n_correct_links - 0.625 * n_wrong_links) / n_ring_pairs, 0.0), 1.0)
    w_v, w_l, w_c = GRADER_WEIGHTS.get(task_id, GRADER_WEIGHTS["task_3"])
    if not n_ring_pairs:
        w_v, w_l = w_v + w_l, 0.0
    score = w_v * verdict_term + w_l * link_term + w_c * calibration
    terms = {"verdicts": round(verdict_term, 6), "links": round(link_term, 6),
             "calibration": round(calibration, 6)}
    return float(min(max(score, 0.0), 1.0)), terms


def _as_list(x):
    return x.tolist() if isinstance(x, np.ndarray) else x


_TERMS = np.asarray(_REWARD_TERMS)  # (labels, verdicts, 2): base and slope, as grade reads them


def grade_batch(task_ids, labels, severities, verdicts, shown, calibration, n_correct_links,
                n_wrong_links, n_ring_pairs) -> list[tuple[float, dict[str, float]]]:
    """``grade`` for k matches at once: ``labels``, ``severities`` and ``verdicts`` are (k, S)
    arrays over each match's slots and ``shown`` (k, S) which of them count, in slot order; the
    rest one entry per match. The same arithmetic in the same order, and each match's sums are
    numpy's pairwise sums over exactly its ads (matches with as many ads summed together), so
    every score and term equals ``grade``'s to the bit."""
    terms = _TERMS[labels]  # (k, S, verdicts, 2)
    rewards = terms[..., 0] + terms[..., 1] * severities[..., None]
    pick = np.maximum(verdicts, 0).astype(np.int64)[..., None]
    columns = (np.take_along_axis(rewards, pick, -1)[..., 0], rewards.max(-1), rewards.min(-1))
    k = len(shown)
    sums = np.zeros((3, k))
    count = shown.sum(axis=1)
    for n in np.unique(count).tolist():
        group = np.flatnonzero(count == n)
        mask = shown[group]
        for i, column in enumerate(columns):
            sums[i, group] = column[group][mask].reshape(len(group), n).sum(axis=1)
    raw, best, worst = sums
    verdict_term = np.divide(raw - worst, best - worst, out=np.zeros(k), where=best > worst)
    pairs = np.asarray(n_ring_pairs)
    rings = pairs > 0
    link_term = np.zeros(k)
    correct, wrong = np.asarray(n_correct_links)[rings], np.asarray(n_wrong_links)[rings]
    link_term[rings] = np.minimum(np.maximum((correct - 0.625 * wrong) / pairs[rings], 0.0), 1.0)
    weights = np.asarray([GRADER_WEIGHTS.get(t, GRADER_WEIGHTS["task_3"]) for t in task_ids])
    w_v = np.where(rings, weights[:, 0], weights[:, 0] + weights[:, 1])
    w_l = np.where(rings, weights[:, 1], 0.0)
    calibration = np.asarray(calibration, float)
    score = w_v * verdict_term + w_l * link_term + weights[:, 2] * calibration
    score = np.minimum(np.maximum(score, 0.0), 1.0)
    return [(s, {"verdicts": round(v, 6), "links": round(li, 6), "calibration": round(c, 6)})
            for s, v, li, c in zip(score.tolist(), verdict_term.tolist(), link_term.tolist(),
                                   calibration.tolist())]


def proposal_reach(verdict: int, arrival_round: int, decision_round: int,
                   max_rounds: int) -> int:
    """How many rounds a fraudster proposal ran: from the round it arrived until the round it
    was rejected or escalated; an approved ad (manually or by default) runs to the end of the
    match and ``AFTER_MATCH_REACH`` rounds beyond."""
    if verdict == APPROVE:
        return max_rounds - arrival_round + AFTER_MATCH_REACH
    return decision_round - arrival_round


def fraudster_outcome(verdict: int, severity: float, plausibility: float, reach: int) -> float:
    """What one fraudster proposal earns at the end: its reach times its severity times its
    plausibility (a harmful, believable ad that ran longer earned more), minus the cost of a
    banned account when it was rejected."""
    value = REACH_VALUE * severity * plausibility * reach
    return value + FRAUDSTER_BANNED if verdict == REJECT else value


def fraudster_outcomes(verdict, severity, plausibility, arrival_round, decision_round,
                       max_rounds) -> np.ndarray:
    """``fraudster_outcome`` of each proposal, with its ``proposal_reach``, elementwise over
    arrays (the same arithmetic in the same order, so each value equals the scalar one to the
    bit; tests/rules/test_scoring.py pins it)."""
    verdict = np.asarray(verdict)
    arrival = np.asarray(arrival_round, np.int64)
    reach = np.where(verdict == APPROVE, np.asarray(max_rounds, np.int64) - arrival +
                     AFTER_MATCH_REACH, np.asarray(decision_round, np.int64) - arrival)
    value = REACH_VALUE * np.asarray(severity, np.float64) * plausibility * reach
    return np.where(verdict == REJECT, value + FRAUDSTER_BANNED, value)


__all__ = ["ESCALATE", "grade", "grade_batch", "verdict_reward", "fraudster_outcome",
           "fraudster_outcomes", "calibration_skill"]
