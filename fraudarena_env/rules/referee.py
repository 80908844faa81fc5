"""The referee: FraudArena's rules as a state machine, free of any RL or web framework.

A match runs in rounds. Each round the fraudster takes a turn (propose, modify, end_turn,
commit_final; at most ``max_fraudster_actions_per_turn`` actions), then the investigator takes a
turn (investigate, verdict, link_accounts, end_turn; at most
``max_investigator_actions_per_turn``). Base ads arrive over the rounds, so the queue grows with
organic ads and proposals alike. Play ends when

* ``max_rounds`` investigator turns have been played (``max_rounds``),
* the investigator's action budget is spent (``budget_exhausted``),
* nothing is pending and nothing more can arrive (``all_decided``, or ``commit_final`` when the
  fraudster's commit is what closed the queue).

Every end path auto-approves the pending ads. Then the auditor flags faults and submits its
report, which ends the match; the terminal rewards are delivered then, to all three roles.

The referee takes typed ops only (``actions``). The pydantic models of the text face and the
action indices of the tensor face both translate to ops, so both faces run through exactly one
set of rules: ``check`` says whether an op is legal and why not, ``apply`` carries it out. A
rejected op leaves the match untouched. The text face's entry points (``step_as_<role>``,
``build_<role>_observation``, ``state``) are added on top, by ``fraudarena_env.referee.Referee``,
the class users get as ``fraudarena_env.Referee``.
"""

from __future__ import annotations

import hashlib
import itertools
from functools import lru_cache
from typing import Any

import numpy as np

from . import audit, scoring
from .actions import (
    CommitFinal,
    EndTurn,
    Investigate,
    Modify,
    Op,
    Propose,
    Submit,
    Verdict,
)
from .auditor import claim_index
from .auditor import repeats as _repeats
from .catalog import (
    AD_IDS,
    AD_SLOT,
    AUDIT_TRACK_A,
    CATEGORIES,
    CATEGORY_INDEX,
    CORRECT_VERDICT,
    ESCALATE,
    FRAUD,
    FRAUDSTER_EDITS,
    GRAY_CATEGORY,
    KIND_ESCALATE,
    LEGIT,
    MATCH_KNOBS,
    MAX_AUDITOR_ACTIONS,
    MAX_SLOTS,
    PHASE_ROLE,
    PHASES,
    ROLES,
    STATUSES,
    TACTIC_SEVERITY,
    TACTICS,
    TARGET_INDEX,
    TARGETS,
    TASKS,
    TRUST_PHRASES,
    VERDICTS,
    TaskConfig,
)
from .errors import IllegalActionError, OutOfTurnError
from .evidence import evidence_fields, evidence_text, headline, token_text
from .fraudster import queue_room
from .generator import U_BLURB, Episode, RingInfo, blurb_of, generate, proposal_surface
from .lexicon import (
    count_risk_markers,
    count_trust_markers,
    has_injection_or_generator_token,
    is_gibberish,
    lexical_features,
)
from .roles import explain
from .state import END_REASONS, PHASE_OF, SCALARS, MatchState

F, I, A = 0, 1, 2  # noqa: E741  (role indices)
TRUST_SHIFT = 0.5  # a trust blurb makes the landing page look this much cleaner
SOFTEN_SEVERITY = 0.9
JUNK_CLASSIFIER_SHIFT = 2.0  # gibberish or injected copy trips the policy classifier
CAMOUFLAGED = TACTICS.index("camouflaged")
_EPOCHS = itertools.count(1)  # tells observers a referee was reset (never part of game state)
_TARGET_RANGE = range(len(TARGETS))
_PROPOSAL_ACTIONS = ("propose_ad", "modify_pending_ad")
_INVESTIGATOR_ENTRY = dict.fromkeys(("ad_id", "investigation_target", "verdict", "confidence",
                                     "rationale", "linked_ad_id", "link_reason"),
                                    None) | {"findings_excerpt": ""}
FINDINGS_EXCERPT = 240  # characters of a pull's findings kept in the log
_PHASE_CODE = PHASE_OF  # phase name -> Phase
_END_CODE = {r: i for i, r in enumerate(END_REASONS)}
assert SCALARS == ("phase", "round_number", "actions_this_turn", "budget", "proposals_used",
                   "committed", "n_arrived", "n_base_arrived", "n_manual", "step_count",
                   "auditor_actions", "end_reason")  # store_scalars writes them in this order
# The referee's per-slot arrays: views of its match's in the state.
_SLOT_ARRAYS = ("slot_row", "present", "verdict", "confidence", "manual", "decided_order",
                "decided_round", "arrived", "pulled", "n_pulls", "is_proposal", "trusted",
                "lexical", "linked")


# Upper bounds of the integer match knobs: rounds and per-slot rounds are stored as int8, a match
# has MAX_SLOTS ads, and a turn cap beyond these only lets one turn run the match.
KNOB_LIMITS = {"max_rounds": 100, "max_proposals": MAX_SLOTS,
               "max_fraudster_actions_per_turn": 64, "max_investigator_actions_per_turn": 256}
MAX_SEED = 2**63 - 1

# Each task's own values of the match knobs (copy before changing).
_TASK_KNOBS = {tid: {k: getattr(task, k) for k in MATCH_KNOBS} for tid, task in TASKS.items()}


@lru_cache(maxsize=256)
def _allowed_mask(allowed: tuple[str, ...]) -> np.ndarray:
    """Which categories a match allows, by index; shared between matches, so read-only."""
    mask = np.zeros(len(CATEGORIES), bool)
    mask[[CATEGORY_INDEX[c] for c in allowed]] = True
    mask.flags.writeable = False
    return mask


def _excerpt(value: object, limit: int = 40) -> str:
    """A value's repr, cut short: error messages never echo much of what they were given."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def match_id_for(seed: int, task_id: str, knobs: dict) -> str:
    key = f"{seed}|{task_id}|{sorted(knobs.items())}".encode()
    return "m_" + hashlib.sha256(key).hexdigest()[:16]


class Referee:
    """One FraudArena match, on the rules' ops: ``reset_match`` starts it, ``check`` and ``apply``
    play it. (``fraudarena_env.Referee`` adds the text face's entry points.)

    The match lives in ``match_state``, a ``MatchState``, as its match ``index`` (a referee of
    its own holds a state of one match; a batch of matches shares one state, a referee per
    match): the referee's arrays are views of that match's. Its changing scalars
    (``state.SCALARS``) are plain attributes, fast to read, which ``store_scalars`` writes to
    the state after every reset and step (``load_scalars`` reads them back after something
    else, a batched step, changed the state)."""

    def __init__(self, illegal_action: str = "raise", *, state: MatchState | None = None,
                 index: int = 0):
        if illegal_action not in ("raise", "penalize"):
            raise ValueError(f"illegal_action must be 'raise' or 'penalize', not "
                             f"{illegal_action!r}")
        self.illegal_action = illegal_action
        self.match_state = MatchState.zeros(1) if state is None else state
        self.index = index
        st, m = self.match_state, index
        for name in _SLOT_ARRAYS:  # views: the referee's per-slot arrays are the state's
            setattr(self, name, getattr(st, name)[m])
        self._scalar_row = st.scalars[m]
        self.load_scalars()
        self.task: TaskConfig | None = None
        self._match_key: tuple | None = None
        self._match_id = ""
        self._episode_id: str | None = None
        self.step_rewards = [0.0, 0.0, 0.0]

    # ------------------------------------------------------------------ setup
    def reset_match(self, seed: int | None = None, task_id: str = "task_1",
                    episode_id: str | None = None, *, admit_first_round: bool = True,
                    **knobs: Any) -> None:
        """Start match ``seed`` of ``task_id`` (with the match knobs). ``admit_first_round``
        False leaves the first round's organic ads out of the queue, for a caller that admits
        many matches' at once (``VectorFraudArena``); the match is not playable until then."""
        if not isinstance(task_id, str) or task_id not in TASKS:
            raise ValueError(f"unknown task_id {_excerpt(task_id)}; choose one of {list(TASKS)}")
        unknown = set(knobs) - set(MATCH_KNOBS)
        if unknown:
            raise ValueError(f"unknown match knob(s) {[_excerpt(k) for k in sorted(unknown)][:5]};"
                             f" known: {MATCH_KNOBS}")
        task = TASKS[task_id]
        knobs = {k: v for k, v in knobs.items() if v is not None}
        cfg = dict(_TASK_KNOBS[task_id], **knobs)  # the task's own values are valid
        for k in MATCH_KNOBS[:-1]:
            if k not in knobs:
                continue
            if not isinstance(cfg[k], (int, np.integer)) or isinstance(cfg[k], bool) or \
                    not 1 <= cfg[k] <= KNOB_LIMITS[k]:
                raise ValueError(f"{k} must be an integer in [1, {KNOB_LIMITS[k]}], got "
                                 f"{_excerpt(cfg[k])}")
            cfg[k] = int(cfg[k])
        if "allowed_categories" in knobs and not (
                isinstance(cfg["allowed_categories"], (list, tuple)) and
                all(isinstance(c, str) for c in cfg["allowed_categories"])):
            raise ValueError("allowed_categories must be a list of category names, got "
                             f"{_excerpt(cfg['allowed_categories'])}")
        allowed = tuple(cfg["allowed_categories"])
        if "allowed_categories" in knobs:
            bad = [_excerpt(c) for c in allowed if c not in CATEGORY_INDEX][:5]
            if bad or not allowed:
                raise ValueError(f"allowed_categories must be a non-empty subset of "
                                 f"{list(CATEGORY_INDEX)}; unknown: {bad}")
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        elif not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or \
                not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in [0, 2**63) or None, got "
                             f"{_excerpt(seed)}")
        seed = int(seed)
        self.task = task
        self.seed = seed
        self.max_rounds = cfg["max_rounds"]
        self.max_proposals = cfg["max_proposals"]
        self.caps = (cfg["max_fraudster_actions_per_turn"],
                     cfg["max_investigator_actions_per_turn"], MAX_AUDITOR_ACTIONS)
        self.allowed_categories = allowed
        self.allowed_mask = _allowed_mask(allowed)
        self._match_key = (seed, task_id, knobs)  # the match id is hashed when first read
        self._episode_id = episode_id

        rng = np.random.Generator(np.random.PCG64(seed))
        self.ep: Episode = generate(task, rng, self.max_rounds, self.max_proposals)
        self.rings: list[RingInfo] = list(self.ep.rings)
        self.fraudster_ring = -1

        S = MAX_SLOTS
        st, m = self.match_state, self.index
        # The generated rows move into the state; the episode keeps views of them.
        self.rows = self.ep.rows = st.load_rows(m, self.ep.rows)
        st.clear(m)
        st.n_base[m] = self.ep.n_base
        st.max_rounds[m] = self.max_rounds
        st.max_proposals[m] = self.max_proposals
        st.caps[m] = self.caps
        st.action_budget[m] = task.action_budget
        st.allowed[m] = self.allowed_mask
        self.copy: list[str] = [""] * S
        self.blurb: list[str] = [""] * S
        self.targeting: list[str] = [""] * S
        self.rationale: list[str | None] = [None] * S
        self.proposal_slots: list[int] = []
        self.links: list[tuple[int, int]] = []
        self.n_arrived = 0
        self.n_base_arrived = 0
        self.n_manual = 0

        self.phase = "fraudster_turn"
        self.round_number = 1
        self.actions_this_turn = 0
        self.budget = task.action_budget
        self.proposals_used = 0
        self.committed = False
        self.end_reason: str | None = None
        self.step_count = 0
        self.totals = [0.0, 0.0, 0.0]
        self.step_rewards = [0.0, 0.0, 0.0]
        self.terminal = [0.0, 0.0, 0.0]
        self.grader_score: float | None = None
        self.grader_terms: dict[str, float] = {}
        self.calibration: list[tuple[int, float, float]] = []  # set when play ends
        self.truth_flags: set = set()
        self.plausibility: dict[str, float] = {}
        self.claimed: set = set()
        self.auditor_flags: list[dict] = []
        self.audit_report: dict | None = None
        self.auditor_actions = 0
        self.fraudster_log: list[dict] = []
        self.investigator_log: list[dict] = []
        self.auditor_log: list[dict] = []
        self.feedback = ["", "", ""]
        # What changed, in order, since reset: observers replay it to update incrementally.
        # ("arrive", slots), ("pull", slot, source), ("verdict", slot), ("link", a, b),
        # ("modify", slot), ("flag", track, flag_type, slot), ("finish",).
        self.events: list[tuple] = []
        self.epoch = next(_EPOCHS)
        if admit_first_round:
            self._arrive_base(1)
        self.store_scalars()

    def load_scalars(self) -> None:
        """Read the changing scalars back from the state (after a batched step changed it)."""
        (phase, self.round_number, self.actions_this_turn, self.budget, self.proposals_used,
         committed, self.n_arrived, self.n_base_arrived, self.n_manual, self.step_count,
         self.auditor_actions, end) = self._scalar_row.tolist()
        self.phase, self.committed = PHASES[phase], bool(committed)
        self.end_reason = None if end < 0 else END_REASONS[end]

    def store_scalars(self) -> None:
        """Write the changing scalars to the state, where legality and batches read them."""
        self._scalar_row[:] = (_PHASE_CODE[self.phase], self.round_number,
                               self.actions_this_turn, self.budget, self.proposals_used,
                               self.committed, self.n_arrived, self.n_base_arrived,
                               self.n_manual, self.step_count, self.auditor_actions,
                               -1 if self.end_reason is None else _END_CODE[self.end_reason])

    # ------------------------------------------------------------------ queries
    @property
    def match_id(self) -> str:
        """A stable id from the seed, task and knobs ("" before the first match)."""
        if self._match_key is not None:
            self._match_id = match_id_for(*self._match_key)
            self._match_key = None
        return self._match_id

    @property
    def episode_id(self) -> str:
        """The id given to ``reset_match``, or else the match id."""
        return self._episode_id if self._episode_id is not None else self.match_id

    @property
    def done(self) -> bool:
        return self.phase == "done"

    @property
    def current_role(self) -> str | None:
        return PHASE_ROLE.get(self.phase)

    @property
    def n_ring_pairs(self) -> int:
        return sum(len(r.members) * (len(r.members) - 1) // 2 for r in self.rings)

    def pending_slots(self) -> np.ndarray:
        return (self.present & (self.verdict < 0)).nonzero()[0]

    def proposal_room(self) -> bool:
        """A new proposal needs a free slot beyond those reserved for base ads still to come."""
        self.store_scalars()  # asked in the middle of a step too
        return bool(queue_room(self.match_state, self.index))

    def ad_id(self, slot: int) -> str:
        return AD_IDS[slot]

    def slot_of(self, ad_id: str, agent: str, action: object) -> int:
        slot = AD_SLOT.get(ad_id, -1)
        if slot < 0 or not self.present[slot]:
            raise IllegalActionError(agent, action, f"unknown ad_id {ad_id!r}; ads in the queue: "
                                     f"{[AD_IDS[s] for s in np.flatnonzero(self.present)]}")
        return slot

    def check_turn(self, role: str, action: object) -> None:
        """Raise ``OutOfTurnError`` unless it is ``role``'s turn (``action`` is named in it)."""
        if self.phase == "done":
            raise OutOfTurnError(role, action, "the match is over; call reset_match() first")
        if PHASE_ROLE[self.phase] != role:
            raise OutOfTurnError(role, action, f"it is not {role}'s turn (phase "
                                 f"{self.phase!r}: {PHASE_ROLE[self.phase]} acts now)")

    # ------------------------------------------------------------------ legality
    def check(self, role: str, op: Op) -> str | None:
        """Why ``op`` is illegal for ``role`` now, or None when it is legal: the role module's
        checks (``rules.roles.explain``), the same ones its ``legal_mask`` evaluates."""
        return explain(self.match_state, self.index, role, op)

    def repeats(self, op: Op) -> bool:
        """Whether ``op`` is a flag already raised: legal (it is answered, and counts once), but
        the tensor face does not offer it, since it can earn nothing."""
        return _repeats(self.match_state, self.index, op)

    # ------------------------------------------------------------------ apply
    def apply(self, role: str, op: Op) -> float:
        """Apply a legal op, or raise ``IllegalActionError`` (penalize mode: charge and use up
        the action). Returns the acting role's reward for this step."""
        if self.phase == "done" or PHASE_ROLE[self.phase] != role:
            self.check_turn(role, op)
        reason = self.check(role, op)
        if reason is not None:
            if self.illegal_action == "raise":
                raise IllegalActionError(role, op, reason)
            return self.penalize(role, op, reason)
        r = self.step_rewards
        r[0] = r[1] = r[2] = 0.0
        self.step_count += 1
        if role == "fraudster":
            idx, reward = F, self._apply_fraudster(op)
        elif role == "investigator":
            idx, reward = I, self._apply_investigator(op)
        else:
            idx, reward = A, self._apply_auditor(op)
        r[idx] += reward
        totals = self.totals
        totals[0] += r[0]
        totals[1] += r[1]
        totals[2] += r[2]
        self.store_scalars()
        return r[idx]

    def penalize(self, role: str, action: object, reason: str) -> float:
        """Charge ``role`` for an illegal action and use the action up (penalize mode)."""
        self.check_turn(role, action)
        idx = ROLES.index(role)
        r = self.step_rewards
        r[0] = r[1] = r[2] = 0.0
        self.step_count += 1
        self.feedback[idx] = f"illegal action ({reason}); charged {scoring.ILLEGAL_PENALTY}"
        log = (self.fraudster_log, self.investigator_log, self.auditor_log)[idx]
        log.append(self._log_entry("illegal", reason=reason, reward=scoring.ILLEGAL_PENALTY))
        self.step_rewards[idx] = scoring.ILLEGAL_PENALTY
        self.totals[idx] += scoring.ILLEGAL_PENALTY
        if role == "auditor":
            self.auditor_actions += 1
        else:
            self._count_turn_action(idx)
        self.store_scalars()
        return scoring.ILLEGAL_PENALTY

    def _count_turn_action(self, idx: int) -> None:
        self.actions_this_turn += 1
        if self.actions_this_turn >= self.caps[idx]:
            if idx == F:
                self._end_fraudster_turn()
            else:
                self._end_investigator_turn()

    # fraudster -----------------------------------------------------------
    def _apply_fraudster(self, op: Op) -> float:
        kind = type(op)
        if kind is Propose:
            slot = self._propose(op)
            entry = self._proposal_entry("propose_ad", slot, rationale=op.rationale,
                                         tactic=TACTICS[self.rows.tactic[self.slot_row[slot]]])
            self.feedback[F] = f"proposed {AD_IDS[slot]}"
        elif kind is Modify:
            slot = op.slot
            self._modify(op)
            entry = self._proposal_entry("modify_pending_ad", slot, new_ad_copy=op.new_ad_copy,
                                         new_landing_page_blurb=op.new_landing_page_blurb,
                                         edit=FRAUDSTER_EDITS[op.edit] if op.edit >= 0
                                         else "rewrite")
            self.feedback[F] = f"modified {AD_IDS[slot]}"
        else:
            entry = self._log_entry("end_turn" if kind is EndTurn else "commit_final",
                                    reward=0.0)
        self.fraudster_log.append(entry)
        if kind is EndTurn:
            self.feedback[F] = "turn ended"
            self._end_fraudster_turn()
        elif kind is CommitFinal:
            self.committed = True
            self.feedback[F] = "committed: no more proposals this match"
            self._end_fraudster_turn()
        else:
            self._count_turn_action(F)
        return 0.0

    # The logs' entries. Every entry has ``ts`` (the match's step count when it was made: a
    # logical clock, so logs replay identically), ``round_number``, ``phase`` and
    # ``action_type``; the seed's readers expect the fields below on every entry of a log, so
    # fields an action does not use are present and null.
    def _log_entry(self, action_type: str, **fields: Any) -> dict:
        return {"ts": self.step_count, "round_number": self.round_number, "phase": self.phase,
                "action_type": action_type, **fields}

    def _proposal_entry(self, action_type: str, slot: int, **fields: Any) -> dict:
        """A ``fraudster_proposals`` entry: the ad as it stands after the action."""
        return self._log_entry(
            action_type, reward=0.0, ad_id=AD_IDS[slot],
            slot_index=self.proposal_slots.index(slot),
            category=CATEGORIES[self.rows.category[self.slot_row[slot]]].name,
            ad_copy=self.copy[slot], landing_page_blurb=self.blurb[slot],
            targeting_summary=self.targeting[slot],
            **{"new_ad_copy": None, "new_landing_page_blurb": None, **fields})

    def _investigator_entry(self, action_type: str, reward: float, **fields: Any) -> dict:
        return self._log_entry(action_type, **{**_INVESTIGATOR_ENTRY, "reward": reward,
                                               **fields})

    def proposal_log(self) -> list[dict]:
        """The fraudster's proposals and modifications in order (``fraudster_proposals``);
        turn control (end_turn, commit_final) stays in ``fraudster_log`` only."""
        return [e for e in self.fraudster_log if e["action_type"] in _PROPOSAL_ACTIONS]

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
            targeting = cat.targeting[int(u[5] * len(cat.targeting))]
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
            copy = self._template_copy(category, int(u[4] * 3), int(rows.markers[row]),
                                       float(u[12]))
            if blurb is None:
                b = blurb_of(LEGIT if tactic == CAMOUFLAGED else FRAUD, float(u[U_BLURB]),
                             float(u[13]))
                blurb = TRUST_PHRASES[b] if b >= 0 else ""
        if free_markers is not None and junk:  # the policy classifier sees through junk copy
            rows.evidence[row, TARGET_INDEX["policy_classifier"]] += JUNK_CLASSIFIER_SHIFT
        if cat.family == "network":
            self._join_fraudster_ring(row)
        slot = self._arrive(row, copy, blurb or "", targeting)
        self.is_proposal[slot] = True
        self.proposal_slots.append(slot)
        if blurb and count_trust_markers(blurb):
            self.trusted[slot] = True  # a blurb it was proposed with changes no evidence
        return slot

    def _join_fraudster_ring(self, row: int) -> None:
        """Network proposals reuse the fraudster's own payment and campaign infrastructure."""
        if self.fraudster_ring < 0:
            self.fraudster_ring = len(self.rings)
            self.rings.append(RingInfo(self.fraudster_ring, "clique", [], (0, 3)))
        ring = self.rings[self.fraudster_ring]
        ring.members.append(row)
        self.rows.ring[row] = self.fraudster_ring
        self.rows.tokens[row, 0] = self.ep.proposal_ring_tokens[0]
        self.rows.tokens[row, 3] = self.ep.proposal_ring_tokens[3]

    def _modify(self, op: Modify) -> None:
        slot, edit, new_copy, new_blurb = op.slot, op.edit, op.new_ad_copy, \
            op.new_landing_page_blurb
        row = self.slot_row[slot]
        rows = self.rows
        if edit == 0:
            self.copy[slot] = _drop_one_risk_phrase(self.copy[slot])
            rows.markers[row] = max(0, rows.markers[row] - 1)
            rows.severity[row] *= SOFTEN_SEVERITY
        elif edit == 1:
            self.blurb[slot] = TRUST_PHRASES[int(rows.uniform[row, 13] * len(TRUST_PHRASES))]
            self._trust(slot)
        if new_copy is not None:
            self.copy[slot] = new_copy
            rows.markers[row] = min(count_risk_markers(new_copy), 9)
        if new_blurb is not None:
            self.blurb[slot] = new_blurb
            if count_trust_markers(new_blurb) and not self.trusted[slot]:
                self._trust(slot)
        self.lexical[slot] = lexical_features(self.copy[slot])
        self.events.append(("modify", slot))

    def _trust(self, slot: int) -> None:
        self.trusted[slot] = True
        self.rows.evidence[self.slot_row[slot], TARGET_INDEX["landing_page"]] -= TRUST_SHIFT
        self.events.append(("modify", slot))

    def _end_fraudster_turn(self) -> None:
        self.phase = "investigator_turn"
        self.actions_this_turn = 0
        self.close_if_all_decided()

    def close_if_all_decided(self) -> None:
        """After the fraudster's turn: end play if nothing is left to decide."""
        self._check_all_decided("commit_final" if self.committed else "all_decided")

    # investigator ---------------------------------------------------------
    def _apply_investigator(self, op: Op) -> float:
        kind = type(op)
        if kind is EndTurn:
            self.investigator_log.append(self._investigator_entry("end_turn", 0.0))
            self.feedback[I] = "turn ended"
            self._end_investigator_turn()
            return 0.0
        slot = op.slot
        ad_id = AD_IDS[slot]
        self.budget -= 1
        if kind is Investigate:
            target = op.target
            self.pulled[slot, target] = True
            self.events.append(("pull", slot, target))
            self.n_pulls[slot] = self.n_pulls.item(slot) + 1
            reward = scoring.INVESTIGATE_COST
            source = TARGETS[target]
            row = self.slot_row.item(slot)
            name, value = headline(source, self.rows.evidence.item(row, target))
            findings = evidence_text(source, evidence_fields(self.rows, row, target))
            entry = self._investigator_entry(
                "investigate", reward, ad_id=ad_id, investigation_target=source,
                revealed={name: value},  # what the pull showed, at the time
                findings_excerpt=findings[:FINDINGS_EXCERPT])
            self.feedback[I] = f"pulled {source} for {ad_id}"
        elif kind is Verdict:
            v, conf = op.verdict, op.confidence
            row = self.slot_row.item(slot)
            self.verdict[slot] = v
            self.events.append(("verdict", slot))
            self.confidence[slot] = conf
            self.manual[slot] = True
            self.decided_order[slot] = self.n_manual
            self.decided_round[slot] = self.round_number
            self.n_manual += 1
            self.rationale[slot] = op.rationale
            reward = scoring.verdict_reward(v, self.rows.label.item(row),
                                            self.rows.severity.item(row))
            entry = self._investigator_entry("verdict", reward, ad_id=ad_id,
                                             verdict=VERDICTS[v], confidence=conf,
                                             rationale=op.rationale)
            self.feedback[I] = f"{VERDICTS[v]} {ad_id}"
        else:
            other = op.other
            self.linked[slot, other] = self.linked[other, slot] = True
            self.links.append((slot, other))
            self.events.append(("link", slot, other))
            ra, rb = self.rows.ring[self.slot_row[slot]], self.rows.ring[self.slot_row[other]]
            correct = ra >= 0 and ra == rb
            reward = scoring.LINK_CORRECT if correct else scoring.LINK_WRONG
            entry = self._investigator_entry("link_accounts", reward, ad_id=ad_id,
                                             linked_ad_id=AD_IDS[other], link_reason=op.reason)
            self.feedback[I] = f"linked {ad_id} and {AD_IDS[other]}"
        self.investigator_log.append(entry)
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

    def _check_all_decided(self, reason: str) -> bool:
        """End play when nothing is pending and nothing more can arrive."""
        if self.phase != "investigator_turn":
            return False
        if self.n_arrived > self.n_manual:  # during play every verdict is a manual one
            return False
        if self.n_base_arrived < self.ep.n_base:
            return False
        can_propose = not self.committed and self.proposals_used < self.max_proposals and \
            self.proposal_room()
        if can_propose:
            return False
        self._finish(reason)
        return True

    # auditor --------------------------------------------------------------
    def _apply_auditor(self, op: Op) -> float:
        if type(op) is Submit:
            self.audit_report = self._report(op.report)
            self.auditor_log.append(self._log_entry("submit_audit_report"))
            self.phase = "done"
            for i in range(3):
                self.step_rewards[i] += self.terminal[i]
            self.feedback[A] = "report submitted; the match is over"
            return 0.0
        track, slot, ftype, severity, note = op.track, op.slot, op.flag_type, op.severity, \
            op.note
        self.auditor_actions += 1
        target = AD_IDS[slot] if slot >= 0 else None
        flag = {"track": track, "target_ad_id": target, "flag_type": ftype,
                "severity": severity, "note": note or ""}
        action_type = "flag_investigator" if track == "A" else "flag_fraudster"
        if (track, ftype, slot) in self.claimed:  # a repeat: answered, counted once
            self.auditor_log.append(self._log_entry(action_type, **flag, reward=0.0,
                                                    repeat=True))
            self.feedback[A] = f"flag {ftype} on {target or 'the match'} was already raised; " \
                "it counts once"
            return 0.0
        self.claimed.add((track, ftype, slot))
        self.match_state.claimed[(self.index, *claim_index(op))] = True
        if slot >= 0 or track == "A":  # the tensor face has no index for a match-level B flag
            self.events.append(("flag", track, ftype, slot))
        true = (ftype, target) in self.truth_flags
        reward = scoring.AUDIT_TRUE_FLAG if true else scoring.AUDIT_FALSE_FLAG
        self.auditor_flags.append(flag)
        self.auditor_log.append(self._log_entry(action_type, **flag, reward=reward))
        self.feedback[A] = f"flag {ftype} on {target or 'the match'}: " + \
            ("confirmed by the rule audit" if true else "not supported by the rule audit")
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
                rows.markers[first:last].tolist(), rows.uniform[first:last, 12].tolist(),
                rows.uniform[first:last, 5].tolist(), rows.blurb[first:last].tolist()):
            cat = CATEGORIES[category]
            copy = self._template_copy(category, body, markers, u_marker)
            self.copy[slot] = copy
            self.blurb[slot] = TRUST_PHRASES[blurb] if blurb >= 0 else ""
            self.targeting[slot] = cat.targeting[int(u_target * len(cat.targeting))]
            self.lexical[slot] = lexical_features(copy)
        self.events.append(("arrive", tuple(slots)))

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
        self.events.append(("arrive", (slot,)))
        return slot

    @staticmethod
    def _template_copy(category: int, body: int, n_markers: int, u_marker: float) -> str:
        cat = CATEGORIES[category]
        return _template_text(category, body % len(cat.bodies), n_markers,
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
            self.events.append(("verdict", s))
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
        self.events.append(("finish",))
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

    # ------------------------------------------------------------------ views
    def status_of(self, slot: int) -> str:
        return STATUSES[int(self.verdict[slot]) + 1]

    def rounds_remaining(self) -> int:
        return max(0, self.max_rounds - self.round_number + 1)

    def actions_left_this_turn(self, role_index: int) -> int:
        if PHASE_ROLE.get(self.phase) != ROLES[role_index]:
            return 0
        if role_index == A:
            return MAX_AUDITOR_ACTIONS - self.auditor_actions
        return self.caps[role_index] - self.actions_this_turn


@lru_cache(maxsize=4096)
def _template_text(category: int, body: int, n_markers: int, start: int) -> str:
    """A template ad's copy: a body and ``n_markers`` risk phrases from ``start`` on.
    Memoised: the same copy recurs across matches."""
    cat = CATEGORIES[category]
    text = cat.bodies[body]
    if n_markers:
        picks = [cat.markers[(start + 2 * k) % len(cat.markers)] for k in range(n_markers)]
        text = text + " " + " ".join(picks)
    return text


def _drop_one_risk_phrase(text: str) -> str:
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


__all__ = ["Referee", "token_text"]
