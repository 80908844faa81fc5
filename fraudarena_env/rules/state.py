"""``MatchState``: the facts the rules decide by, as named arrays with a leading match axis.

Row ``m`` of every array is match ``m``; one match is ``N = 1`` (the referee's own state, whose
arrays are views of the referee's, so the two never disagree). The role modules
(``rules.fraudster``, ``rules.investigator``, ``rules.auditor``) read it: their legality checks
are written once, pointwise over ``(state, m, op)``, and numpy broadcasting evaluates the same
expression for one op of one match (``explain``) or for every op of every match (``legal_mask``).

Scalars per match are ``(N,)`` arrays; per-slot facts are ``(N, MAX_SLOTS, ...)``; per-ad-row
facts (``rows``, the generator's ``AdRows`` with a match axis) are ``(N, rows, ...)``, indexed
through ``slot_row``. A ``Referee`` plays one match of a state: its arrays are views of that
match's rows, and its changing scalars are written through (``SCALARS``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum

import numpy as np

from .catalog import (
    AUDIT_TRACK_A,
    AUDIT_TRACK_B,
    CATEGORIES,
    MAX_SLOTS,
    PHASES,
    RING_SIGNALS,
    TARGETS,
    TASKS,
)
from .copies import KeepsViews
from .generator import N_UNIFORM, AdRows
from .lexicon import N_LEXICAL


class Phase(IntEnum):
    """``PHASES`` by name: who acts now (or nobody, once the match is ``DONE``)."""
    FRAUDSTER_TURN = 0
    INVESTIGATOR_TURN = 1
    AUDIT_PHASE = 2
    DONE = 3


assert tuple(p.name.lower() for p in Phase) == PHASES  # one order, declared in the catalogue
F, I, A = 0, 1, 2  # noqa: E741  (the roles' indices, in ROLES order)
# Plain ints from here on: numpy probes an enum member for array attributes on every use.
PHASE_OF = {p.name.lower(): int(p) for p in Phase}


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




# The match's scalars that change during play (the referee keeps them as attributes and writes
# them to the state after every step; see ``Referee.store_scalars``), and why the match ended, by
# the index the ``end_reason`` column stores: play's four ends, then an illegal action that ended
# the match before play did (``Referee.end_on_illegal``: no grade, no ending rewards).
END_REASONS: tuple[str, ...] = ("commit_final", "all_decided", "max_rounds", "budget_exhausted",
                                "illegal_action")
SCALARS: tuple[str, ...] = ("phase", "round_number", "actions_this_turn", "budget",
                            "proposals_used", "committed", "n_arrived", "n_base_arrived",
                            "n_manual", "step_count", "auditor_actions", "end_reason")

def _row_capacity() -> dict[str, tuple[int, ...]]:
    """Each ad-row array's shape per match, for the largest task: rows for the organic ads and
    every proposal, the generator's extra uniform and token rows."""
    cap = max(t.queue_size for t in TASKS.values()) + MAX_SLOTS
    rings = max(t.n_rings for t in TASKS.values())
    return {"evidence": (cap, len(TARGETS)), "uniform": (cap + 2, N_UNIFORM),
            "tokens": (cap + 4 * rings + 1, len(RING_SIGNALS))}


ROW_DTYPES = {"label": np.int8, "category": np.int16, "tactic": np.int8, "kind": np.int8,
              "severity": np.float64, "age_days": np.int32, "tld": np.int8,
              "payment_type": np.int8, "country": np.int8, "markers": np.int8, "blurb": np.int8,
              "body": np.int8, "evidence": np.float32, "uniform": np.float64,
              "tokens": np.int64, "ring": np.int16, "arrival_round": np.int8}


@dataclass
class MatchState(KeepsViews):
    """The whole of ``n`` matches that the rules decide by (see the module docstring)."""

    scalars: np.ndarray  # (N, len(SCALARS)) int64: the changing scalars, one column each
    # ... and each of those columns by name, (N,) views of ``scalars``:
    phase: np.ndarray  # a ``Phase``
    round_number: np.ndarray
    actions_this_turn: np.ndarray
    budget: np.ndarray  # the investigator's actions left
    proposals_used: np.ndarray
    committed: np.ndarray  # 1 once the fraudster proposes no more
    n_arrived: np.ndarray  # ads in the queue (slots taken)
    n_base_arrived: np.ndarray  # organic ads arrived so far
    n_manual: np.ndarray  # verdicts given by the investigator
    step_count: np.ndarray
    auditor_actions: np.ndarray  # flags raised (repeats included)
    end_reason: np.ndarray  # -1 while play goes on, else an index into END_REASONS
    # the match's settings, (N,)
    n_base: np.ndarray  # organic ads the match will have
    max_rounds: np.ndarray
    max_proposals: np.ndarray
    caps: np.ndarray  # (N, 3) actions per turn of each role
    action_budget: np.ndarray
    allowed: np.ndarray  # (N, categories) bool: categories the fraudster may propose in
    # per slot, (N, S, ...)
    slot_row: np.ndarray  # the ad row in each slot, -1 while empty
    present: np.ndarray  # bool
    verdict: np.ndarray  # int8, index into VERDICTS, -1 while pending
    confidence: np.ndarray  # float32, of a manual verdict
    manual: np.ndarray  # bool: decided by the investigator (not auto-approved)
    decided_order: np.ndarray  # int16, the k-th manual verdict; -1 for none
    decided_round: np.ndarray  # int8
    arrived: np.ndarray  # int8, the round the ad arrived in
    pulled: np.ndarray  # (N, S, sources) bool
    n_pulls: np.ndarray  # int8
    is_proposal: np.ndarray  # bool: the fraudster's own ad
    trusted: np.ndarray  # bool: its landing page carries a trust blurb
    lexical: np.ndarray  # (N, S, LEXICAL) float32: the copy's features
    linked: np.ndarray  # (N, S, S) bool, symmetric
    claimed: np.ndarray  # (N, tracks, S + 1, flag types) bool: flags raised; slot + 1, 0 = match
    # per ad row, (N, rows, ...): the hidden world, as the generator drew it (``AdRows``)
    rows: AdRows

    @property
    def n(self) -> int:
        """How many matches."""
        return self.phase.shape[0]

    @classmethod
    def zeros(cls, n: int) -> MatchState:
        """``n`` empty matches (all in the ``DONE`` phase), with room for the largest task."""
        s = MAX_SLOTS
        n_flags = max(len(AUDIT_TRACK_A), len(AUDIT_TRACK_B))
        shapes = _row_capacity()
        cap = shapes["evidence"][0]
        rows = AdRows(**{name: np.zeros((n, *shapes.get(name, (cap,))), dtype)
                         for name, dtype in ROW_DTYPES.items()})

        def ints(fill: int = 0, dtype=np.int64):
            return np.full(n, fill, dtype)

        scalars = np.zeros((n, len(SCALARS)), np.int64)
        columns = {name: scalars[:, i] for i, name in enumerate(SCALARS)}
        columns["phase"][:] = Phase.DONE
        columns["end_reason"][:] = -1
        return cls(
            scalars=scalars, **columns, n_base=ints(), max_rounds=ints(),
            max_proposals=ints(), caps=np.zeros((n, 3), np.int64), action_budget=ints(),
            allowed=np.zeros((n, len(CATEGORIES)), bool),
            slot_row=np.full((n, s), -1, np.int64), present=np.zeros((n, s), bool),
            verdict=np.full((n, s), -1, np.int8), confidence=np.zeros((n, s), np.float32),
            manual=np.zeros((n, s), bool), decided_order=np.full((n, s), -1, np.int16),
            decided_round=np.zeros((n, s), np.int8), arrived=np.zeros((n, s), np.int8),
            pulled=np.zeros((n, s, len(TARGETS)), bool), n_pulls=np.zeros((n, s), np.int8),
            is_proposal=np.zeros((n, s), bool), trusted=np.zeros((n, s), bool),
            lexical=np.zeros((n, s, N_LEXICAL), np.float32), linked=np.zeros((n, s, s), bool),
            claimed=np.zeros((n, len(Track), s + 1, n_flags), bool), rows=rows)

    def clear(self, m: int) -> None:
        """Empty match ``m``'s slots (a reset keeps the arrays, so views of them stay valid)."""
        self.slot_row[m] = -1
        self.verdict[m] = -1
        self.decided_order[m] = -1
        for name in ("present", "confidence", "manual", "decided_round", "arrived", "pulled",
                     "n_pulls", "is_proposal", "trusted", "lexical", "linked", "claimed"):
            getattr(self, name)[m] = 0

    def load_rows(self, m: int, rows: AdRows) -> AdRows:
        """Copy a generated match's ad rows into match ``m``; return the same rows as views of
        the state (so the rules' edits to them land in the state)."""
        views = {}
        for f in fields(AdRows):
            source, target = getattr(rows, f.name), getattr(self.rows, f.name)[m]
            k = source.shape[0]
            target[:k] = source
            target[k:] = 0
            views[f.name] = target[:k]
        return AdRows(**views)

    @classmethod
    def stack(cls, states: list[MatchState]) -> MatchState:
        """One state of every match of ``states``, in order (copies)."""
        out = {f.name: np.concatenate([getattr(s, f.name) for s in states])
               for f in fields(cls) if f.name != "rows" and f.name not in SCALARS}
        out.update((name, out["scalars"][:, i]) for i, name in enumerate(SCALARS))
        out["rows"] = AdRows(**{f.name: np.concatenate([getattr(s.rows, f.name) for s in states])
                                for f in fields(AdRows)})
        return cls(**out)



__all__ = ["END_REASONS", "Edit", "MatchState", "PHASE_OF", "Phase", "SCALARS", "Track"]
