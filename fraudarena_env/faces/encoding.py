"""The tensor face: a discrete action catalogue, a legal-action mask and an observation vector per
role.

* Every action index decodes to exactly one rules op (and so to one pydantic action model). The
  catalogues are fixed-size, whatever the task, so one policy can train across tasks.
* Each role's observation is one preallocated float32 vector with named views, filled in place
  from the referee (OpenSpiel's Observer pattern). ``Observer.layout`` lists the names, offsets
  and shapes, so a user can see what every entry means.
* Each role sees only what it may see: the investigator sees the surface and what it pulled; the
  fraudster sees the public queue, what was done to its ads and its own ads' hidden signals; the
  auditor sees the record, ground truth included.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache

import numpy as np

from ..models import AdReviewAction, AuditorAction, FraudsterAction, parse_action
from ..rules.action_catalog import (  # noqa: F401  (re-exported: the faces' catalogue)
    A_FLAG_A,
    A_FLAG_B,
    A_SUBMIT,
    F_COMMIT,
    F_END,
    F_MODIFY,
    F_PROPOSE,
    I_END,
    I_INVESTIGATE,
    I_LINK,
    I_VERDICT,
    N_ACTIONS,
    N_CAT,
    N_CONF,
    N_T,
    N_VERDICT_OPS,
    OPS,
    PAIR_INDEX,
    PAIRS,
    S,
    index_to_op,
    op_to_index,
)
from ..rules.actions import (
    CommitFinal,
    EndTurn,
    Flag,
    Investigate,
    Link,
    Modify,
    Op,
    Propose,
    Verdict,
)
from ..rules.catalog import (
    AD_IDS,
    AD_SLOT,
    AUDIT_TRACK_A,
    AUDIT_TRACK_B,
    CATEGORIES,
    CATEGORY_INDEX,
    COUNTRIES,
    FRAUDSTER_EDITS,
    LABELS,
    LEGIT,
    MAX_AUDITOR_ACTIONS,
    MAX_PULLS_PER_AD,
    PAYMENT_TYPES,
    PHASE_ROLE,
    PHASES,
    REJECT,
    RING_SIGNAL_SOURCE,
    ROLES,
    STATUSES,
    TACTICS,
    TARGETS,
    TASK_IDS,
    TLDS,
    VERDICTS,
)
from ..rules.copies import KeepsViews
from ..rules.errors import IllegalActionError, OutOfTurnError
from ..rules.events import (
    AdEdited,
    AdsArrived,
    AdsLinked,
    FlagRaised,
    PlayFinished,
    SourcePulled,
    VerdictGiven,
)
from ..rules.lexicon import LEXICAL_NAMES, N_LEXICAL
from ..rules.referee import Referee
from . import textface

# The track B findings the auditor observes per proposal (its track_b_cues view), in order.
TRACK_B_CUES = ("branding_anomaly", "parameter_mismatch", "market_implausible",
                "template_repetition")
# An ad's surface signals, one named column each (scaled in ``_surface_row``).
SURFACE_COLUMNS = ("account_age", "landing_tld", "payment_type", "country", "risk_markers")
EVIDENCE_SCALE = 4.0  # evidence signals are divided by this in observations
OBS_BOUND = 2.0  # every observation entry lies in [-OBS_BOUND, OBS_BOUND]


index_of = op_to_index


def op_to_model(role: str, op: Op):
    """The pydantic action model an op stands for."""
    kind = type(op)
    if kind is Propose:
        return FraudsterAction(action_type="propose_ad", category=CATEGORIES[op.category].name,
                               tactic=TACTICS[op.tactic])
    if kind is Modify:
        return FraudsterAction(action_type="modify_pending_ad", ad_id=AD_IDS[op.slot],
                               edit=FRAUDSTER_EDITS[op.edit])
    if kind is CommitFinal:
        return FraudsterAction(action_type="commit_final")
    if kind is Investigate:
        return AdReviewAction(action_type="investigate", ad_id=AD_IDS[op.slot],
                              investigation_target=TARGETS[op.target])
    if kind is Verdict:
        return AdReviewAction(action_type="verdict", ad_id=AD_IDS[op.slot],
                              verdict=VERDICTS[op.verdict], confidence=op.confidence,
                              rationale=op.rationale)
    if kind is Link:
        return AdReviewAction(action_type="link_accounts", ad_id=AD_IDS[op.slot],
                              linked_ad_id=AD_IDS[op.other], link_reason=op.reason)
    if kind is EndTurn:
        return (FraudsterAction if role == "fraudster" else AdReviewAction)(
            action_type="end_turn")
    if kind is Flag:
        return AuditorAction(action_type="flag_investigator" if op.track == "A" else
                             "flag_fraudster", target_ad_id=AD_IDS[op.slot] if op.slot >= 0 else
                             None, flag_type=op.flag_type, severity=op.severity, note=op.note)
    return AuditorAction(action_type="submit_audit_report")


def describe(role: str, index: int) -> str:
    """What action ``index`` of ``role`` stands for: its action model as JSON (for errors)."""
    model = op_to_model(role, OPS[role][index])
    return json.dumps(model.model_dump(mode="json", exclude_none=True, exclude={"metadata"}))


def index_refusal(role: str, index: object) -> str | None:
    """Why ``index`` is not an action index of ``role``'s catalogue (an integer in range; a
    negative one would read the catalogue from its end), or None. For indices that come from
    outside the process: a socket, a journal, an archived record."""
    n = N_ACTIONS[role]
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or \
            not 0 <= index < n:
        return f"action_index must be an integer in [0, {n}) for the {role}"
    return None


def apply_index(ref: Referee, role: str, index: int) -> float:
    """Apply action ``index`` (in range) of ``role``'s catalogue: the one step-an-index path of
    the env, the server, the arena and the archive, held to the action mask (a repeated flag,
    which the text face takes, is refused). Returns the role's reward. A refused index
    raises ``IllegalActionError`` naming the index and what it stands for (penalize mode: the
    referee charges it instead); acting out of turn raises ``OutOfTurnError`` as it is."""
    try:
        return ref.apply(role, OPS[role][index], masked=True)
    except OutOfTurnError:
        raise
    except IllegalActionError as exc:
        raise IllegalActionError(role, index, f"{exc.reason} (index {index} is "
                                 f"{describe(role, index)})") from None


def model_to_op(role: str, model, referee: Referee | None = None) -> Op:
    """Translate an action model to an op (through the text face's one translator). With a
    referee whose turn it is, ad ids are checked against its queue; otherwise any ad id of the
    catalogue resolves. Raises ``IllegalActionError`` for a name the catalogue does not know."""
    if referee is not None and referee.current_role == role:
        return textface.op_in_match(referee, role, model)
    return textface.op_from_model(role, parse_action(role, model), _any_slot)


def _any_slot(ad_id: str, agent: str, action: object) -> int:
    slot = AD_SLOT.get(ad_id, -1)
    if slot < 0:
        raise IllegalActionError(agent, action, f"unknown ad_id {ad_id!r}")
    return slot


# ----------------------------------------------------------------------------- observations
class Observer(KeepsViews):
    """One role's observation and mask: preallocated arrays carved into named views.

    ``fill(ref)`` brings the vector up to date by replaying the referee's ``changes`` since the
    last call (an arrival, a pull, a verdict... each touches a few entries), so the cost of a step
    is proportional to what changed, not to the size of the queue. ``mask(ref)`` returns the
    legal-action mask, kept up to date the same way. Both return the observer's own arrays:
    copy them before keeping them.
    """

    def __init__(self, role: str, tensor: np.ndarray | None = None,
                 mask: np.ndarray | None = None):
        """``tensor`` and ``mask``: arrays to fill instead of the observer's own (a batch's rows,
        say), of the role's vector and catalogue sizes."""
        if role not in _LAYOUTS:
            raise ValueError(f"unknown role {role!r}; roles are {ROLES}")
        self.role = role
        self.role_index = ROLES.index(role)
        spans, self.size = _layout_spans(role)
        self.layout: list[tuple[str, int, tuple[int, ...]]] = [
            (name, o, shape) for name, o, _, shape in spans]
        self.tensor = np.zeros(self.size, np.float32) if tensor is None else tensor
        self.views = {name: self.tensor[o:end].reshape(shape) for name, o, end, shape in spans}
        self.off = {name: o for name, o, _ in self.layout}  # flat offsets for scalar writes
        self._at_phase = self.off["phase"]
        self._at_round = self.off["round"]
        self._at_rounds_remaining = self.off["rounds_remaining"]
        self._at_actions_left = self.off["actions_left_this_turn"]
        self._phase = 0
        self._round = 0  # the round the round entries were written for (0: none yet)
        self.n_actions = N_ACTIONS[role]
        self._mask = np.zeros(self.n_actions, np.int8) if mask is None else mask
        self._no_mask = np.zeros(self.n_actions, np.int8)
        self._epoch = -1
        self._cursor = 0
        self._handlers = _HANDLERS[role]
        self._fill_globals = _GLOBALS[role]
        self._finish_mask = _MASK_FINISH[role]
        self._shown = _SHOWN.get(role, _as_is)

    def feature_names(self) -> list[str]:
        """One name per entry of the vector, in order: the block's name, then its entry by the
        names of its axes (``surface[ad_003].landing_tld``, ``phase.audit_phase``)."""
        names = []
        for name, _, shape in self.layout:
            if shape == (1,):
                names.append(name)
                continue
            axes = axis_labels(name, shape)
            for ix in np.ndindex(shape):
                labels = [axis[i] for axis, i in zip(axes, ix)]
                head = f"{name}[{labels[0]}]" if len(labels) > 1 else name
                names.append(f"{head}.{'.'.join(labels[1:] or labels)}")
        return names

    def _sync(self, ref: Referee) -> None:
        if ref.epoch != self._epoch:
            self._epoch = ref.epoch
            self._cursor = 0
            self.tensor[:] = 0
            self._mask[:] = 0
            self._phase = 0
            self._round = 0
            self.tensor[self._at_phase] = 1.0
            self._start(ref)
        changes = ref.changes
        if self._cursor < len(changes):
            handlers = self._handlers
            arrivals = []  # the slots of consecutive arrivals, applied as one batch
            for ev in changes[self._cursor:]:
                kind = type(ev)
                if kind is AdsArrived:
                    arrivals.extend(ev.slots)
                    continue
                if arrivals:
                    self._arrive(ref, arrivals)
                    arrivals = []
                h = handlers.get(kind)
                if h is not None:
                    h(self, ref, ev)
            if arrivals:
                self._arrive(ref, arrivals)
            self._cursor = len(changes)

    def replay(self, ref: Referee) -> None:
        """Bring the vector and the mask up to date with what the referee did since the last
        call (its ``changes``), without the entries that follow the turn (``fill`` adds
        those)."""
        self._sync(ref)

    def skip(self, ref: Referee) -> None:
        """Pass over what the referee did since the last call without applying it (for a view
        nobody reads again before the next reset, which rebuilds it); replays if the referee
        was reset meanwhile."""
        if ref.epoch != self._epoch:
            self._sync(ref)
        else:
            self._cursor = len(ref.changes)

    def _arrive(self, ref: Referee, slots: list[int]) -> None:
        h = self._handlers.get(AdsArrived)
        if h is not None:
            h(self, ref, AdsArrived(slots))

    def fill(self, ref: Referee) -> np.ndarray:
        """The role's vector now: the observer's own ``tensor``, or a copy of it without what
        the role may not see yet (the investigator, while the fraudster moves)."""
        self._sync(ref)
        self._fill_globals(self, ref)
        return self._shown(self, ref)

    def mask(self, ref: Referee) -> np.ndarray:
        """The legal-action mask (int8); all zeros when it is not this role's turn."""
        self._sync(ref)
        return self._mask_now(ref)

    def observe(self, ref: Referee) -> tuple[np.ndarray, np.ndarray]:
        """``(fill(ref), mask(ref))`` with one pass over the referee's changes."""
        self._sync(ref)
        self._fill_globals(self, ref)
        return self._shown(self, ref), self._mask_now(ref)

    def _mask_now(self, ref: Referee) -> np.ndarray:
        if PHASE_ROLE.get(ref.phase) != self.role:
            return self._no_mask
        return self._finish_mask(self, ref)

    def _start(self, ref: Referee) -> None:
        v = self.views
        v["task"][TASK_IDS.index(ref.task.task_id)] = 1
        if self.role == "investigator":
            self._shared = np.zeros((S, S), np.int64)
            self._tokens_seen: list[dict[int, list[int]]] = [{} for _ in RING_SIGNAL_SOURCE]
            self._mask[I_END] = 1
        elif self.role == "fraudster":
            v["allowed_categories"][:] = ref.allowed_mask
            self._propose_block = _propose_block(ref.allowed_categories)
            self._mask[F_END] = self._mask[F_COMMIT] = 1
        else:
            self._mask[A_SUBMIT] = 1
            self._record_ready = False


def _globals() -> list:
    return [("phase", (len(PHASES),)), ("task", (len(TASK_IDS),)), ("round", (1,)),
            ("rounds_remaining", (1,)), ("actions_left_this_turn", (1,))]


def _investigator_layout() -> list:
    return _globals() + [
        ("budget", (1,)), ("queue_may_grow", (1,)), ("pending_count", (1,)),
        ("present", (S,)), ("status", (S, 4)), ("arrived_round", (S,)),
        ("category", (S, N_CAT)), ("surface", (S, len(SURFACE_COLUMNS))), ("lexical", (S, N_LEXICAL)),
        ("pulled", (S, N_T)), ("evidence", (S, N_T)), ("pulls_left", (S,)),
        ("links", (S,)), ("collisions", (S,)),
        ("pair_shared_signals", (len(PAIRS),)), ("pair_linked", (len(PAIRS),)),
    ]


def _fraudster_layout() -> list:
    return _globals() + [
        ("proposals_remaining", (1,)), ("committed", (1,)), ("queue_room", (1,)),
        ("allowed_categories", (N_CAT,)),
        ("present", (S,)), ("status", (S, 4)), ("mine", (S,)), ("category", (S, N_CAT)),
        ("lexical", (S, N_LEXICAL)), ("pulled", (S, N_T)), ("my_tactic", (S, len(TACTICS))),
        ("my_evidence", (S, N_T)), ("my_surface", (S, len(SURFACE_COLUMNS))), ("trusted", (S,)),
    ]


def _auditor_layout() -> list:
    return _globals() + [
        ("calibration", (3, 3)), ("bias", (4,)),
        ("present", (S,)), ("label", (S, 3)), ("status", (S, 4)), ("manual", (S,)),
        ("confidence", (S,)), ("proposal", (S,)), ("severity", (S,)),
        ("category", (S, N_CAT)), ("pulled", (S, N_T)), ("evidence", (S, N_T)),
        ("lexical", (S, N_LEXICAL)), ("rationale", (S, 2)), ("link_conflict", (S,)),
        ("track_b_cues", (S, 4)), ("claimed_a", (S + 1, len(AUDIT_TRACK_A))),
        ("claimed_b", (S, len(AUDIT_TRACK_B))),
    ]


_LAYOUTS = {"fraudster": _fraudster_layout, "investigator": _investigator_layout,
            "auditor": _auditor_layout}
_PHASE_INDEX = {p: i for i, p in enumerate(PHASES)}
_LANDING = TARGETS.index("landing_page")
_SIGNAL_OF_SOURCE = {src: k for k, src in enumerate(RING_SIGNAL_SOURCE)}


@lru_cache(maxsize=4)  # one per role
def _layout_spans(role: str) -> tuple[tuple[tuple[str, int, int, tuple[int, ...]], ...], int]:
    """A role's views as (name, start, stop, shape), and the vector's size: worked out once per
    role, not once per observer (a vector env makes three observers per match)."""
    spans, offset = [], 0
    for name, shape in _LAYOUTS[role]():
        size = math.prod(shape)
        spans.append((name, offset, offset + size, shape))
        offset += size
    return tuple(spans), offset


def axis_labels(block: str, shape: tuple[int, ...]) -> list[tuple[str, ...]]:
    """The names along each axis of a named block: ``COLUMN_LABELS`` for the last axis of
    multi-column blocks, ad ids (or pair names) for a first axis of ads."""
    columns = COLUMN_LABELS.get(block)
    if len(shape) == 1:
        if columns is not None:
            return [columns]
        return [PAIR_LABELS] if shape[0] == len(PAIRS) else [AD_IDS]
    first = ROW_LABELS.get(block, AD_IDS)
    return [first, columns]


# Names of the entries along the last axis of every multi-entry block.
_CALIBRATION_BINS = ("low", "mid", "high")
COLUMN_LABELS: dict[str, tuple[str, ...]] = {
    "phase": PHASES, "task": TASK_IDS, "status": STATUSES,
    "category": tuple(c.name for c in CATEGORIES),
    "allowed_categories": tuple(c.name for c in CATEGORIES),
    "surface": SURFACE_COLUMNS, "my_surface": SURFACE_COLUMNS, "lexical": LEXICAL_NAMES,
    "pulled": TARGETS, "evidence": TARGETS, "my_evidence": TARGETS, "my_tactic": TACTICS,
    "label": LABELS, "calibration": ("share", "mean_confidence", "accuracy"),
    "bias": ("legit_risky_share", "legit_risky_rejected", "legit_plain_share",
             "legit_plain_rejected"),
    # The second column has never been written (always 0); it keeps the vector's length.
    "rationale": ("written", "spare"),
    "track_b_cues": TRACK_B_CUES, "claimed_a": AUDIT_TRACK_A, "claimed_b": AUDIT_TRACK_B,
}
# Names along the first axis where it is not the queue's ad slots.
ROW_LABELS = {"calibration": _CALIBRATION_BINS, "claimed_a": ("match", *AD_IDS)}
PAIR_LABELS = tuple(f"{AD_IDS[a]}~{AD_IDS[b]}" for a, b in PAIRS.tolist())


def _fill_common(obs: Observer, ref: Referee) -> None:
    t = obs.tensor
    phase = _PHASE_INDEX[ref.phase]
    if phase != obs._phase:
        t[obs._at_phase + obs._phase] = 0.0
        t[obs._at_phase + phase] = 1.0
        obs._phase = phase
    rn = ref.round_number
    if rn != obs._round:
        mr = ref.max_rounds
        t[obs._at_round] = rn / mr
        t[obs._at_rounds_remaining] = max(0, mr - rn + 1) / mr
        obs._round = rn
    i = obs.role_index
    t[obs._at_actions_left] = ref.actions_left_this_turn(i) / ref.caps[i]


def _evidence_value(x: float) -> float:
    return min(max(x / EVIDENCE_SCALE, -OBS_BOUND), OBS_BOUND)


# An ad's surface, one named column per signal, each scaled into [0, 1] here and only here:
# ``decode_surface`` (what policies read) inverts exactly these.
AGE_LOG_SCALE = 8.3  # log1p(account age in days) / AGE_LOG_SCALE: about 1 for a 10-year account
MARKER_CAP = 6  # risk phrases beyond this read as this many
_TLD_SCALE = 1.0 / (len(TLDS) - 1)
_PAY_SCALE = 1.0 / (len(PAYMENT_TYPES) - 1)
_COUNTRY_SCALE = 1.0 / (len(COUNTRIES) - 1)


def markers_value(markers: int) -> float:
    return min(markers, MARKER_CAP) / MARKER_CAP


def _surface_row(ref: Referee, s: int, t: np.ndarray, at: int) -> None:
    age, tld, payment, country, markers = ref.surface_of(s)
    t[at] = math.log1p(age) / AGE_LOG_SCALE
    t[at + 1] = tld * _TLD_SCALE
    t[at + 2] = payment * _PAY_SCALE
    t[at + 3] = country * _COUNTRY_SCALE
    t[at + 4] = markers_value(markers)


def decode_surface(surface: np.ndarray) -> dict[str, np.ndarray]:
    """The surface signals back from a ``surface`` view (..., 5), by ``SURFACE_COLUMNS`` name:
    account age in days, TLD, payment type and country indices, risk phrases (capped)."""
    col = {name: surface[..., i] for i, name in enumerate(SURFACE_COLUMNS)}
    return {"account_age": np.rint(np.expm1(col["account_age"].astype(np.float64) *
                                            AGE_LOG_SCALE)),
            "landing_tld": np.rint(col["landing_tld"] / _TLD_SCALE),
            "payment_type": np.rint(col["payment_type"] / _PAY_SCALE),
            "country": np.rint(col["country"] / _COUNTRY_SCALE),
            "risk_markers": np.rint(col["risk_markers"] * MARKER_CAP)}


def _set_status(obs: Observer, s: int, verdict: int) -> None:
    """A slot's status goes from pending to its verdict, once (verdicts are final)."""
    at = obs.off["status"] + 4 * s
    t = obs.tensor
    t[at] = 0.0
    t[at + verdict + 1] = 1.0


def _arrive_common(obs: Observer, ref: Referee, s: int) -> None:
    """What every role sees of a newly arrived ad: presence, pending status, category, copy.
    (Arrivals come one to a few at a time: scalar writes beat fancy indexing here.)"""
    t = obs.tensor
    o = obs.off
    t[o["present"] + s] = 1.0
    t[o["status"] + 4 * s] = 1.0  # pending (a slot is never reused within a match)
    t[o["category"] + N_CAT * s + ref.category_of(s)] = 1.0
    _write_lexical(obs, ref, s)


def _write_lexical(obs: Observer, ref: Referee, s: int) -> None:
    at = obs.off["lexical"] + N_LEXICAL * s
    obs.tensor[at:at + N_LEXICAL] = ref.lexical[s]


# investigator ---------------------------------------------------------------
_LINK_INDEX = I_LINK + PAIR_INDEX  # (S, S); the diagonal points before the link block


def _inv_arrive(obs: Observer, ref: Referee, ev: AdsArrived) -> None:
    slots = ev.slots
    t = obs.tensor
    o = obs.off
    m = obs._mask
    mr = ref.max_rounds
    for s in slots:
        _arrive_common(obs, ref, s)
        t[o["arrived_round"] + s] = ref.arrived.item(s) / mr
        _surface_row(ref, s, t, o["surface"] + 5 * s)
        t[o["pulls_left"] + s] = 1.0
        m[I_INVESTIGATE + N_T * s:I_INVESTIGATE + N_T * (s + 1)] = 1
        m[I_VERDICT + 9 * s:I_VERDICT + 9 * (s + 1)] = 1
    links = _LINK_INDEX[slots][:, ref.present]  # pairs with every ad present, old or new
    m[links[links >= I_LINK]] = 1


def _inv_pull(obs: Observer, ref: Referee, ev: SourcePulled) -> None:
    s, tgt = ev
    t = obs.tensor
    o = obs.off
    t[o["pulled"] + N_T * s + tgt] = 1.0
    t[o["evidence"] + N_T * s + tgt] = _evidence_value(ref.evidence_of(s, tgt))
    n = ref.n_pulls.item(s)
    t[o["pulls_left"] + s] = (MAX_PULLS_PER_AD - n) / MAX_PULLS_PER_AD
    m = obs._mask
    base = I_INVESTIGATE + s * N_T
    if n >= MAX_PULLS_PER_AD:
        m[base:base + N_T] = 0
    else:
        m[base + tgt] = 0
    k = _SIGNAL_OF_SOURCE.get(tgt)
    if k is None:
        return
    token = ref.token_of(s, k)
    seen = obs._tokens_seen[k].setdefault(token, [])
    if seen:
        shared = obs._shared
        ps = o["pair_shared_signals"]
        col = o["collisions"]
        for j in seen:
            shared[s, j] += 1
            shared[j, s] += 1
            t[ps + PAIR_INDEX[s, j]] = shared[s, j] / 4.0
            t[col + j] = np.count_nonzero(shared[j]) / S
        t[col + s] = np.count_nonzero(shared[s]) / S
    seen.append(s)


def _inv_verdict(obs: Observer, ref: Referee, ev: VerdictGiven) -> None:
    s = ev.slot
    _set_status(obs, s, ref.verdict.item(s))
    obs.tensor[obs.off["pulls_left"] + s] = 0.0
    m = obs._mask
    m[I_INVESTIGATE + s * N_T:I_INVESTIGATE + (s + 1) * N_T] = 0
    m[I_VERDICT + s * 9:I_VERDICT + (s + 1) * 9] = 0


def _inv_link(obs: Observer, ref: Referee, ev: AdsLinked) -> None:
    a, b = ev
    t = obs.tensor
    o = obs.off
    p = PAIR_INDEX[a, b]
    t[o["pair_linked"] + p] = 1.0
    t[o["links"] + a] += 1.0 / S
    t[o["links"] + b] += 1.0 / S
    obs._mask[I_LINK + p] = 0


def _inv_modify(obs: Observer, ref: Referee, ev: AdEdited) -> None:
    s = ev.slot
    t = obs.tensor
    o = obs.off
    _write_lexical(obs, ref, s)
    t[o["surface"] + 5 * s + 4] = markers_value(ref.markers_of(s))
    if ref.pulled[s, _LANDING]:
        t[o["evidence"] + N_T * s + _LANDING] = _evidence_value(ref.evidence_of(s, _LANDING))


def _inv_globals(obs: Observer, ref: Referee) -> None:
    _fill_common(obs, ref)
    t = obs.tensor
    o = obs.off
    t[o["budget"]] = ref.budget / ref.task.action_budget
    t[o["queue_may_grow"]] = ref.queue_may_grow()
    t[o["pending_count"]] = (ref.n_arrived - ref.n_manual) / S if ref.end_reason is None \
        else 0.0


# the investigator's blocks with a row per slot: an ad it may not see yet is all zeros there
_INV_SLOT_BLOCKS = ("present", "status", "arrived_round", "category", "surface", "lexical",
                    "pulled", "evidence", "pulls_left", "links", "collisions")


def _inv_shown(obs: Observer, ref: Referee) -> np.ndarray:
    """The investigator's vector without the ads it does not see yet
    (``unseen_by_investigator``), which have no pulls, verdicts or links, so only their own
    rows and the pending count change. A copy when any is withheld."""
    hidden = ref.unseen_by_investigator()
    if not len(hidden):
        return obs.tensor
    out = obs.tensor.copy()
    withhold(obs, out, hidden, ref.n_arrived - ref.n_manual)
    return out


def withhold(obs: Observer, out: np.ndarray, hidden: np.ndarray, pending: int) -> None:
    """Blank, in ``out`` (an investigator's vector), the rows of the ``hidden`` slots, and count
    them out of the ``pending`` ads (``_inv_shown``, and the vector env's last views)."""
    for name in _INV_SLOT_BLOCKS:
        width = obs.views[name].size // S
        at = obs.off[name] + width * hidden[:, None] + np.arange(width)
        out[at] = 0.0
    out[obs.off["pending_count"]] = (pending - len(hidden)) / S


def _as_is(obs: Observer, ref: Referee) -> np.ndarray:
    return obs.tensor


def _inv_mask(obs: Observer, ref: Referee) -> np.ndarray:
    if ref.budget <= 0:
        out = obs._no_mask.copy()
        out[I_END] = 1
        return out
    return obs._mask


# fraudster -------------------------------------------------------------------
def _fr_arrive(obs: Observer, ref: Referee, ev: AdsArrived) -> None:
    slots = ev.slots
    t = obs.tensor
    o = obs.off
    for s in slots:
        _arrive_common(obs, ref, s)
        if ref.is_proposal.item(s):
            t[o["mine"] + s] = 1.0
            t[o["my_tactic"] + len(TACTICS) * s + ref.tactic_of(s)] = 1.0
            _fr_modify(obs, ref, AdEdited(s))


def _fr_modify(obs: Observer, ref: Referee, ev: AdEdited) -> None:
    s = ev.slot
    t = obs.tensor
    o = obs.off
    _write_lexical(obs, ref, s)
    at = o["my_evidence"] + N_T * s
    for k, x in enumerate(ref.evidence_row_of(s).tolist()):
        t[at + k] = _evidence_value(x)
    _surface_row(ref, s, t, o["my_surface"] + 5 * s)
    trusted = ref.trusted.item(s)
    t[o["trusted"] + s] = trusted
    m = obs._mask
    base = F_MODIFY + s * len(FRAUDSTER_EDITS)
    pending = ref.verdict.item(s) < 0
    m[base] = pending and ref.markers_of(s) > 0
    m[base + 1] = pending and not trusted


def _fr_pull(obs: Observer, ref: Referee, ev: SourcePulled) -> None:
    obs.tensor[obs.off["pulled"] + N_T * ev.slot + ev.target] = 1.0


def _fr_verdict(obs: Observer, ref: Referee, ev: VerdictGiven) -> None:
    s = ev.slot
    _set_status(obs, s, ref.verdict.item(s))
    base = F_MODIFY + s * len(FRAUDSTER_EDITS)
    obs._mask[base:base + len(FRAUDSTER_EDITS)] = 0


def _fr_globals(obs: Observer, ref: Referee) -> None:
    _fill_common(obs, ref)
    t = obs.tensor
    o = obs.off
    t[o["proposals_remaining"]] = (ref.max_proposals - ref.proposals_used) / ref.max_proposals
    t[o["committed"]] = ref.committed
    t[o["queue_room"]] = ref.may_propose()  # room now: proposals left, an open round, a slot


@lru_cache(maxsize=256)
def _propose_block(allowed: tuple[str, ...]) -> np.ndarray:
    """The propose part of the fraudster's mask when it may propose: every tactic of every
    allowed category. Shared between matches, so read-only."""
    block = np.zeros((len(CATEGORIES), len(TACTICS)), np.int8)
    block[[CATEGORY_INDEX[c] for c in allowed]] = 1
    block = block.ravel()
    block.flags.writeable = False
    return block


def _fr_mask(obs: Observer, ref: Referee) -> np.ndarray:
    m = obs._mask
    if ref.may_propose():
        m[F_PROPOSE:F_MODIFY] = obs._propose_block
    else:
        m[F_PROPOSE:F_MODIFY] = 0
    return m


# auditor ---------------------------------------------------------------------
def _au_finish(obs: Observer, ref: Referee, ev: PlayFinished) -> None:
    _fill_auditor_record(obs.views, ref)
    present = ref.present
    nA, nB = len(AUDIT_TRACK_A), len(AUDIT_TRACK_B)
    m = obs._mask
    fa = m[A_FLAG_A:A_FLAG_B].reshape(S + 1, nA)
    fa[0] = 1
    fa[1:][present] = 1
    m[A_FLAG_B:A_SUBMIT].reshape(S, nB)[present] = 1


def _au_flag(obs: Observer, ref: Referee, ev: FlagRaised) -> None:
    track, ftype, slot = ev
    v = obs.views
    if track == "A":
        i = AUDIT_TRACK_A.index(ftype)
        v["claimed_a"][slot + 1, i] = 1
        obs._mask[A_FLAG_A + (slot + 1) * len(AUDIT_TRACK_A) + i] = 0
    else:
        i = AUDIT_TRACK_B.index(ftype)
        v["claimed_b"][slot, i] = 1
        obs._mask[A_FLAG_B + slot * len(AUDIT_TRACK_B) + i] = 0


def _au_globals(obs: Observer, ref: Referee) -> None:
    _fill_common(obs, ref)


def _au_mask(obs: Observer, ref: Referee) -> np.ndarray:
    if ref.auditor_actions >= MAX_AUDITOR_ACTIONS:
        out = obs._no_mask.copy()
        out[A_SUBMIT] = 1
        return out
    return obs._mask




_RISKY_CATEGORY = [c.family != "legit" for c in CATEGORIES]  # for the bias reading


def _fill_auditor_record(v: dict, ref: Referee) -> None:
    """Write the match record into the auditor's views. It is written once, when play ends,
    onto the zeros the views were reset to."""
    v["manual"][:] = ref.manual
    v["proposal"][:] = ref.is_proposal
    v["pulled"][:] = ref.pulled
    v["lexical"][:] = ref.lexical
    # Each present ad in turn: scalar writes beat a dozen fancy-indexed ones on a short queue.
    present_v, label_v, status_v = v["present"], v["label"], v["status"]
    confidence_v, severity_v, category_v, evidence_v = (v["confidence"], v["severity"],
                                                        v["category"], v["evidence"])
    pulled = ref.pulled.tolist()
    present = ref.present.nonzero()[0]
    truth = ref.facts_of(present, ("label", "category", "severity", "evidence"))
    # The present ads and their facts, as plain lists: numpy scalars are slow one by one.
    label, category = truth["label"].tolist(), truth["category"].tolist()
    for s, lab, cat, sev, ev, verdict, confidence in zip(
            present.tolist(), label, category, truth["severity"].tolist(),
            truth["evidence"].tolist(), ref.verdict[present].tolist(),
            ref.confidence[present].tolist()):
        present_v[s] = 1
        label_v[s, lab] = 1
        status_v[s, verdict + 1] = 1
        confidence_v[s] = confidence
        severity_v[s] = sev
        category_v[s, cat] = 1
        for t, x in enumerate(ev):
            if pulled[s][t]:  # only what was pulled is seen
                evidence_v[s, t] = _evidence_value(x)
    label = dict(zip(present.tolist(), label))  # by slot
    category = dict(zip(present.tolist(), category))
    verdict, order = ref.verdict.tolist(), ref.decided_order.tolist()
    manual = ref.manual.tolist()
    manual_slots = ref.manual.nonzero()[0].tolist()
    rat = v["rationale"]
    for s in manual_slots:
        text = ref.rationale[s]
        rat[s, 0] = bool(text and text.strip())
    conflict = v["link_conflict"]
    for a, b in ref.links:
        if manual[a] and manual[b] and {verdict[a], verdict[b]} == {0, 1}:
            conflict[a if order[a] > order[b] else b] = 1
    cues = v["track_b_cues"]
    truth = ref.truth_flags  # track B findings are facts about the proposals' text
    for s in ref.proposal_slots:
        for i, flag in enumerate(TRACK_B_CUES):
            if (flag, AD_IDS[s]) in truth:
                cues[s, i] = 1
    v["calibration"][:] = [(n / S, mean_conf, accuracy)
                           for n, mean_conf, accuracy in ref.calibration]
    # Rejection rates of legit ads, in risky-looking and in plain categories.
    risky = [0, 0]  # ads, rejected
    plain = [0, 0]
    for s in manual_slots:
        if label[s] == LEGIT:
            tally = risky if _RISKY_CATEGORY[category[s]] else plain
            tally[0] += 1
            tally[1] += verdict[s] == REJECT
    v["bias"][:] = (risky[0] / S, risky[1] / risky[0] if risky[0] else 0,
                    plain[0] / S, plain[1] / plain[0] if plain[0] else 0)


# each role's observer, by kind of change (``rules.events.Change``); kinds a role does not see
# are passed over
_HANDLERS = {
    "investigator": {AdsArrived: _inv_arrive, SourcePulled: _inv_pull,
                     VerdictGiven: _inv_verdict, AdsLinked: _inv_link, AdEdited: _inv_modify},
    "fraudster": {AdsArrived: _fr_arrive, SourcePulled: _fr_pull, VerdictGiven: _fr_verdict,
                  AdEdited: _fr_modify},
    "auditor": {PlayFinished: _au_finish, FlagRaised: _au_flag},
}
_GLOBALS = {"investigator": _inv_globals, "fraudster": _fr_globals, "auditor": _au_globals}
_MASK_FINISH = {"investigator": _inv_mask, "fraudster": _fr_mask, "auditor": _au_mask}
# what a role may not see yet, taken out of its vector as it is read (only the investigator's)
_SHOWN = {"investigator": _inv_shown}


def shared_signals(ref: Referee) -> np.ndarray:
    """(S, S) count of ring signals two ads visibly share: both ads had the revealing source
    pulled and show the same token. (The reference computation; observers keep it
    incrementally.)"""
    tokens = ref.facts_of(names=("tokens",))["tokens"]
    shared = np.zeros((S, S), np.int64)
    for k, source in enumerate(RING_SIGNAL_SOURCE):
        seen = ref.pulled[:, source] & ref.present
        if seen.sum() < 2:
            continue
        col = tokens[:, k]
        shared += (col[:, None] == col[None, :]) & seen[:, None] & seen[None, :]
    np.fill_diagonal(shared, 0)
    return shared


__all__ = ["N_ACTIONS", "OPS", "Observer", "apply_index", "describe", "index_refusal", "index_of", "index_to_op", "op_to_index", "withhold",
           "op_to_model", "model_to_op", "shared_signals", "ROLES"]
