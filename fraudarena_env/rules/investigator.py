"""The investigator's rules: which reviews it may make now, and why not.

Every budgeted action (investigate, verdict, link) needs budget left and its ad in the queue;
an investigation needs the ad pending, a source not yet pulled for it and fewer than
``MAX_PULLS_PER_AD`` pulls; a verdict needs the ad pending; a link needs two different ads in the
queue that are not linked yet. ``end_turn`` is always legal on the investigator's turn.
"""

from __future__ import annotations

import numpy as np

from . import scoring
from .action_catalog import (
    I_END,
    I_INVESTIGATE,
    I_LINK,
    I_VERDICT,
    N_ACTIONS,
    N_T,
    N_VERDICT_OPS,
    PAIRS,
    S,
)
from .actions import EndTurn, Investigate, Link, Op, Verdict
from .catalog import AD_IDS, MAX_PULLS_PER_AD, TARGETS, VERDICTS
from .checks import Check, holds_all, index_check, unit_check
from .events import (
    AdsLinked,
    Decided,
    Linked,
    Pulled,
    SourcePulled,
    TurnEnded,
    VerdictGiven,
)
from .state import I, MatchState, Phase

ROLE = "investigator"
PHASE = int(Phase.INVESTIGATOR_TURN)  # a plain int: compared with numpy arrays

HAS_BUDGET = Check("has_budget", lambda st, m, op: st.budget[m] > 0,
                   lambda st, m, op: "the action budget is spent")
IN_QUEUE = Check("in_queue", lambda st, m, op: st.present[m, op.slot],
                 lambda st, m, op: f"{AD_IDS[op.slot]} is not in the queue")
PENDING = Check("pending", lambda st, m, op: st.verdict[m, op.slot] < 0,
                lambda st, m, op: f"{AD_IDS[op.slot]} already has a verdict")
SOURCE_NOT_PULLED = Check(
    "source_not_pulled", lambda st, m, op: ~st.pulled[m, op.slot, op.target],
    lambda st, m, op: f"{TARGETS[op.target]} was already pulled for {AD_IDS[op.slot]}")
PULLS_LEFT = Check(
    "pulls_left", lambda st, m, op: st.n_pulls[m, op.slot] < MAX_PULLS_PER_AD,
    lambda st, m, op: f"{AD_IDS[op.slot]} already had {MAX_PULLS_PER_AD} sources pulled")
TWO_ADS = Check("two_ads", lambda st, m, op: op.other != op.slot,
                lambda st, m, op: "cannot link an ad to itself", form=True)
OTHER_IN_QUEUE = Check("other_in_queue", lambda st, m, op: st.present[m, op.other],
                       lambda st, m, op: f"{AD_IDS[op.other]} is not in the queue")
NOT_LINKED = Check(
    "not_linked", lambda st, m, op: ~st.linked[m, op.slot, op.other],
    lambda st, m, op: f"{AD_IDS[op.slot]} and {AD_IDS[op.other]} are already linked")

SLOT = index_check("slot", 0, S, "an ad slot")
OTHER = index_check("other", 0, S, "an ad slot")
TARGET = index_check("target", 0, N_T, f"an index into {TARGETS}")
VERDICT = index_check("verdict", 0, len(VERDICTS), f"an index into {VERDICTS}")
CONFIDENCE = unit_check("confidence")

# What each kind of op must meet, in the order a refusal names the first failure (its form
# first, so that no state check reads the state at an index out of range).
CHECKS = {
    Investigate: (SLOT, TARGET, HAS_BUDGET, IN_QUEUE, PENDING, SOURCE_NOT_PULLED, PULLS_LEFT),
    Verdict: (SLOT, VERDICT, CONFIDENCE, HAS_BUDGET, IN_QUEUE, PENDING),
    Link: (SLOT, OTHER, HAS_BUDGET, IN_QUEUE, TWO_ADS, OTHER_IN_QUEUE, NOT_LINKED),
    EndTurn: (),
}

_SLOTS = np.arange(S)
_INVESTIGATE_GRID = Investigate(_SLOTS[:, None], np.arange(N_T)[None, :])
_VERDICT_GRID = Verdict(_SLOTS[None, :], 0, 0.0)
_LINK_GRID = Link(PAIRS[None, :, 0], PAIRS[None, :, 1])


def legal_mask(st: MatchState, out: np.ndarray | None = None) -> np.ndarray:
    """(N, actions) int8: the investigator's legal actions in every match (zeros off its
    turn)."""
    n = st.n
    out = np.zeros((n, N_ACTIONS[ROLE]), np.int8) if out is None else out
    m = np.arange(n)[:, None]
    turn = (st.phase == PHASE)[:, None]
    pulls = holds_all(CHECKS[Investigate], st, m[:, :, None], _INVESTIGATE_GRID, (n, S, N_T))
    out[:, I_INVESTIGATE:I_VERDICT] = (pulls & turn[:, :, None]).reshape(n, -1)
    verdicts = holds_all(CHECKS[Verdict], st, m, _VERDICT_GRID, (n, S)) & turn
    out[:, I_VERDICT:I_LINK] = np.repeat(verdicts, N_VERDICT_OPS, axis=1)
    out[:, I_LINK:I_END] = holds_all(CHECKS[Link], st, m, _LINK_GRID, (n, len(PAIRS))) & turn
    out[:, I_END] = turn[:, 0]
    return out


class InvestigatorMoves:
    """What the investigator's actions do to a match: pulls, verdicts, links and the end of its turn. A mixin of
    ``rules.referee.Referee``: its methods act on one match through the referee's attributes."""

    # investigator ---------------------------------------------------------
    def _apply_investigator(self, op: Op) -> float:
        kind = type(op)
        if kind is EndTurn:
            if self.recording:
                self.events.append(TurnEnded(self.stamp(), I))
            self._end_investigator_turn()
            return 0.0
        slot = op.slot
        self.budget -= 1
        if kind is Investigate:
            target = op.target
            self.pulled[slot, target] = True
            self.changes.append(SourcePulled(slot, target))
            self.n_pulls[slot] = self.n_pulls.item(slot) + 1
            reward = scoring.INVESTIGATE_COST
            if self.recording:
                signal = self.rows.evidence.item(self.slot_row.item(slot), target)
                self.events.append(Pulled(self.stamp(), slot, target, signal, reward))
        elif kind is Verdict:
            v, conf = op.verdict, op.confidence
            row = self.slot_row.item(slot)
            self.verdict[slot] = v
            self.changes.append(VerdictGiven(slot))
            self.confidence[slot] = conf
            self.manual[slot] = True
            self.decided_order[slot] = self.n_manual
            self.decided_round[slot] = self.round_number
            self.n_manual += 1
            self.rationale[slot] = op.rationale
            reward = scoring.verdict_reward(v, self.rows.label.item(row),
                                            self.rows.severity.item(row))
            if self.recording:
                self.events.append(Decided(self.stamp(), slot, v, conf, op.rationale, reward))
        else:
            other = op.other
            self.linked[slot, other] = self.linked[other, slot] = True
            self.links.append((slot, other))
            self.changes.append(AdsLinked(slot, other))
            ra, rb = self.rows.ring[self.slot_row[slot]], self.rows.ring[self.slot_row[other]]
            correct = ra >= 0 and ra == rb
            reward = scoring.LINK_CORRECT if correct else scoring.LINK_WRONG
            if self.recording:
                self.events.append(Linked(self.stamp(), slot, other, op.reason, reward))
        self.after_review()
        return reward

    def after_review(self) -> None:
        """What follows a budgeted review (pull, verdict, link): play ends when the budget is
        spent or nothing is left to decide, else the action counts against the turn."""
        if self.budget <= 0:
            self._finish("budget_exhausted")
        elif not self._check_all_decided("all_decided"):
            self._count_turn_action(I)

    def _end_investigator_turn(self) -> None:
        self.actions_this_turn = 0
        if self.round_number >= self.max_rounds:
            self._finish("max_rounds")
            return
        self.round_number += 1
        self._arrive_base(self.round_number)
        self.phase = "investigator_turn" if self.committed else "fraudster_turn"


# the registry's entries (``rules.roles``), as in ``rules.fraudster``
MOVES = InvestigatorMoves
APPLY = InvestigatorMoves._apply_investigator
END_TURN = InvestigatorMoves._end_investigator_turn
EVENTS = (Pulled, Decided, Linked)


__all__ = ["APPLY", "CHECKS", "END_TURN", "EVENTS", "MOVES", "PHASE", "ROLE", "legal_mask"]
