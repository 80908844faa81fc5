"""A client of the seed protocol, as the lineage's published client behaves (role_models.md, "What
existing clients actually send and read"), and strict models of every field it reads.

The models require each field a seed client reads (no defaults), so a reply that drops or renames
one fails validation. The policies send exactly the seed client's shapes: every action carries
``"metadata": {}`` and is dumped without nulls, the fraudster never sends ``end_turn``, and the
auditor raises queue-level and repeated flags.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Phase = Literal["fraudster_turn", "investigator_turn", "audit_phase", "done"]
Role = Literal["fraudster", "investigator", "auditor"]


class _Read(BaseModel):
    model_config = ConfigDict(extra="allow")


class Header(_Read):
    done: bool
    reward: float | None
    metadata: dict[str, Any]
    match_id: str
    role: Role
    phase: Phase
    round_number: int
    max_rounds: int
    rounds_remaining: int


# ---------------------------------------------------------------------------- fraudster
class QueueItem(_Read):
    ad_id: str
    ad_copy: str
    category: str
    status: Literal["pending", "approve", "reject", "escalate"]
    is_my_proposal: bool


class ProposalSignals(_Read):
    advertiser_id: str
    targeting_fingerprint: str
    slot_index: int
    investigator_verdict: str | None


class FraudsterObservation(Header):
    feedback: str
    task_id: str
    rounds_remaining: int
    proposals_used: int
    proposals_remaining: int
    actions_left_this_turn: int
    current_queue: list[QueueItem]
    prior_verdicts: list[dict[str, Any]]
    investigation_targets_used: dict[str, list[str]]
    allowed_categories: list[str]
    my_proposal_signals: dict[str, ProposalSignals]


# ---------------------------------------------------------------------------- investigator
class QueueStatus(_Read):
    total_ads: int
    reviewed: int
    pending: int
    investigation_budget: int
    step: int
    steps_remaining: int
    task_id: str


class DigestRow(_Read):
    ad_id: str
    category: str
    country: str
    account_age_days: int
    payment_type: str
    domain: str | None
    registrar: str | None


# Which ledger columns each pulled source adds, as the seed client reads them.
SOURCE_COLUMNS = {"landing_page": ("domain", "registrar", "domain_age_days"),
                  "payment_method": ("payment_id", "payment_type"),
                  "advertiser_history": ("advertiser_id", "verified_business"),
                  "targeting_overlap": ("targeting_fingerprint",)}


class LedgerRow(_Read):
    category: str
    country: str
    account_age_days: int
    targets_pulled: list[str]

    @model_validator(mode="after")
    def _pulled_sources_add_their_columns(self):
        extra = self.model_extra or {}
        for source in self.targets_pulled:
            for column in SOURCE_COLUMNS.get(source, ()):
                if column not in extra and column not in ("payment_type",):
                    raise ValueError(f"{source} was pulled but the row has no {column}")
        return self


class DecidedRow(LedgerRow):
    ad_id: str
    verdict: Literal["approve", "reject", "escalate"]
    confidence: float


class InvestigatorObservation(Header):
    queue_summary: str
    current_ad_info: str
    investigation_findings: str
    verdict_history_summary: str
    feedback: str
    available_ads: list[str]
    queue_status: QueueStatus
    queue_may_grow: bool
    evidence_ledger: dict[str, LedgerRow]
    queue_digest: list[DigestRow]
    decided_ads: list[DecidedRow]


# ---------------------------------------------------------------------------- auditor
class ProposalEntry(_Read):
    action_type: Literal["propose_ad", "modify_pending_ad"]
    ts: float
    round_number: int
    phase: Phase
    reward: float
    ad_id: str
    ad_copy: str
    landing_page_blurb: str | None
    category: str
    targeting_summary: str | None
    slot_index: int
    new_ad_copy: str | None
    new_landing_page_blurb: str | None


class InvestigatorEntry(_Read):
    action_type: str
    ad_id: str | None
    investigation_target: str | None
    verdict: str | None
    confidence: float | None
    rationale: str | None
    findings_excerpt: str
    linked_ad_id: str | None
    link_reason: str | None
    phase: Phase
    round_number: int


class AdRecord(_Read):
    ad_id: str
    ad_copy: str
    category: str
    ground_truth: Literal["legit", "fraud", "escalate"]
    severity: float
    fraud_type: str
    difficulty: str
    is_fraudster_proposal: bool


class VerdictRecord(_Read):
    ad_id: str
    verdict: Literal["approve", "reject", "escalate"]
    confidence: float
    ground_truth: Literal["legit", "fraud", "escalate"]


class RingRecord(_Read):
    ring_id: str
    topology: str
    member_ad_ids: list[str]
    shared_signal_types: list[str]


class EpisodeRecord(_Read):
    task_id: str
    round_number: int
    proposals_used: int
    end_reason: str | None
    ads: list[AdRecord]
    verdicts: list[VerdictRecord]
    links: list[list[str]]
    grader_score: float | None
    fraud_rings: list[RingRecord]


class AuditorObservation(Header):
    feedback: str
    full_episode_record: EpisodeRecord | dict
    investigator_actions: list[InvestigatorEntry]
    fraudster_proposals: list[ProposalEntry]
    investigation_data_seen: dict[str, dict[str, str]]
    pending_flags: list[dict[str, Any]]

    @model_validator(mode="after")
    def _record_in_the_audit(self):
        if self.phase in ("audit_phase", "done"):
            if not isinstance(self.full_episode_record, EpisodeRecord):
                raise ValueError("the audit has no full_episode_record")
        elif self.full_episode_record or self.investigator_actions or self.fraudster_proposals:
            raise ValueError("the auditor saw the record before play ended")
        return self


# ---------------------------------------------------------------------------- state
class RefereeState(_Read):
    """The seed client's own state model, with its constraints."""

    match_id: str
    task_id: str
    phase: Phase
    round_number: int = Field(ge=1)
    max_rounds: int = Field(ge=1)
    proposals_used: int = Field(ge=0)
    max_proposals: int = Field(ge=0)
    actions_this_turn: int = Field(ge=0)
    max_actions_per_turn: int = Field(ge=1)
    investigator_state: dict[str, Any]
    fraudster_proposals: list[dict[str, Any]]
    investigator_action_log: list[dict[str, Any]]
    fraudster_committed: bool
    audit_report: dict[str, Any] | None
    fraudster_reward: float
    investigator_reward: float
    auditor_reward: float
    grader_score: float | None
    end_reason: str | None
    metadata: dict[str, Any]

    @model_validator(mode="after")
    def _outcome_only_when_done(self):
        if self.phase != "done" and (self.grader_score is not None or
                                     self.end_reason is not None):
            raise ValueError("grader_score and end_reason must be null until done")
        return self


OBSERVATIONS = {"fraudster": FraudsterObservation, "investigator": InvestigatorObservation,
                "auditor": AuditorObservation}


# ---------------------------------------------------------------------------- seed policies
def _action(**fields: Any) -> dict[str, Any]:
    """An action as the seed client sends it: no nulls, and ``metadata`` always."""
    return {**{k: v for k, v in fields.items() if v is not None}, "metadata": {}}


class SeedFraudster:
    """Proposes free-text ads while it can, then rewrites its pending ones, then commits; never
    sends end_turn (the server ends its turn at the action cap)."""

    COPY = ("Limited offer on {c} essentials, ships in two days.",
            "zxqvt brrkpl mnnrgh qqzzkt vvbbnp trrpsk",
            "Guaranteed returns!!! Act now, only today, wire the fee to claim your prize.")

    def __init__(self):
        self.n = 0

    def act(self, obs: FraudsterObservation) -> dict[str, Any]:
        self.n += 1
        if obs.proposals_remaining > 0 and obs.allowed_categories:
            category = obs.allowed_categories[self.n % len(obs.allowed_categories)]
            return _action(action_type="propose_ad", category=category,
                           ad_copy=self.COPY[self.n % len(self.COPY)].format(c=category),
                           landing_page_blurb="Official store, secure checkout.",
                           targeting_summary="Adults 25-54, United States",
                           rationale="seed client")
        pending = [q for q in obs.current_queue if q.is_my_proposal and q.status == "pending"]
        if pending and self.n % 3:
            slot = obs.my_proposal_signals[pending[0].ad_id].slot_index
            return _action(action_type="modify_pending_ad", slot_index=slot,
                           new_ad_copy=f"Trusted seller, verified reviews (rev {self.n}).",
                           new_landing_page_blurb="Verified business, money-back guarantee.")
        return _action(action_type="commit_final")


class SeedInvestigator:
    """Pulls the landing page and payment method of the first pending ad, then rules on it."""

    def act(self, obs: InvestigatorObservation) -> dict[str, Any]:
        if not obs.available_ads or obs.queue_status.investigation_budget <= 0:
            return _action(action_type="end_turn")
        ad = obs.available_ads[0]
        row = obs.evidence_ledger[ad]
        for target in ("landing_page", "payment_method", "advertiser_history"):
            if target not in row.targets_pulled and len(row.targets_pulled) < 2:
                return _action(action_type="investigate", ad_id=ad, investigation_target=target)
        registrar = str((row.model_extra or {}).get("registrar", ""))
        verdict = "reject" if row.account_age_days < 60 or "privacy" in registrar.lower() \
            else "approve"
        decided = [d.ad_id for d in obs.decided_ads if d.verdict == "reject"]
        linked = {frozenset(pair) for pair in obs.links}
        if decided and verdict == "reject" and obs.queue_status.reviewed % 4 == 3 and \
                frozenset((ad, decided[0])) not in linked:
            return _action(action_type="link_accounts", ad_id=ad, linked_ad_id=decided[0],
                           link_reason="same registrar pattern")
        return _action(action_type="verdict", ad_id=ad, verdict=verdict, confidence=0.8,
                       rationale=f"account age {row.account_age_days} days; {registrar}")


class SeedAuditor:
    """Raises a queue-level gibberish flag, one miscalibration flag per confidence bin (no
    target), the same inconsistency flag twice on one ad, then submits its report."""

    def __init__(self):
        self.plan: list[dict[str, Any]] | None = None

    def act(self, obs: AuditorObservation) -> dict[str, Any]:
        if self.plan is None:
            record = obs.full_episode_record
            self.plan = [_action(action_type="flag_fraudster", flag_type="gibberish",
                                 severity=0.6, note="queue-level: gibberish copy")]
            right = {"legit": "approve", "fraud": "reject", "escalate": "escalate"}
            wrong = [v for v in record.verdicts if right[v.ground_truth] != v.verdict]
            for _ in (0.3, 0.6, 0.9):
                self.plan.append(_action(action_type="flag_investigator",
                                         flag_type="miscalibration", severity=0.5))
            if wrong:
                for _ in range(2):
                    self.plan.append(_action(action_type="flag_investigator",
                                             flag_type="inconsistency",
                                             target_ad_id=wrong[0].ad_id, severity=0.7))
            self.plan.append(_action(action_type="submit_audit_report", audit_report={
                "track_a_flags": [], "track_b_flags": [], "investigator_audit_score": 0.5,
                "fraudster_plausibility_score": 0.5, "notes": "seed client"}))
        return self.plan.pop(0)


def seed_policies() -> dict[str, Any]:
    return {"fraudster": SeedFraudster(), "investigator": SeedInvestigator(),
            "auditor": SeedAuditor()}


# ---------------------------------------------------------------------------- the seed's sweep
# The lineage's driver plays its three scripted fraudsters against its scripted investigator and
# auditor, and stops a match at the first error reply. These clients make the moves its policies
# make (counterfeint_digest.md section 7), in the same shapes: the fraudsters propose until the
# server ends their turn at the cap and never send end_turn; the investigator has no end_turn
# and passes with a verdict on "__noop__"; the auditor sends one flag per finding, repeats
# included, however many, then its report.
OVERT = ("Free iPhone 15 for the first 100 visitors, claim now!!!",
         "MoonCoin pays 50x in a week, guaranteed returns, act fast",
         "Doctors hate this one weight-loss trick, lose 20 lbs risk-free")
CAMOUFLAGE = ("Project tracking for small teams, 14-day free trial",
              "Adjustable dumbbells, free shipping and a two-year warranty",
              "Learn Python in eight weeks with certified instructors",
              "Insured dog walking in your neighbourhood",
              "Refurbished iPhone, verified seller, 30-day returns")
SCAM_CATEGORIES = ("fake_giveaway", "fake_crypto", "miracle_cure")
CAMOUFLAGE_CATEGORIES = ("saas", "fitness", "education", "local_service", "ecommerce")


def _category(wanted: str, obs: FraudsterObservation) -> str:
    """The seed fraudsters fall back to ecommerce when a category is not allowed."""
    return wanted if wanted in obs.allowed_categories else "ecommerce"


def _propose(copy: str, category: str, targeting: str = "Adults 18-65, United States",
             blurb: str = "Official store, secure checkout.") -> dict[str, Any]:
    return _action(action_type="propose_ad", ad_copy=copy, landing_page_blurb=blurb,
                   category=category, targeting_summary=targeting)


class SeedScriptedFraudster:
    """Overt scams in round 1, camouflage after; proposes while it can, then commits."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def act(self, obs: FraudsterObservation) -> dict[str, Any]:
        if obs.proposals_remaining <= 0:
            return _action(action_type="commit_final")
        if obs.round_number == 1:
            k = self.rng.randrange(len(OVERT))
            return _propose(OVERT[k], _category(SCAM_CATEGORIES[k], obs))
        k = self.rng.randrange(len(CAMOUFLAGE))
        return _propose(CAMOUFLAGE[k], _category(CAMOUFLAGE_CATEGORIES[k], obs))


class SeedReactiveFraudster:
    """Commits when out of proposals (or, sometimes, once two of its ads were approved);
    rewrites its pending ads with a trust blurb once the investigator pulls evidence; otherwise
    proposes a scam until its first rejection, camouflage after."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def act(self, obs: FraudsterObservation) -> dict[str, Any]:
        if obs.proposals_remaining <= 0:
            return _action(action_type="commit_final")
        mine = [q for q in obs.current_queue if q.is_my_proposal]
        if sum(q.status == "approve" for q in mine) >= 2 and self.rng.random() < 0.35:
            return _action(action_type="commit_final")
        if obs.investigation_targets_used:
            for q in mine:
                if q.status == "pending" and self.rng.random() < 0.25:
                    slot = obs.my_proposal_signals[q.ad_id].slot_index
                    return _action(action_type="modify_pending_ad", slot_index=slot,
                                   new_ad_copy=f"{q.ad_copy} Verified business.",
                                   new_landing_page_blurb="Verified business since 2018, "
                                   "30-day returns.")
        if any(q.status == "reject" for q in mine):
            k = self.rng.randrange(len(CAMOUFLAGE))
            return _propose(CAMOUFLAGE[k], _category(CAMOUFLAGE_CATEGORIES[k], obs))
        return _propose(OVERT[0], _category(SCAM_CATEGORIES[0], obs))


class SeedGibberishFraudster:
    """Random lowercase letters and spaces, targeting "adults", a random category."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def _text(self, lo: int, hi: int) -> str:
        letters = "abcdefghijklmnopqrstuvwxyz     "
        return "".join(self.rng.choice(letters) for _ in range(self.rng.randint(lo, hi))).strip() \
            or "zzz"

    def act(self, obs: FraudsterObservation) -> dict[str, Any]:
        if obs.proposals_remaining <= 0:
            return _action(action_type="commit_final")
        return _propose(self._text(40, 120), self.rng.choice(obs.allowed_categories),
                        targeting="adults", blurb=self._text(20, 80))


SEED_FRAUDSTERS = {"scripted": SeedScriptedFraudster, "reactive": SeedReactiveFraudster,
                   "gibberish": SeedGibberishFraudster}
SCAM_WORDS = ("free iphone", "guaranteed", "miracle", "doctors hate", "risk-free", "50x",
              "act fast", "claim now", "wire the fee")
SAFE_WORDS = ("free shipping", "warranty", "certified", "insured", "verified", "free trial")


class SeedNoopInvestigator:
    """Pulls the landing page of the first pending ad, then rules on it from the words it has
    seen; with nothing pending it passes with a verdict on ``__noop__`` (it has no end_turn)."""

    def act(self, obs: InvestigatorObservation) -> dict[str, Any]:
        if not obs.available_ads:
            return _action(action_type="verdict", ad_id="__noop__", verdict="approve",
                           confidence=0.5, rationale="nothing left to review")
        ad = obs.available_ads[0]
        if "landing_page" not in obs.evidence_ledger[ad].targets_pulled:
            return _action(action_type="investigate", ad_id=ad,
                           investigation_target="landing_page")
        text = f"{obs.current_ad_info} {obs.investigation_findings}".lower()
        scam, safe = any(w in text for w in SCAM_WORDS), any(w in text for w in SAFE_WORDS)
        verdict, confidence = ("reject", 0.85) if scam and not safe else \
            ("approve", 0.8) if safe and not scam else ("escalate", 0.5)
        return _action(action_type="verdict", ad_id=ad, verdict=verdict, confidence=confidence,
                       rationale=f"{verdict}: landing page reviewed")


class SeedFlaggingAuditor:
    """One flag per finding, with repeats and no cap, then the report: a queue-level gibberish
    flag, one miscalibration flag per confidence bin (no target), for every verdict that
    disagrees with the truth an inconsistency flag and a miscalibration flag on its ad, and for
    every entry of the fraudster's log a template_repetition flag on its ad."""

    def __init__(self):
        self.plan: list[dict[str, Any]] | None = None

    def act(self, obs: AuditorObservation) -> dict[str, Any]:
        if self.plan is None:
            record = obs.full_episode_record
            right = {"legit": "approve", "fraud": "reject", "escalate": "escalate"}
            plan = [_action(action_type="flag_fraudster", flag_type="gibberish", severity=0.6,
                            note="queue-level: gibberish copy")]
            plan += [_action(action_type="flag_investigator", flag_type="miscalibration",
                             severity=0.5, note=f"bin {b}") for b in ("low", "mid", "high")]
            for v in record.verdicts:
                if right[v.ground_truth] != v.verdict:
                    for flag in ("inconsistency", "miscalibration"):
                        plan.append(_action(action_type="flag_investigator", flag_type=flag,
                                            target_ad_id=v.ad_id, severity=0.7))
            for entry in obs.fraudster_proposals:
                plan.append(_action(action_type="flag_fraudster",
                                    flag_type="template_repetition", target_ad_id=entry.ad_id,
                                    severity=0.4))
            plan.append(_action(action_type="submit_audit_report", audit_report={
                "track_a_flags": [], "track_b_flags": [], "investigator_audit_score": 0.5,
                "fraudster_plausibility_score": 0.5, "notes": "seed client"}))
            self.plan = plan
        return self.plan.pop(0)


def seed_sweep_policies(fraudster: str, seed: int) -> dict[str, Any]:
    return {"fraudster": SEED_FRAUDSTERS[fraudster](seed), "investigator": SeedNoopInvestigator(),
            "auditor": SeedFlaggingAuditor()}
