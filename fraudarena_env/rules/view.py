"""``MatchView``: how code outside the rules reads a match, by names that say what each thing is.

Everything outside ``fraudarena_env/rules/`` (the faces, the policies, the env, the vector env,
the server, the CLI, training and the benchmarks) reads a referee's match through this surface
only, and changes it only through the referee's verbs (``Referee.PLAY``: ``reset_match``,
``check``, ``apply``, ``penalize``, ...). ``tests/test_boundary.py`` holds them to it: it parses
every module outside the rules and fails on a read of any other referee attribute, and on any
write to one.

The rules' ``Referee`` is a ``MatchView`` (its base class), so reading costs what reading an
attribute costs: the scalars below are the referee's own attributes, and the per-slot arrays are
the same numpy arrays the rules write (views of the match's row of its ``MatchState``), handed
out once, so a hot loop binds them once. They are for reading: writing to them from outside the
rules is a violation the boundary test reports. How the referee stores the hidden world (its ad
rows, which row each slot holds, the ``MatchState`` itself) is not part of the surface; the
``*_of(slot)`` accessors read it by slot.

The hidden truth (``label_of``, ``tactic_of``, ``severity_of``, ``ring_of``, the evidence before
it is pulled) is here for the callers that may see it: the auditor's record once play ends, the
oracle and the analysis of finished matches, training-only shaping. A role's observation never
reads it during play (``faces.encoding`` and ``faces.textface`` say which fact goes where).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

from .catalog import (
    AD_IDS,
    AD_SLOT,
    MAX_AUDITOR_ACTIONS,
    PHASE_ROLE,
    ROLES,
    STATUSES,
    TaskConfig,
)
from .errors import IllegalActionError
from .evidence import evidence_fields, surface_fields
from .fraudster import may_arrive_later, may_propose, queue_room
from .roles import legal_mask as _legal_mask
from .state import A

if TYPE_CHECKING:
    from .events import Change, Event
    from .generator import RingInfo


def match_id_for(seed: int, task_id: str, knobs: dict) -> str:
    key = f"{seed}|{task_id}|{sorted(knobs.items())}".encode()
    return "m_" + hashlib.sha256(key).hexdigest()[:16]


# The ad-row facts ``facts_of`` hands out (the generator's other rows are its own draws).
_FACTS = ("age_days", "tld", "payment_type", "country", "markers", "category", "label", "tactic",
          "severity", "ring", "evidence", "tokens")


_NO_SLOTS = np.zeros(0, np.intp)


class MatchView:
    """One match, for reading (see the module docstring). The annotated names are plain
    attributes of the referee, grouped by topic; the methods and properties read the rest."""

    # ---------------------------------------------------------------- the match's settings
    task: TaskConfig | None  # the task played (its id is ``task.task_id``)
    seed: int
    max_rounds: int
    max_proposals: int
    caps: tuple[int, int, int]  # actions per turn of each role, in ROLES order
    allowed_categories: tuple[str, ...]  # where the fraudster may propose
    allowed_mask: np.ndarray  # the same, a read-only bool array by category index
    illegal_action: str  # "raise" or "penalize"

    # ---------------------------------------------------------------- phase and turn
    phase: str  # one of PHASES: who acts now, or "done"
    round_number: int
    actions_this_turn: int  # of the role whose turn it is
    step_count: int  # actions taken in the match, illegal ones charged included
    end_reason: str | None  # why the match ended (END_REASONS), None while play goes on
    committed: bool  # the fraudster proposes no more

    # ---------------------------------------------------------------- budgets
    budget: int  # the investigator's actions left
    proposals_used: int
    auditor_actions: int  # flags raised (repeats included)

    # ---------------------------------------------------------------- the queue, by slot
    # (MAX_SLOTS,) arrays, the same objects for the referee's whole life: bind them once.
    n_arrived: int  # ads in the queue (slots taken)
    n_base_arrived: int  # organic ads arrived so far
    n_manual: int  # verdicts the investigator gave
    present: np.ndarray  # bool: the slot holds an ad
    verdict: np.ndarray  # int8 index into VERDICTS, -1 while pending
    confidence: np.ndarray  # float32, of a manual verdict
    manual: np.ndarray  # bool: decided by the investigator (not auto-approved)
    decided_order: np.ndarray  # int16: the k-th manual verdict, -1 for none
    decided_round: np.ndarray  # int8
    arrived: np.ndarray  # int8: the round the ad arrived in
    is_proposal: np.ndarray  # bool: the fraudster's own ad
    trusted: np.ndarray  # bool: its landing page carries a trust blurb
    lexical: np.ndarray  # (S, LEXICAL) float32: how its copy reads

    # ---------------------------------------------------------------- the ads' text
    copy: list[str]  # by slot
    blurb: list[str]  # landing-page blurb, by slot
    targeting: list[str]  # by slot
    rationale: list[str | None]  # of the verdict, by slot
    proposal_slots: list[int]  # the fraudster's ads, in the order proposed

    # ---------------------------------------------------------------- pulls and links
    pulled: np.ndarray  # (S, sources) bool: evidence pulled
    n_pulls: np.ndarray  # int8, by slot
    linked: np.ndarray  # (S, S) bool, symmetric
    links: list[tuple[int, int]]  # the investigator's links, in the order made
    rings: list[RingInfo]  # the hidden rings (truth; members by ``ring_slots``)

    # ---------------------------------------------------------------- the audit
    auditor_flags: list[dict]  # the flags raised, as the auditor's report lists them
    audit_report: dict | None
    truth_flags: set  # the rule audit's findings: (flag type, ad id or None), set at the end
    plausibility: dict[str, float]  # of each proposal, by ad id, set at the end
    calibration: list[tuple[int, float, float]]  # (verdicts, mean confidence, accuracy) bins

    # ---------------------------------------------------------------- outcome and scores
    totals: list[float]  # each role's return so far, in ROLES order
    step_rewards: list[float]  # each role's reward for the last step
    terminal: list[float]  # the rewards paid when the report ends the match
    grader_score: float | None  # set when play ends
    grader_terms: dict[str, float]

    # ---------------------------------------------------------------- what happened
    epoch: object  # a new token on every reset (observers rebuild when it changes)
    changes: list[Change]  # what changed since reset, in order, for incremental observers
    events: list[Event]  # typed events (rules.events), when the referee records them
    recording: bool  # whether it records events as they happen
    played: list | None  # the ops played, when it records ops (the text face replays them)
    setup: tuple | None  # (seed, task_id, knobs): what a replay resets with
    narration: object  # the text face's own reading of the events (faces.narration writes it)

    # ---------------------------------------------------------------- phase and turn, read
    @property
    def done(self) -> bool:
        return self.phase == "done"

    @property
    def play_finished(self) -> bool:
        """Play ran to its end (the audit phase, or done after it), so the record the auditor
        reviews is complete; a match ended on an illegal action stopped short of it."""
        return self.phase == "audit_phase" or \
            (self.phase == "done" and self.end_reason != "illegal_action")

    @property
    def current_role(self) -> str | None:
        """The role that acts now, or None once the match is done."""
        return PHASE_ROLE.get(self.phase)

    @property
    def match_id(self) -> str:
        """A stable id from the seed, task and knobs ("" before the first match)."""
        if self._match_id is None:
            self._match_id = match_id_for(*self.setup)
        return self._match_id

    @property
    def episode_id(self) -> str:
        """The id given to ``reset_match``, or else the match id."""
        return self._episode_id if self._episode_id is not None else self.match_id

    def rounds_remaining(self) -> int:
        return max(0, self.max_rounds - self.round_number + 1)

    def actions_left_this_turn(self, role_index: int) -> int:
        if PHASE_ROLE.get(self.phase) != ROLES[role_index]:
            return 0
        if role_index == A:
            return MAX_AUDITOR_ACTIONS - self.auditor_actions
        return self.caps[role_index] - self.actions_this_turn

    def legal_mask(self, role: str) -> np.ndarray:
        """Which of ``role``'s action indices the rules allow now (``rules.roles.legal_mask``,
        the one source of legality): the oracle the faces' incremental masks are held to."""
        return _legal_mask(self.match_state, role)[self.index]

    # ---------------------------------------------------------------- the queue, read
    @property
    def n_base(self) -> int:
        """The organic ads the match will have, all rounds together."""
        return self.ep.n_base

    def pending_slots(self) -> np.ndarray:
        return (self.present & (self.verdict < 0)).nonzero()[0]

    def unseen_by_investigator(self) -> np.ndarray:
        """The slots the investigator does not see yet: while the fraudster moves, the ads that
        arrived since the investigator's turn ended (the round's organic ads, then the
        fraudster's proposals), which its next turn shows together. Seeing them as they came
        would tell the proposals from the organic ads, and a proposal is never legit."""
        if self.phase != "fraudster_turn":
            return _NO_SLOTS
        return (self.present & (self.arrived == self.round_number)).nonzero()[0]

    def proposal_room(self) -> bool:
        """A new proposal needs a free slot beyond those reserved for base ads still to come."""
        return queue_room(self.n_arrived, self.ep.n_base, self.n_base_arrived)

    def may_propose(self) -> bool:
        """A proposal is legal on the fraudster's turn now (``fraudster.may_propose``)."""
        return bool(may_propose(self.proposals_used, self.max_proposals, self.n_arrived,
                                self.ep.n_base, self.n_base_arrived, self.round_number,
                                self.max_rounds))

    @property
    def playing(self) -> bool:
        """Play is under way: the fraudster's or the investigator's turn (not the audit, not
        done)."""
        return self.phase in ("fraudster_turn", "investigator_turn")

    def _proposal_may_come(self) -> bool:
        """The fraudster may still propose (in this round while it moves, else from the next)."""
        nxt = self.round_number + (self.phase != "fraudster_turn")
        return bool(may_arrive_later(self.committed, self.proposals_used, self.max_proposals,
                                     nxt, self.max_rounds))

    def proposals_remaining(self) -> int:
        """The proposals the fraudster may still make in this match: 0 once none can come
        (committed, the rounds that take proposals over, the queue full, play over), as earlier
        clients read it: they propose while it is above 0."""
        if not (self.playing and self._proposal_may_come() and self.proposal_room()):
            return 0
        return self.max_proposals - self.proposals_used

    def queue_may_grow(self) -> bool:
        """An ad may still arrive: an organic ad still due, or a proposal the fraudster may
        still make (in this round while it moves, else from the next)."""
        return self.n_base_arrived < self.ep.n_base or self._proposal_may_come()

    def status_of(self, slot: int) -> str:
        return STATUSES[int(self.verdict[slot]) + 1]

    def ad_id(self, slot: int) -> str:
        return AD_IDS[slot]

    def slot_of(self, ad_id: str, agent: str, action: object) -> int:
        """The slot of ``ad_id``, or ``IllegalActionError`` (naming ``agent`` and ``action``)
        when no such ad is in the queue."""
        slot = AD_SLOT.get(ad_id, -1)
        if slot < 0 or not self.present[slot]:
            raise IllegalActionError(agent, action, f"unknown ad_id {ad_id!r}; ads in the queue: "
                                     f"{[AD_IDS[s] for s in np.flatnonzero(self.present)]}")
        return slot

    # ---------------------------------------------------------------- an ad's surface
    def category_of(self, slot: int) -> int:
        """The category index (into ``CATEGORIES``) of the ad in ``slot``: public."""
        return self.rows.category.item(self.slot_row.item(slot))

    def surface_of(self, slot: int) -> tuple[int, int, int, int, int]:
        """What anyone sees of the ad in ``slot`` without pulling: (account age in days, TLD,
        payment type, country, risk markers), as indices."""
        rows, row = self.rows, self.slot_row.item(slot)
        return (rows.age_days.item(row), rows.tld.item(row), rows.payment_type.item(row),
                rows.country.item(row), rows.markers.item(row))

    def markers_of(self, slot: int) -> int:
        """The risk phrases the ad in ``slot`` shows (its copy's, after edits)."""
        return self.rows.markers.item(self.slot_row.item(slot))

    def surface_fields_of(self, slot: int) -> dict:
        """The ad's surface as the text face names it (``evidence.surface_fields``)."""
        return surface_fields(self.rows, self.slot_row.item(slot))

    # ---------------------------------------------------------------- evidence
    def evidence_of(self, slot: int, source: int) -> float:
        """What pulling ``source`` on the ad in ``slot`` shows (hidden until pulled)."""
        return self.rows.evidence.item(self.slot_row.item(slot), source)

    def evidence_row_of(self, slot: int) -> np.ndarray:
        """``evidence_of`` for every source, in ``TARGETS`` order (a read-only view)."""
        return self.rows.evidence[self.slot_row.item(slot)]

    def evidence_fields_of(self, slot: int, source: int, signal: float | None = None) -> dict:
        """What pulling ``source`` shows, as the text face names it
        (``evidence.evidence_fields``)."""
        return evidence_fields(self.rows, self.slot_row.item(slot), source, signal)

    def token_of(self, slot: int, signal: int) -> int:
        """The ad's token for ring signal ``signal`` (two ads sharing one look linked)."""
        return self.rows.tokens.item(self.slot_row.item(slot), signal)

    # ---------------------------------------------------------------- the hidden truth
    def label_of(self, slot: int) -> int:
        """The true label (``catalog.LEGIT``, ``FRAUD`` or ``ESCALATE``) of the ad in ``slot``:
        hidden from every role during play; for training-only shaping and analysis. A
        ValueError for a slot that holds no ad."""
        return self.rows.label.item(self._row_of(slot))

    def tactic_of(self, slot: int) -> int:
        """The ad's tactic (index into ``TACTICS``), -1 for a legit ad: hidden truth."""
        return self.rows.tactic.item(self._row_of(slot))

    def _row_of(self, slot: int) -> int:
        """The ad row in ``slot``, or a ValueError if the slot holds no ad (its row, -1, would
        read another ad's)."""
        row = self.slot_row.item(slot)
        if row < 0:
            raise ValueError(f"slot {slot} holds no ad")
        return row

    def severity_of(self, slot: int) -> float:
        """The harm the ad does if it runs: hidden truth."""
        return self.rows.severity.item(self.slot_row.item(slot))

    def ring_of(self, slot: int) -> int:
        """The ring the ad belongs to, -1 for none: hidden truth."""
        return self.rows.ring.item(self.slot_row.item(slot))

    def facts_of(self, slots: np.ndarray | slice = slice(None),
                 names: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        """The facts ``names`` (default: all) of the ads in ``slots`` (default: every slot; an
        empty one reads the first ad's) at once, as arrays by name (copies): the surface
        (``age_days``, ``tld``, ``payment_type``, ``country``, ``markers``), ``category``, and
        the hidden truth (``label``, ``tactic``, ``severity``, ``ring``, ``evidence`` of every
        source and the ring-signal ``tokens``)."""
        rows, row = self.rows, np.maximum(self.slot_row[slots], 0)
        return {name: getattr(rows, name)[row] for name in names or _FACTS}

    def ring_slots(self, ring: RingInfo) -> list[int]:
        """The slots in the queue that hold members of ``ring`` (one of ``rings``)."""
        return [s for s in np.flatnonzero(self.present).tolist()
                if self.slot_row.item(s) in ring.members]

    @property
    def drawn_rings(self) -> list[RingInfo]:
        """The rings the match was drawn with (a ring the fraudster starts by proposing is in
        ``rings`` only)."""
        return self.ep.rings

    @property
    def n_ring_pairs(self) -> int:
        """Pairs of ads that share a ring: what a perfect linker links."""
        return sum(len(r.members) * (len(r.members) - 1) // 2 for r in self.rings)


def surface_names() -> frozenset[str]:
    """Every name of the read surface: the annotated attributes, the methods and properties."""
    names = set()
    for cls in MatchView.__mro__[:-1]:
        names.update(cls.__annotations__)
        names.update(k for k in vars(cls) if not k.startswith("_"))
    return frozenset(names)


__all__ = ["MatchView", "match_id_for", "surface_names"]
