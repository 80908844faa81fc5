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

The vector env plays the tensor face, where verdicts carry no rationale: track A's citation
check reduces to "a decisive verdict with nothing pulled", and no rationale is shown.
"""

from __future__ import annotations

import numpy as np

from .faces.encoding import EVIDENCE_SCALE, OBS_BOUND, TRACK_B_CUES
from .rules import audit, scoring
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
_CUE_COLUMN = [(_B[flag], i) for i, flag in enumerate(TRACK_B_CUES)]
BUDGET_EXHAUSTED = END_REASONS.index("budget_exhausted")
_CORRECT = np.asarray(CORRECT_VERDICT)  # by label


class BatchedEnd:
    """A mixin of ``VectorFraudArena``: ``_finish_batch``."""

    def _finish_batch(self, env: np.ndarray, reason: np.ndarray) -> None:
        """End play in ``env`` (each with its ``END_REASONS`` code), as ``_finish`` would, and
        show the auditor the record."""
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
        matches = env.tolist()
        right = verdict == _CORRECT[label]
        calibration = [self._calibration(m, manual[j], right[j]) for j, m in enumerate(matches)]
        grades = scoring.grade_batch(
            [self.task_ids[m] for m in matches], label, severity, verdict, present,
            [skill for _, skill in calibration], correct, wrong,
            [self.referees[m].n_ring_pairs for m in matches])
        records = [self._score_one(m, manual[j], verdict[j], float(auto[j]), bias[j],
                                   calibration[j][0], grades[j])
                   for j, m in enumerate(matches)]
        for m, record, flags in zip(matches, records, self._truth_flags(env)):
            self.referees[m].record_finish(**record, truth_flags=flags)
        st.phase[env] = Phase.AUDIT_PHASE
        st.actions_this_turn[env] = 0
        self._show_auditor(env, present, manual, verdict, row, label, severity, conflict, bias)

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

    def _calibration(self, m, manual, right) -> tuple[list, float]:
        """Match ``m``'s calibration bins and skill over its manual verdicts (``right``: (S,)
        whether each slot's verdict was the correct one)."""
        by_hand = np.flatnonzero(manual).tolist()
        confidence = self.state.confidence[m, by_hand].tolist()
        right = right[by_hand].tolist()
        return (scoring.calibration_bins(confidence, right),
                scoring.calibration_skill(confidence, right))

    def _score_one(self, m, manual, verdict, auto, bias, calibration, grade) -> dict:
        """What ``_finish`` works out from short per-match lists: track B and the fraudster's
        outcome, the match-level flags (into ``_truth``). Returns match ``m``'s record for its
        referee (``record_finish``) with ``calibration`` and ``grade`` (its calibration bins,
        its grader score and terms, worked out in batch); the rule audit's findings are added
        once ``_truth`` is complete."""
        st, ref = self.state, self.referees[m]
        rows = st.rows
        slot_row = st.slot_row[m].tolist()
        severity = rows.severity[m].tolist()
        verdicts = verdict.tolist()
        grader_score, grader_terms = grade
        by_hand = bool(manual.any())
        category = rows.category[m].tolist()
        flags_b, plausibility = audit.track_b(
            [audit.ProposalText(AD_IDS[s], category[slot_row[s]], ref.copy[s], ref.blurb[s],
                                ref.targeting[s]) for s in ref.proposal_slots])
        arrived, decided_round = st.arrived[m].tolist(), st.decided_round[m].tolist()
        round_number, max_rounds = int(st.round_number[m]), int(st.max_rounds[m])
        fraud = 0.0
        for s in ref.proposal_slots:
            decided = decided_round[s] if manual[s] else round_number
            reach = scoring.proposal_reach(verdicts[s], arrived[s], decided, max_rounds)
            fraud += scoring.fraudster_outcome(verdicts[s], severity[slot_row[s]],
                                               plausibility[AD_IDS[s]], reach)
        terminal = [fraud, auto, 0.0]
        self._terminal[m] = terminal
        match = self._truth[m, 0, 0]
        if by_hand:
            match[_A["miscalibration"]] = any(
                n >= audit.MIN_BIN and c - a > audit.OVERCONFIDENCE_GAP
                for n, c, a in calibration)
            r_n, r_rej, p_n, p_rej = bias.tolist()
            match[_A["bias"]] = r_n >= audit.MIN_BIN and p_n >= audit.MIN_BIN and \
                abs(r_rej / r_n - p_rej / p_n) > audit.BIAS_GAP
        for flag, ad_id in flags_b:
            self._truth[m, 1, AD_IDS.index(ad_id) + 1, _B[flag]] = True
        return dict(calibration=calibration, grader_score=grader_score,
                    grader_terms=grader_terms, plausibility=plausibility, terminal=terminal,
                    end_reason=END_REASONS[int(st.end_reason[m])])

    def _truth_flags(self, env: np.ndarray) -> list[set]:
        """The rule audit's findings of the matches ``env`` as their referees keep them."""
        found = [set() for _ in range(len(env))]
        for j, track, slot1, i in zip(*(x.tolist() for x in np.nonzero(self._truth[env]))):
            flag = (AUDIT_TRACK_A, AUDIT_TRACK_B)[track][i]
            found[j].add((flag, None if slot1 == 0 else AD_IDS[slot1 - 1]))
        return found

    def _show_auditor(self, env, present, manual, verdict, row, label, severity, conflict,
                      bias) -> None:
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
        for j, m in enumerate(env.tolist()):
            buf[m, slice(*at["calibration"])] = [
                x for n, mean_conf, accuracy in self.referees[m].calibration
                for x in (n / S, mean_conf, accuracy)]
            r_n, r_rej, p_n, p_rej = bias[j].tolist()
            buf[m, slice(*at["bias"])] = (r_n / S, r_rej / r_n if r_n else 0,
                                          p_n / S, p_rej / p_n if p_n else 0)
        mask = self.masks["auditor"]
        n_a, n_b = len(AUDIT_TRACK_A), len(AUDIT_TRACK_B)
        flag_a = np.zeros((k, S + 1, n_a), np.int8)
        flag_a[:, 0] = 1
        flag_a[:, 1:] = present[:, :, None]
        mask[env, A_FLAG_A:A_FLAG_B] = flag_a.reshape(k, -1)
        mask[env, A_FLAG_B:A_SUBMIT] = np.repeat(present, n_b, axis=1)
        self._full[env] = True


def _one_hot(present: np.ndarray, index: np.ndarray, width: int) -> np.ndarray:
    """(k, S, width): a one at ``index`` for each present ad."""
    out = np.zeros(present.shape + (width,), np.float32)
    k, s = np.nonzero(present)
    out[k, s, index[k, s]] = 1.0
    return out


__all__ = ["BatchedEnd"]
