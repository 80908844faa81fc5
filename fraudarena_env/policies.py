"""Baseline policies. Each acts on either face:

* text face: ``act(observation_model)`` returns the role's pydantic action model;
* tensor face: ``act(vector, action_mask)`` (or ``act({"observation": ..., "action_mask": ...})``)
  returns an action index.

Every policy takes an optional ``seed=`` and draws randomness only from its own generator.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from .encoding import N_ACTIONS


def split_tensor_obs(observation, action_mask=None):
    """Accept ``(vector, mask)`` or the env's ``{"observation", "action_mask"}`` dict."""
    if isinstance(observation, dict) and "observation" in observation:
        return np.asarray(observation["observation"]), np.asarray(observation["action_mask"])
    return np.asarray(observation), None if action_mask is None else np.asarray(action_mask)


def is_tensor_obs(observation) -> bool:
    return isinstance(observation, (np.ndarray, dict))


class Policy:
    """Base class: dispatches on the face of the observation it is given."""

    role: str = ""

    def __init__(self, seed: int | None = None):
        self.seed = seed
        self._rng: np.random.Generator | None = None

    @property
    def rng(self) -> np.random.Generator:
        """The policy's own generator, made on first use (most baselines never draw)."""
        if self._rng is None:
            self._rng = np.random.default_rng(self.seed)
        return self._rng

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        self._rng = None

    def act(self, observation, action_mask=None):
        if is_tensor_obs(observation):
            vector, mask = split_tensor_obs(observation, action_mask)
            if mask is None:
                raise ValueError(f"{type(self).__name__}.act on the tensor face needs the "
                                 "action mask: pass act(vector, mask) or the env's obs dict")
            return int(self.act_tensor(vector, mask))
        return self.act_model(observation)

    __call__ = act

    @classmethod
    def has_tensor_face(cls) -> bool:
        return cls.act_tensor is not Policy.act_tensor

    def act_tensor(self, vector: np.ndarray, mask: np.ndarray) -> int:
        raise NotImplementedError(f"{type(self).__name__} has no tensor face")

    def act_model(self, observation):
        raise NotImplementedError(f"{type(self).__name__} has no text face")


class RandomPolicy(Policy):
    """Uniform over the legal actions (tensor face)."""

    def __init__(self, role: str = "", seed: int | None = None):
        super().__init__(seed)
        self.role = role

    def act_tensor(self, vector, mask):
        legal = np.flatnonzero(mask)
        if len(legal) == 0:
            raise ValueError("no legal action in the mask: is it this role's turn?")
        return int(legal[self.rng.integers(len(legal))])


# ============================================================================ shared readers
from .catalog import (  # noqa: E402
    AUDIT_TRACK_A,
    AUDIT_TRACK_B,
    CATEGORIES,
    CATEGORY_INDEX,
    CONFIDENCE_BUCKETS,
    COUNTRIES,
    FRAUDSTER_EDITS,
    GRAY_CATEGORY,
    LEGIT_FAMILY,
    MAX_PULLS_PER_AD,
    MAX_SLOTS,
    PAYMENT_TYPES,
    RING_SIGNAL_SOURCE,
    TACTICS,
    TARGET_INDEX,
    TARGETS,
    TASK_IDS,
    TASKS,
    TLDS,
    VERDICTS,
    nearest_bucket,
)
from .encoding import (  # noqa: E402
    A_FLAG_A,
    A_FLAG_B,
    A_SUBMIT,
    EVIDENCE_SCALE,
    F_COMMIT,
    F_END,
    F_MODIFY,
    I_END,
    I_INVESTIGATE,
    I_LINK,
    I_VERDICT,
    PAIR_INDEX,
    PAIRS,
    TRACK_B_CUES,
    Observer,
    op_to_model,
)
from .evidence import HEADLINE, headline_to_signal  # noqa: E402
from .generator import (  # noqa: E402
    EVIDENCE_SHIFT,
    FRAUD_IN_LEGIT_CATEGORY,
    LEGIT_IN_RISKY_CATEGORY,
    SURFACE_SHIFT,
    surface_z,
)
from .lexicon import is_gibberish  # noqa: E402
from .models import AdReviewAction, AuditorAction, FraudsterAction  # noqa: E402
from .referee import AD_IDS, AD_SLOT  # noqa: E402

S = MAX_SLOTS
N_T = len(TARGETS)
N_CAT = len(CATEGORIES)
_SLICES = {role: [(name, o, o + int(np.prod(shape)), shape) for name, o, shape in
                   Observer(role).layout] for role in ("fraudster", "investigator", "auditor")}
_SLICE_BY_NAME = {role: {name: (a, b, shape) for name, a, b, shape in sl}
                  for role, sl in _SLICES.items()}
_LEGIT_FAMILY = np.zeros(len(CATEGORIES), bool)
_LEGIT_FAMILY[list(LEGIT_FAMILY)] = True


def views(role: str, vector: np.ndarray, names=None) -> dict[str, np.ndarray]:
    """Named views of a role's observation vector (no copy): all of them, or ``names``."""
    if names is None:
        return {name: vector[a:b].reshape(shape) for name, a, b, shape in _SLICES[role]}
    by_name = _SLICE_BY_NAME[role]
    return {name: vector[by_name[name][0]:by_name[name][1]].reshape(by_name[name][2])
            for name in names}


# ============================================================================ investigator
class _Board:
    """The per-ad readings the scripted investigator's log-odds are computed from (the text
    face fills it from the evidence ledger; the tensor face uses the same weights directly)."""

    def __init__(self):
        self.present = np.zeros(S, bool)
        self.category = np.zeros(S, np.int64)
        self.surface_z = np.zeros((S, 4))
        self.markers = np.zeros(S)
        self.junk = np.zeros(S, bool)  # copy that reads as gibberish
        self.pulled = np.zeros((S, len(TARGETS)), bool)
        self.signal = np.zeros((S, len(TARGETS)))


def surface_logit(board: _Board, task_id: str) -> np.ndarray:
    """Log-odds that an ad is bad (fraud or escalate) from the free surface alone.

    The weights come from the generator's own constants (a Gaussian shift of SURFACE_SHIFT per
    surface signal for unit strength), so the prior stays honest when the generator is retuned.
    """
    d = SURFACE_SHIFT
    logit = _task_base(task_id) + (d * board.surface_z - d * d / 2).sum(axis=1)
    logit += (board.markers - 0.3) * 0.5
    logit += JUNK_LOGIT * board.junk
    in_legit = _LEGIT_FAMILY[board.category]
    p_legit_fam_given_legit = 1 - LEGIT_IN_RISKY_CATEGORY
    p_legit_fam_given_bad = FRAUD_IN_LEGIT_CATEGORY + 0.15
    logit += np.where(in_legit, np.log(p_legit_fam_given_bad / p_legit_fam_given_legit),
                      np.log((1 - p_legit_fam_given_bad) / (1 - p_legit_fam_given_legit)))
    return logit


JUNK_LOGIT = 3.0
_EV_D = EVIDENCE_SHIFT * 0.9


def _linear_surface_prior():
    """The surface prior is linear in the tensor face's surface features and category one-hot:
    evaluate it once on a basis to get the weights the tensor path uses."""
    def prior(surf: np.ndarray, category: int) -> float:
        b = _Board()
        b.surface_z[0] = surface_z(np.expm1(surf[0] * 8.3), surf[1] * (len(TLDS) - 1),
                                   surf[2] * (len(PAYMENT_TYPES) - 1),
                                   surf[3] * (len(COUNTRIES) - 1))
        b.markers[0] = surf[4] * 6
        b.category[0] = category
        return float(surface_logit(b, "task_1")[0])

    zero = prior(np.zeros(5), 0)
    w = np.asarray([prior(np.eye(5)[k], 0) - zero for k in range(5)])
    cat = np.asarray([prior(np.zeros(5), c) - zero for c in range(len(CATEGORIES))])
    base = {t: zero + _task_base(t) - _task_base("task_1") for t in TASKS}
    return w.astype(np.float32), cat.astype(np.float32), base


def _task_base(task_id: str) -> float:
    task = TASKS[task_id]
    return float(np.log((task.n_fraud + task.n_escalate + task.max_proposals) /
                        max(task.n_legit, 1)))


def evidence_logit(board: _Board) -> np.ndarray:
    """Log-likelihood ratio of the pulled evidence (unit-strength fraud vs legit)."""
    d = EVIDENCE_SHIFT * 0.9
    return ((d * board.signal - d * d / 2) * board.pulled).sum(axis=1)


class ScriptedInvestigator(Policy):
    """Investigates before deciding, reads the evidence, links ads that visibly share
    infrastructure, and rules by expected reward under a Bayesian read of surface and evidence.

    Budget-aware: it pulls evidence only while its remaining actions cover the queue it still
    expects, and pulls the most uncertain ad first. In ring tasks it prefers the sources that
    reveal ring tokens. Both faces reduce the observation to the same few arrays and share
    ``decide``.
    """

    role = "investigator"
    UNCERTAIN = 2.2  # |log-odds| below which another source is worth pulling
    _prior_key: tuple | None = None  # what the cached readings were computed from
    _seen_key: bytes | None = None

    def act_tensor(self, vector, mask):
        v = _InvSlices
        pending = vector[v.pending].nonzero()[0].tolist()
        pairs = []
        if np.count_nonzero(vector[v.collisions]):  # some ads visibly share a ring signal
            linked = vector[v.pair_linked]
            pairs = [(int(PAIRS[p, 0]), int(PAIRS[p, 1]))
                     for p in np.flatnonzero(vector[v.pair_shared]).tolist() if linked[p] < 0.5]
        if not pending and not pairs:
            return I_END
        # What the choice reads changes only when ads arrive or change (the task, the surface
        # prior, who is present) or when evidence is pulled; most turns reuse both readings.
        static = (vector[v.task].tobytes(), vector[v.static].tobytes())
        seen = vector[v.seen].tobytes()
        if static != self._prior_key:
            self._task = task = _TASK_LIST[int(vector[v.task].argmax())]
            lex = vector[v.lexical].reshape(S, -1)
            self._prior = (vector[v.surface].reshape(S, 5) @ _SURF_W
                           + vector[v.category].reshape(S, len(CATEGORIES)) @ _CAT_TERM
                           + JUNK_LOGIT * ((lex[:, 6] < 0.28) | (lex[:, 7] < 0.75))
                           + _BASE_LOGIT[task.task_id])
            self._gray = (vector[v.gray] > 0.5).tolist()
            self._present_count = int(np.count_nonzero(vector[v.present]))
            self._prior_key = static
            self._seen_key = None
        pulled = vector[v.pulled].reshape(S, len(TARGETS))
        if seen != self._seen_key:
            self._logit = (self._prior + vector[v.evidence].reshape(S, len(TARGETS)) @ _EV_W
                           + pulled @ _PULL_W).tolist()
            # sources left per slot: right for every slot still pending (a verdict zeroes it)
            self._room = vector[v.pulls_left].tolist()
            self._seen_key = seen
        task = self._task
        item = vector.item
        op = self.decide(
            task, self._logit, pending, self._room, pulled, pairs, self._gray,
            round(item(v.budget) * task.action_budget),
            round(item(v.actions_left) * task.max_investigator_actions_per_turn),
            round(item(v.rounds_remaining) * task.max_rounds), self._present_count)
        index = _investigator_index(op)
        if not mask[index]:  # knobs can differ from the task defaults; never act illegally
            index = I_END
        return index

    def act_model(self, obs):
        b = _Board()
        task = TASKS[obs.task_id or "task_1"]
        tokens: dict[int, dict[str, str]] = {}
        pending = []
        for ad_id, e in obs.evidence_ledger.items():
            s = AD_SLOT[ad_id]
            b.present[s] = True
            if e.get("status") == "pending":
                pending.append(s)
            b.category[s] = CATEGORY_INDEX[e["category"]]
            b.surface_z[s] = surface_z(e["account_age_days"], TLDS.index(e["landing_tld"]),
                                       PAYMENT_TYPES.index(e["payment_type"]),
                                       COUNTRIES.index(e["country"]))
            b.markers[s] = e["risk_markers"]
            b.junk[s] = is_gibberish(e.get("ad_copy", "")) and len(e.get("ad_copy", "")) >= 20
            tokens[s] = {}
            for t in e.get("targets_pulled", []):
                k = TARGET_INDEX[t]
                b.pulled[s, k] = True
                fields = e.get(t, {})
                b.signal[s, k] = headline_to_signal(t, fields[HEADLINE[t][0]])
                for name in _TOKEN_FIELDS:
                    if name in fields:
                        tokens[s][name] = fields[name]
        linked = {tuple(sorted((AD_SLOT[a], AD_SLOT[c]))) for a, c in obs.links}
        slots = sorted(tokens)
        pairs = [(i, j) for n, i in enumerate(slots) for j in slots[n + 1:]
                 if (i, j) not in linked and any(tokens[i][k] == tokens[j].get(k)
                                                 for k in tokens[i])]
        logit = surface_logit(b, task.task_id) + evidence_logit(b)
        op = self.decide(task, logit.tolist(), sorted(pending),
                         (b.pulled.sum(axis=1) < MAX_PULLS_PER_AD).tolist(), b.pulled,
                         pairs, (b.category == GRAY_CATEGORY).tolist(),
                         budget=int(obs.queue_status.get("budget", 0)),
                         actions_left=obs.actions_left_this_turn,
                         rounds_remaining=obs.rounds_remaining,
                         present_count=int(b.present.sum()))
        return self._model(op, obs)

    def _model(self, op, obs):
        kind = op[0]
        if kind == "investigate":
            return AdReviewAction(action_type="investigate", ad_id=AD_IDS[op[1]],
                                  investigation_target=TARGETS[op[2]])
        if kind == "link":
            return AdReviewAction(action_type="link_accounts", ad_id=AD_IDS[op[1]],
                                  linked_ad_id=AD_IDS[op[2]],
                                  link_reason="they share infrastructure tokens in the evidence")
        if kind == "verdict":
            ad = AD_IDS[op[1]]
            pulled = obs.evidence_ledger[ad].get("targets_pulled", [])
            cites = "; ".join(f"{t} {HEADLINE[t][0]}="
                              f"{obs.evidence_ledger[ad][t][HEADLINE[t][0]]}" for t in pulled)
            why = f"Evidence: {cites}." if cites else "Decided on the surface signals alone."
            return AdReviewAction(action_type="verdict", ad_id=ad, verdict=VERDICTS[op[2]],
                                  confidence=op[3], rationale=why)
        return AdReviewAction(action_type="end_turn")

    def decide(self, task, logit, pending, room, pulled, pairs, gray, budget, actions_left,
               rounds_remaining, present_count) -> tuple:
        """The choice both faces share, on plain lists indexed by slot: ``logit`` (log-odds that
        the ad is bad), ``room`` (fewer than MAX_PULLS_PER_AD sources pulled so far; read for
        pending slots only), ``gray`` (gray-area category). ``pulled``: slot x source array.
        ``pending``: the pending slots, ascending; ``pairs``: unlinked pairs that visibly share
        infrastructure."""
        if budget <= 0:
            return ("end_turn",)
        # 1. link pairs that visibly share infrastructure and both look bad
        for i, j in pairs:
            if logit[i] > LINK_LOGIT and logit[j] > LINK_LOGIT:
                return ("link", i, j, None)
        if not pending:
            return ("end_turn",)
        # 2. pull evidence while the remaining actions cover the queue still expected
        cap = task.max_investigator_actions_per_turn
        remaining = min(budget, actions_left + (rounds_remaining - 1) * cap)
        to_come = max(0, task.queue_size + task.max_proposals - present_count) * 0.8
        certainty = [abs(logit[s]) for s in pending]
        if remaining - len(pending) - to_come >= 1:
            # the most uncertain ad that still has sources to pull (the lowest slot of equals)
            open_ = [(c, s) for c, s in zip(certainty, pending)
                     if c < self.UNCERTAIN and room[s]]
            if open_:
                s = min(open_)[1]
                order = _SOURCE_ORDER_RINGS if task.n_rings else _SOURCE_ORDER
                row = pulled[s].tolist()
                t = next(t for t in order if not row[t])
                return ("investigate", s, t)
        # 3. otherwise rule on the ad we are surest about (the highest slot of equals)
        s = max(zip(certainty, pending))[1]
        p_bad = 1.0 / (1.0 + math.exp(-logit[s]))
        if_bad, if_legit = _VALUE_GRAY if gray[s] else _VALUE_FRAUD
        values = [p_bad * b + (1.0 - p_bad) * g for b, g in zip(if_bad, if_legit)]
        verdict = values.index(max(values))
        p_right = p_bad if verdict != 0 else 1.0 - p_bad
        return ("verdict", s, verdict, nearest_bucket(p_right), None)


def _verdict_table(bad_label: int, severity: float = 0.6) -> tuple[list, list]:
    from .scoring import verdict_reward

    return ([verdict_reward(v, bad_label, severity) for v in range(3)],
            [verdict_reward(v, 0, 0.0) for v in range(3)])


_SURF_W, _CAT_TERM, _BASE_LOGIT = _linear_surface_prior()
_EV_W = np.full(len(TARGETS), _EV_D * EVIDENCE_SCALE, np.float32)  # evidence log-likelihood
_PULL_W = np.full(len(TARGETS), -_EV_D * _EV_D / 2, np.float32)
_TASK_LIST = [TASKS[t] for t in TASK_IDS]


class _InvSlices:
    """Where the scripted investigator reads the investigator's vector (slices, no copies)."""

    _t = _SLICE_BY_NAME["investigator"]
    task = slice(*_t["task"][:2])
    present = slice(*_t["present"][:2])
    pending = slice(_t["status"][0], _t["status"][1], 4)  # status column 0: pending
    pulls_left = slice(*_t["pulls_left"][:2])
    gray = slice(_t["category"][0] + GRAY_CATEGORY, _t["category"][1], len(CATEGORIES))
    collisions = slice(*_t["collisions"][:2])
    seen = slice(_t["pulled"][0], _t["evidence"][1])  # pulled, evidence: contiguous
    lexical = slice(*_t["lexical"][:2])
    pulled = slice(*_t["pulled"][:2])
    surface = slice(*_t["surface"][:2])
    category = slice(*_t["category"][:2])
    static = slice(_t["category"][0], _t["lexical"][1])  # category, surface, lexical: contiguous
    evidence = slice(*_t["evidence"][:2])
    pair_shared = slice(*_t["pair_shared_signals"][:2])
    pair_linked = slice(*_t["pair_linked"][:2])
    budget = _t["budget"][0]
    actions_left = _t["actions_left_this_turn"][0]
    rounds_remaining = _t["rounds_remaining"][0]
_VALUE_FRAUD = _verdict_table(1)  # rows: reward if bad, reward if legit; columns: verdicts
_VALUE_GRAY = _verdict_table(2)
LINK_LOGIT = float(np.log(0.6 / 0.4))
_TOKEN_FIELDS = ("payment_id", "landing_host", "audience_fingerprint", "campaign_fingerprint")


_SOURCE_ORDER = (TARGET_INDEX["policy_classifier"], TARGET_INDEX["landing_page"],
                 TARGET_INDEX["advertiser_history"], TARGET_INDEX["payment_method"],
                 TARGET_INDEX["campaign_structure"], TARGET_INDEX["targeting_overlap"])
_SOURCE_ORDER_RINGS = tuple(RING_SIGNAL_SOURCE) + (TARGET_INDEX["policy_classifier"],
                                                   TARGET_INDEX["advertiser_history"])


def _investigator_index(op: tuple) -> int:
    kind = op[0]
    if kind == "investigate":
        return I_INVESTIGATE + op[1] * len(TARGETS) + op[2]
    if kind == "verdict":
        return I_VERDICT + op[1] * 9 + op[2] * 3 + CONFIDENCE_BUCKETS.index(op[3])
    if kind == "link":
        return I_LINK + int(PAIR_INDEX[op[1], op[2]])
    return I_END


# ============================================================================ fraudster
class _FraudsterView:
    """What the reactive fraudster reads, whichever face it came from."""

    __slots__ = ("task_id", "proposals_remaining", "room", "allowed", "mine_pending",
                 "mine_pulled", "trusted", "markers", "approved", "rejected", "network_used",
                 "actions_left_this_turn", "rounds_remaining")

    def __init__(self):
        self.task_id = "task_1"
        self.proposals_remaining = 0
        self.room = False
        self.allowed: tuple[int, ...] = ()  # the allowed categories, ascending
        self.mine_pending: list[int] = []
        self.mine_pulled: dict[int, bool] = {}
        self.trusted: set[int] = set()
        self.markers: dict[int, int] = {}
        self.approved = 0
        self.rejected = 0
        self.network_used = False
        self.actions_left_this_turn = 0
        self.rounds_remaining = 1


class ReactiveFraudster(Policy):
    """Proposes early (an ad earns for every round it runs) and adapts to the investigator.

    It starts with standard copy, favouring rich categories; each rejection pushes it toward
    subtler tactics and legit-looking categories, each approval back toward bolder copy. When
    the investigator starts pulling evidence on one of its pending ads, it dresses that ad up
    with a trust blurb or softens its copy. It avoids network categories once it has one (a
    shared-infrastructure ring is easy to link). It commits when out of proposals.
    """

    role = "fraudster"

    def act_tensor(self, vector, mask):
        t = _FR
        task = _TASK_LIST[int(vector[t.task].argmax())]
        f = _FraudsterView()
        f.task_id = task.task_id
        f.proposals_remaining = int(round(float(vector[t.proposals_remaining]) *
                                          task.max_proposals))
        f.room = vector[t.queue_room] > 0.5
        f.allowed = tuple(vector[t.allowed].nonzero()[0].tolist())
        item = vector.item
        for s in vector[t.mine].nonzero()[0].tolist():  # my proposals, by slot
            at = t.status + 4 * s  # status one-hot: pending, approved, rejected, escalated
            if item(at) > 0.5:
                f.mine_pending.append(s)
                f.mine_pulled[s] = bool(np.count_nonzero(vector[t.pulled + N_T * s:
                                                                t.pulled + N_T * (s + 1)]))
                f.markers[s] = int(round(item(t.my_surface + 5 * s + 4) * 6))
                if item(t.trusted + s) > 0.5:
                    f.trusted.add(s)
            else:
                f.approved += item(at + 1) > 0.5
                f.rejected += item(at + 2) > 0.5
            if not f.network_used:
                at = t.category + N_CAT * s
                f.network_used = _FAMILY[int(vector[at:at + N_CAT].argmax())] == "network"
        f.actions_left_this_turn = int(round(float(vector[t.actions_left]) *
                                             task.max_fraudster_actions_per_turn))
        f.rounds_remaining = max(1, int(round(float(vector[t.rounds_remaining]) *
                                              task.max_rounds)))
        index = _fraudster_index(self.decide(f, task))
        if not mask[index]:
            index = F_END
        return index

    def act_model(self, obs):
        f = _FraudsterView()
        f.task_id = obs.task_id or "task_1"
        task = TASKS[f.task_id]
        f.proposals_remaining = obs.proposals_remaining
        f.room = obs.can_propose
        f.allowed = tuple(sorted(CATEGORY_INDEX[c] for c in obs.allowed_categories))
        cats = []
        for item in obs.current_queue:
            if not item["is_my_proposal"]:
                continue
            s = AD_SLOT[item["ad_id"]]
            cats.append(item["category"])
            if item["status"] == "pending":
                f.mine_pending.append(s)
                pulled = np.zeros(len(TARGETS), bool)
                for t in obs.investigation_targets_used.get(item["ad_id"], []):
                    pulled[TARGET_INDEX[t]] = True
                f.mine_pulled[s] = bool(pulled.any())
                sig = obs.my_proposal_signals.get(item["ad_id"], {})
                f.markers[s] = int(sig.get("risk_markers", 0))
                if sig.get("trust_blurb"):
                    f.trusted.add(s)
            f.approved += item["status"] == "approve"
            f.rejected += item["status"] == "reject"
        f.network_used = any(c in _NETWORK for c in cats)
        f.actions_left_this_turn = obs.actions_left_this_turn
        f.rounds_remaining = max(1, obs.rounds_remaining)
        return op_to_model("fraudster", self.decide(f, task))

    def decide(self, f: _FraudsterView, task) -> tuple:
        # dress up an ad under scrutiny
        for s in f.mine_pending:
            if f.mine_pulled[s] and self.rng.random() < 0.5:
                if s not in f.trusted:
                    return ("modify", s, 1)
                if f.markers.get(s, 0) > 0:
                    return ("modify", s, 0)
        if f.proposals_remaining <= 0 or not f.room:
            return ("commit_final",)
        boldness = 1 + f.approved - f.rejected  # 0 blatant ... 3 camouflaged, by tactic index
        tactic = min(3, max(0, 2 - boldness + (self.rng.random() < 0.3)))
        allowed, weights, total = _proposal_odds(f.allowed, f.network_used, tactic == 3)
        x = self.rng.random() * total
        pick = allowed[-1]
        for c, w in zip(allowed, weights):
            x -= w
            if x < 0:
                pick = c
                break
        return ("propose", pick, int(tactic))


@cache
def _proposal_odds(allowed: tuple[int, ...], network_used: bool, camouflaged: bool):
    """The categories the reactive fraudster picks from, their weights and the weights' sum.
    It skips network categories once it has a network ad, and matches the family to the
    tactic: camouflaged copy goes into legit categories, the rest into fraud ones (each rule
    only when it leaves a choice)."""
    if network_used:
        allowed = tuple(c for c in allowed if _FAMILY[c] != "network") or allowed
    if camouflaged:
        allowed = tuple(c for c in allowed if _FAMILY[c] == "legit") or allowed
    else:
        allowed = tuple(c for c in allowed if _FAMILY[c] != "legit") or allowed
    weights = [_PICK_WEIGHT[c] for c in allowed]
    return allowed, weights, sum(weights)


_AU_RECORD = slice(_SLICE_BY_NAME["auditor"]["calibration"][0],
                   _SLICE_BY_NAME["auditor"]["track_b_cues"][1])
_FAMILY = [c.family for c in CATEGORIES]
_PICK_WEIGHT = [float(np.exp(3 * c.base_severity)) for c in CATEGORIES]  # richer is likelier


class _FR:
    """Where the reactive fraudster reads the fraudster's vector."""

    _t = _SLICE_BY_NAME["fraudster"]
    task = slice(*_t["task"][:2])
    proposals_remaining = _t["proposals_remaining"][0]
    queue_room = _t["queue_room"][0]
    allowed = slice(*_t["allowed_categories"][:2])
    mine = slice(*_t["mine"][:2])
    status = _t["status"][0]
    pulled = _t["pulled"][0]
    category = _t["category"][0]
    my_surface = _t["my_surface"][0]
    trusted = _t["trusted"][0]
    actions_left = _t["actions_left_this_turn"][0]
    rounds_remaining = _t["rounds_remaining"][0]


_NETWORK = tuple(c.name for c in CATEGORIES if c.family == "network")


def _fraudster_index(op: tuple) -> int:
    kind = op[0]
    if kind == "propose":
        return op[1] * len(TACTICS) + op[2]
    if kind == "modify":
        return F_MODIFY + op[1] * len(FRAUDSTER_EDITS) + op[2]
    return F_END if kind == "end_turn" else F_COMMIT


# ============================================================================ auditor
_AU_READS = ("lexical", "track_b_cues", "proposal", "status", "pulled", "link_conflict",
             "manual", "evidence", "calibration")  # what HeuristicAuditor._candidates reads
# The auditor's action index of each flag: _FLAG_A[slot + 1][type] (row 0: the match as a whole)
# and _FLAG_B[slot][type].
_FLAG_A = [{f: A_FLAG_A + k * len(AUDIT_TRACK_A) + i for i, f in enumerate(AUDIT_TRACK_A)}
           for k in range(S + 1)]
_FLAG_B = [{f: A_FLAG_B + s * len(AUDIT_TRACK_B) + i for i, f in enumerate(AUDIT_TRACK_B)}
           for s in range(S)]


class HeuristicAuditor(Policy):
    """Re-derives the obvious faults from what it sees and flags them one by one, then submits:
    gibberish, injected or repeated proposals (track B); verdicts given without any evidence,
    approvals against damning evidence, linked ads ruled opposite ways and over-confident
    confidence bins (track A)."""

    role = "auditor"

    def act_tensor(self, vector, mask):
        key = vector[_AU_RECORD].tobytes()
        if key != getattr(self, "_key", None):  # a new record: work out the flags once
            self._key = key
            self._plan = list(dict.fromkeys(self._candidates(views("auditor", vector,
                                                                  _AU_READS))))
        for index in self._plan:
            if mask[index]:
                return index
        return A_SUBMIT

    def _candidates(self, v):
        lex = v["lexical"]
        cues = (v["track_b_cues"] > 0.5).tolist()
        for s in (v["proposal"] > 0.5).nonzero()[0].tolist():
            if lex[s, 6] < 0.28 or lex[s, 7] < 0.75 or lex[s, 2] < 20 / 400:
                yield _FLAG_B[s]["gibberish"]
            for flag, cued in zip(TRACK_B_CUES, cues[s]):
                if cued:
                    yield _FLAG_B[s][flag]
        status = v["status"].argmax(axis=1).tolist()
        pulled = v["pulled"] > 0.5
        pulled_any = pulled.any(axis=1).tolist()
        conflict = (v["link_conflict"] > 0.5).tolist()
        for s in (v["manual"] > 0.5).nonzero()[0].tolist():
            if status[s] in (1, 2) and not pulled_any[s]:
                yield _FLAG_A[s + 1]["missing_citation"]
            if status[s] == 1 and pulled_any[s]:
                seen = v["evidence"][s][pulled[s]] * EVIDENCE_SCALE
                # float32 ndarray.mean() without its overhead: a float32 sum over a float64 count
                mean = np.float32(float(np.add.reduce(seen)) / len(seen))
                if mean >= 2.0:
                    yield _FLAG_A[s + 1]["incoherent_rationale"]
            if conflict[s]:
                yield _FLAG_A[s + 1]["inconsistency"]
        cal = v["calibration"]  # compared in float32, as observed
        if any(cal[b, 0] * S >= 3 and cal[b, 1] - cal[b, 2] > 0.3 for b in range(3)):
            yield _FLAG_A[0]["miscalibration"]

    def act_model(self, obs):
        rec = obs.full_episode_record
        raised = {(f["flag_type"], f.get("target_ad_id")) for f in obs.pending_flags}
        for ftype, target, track in self._model_candidates(obs, rec):
            if (ftype, target) not in raised:
                return AuditorAction(action_type="flag_investigator" if track == "A" else
                                     "flag_fraudster", target_ad_id=target, flag_type=ftype,
                                     severity=0.7, note="rule-of-thumb audit")
        return AuditorAction(action_type="submit_audit_report")

    def _model_candidates(self, obs, rec):
        ads = {a["ad_id"]: a for a in rec.get("ads", [])}
        seen_copies = []
        for a in rec.get("ads", []):
            if a["is_fraudster_proposal"]:
                if is_gibberish(a["ad_copy"]):
                    yield "gibberish", a["ad_id"], "B"
                if a["ad_copy"] in seen_copies:
                    yield "template_repetition", a["ad_id"], "B"
                seen_copies.append(a["ad_copy"])
        verdicts = [v for v in rec.get("verdicts", []) if not v["auto_approved"]]
        for v in verdicts:
            if v["verdict"] in ("approve", "reject") and not v["targets_pulled"]:
                yield "missing_citation", v["ad_id"], "A"
        by_id = {v["ad_id"]: (i, v["verdict"]) for i, v in enumerate(verdicts)}
        for a, b in rec.get("links", []):
            if a in by_id and b in by_id and {by_id[a][1], by_id[b][1]} == {"approve", "reject"}:
                yield "inconsistency", max((a, b), key=lambda x: by_id[x][0]), "A"
        right = {"legit": "approve", "fraud": "reject", "escalate": "escalate"}
        conf = np.asarray([v["confidence"] for v in verdicts])
        ok = np.asarray([right[ads[v["ad_id"]]["ground_truth"]] == v["verdict"]
                         for v in verdicts])
        if len(conf):
            bins = np.digitize(conf, (0.4, 0.7))
            if any((bins == b).sum() >= 3 and conf[bins == b].mean() - ok[bins == b].mean() > 0.3
                   for b in range(3)):
                yield "miscalibration", None, "A"


# ============================================================================ degenerate references
class _Fixed(Policy):
    """A reference policy that always does the same kind of thing (for fairness tests)."""

    def __init__(self, role: str, seed: int | None = None):
        super().__init__(seed)
        self.role = role


class AlwaysVerdict(_Fixed):
    def __init__(self, verdict: str, seed: int | None = None):
        super().__init__("investigator", seed)
        self.verdict = VERDICTS.index(verdict)

    def act_tensor(self, vector, mask):
        block = mask[I_VERDICT:I_LINK].reshape(S, 3, 3)[:, self.verdict, 2]
        legal = np.flatnonzero(block)
        if len(legal):
            return I_VERDICT + int(legal[0]) * 9 + self.verdict * 3 + 2
        return I_END


class AlwaysReject(AlwaysVerdict):
    def __init__(self, seed=None):
        super().__init__("reject", seed)


class AlwaysApprove(AlwaysVerdict):
    def __init__(self, seed=None):
        super().__init__("approve", seed)


class AlwaysEscalate(AlwaysVerdict):
    def __init__(self, seed=None):
        super().__init__("escalate", seed)


class InvestigateSpam(_Fixed):
    def __init__(self, seed=None):
        super().__init__("investigator", seed)

    def act_tensor(self, vector, mask):
        legal = np.flatnonzero(mask[I_INVESTIGATE:I_VERDICT])
        return int(legal[self.rng.integers(len(legal))]) if len(legal) else I_END


class DoNothing(_Fixed):
    def __init__(self, seed=None):
        super().__init__("investigator", seed)

    def act_tensor(self, vector, mask):
        return I_END


class LinkEverything(_Fixed):
    def __init__(self, seed=None):
        super().__init__("investigator", seed)

    def act_tensor(self, vector, mask):
        legal = np.flatnonzero(mask[I_LINK:I_END])
        return I_LINK + int(legal[0]) if len(legal) else I_END


class GibberishFraudster(_Fixed):
    """Random letters for copy, a random allowed category; commits when out of proposals."""

    def __init__(self, seed=None):
        super().__init__("fraudster", seed)

    def act_model(self, obs):
        if obs.proposals_remaining <= 0 or not obs.can_propose:
            return FraudsterAction(action_type="commit_final")
        letters = np.asarray(list("abcdefghijklmnopqrstuvwxyz     "))
        n = int(self.rng.integers(40, 120))
        copy = "".join(self.rng.choice(letters, n)).strip() or "zzzz"
        cat = obs.allowed_categories[int(self.rng.integers(len(obs.allowed_categories)))]
        return FraudsterAction(action_type="propose_ad", category=cat, ad_copy=copy,
                               targeting_summary="adults")


class RepeatOneAdFraudster(_Fixed):
    """Proposes the same ad, word for word, every time."""

    COPY = "Designer handbags and watches, official outlet, limited stock. Order now!"

    def __init__(self, seed=None):
        super().__init__("fraudster", seed)

    def act_model(self, obs):
        if obs.proposals_remaining <= 0 or not obs.can_propose:
            return FraudsterAction(action_type="commit_final")
        cat = "counterfeit_goods" if "counterfeit_goods" in obs.allowed_categories else \
            obs.allowed_categories[0]
        return FraudsterAction(action_type="propose_ad", category=cat, ad_copy=self.COPY)


class FlagEverythingAuditor(_Fixed):
    def __init__(self, seed=None):
        super().__init__("auditor", seed)

    def act_tensor(self, vector, mask):
        legal = np.flatnonzero(mask[:A_SUBMIT])
        return int(legal[0]) if len(legal) else A_SUBMIT


DEGENERATE_INVESTIGATORS = {"always_reject": AlwaysReject, "always_approve": AlwaysApprove,
                            "always_escalate": AlwaysEscalate,
                            "investigate_spam": InvestigateSpam, "do_nothing": DoNothing,
                            "link_everything": LinkEverything,
                            "random": lambda seed=None: RandomPolicy("investigator", seed)}
BASELINES = {"fraudster": ReactiveFraudster, "investigator": ScriptedInvestigator,
             "auditor": HeuristicAuditor}

__all__ = ["Policy", "RandomPolicy", "ScriptedInvestigator", "ReactiveFraudster",
           "HeuristicAuditor", "AlwaysReject", "AlwaysApprove", "AlwaysEscalate",
           "InvestigateSpam", "DoNothing", "LinkEverything", "GibberishFraudster",
           "RepeatOneAdFraudster", "FlagEverythingAuditor", "DEGENERATE_INVESTIGATORS",
           "BASELINES", "views", "N_ACTIONS"]
