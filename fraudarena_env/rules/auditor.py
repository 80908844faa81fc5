"""The auditor's rules: which flags it may raise now, and why not.

A flag needs flags left (``MAX_AUDITOR_ACTIONS``), a flag type of its track, and its ad in the
queue (or no ad: a flag on the match as a whole). Raising a flag again is legal on the text face
(it is answered, and counts once: the lineage's clients send one flag per finding, repeats
included) but earns nothing, so the tensor face neither offers nor takes it: ``legal_mask``
leaves repeats out and an index of one is refused (``REPEATED``, ``Referee.apply(masked=True)``),
while ``explain`` accepts them. ``submit`` is always legal in the audit phase.
"""

from __future__ import annotations

import numpy as np

from . import audit, scoring
from .action_catalog import A_FLAG_A, A_FLAG_B, A_SUBMIT, N_ACTIONS, S
from .actions import Flag, Op, Submit
from .catalog import AD_IDS, AUDIT_TRACK_A, AUDIT_TRACK_B, MAX_AUDITOR_ACTIONS
from .checks import Check, holds_all, index_check, unit_check
from .events import Flagged, FlagRaised, Submitted
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

TRACK = Check("track_known", lambda st, m, op: op.track in ("A", "B"),
              lambda st, m, op: f"track must be 'A' or 'B', got {op.track!r}", form=True)
SLOT = index_check("slot", -1, S, "-1 (the match as a whole) or an ad slot")
SEVERITY = unit_check("severity")

# What each kind of op must meet, in the order a refusal names the first failure (its form
# first, so that no state check reads the state at an index out of range).
CHECKS = {Flag: (TRACK, SLOT, SEVERITY, FLAGS_LEFT, FLAG_OF_TRACK, TARGET_IN_QUEUE), Submit: ()}


def claim_index(op: Flag) -> tuple[int, int, int]:
    """Where ``state.claimed`` records a flag: (track, slot + 1, flag type)."""
    track = _TRACK_A if op.track == "A" else _TRACK_B
    return track, op.slot + 1, track_flags(op.track).index(op.flag_type)


REPEATED = ("that flag was already raised: it counts once and earns nothing more, so the action "
            "mask does not offer it again")


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


class AuditorMoves:
    """What the auditor's actions do to a match: flags, and the report that ends it. A mixin of
    ``rules.referee.Referee``: its methods act on one match through the referee's attributes."""

    # auditor --------------------------------------------------------------
    def _apply_auditor(self, op: Op) -> float:
        if type(op) is Submit:
            self.audit_report = self._report(op.report)
            if self.recording:
                self.events.append(Submitted(self.stamp()))
            self.phase = "done"
            for i in range(3):
                self.step_rewards[i] += self.terminal[i]
            return 0.0
        track, slot, ftype = op.track, op.slot, op.flag_type
        self.auditor_actions += 1
        if (track, ftype, slot) in self.claimed:  # a repeat: answered, counted once
            if self.recording:
                self.events.append(Flagged(self.stamp(), track, slot, ftype, op.severity,
                                           op.note, 0.0, True, False))
            return 0.0
        self.claimed.add((track, ftype, slot))
        self.match_state.claimed[(self.index, *claim_index(op))] = True
        if slot >= 0 or track == "A":  # the tensor face has no index for a match-level B flag
            self.changes.append(FlagRaised(track, ftype, slot))
        target = AD_IDS[slot] if slot >= 0 else None
        true = (ftype, target) in self.truth_flags
        reward = scoring.AUDIT_TRUE_FLAG if true else scoring.AUDIT_FALSE_FLAG
        self.auditor_flags.append({"track": track, "target_ad_id": target, "flag_type": ftype,
                                   "severity": op.severity, "note": op.note or ""})
        if self.recording:
            self.events.append(Flagged(self.stamp(), track, slot, ftype, op.severity, op.note,
                                       reward, False, true))
        return reward

    def _report(self, submitted: dict | None) -> dict:
        a = [f for f in self.auditor_flags if f["track"] == "A"]
        b = [f for f in self.auditor_flags if f["track"] == "B"]
        truth_a = {f for f in self.truth_flags if f[0] in AUDIT_TRACK_A}
        plaus = [self.plausibility[AD_IDS[s]] for s in self.proposal_slots]
        report = {"track_a_flags": a, "track_b_flags": b,
                  "investigator_audit_score": audit.track_a_score(truth_a),
                  # np.mean's own sum and division, without its Python-level wrapper
                  "fraudster_plausibility_score": float(np.add.reduce(plaus)) / len(plaus)
                  if plaus else 1.0,
                  "notes": ""}
        if submitted:
            report["submitted"] = submitted
        return report


# the registry's entries (``rules.roles``), as in ``rules.fraudster``; the auditor has no turns
# (each of its actions uses up one of its flags), so no END_TURN
MOVES = AuditorMoves
APPLY = AuditorMoves._apply_auditor
END_TURN = None
EVENTS = (Flagged, Submitted)


__all__ = ["APPLY", "CHECKS", "END_TURN", "EVENTS", "MOVES", "PHASE", "REPEATED", "ROLE",
           "claim_index", "legal_mask", "repeats", "track_flags"]
