"""``MatchState``: the facts the rules decide by, as named arrays with a leading match axis.

Row ``m`` of every array is match ``m``; one match is ``N = 1`` (the referee's own state, whose
arrays are views of the referee's, so the two never disagree). The role modules
(``rules.fraudster``, ``rules.investigator``, ``rules.auditor``) read it: their legality checks
are written once, pointwise over ``(state, m, op)``, and numpy broadcasting evaluates the same
expression for one op of one match (``explain``) or for every op of every match (``legal_mask``).

Scalars per match are ``(N,)`` arrays; per-slot facts are ``(N, MAX_SLOTS, ...)``; per-ad-row
facts (``markers``) are ``(N, rows)``, indexed through ``slot_row``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np

from .catalog import AUDIT_TRACK_A, AUDIT_TRACK_B, CATEGORIES, MAX_SLOTS, PHASES, TARGETS


class Phase(IntEnum):
    """``PHASES`` by name: who acts now (or nobody, once the match is ``DONE``)."""
    FRAUDSTER_TURN = 0
    INVESTIGATOR_TURN = 1
    AUDIT_PHASE = 2
    DONE = 3


assert tuple(p.name.lower() for p in Phase) == PHASES  # one order, declared in the catalogue
# Plain ints from here on: numpy probes an enum member for array attributes on every use.
PHASE_OF = {p.name.lower(): int(p) for p in Phase}
# The phase in which each role acts.
ROLE_PHASE = {"fraudster": int(Phase.FRAUDSTER_TURN),
              "investigator": int(Phase.INVESTIGATOR_TURN), "auditor": int(Phase.AUDIT_PHASE)}


class Edit(IntEnum):
    """``FRAUDSTER_EDITS`` by name; ``REWRITE`` is a free-text edit only (no index stands for
    it)."""
    REWRITE = -1
    SOFTEN_COPY = 0
    ADD_TRUST_BLURB = 1


class Track(IntEnum):
    """The two audit tracks: faults of the investigator (A) and of the fraudster (B)."""
    A = 0
    B = 1


TRACK_FLAGS = {"A": AUDIT_TRACK_A, "B": AUDIT_TRACK_B}


@dataclass
class MatchState:
    """What legality reads, for ``n`` matches (see the module docstring)."""

    phase: np.ndarray  # (N,) int8, a ``Phase``
    budget: np.ndarray  # (N,) the investigator's actions left
    proposals_used: np.ndarray  # (N,)
    max_proposals: np.ndarray  # (N,)
    n_arrived: np.ndarray  # (N,) ads in the queue (slots taken)
    n_base: np.ndarray  # (N,) organic ads the match will have
    n_base_arrived: np.ndarray  # (N,) organic ads arrived so far
    auditor_actions: np.ndarray  # (N,) flags raised (repeats included)
    allowed: np.ndarray  # (N, categories) bool: categories the fraudster may propose in
    slot_row: np.ndarray  # (N, S) the ad row in each slot, -1 while empty
    present: np.ndarray  # (N, S) bool
    verdict: np.ndarray  # (N, S) int8, index into VERDICTS, -1 while pending
    pulled: np.ndarray  # (N, S, sources) bool
    n_pulls: np.ndarray  # (N, S)
    is_proposal: np.ndarray  # (N, S) bool: the fraudster's own ad
    trusted: np.ndarray  # (N, S) bool: its landing page carries a trust blurb
    linked: np.ndarray  # (N, S, S) bool, symmetric
    claimed: np.ndarray  # (N, tracks, S + 1, flag types) bool: flags raised; slot + 1, 0 = match
    markers: np.ndarray  # (N, rows) risk phrases in each ad row's copy

    @property
    def n(self) -> int:
        """How many matches."""
        return self.phase.shape[0]

    @classmethod
    def zeros(cls, n: int, rows: int) -> MatchState:
        """``n`` empty matches with room for ``rows`` ad rows each (all in the ``DONE``
        phase)."""
        s = MAX_SLOTS
        n_flags = max(len(AUDIT_TRACK_A), len(AUDIT_TRACK_B))
        return cls(
            phase=np.full(n, Phase.DONE, np.int8), budget=np.zeros(n, np.int64),
            proposals_used=np.zeros(n, np.int64), max_proposals=np.zeros(n, np.int64),
            n_arrived=np.zeros(n, np.int64), n_base=np.zeros(n, np.int64),
            n_base_arrived=np.zeros(n, np.int64), auditor_actions=np.zeros(n, np.int64),
            allowed=np.zeros((n, len(CATEGORIES)), bool),
            slot_row=np.full((n, s), -1, np.int64), present=np.zeros((n, s), bool),
            verdict=np.full((n, s), -1, np.int8), pulled=np.zeros((n, s, len(TARGETS)), bool),
            n_pulls=np.zeros((n, s), np.int8), is_proposal=np.zeros((n, s), bool),
            trusted=np.zeros((n, s), bool), linked=np.zeros((n, s, s), bool),
            claimed=np.zeros((n, len(Track), s + 1, n_flags), bool),
            markers=np.zeros((n, rows), np.int64))

    @classmethod
    def stack(cls, states: list[MatchState]) -> MatchState:
        """One state of every match of ``states``, in order (copies; ad rows padded to the
        longest)."""
        rows = max(s.markers.shape[1] for s in states)
        out = {}
        for f in fields(cls):
            parts = [getattr(s, f.name) for s in states]
            if f.name == "markers":
                parts = [np.pad(p, [(0, 0), (0, rows - p.shape[1])]) for p in parts]
            out[f.name] = np.concatenate(parts)
        return cls(**out)

    def names(self) -> list[str]:
        """The state's array names, in declaration order."""
        return [f.name for f in fields(self)]


__all__ = ["Edit", "MatchState", "PHASE_OF", "Phase", "ROLE_PHASE", "TRACK_FLAGS", "Track"]
