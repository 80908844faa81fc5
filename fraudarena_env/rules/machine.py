"""The turn and phase machine of one match: turns that end, ads that arrive, the end of play.

``MatchMachine`` is a mixin of ``rules.referee.Referee``: what happens between the roles' own
actions (``rules.fraudster``, ``rules.investigator``, ``rules.auditor``): a turn ends when its
cap is reached, the next round admits the organic ads due in it, and play ends (every end path
auto-approves what is pending, scores, audits and hands the match to the auditor).
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np

from . import audit, scoring
from .catalog import AD_IDS, CATEGORIES, CORRECT_VERDICT, TARGETS, TRUST_PHRASES
from .events import FINISHED, AdsArrived, Stamp, VerdictGiven
from .evidence import evidence_fields
from .fraudster import may_arrive_later
from .generator import U
from .lexicon import lexical_features
from .roles import END_TURN
from .state import A, F, I  # noqa: F401  (role indices)

_TARGET_RANGE = range(len(TARGETS))

@lru_cache(maxsize=4096)
def template_text(category: int, body: int, n_markers: int, start: int) -> str:
    """A template ad's copy: a body and ``n_markers`` risk phrases from ``start`` on.
    Memoised: the same copy recurs across matches.

    This text is game state, not presentation, so it stays in the rules: an ad's copy decides
    its lexical features (``lexical_features``, which the observation shows) and the rule
    audit's plausibility of a proposal (``audit.track_b``, which sets the fraudster's reward
    and the auditor's true flags). Only copy is built here; how a match reads to a player is
    ``faces.narration``'s."""
    cat = CATEGORIES[category]
    text = cat.bodies[body]
    if n_markers:
        picks = [cat.markers[(start + 2 * k) % len(cat.markers)] for k in range(n_markers)]
        text = text + " " + " ".join(picks)
    return text


class MatchMachine:
    """The turn and phase machine: turns that end, ads that arrive, and the end of play. A mixin of
    ``rules.referee.Referee``: its methods act on one match through the referee's attributes."""

    def stamp(self) -> Stamp:
        """When an action is taken, for its event: the step count (a logical clock, so the
        record replays identically), the round and the phase."""
        return Stamp(self.step_count, self.round_number, self.phase)

    def _count_turn_action(self, idx: int) -> None:
        self.actions_this_turn += 1
        if self.actions_this_turn >= self.caps[idx]:
            END_TURN[idx](self)

    def _check_all_decided(self, reason: str) -> bool:
        """End play when nothing is pending and nothing more can arrive."""
        if self.phase != "investigator_turn":
            return False
        if self.n_arrived > self.n_manual:  # during play every verdict is a manual one
            return False
        if self.n_base_arrived < self.ep.n_base:
            return False
        if may_arrive_later(self.committed, self.proposals_used, self.max_proposals,
                            self.round_number + 1, self.max_rounds) and self.proposal_room():
            return False
        self._finish(reason)
        return True

    # ------------------------------------------------------------------ arrivals and the end
    def _arrive_base(self, round_number: int) -> None:
        """Admit the base ads due by this round, all at once."""
        rows, n = self.rows, self.ep.n_base
        first = self.n_base_arrived
        last = first
        while last < n and rows.arrival_round[last] <= round_number:
            last += 1
        if last == first:
            return
        k = last - first
        slots = self.ep.slot_order[self.n_arrived:self.n_arrived + k]
        self.n_base_arrived = last
        self.n_arrived += k
        self.slot_row[slots] = np.arange(first, last)
        self.present[slots] = True
        self.arrived[slots] = round_number
        slots = slots.tolist()
        for slot, category, body, markers, u_marker, u_target, blurb in zip(
                slots, rows.category[first:last].tolist(), rows.body[first:last].tolist(),
                rows.markers[first:last].tolist(), rows.uniform[first:last, U.MARKER_START].tolist(),
                rows.uniform[first:last, U.TARGETING].tolist(), rows.blurb[first:last].tolist()):
            cat = CATEGORIES[category]
            copy = self._template_copy(category, body, markers, u_marker)
            self.copy[slot] = copy
            self.blurb[slot] = TRUST_PHRASES[blurb] if blurb >= 0 else ""
            self.targeting[slot] = cat.targeting[int(u_target * len(cat.targeting))]
            self.lexical[slot] = lexical_features(copy)
        self.changes.append(AdsArrived(tuple(slots)))

    def _arrive(self, row: int, copy: str, blurb: str, targeting: str) -> int:
        slot = int(self.ep.slot_order[self.n_arrived])
        self.n_arrived += 1
        self.slot_row[slot] = row
        self.present[slot] = True
        self.arrived[slot] = self.round_number
        self.copy[slot] = copy
        self.blurb[slot] = blurb
        self.targeting[slot] = targeting
        self.lexical[slot] = lexical_features(copy)
        self.changes.append(AdsArrived((slot,)))
        return slot

    @staticmethod
    def _template_copy(category: int, body: int, n_markers: int, u_marker: float) -> str:
        cat = CATEGORIES[category]
        return template_text(category, body % len(cat.bodies), n_markers,
                              int(u_marker * len(cat.markers)))

    def _finish(self, reason: str) -> None:
        """End of play: auto-approve what is pending, score, audit, hand over to the auditor."""
        self.end_reason = reason
        if reason == "budget_exhausted":
            # Running out of budget does not stop the queue: the organic ads still to come
            # arrive, and are approved unreviewed with everything else pending.
            self._arrive_base(self.max_rounds)
        rows = self.rows
        pending = self.pending_slots()
        self.verdict[pending] = 0
        self.confidence[pending] = 0.0
        # Plain lists from here on: the queue is short, and numpy scalars are slow one by one.
        slot_row, verdict = self.slot_row.tolist(), self.verdict.tolist()
        manual = self.manual.tolist()
        label, severity = rows.label.tolist(), rows.severity.tolist()
        auto_reward = 0.0
        for s in pending.tolist():
            self.changes.append(VerdictGiven(s))
            auto_reward += scoring.verdict_reward(0, label[slot_row[s]], severity[slot_row[s]])
        ring = rows.ring.tolist()
        correct = wrong = 0
        for a, b in self.links:
            ra, rb = ring[slot_row[a]], ring[slot_row[b]]
            if ra >= 0 and ra == rb:
                correct += 1
            else:
                wrong += 1
        present = self.present.nonzero()[0]
        prow = self.slot_row[present]
        # How well the manual verdicts' confidence matched their accuracy, per bin: the grader,
        # the rule audit and the auditor's observation all read these.
        by_hand = self.manual.nonzero()[0].tolist()
        confidence = self.confidence[by_hand].tolist()
        right = [verdict[s] == CORRECT_VERDICT[label[slot_row[s]]] for s in by_hand]
        self.calibration = scoring.calibration_bins(confidence, right)
        self.grader_score, self.grader_terms = scoring.grade(
            self.task.task_id, rows.label[prow].tolist(), rows.severity[prow].tolist(),
            self.verdict[present].tolist(), scoring.calibration_skill(confidence, right),
            correct, wrong, self.n_ring_pairs)
        category = rows.category.tolist()
        proposals = [audit.ProposalText(AD_IDS[s], category[slot_row[s]], self.copy[s],
                                        self.blurb[s], self.targeting[s])
                     for s in self.proposal_slots]
        flags_b, self.plausibility = audit.track_b(proposals)
        arrived, decided_round = self.arrived.tolist(), self.decided_round.tolist()
        fraud_reward = 0.0
        for s in self.proposal_slots:
            decided = decided_round[s] if manual[s] else self.round_number
            reach = scoring.proposal_reach(verdict[s], arrived[s], decided, self.max_rounds)
            fraud_reward += scoring.fraudster_outcome(verdict[s], severity[slot_row[s]],
                                                      self.plausibility[AD_IDS[s]], reach)
        self.truth_flags = flags_b | audit.track_a(self._verdict_records(),
                                                   [(AD_IDS[a], AD_IDS[b])
                                                    for a, b in self.links],
                                                   self._revealed_values(), self.calibration)
        self.terminal = [fraud_reward, auto_reward, 0.0]
        self.phase = "audit_phase"
        self.changes.append(FINISHED)
        self.actions_this_turn = 0

    def _verdict_records(self) -> list[audit.VerdictRecord]:
        """The manual verdicts, in the order they were given."""
        order = self.decided_order.tolist()
        slots = sorted(self.manual.nonzero()[0].tolist(), key=order.__getitem__)
        # Plain lists of just these ads: numpy scalars are slow one by one.
        at, rows = np.asarray(slots, np.intp), self.rows
        row_at = self.slot_row[at]
        out = []
        for s, verdict, confidence, label, category, pulled_flags, signals in zip(
                slots, self.verdict[at].tolist(), self.confidence[at].tolist(),
                rows.label[row_at].tolist(), rows.category[row_at].tolist(),
                self.pulled[at].tolist(), rows.evidence[row_at].tolist()):
            pulled = tuple(itertools.compress(_TARGET_RANGE, pulled_flags))
            out.append(audit.VerdictRecord(
                AD_IDS[s], verdict, confidence, self.rationale[s], label, category, pulled,
                tuple([signals[t] for t in pulled]), order[s]))
        return out

    def _revealed_values(self) -> dict[str, list[str]]:
        out = {}
        for s in self.manual.nonzero()[0].tolist():
            if not self.rationale[s]:  # only a written rationale is checked for citations
                continue
            vals = []
            for t in self.pulled[s].nonzero()[0].tolist():
                vals += [str(v) for v in evidence_fields(self.rows, self.slot_row[s], t)
                         .values() if isinstance(v, str)]
            out[AD_IDS[s]] = vals
        return out
