"""The end of play for many matches at once: ``MatchMachine._finish`` and the auditor's record
(``encoding._fill_auditor_record``), as array operations over the matches of a
``VectorFraudArena`` that end in the same step.

What is the same for every match (approving what is pending, the investigator's auto-approval
charge, the links' tally, the rule audit's track A, the auditor's view and mask) is computed
for all of them together, and so is the grader (``scoring.grade_batch``, the array twin of the
referee's ``scoring.grade``); what reads text or short per-match lists (track B on
the proposals' copy, the fraudster's outcome per proposal, the calibration bins) runs match by
match through the same functions ``_finish`` calls, on the same plain lists, so every number
comes out bit for bit as the referee's (``tests/test_vector.py`` compares every env with the
scalar env step by step, and how each match ended, its grader included).

When only a match or two end in a step (``scalar_finish``), they end through their referees
instead (``Referee.end_play``, the scalar env's own ``_finish``, their observers brought up to
date from its changes): the array work costs about as much for one match as for a hundred, the
referee's plain lists much less for one. Masked random play at N = 64 gained 9 % by it, at
N = 256 7 %; at N = 1,024, where about ten matches end in a step, it is not used.

The vector env plays the tensor face, where verdicts carry no rationale: track A's citation
check reduces to "a decisive verdict with nothing pulled", and no rationale is shown.
"""

from __future__ import annotations

import math

import numpy as np

from .faces.encoding import EVIDENCE_SCALE, OBS_BOUND, TRACK_B_CUES
from .rules import audit, copy_keys, scoring
from .rules.action_catalog import A_FLAG_A, A_FLAG_B, A_SUBMIT
from .rules.catalog import (
    AD_IDS,
    APPROVE,
    AUDIT_TRACK_A,
    AUDIT_TRACK_B,
    CATEGORIES,
    CORRECT_VERDICT,
    LEGIT,
    REJECT,
    TARGETS,
)
from .rules.state import END_REASONS, Phase

S = len(AD_IDS)
_T = len(TARGETS)
_RISKY = np.array([c.family != "legit" for c in CATEGORIES])
_A = {flag: i for i, flag in enumerate(AUDIT_TRACK_A)}
_B = {flag: i for i, flag in enumerate(AUDIT_TRACK_B)}
_N_FLAGS = max(len(AUDIT_TRACK_A), len(AUDIT_TRACK_B))
_AD_ID_ARRAY = np.asarray(AD_IDS, dtype=object)
_CUE_COLUMN = [(_B[flag], i) for i, flag in enumerate(TRACK_B_CUES)]
BUDGET_EXHAUSTED = END_REASONS.index("budget_exhausted")
_CORRECT = np.asarray(CORRECT_VERDICT)  # by label
SCALAR_FINISH = 2  # at most this many matches ending together end one by one (_finish_one)


class BatchedEnd:
    """A mixin of ``VectorFraudArena``: ``_finish_batch``."""

    scalar_finish = SCALAR_FINISH

    def _finish_batch(self, env: np.ndarray, reason: np.ndarray) -> None:
        """End play in ``env`` (each with its ``END_REASONS`` code), as ``_finish`` would, and
        show the auditor the record. A match or two end through their referees' own ``_finish``
        instead: the array work costs about as much for one match as for a hundred."""
        if len(env) <= self.scalar_finish:
            for m, code in zip(env.tolist(), reason.tolist()):
                self._finish_one(m, END_REASONS[code])
            return
        st, rows = self.state, self.state.rows
        out_of_budget = env[reason == BUDGET_EXHAUSTED]
        if len(out_of_budget):  # the organic ads still to come arrive, unreviewed
            self._arrive(out_of_budget, st.max_rounds[out_of_budget])
        st.end_reason[env] = reason
        present = st.present[env]
        pending = present & (st.verdict[env] < 0)
        verdict = np.where(pending, APPROVE, st.verdict[env]).astype(np.int8)
        st.verdict[env] = verdict
        st.confidence[env] = np.where(pending, 0.0, st.confidence[env])
        row = np.maximum(st.slot_row[env], 0)
        e2 = env[:, None]
        label, severity = rows.label[e2, row], rows.severity[e2, row]
        charge = np.where(pending, scoring.verdict_rewards(APPROVE, label, severity), 0.0)
        # _finish sums the charges one by one from 0.0: a running sum from a zero column
        auto = np.cumsum(np.concatenate((np.zeros((len(env), 1)), charge), axis=1), axis=1)[:, -1]
        manual = st.manual[env]
        linked = np.triu(st.linked[env], 1)
        ring = rows.ring[e2, row]
        same_ring = (ring[:, :, None] >= 0) & (ring[:, :, None] == ring[:, None, :])
        correct = np.count_nonzero(linked & same_ring, axis=(1, 2))
        wrong = np.count_nonzero(linked, axis=(1, 2)) - correct
        conflict = self._track_a(env, manual, verdict, row, linked)
        bias = self._bias(manual, verdict, label, rows.category[e2, row])
        calibration = _Calibration(st.confidence[env], manual, verdict == _CORRECT[label])
        matches = env.tolist()
        # pairs of ads sharing a ring: the drawn rings', and the fraudster's own ring's
        # (``n_ring_pairs``)
        own = np.count_nonzero(st.is_proposal[env] & (ring == self._n_rings[env][:, None]),
                               axis=1)
        grades = scoring.grade_batch(
            [self.task_ids[m] for m in matches], label, severity, verdict, present,
            calibration.skill, correct, wrong, self._ring_pairs[env] + own * (own - 1) // 2)
        plausibility, by_slot = self._track_b(env, row)
        self._terminal[env, 0] = self._fraud_outcome(env, manual, verdict, row, by_slot)
        self._terminal[env, 1] = auto
        self._terminal[env, 2] = 0.0
        self._match_flags(env, manual, calibration, bias)
        bins = calibration.bins()
        for j, (m, terminal, flags, (score, terms)) in enumerate(zip(
                matches, self._terminal[env].tolist(), self._truth_flags(env), grades)):
            self.referees[m].record_finish(
                calibration=bins[j], grader_score=score, grader_terms=terms,
                plausibility=plausibility[j], terminal=terminal, truth_flags=flags,
                end_reason=END_REASONS[int(reason[j])])
        st.phase[env] = Phase.AUDIT_PHASE
        st.actions_this_turn[env] = 0
        self._show_auditor(env, present, manual, verdict, row, label, severity, conflict, bias,
                           calibration)

    def _finish_one(self, m: int, reason: str) -> None:
        """End play in match ``m`` through its referee (``end_play``, the scalar env's own
        ``_finish``), its observers brought up to date from the referee's changes."""
        ref = self._synced_referee(m)
        ref.end_play(reason)
        ref.store_scalars()
        self._terminal[m] = ref.terminal
        for observer in self.observers[m]:
            observer.replay(ref)
        self._full[m] = True
        self._record_truth(m, ref.truth_flags)

    def _track_a(self, env, manual, verdict, row, linked) -> np.ndarray:
        """Track A's per-ad findings (``audit.track_a`` on the tensor face) into ``_truth``;
        returns the inconsistent link ends (the auditor's ``link_conflict``)."""
        st = self.state
        pulled = st.pulled[env]
        n_pulled = np.count_nonzero(pulled, axis=2)
        signal = np.where(pulled, st.rows.evidence[env[:, None], row].astype(np.float64), 0.0)
        total = np.zeros(n_pulled.shape)
        for t in range(_T):  # in target order, as track_a's sum
            total = total + signal[:, :, t]
        mean = total / np.maximum(n_pulled, 1)
        seen = manual & (n_pulled > 0)
        truth = self._truth[env, 0]  # (k, S + 1, flags): row 0 is the match itself
        decisive = manual & ((verdict == APPROVE) | (verdict == REJECT))
        truth[:, 1:, _A["missing_citation"]] = decisive & (n_pulled == 0)
        truth[:, 1:, _A["incoherent_rationale"]] = seen & (
            ((verdict == APPROVE) & (mean >= audit.INCOHERENT_APPROVE_SIGNAL)) |
            ((verdict == REJECT) & (n_pulled >= 2) & (mean <= audit.INCOHERENT_REJECT_SIGNAL)))
        order = st.decided_order[env]
        v_a, v_b = verdict[:, :, None], verdict[:, None, :]
        split = linked & manual[:, :, None] & manual[:, None, :] & (
            ((v_a == APPROVE) & (v_b == REJECT)) | ((v_a == REJECT) & (v_b == APPROVE)))
        k, a, b = np.nonzero(split)
        later = np.where(order[k, a] > order[k, b], a, b)
        conflict = np.zeros(manual.shape, bool)
        conflict[k, later] = True
        truth[:, 1:, _A["inconsistency"]] = conflict
        self._truth[env, 0] = truth
        return conflict

    @staticmethod
    def _bias(manual, verdict, label, category) -> np.ndarray:
        """The auditor's bias reading per match: legit ads judged in risky-looking and in plain
        categories, and the share of each rejected (``_fill_auditor_record``'s tally)."""
        legit = manual & (label == LEGIT)
        risky = legit & _RISKY[category]
        plain = legit & ~_RISKY[category]
        rejected = verdict == REJECT
        counts = [np.count_nonzero(x, axis=1) for x in
                  (risky, risky & rejected, plain, plain & rejected)]
        return np.stack(counts, axis=1)  # (k, 4): risky, rejected of them, plain, rejected

    def _track_b(self, env: np.ndarray, row: np.ndarray) -> tuple[list[dict], np.ndarray]:
        """Track B on each match's proposals (``copy_keys.track_b_batch``: ``audit.track_b`` on
        their text as the batched steps keep it, in numbers), its flags into ``_truth``; returns
        each match's plausibility by ad id, in the order proposed, and by slot as a (k, S)
        array."""
        st = self.state
        proposal = st.is_proposal[env]
        # the k-th proposal takes row n_base + k: the proposals' rows give the order proposed
        width = max(int(np.count_nonzero(proposal, axis=1).max()), 1)
        slot = np.argsort(np.where(proposal, row, np.iinfo(np.int64).max), axis=1,
                          kind="stable")[:, :width]
        proposed = np.take_along_axis(proposal, slot, axis=1)
        e2 = env[:, None]
        bits, plausibility = copy_keys.track_b_batch(
            copy_keys.TABLE, self._copy_key[e2, slot], self._blurb[e2, slot], self._aim[e2, slot],
            proposed)
        by_slot = np.zeros((len(env), S))
        by_slot[np.arange(len(env))[:, None], slot] = plausibility
        for i, flag in enumerate(copy_keys.FINDINGS):
            j, p = np.nonzero(bits >> i & 1)
            self._truth[env[j], 1, slot[j, p] + 1, _B[flag]] = True
        counts = np.count_nonzero(proposed, axis=1).tolist()
        by_id = [dict(zip(_AD_ID_ARRAY[slots[:n]].tolist(), values[:n]))
                 for slots, values, n in zip(slot, plausibility.tolist(), counts)]
        return by_id, by_slot

    def _fraud_outcome(self, env, manual, verdict, row, plausibility) -> np.ndarray:
        """The fraudster's ending reward per match: what its proposals earned
        (``scoring.fraudster_outcomes``), summed one by one in the order proposed from 0.0,
        as ``_finish`` sums them."""
        st = self.state
        decided = np.where(manual, st.decided_round[env], st.round_number[env][:, None])
        value = scoring.fraudster_outcomes(
            verdict, st.rows.severity[env[:, None], row], plausibility, st.arrived[env], decided,
            st.max_rounds[env][:, None])
        proposal = st.is_proposal[env]
        # the k-th proposal takes row n_base + k: the proposals' rows give the order proposed
        order = np.argsort(np.where(proposal, row, np.iinfo(np.int64).max), axis=1,
                           kind="stable")
        value = np.take_along_axis(np.where(proposal, value, 0.0), order, axis=1)
        return np.cumsum(np.concatenate((np.zeros((len(env), 1)), value), axis=1), axis=1)[:, -1]

    def _match_flags(self, env, manual, calibration, bias) -> None:
        """The rule audit's match-level findings (track A's miscalibration and bias) into
        ``_truth``, for matches with manual verdicts (``_finish``'s reading of its calibration
        bins and of ``_bias``)."""
        by_hand = manual.any(axis=1)
        over = (calibration.n >= audit.MIN_BIN) & \
            (calibration.mean - calibration.accuracy > audit.OVERCONFIDENCE_GAP)
        self._truth[env, 0, 0, _A["miscalibration"]] = by_hand & over.any(axis=1)
        r_n, r_rej, p_n, p_rej = bias.T
        enough = (r_n >= audit.MIN_BIN) & (p_n >= audit.MIN_BIN)
        gap = np.abs(r_rej / np.maximum(r_n, 1) - p_rej / np.maximum(p_n, 1))
        self._truth[env, 0, 0, _A["bias"]] = by_hand & enough & (gap > audit.BIAS_GAP)

    def _truth_flags(self, env: np.ndarray) -> list[set]:
        """The rule audit's findings of the matches ``env`` as their referees keep them."""
        k = len(env)
        j, flat = np.nonzero(self._truth[env].reshape(k, -1))
        names = _FLAG_NAME[flat].tolist()
        bounds = np.searchsorted(j, np.arange(k + 1)).tolist()
        return [set(names[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def _show_auditor(self, env, present, manual, verdict, row, label, severity, conflict,
                      bias, calibration) -> None:
        """The auditor's view of the record (``_fill_auditor_record``) and its first mask."""
        st, rows = self.state, self.state.rows
        buf, at = self.buffers["auditor"], self._views["auditor"].at
        k = len(env)
        e2 = env[:, None]

        def put(name, values):
            buf[env, slice(*at[name])] = values

        put("manual", manual)
        put("proposal", st.is_proposal[env])
        pulled = st.pulled[env]
        put("pulled", pulled.reshape(k, -1))
        put("lexical", st.lexical[env].reshape(k, -1))
        put("present", present)
        put("label", _one_hot(present, label, 3).reshape(k, -1))
        put("status", _one_hot(present, verdict.astype(np.int64) + 1, 4).reshape(k, -1))
        put("confidence", np.where(present, st.confidence[env], 0.0))
        put("severity", np.where(present, severity, 0.0))
        category = rows.category[e2, row]
        put("category", _one_hot(present, category, len(CATEGORIES)).reshape(k, -1))
        evidence = np.clip(rows.evidence[e2, row] / EVIDENCE_SCALE, -OBS_BOUND, OBS_BOUND)
        put("evidence", np.where(pulled & present[:, :, None], evidence, 0.0).reshape(k, -1))
        put("link_conflict", conflict)
        cues = np.zeros((k, S, len(TRACK_B_CUES)), np.float32)
        for flag, column in _CUE_COLUMN:
            cues[:, :, column] = self._truth[env, 1, 1:, flag] & st.is_proposal[env]
        put("track_b_cues", cues.reshape(k, -1))
        put("calibration", np.stack((calibration.n / S, calibration.mean, calibration.accuracy),
                                    axis=2).reshape(k, -1))
        r_n, r_rej, p_n, p_rej = bias.T
        put("bias", np.stack((r_n / S, _share(r_rej, r_n), p_n / S, _share(p_rej, p_n)), axis=1))
        mask = self.masks["auditor"]
        n_a, n_b = len(AUDIT_TRACK_A), len(AUDIT_TRACK_B)
        flag_a = np.zeros((k, S + 1, n_a), np.int8)
        flag_a[:, 0] = 1
        flag_a[:, 1:] = present[:, :, None]
        mask[env, A_FLAG_A:A_FLAG_B] = flag_a.reshape(k, -1)
        mask[env, A_FLAG_B:A_SUBMIT] = np.repeat(present, n_b, axis=1)
        self._full[env] = True


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """``part / whole``, 0 where ``whole`` is 0."""
    return np.divide(part, whole, out=np.zeros(len(part)), where=whole > 0)


class _Calibration:
    """The calibration bins of k matches' manual verdicts (``scoring.calibration_bins``: count,
    mean confidence and accuracy per bin, each (k, bins)) and their skill
    (``scoring.calibration_skill``, (k,)), as arrays. The same floats: each bin's confidences
    are summed one by one in slot order (a running sum over the slots, zero where a slot is not
    in the bin), and the skill from the same exactly rounded sums as ``calibration_skill``."""

    _BINS = np.arange(len(scoring.CALIBRATION_BINS) + 1)

    def __init__(self, confidence: np.ndarray, manual: np.ndarray, right: np.ndarray):
        conf = confidence.astype(np.float64)
        b = np.searchsorted(np.asarray(scoring.CALIBRATION_BINS), conf, side="right")
        in_bin = manual[:, None, :] & (b[:, None, :] == self._BINS[None, :, None])
        self.n = np.count_nonzero(in_bin, axis=2)
        total = np.cumsum(np.where(in_bin, conf[:, None, :], 0.0), axis=2)[:, :, -1]
        hits = np.count_nonzero(in_bin & right[:, None, :], axis=2)
        self.mean = np.divide(total, self.n, out=np.zeros(total.shape), where=self.n > 0)
        self.accuracy = np.divide(hits, self.n, out=np.zeros(total.shape), where=self.n > 0)
        self.skill = self._skill(conf, manual, right)

    def _skill(self, conf, manual, right) -> np.ndarray:
        """Each match's ``calibration_skill``: its squared errors (each worked out once per
        confidence seen and outcome, as ``calibration_skill`` writes it) summed exactly
        (``math.fsum``; the zeros of the slots without a manual verdict add nothing), then
        ``scoring.brier_skill``."""
        values = np.unique(conf[manual])
        k, j = np.nonzero(manual)
        squared = np.zeros(conf.shape)
        if len(values):
            table = np.asarray([[(v - ok) ** 2 for ok in (False, True)] for v in values.tolist()])
            squared[k, j] = table[np.searchsorted(values, conf[k, j]), right[k, j].astype(np.int64)]
        hits = np.count_nonzero(manual & right, axis=1).tolist()
        return np.asarray([
            scoring.brier_skill(n, h, math.fsum(row)) if n >= scoring.MIN_CALIBRATION_VERDICTS
            else 0.0 for n, h, row in zip(self.n.sum(axis=1).tolist(), hits, squared.tolist())])

    def bins(self) -> list[list[tuple[int, float, float]]]:
        """Each match's bins as ``scoring.calibration_bins`` lists them."""
        return [list(zip(*columns)) for columns in zip(
            self.n.tolist(), self.mean.tolist(), self.accuracy.tolist())]


# each finding's (flag type, ad id or None), by its flat index in a match's ``_truth``
_FLAG_NAME = np.empty((2, S + 1, _N_FLAGS), object)
for _track, _flags in enumerate((AUDIT_TRACK_A, AUDIT_TRACK_B)):
    for _i, _flag in enumerate(_flags):
        for _slot1 in range(S + 1):
            _FLAG_NAME[_track, _slot1, _i] = (_flag, None if _slot1 == 0 else AD_IDS[_slot1 - 1])
_FLAG_NAME = _FLAG_NAME.reshape(-1)


def _one_hot(present: np.ndarray, index: np.ndarray, width: int) -> np.ndarray:
    """(k, S, width): a one at ``index`` for each present ad."""
    out = np.zeros(present.shape + (width,), np.float32)
    k, s = np.nonzero(present)
    out[k, s, index[k, s]] = 1.0
    return out


__all__ = ["BatchedEnd"]
