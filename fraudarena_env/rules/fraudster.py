"""The fraudster's rules: which proposals and edits it may make now, and why not.

A proposal needs proposals left, a round before the last (organic ads arrive in every round but
the last, and so do proposals: an ad that arrived in the last round would be known for the
fraudster's), room in the queue beyond the slots kept for organic ads still to come, and an
allowed category. An edit needs the ad to be the fraudster's own and still
pending; softening needs a risk phrase left in the copy, a trust blurb needs none there yet.
``end_turn`` and ``commit_final`` are always legal on the fraudster's turn.
"""

from __future__ import annotations

import numpy as np

from .action_catalog import (
    F_COMMIT,
    F_END,
    F_MODIFY,
    F_PROPOSE,
    N_ACTIONS,
    N_CAT,
    S,
)
from .actions import CommitFinal, EndTurn, Modify, Op, Propose
from .catalog import (
    AD_IDS,
    CATEGORIES,
    ESCALATE,
    FRAUD,
    FRAUDSTER_EDITS,
    GRAY_CATEGORY,
    KIND_ESCALATE,
    LEGIT,
    MAX_SLOTS,
    SIG_CAMPAIGN,
    SIG_PAYMENT,
    TACTIC_SEVERITY,
    TACTICS,
    TARGET_INDEX,
    TRUST_PHRASES,
)
from .checks import Check, holds_all, index_check
from .events import AdEdited, Committed, Modified, Proposed, TurnEnded
from .generator import RingInfo, U, blurb_of, proposal_surface
from .lexicon import (
    count_risk_markers,
    count_trust_markers,
    has_injection_or_generator_token,
    is_gibberish,
    lexical_features,
)
from .state import Edit, F, MatchState, Phase

ROLE = "fraudster"
_SOFTEN, _TRUST = int(Edit.SOFTEN_COPY), int(Edit.ADD_TRUST_BLURB)
PHASE = int(Phase.FRAUDSTER_TURN)  # a plain int: compared with numpy arrays


def _allowed_names(st: MatchState, m: int) -> list[str]:
    return [CATEGORIES[c].name for c in np.flatnonzero(st.allowed[m])]


def queue_room(n_arrived, n_base, n_base_arrived):
    """A new proposal needs a free slot beyond those kept for organic ads still to come (numbers
    or arrays of them)."""
    return n_arrived + (n_base - n_base_arrived) < MAX_SLOTS


def proposals_open(round_number, max_rounds):
    """Round ``round_number`` takes proposals: every round but the last does, as every round but
    the last brings organic ads. The last round is left for the ads still pending; an ad that
    arrived in it would be known for a proposal, and a proposal is never legit."""
    return round_number < max_rounds


def may_propose(used, most, n_arrived, n_base, n_base_arrived, round_number, max_rounds):
    """A proposal is legal now, on the fraudster's turn of ``round_number`` (numbers or arrays):
    proposals left, the round open to them, room in the queue. The tensor mask, the text face's
    ``can_propose`` and the ``queue_room`` feature all read this."""
    return (used < most) & proposals_open(round_number, max_rounds) & \
        queue_room(n_arrived, n_base, n_base_arrived)


def may_arrive_later(committed, used, most, next_fraudster_round, max_rounds):
    """A proposal may still come, if the fraudster's next turn is in ``next_fraudster_round``
    (this round while it moves, else the next): it has not committed, has proposals left, and
    that round takes them (numbers or arrays)."""
    return (committed == 0) & (used < most) & proposals_open(next_fraudster_round, max_rounds)


PROPOSALS_LEFT = Check(
    "proposals_left", lambda st, m, op: st.proposals_used[m] < st.max_proposals[m],
    lambda st, m, op: f"no proposals left ({st.max_proposals[m]} used)")
ROUND_OPEN = Check(
    "round_open", lambda st, m, op: proposals_open(st.round_number[m], st.max_rounds[m]),
    lambda st, m, op: f"round {st.round_number[m]} is the last: it takes no new ads, only the "
                      "ones still pending (proposals close when the second-to-last round ends)")
QUEUE_ROOM = Check("queue_room", lambda st, m, op: queue_room(st.n_arrived[m], st.n_base[m],
                                                             st.n_base_arrived[m]),
                   lambda st, m, op: "the queue is full")
CATEGORY_ALLOWED = Check(
    "category_allowed", lambda st, m, op: st.allowed[m, op.category],
    lambda st, m, op: f"category {CATEGORIES[op.category].name!r} is not allowed; allowed: "
                      f"{_allowed_names(st, m)}")
MINE = Check("mine", lambda st, m, op: st.is_proposal[m, op.slot],
             lambda st, m, op: f"{AD_IDS[op.slot]} is not your proposal")
UNDECIDED = Check("undecided", lambda st, m, op: st.verdict[m, op.slot] < 0,
                  lambda st, m, op: f"{AD_IDS[op.slot]} already has a verdict and is locked")
PHRASE_TO_SOFTEN = Check(
    "phrase_to_soften",
    lambda st, m, op: (op.edit != _SOFTEN) |
    (st.rows.markers[m, st.slot_row[m, op.slot]] > 0),
    lambda st, m, op: f"{AD_IDS[op.slot]} has no risk phrase left to soften")
NO_TRUST_BLURB_YET = Check(
    "no_trust_blurb_yet",
    lambda st, m, op: (op.edit != _TRUST) | ~st.trusted[m, op.slot],
    lambda st, m, op: f"{AD_IDS[op.slot]} already carries a trust blurb")

CATEGORY = index_check("category", 0, N_CAT, "an index into catalog.CATEGORIES")
TACTIC = index_check("tactic", -1, len(TACTICS), f"-1 (free copy) or an index into {TACTICS}")
SLOT = index_check("slot", 0, S, "an ad slot")
EDIT = index_check("edit", -1, len(FRAUDSTER_EDITS),
                   f"-1 (a free rewrite) or an index into {FRAUDSTER_EDITS}")

# What each kind of op must meet, in the order a refusal names the first failure (its form
# first, so that no state check reads the state at an index out of range).
CHECKS = {
    Propose: (CATEGORY, TACTIC, PROPOSALS_LEFT, ROUND_OPEN, QUEUE_ROOM, CATEGORY_ALLOWED),
    Modify: (SLOT, EDIT, MINE, UNDECIDED, PHRASE_TO_SOFTEN, NO_TRUST_BLURB_YET),
    EndTurn: (),
    CommitFinal: (),
}

_PROPOSE_GRID = Propose(np.arange(N_CAT)[:, None], np.zeros((1, len(TACTICS)), np.int64))
_MODIFY_GRID = Modify(np.arange(S)[:, None], np.arange(len(FRAUDSTER_EDITS))[None, :])


def legal_mask(st: MatchState, out: np.ndarray | None = None) -> np.ndarray:
    """(N, actions) int8: the fraudster's legal actions in every match (zeros off its turn)."""
    n = st.n
    out = np.zeros((n, N_ACTIONS[ROLE]), np.int8) if out is None else out
    m = np.arange(n)[:, None, None]
    turn = (st.phase == PHASE)[:, None, None]
    propose = holds_all(CHECKS[Propose], st, m, _PROPOSE_GRID, (n, N_CAT, len(TACTICS)))
    out[:, F_PROPOSE:F_MODIFY] = (propose & turn).reshape(n, -1)
    modify = holds_all(CHECKS[Modify], st, m, _MODIFY_GRID, (n, S, len(FRAUDSTER_EDITS)))
    out[:, F_MODIFY:F_END] = (modify & turn).reshape(n, -1)
    out[:, F_END] = out[:, F_COMMIT] = turn[:, 0, 0]
    return out


TRUST_SHIFT = 0.5  # a trust blurb makes the landing page look this much cleaner

SOFTEN_SEVERITY = 0.9

JUNK_CLASSIFIER_SHIFT = 2.0  # gibberish or injected copy trips the policy classifier

CAMOUFLAGED = TACTICS.index("camouflaged")
OWN_SIGNALS = (SIG_PAYMENT, SIG_CAMPAIGN)  # what the fraudster's network proposals share


def drop_one_risk_phrase(text: str) -> str:
    """The copy with its first risk phrase taken out (the soften edit). Game state, as template
    copy is (``machine.template_text``): the copy decides the ad's lexical features and the
    rule audit's plausibility."""
    from .catalog import RISK_PHRASES

    low = text.lower()
    for p in RISK_PHRASES:
        i = low.find(p)
        if i >= 0:
            j = i + len(p)
            while j < len(text) and text[j] in "!. ":
                j += 1
            return (text[:i] + text[j:]).strip()
    return text


class FraudsterMoves:
    """What the fraudster's actions do to a match: proposals, edits and the end of its turn. A mixin of
    ``rules.referee.Referee``: its methods act on one match through the referee's attributes."""

    # fraudster -----------------------------------------------------------
    def _apply_fraudster(self, op: Op) -> float:
        kind = type(op)
        if kind is Propose:
            slot = self._propose(op)
            if self.recording:
                self.events.append(Proposed(self.stamp(), slot, op.rationale, self.copy[slot],
                                            self.blurb[slot], self.targeting[slot]))
        elif kind is Modify:
            slot = op.slot
            self._modify(op)
            if self.recording:
                self.events.append(Modified(self.stamp(), slot, op.edit, op.new_ad_copy,
                                            op.new_landing_page_blurb, self.copy[slot],
                                            self.blurb[slot], self.targeting[slot]))
        elif self.recording:
            self.events.append(TurnEnded(self.stamp(), F) if kind is EndTurn
                               else Committed(self.stamp()))
        if kind is EndTurn:
            self._end_fraudster_turn()
        elif kind is CommitFinal:
            self.committed = True
            self._end_fraudster_turn()
        else:
            self._count_turn_action(F)
        return 0.0

    def _propose(self, op: Propose) -> int:
        category, tactic, copy = op.category, op.tactic, op.ad_copy
        blurb, targeting = op.landing_page_blurb, op.targeting_summary
        rows, ep = self.rows, self.ep
        row = ep.n_base + self.proposals_used
        self.proposals_used += 1
        cat = CATEGORIES[category]
        u = rows.uniform[row]
        free_markers = None
        if copy is not None:
            free_markers = count_risk_markers(copy)
            tactic = max(0, 3 - min(free_markers, 3))
            junk = is_gibberish(copy) or has_injection_or_generator_token(copy)
        if targeting is None:
            targeting = cat.targeting[int(u[U.TARGETING] * len(cat.targeting))]
        label = ESCALATE if category == GRAY_CATEGORY else FRAUD
        rows.label[row] = label
        rows.category[row] = category
        rows.severity[row] = cat.base_severity * TACTIC_SEVERITY[tactic]
        rows.arrival_round[row] = self.round_number
        reuse = sum(self.rows.tactic.item(self.slot_row.item(s)) == tactic
                    for s in self.proposal_slots)
        proposal_surface(tactic, row, ep, free_markers, reuse)
        if label == ESCALATE:  # gray-area copy reads as gray area, whatever the tactic
            rows.kind[row] = KIND_ESCALATE
        if copy is None:
            # Template copy is drawn exactly as an organic ad's: the category's bodies and as
            # many risk phrases as the tactic's surface drew; a camouflaged ad carries a trust
            # blurb as often as an organic legit ad does, the others as often as organic fraud.
            copy = self._template_copy(category, int(u[U.BODY] * 3), int(rows.markers[row]),
                                       float(u[U.MARKER_START]))
            if blurb is None:
                b = blurb_of(LEGIT if tactic == CAMOUFLAGED else FRAUD, float(u[U.BLURB]),
                             float(u[U.TRUST_PHRASE]))
                blurb = TRUST_PHRASES[b] if b >= 0 else ""
        if free_markers is not None and junk:  # the policy classifier sees through junk copy
            rows.evidence[row, TARGET_INDEX["policy_classifier"]] += JUNK_CLASSIFIER_SHIFT
        self._join_ring_if_network(row)
        slot = self._arrive(row, copy, blurb or "", targeting)
        self.is_proposal[slot] = True
        self.proposal_slots.append(slot)
        if blurb and count_trust_markers(blurb):
            self.trusted[slot] = True  # a blurb it was proposed with changes no evidence
        return slot

    def _join_ring_if_network(self, row: int) -> None:
        """Network proposals reuse the fraudster's own payment and campaign infrastructure."""
        if CATEGORIES[self.rows.category.item(row)].family != "network":
            return
        if self.fraudster_ring < 0:
            self.fraudster_ring = len(self.rings)
            self.rings.append(RingInfo(self.fraudster_ring, "clique", [], OWN_SIGNALS))
        ring = self.rings[self.fraudster_ring]
        ring.members.append(row)
        self.rows.ring[row] = self.fraudster_ring
        for signal in OWN_SIGNALS:
            self.rows.tokens[row, signal] = self.ep.proposal_ring_tokens[signal]

    def _modify(self, op: Modify) -> None:
        slot, edit, new_copy, new_blurb = op.slot, op.edit, op.new_ad_copy, \
            op.new_landing_page_blurb
        row = self.slot_row[slot]
        rows = self.rows
        if edit == _SOFTEN:
            self.copy[slot] = drop_one_risk_phrase(self.copy[slot])
            rows.markers[row] = max(0, rows.markers[row] - 1)
            rows.severity[row] *= SOFTEN_SEVERITY
        elif edit == _TRUST:
            phrase = int(rows.uniform[row, U.TRUST_PHRASE] * len(TRUST_PHRASES))
            self.blurb[slot] = TRUST_PHRASES[phrase]
            self._trust(slot)
        if new_copy is not None:
            self.copy[slot] = new_copy
            rows.markers[row] = min(count_risk_markers(new_copy), 9)
        if new_blurb is not None:
            self.blurb[slot] = new_blurb
            if count_trust_markers(new_blurb) and not self.trusted[slot]:
                self._trust(slot)
        self.lexical[slot] = lexical_features(self.copy[slot])
        self.changes.append(AdEdited(slot))

    def _trust(self, slot: int) -> None:
        self.trusted[slot] = True
        self.rows.evidence[self.slot_row[slot], TARGET_INDEX["landing_page"]] -= TRUST_SHIFT
        self.changes.append(AdEdited(slot))

    def _end_fraudster_turn(self) -> None:
        self.phase = "investigator_turn"
        self.actions_this_turn = 0
        self.close_if_all_decided()

    def close_if_all_decided(self) -> None:
        """After the fraudster's turn: end play if nothing is left to decide."""
        self._check_all_decided("commit_final" if self.committed else "all_decided")


# the registry's entries (``rules.roles``): what an op does, how a full turn ends, and the kinds of
# event the role's actions record
MOVES = FraudsterMoves
APPLY = FraudsterMoves._apply_fraudster
END_TURN = FraudsterMoves._end_fraudster_turn
EVENTS = (Proposed, Modified, Committed)


__all__ = ["APPLY", "CHECKS", "END_TURN", "EVENTS", "MOVES", "PHASE", "ROLE", "legal_mask",
           "may_arrive_later", "may_propose", "proposals_open", "queue_room"]
