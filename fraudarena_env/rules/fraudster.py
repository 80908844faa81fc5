"""The fraudster's rules: which proposals and edits it may make now, and why not.

A proposal needs proposals left, room in the queue beyond the slots kept for organic ads still
to come, and an allowed category. An edit needs the ad to be the fraudster's own and still
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
from .actions import CommitFinal, EndTurn, Modify, Propose
from .catalog import AD_IDS, CATEGORIES, FRAUDSTER_EDITS, MAX_SLOTS, TACTICS
from .checks import Check, holds_all
from .state import Edit, MatchState, Phase

ROLE = "fraudster"
_SOFTEN, _TRUST = int(Edit.SOFTEN_COPY), int(Edit.ADD_TRUST_BLURB)
PHASE = int(Phase.FRAUDSTER_TURN)  # a plain int: compared with numpy arrays


def _allowed_names(st: MatchState, m: int) -> list[str]:
    return [CATEGORIES[c].name for c in np.flatnonzero(st.allowed[m])]


def queue_room(st: MatchState, m):
    """A new proposal needs a free slot beyond those kept for organic ads still to come."""
    return st.n_arrived[m] + (st.n_base[m] - st.n_base_arrived[m]) < MAX_SLOTS


PROPOSALS_LEFT = Check(
    "proposals_left", lambda st, m, op: st.proposals_used[m] < st.max_proposals[m],
    lambda st, m, op: f"no proposals left ({st.max_proposals[m]} used)")
QUEUE_ROOM = Check("queue_room", lambda st, m, op: queue_room(st, m),
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

# What each kind of op must meet, in the order a refusal names the first failure.
CHECKS = {
    Propose: (PROPOSALS_LEFT, QUEUE_ROOM, CATEGORY_ALLOWED),
    Modify: (MINE, UNDECIDED, PHRASE_TO_SOFTEN, NO_TRUST_BLURB_YET),
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


__all__ = ["CHECKS", "PHASE", "ROLE", "legal_mask", "queue_room"]
