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
set of rules: ``check`` says whether an op is legal and why not (the role module's checks,
``rules.roles.explain``), ``apply`` carries it out (the role module's moves: ``FraudsterMoves``,
``InvestigatorMoves``, ``AuditorMoves``, with the turn and phase machine, ``MatchMachine``). A
rejected op leaves the match untouched. This module holds what ties them together: the match's
settings, its state (a ``MatchState`` row) and the step.

Code outside the rules reads a referee through ``view.MatchView`` (its base class: named
attributes and accessors by slot) and changes it only through the verbs in ``PLAY``.

The rules tell no story of the match: what happened is recorded as typed events
(``rules.events``), on a referee that records them, and ``faces.narration`` tells them as the
feedback, the logs and the evidence text. The text the rules do hold is game state or a rule's
own words: ad copy, blurbs and targeting (the lexical features and the rule audit read them; see
``machine.template_text``), a rationale, the auditor's flags and report, and the reason an op is
refused (``explain``, from the check that failed).

The text face's entry points (``step_as_<role>``,
``build_<role>_observation``, ``state``) are added on top, by ``fraudarena_env.referee.Referee``,
the class users get as ``fraudarena_env.Referee``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from . import scoring
from .actions import (
    Op,
)
from .auditor import REPEATED
from .auditor import repeats as _repeats
from .catalog import (
    CATEGORIES,
    CATEGORY_INDEX,
    MATCH_KNOBS,
    MAX_AUDITOR_ACTIONS,
    MAX_SLOTS,
    PHASE_ROLE,
    PHASES,
    ROLES,
    TASKS,
    TaskConfig,
)
from .copies import KeepsViews
from .errors import IllegalActionError, OutOfTurnError
from .events import Change, Event, Refused
from .evidence import token_text
from .generator import Episode, RingInfo, generate
from .machine import MatchMachine
from .roles import APPLY, END_TURN, MOVES, explain
from .state import END_REASONS, PHASE_OF, SCALARS, A, F, I, MatchState  # noqa: F401
from .view import MatchView, match_id_for  # noqa: F401

# What a referee records of its matches: typed events (the text face reads them), the ops it
# played (the text face replays them into events when first asked: the env's tensor path), or
# nothing (``VectorFraudArena``, whose batched steps bypass the referees).
RECORD_MODES = ("events", "ops", "nothing")


class Forfeit(NamedTuple):
    """What ``played`` keeps of an illegal action that ended the match (``end_on_illegal``):
    why it was illegal and what its maker was charged."""
    reason: str
    charge: float
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


def check_match_seed(seed: object) -> int:
    """``seed`` as a plain int (a numpy integer too), or a ValueError with the rule for a match
    seed."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or \
            not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**63) or None, got {_excerpt(seed)}")
    return int(seed)


def match_settings(seed: int | None, task_id: str, knobs: dict) -> tuple:
    """Check a match's seed, task and knobs, and complete them from the task: ``(task, seed,
    settings, allowed categories, the knobs given)``. Raises ``ValueError`` naming what is
    wrong. No seed draws one."""
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
            isinstance(cfg["allowed_categories"], (list, tuple, set, frozenset)) and
            all(isinstance(c, str) for c in cfg["allowed_categories"])):
        raise ValueError("allowed_categories must be a list or a set of category names, got "
                         f"{_excerpt(cfg['allowed_categories'])}")
    allowed = tuple(cfg["allowed_categories"])
    if "allowed_categories" in knobs:
        bad = [_excerpt(c) for c in allowed if c not in CATEGORY_INDEX][:5]
        if bad or not allowed:
            raise ValueError(f"allowed_categories must be a non-empty subset of "
                             f"{list(CATEGORY_INDEX)}; "
                             + (f"unknown: {', '.join(bad)}" if bad else "got none"))
        if len(set(allowed)) < len(allowed):  # repeats would only cost memory, every match
            raise ValueError(f"allowed_categories must name each category once; got "
                             f"{len(allowed)} names of {len(set(allowed))} categories")
    seed = int(np.random.SeedSequence().entropy % (2**63)) if seed is None else \
        check_match_seed(seed)
    # the knobs given, as plain values: np.int64(5) and 5, or a tuple and a list of the same
    # categories, make the same match and so the same match id and replay setup; so do the same
    # categories in another order (they are a set: which proposals the rules allow), kept in
    # the catalogue's order
    if "allowed_categories" in knobs:
        allowed = tuple(sorted(allowed, key=CATEGORY_INDEX.__getitem__))
    knobs = {k: list(allowed) if k == "allowed_categories" else cfg[k] for k in knobs}
    # ... and a knob given at the task's own value is the same match as one left out
    knobs = {k: v for k, v in knobs.items() if v != _DEFAULT_KNOBS[task_id][k]}
    return task, seed, cfg, allowed, knobs


# each task's knobs as match_settings keeps them (categories in the catalogue's order)
_DEFAULT_KNOBS = {t: {k: sorted(v, key=CATEGORY_INDEX.__getitem__) if k == "allowed_categories"
                      else v for k, v in knobs.items()} for t, knobs in _TASK_KNOBS.items()}


_ROLE_INDEX = {role: i for i, role in enumerate(ROLES)}


class Referee(KeepsViews, MatchView, *MOVES, MatchMachine):  # each role's moves, from the registry
    """One FraudArena match, on the rules' ops: ``reset_match`` starts it, ``check`` and ``apply``
    play it (``PLAY`` lists every verb), and ``MatchView`` is how it is read. (``fraudarena_env.
    Referee`` adds the text face's entry points.)

    The match lives in ``match_state``, a ``MatchState``, as its match ``index`` (a referee of
    its own holds a state of one match; a batch of matches shares one state, a referee per
    match): the referee's arrays are views of that match's. Its changing scalars
    (``state.SCALARS``) are plain attributes, fast to read, which ``store_scalars`` writes to
    the state after every reset and step (``load_scalars`` reads them back after something
    else, a batched step, changed the state).

    ``record`` says what it keeps of each match for the text face (``RECORD_MODES``):
    ``"events"`` (``events``, as they happen), ``"ops"`` (``played``: the ops played, which
    ``faces.narration`` replays into events when first asked) or ``"nothing"``."""

    def __init__(self, illegal_action: str = "raise", *, record: str = "events",
                 state: MatchState | None = None, index: int = 0):
        if illegal_action not in ("raise", "penalize"):
            raise ValueError(f"illegal_action must be 'raise' or 'penalize', not "
                             f"{illegal_action!r}")
        if record not in RECORD_MODES:
            raise ValueError(f"record must be one of {RECORD_MODES}, not {record!r}")
        self.illegal_action = illegal_action
        self.record = record
        self.match_state = MatchState.zeros(1) if state is None else state
        self.index = index
        st, m = self.match_state, index
        for name in _SLOT_ARRAYS:  # views: the referee's per-slot arrays are the state's
            setattr(self, name, getattr(st, name)[m])
        self._scalar_row = st.scalars[m]
        self.load_scalars()
        self.task: TaskConfig | None = None
        self.setup: tuple | None = None  # (seed, task_id, knobs): what a replay resets with
        self._match_id: str | None = ""
        self._episode_id: str | None = None
        self.step_rewards = [0.0, 0.0, 0.0]
        self.narration = None  # the text face's reading of the events (faces.narration)

    # ------------------------------------------------------------------ setup
    def reset_match(self, seed: int | None = None, task_id: str = "task_1",
                    episode_id: str | None = None, *, admit_first_round: bool = True,
                    episode: Episode | None = None, **knobs: Any) -> None:
        """Start match ``seed`` of ``task_id`` (with the match knobs). ``admit_first_round``
        False leaves the first round's organic ads out of the queue, for a caller that admits
        many matches' at once (``VectorFraudArena``); the match is not playable until then.
        ``episode``: the match as ``generator.generate_into`` drew it from this seed, its rows
        already in the state (for a caller that draws many matches at once)."""
        task, seed, cfg, allowed, knobs = match_settings(seed, task_id, knobs)
        self.task = task
        self.seed = seed
        self.max_rounds = cfg["max_rounds"]
        self.max_proposals = cfg["max_proposals"]
        self.caps = (cfg["max_fraudster_actions_per_turn"],
                     cfg["max_investigator_actions_per_turn"], MAX_AUDITOR_ACTIONS)
        self.allowed_categories = allowed
        self.allowed_mask = _allowed_mask(allowed)
        self.setup = (seed, task_id, knobs)
        self._match_id = None  # hashed from the setup when first read
        self._episode_id = episode_id

        st, m = self.match_state, self.index
        if episode is None:
            rng = np.random.Generator(np.random.PCG64(seed))
            episode = generate(task, rng, self.max_rounds, self.max_proposals)
            # The generated rows move into the state; the episode keeps views of them.
            episode.rows = st.load_rows(m, episode.rows)
        self.ep: Episode = episode
        self.rows = episode.rows
        self.rings: list[RingInfo] = list(self.ep.rings)
        self.fraudster_ring = -1
        st.clear(m)
        st.n_base[m] = self.ep.n_base
        st.max_rounds[m] = self.max_rounds
        st.max_proposals[m] = self.max_proposals
        st.caps[m] = self.caps
        st.action_budget[m] = task.action_budget
        st.allowed[m] = self.allowed_mask
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
        self._blank_record()
        # A token new to every reset, which tells observers and the narration to rebuild
        # (never part of game state). Compared by identity: a counter's numbers repeat in
        # another process, where a pickled referee's observers would take a reset for the
        # match they had already read.
        self.epoch = object()
        if admit_first_round:
            self._arrive_base(1)
        self.store_scalars()

    def _blank_record(self) -> None:
        """What a new match has recorded: nothing (text, events, rewards, audit)."""
        S = MAX_SLOTS
        self.copy: list[str] = [""] * S
        self.blurb: list[str] = [""] * S
        self.targeting: list[str] = [""] * S
        self.rationale: list[str | None] = [None] * S
        self.proposal_slots: list[int] = []
        self.links: list[tuple[int, int]] = []
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
        # What changed, in order, since reset (``rules.events.Change``: AdsArrived,
        # SourcePulled, ...): observers replay it to update incrementally.
        self.changes: list[Change] = []
        # What happened, as typed events (``rules.events``), when the referee records them;
        # else the ops it played (record "ops"), for the text face to replay into events.
        self.recording = self.record == "events"
        self.events: list[Event] = []
        self.played: list[Op | str] | None = [] if self.record == "ops" else None

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

    def check_turn(self, role: str, action: object) -> None:
        """Raise ``OutOfTurnError`` unless it is ``role``'s turn (``action`` is named in it)."""
        if self.phase == "done":
            raise OutOfTurnError(role, action, "no match yet: call reset_match(seed=...) first"
                                 if self.setup is None else
                                 "the match is over; call reset_match() first")
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
    def apply(self, role: str, op: Op, masked: bool = False) -> float:
        """Apply a legal op, or raise ``IllegalActionError`` (penalize mode: charge and use up
        the action). Returns the acting role's reward for this step. ``masked``: the op is an
        index of the tensor face, held to the action mask, which also leaves out a flag already
        raised (legal on the text face, where it earns nothing: ``auditor.REPEATED``)."""
        if self.phase == "done" or PHASE_ROLE[self.phase] != role:
            self.check_turn(role, op)
        reason = self.check(role, op)
        if reason is None and masked and self.repeats(op):
            reason = REPEATED
        if reason is not None:
            if self.illegal_action == "raise":
                raise IllegalActionError(role, op, reason)
            return self.penalize(role, op, reason)
        return self.carry_out(role, op)

    def carry_out(self, role: str, op: Op) -> float:
        """Apply ``op``, already known to be legal for ``role`` now (the env's current mask
        offers its index): the step without asking the checks again. Returns the acting
        role's reward."""
        r = self.step_rewards
        r[0] = r[1] = r[2] = 0.0
        self.step_count += 1
        if self.played is not None:
            self.played.append(op)
        idx = _ROLE_INDEX[role]
        r[idx] += APPLY[idx](self, op)
        totals = self.totals
        totals[0] += r[0]
        totals[1] += r[1]
        totals[2] += r[2]
        self.store_scalars()
        return r[idx]

    def penalize(self, role: str, action: object, reason: str) -> float:
        """Charge ``role`` for an illegal action and use the action up (penalize mode)."""
        idx = self._charge(role, action, reason, scoring.ILLEGAL_PENALTY, reason)
        if END_TURN[idx] is None:  # a role without turns: the action uses up one of its flags
            self.auditor_actions += 1
        else:
            self._count_turn_action(idx)
        self.store_scalars()
        return scoring.ILLEGAL_PENALTY

    def end_on_illegal(self, role: str, action: object, reason: str, charge: float) -> float:
        """End the match at once on ``role``'s illegal action and charge it ``charge`` (the
        env's ``illegal_action="terminate"``, as PettingZoo's ``TerminateIllegalWrapper``): the
        match is done, its end reason ``"illegal_action"``; play did not finish, so no ad is
        approved, nothing is graded or audited, and no ending reward is paid. Returns the
        charge."""
        self._charge(role, action, reason, charge, Forfeit(reason, charge), ended=True)
        self.phase = "done"
        self.end_reason = "illegal_action"
        self.store_scalars()
        return charge

    def _charge(self, role: str, action: object, reason: str, charge: float,
                played: str | Forfeit, ended: bool = False) -> int:
        """Take ``role``'s illegal action as a step whose one reward is ``charge`` to ``role``,
        and record it (``played``: what the ops played keep of it). Returns the role's index."""
        self.check_turn(role, action)
        idx = _ROLE_INDEX[role]
        r = self.step_rewards
        r[0] = r[1] = r[2] = 0.0
        self.step_count += 1
        if self.played is not None:
            self.played.append(played)
        if self.recording:
            self.events.append(Refused(self.stamp(), idx, reason, charge, ended))
        r[idx] = charge
        self.totals[idx] += charge
        return idx

    # ------------------------------------------------------------------ for the batched env
    # ``VectorFraudArena`` plays many matches on one state and updates their referees in batch;
    # these verbs are how it changes a referee's record without reaching into it.
    def record_proposals(self, slots: list[int]) -> None:
        """Take the proposals batched steps placed in the state (their rows drawn, their slots
        taken, in a network category their ring's row and tokens set), in the order proposed:
        their places among the proposals and the fraudster's ring (``_propose``'s record), as
        they stand now, before the referee plays an op or ends the match itself. Their text is
        the batched core's, in numbers (``record_text``)."""
        self.rings = list(self.ep.rings)
        self.fraudster_ring = -1
        self.proposal_slots = []
        for slot in slots:
            self._join_ring_if_network(int(self.slot_row[slot]))  # (the same row and tokens)
            self.proposal_slots.append(slot)

    def record_text(self, slot: int, copy: str, blurb: str, targeting: str) -> None:
        """Take an ad's text as a batched core keeps it (``rules.copy_keys``), before the
        referee plays an op or ends the match itself."""
        self.copy[slot], self.blurb[slot], self.targeting[slot] = copy, blurb, targeting

    def sync_links(self, pairs: list[tuple[int, int]]) -> None:
        """Take the links as a batched step left them in the state (``linked``)."""
        self.links = pairs

    def end_play(self, reason: str) -> None:
        """End play now for ``reason`` (an ``END_REASONS`` name), as the turn machine ends it
        (``_finish``: the pending ads approved, the grader, the rule audit, the auditor's turn),
        for a batched step that found it over."""
        self._finish(reason)

    def record_finish(self, *, calibration: list, grader_score: float, grader_terms: dict,
                      plausibility: dict, terminal: list[float], truth_flags: set,
                      end_reason: str) -> None:
        """Take the end of play as a batched end worked it out (``_finish``'s record)."""
        self.calibration = calibration
        self.grader_score, self.grader_terms = grader_score, grader_terms
        self.plausibility = plausibility
        self.terminal = terminal
        self.truth_flags = truth_flags
        self.end_reason = end_reason

    def adopt_events(self, events: list[Event]) -> None:
        """Take the events a replay of the ops played recorded (``faces.narration``): from now
        on the referee records its own."""
        self.events, self.recording, self.played = events, True, None


# The referee's verbs: what code outside the rules may call to change a match (with the read
# surface, ``MatchView``, this is all it may touch; ``tests/test_boundary.py`` checks it).
PLAY = ("reset_match", "check", "check_turn", "repeats", "apply", "carry_out", "penalize",
        "end_on_illegal", "load_scalars", "store_scalars", "record_proposals", "record_text",
        "sync_links", "end_play", "record_finish", "adopt_events")


__all__ = ["Forfeit", "PLAY", "Referee", "token_text"]
