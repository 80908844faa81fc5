"""The scripted baselines, one per role, each on either face: ``ScriptedInvestigator`` (a Bayesian
reading of the published rules, ``belief``), ``ReactiveFraudster`` (mixes tactics and reacts to
the investigator) and ``HeuristicAuditor`` (re-derives the obvious faults); ``BASELINES`` maps
each role to its baseline.

Text face: ``act(observation_model)`` returns the role's pydantic action model. Tensor face:
``act(vector, action_mask)`` (or ``act({"observation": ..., "action_mask": ...})``) returns an
action index. Both faces reduce the observation to the same reading and share one ``decide``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache

import numpy as np

from ..faces.encoding import (
    A_SUBMIT,
    EVIDENCE_SCALE,
    F_END,
    I_END,
    PAIRS,
    TRACK_B_CUES,
    decode_surface,
    index_of,
    op_to_model,
)
from ..models import AuditorAction
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
    ESCALATE,
    FRAUD,
    FRAUDSTER_EDITS,
    LEGIT,
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
    nearest_bucket,
)
from ..rules.evidence import HEADLINE, headline_to_signal
from ..rules.lexicon import is_gibberish, reads_as_gibberish
from . import belief
from .base import SPANS, Policy, views

S = MAX_SLOTS
N_T = len(TARGETS)


# ============================================================================ investigator
class Reading:
    """What an investigator sees of the queue, per slot, whichever face it came from: the free
    surface, the evidence it pulled, and which slots are present and pending."""

    def __init__(self):
        self.present = np.zeros(S, bool)
        self.pending = np.zeros(S, bool)
        self.category = np.zeros(S, np.intp)
        self.age = np.ones(S)
        self.tld = np.zeros(S, np.intp)
        self.payment = np.zeros(S, np.intp)
        self.country = np.zeros(S, np.intp)
        self.markers = np.zeros(S, np.intp)
        self.junk = np.zeros(S, bool)  # copy that reads as gibberish
        self.pulled = np.zeros((S, N_T), bool)
        self.signal = np.zeros((S, N_T))  # evidence signals, where pulled

    def first_sight_key(self) -> bytes:
        return b"".join(a.tobytes() for a in (self.present, self.category, self.age, self.tld,
                                              self.payment, self.country, self.markers,
                                              self.junk))


def read_investigator_tensor(vector: np.ndarray, reading: Reading | None = None) -> Reading:
    """Fill a ``Reading`` from the investigator's observation vector (through its named views)."""
    r = reading or Reading()
    v = views("investigator", vector, _INV_READS)
    _read_first_sight(v, r)
    _read_evidence(v, r)
    r.pending[:] = v["status"][:, 0] > 0.5
    return r


def _read_first_sight(v: dict, r: Reading) -> None:
    """What a ``Reading`` sees of the ads for free, from the investigator's views ``v``."""
    r.present[:] = v["present"] > 0.5
    r.category[:] = v["category"].argmax(axis=1)
    surface = decode_surface(v["surface"])
    r.age[:] = surface["account_age"]
    r.tld[:] = surface["landing_tld"]
    r.payment[:] = surface["payment_type"]
    r.country[:] = surface["country"]
    r.markers[:] = surface["risk_markers"]
    r.junk[:] = r.present & reads_as_gibberish(v["lexical"])


def _read_evidence(v: dict, r: Reading) -> None:
    """The evidence a ``Reading`` has pulled, from the investigator's views ``v``."""
    r.pulled[:] = v["pulled"] > 0.5
    r.signal[:] = np.round(v["evidence"] * EVIDENCE_SCALE, 2) * r.pulled


def investigator_task(vector: np.ndarray):
    """The task (its ``TaskConfig``) an investigator's observation vector is from."""
    return _TASK_LIST[int(vector[_InvGlobals.task].argmax())]


def read_investigator_model(obs) -> Reading:
    """Fill a ``Reading`` from an ``AdReviewObservation`` (the evidence ledger)."""
    r = Reading()
    for ad_id, e in obs.evidence_ledger.items():
        s = AD_SLOT[ad_id]
        r.present[s] = True
        r.pending[s] = e.get("status") == "pending"
        r.category[s] = CATEGORY_INDEX[e["category"]]
        r.age[s] = e["account_age_days"]
        r.tld[s] = TLDS.index(e["landing_tld"])
        r.payment[s] = PAYMENT_TYPES.index(e["payment_type"])
        r.country[s] = COUNTRIES.index(e["country"])
        r.markers[s] = e["risk_markers"]
        r.junk[s] = is_gibberish(e.get("ad_copy", ""))
        for t in e.get("targets_pulled", []):
            k = TARGET_INDEX[t]
            r.pulled[s, k] = True
            r.signal[s, k] = round(headline_to_signal(t, e[t][HEADLINE[t][0]]), 2)
    return r


class ScriptedInvestigator(Policy):
    """A Bayesian investigator that knows the published rules.

    It reads every ad as a posterior over the kinds of ad (``belief``), pulls the source whose
    expected gain in verdict value is largest while that gain beats the price of a budget unit
    (the price rises as the budget it must keep for the queue still to come runs short), links
    ads that share infrastructure when both look bad, and rules on settled ads by expected
    reward, stating the posterior probability that its verdict is right as its confidence. Ads
    it would approve it leaves pending when the budget is tight: every end path approves them.
    Both faces reduce the observation to a ``Reading`` and share ``decide``.

    It keeps its beliefs between decisions (``belief.QueueBelief``, and on the tensor face its
    ``Reading``, re-read only where the vector changed), so one player should see one match's
    decisions in order, as in play; a new match or a state from elsewhere is read afresh where
    it differs. Decisions equal working everything out from scratch (the tests' oracle).
    """

    role = "investigator"
    PULL_PRICE = 0.01  # the least expected gain a pull must bring, in reward
    SCARCITY_PRICE = 0.0  # added per unit of shortfall in the budget kept for what is to come
    KEEP_PER_AD = 1.2  # budget kept for each ad still expected to arrive
    RING_LOOKS = 1  # ring-token sources pulled on a bad ad before rejecting it (ring tasks)
    LINK_P_BAD = 0.6  # both ads at least this likely bad before linking them

    def __init__(self, seed: int | None = None):
        super().__init__(seed)
        self._reading = Reading()
        self._belief = belief.QueueBelief(S)
        self._first_sight_raw = self._evidence_raw = None

    def act_tensor(self, vector, mask):
        g = _InvGlobals
        task = investigator_task(vector)
        r = self.read(vector)
        pairs = []
        if np.count_nonzero(vector[g.collisions]):  # some ads visibly share a ring signal
            linked = vector[g.pair_linked]
            pairs = [(int(PAIRS[p, 0]), int(PAIRS[p, 1]))
                     for p in np.flatnonzero(vector[g.pair_shared]).tolist() if linked[p] < 0.5]
        item = vector.item
        op = self.decide(task, r, pairs,
                         round(item(g.budget) * task.action_budget),
                         round(item(g.actions_left) * task.max_investigator_actions_per_turn),
                         round(item(g.rounds_remaining) * task.max_rounds))
        return self.legal_or(index_of("investigator", op), mask, I_END)

    def read(self, vector: np.ndarray) -> Reading:
        """The ``Reading`` of an observation vector: the policy's own, updated where the vector
        changed since the last decision."""
        g, r = _InvGlobals, self._reading
        raw = b"".join([vector[part].tobytes() for part in g.first_sight_parts])
        if raw != self._first_sight_raw:
            _read_first_sight(views("investigator", vector, _FIRST_SIGHT_READS), r)
            self._first_sight_raw = raw
        raw = vector[g.evidence_part].tobytes()
        if raw != self._evidence_raw:
            _read_evidence(views("investigator", vector, _EVIDENCE_READS), r)
            self._evidence_raw = raw
        r.pending[:] = vector[g.pending] > 0.5
        return r

    def act_model(self, obs):
        task = TASKS[obs.task_id or "task_1"]
        r = read_investigator_model(obs)
        tokens: dict[int, dict[str, str]] = {}
        for ad_id, e in obs.evidence_ledger.items():
            s = AD_SLOT[ad_id]
            tokens[s] = {name: e[t][name] for t in e.get("targets_pulled", [])
                         for name in _TOKEN_FIELDS if name in e[t]}
        linked = {tuple(sorted((AD_SLOT[a], AD_SLOT[c]))) for a, c in obs.links}
        slots = sorted(tokens)
        pairs = [(i, j) for n, i in enumerate(slots) for j in slots[n + 1:]
                 if (i, j) not in linked and any(tokens[i][k] == tokens[j].get(k)
                                                 for k in tokens[i])]
        op = self.decide(task, r, pairs, budget=int(obs.queue_status.get("budget", 0)),
                         actions_left=obs.actions_left_this_turn,
                         rounds_remaining=obs.rounds_remaining)
        return self._model(op, obs)

    def _model(self, op, obs):
        """The op as an action model, with the reasons a reader of the text face expects."""
        if type(op) is Link:
            op = replace(op, reason="they share infrastructure tokens in the evidence")
        elif type(op) is Verdict:
            ad = AD_IDS[op.slot]
            pulled = obs.evidence_ledger[ad].get("targets_pulled", [])
            cites = "; ".join(f"{t} {HEADLINE[t][0]}="
                              f"{obs.evidence_ledger[ad][t][HEADLINE[t][0]]}" for t in pulled)
            why = f"Evidence: {cites}." if cites else "Decided on the surface signals alone."
            op = replace(op, rationale=why)
        return op_to_model("investigator", op)

    def beliefs(self, task, r: Reading) -> belief.QueueBelief:
        """The belief about every slot (``belief.QueueBelief``), brought up to date with ``r``:
        only what changed since the last decision is recomputed."""
        b = self._belief
        b.update(task.task_id, (r.category, r.age, r.tld, r.payment, r.country, r.markers, r.junk),
                 (task.task_id, r.first_sight_key()), r.signal, r.pulled)
        return b

    def decide(self, task, r: Reading, pairs, budget, actions_left, rounds_remaining) -> Op:
        """The choice both faces share. ``pairs``: unlinked slot pairs that visibly share
        infrastructure."""
        if budget <= 0:
            return EndTurn()
        b = self.beliefs(task, r)
        p_bad, best, sure = b.p_bad, b.best, b.sure
        # 1. link pairs that visibly share infrastructure and both look bad
        for i, j in pairs:
            if p_bad[i] > self.LINK_P_BAD and p_bad[j] > self.LINK_P_BAD:
                return Link(i, j)
        pending = np.flatnonzero(r.pending).tolist()
        if not pending:
            return EndTurn()
        n_verdicts = sum(best[s] != 0 for s in pending)  # approvals can be left to the end
        # 2. the budget kept for what is still to come: a verdict for every pending ad that is
        # not an approval, KEEP_PER_AD actions for each ad still expected to arrive, and two
        present = int(np.count_nonzero(r.present))
        to_come = max(0, task.queue_size + task.max_proposals - present)
        keep = n_verdicts + self.KEEP_PER_AD * to_come + 2
        spare = budget - keep
        last_round = rounds_remaining <= 1
        price = self.PULL_PRICE + self.SCARCITY_PRICE * (1.0 + to_come) / max(spare, 1.0)
        can_pull = spare >= 1 and (not last_round or actions_left > n_verdicts)
        # the turn's last actions go to verdicts: an ad left pending runs another round; the
        # value of a pull is needed only when one may be made
        pricing = can_pull and actions_left > n_verdicts
        surest_first = sorted(pending, key=lambda s: -sure[s])  # stable: slot order on ties
        # 3. stop harm first: reject or escalate the surest settled ad (no pull worth its price)
        for slot in surest_first:
            if best[slot] != 0 and (not pricing or b.best_pull(slot)[0] <= price):
                # in ring tasks, a look at its infrastructure first, in the same turn: a
                # shared payment id or fingerprint is a link worth making
                if (task.n_rings and spare >= 1 and actions_left >= 2 and p_bad[slot] >
                        self.LINK_P_BAD and r.pulled[slot, _RING_SOURCES].sum() < self.RING_LOOKS
                        and r.pulled[slot].sum() < MAX_PULLS_PER_AD):
                    # every bad ad looks at the same sources first, so ring members collide
                    for t in _LOOK_ORDER:
                        if not r.pulled[slot, t]:
                            return Investigate(slot, t)
                return self._verdict(slot, best[slot], b.post[slot])
        # 4. pull the most valuable source while it is worth its price (when nothing needs a
        # verdict, the turn is not closing: the investigator has an action left)
        if can_pull:
            top, at = -math.inf, None
            for s in pending:  # the first of equals, in slot and source order
                gain, t = b.best_pull(s)
                if gain > top or at is None:
                    top, at = gain, (s, t)
            if top > price:
                return Investigate(*at)
        # 5. approve what is settled, with budget to spare; else leave it to the end
        for slot in surest_first:
            if best[slot] != 0 or spare >= 1:
                return self._verdict(slot, best[slot], b.post[slot])
        return EndTurn()

    @staticmethod
    def _verdict(slot, verdict, post) -> Verdict:
        """A verdict op, with the posterior chance that it is right as its confidence."""
        v = int(verdict)
        return Verdict(int(slot), v, nearest_bucket(float(post[_CORRECT_KINDS[v]].sum())))


def _parts(role: str, names) -> list[slice]:
    """The stretches of a role's vector that hold these views, adjacent views joined."""
    parts: list[list[int]] = []
    for a, b, _ in sorted(SPANS[role][name] for name in names):
        if parts and parts[-1][1] == a:
            parts[-1][1] = b
        else:
            parts.append([a, b])
    return [slice(a, b) for a, b in parts]


_FIRST_SIGHT_READS = ("present", "category", "surface", "lexical")
_EVIDENCE_READS = ("pulled", "evidence")


class _InvGlobals:
    """Where the scripted investigator reads the investigator's vector, beyond its views."""

    _t = SPANS["investigator"]
    task = slice(*_t["task"][:2])
    collisions = slice(*_t["collisions"][:2])
    pair_shared = slice(*_t["pair_shared_signals"][:2])
    pair_linked = slice(*_t["pair_linked"][:2])
    budget = _t["budget"][0]
    actions_left = _t["actions_left_this_turn"][0]
    rounds_remaining = _t["rounds_remaining"][0]
    pending = slice(_t["status"][0], _t["status"][1], _t["status"][2][1])  # status[:, 0]
    first_sight_parts = _parts("investigator", _FIRST_SIGHT_READS)
    (evidence_part,) = _parts("investigator", _EVIDENCE_READS)


_RING_SOURCES = list(RING_SIGNAL_SOURCE)
_LOOK_ORDER = [TARGET_INDEX[t] for t in ("payment_method", "campaign_structure", "landing_page",
                                         "targeting_overlap")]
_INV_READS = ("present", "status", "category", "surface", "lexical", "pulled", "evidence")
_TASK_LIST = [TASKS[t] for t in TASK_IDS]
# The kinds each verdict is right for (approve: legit; reject: the fraud tactics; escalate: gray)
_CORRECT_KINDS = [belief.KIND_LABEL == LEGIT, belief.KIND_LABEL == FRAUD,
                  belief.KIND_LABEL == ESCALATE]
_TOKEN_FIELDS = ("payment_id", "landing_host", "audience_fingerprint", "campaign_fingerprint")


# ============================================================================ fraudster
class _FraudsterView:
    """What the reactive fraudster reads, whichever face it came from."""

    __slots__ = ("proposals_remaining", "room", "allowed", "mine_pending", "mine_pulled",
                 "trusted", "used_tactics", "tactic_won", "tactic_lost", "used_categories",
                 "network_used")

    def __init__(self):
        self.proposals_remaining = 0
        self.room = False
        self.allowed: tuple[int, ...] = ()  # the allowed categories, ascending
        self.mine_pending: list[int] = []  # my pending proposals, by slot
        self.mine_pulled: dict[int, bool] = {}  # has the investigator pulled evidence on it
        self.trusted: set[int] = set()
        self.used_tactics = [0] * len(TACTICS)
        self.tactic_won = [0] * len(TACTICS)  # approved proposals per tactic
        self.tactic_lost = [0] * len(TACTICS)  # rejected or escalated ones
        self.used_categories: set[int] = set()
        self.network_used = False

    def add(self, slot: int, category: int, tactic: int, status: int, pulled: bool,
            trusted: bool) -> None:
        """One of my proposals: ``status`` 0 pending, 1 approved, 2 rejected, 3 escalated."""
        self.used_categories.add(category)
        self.network_used |= _FAMILY[category] == "network"
        if tactic >= 0:
            self.used_tactics[tactic] += 1
        if status == 0:
            self.mine_pending.append(slot)
            self.mine_pulled[slot] = pulled
            if trusted:
                self.trusted.add(slot)
        elif tactic >= 0:
            if status == 1:
                self.tactic_won[tactic] += 1
            else:
                self.tactic_lost[tactic] += 1


class ReactiveFraudster(Policy):
    """Mixes tactics and categories, and reacts to the investigator.

    Each proposal takes the tactic with the best running score: camouflaged and subtle copy
    start ahead (against an investigator who reads the surface, hiding pays), every earlier use
    of a tactic costs it (a reused signature is easier to catch), and each approval or rejection
    of that tactic moves it up or down. Camouflaged and subtle copy go into legit-looking
    categories, standard and blatant into rich risky ones, and it avoids repeating a category (a
    repeated template reads as implausible) and a second network ad (a shared-infrastructure
    ring is easy to link). It proposes early, since an ad earns for every round it runs, dresses
    up a pending ad the investigator is pulling evidence on with a trust blurb, and commits when
    out of proposals.
    """

    role = "fraudster"
    TACTIC_SCORE = (0.1, 0.55, 0.9, 1.0)  # blatant, standard, subtle, camouflaged
    REUSE_COST = 0.3
    WON, LOST = 0.3, 0.15
    barred_tactics: tuple[int, ...] = ()  # tactics it never uses (none; see WaitingFraudster)

    def act_tensor(self, vector, mask):
        v = views("fraudster", vector, _FR_READS)
        f = _FraudsterView()
        f.proposals_remaining = int(np.count_nonzero(v["proposals_remaining"] > 1e-6))
        f.room = v["queue_room"][0] > 0.5
        f.allowed = tuple(np.flatnonzero(v["allowed_categories"]).tolist())
        status, category = v["status"].argmax(axis=1), v["category"].argmax(axis=1)
        tactic = np.where(v["my_tactic"].any(axis=1), v["my_tactic"].argmax(axis=1), -1)
        pulled = v["pulled"].any(axis=1)
        for s in np.flatnonzero(v["mine"]).tolist():
            f.add(s, int(category[s]), int(tactic[s]), int(status[s]), bool(pulled[s]),
                  bool(v["trusted"][s] > 0.5))
        return self.legal_or(index_of("fraudster", self.decide(f)), mask, F_END)

    def act_model(self, obs):
        f = _FraudsterView()
        f.proposals_remaining = obs.proposals_remaining
        f.room = obs.can_propose
        f.allowed = tuple(sorted(CATEGORY_INDEX[c] for c in obs.allowed_categories))
        for item in obs.current_queue:
            if not item["is_my_proposal"]:
                continue
            ad = item["ad_id"]
            sig = obs.my_proposal_signals.get(ad, {})
            f.add(AD_SLOT[ad], CATEGORY_INDEX[item["category"]],
                  TACTICS.index(sig["tactic"]) if sig.get("tactic") else -1,
                  _STATUS_INDEX[item["status"]], bool(obs.investigation_targets_used.get(ad)),
                  bool(sig.get("trust_blurb")))
        return op_to_model("fraudster", self.decide(f))

    def decide(self, f: _FraudsterView) -> Op:
        for s in f.mine_pending:  # dress up an ad under scrutiny
            if f.mine_pulled[s] and s not in f.trusted and self.rng.random() < 0.5:
                return Modify(s, _TRUST_BLURB)
        if f.proposals_remaining <= 0 or not f.room:
            return CommitFinal()
        score = [base - self.REUSE_COST * used + self.WON * won - self.LOST * lost
                 + 0.05 * self.rng.random()
                 for base, used, won, lost in zip(self.TACTIC_SCORE, f.used_tactics,
                                                  f.tactic_won, f.tactic_lost)]
        for t in self.barred_tactics:
            score[t] = -np.inf
        tactic = int(np.argmax(score))
        allowed, weights, total = proposal_odds(f.allowed, f.network_used, tactic >= HIDDEN_FROM)
        fresh = [(c, w) for c, w in zip(allowed, weights) if c not in f.used_categories]
        if fresh:
            allowed, weights = zip(*fresh)
            total = sum(weights)
        return Propose(weighted_pick(self.rng.random() * total, allowed, weights), tactic)


def weighted_pick(x: float, items, weights):
    """The item whose share of the weights' running sum ``x`` (drawn in [0, total)) falls in."""
    for item, w in zip(items, weights):
        x -= w
        if x < 0:
            return item
    return items[-1]


@cache
def proposal_odds(allowed: tuple[int, ...], network_used: bool, hidden: bool):
    """The categories a fraudster picks from, their weights and the weights' sum. It skips
    network categories once it has a network ad, and matches the family to the tactic: hidden
    (subtle or camouflaged) copy goes into legit-looking categories, the rest into risky ones
    (each rule only when it leaves a choice). Richer categories are likelier."""
    if network_used:
        allowed = tuple(c for c in allowed if _FAMILY[c] != "network") or allowed
    if hidden:
        allowed = tuple(c for c in allowed if _FAMILY[c] == "legit") or allowed
    else:
        allowed = tuple(c for c in allowed if _FAMILY[c] != "legit") or allowed
    weights = [_PICK_WEIGHT[c] for c in allowed]
    return allowed, weights, sum(weights)


_FAMILY = [c.family for c in CATEGORIES]
# subtle and camouflaged copy hide: it goes into legit-looking categories
HIDDEN_FROM = TACTICS.index("subtle")
_PICK_WEIGHT = [float(np.exp(3 * c.base_severity)) for c in CATEGORIES]  # richer is likelier
_FR_READS = ("proposals_remaining", "queue_room", "allowed_categories", "mine", "status",
             "category", "my_tactic", "pulled", "trusted")
# the seed protocol's status words for decided ads are the verdicts themselves
_STATUS_INDEX = {"pending": 0, "approve": 1, "reject": 2, "escalate": 3}
_TRUST_BLURB = FRAUDSTER_EDITS.index("add_trust_blurb")


# ============================================================================ auditor
_AU_RECORD = slice(SPANS["auditor"]["calibration"][0], SPANS["auditor"]["track_b_cues"][1])
_AU_READS = ("lexical", "track_b_cues", "proposal", "status", "pulled", "link_conflict",
             "manual", "evidence", "calibration")  # what HeuristicAuditor._candidates reads
# The auditor's action index of each flag: _FLAG_A[slot + 1][type] (row 0: the match as a whole)
# and _FLAG_B[slot][type].
_FLAG_A = [{f: index_of("auditor", Flag("A", k - 1, f)) for f in AUDIT_TRACK_A}
           for k in range(S + 1)]
_FLAG_B = [{f: index_of("auditor", Flag("B", s, f)) for f in AUDIT_TRACK_B} for s in range(S)]


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
        junk = reads_as_gibberish(v["lexical"]).tolist()
        cues = (v["track_b_cues"] > 0.5).tolist()
        for s in (v["proposal"] > 0.5).nonzero()[0].tolist():
            if junk[s]:
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


BASELINES = {"fraudster": ReactiveFraudster, "investigator": ScriptedInvestigator,
             "auditor": HeuristicAuditor}
