"""Reference policies, the yardsticks the fairness tests and ``fraudarena evaluate --suite skill``
hold the scripted baselines against:

* blind investigators, which never pull evidence (``BLIND_INVESTIGATORS``: reject all but gray,
  category and surface rules, a classifier on first-sight features);
* ``OracleInvestigator``, which reads the ground truth (the ceiling);
* degenerate players (``DEGENERATE_INVESTIGATORS``, the gibberish and repeat-one-ad fraudsters,
  the flag-everything auditor, ``NeverPropose``), none of which may win;
* ``SINGLE_TACTIC_FRAUDSTERS``: one tactic throughout, the reference a mixing fraudster must beat.
"""

from __future__ import annotations

import numpy as np

from ..faces.encoding import (
    A_SUBMIT,
    F_COMMIT,
    F_END,
    I_END,
    I_INVESTIGATE,
    I_LINK,
    I_VERDICT,
    index_of,
)
from ..models import AdReviewAction, FraudsterAction
from ..rules.actions import Propose, Verdict
from ..rules.catalog import (
    AD_IDS,
    APPROVE,
    CATEGORIES,
    CONFIDENCE_BUCKETS,
    CORRECT_VERDICT,
    ESCALATE,
    ESCALATE_V,
    FRAUD,
    GRAY_CATEGORY,
    LEGIT,
    LEGIT_FAMILY,
    MAX_SLOTS,
    REJECT,
    TACTICS,
    VERDICTS,
    nearest_bucket,
)
from ..rules.scoring import verdict_reward
from .base import SPANS, Policy, RandomPolicy
from .scripted import (
    HIDDEN_FROM,
    ReactiveFraudster,
    Reading,
    investigator_task,
    proposal_odds,
    read_investigator_tensor,
    weighted_pick,
)

S = MAX_SLOTS
_LEGIT_FAMILY = np.zeros(len(CATEGORIES), bool)
_LEGIT_FAMILY[list(LEGIT_FAMILY)] = True
# The investigator's action index of each verdict: _VERDICT_AT[slot, verdict, confidence bucket].
_VERDICT_AT = np.array([[[index_of("investigator", Verdict(s, v, c)) for c in CONFIDENCE_BUCKETS]
                         for v in range(len(VERDICTS))] for s in range(S)])


class _FR:
    """Where the reference fraudsters read the fraudster's vector."""

    _t = SPANS["fraudster"]
    proposals_remaining = _t["proposals_remaining"][0]
    queue_room = _t["queue_room"][0]
    allowed = slice(*_t["allowed_categories"][:2])
    round = _t["round"][0]
    rounds_remaining = _t["rounds_remaining"][0]


def _rounds(vector) -> tuple[int, int]:
    """(round number, the match's rounds), read back from the fraudster's scaled ``round``
    (round / rounds) and ``rounds_remaining`` ((rounds - round + 1) / rounds) columns."""
    rounds = round(1.0 / (vector[_FR.round] + vector[_FR.rounds_remaining] - 1.0))
    return round(vector[_FR.round] * rounds), rounds


# ============================================================================ blind references
class _Blind(Policy):
    """A reference investigator that never pulls evidence: it rules on every pending ad, lowest
    slot first, with ``rule(reading, slot, task)`` -> (verdict, confidence). The fairness tests
    hold the scripted investigator well above every one of these."""

    role = "investigator"

    def act_tensor(self, vector, mask):
        r = read_investigator_tensor(vector)
        task = investigator_task(vector)
        for s in np.flatnonzero(r.pending).tolist():
            verdict, confidence = self.rule(r, s, task)
            index = index_of("investigator", Verdict(s, verdict, confidence))
            if mask[index]:
                return index
        return I_END

    def rule(self, r: Reading, s: int, task) -> tuple[int, float]:
        raise NotImplementedError


class RejectAllButGray(_Blind):
    """Escalate gray-area ads, reject everything else, at one confidence bucket."""

    def __init__(self, confidence: float = 0.75, seed: int | None = None):
        super().__init__(seed)
        self.confidence = nearest_bucket(confidence)

    def rule(self, r, s, task):
        return (ESCALATE_V if r.category[s] == GRAY_CATEGORY else REJECT), self.confidence


class CategoryRule(_Blind):
    """Approve legit-looking categories, escalate gray-area ones, reject risky ones."""

    def rule(self, r, s, task):
        c = int(r.category[s])
        if c == GRAY_CATEGORY:
            return ESCALATE_V, 0.75
        return (APPROVE, 0.75) if _LEGIT_FAMILY[c] else (REJECT, 0.75)


class SurfaceRule(_Blind):
    """Count red flags on the surface (risk phrases, a young account, a cheap TLD, an untraceable
    payment, a risky category) and reject at two or more; gray-area ads with a flag escalate."""

    def rule(self, r, s, task):
        flags = (int(r.markers[s]) + (r.age[s] < 90) + (r.tld[s] >= 5) + (r.payment[s] >= 5)
                 + (not _LEGIT_FAMILY[int(r.category[s])]) + 3 * bool(r.junk[s]))
        if r.category[s] == GRAY_CATEGORY:
            return (ESCALATE_V, 0.75) if flags >= 1 else (APPROVE, 0.55)
        if flags >= 2:
            return REJECT, 0.95 if flags >= 4 else 0.75
        return APPROVE, 0.75 if flags == 0 else 0.55


class FirstSightClassifier(_Blind):
    """A linear classifier (softmax regression, numpy) over everything visible before any
    investigation: category, surface, copy features and arrival round. It is fitted per task on
    matches no evaluation uses (``skill.fit_first_sight``) and rules by expected reward, stating
    its predicted chance of being right as its confidence."""

    def act_tensor(self, vector, mask):
        self._vector = vector
        return super().act_tensor(vector, mask)

    def rule(self, r, s, task):
        from ..skill import first_sight_features, fit_first_sight  # fitted on first use

        model = fit_first_sight(task.task_id)
        p = model.predict(first_sight_features(self._vector)[s:s + 1])[0]  # legit, fraud, esc
        sev = 0.6
        values = [p[0] * verdict_reward(v, LEGIT, 0) + p[1] * verdict_reward(v, FRAUD, sev)
                  + p[2] * verdict_reward(v, ESCALATE, 0) for v in range(3)]
        v = int(np.argmax(values))
        return v, nearest_bucket(float(p[(LEGIT, FRAUD, ESCALATE)[v]]))


BLIND_INVESTIGATORS = {
    "reject_all_but_gray@0.55": lambda seed=None: RejectAllButGray(0.55, seed),
    "reject_all_but_gray@0.75": lambda seed=None: RejectAllButGray(0.75, seed),
    "reject_all_but_gray@0.95": lambda seed=None: RejectAllButGray(0.95, seed),
    "category_rule": CategoryRule,
    "surface_rule": SurfaceRule,
    "first_sight_classifier": FirstSightClassifier,
}


class OracleInvestigator(Policy):
    """The ceiling: reads the ground truth from the referee it is bound to (``bind``), links
    every ring pair present, and gives every ad its right verdict with full confidence, pulling
    no evidence. Text face only; for evaluation, never for play."""

    role = "investigator"

    def bind(self, referee) -> OracleInvestigator:
        self.referee = referee
        return self

    def act_model(self, obs):
        ref = self.referee
        if ref.budget <= 0:
            return AdReviewAction(action_type="end_turn")
        present = np.flatnonzero(ref.present).tolist()
        for n, a in enumerate(present):
            ra = ref.ring_of(a)
            for b in present[n + 1:]:
                if ra >= 0 and ref.ring_of(b) == ra and not ref.linked[a, b]:
                    return AdReviewAction(action_type="link_accounts", ad_id=AD_IDS[a],
                                          linked_ad_id=AD_IDS[b], link_reason="oracle")
        for s in ref.pending_slots().tolist():
            label = ref.label_of(s)
            return AdReviewAction(action_type="verdict", ad_id=AD_IDS[s],
                                  verdict=VERDICTS[CORRECT_VERDICT[label]], confidence=1.0)
        return AdReviewAction(action_type="end_turn")


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
        at = _VERDICT_AT[:, self.verdict, -1]  # the top confidence bucket, slot by slot
        legal = np.flatnonzero(mask[at])
        return int(at[legal[0]]) if len(legal) else I_END


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


class _Constant(_Fixed):
    """Always the same action index: ``INDEX`` for role ``ROLE``."""

    ROLE, INDEX = "", 0

    def __init__(self, seed=None):
        super().__init__(self.ROLE, seed)

    def act_tensor(self, vector, mask):
        return self.INDEX


class DoNothing(_Constant):
    """Passes every turn: every ad is approved unreviewed at the end."""

    ROLE, INDEX = "investigator", I_END


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


class NeverPropose(_Constant):
    """Commits at once: the fraudster's zero line."""

    ROLE, INDEX = "fraudster", F_COMMIT


class SingleTacticFraudster(_Fixed):
    """Proposes at the pace organic ads arrive, always with one tactic, in the categories that
    tactic suits (camouflaged and subtle copy in legit-looking categories, the rest in risky
    ones, richer likelier); commits when out of proposals. The reference a mixing fraudster must
    beat, and the one the camouflage measurement uses."""

    def __init__(self, tactic: str, seed=None):
        super().__init__("fraudster", seed)
        self.tactic = TACTICS.index(tactic)

    def act_tensor(self, vector, mask):
        t = _FR
        if vector[t.queue_room] < 0.5 or vector[t.proposals_remaining] <= 0:
            return F_COMMIT
        # paced like the organic queue, which arrives over all rounds but the last: by round k
        # of those n, at most k/n of the proposals are out
        k, match_rounds = _rounds(vector)
        rounds = max(1, match_rounds - 1)
        if 1.0 - vector[t.proposals_remaining] >= min(1.0, k / rounds) - 1e-6:
            return F_END
        allowed = tuple(vector[t.allowed].nonzero()[0].tolist())
        cats, weights, total = proposal_odds(allowed, False, self.tactic >= HIDDEN_FROM)
        pick = weighted_pick(self.rng.random() * total, cats, weights)
        index = index_of("fraudster", Propose(pick, self.tactic))
        return index if mask[index] else F_END


class WaitingFraudster(ReactiveFraudster):
    """``ReactiveFraudster`` that holds back until only ``hold`` of the rounds that take proposals
    (all but the last) are left, the current one included: an ad that arrives late meets an
    investigator with less budget and less time, and one still pending at the end is approved by
    default. It never waits past the last of those rounds. ``hold`` 1: never
    waits (``ReactiveFraudster``); ``None``: drawn per match from ``HOLDS``, a teacher whose
    timing varies (what ``train.py`` imitates before PPO decides when to propose). ``tactics``:
    the ones it may use (all by default); ``training/frontier.py`` sweeps both knobs."""

    HOLDS = (1.0, 0.75, 0.5, 0.25)

    def __init__(self, hold: float | None = 0.25, seed=None, tactics: tuple[str, ...] = TACTICS):
        if hold is not None and not 0.0 < hold <= 1.0:
            raise ValueError(f"hold is the share of the match's rounds left when it starts "
                             f"proposing, in (0, 1] (or None: drawn per match), got {hold!r}")
        if not tactics or set(tactics) - set(TACTICS):
            raise ValueError(f"tactics: one or more of {', '.join(TACTICS)}, got {tactics!r}")
        super().__init__(seed=seed)
        self.hold = hold
        self._match_hold = hold
        self.barred_tactics = tuple(i for i, t in enumerate(TACTICS) if t not in tactics)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._match_hold = self.hold

    def _waiting(self, round_number: int, max_rounds: int) -> bool:
        if self._match_hold is None:
            self._match_hold = float(self.rng.choice(self.HOLDS))
        return round_number < max_rounds - 1 and \
            self.open_share_left(round_number, max_rounds) > self._match_hold + 1e-6

    @staticmethod
    def open_share_left(round_number: int, max_rounds: int) -> float:
        """The share of the rounds that take proposals (all but the last) still left in
        ``round_number``, this one included (0 from the last round on)."""
        return max(0, max_rounds - round_number) / max(1, max_rounds - 1)

    def act_tensor(self, vector, mask):
        if self._waiting(*_rounds(vector)):
            return F_END
        return super().act_tensor(vector, mask)

    def act_model(self, obs):
        rounds = obs.round_number + obs.rounds_remaining - 1
        if self._waiting(obs.round_number, rounds):
            return FraudsterAction(action_type="end_turn")
        return super().act_model(obs)


def _single(tactic: str):
    return lambda seed=None: SingleTacticFraudster(tactic, seed)


SINGLE_TACTIC_FRAUDSTERS = {f"only_{t}": _single(t) for t in TACTICS}


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

__all__ = ["AlwaysReject", "AlwaysApprove", "AlwaysEscalate", "InvestigateSpam", "DoNothing",
           "LinkEverything", "GibberishFraudster", "RepeatOneAdFraudster",
           "FlagEverythingAuditor", "DEGENERATE_INVESTIGATORS", "RejectAllButGray",
           "CategoryRule", "SurfaceRule", "FirstSightClassifier", "BLIND_INVESTIGATORS",
           "OracleInvestigator", "NeverPropose", "SingleTacticFraudster",
           "SINGLE_TACTIC_FRAUDSTERS", "WaitingFraudster"]
