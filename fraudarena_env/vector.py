"""``VectorFraudArena``: N FraudArena matches stepped in lockstep, on the same rules core.

>>> from fraudarena_env.vector import VectorFraudArena
>>> venv = VectorFraudArena(64, task_id="task_3")
>>> batch = venv.reset(seed=0)                   # env i plays match seed 0 + i
>>> actions = venv.sample_actions(batch.action_mask)   # one legal action per env
>>> batch = venv.step(actions)                   # batch.rewards: (64, 3), one column per agent

Each env takes one action per step, for its current agent (``batch.current_agent``, an index
into ``agents``). Observations and masks are in ``SharedSpaceWrapper``'s layout: the role as a
one-hot over the agents, then the role's own vector, padded to the longest role's; the mask is
the role's, padded to the largest catalogue. ``rewards`` are this step's, for every agent (the
auditor's flags, the fraudster's terminal reward...). A finished env (``terminated``: the
auditor submitted; ``truncated``: ``max_cycles`` ran out) starts its next match at once, so the
observation returned for it is the new match's first: env i starts with seed ``s + i`` and its
k-th automatic reset uses ``s + i + k * N`` (``s + i + k * seed_stride`` when the batch is one
shard of a larger one). ``task_id`` may also list tasks: env i plays the ``i % k``-th of the
``k`` given. Every env plays exactly the match
``shared_space_env`` plays on the same seed and actions (``tests/test_vector.py`` checks it step
by step).

How it is fast: all matches share one ``MatchState``. The actions that make up most of a match
(an investigator's pulls, verdicts and links, the fraudster's proposals and edits, the auditor's
flags, turn ends and the ads they bring) and the end of play (``vector_end``: scoring, the rule
audit, the auditor's record) are applied to every env that takes them at once, as array
operations on the state and on the observation and mask buffers. A proposal's text is kept as
numbers (``rules.copy_keys``: a key for its copy, indices for its blurb and targeting), and what
the rules read from it comes from a table filled in once per key. The rest (drawing a new match,
a match or two ending alone, the rare ops) runs through the match's own ``Referee`` and
``Observer``, whose arrays are views of the batch's, so both paths write the same memory; a
referee is given its proposals and their text (``record_proposals``, ``record_text``) before it
plays. Each step copies into the output only the entries that changed, but for rows whose role
changed. The vector env builds no text: its referees record no events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import NamedTuple

import numpy as np
from gymnasium import spaces

from .env import END_REASON_INDEX, PHASE_INDEX
from .faces.encoding import (
    _COUNTRY_SCALE,
    _PAY_SCALE,
    _TLD_SCALE,
    AGE_LOG_SCALE,
    EVIDENCE_SCALE,
    N_ACTIONS,
    OBS_BOUND,
    SURFACE_COLUMNS,
    Observer,
    apply_index,
    describe,
    markers_value,
    withhold,
)
from .faces.state import STATE_SIZE, truth_block
from .rules import scoring
from .rules.action_catalog import (
    A_SUBMIT,
    F_COMMIT,
    F_END,
    F_MODIFY,
    F_PROPOSE,
    I_END,
    I_INVESTIGATE,
    I_LINK,
    I_VERDICT,
    N_T,
    N_VERDICT_OPS,
    OPS,
    PAIR_INDEX,
    PAIRS,
    S,
)
from .rules.auditor import REPEATED, claim_index
from .rules.catalog import (
    AD_SLOT,
    AUDIT_TRACK_A,
    AUDIT_TRACK_B,
    CATEGORIES,
    CONFIDENCE_BUCKETS,
    ESCALATE,
    FRAUD,
    FRAUDSTER_EDITS,
    GRAY_CATEGORY,
    KIND_ESCALATE,
    LEGIT,
    MATCH_KNOBS,
    MAX_AUDITOR_ACTIONS,
    MAX_PULLS_PER_AD,
    RING_SIGNAL_SOURCE,
    ROLES,
    SIGNATURE_REUSE_SHIFT,
    TACTIC_SEVERITY,
    TACTICS,
    TARGETS,
    TASKS,
    TRUST_PHRASES,
)
from .rules.copies import KeepsViews
from .rules.copy_keys import TABLE as COPY_TABLE
from .rules.copy_keys import (
    blurb_text,
    copy_text,
    key_category,
    softened,
    targeting_text,
    template_key,
    template_parts,
)
from .rules.errors import IllegalActionError
from .rules.fraudster import (
    OWN_SIGNALS,
    SOFTEN_SEVERITY,
    TRUST_SHIFT,
    may_arrive_later,
    may_propose,
    queue_room,
)
from .rules.generator import U, blurbs_of, generate_into
from .rules.lexicon import N_LEXICAL, count_trust_markers, lexical_features
from .rules.machine import template_text
from .rules.referee import Referee, match_settings
from .rules.roles import explain
from .rules.state import END_REASONS, Edit, MatchState, Phase
from .vector_end import _N_FLAGS, BatchedEnd

_I_ROLE = ROLES.index("investigator")
_COMMIT_FINAL, _ALL_DECIDED, _MAX_ROUNDS, _BUDGET_EXHAUSTED = (
    END_REASONS.index(r) for r in ("commit_final", "all_decided", "max_rounds",
                                   "budget_exhausted"))
_OVER = ("audit_phase", "done")
_LANDING = TARGETS.index("landing_page")
_N_ROLES = len(ROLES)
_SIGNAL_OF_SOURCE = np.full(N_T, -1, np.int64)  # which ring signal a source reveals, or -1
_SIGNAL_OF_SOURCE[list(RING_SIGNAL_SOURCE)] = np.arange(len(RING_SIGNAL_SOURCE))
_CONFIDENCE = np.asarray(CONFIDENCE_BUCKETS)
# the fraudster's proposal ops (indices below F_MODIFY): each one's category and tactic; its
# edit ops (F_MODIFY to F_END): each one's slot and edit
_PROPOSE_CATEGORY, _PROPOSE_TACTIC = np.array(
    [(op.category, op.tactic) for op in OPS["fraudster"][F_PROPOSE:F_MODIFY]], np.int64).T
_MODIFY_SLOT, _MODIFY_EDIT = np.array(
    [(op.slot, op.edit) for op in OPS["fraudster"][F_MODIFY:F_END]], np.int64).T
_BASE_SEVERITY = np.asarray([c.base_severity for c in CATEGORIES])
_TACTIC_SEVERITY = np.asarray(TACTIC_SEVERITY)
_N_TARGETING = np.asarray([len(c.targeting) for c in CATEGORIES])
_NETWORK = np.asarray([c.family == "network" for c in CATEGORIES])
_OWN_SIGNALS = list(OWN_SIGNALS)
_CAMOUFLAGED = TACTICS.index("camouflaged")
# whether each trust phrase reads as one (and, last, for no blurb at all: index -1)
_PHRASE_TRUSTS = np.asarray([count_trust_markers(p) > 0 for p in TRUST_PHRASES] + [False])
# Each flag index's (track, slot + 1, flag type): where ``state.claimed`` records it.
_FLAG_TRACK, _FLAG_ROW, _FLAG_TYPE = np.array(
    [claim_index(op) for op in OPS["auditor"][:A_SUBMIT]], np.int64).T


# the kinds of action ``step`` applies in batch, and each (phase, action index)'s kind (-1: none;
# an index past a role's catalogue is refused before the kind is read)
_KINDS = ("pull", "verdict", "link", "flag", "pass", "propose", "edit", "turn_end", "submit")
_KIND = np.full((len(Phase), max(N_ACTIONS.values())), -1, np.int64)
for _phase, _kind, _start, _stop in (
        (Phase.INVESTIGATOR_TURN, "pull", 0, I_VERDICT),
        (Phase.INVESTIGATOR_TURN, "verdict", I_VERDICT, I_LINK),
        (Phase.INVESTIGATOR_TURN, "link", I_LINK, I_END),
        (Phase.INVESTIGATOR_TURN, "turn_end", I_END, I_END + 1),
        (Phase.AUDIT_PHASE, "flag", 0, A_SUBMIT),
        (Phase.AUDIT_PHASE, "submit", A_SUBMIT, A_SUBMIT + 1),
        (Phase.FRAUDSTER_TURN, "propose", F_PROPOSE, F_MODIFY),
        (Phase.FRAUDSTER_TURN, "edit", F_MODIFY, F_END),
        (Phase.FRAUDSTER_TURN, "pass", F_END, N_ACTIONS["fraudster"])):
    _KIND[_phase, _start:_stop] = _KINDS.index(_kind)


# a base seed stays below this, so that every auto-reset seed ``seed + i + k * num_envs`` stays
# a valid int64 seed for as long as anyone could play (2**62 more matches)
SEED_LIMIT = 2**62


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as an int, or a ValueError that says what a base seed may be."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
            not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{name} must be an integer from 0 to 2**62 - 1 (each env's k-th "
                         f"auto-reset plays seed + i + k * num_envs, which must stay a valid "
                         f"seed), or None; got {seed!r}")
    return int(seed)


def check_num_envs(num_envs) -> int:
    """``num_envs`` as an int, or a ValueError that says what it may be."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or \
            num_envs < 1:
        raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
    return int(num_envs)


class VectorStep(NamedTuple):
    """What ``reset`` and ``step`` return: one row per env."""

    current_agent: np.ndarray  # (N,) int64, index into ``VectorFraudArena.agents``
    observation: np.ndarray  # (N, D) float32, the shared layout
    action_mask: np.ndarray  # (N, A) int8
    rewards: np.ndarray  # (N, 3) float64, this step's, in ``agents`` order
    terminated: np.ndarray  # (N,) bool: the match ended (the env has reset since)
    truncated: np.ndarray  # (N,) bool: max_cycles ran out (the env has reset since)


class _Views:
    """Named column ranges of one role's buffer: ``cols[name]`` is (start, stop)."""

    def __init__(self, role: str):
        layout = Observer(role).layout
        self.at = {name: (o, o + int(np.prod(shape))) for name, o, shape in layout}
        self.size = Observer(role).size



# The entries that follow the turn (beyond the phase, round and actions left), by role
_GLOBAL_NAMES = {"investigator": ("budget", "queue_may_grow", "pending_count"),
                 "fraudster": ("proposals_remaining", "committed", "queue_room"), "auditor": ()}


def _globals_width(role: str) -> int:
    """How many columns at the head of ``role``'s vector ``_globals`` writes: the entries that
    follow the turn, with the task's block among them, and nothing else."""
    at = _Views(role).at
    spans = [at[name] for name in ("phase", "task", "round", "rounds_remaining",
                                   "actions_left_this_turn", *_GLOBAL_NAMES[role])]
    width = max(b for _, b in spans)
    assert min(a for a, _ in spans) == 0 and sum(b - a for a, b in spans) == width, \
        f"{role}'s vector does not begin with its turn's entries and the task"
    return width


_GLOBALS_WIDTH = {role: _globals_width(role) for role in ROLES}


class VectorFraudArena(KeepsViews, BatchedEnd):
    """``num_envs`` FraudArena matches in lockstep (see the module docstring)."""

    agents = ROLES

    def __init__(self, num_envs: int, task_id: str | Sequence[str] = "task_1",
                 max_cycles: int = 1000, copy: bool = True, seed_stride: int | None = None,
                 first_env: int = 0, **knobs):
        check_num_envs(num_envs)
        tasks = task_list(task_id)
        unknown = set(knobs) - set(MATCH_KNOBS)
        if unknown:
            raise ValueError(f"unknown match knob(s) {sorted(unknown)}; known: {MATCH_KNOBS}")
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, (int, np.integer)) or \
                max_cycles < 1:
            raise ValueError(f"max_cycles must be a positive integer, got {max_cycles!r}")
        if not isinstance(copy, (bool, np.bool_)):
            raise ValueError(f"copy must be True (batches are copies) or False (read-only views "
                             f"of the env's buffers, valid until the next step), got {copy!r}")
        n = self.num_envs = int(num_envs)
        if seed_stride is not None and (isinstance(seed_stride, bool) or not isinstance(
                seed_stride, (int, np.integer)) or seed_stride < n):
            raise ValueError(f"seed_stride must be an integer of at least num_envs ({n}): env i's "
                             f"k-th automatic reset plays seed + i + k * seed_stride; got "
                             f"{seed_stride!r}")
        # how far apart an env's matches lie: num_envs, unless this batch is one shard of a
        # larger one (``seat_workers``), whose envs' seeds it must play
        self.seed_stride = n if seed_stride is None else int(seed_stride)
        if isinstance(first_env, bool) or not isinstance(first_env, (int, np.integer)) or \
                first_env < 0:
            raise ValueError(f"first_env must be a non-negative integer (this batch's first env "
                             f"in the larger one it is a shard of), got {first_env!r}")
        # ... and its first env's number there: the errors name envs by the whole batch's numbers
        self.first_env = int(first_env)
        self.task_id = task_id
        # env i plays task_ids[i]: the tasks given, in turn
        self.task_ids = tuple(tasks[i % len(tasks)] for i in range(n))
        self.knobs = {k: v for k, v in knobs.items() if v is not None}
        self._task_settings: dict[str, tuple] = {}
        for task in set(tasks):  # a bad knob is named now, not at reset
            self._settings(task)
        self.max_steps = int(max_cycles) * _N_ROLES  # as raw_env counts cycles
        self.copy = copy
        self.state = MatchState.zeros(n)
        self.referees = [Referee(record="nothing", state=self.state, index=m) for m in range(n)]
        self.buffers = {r: np.zeros((n, Observer(r).size), np.float32) for r in ROLES}
        self.masks = {r: np.zeros((n, N_ACTIONS[r]), np.int8) for r in ROLES}
        self.observers = [[Observer(r, self.buffers[r][m], self.masks[r][m]) for r in ROLES]
                          for m in range(n)]
        self._views = {r: _Views(r) for r in ROLES}
        sizes = [self._views[r].size for r in ROLES]
        self.vector_size = _N_ROLES + max(sizes)
        self.n_actions = max(N_ACTIONS.values())
        self.single_observation_space = spaces.Dict({
            "observation": spaces.Box(-OBS_BOUND, OBS_BOUND, (self.vector_size,), np.float32),
            "action_mask": spaces.Box(0, 1, (self.n_actions,), np.int8)})
        self.single_action_space = spaces.Discrete(self.n_actions)
        self._obs = np.zeros((n, self.vector_size), np.float32)
        self._mask = np.zeros((n, self.n_actions), np.int8)
        self._shared = np.zeros((n, S, S), np.int16)  # ring signals each pair visibly shares
        self._truth = np.zeros((n, 2, S + 1, _N_FLAGS), bool)  # the rule audit's findings
        self._slot_order = np.zeros((n, S), np.int64)  # the k-th ad to arrive takes this slot
        # each proposal's text, in numbers (``rules.copy_keys``): its copy's key, its blurb (a
        # trust phrase's index, -1: none) and its targeting line (an index in its category's)
        self._copy_key = np.zeros((n, S), np.int64)
        self._blurb = np.full((n, S), -1, np.int8)
        self._aim = np.zeros((n, S), np.int8)
        # each match's rings as drawn: how many, the pairs of ads they hold, and the tokens the
        # fraudster's own ring (its network proposals) shares
        self._n_rings = np.zeros(n, np.int64)
        self._ring_pairs = np.zeros(n, np.int64)
        self._own_tokens = np.zeros((n, len(_OWN_SIGNALS)), np.int64)
        # what each env's proposal rows would show under each tactic (``Episode.proposal_signals``)
        t = len(TACTICS)
        self._drawn_age = np.zeros((n, t, S))
        self._drawn_surface = np.zeros((n, t, S, 3), np.int64)
        self._drawn_markers = np.zeros((n, t, S))
        self._drawn_evidence = np.zeros((n, t, S, N_T))
        self._steps = np.zeros(n, np.int64)
        self._terminal = np.zeros((n, _N_ROLES))  # the ending rewards, paid on the report
        self._resets = np.zeros(n, np.int64)
        self._seed = 0
        self._rng = np.random.default_rng(0)
        self._ready = False
        self._closed = False
        self._arange = np.arange(n)
        self._out_role = np.full(n, -1, np.int64)  # whose view each output row holds
        # env -> how its match ended, for the envs that ended (and reset) in the last step
        self.final_info: dict[int, dict] = {}
        self._keep_final_view: str | None = None
        self.final_view: dict[int, np.ndarray] = {}
        self._full = np.ones(n, bool)  # rows to copy whole at the next output
        self._ending: list[tuple[np.ndarray, np.ndarray]] = []  # (see _end_play)
        self._written = {r: [] for r in ROLES}  # entries written since the last output

    @property
    def keep_final_view(self) -> str | None:
        """Set to a role to keep, in ``final_view``, that role's view of each match that ended
        in the last step (None: keep none)."""
        return self._keep_final_view

    @keep_final_view.setter
    def keep_final_view(self, role: str | None) -> None:
        if role is not None and role not in ROLES:
            raise ValueError(f"keep_final_view must be one of {list(ROLES)} or None, got {role!r}")
        self._keep_final_view = role

    @property
    def seed(self) -> int | None:
        """The seed of the last ``reset`` (drawn there when it was given none), None before the
        first: ``reset(seed=venv.seed)`` plays the same run again."""
        return self._seed if self._ready else None

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None) -> VectorStep:
        """Start every env: env i plays match ``seed + i`` (``seed`` drawn when None)."""
        self._refuse_closed()
        seed = int(np.random.SeedSequence().entropy % SEED_LIMIT) if seed is None else \
            check_seed(seed)
        self._seed = seed
        self._rng = np.random.default_rng(self._seed)
        self._resets[:] = 0
        self.final_info, self.final_view = {}, {}  # (the endings of the last run's last step)
        self._ending = []
        self._full[:] = True
        self._start(self._arange, self._seed + self._arange)
        self._ready = True
        n = self.num_envs
        return self._batch(np.zeros((n, _N_ROLES)), np.zeros(n, bool), np.zeros(n, bool))

    def _start(self, env: np.ndarray, seeds: np.ndarray) -> None:
        """New matches in ``env``: each drawn by its referee, the first round's ads admitted
        together."""
        tasks = np.asarray([self.task_ids[m] for m in env.tolist()])
        for task in dict.fromkeys(tasks.tolist()):  # the matches of each task drawn together
            group = tasks == task
            settings = self._settings(task)
            episodes = generate_into(settings[0], seeds[group].tolist(), settings[2]["max_rounds"],
                                     settings[2]["max_proposals"], self.state.rows, env[group])
            for m, seed, episode in zip(env[group].tolist(), seeds[group].tolist(), episodes):
                ref = self.referees[m]
                ref.reset_match(seed=seed, task_id=task, admit_first_round=False,
                                episode=episode, **self.knobs)
                self._slot_order[m] = episode.slot_order
                drawn, p = episode.proposal_signals, episode.proposal_signals.age_days.shape[1]
                self._drawn_age[m, :, :p] = drawn.age_days
                self._drawn_surface[m, :, :p] = drawn.surface
                self._drawn_markers[m, :, :p] = drawn.markers
                self._drawn_evidence[m, :, :p] = drawn.evidence
                self._n_rings[m] = len(episode.rings)
                self._ring_pairs[m] = ref.n_ring_pairs
                self._own_tokens[m] = episode.proposal_ring_tokens[list(_OWN_SIGNALS)]
                self._replay(m)
        self._shared[env] = 0
        self._truth[env] = False
        self._steps[env] = 0
        self._arrive(env)

    def _settings(self, task_id: str) -> tuple:
        """``match_settings`` of the task with this env's knobs (what the draw needs)."""
        if task_id not in self._task_settings:
            self._task_settings[task_id] = match_settings(0, task_id, dict(self.knobs))
        return self._task_settings[task_id]

    def _replay(self, m: int) -> None:
        """Bring env ``m``'s three observers up to date with what its referee did."""
        ref = self.referees[m]
        self._full[m] = True
        fraudster, investigator, auditor = self.observers[m]
        if ref.phase in _OVER:  # only the auditor acts again before the next match
            fraudster.skip(ref)
            investigator.skip(ref)
        else:
            fraudster.replay(ref)
            investigator.replay(ref)
        auditor.replay(ref)
        if ref.phase == "audit_phase" and not self._truth[m].any() and ref.truth_flags:
            self._record_truth(m, ref.truth_flags)

    def _record_truth(self, m: int, truth: set) -> None:
        for flag_type, ad_id in truth:
            track = 0 if flag_type in AUDIT_TRACK_A else 1
            flags = AUDIT_TRACK_A if track == 0 else AUDIT_TRACK_B
            slot = -1 if ad_id is None else AD_SLOT[ad_id]
            self._truth[m, track, slot + 1, flags.index(flag_type)] = True

    # ------------------------------------------------------------------ step
    def step(self, actions, active=None) -> VectorStep:
        """Apply one action per env (its current agent's) and return the next batch.

        ``active``: an optional (N,) bool array; only those envs act (the others' actions are
        ignored, and they neither move nor count a step), e.g. to let opponents move in the
        envs where it is not a learner's turn."""
        self._refuse_closed()
        if not self._ready:
            raise RuntimeError("step() before reset(): call reset(seed=...) first")
        a = np.asarray(actions)
        n = self.num_envs
        if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be an integer array of shape ({n},), got "
                             f"{a.dtype} {a.shape}")
        if active is None:
            active = np.ones(n, bool)
        else:
            active = np.asarray(active)
            if active.shape != (n,) or active.dtype != bool:
                raise ValueError(f"active must be a bool array of shape ({n},), got "
                                 f"{active.dtype} {active.shape}")
        if (m := first_past_int64(a, active)) is not None:
            role = ROLES[self.state.phase[m]]
            raise illegal_action_error(self.first_env + m, int(a[m]), role, f"index {int(a[m])} "
                                       f"is outside {role}'s Discrete({N_ACTIONS[role]})")
        a = np.where(active, a, 0).astype(np.int64)
        self._check(a, active)
        st = self.state
        rewards = np.zeros((n, _N_ROLES))
        # each env's kind of action (an index into _KINDS; -1: idle), then the envs of each kind
        kind = np.where(active, _KIND[st.phase, a], -1)
        order = np.argsort(kind, kind="stable")
        bounds = np.searchsorted(kind[order], np.arange(len(_KINDS) + 2) - 1).tolist()
        (pulls, verdicts, links, flags, passes, proposals, edits, turn_ends, submits) = (
            order[bounds[i + 1]:bounds[i + 2]] for i in range(len(_KINDS)))
        fast = kind >= 0
        if len(pulls):
            self._pull(pulls, a[pulls] - I_INVESTIGATE, rewards)
        if len(verdicts):
            self._verdict(verdicts, a[verdicts] - I_VERDICT, rewards)
        if len(links):
            self._link(links, a[links] - I_LINK, rewards)
        if len(flags):
            self._flag(flags, a[flags], rewards)
        st.step_count[fast] += 1
        if len(proposals):
            self._propose(proposals, a[proposals])
        if len(edits):
            self._modify(edits, a[edits])
        if len(passes):
            self._pass(passes, a[passes] == F_COMMIT)
        reviews = np.concatenate((pulls, verdicts, links))
        if len(reviews):
            self._after_reviews(reviews)
        if len(turn_ends):
            self._end_turns(turn_ends)
        if len(submits):  # the report: the match is over, its ending rewards are paid
            st.phase[submits] = Phase.DONE
            rewards[submits] = self._terminal[submits]
        if self._ending:  # every match whose play ended in this step, in one batch
            ending, self._ending = self._ending, []
            self._finish_batch(np.concatenate([e for e, _ in ending]),
                               np.concatenate([r for _, r in ending]))
        for m in np.flatnonzero(~fast & active).tolist():  # any other op, match by match
            ref = self._synced_referee(m)
            apply_index(ref, ROLES[st.phase[m]], int(a[m]))
            rewards[m] = ref.step_rewards
            self._replay(m)
        self._steps += active
        terminated = active & (st.phase == Phase.DONE)
        truncated = active & ~terminated & (self._steps >= self.max_steps)
        over = np.flatnonzero(terminated | truncated)
        self.final_info = {m: self._final_info(m, bool(truncated[m])) for m in over.tolist()}
        self.final_view = {} if self._keep_final_view is None else \
            self._final_views(self._keep_final_view, over)
        if len(over):
            self._resets[over] += 1
            self._start(over, self._seed + over + self._resets[over] * self.seed_stride)
        return self._batch(rewards, terminated, truncated, active)

    def _synced_referee(self, m: int) -> Referee:
        """Match ``m``'s referee, its scalars and links taken from the state a batched step left
        (``load_scalars``, ``sync_links``; see ``_link``), ready to play an op or end play."""
        ref = self.referees[m]
        ref.load_scalars()
        ref.sync_links([tuple(p) for p in np.argwhere(np.triu(self.state.linked[m], 1)).tolist()])
        st = self.state
        proposals = np.flatnonzero(st.is_proposal[m])
        ref.record_proposals(proposals[np.argsort(st.slot_row[m, proposals])].tolist())
        for s in ref.proposal_slots:  # their text, which the batched steps keep in numbers
            key = int(self._copy_key[m, s])
            ref.record_text(s, copy_text(key), blurb_text(int(self._blurb[m, s])),
                            targeting_text(int(key_category(key)), int(self._aim[m, s])))
        return ref

    def _final_views(self, role: str, over: np.ndarray) -> dict[int, np.ndarray]:
        """``role``'s view of each match in ``over`` as it ends, as the scalar env's
        ``observe(role)`` gives it then."""
        if not len(over):  # (most steps: a VectorRoleEnv keeps the learner's final views)
            return {}
        return dict(zip(over.tolist(), self._observed(role, over, shown=True)))

    def _observed(self, role: str, envs: np.ndarray, shown: bool,
                  out: np.ndarray | None = None) -> np.ndarray:
        """``role``'s vectors in ``envs`` (k, size), written into ``out`` (or a new array): as
        its observer in the scalar env keeps them (``shown``: as ``observe(role)`` shows them,
        the investigator's unseen ads withheld while the fraudster moves). The entries that
        follow the turn are brought up to date (a role's rows are otherwise written only while
        it acts), and a match whose play ended shows what was pending approved."""
        self._globals(role, envs, output=False)
        st, at = self.state, self._views[role].at
        status_at, left_at = at["status"][0], at["actions_left_this_turn"][0]
        pulls_left = at["pulls_left"][0] if role == "investigator" else 0
        if out is None:
            views = self.buffers[role][envs]
        else:
            views = out
            views[...] = self.buffers[role] if envs is self._arange else self.buffers[role][envs]
        views[st.phase[envs] != ROLES.index(role), left_at] = 0.0  # no actions off its turn
        ended = np.flatnonzero(st.end_reason[envs] >= 0)
        if len(ended):  # play ended: what was pending is approved now
            e = envs[ended]
            k, slot = np.nonzero(st.present[e])
            cols = status_at + 4 * slot[:, None] + np.arange(4)
            views[ended[k][:, None], cols] = \
                st.verdict[e[k], slot][:, None] + 1 == np.arange(4)
            if role == "investigator":  # a decided ad takes no more pulls
                views[ended[k], pulls_left + slot] = 0.0
        if shown and role == "investigator":
            for j in np.flatnonzero(st.phase[envs] == Phase.FRAUDSTER_TURN).tolist():
                m = int(envs[j])
                hidden = np.flatnonzero(st.present[m] & (st.arrived[m] == st.round_number[m]))
                if len(hidden):
                    withhold(self.observers[m][ROLES.index(role)], views[j], hidden,
                             int(st.n_arrived[m] - st.n_manual[m]))
        return views

    def global_state(self, out: np.ndarray | None = None) -> np.ndarray:
        """Every env's global state (N, ``STATE_SIZE``) float32: the scalar env's ``state()``,
        for a centralised critic in training (it holds what no player sees). Written into
        ``out`` when given (float32, that shape; e.g. a rollout buffer's row), else a new
        array."""
        self._refuse_closed()
        if not self._ready:
            raise RuntimeError("global_state() before reset(): call reset(seed=...) first")
        n, size = self.num_envs, STATE_SIZE
        if out is None:
            out = np.empty((n, size), np.float32)
        elif not isinstance(out, np.ndarray) or out.shape != (n, size) or \
                out.dtype != np.float32:
            raise ValueError(f"out must be a float32 array of shape ({n}, {size}), got "
                             f"{getattr(out, 'dtype', type(out).__name__)} "
                             f"{getattr(out, 'shape', '')}")
        at = 0
        for role in ROLES:
            width = self._views[role].size
            self._observed(role, self._arange, shown=False, out=out[:, at:at + width])
            at += width
        st, rows = self.state, self.state.rows
        e = self._arange[:, None]
        row = np.maximum(st.slot_row, 0)
        out[:, at:] = truth_block(st.present, st.is_proposal, rows.label[e, row],
                                  rows.ring[e, row], rows.severity[e, row])
        return out

    def _final_info(self, m: int, cut: bool) -> dict:
        """How env ``m``'s match ended, read before it resets: ``raw_env``'s info keys but the
        returns (the vector env hands out each step's rewards and keeps no totals)."""
        ref = self.referees[m]
        ref.load_scalars()
        reason = "max_cycles" if cut else ref.end_reason
        graded = ref.grader_score is not None
        return {"phase": PHASE_INDEX[ref.phase], "round": int(self.state.round_number[m]),
                "end_reason": END_REASON_INDEX[reason], "has_grader": graded,
                "grader_score": float(ref.grader_score) if graded else 0.0}

    def _check(self, a: np.ndarray, active: np.ndarray) -> None:
        """Refuse the whole step, before anything changes, if any active env's action is
        illegal."""
        m = first_illegal(self._mask, a, active)
        if m is not None:
            raise illegal_action_error(self.first_env + m, int(a[m]),
                                       *self.illegal_reason(m, int(a[m])))

    def illegal_reason(self, m: int, index: int) -> tuple[str, str]:
        """The role to act in env ``m`` and why action ``index`` is illegal there; a ValueError
        if it is legal (the env's mask offers it)."""
        self._refuse_closed()
        if not self._ready:
            raise RuntimeError("illegal_reason() before reset(): call reset(seed=...) first")
        m = self._env_index(m, "m")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"index must be an integer action index, got {index!r}")
        role = ROLES[self.state.phase[m]]
        if not 0 <= index < N_ACTIONS[role]:
            return role, f"index {index} is outside {role}'s Discrete({N_ACTIONS[role]})"
        if index < self.n_actions and self._mask[m, index] == 1:  # (the mask step() checks)
            raise ValueError(f"index {index} ({describe(role, index)}) is legal in env "
                             f"{self.first_env + m}: its mask offers it")
        reason = explain(self.state, m, role, OPS[role][index]) or REPEATED
        return role, reason + f" (index {index} is {describe(role, index)})"

    def _env_index(self, m, name: str) -> int:
        """``m`` as an env number of this batch, or a ValueError naming ``name``."""
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or \
                not 0 <= m < self.num_envs:
            raise ValueError(f"{name} must be an env number from 0 to {self.num_envs - 1}, got "
                             f"{m!r}")
        return int(m)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` let the matches go."""
        return self._closed

    def _refuse_closed(self) -> None:
        if self._closed:
            raise RuntimeError("this env is closed; build a new one")

    # ------------------------------------------------------------------ the common actions
    def _pull(self, env: np.ndarray, index: np.ndarray, rewards: np.ndarray) -> None:
        st = self.state
        slot, source = index // N_T, index % N_T
        row = st.slot_row[env, slot]
        st.budget[env] -= 1
        st.pulled[env, slot, source] = True
        st.n_pulls[env, slot] += 1
        rewards[env, _I_ROLE] = scoring.INVESTIGATE_COST
        n = st.n_pulls[env, slot]
        # what the investigator and the fraudster see of it (encoding's _inv_pull, _fr_pull)
        put, at = self._put, self._views["investigator"].at
        put("investigator", env, at["pulled"][0] + N_T * slot + source, 1.0)
        value = st.rows.evidence[env, row, source] / EVIDENCE_SCALE
        put("investigator", env, at["evidence"][0] + N_T * slot + source,
            np.clip(value, -OBS_BOUND, OBS_BOUND))
        put("investigator", env, at["pulls_left"][0] + slot,
            (MAX_PULLS_PER_AD - n) / MAX_PULLS_PER_AD)
        mask = self.masks["investigator"]
        base = I_INVESTIGATE + slot * N_T
        mask[env, base + source] = 0
        full = n >= MAX_PULLS_PER_AD
        if full.any():
            mask[env[full][:, None], base[full][:, None] + np.arange(N_T)] = 0
        put("fraudster", env, self._views["fraudster"].at["pulled"][0] + N_T * slot + source, 1.0)
        signal = _SIGNAL_OF_SOURCE[source]
        ring = signal >= 0
        if ring.any():
            self._share(env[ring], slot[ring], source[ring], signal[ring], row[ring])

    def _share(self, env, slot, source, signal, row) -> None:
        """Pairs that now visibly share a ring signal (encoding's _inv_pull, in batch)."""
        st = self.state
        token = st.rows.tokens[env, row, signal]
        others_row = np.maximum(st.slot_row[env], 0)  # (K, S)
        others_token = st.rows.tokens[env[:, None], others_row, signal[:, None]]
        seen = st.pulled[env[:, None], np.arange(S), source[:, None]] & st.present[env]
        seen &= others_token == token[:, None]
        seen[np.arange(len(env)), slot] = False
        k, j = np.nonzero(seen)
        if not len(k):
            return
        e, s = env[k], slot[k]
        self._shared[e, s, j] += 1
        self._shared[e, j, s] += 1
        put, at = self._put, self._views["investigator"].at
        put("investigator", e, at["pair_shared_signals"][0] + PAIR_INDEX[s, j],
            self._shared[e, s, j] / 4.0)
        col = at["collisions"][0]
        count = np.count_nonzero(self._shared[e], axis=2)  # (pairs, S): rows of each env
        put("investigator", e, col + j, count[np.arange(len(e)), j] / S)
        put("investigator", e, col + s, count[np.arange(len(e)), s] / S)

    def _verdict(self, env: np.ndarray, index: np.ndarray, rewards: np.ndarray) -> None:
        st = self.state
        slot = index // N_VERDICT_OPS
        verdict = (index % N_VERDICT_OPS) // len(_CONFIDENCE)
        confidence = _CONFIDENCE[index % len(_CONFIDENCE)]
        st.budget[env] -= 1
        st.verdict[env, slot] = verdict
        st.confidence[env, slot] = confidence
        st.manual[env, slot] = True
        st.decided_order[env, slot] = st.n_manual[env]
        st.decided_round[env, slot] = st.round_number[env]
        st.n_manual[env] += 1
        row = st.slot_row[env, slot]
        label, severity = st.rows.label[env, row], st.rows.severity[env, row]
        rewards[env, _I_ROLE] = scoring.verdict_rewards(verdict, label, severity)
        for views_role in ("investigator", "fraudster"):
            base = self._views[views_role].at["status"][0] + 4 * slot
            self._put(views_role, env, base, 0.0)
            self._put(views_role, env, base + verdict + 1, 1.0)
        self._put("investigator", env, self._views["investigator"].at["pulls_left"][0] + slot,
                  0.0)
        mask = self.masks["investigator"]
        mask[env[:, None], I_INVESTIGATE + slot[:, None] * N_T + np.arange(N_T)] = 0
        mask[env[:, None], I_VERDICT + slot[:, None] * N_VERDICT_OPS +
             np.arange(N_VERDICT_OPS)] = 0
        edits = len(FRAUDSTER_EDITS)
        self.masks["fraudster"][env[:, None], F_MODIFY + slot[:, None] * edits +
                                np.arange(edits)] = 0

    def _link(self, env: np.ndarray, pair: np.ndarray, rewards: np.ndarray) -> None:
        st = self.state
        a, b = PAIRS[pair, 0], PAIRS[pair, 1]
        st.budget[env] -= 1
        # (``state.linked`` has them; the referees' ``links`` lists, in the order made, are
        # for the text face, which the vector env does not have)
        st.linked[env, a, b] = st.linked[env, b, a] = True
        ring_a = st.rows.ring[env, st.slot_row[env, a]]
        ring_b = st.rows.ring[env, st.slot_row[env, b]]
        correct = (ring_a >= 0) & (ring_a == ring_b)
        rewards[env, _I_ROLE] = np.where(correct, scoring.LINK_CORRECT, scoring.LINK_WRONG)
        inv, at = self.buffers["investigator"], self._views["investigator"].at
        self._put("investigator", env, at["pair_linked"][0] + pair, 1.0)
        for end in (a, b):
            col = at["links"][0] + end
            self._put("investigator", env, col, inv[env, col] + 1.0 / S)
        self.masks["investigator"][env, I_LINK + pair] = 0

    def _after_reviews(self, env: np.ndarray) -> None:
        """What follows a review (``Referee.after_review``, in batch): play ends where the
        budget is spent or nothing is left to decide; elsewhere the review counts against the
        turn, and the turns it fills end here."""
        st = self.state
        spent = st.budget[env] <= 0
        decided = ~spent & self._all_decided(env)
        if spent.any():
            self._end_play(env[spent], _BUDGET_EXHAUSTED)
        if decided.any():
            self._end_play(env[decided], _ALL_DECIDED)
        env = env[~spent & ~decided]
        st.actions_this_turn[env] += 1
        ends = env[st.actions_this_turn[env] >= st.caps[env, _I_ROLE]]
        if len(ends):
            self._end_turns(ends)

    def _end_play(self, env: np.ndarray, reason) -> None:
        """Play ends in ``env`` (each with its ``END_REASONS`` code, or one for all): noted
        here and ended at the end of the step's ops, every match that ends in the step in one
        ``_finish_batch`` (whose array work costs about as much for one match as for many; until
        then nothing reads these matches, as each plays one op a step)."""
        self._ending.append((env, np.broadcast_to(np.asarray(reason, np.int64), env.shape)))

    def _all_decided(self, env: np.ndarray) -> np.ndarray:
        """``MatchMachine._check_all_decided``'s test, in the investigator's turn: nothing
        pending and nothing more can arrive."""
        st = self.state
        can_propose = may_arrive_later(st.committed[env], st.proposals_used[env],
                                       st.max_proposals[env], st.round_number[env] + 1,
                                       st.max_rounds[env]) & _room(st, env)
        return (st.n_arrived[env] <= st.n_manual[env]) & \
            (st.n_base_arrived[env] >= st.n_base[env]) & ~can_propose

    def _end_turns(self, env: np.ndarray) -> None:
        """The investigator's turn ends: the next round, and the organic ads due in it (the
        last round's end ends play, match by match)."""
        st = self.state
        st.actions_this_turn[env] = 0
        last = st.round_number[env] >= st.max_rounds[env]
        if last.any():
            self._end_play(env[last], _MAX_ROUNDS)
        env = env[~last]
        if not len(env):
            return
        st.round_number[env] += 1
        self._arrive(env)
        st.phase[env] = np.where(st.committed[env] != 0, Phase.INVESTIGATOR_TURN,
                                 Phase.FRAUDSTER_TURN)

    def _arrive(self, env: np.ndarray, by_round: np.ndarray | None = None) -> None:
        """The organic ads due by each env's round (or ``by_round``) take their slots
        (``Referee._arrive_base`` and the observers' arrival handlers, in batch; no text is
        written)."""
        st, rows = self.state, self.state.rows
        by_round = st.round_number[env] if by_round is None else by_round
        first = st.n_base_arrived[env]
        n_rows = rows.arrival_round.shape[1]
        due = (rows.arrival_round[env] <= by_round[:, None]) & \
            (np.arange(n_rows) < st.n_base[env][:, None])
        count = due.sum(axis=1) - first
        if not count.any():
            return
        e = np.repeat(env, count)
        j = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
        row = np.repeat(first, count) + j
        slot = self._slot_order[e, np.repeat(st.n_arrived[env], count) + j]
        st.slot_row[e, slot] = row
        st.present[e, slot] = True
        st.arrived[e, slot] = np.repeat(by_round, count)
        st.n_base_arrived[env] += count
        st.n_arrived[env] += count
        category = rows.category[e, row]
        lexical, surface = _arrival_features(
            category, rows.body[e, row], rows.markers[e, row], rows.uniform[e, row, U.MARKER_START],
            rows.age_days[e, row], rows.tld[e, row], rows.payment_type[e, row],
            rows.country[e, row])
        st.lexical[e, slot] = lexical
        self._show_arrivals(e, slot, category, lexical, surface)

    def _show_arrivals(self, e, slot, category, lexical, surface) -> None:
        """What the investigator and the fraudster see of ads that just arrived (encoding's
        _inv_arrive and _fr_arrive): ``e``, ``slot``, ... one entry per ad."""
        st = self.state
        put = self._put
        for role in ("investigator", "fraudster"):
            at = self._views[role].at
            put(role, e, at["present"][0] + slot, 1.0)
            put(role, e, at["status"][0] + 4 * slot, 1.0)
            put(role, e, at["category"][0] + len(CATEGORIES) * slot + category, 1.0)
            lex = at["lexical"][0] + N_LEXICAL * slot
            put(role, e[:, None], lex[:, None] + np.arange(N_LEXICAL), lexical)
        at = self._views["investigator"].at
        put("investigator", e, at["arrived_round"][0] + slot, st.arrived[e, slot] / st.max_rounds[e])
        width = len(SURFACE_COLUMNS)
        put("investigator", e[:, None], at["surface"][0] + width * slot[:, None] + np.arange(width),
            surface)
        put("investigator", e, at["pulls_left"][0] + slot, 1.0)
        mask = self.masks["investigator"]
        mask[e[:, None], I_INVESTIGATE + N_T * slot[:, None] + np.arange(N_T)] = 1
        mask[e[:, None], I_VERDICT + N_VERDICT_OPS * slot[:, None] +
             np.arange(N_VERDICT_OPS)] = 1
        others = st.present[e] & (np.arange(S) != slot[:, None])
        k, other = np.nonzero(others)
        mask[e[k], I_LINK + PAIR_INDEX[slot[k], other]] = 1

    def _propose(self, env: np.ndarray, index: np.ndarray) -> None:
        """The fraudster proposes: the ads drawn and queued in batch, as ``_propose`` draws a
        template proposal (its row from the proposal signals drawn for its tactic, its copy's
        features from the template table, its text kept in numbers, a network proposal in the
        fraudster's own ring); what the roles see of it written in batch; the proposal counts
        against the turn. A referee learns of its proposals when it next plays
        (``_synced_referee``)."""
        st, rows = self.state, self.state.rows
        op = index - F_PROPOSE
        category, tactic = _PROPOSE_CATEGORY[op], _PROPOSE_TACTIC[op]
        i = st.proposals_used[env]
        row = st.n_base[env] + i
        st.proposals_used[env] += 1
        label = np.where(category == GRAY_CATEGORY, ESCALATE, FRAUD)
        rows.label[env, row] = label
        rows.category[env, row] = category
        rows.severity[env, row] = _BASE_SEVERITY[category] * _TACTIC_SEVERITY[tactic]
        rows.arrival_round[env, row] = st.round_number[env]
        # earlier proposals of the same tactic make this one's evidence read worse
        mine = rows.tactic[env[:, None], np.maximum(st.slot_row[env], 0)] == tactic[:, None]
        reuse = np.count_nonzero(mine & st.is_proposal[env], axis=1)
        drawn = (env, tactic, i)  # generator.proposal_surface, in batch
        rows.tactic[env, row] = tactic
        rows.kind[env, row] = np.where(label == ESCALATE, KIND_ESCALATE, 1 + tactic)
        rows.age_days[env, row] = self._drawn_age[drawn]
        surface = self._drawn_surface[drawn]
        rows.tld[env, row], rows.payment_type[env, row], rows.country[env, row] = surface.T
        rows.evidence[env, row] = self._drawn_evidence[drawn] + \
            SIGNATURE_REUSE_SHIFT * reuse[:, None]
        markers = self._drawn_markers[drawn].astype(rows.markers.dtype)  # as the row keeps it
        rows.markers[env, row] = markers
        slot = self._slot_order[env, st.n_arrived[env]]  # MatchMachine._arrive, in batch
        st.n_arrived[env] += 1
        st.slot_row[env, slot] = row
        st.present[env, slot] = True
        st.arrived[env, slot] = st.round_number[env]
        u = rows.uniform[env, row]
        body = (u[:, U.BODY] * 3).astype(np.int64)
        st.lexical[env, slot] = _template_lexical(category, body, markers, u[:, U.MARKER_START])
        st.is_proposal[env, slot] = True
        # a camouflaged ad carries a trust blurb as often as an organic legit ad, the others as
        # often as organic fraud
        phrase = blurbs_of(np.where(tactic == _CAMOUFLAGED, LEGIT, FRAUD), u)
        st.trusted[env, slot] |= _PHRASE_TRUSTS[phrase]
        self._copy_key[env, slot] = template_key(category, body, markers, u[:, U.MARKER_START])
        self._blurb[env, slot] = phrase
        self._aim[env, slot] = (u[:, U.TARGETING] * _N_TARGETING[category]).astype(np.int64)
        # a network proposal joins the fraudster's own ring (``_join_ring_if_network``): the
        # ring after the drawn ones, sharing its payment and campaign infrastructure
        net = _NETWORK[category]
        e, r = env[net], row[net]
        rows.ring[e, r] = self._n_rings[e]
        rows.tokens[e[:, None], r[:, None], _OWN_SIGNALS] = self._own_tokens[e]
        surface = self._show_own_ads(env, slot, row)
        self._show_arrivals(env, slot, rows.category[env, row], st.lexical[env, slot], surface)
        at = self._views["fraudster"].at
        self._put("fraudster", env, at["mine"][0] + slot, 1.0)
        self._put("fraudster", env, at["my_tactic"][0] + len(TACTICS) * slot + rows.tactic[env, row],
                  1.0)
        self._count_fraudster_actions(env)

    def _modify(self, env: np.ndarray, index: np.ndarray) -> None:
        """The fraudster edits its pending ads, as ``FraudsterMoves._modify`` does on template
        copy: a soften takes a risk phrase out (the copy's key moves on, a marker goes, the
        severity shrinks), a trust blurb makes the landing page look cleaner; what the roles see
        of the edit is written in batch, and the edit counts against the fraudster's turn."""
        st, rows = self.state, self.state.rows
        slot, edit = _MODIFY_SLOT[index - F_MODIFY], _MODIFY_EDIT[index - F_MODIFY]
        row = st.slot_row[env, slot]
        soften, trust = edit == Edit.SOFTEN_COPY, edit == Edit.ADD_TRUST_BLURB
        e, s, r = env[soften], slot[soften], row[soften]
        self._copy_key[e, s] = softened(self._copy_key[e, s])
        rows.markers[e, r] = np.maximum(rows.markers[e, r] - 1, 0)
        rows.severity[e, r] *= SOFTEN_SEVERITY
        e, s, r = env[trust], slot[trust], row[trust]
        self._blurb[e, s] = (rows.uniform[e, r, U.TRUST_PHRASE] * len(TRUST_PHRASES)).astype(
            np.int64)
        st.trusted[e, s] = True
        rows.evidence[e, r, _LANDING] -= TRUST_SHIFT
        st.lexical[env, slot] = COPY_TABLE.lexical(self._copy_key[env, slot])
        surface = self._show_own_ads(env, slot, row)
        put, at = self._put, self._views["investigator"].at
        lex = at["lexical"][0] + N_LEXICAL * slot
        put("investigator", env[:, None], lex[:, None] + np.arange(N_LEXICAL), st.lexical[env, slot])
        put("investigator", env, at["surface"][0] + len(SURFACE_COLUMNS) * slot + 4, surface[:, 4])
        seen = st.pulled[env, slot, _LANDING]
        landing = rows.evidence[env[seen], row[seen], _LANDING] / EVIDENCE_SCALE
        put("investigator", env[seen], at["evidence"][0] + N_T * slot[seen] + _LANDING,
            np.clip(landing, -OBS_BOUND, OBS_BOUND))
        self._count_fraudster_actions(env)

    def _show_own_ads(self, env, slot, row) -> np.ndarray:
        """What the fraudster sees of its own ads (encoding's _fr_modify): their copy, hidden
        signals and surface, and which edits are left; returns their surface."""
        st, rows = self.state, self.state.rows
        markers = rows.markers[env, row]
        surface = _surface_values(rows.age_days[env, row], rows.tld[env, row],
                                  rows.payment_type[env, row], rows.country[env, row], markers)
        put, at = self._put, self._views["fraudster"].at
        lex = at["lexical"][0] + N_LEXICAL * slot
        put("fraudster", env[:, None], lex[:, None] + np.arange(N_LEXICAL), st.lexical[env, slot])
        evidence = np.clip(rows.evidence[env, row] / EVIDENCE_SCALE, -OBS_BOUND, OBS_BOUND)
        put("fraudster", env[:, None], at["my_evidence"][0] + N_T * slot[:, None] + np.arange(N_T),
            evidence)
        width = len(SURFACE_COLUMNS)
        put("fraudster", env[:, None], at["my_surface"][0] + width * slot[:, None] + np.arange(width),
            surface)
        trusted = st.trusted[env, slot]
        put("fraudster", env, at["trusted"][0] + slot, trusted)
        edits = F_MODIFY + slot * len(FRAUDSTER_EDITS)
        pending = st.verdict[env, slot] < 0
        mask = self.masks["fraudster"]
        mask[env, edits] = pending & (markers > 0)
        mask[env, edits + 1] = pending & ~trusted
        return surface

    def _count_fraudster_actions(self, env: np.ndarray) -> None:
        """Each proposal or edit counts against the fraudster's turn; a full turn ends."""
        st = self.state
        st.actions_this_turn[env] += 1
        ends = env[st.actions_this_turn[env] >= st.caps[env, 0]]
        if len(ends):
            self._pass(ends, np.zeros(len(ends), bool))

    def _pass(self, env: np.ndarray, commit: np.ndarray) -> None:
        """The fraudster ends its turn (``commit``: and proposes no more): the investigator's
        turn, unless nothing is left to decide (then the referee ends play)."""
        st = self.state
        st.committed[env[commit]] = 1
        st.phase[env] = Phase.INVESTIGATOR_TURN
        st.actions_this_turn[env] = 0
        done = self._all_decided(env)  # ``close_if_all_decided``
        if done.any():
            env = env[done]
            self._end_play(env, np.where(st.committed[env] != 0, _COMMIT_FINAL, _ALL_DECIDED))

    def _flag(self, env: np.ndarray, index: np.ndarray, rewards: np.ndarray) -> None:
        st = self.state
        track, row, kind = _FLAG_TRACK[index], _FLAG_ROW[index], _FLAG_TYPE[index]
        st.auditor_actions[env] += 1
        st.claimed[env, track, row, kind] = True
        true = self._truth[env, track, row, kind]
        rewards[env, 2] = np.where(true, scoring.AUDIT_TRUE_FLAG, scoring.AUDIT_FALSE_FLAG)
        at = self._views["auditor"].at
        n_a, n_b = len(AUDIT_TRACK_A), len(AUDIT_TRACK_B)
        col = np.where(track == 1, at["claimed_b"][0] + (row - 1) * n_b + kind,
                       at["claimed_a"][0] + row * n_a + kind)
        self._put("auditor", env, col, 1.0)
        self.masks["auditor"][env, index] = 0

    # ------------------------------------------------------------------ the batch out
    def _batch(self, rewards, terminated, truncated, active=None) -> VectorStep:
        """The output rows: each env's current role's view, one-hot first. A row whose role
        changed, or whose views a referee's observers rewrote, is copied whole; the others get
        only the entries the batched writers changed (``_put``), as most rows change in a few
        entries per step and copying every row whole is most of a step's memory traffic. The
        rows of envs that did not act (``active``) stay as they are."""
        st = self.state
        role = st.phase.astype(np.int64)
        full = self._full | (role != self._out_role)
        self._obs[full] = 0.0
        self._mask[full] = 0
        self._out_role[:] = role  # (its own array: ``role`` goes out as current_agent)
        for r, name in enumerate(ROLES):
            env = np.flatnonzero(role == r if active is None else (role == r) & active)
            written = self._written[name]
            if len(env):
                self._globals(name, env)
                self._mask[env, :N_ACTIONS[name]] = self._finish_mask(name, env)
                whole = env[full[env]]
                if len(whole):
                    self._obs[whole, r] = 1.0
                    self._obs[whole, _N_ROLES:_N_ROLES + self._views[name].size] = \
                        self.buffers[name][whole]
                if written:
                    e = np.concatenate([w[0] for w in written])
                    c = np.concatenate([w[1] for w in written])
                    keep = (role[e] == r) & ~full[e]
                    e, c = e[keep], c[keep]
                    self._obs[e, _N_ROLES + c] = self.buffers[name][e, c]
            written.clear()
        self._full[:] = False
        obs, mask = (self._obs.copy(), self._mask.copy()) if self.copy else (
            read_only(self._obs), read_only(self._mask))
        return VectorStep(role, obs, mask, rewards, terminated, truncated)

    def _put(self, role: str, rows, cols, values) -> None:
        """Write ``values`` at ``(rows, cols)`` of ``role``'s view buffer (index arrays that
        broadcast, as in ``buffer[rows, cols] = values``) and note the entries for ``_batch``."""
        self.buffers[role][rows, cols] = values
        rows, cols = np.asarray(rows), np.asarray(cols)
        if rows.shape != cols.shape:  # broadcast by arithmetic: cheaper than broadcast_arrays
            rows, cols = rows + 0 * cols, cols + 0 * rows
        self._written[role].append((rows.ravel(), cols.ravel()))

    def _globals(self, role: str, env: np.ndarray, output: bool = True) -> None:
        """The entries that follow the turn (encoding's _fill_common and _<role>_globals),
        written to the role's buffer and (``output``) straight into the output rows, which
        ``_batch`` fills next. They sit at the head of the vector, around the task's block,
        which is copied back as it is: one block of columns, written by slices."""
        st, at = self.state, self._views[role].at
        r = ROLES.index(role)
        buf = self.buffers[role]
        width = _GLOBALS_WIDTH[role]
        block = np.empty((len(env), width), np.float32)
        a, b = at["task"]
        block[:, a:b] = buf[env, a:b]
        phase = st.phase[env]
        for p in range(4):
            block[:, at["phase"][0] + p] = phase == p
        rn, mr = st.round_number[env], st.max_rounds[env]
        block[:, at["round"][0]] = rn / mr
        block[:, at["rounds_remaining"][0]] = np.maximum(0, mr - rn + 1) / mr
        if role == "auditor":
            left = MAX_AUDITOR_ACTIONS - st.auditor_actions[env]
        else:
            left = st.caps[env, r] - st.actions_this_turn[env]
        block[:, at["actions_left_this_turn"][0]] = left / st.caps[env, r]
        if role == "investigator":
            block[:, at["budget"][0]] = st.budget[env] / st.action_budget[env]
            block[:, at["queue_may_grow"][0]] = (st.n_base_arrived[env] < st.n_base[env]) | \
                may_arrive_later(st.committed[env], st.proposals_used[env],
                                 st.max_proposals[env], rn + (phase != Phase.FRAUDSTER_TURN), mr)
            block[:, at["pending_count"][0]] = np.where(
                st.end_reason[env] < 0, (st.n_arrived[env] - st.n_manual[env]) / S, 0.0)
        elif role == "fraudster":
            used, most = st.proposals_used[env], st.max_proposals[env]
            block[:, at["proposals_remaining"][0]] = (most - used) / most
            block[:, at["committed"][0]] = st.committed[env]
            block[:, at["queue_room"][0]] = _may_propose(st, env)
        buf[env, :width] = block
        if output:
            self._obs[env, _N_ROLES:_N_ROLES + width] = block

    def _finish_mask(self, role: str, env: np.ndarray) -> np.ndarray:
        """The role's mask rows for ``env`` as its observer's ``mask`` would give them."""
        st, mask = self.state, self.masks[role]
        if role == "fraudster":
            may = _may_propose(st, env)
            block = np.repeat(st.allowed[env], len(TACTICS), axis=1) & may[:, None]
            mask[env, F_PROPOSE:F_MODIFY] = block
            return mask[env]
        out = mask[env]
        if role == "investigator":
            spent = st.budget[env] <= 0
            if spent.any():
                out[spent] = 0
                out[spent, I_END] = 1
        else:
            spent = st.auditor_actions[env] >= MAX_AUDITOR_ACTIONS
            if spent.any():
                out[spent] = 0
                out[spent, A_SUBMIT] = 1
        return out

    # ------------------------------------------------------------------ helpers
    def labels_of(self, envs, slots) -> np.ndarray:
        """The true label of the ad in ``slots[k]`` of env ``envs[k]``, as each match's
        ``Referee.label_of`` gives it (hidden from every role; for training-only shaping):
        one-dimensional, one label per (env, slot); a ValueError for an env or slot out of
        range or a slot that holds no ad."""
        self._refuse_closed()
        envs, slots = label_query(envs, slots, self.num_envs)
        row = self.state.slot_row[envs, slots]
        if (row < 0).any():
            k = int(np.flatnonzero(row < 0)[0])
            raise ValueError(f"env {self.first_env + int(envs[k])} has no ad in slot "
                             f"{int(slots[k])}")
        return self.state.rows.label[envs, row]

    def sample_actions(self, action_mask: np.ndarray) -> np.ndarray:
        """One uniformly random legal action per env (the vector env's own generator, seeded by
        ``reset``)."""
        mask = np.asarray(action_mask)
        if mask.ndim != 2 or mask.shape[0] != self.num_envs:
            raise ValueError(f"action_mask must be one mask row per env, shape ({self.num_envs}, "
                             f"actions), as a batch's action_mask is; got shape {mask.shape}")
        if mask.dtype.itemsize == 1 and mask.dtype.kind in "biu":
            mask = mask.view(np.bool_)  # nonzero bytes are true either way; much faster
        legal = np.flatnonzero(mask)  # row-major: each env's legal actions, env after env
        width = mask.shape[1]
        bounds = np.searchsorted(legal, np.arange(len(mask) + 1) * width)
        starts, counts = bounds[:-1], np.diff(bounds)
        if not counts.all():
            raise ValueError(f"env {self.first_env + int(np.argmin(counts))} has no legal action "
                             f"in action_mask")
        pick = starts + (self._rng.random(len(mask)) * counts).astype(np.int64)
        return legal[pick] - np.arange(len(mask)) * width

    def close(self) -> None:
        """Let the matches go: a later reset, step or read raises (closing again does not)."""
        self._closed = True


def task_list(task_id) -> tuple[str, ...]:
    """``task_id`` (a task, or a list of them that envs take in turn) as a tuple of known
    tasks, or a ValueError naming the wrong one."""
    if isinstance(task_id, (Set, Mapping)):  # (a set's order changes from process to process)
        raise ValueError(f"task_id must be a task or an ordered list of them (env i plays the "
                         f"(i % k)-th), not a {type(task_id).__name__}: its order is not fixed")
    tasks = (task_id,) if isinstance(task_id, str) or not isinstance(task_id, Iterable) \
        else tuple(task_id)
    if not tasks:
        raise ValueError(f"task_id lists no task; give one of {list(TASKS)} or a list of them")
    for task in tasks:
        if task not in TASKS:
            raise ValueError(f"unknown task_id {task!r}; choose one of {list(TASKS)}")
    return tasks


def first_past_int64(a: np.ndarray, active: np.ndarray | None = None) -> int | None:
    """The first (active) env whose unsigned action is past int64's range, or None: cast to
    int64 it would wrap round, and be named as another number."""
    if a.dtype.kind != "u":
        return None
    over = np.flatnonzero((a > np.iinfo(np.int64).max) & (True if active is None else active))
    return int(over[0]) if over.size else None


def label_query(envs, slots, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``labels_of``'s arguments as two int64 arrays of one dimension and one length (a number
    counts as one entry), or a ValueError saying what is wrong with them."""
    e, s = np.atleast_1d(np.asarray(envs)), np.atleast_1d(np.asarray(slots))
    for name, x in (("envs", e), ("slots", s)):
        if x.ndim != 1 or not (np.issubdtype(x.dtype, np.integer) or x.size == 0):
            raise ValueError(f"{name} must be integers in one dimension, got {x.dtype} {x.shape}")
    if e.shape != s.shape:
        raise ValueError(f"envs and slots must be as long as each other, got {len(e)} and "
                         f"{len(s)}")
    for name, x, top in (("envs", e, n), ("slots", s, S)):
        bad = np.flatnonzero((x < 0) | (x >= top))
        if bad.size:
            raise ValueError(f"{name} must be from 0 to {top - 1}; got {x[bad[0]]}")
    return e.astype(np.int64), s.astype(np.int64)


def first_illegal(mask: np.ndarray, a: np.ndarray, active: np.ndarray) -> int | None:
    """The first active env whose action its ``mask`` row refuses (an index past the mask
    included), or None."""
    inside = (a >= 0) & (a < mask.shape[1])
    legal = inside.copy()
    where = np.flatnonzero(inside)
    legal[where] = mask[where, a[where]] == 1
    legal |= ~active
    return None if legal.all() else int(np.flatnonzero(~legal)[0])


def illegal_action_error(m: int, index: int, role: str, reason: str) -> IllegalActionError:
    """The error for env ``m``'s illegal action ``index`` (``illegal_reason``'s role and
    reason): nothing of the step was applied."""
    return IllegalActionError(role, index, f"env {m}: {reason}; nothing was applied")


def read_only(array: np.ndarray) -> np.ndarray:
    """A view of ``array`` that cannot be written: what ``copy=False`` hands out, so that a
    caller cannot change the buffers the env reads back (its legality check reads the mask)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _arrival_features(category, body, markers, u_marker, age, tld, payment, country):
    """What arriving organic ads show: their copy's features (from the template copy the
    referee would write) and their surface, as the observers write them (arrays, one entry
    per ad)."""
    return _template_lexical(category, body, markers, u_marker), \
        _surface_values(age, tld, payment, country, markers)


def _surface_values(age, tld, payment, country, markers) -> np.ndarray:
    """Ads' surface as the observers write it (encoding's _surface_row, in batch)."""
    surface = np.empty((len(age), len(SURFACE_COLUMNS)))
    surface[:, 0] = _AGE_VALUE[age]
    surface[:, 1] = tld * _TLD_SCALE
    surface[:, 2] = payment * _PAY_SCALE
    surface[:, 3] = country * _COUNTRY_SCALE
    surface[:, 4] = _MARKERS_VALUE[markers]
    return surface


# encoding's per-ad arithmetic on the surface, worked out once for every value the int columns
# can hold (the generator clips ages to [1, 4000]; markers are int8), by the same functions
_AGE_VALUE = np.asarray([math.log1p(a) / AGE_LOG_SCALE for a in range(4001)])
_MARKERS_VALUE = np.asarray([markers_value(k) for k in range(128)])


class _TemplateLexicon:
    """The lexical features of template copy, by (category, body, markers, first marker):
    ``lexical_features(Referee._template_copy(...))``, filled in as combinations first occur,
    so a batch of arrivals is one gather."""

    def __init__(self):
        n_bodies = max(len(c.bodies) for c in CATEGORIES)
        n_starts = max(len(c.markers) for c in CATEGORIES)
        shape = (len(CATEGORIES), n_bodies, 128, n_starts)
        self.features = np.zeros(shape + (N_LEXICAL,), np.float32)
        self.known = np.zeros(shape, bool)

    def __call__(self, category, body, markers, u_marker) -> np.ndarray:
        category, body, start = template_parts(category, body, u_marker)
        key = (category, body, np.asarray(markers, np.int64), start)
        new = ~self.known[key]
        if new.any():
            for c, b, k, first in set(zip(*(x[new].tolist() for x in key))):
                # the copy _template_copy writes for this body and first marker
                self.features[c, b, k, first] = lexical_features(template_text(c, b, k, first))
                self.known[c, b, k, first] = True
        return self.features[key]


_template_lexical = _TemplateLexicon()


def _room(st: MatchState, env: np.ndarray) -> np.ndarray:
    return queue_room(st.n_arrived[env], st.n_base[env], st.n_base_arrived[env])


def _may_propose(st: MatchState, env: np.ndarray) -> np.ndarray:
    return may_propose(st.proposals_used[env], st.max_proposals[env], st.n_arrived[env],
                       st.n_base[env], st.n_base_arrived[env], st.round_number[env],
                       st.max_rounds[env])


__all__ = ["SEED_LIMIT", "VectorFraudArena", "VectorStep", "check_seed"]
