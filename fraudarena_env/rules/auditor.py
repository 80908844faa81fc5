"""The auditor's rules: which flags it may raise now, and why not.

A flag needs flags left (``MAX_AUDITOR_ACTIONS``), a flag type of its track, and its ad in the
queue (or no ad: a flag on the match as a whole). Raising a flag again is legal (it is answered,
and counts once) but earns nothing, so the tensor face does not offer it: ``legal_mask`` leaves
repeats out, ``explain`` accepts them. ``submit`` is always legal in the audit phase.
"""

from __future__ import annotations

import numpy as np

from .action_catalog import A_FLAG_A, A_FLAG_B, A_SUBMIT, N_ACTIONS, S
from .actions import Flag, Submit
from .catalog import AD_IDS, AUDIT_TRACK_A, AUDIT_TRACK_B, MAX_AUDITOR_ACTIONS
from .checks import Check, holds_all
from .state import MatchState, Phase, Track

ROLE = "auditor"
_TRACK_A, _TRACK_B = int(Track.A), int(Track.B)
PHASE = int(Phase.AUDIT_PHASE)  # a plain int: compared with numpy arrays


def track_flags(track: str) -> tuple[str, ...]:
    """The flag types of a track ("A"; anything else is track B)."""
    return AUDIT_TRACK_A if track == "A" else AUDIT_TRACK_B


FLAGS_LEFT = Check(
    "flags_left", lambda st, m, op: st.auditor_actions[m] < MAX_AUDITOR_ACTIONS,
    lambda st, m, op: f"no flags left ({MAX_AUDITOR_ACTIONS} raised); submit the report")
FLAG_OF_TRACK = Check(
    "flag_of_track", lambda st, m, op: op.flag_type in track_flags(op.track),
    lambda st, m, op: f"flag_type {op.flag_type!r} is not a track {op.track} flag", form=True)
TARGET_IN_QUEUE = Check(
    "target_in_queue", lambda st, m, op: (op.slot < 0) | st.present[m, op.slot],
    lambda st, m, op: f"{AD_IDS[op.slot]} is not in the queue")

# What each kind of op must meet, in the order a refusal names the first failure.
CHECKS = {Flag: (FLAGS_LEFT, FLAG_OF_TRACK, TARGET_IN_QUEUE), Submit: ()}


def claim_index(op: Flag) -> tuple[int, int, int]:
    """Where ``state.claimed`` records a flag: (track, slot + 1, flag type)."""
    track = _TRACK_A if op.track == "A" else _TRACK_B
    return track, op.slot + 1, track_flags(op.track).index(op.flag_type)


def repeats(st: MatchState, m: int, op) -> bool:
    """Whether ``op`` is a flag already raised in match ``m``."""
    return type(op) is Flag and bool(st.claimed[(m, *claim_index(op))])


_A_GRID = Flag("A", np.arange(-1, S)[:, None], AUDIT_TRACK_A[0])
_B_GRID = Flag("B", np.arange(S)[:, None], AUDIT_TRACK_B[0])


def legal_mask(st: MatchState, out: np.ndarray | None = None) -> np.ndarray:
    """(N, actions) int8: the flags the auditor may usefully raise in every match (legal and not
    raised yet), and submit; zeros off its turn."""
    n = st.n
    out = np.zeros((n, N_ACTIONS[ROLE]), np.int8) if out is None else out
    m = np.arange(n)[:, None, None]
    turn = (st.phase == PHASE)[:, None, None]
    n_a, n_b = len(AUDIT_TRACK_A), len(AUDIT_TRACK_B)
    flag_a = holds_all(CHECKS[Flag], st, m, _A_GRID, (n, S + 1, n_a))
    flag_a &= ~st.claimed[:, _TRACK_A, :, :n_a] & turn
    out[:, A_FLAG_A:A_FLAG_B] = flag_a.reshape(n, -1)
    flag_b = holds_all(CHECKS[Flag], st, m, _B_GRID, (n, S, n_b))
    flag_b &= ~st.claimed[:, _TRACK_B, 1:, :n_b] & turn
    out[:, A_FLAG_B:A_SUBMIT] = flag_b.reshape(n, -1)
    out[:, A_SUBMIT] = turn[:, 0, 0]
    return out


__all__ = ["CHECKS", "PHASE", "ROLE", "claim_index", "legal_mask", "repeats", "track_flags"]
