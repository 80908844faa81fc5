"""Typed role models: the JSON of the seed protocol, validated.

Field names follow the lineage's wire format so existing clients keep working. Actions validate
strictly (unknown keys are errors, each action type demands its own fields), but for the report
an auditor submits (``AuditReport`` and its ``AuditFlag``s), which the rules keep as submitted and
do not score: it ignores unknown keys, as the earlier game's did. Observations ignore unknown
keys, because clients parse server JSON that carries extras such as ``match_id``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .rules.catalog import AUDIT_TRACK_A, AUDIT_TRACK_B, FRAUDSTER_EDITS, PHASES, TACTICS, TARGETS
from .rules.errors import IllegalActionError

# The catalogue is the one list; the Literals are built from it (a tuple subscript is its items).
Phase = Literal[PHASES]
Target = Literal[TARGETS]

Text2000 = Field(default=None, max_length=2000)


class _Sent(BaseModel):
    """What an agent sends: its numbers are numbers or their text, never true or false (pydantic
    reads true as 1, and "confidence": true would be a certainty nobody stated)."""

    @field_validator("*", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name in _NUMBER_FIELDS.get(cls, ()):
            raise ValueError("expected a number, not true or false")
        return value


class _Action(_Sent):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Seed clients' action models inherit a ``metadata`` dict and always send it: accepted and
    # ignored by the rules.
    metadata: dict[str, Any] = Field(default_factory=dict)


class _Observation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    done: bool = False
    reward: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    # the header every observation carries (on the wire, the server's: its own match id)
    match_id: str = ""
    role: Literal["fraudster", "investigator", "auditor"] | None = None
    phase: Phase = "fraudster_turn"
    round_number: int = 1
    max_rounds: int = 0
    rounds_remaining: int = 0


# ---------------------------------------------------------------------------- fraudster
def _blank(text: str) -> bool:
    """Nothing in ``text`` would show: only whitespace and invisible characters (zero-width
    spaces and joiners, byte-order marks, control characters)."""
    return not any(c.isprintable() and not c.isspace() for c in text)


class FraudsterAction(_Action):
    """Propose a new ad, edit one of your pending ads, pass the turn, or stop proposing."""

    action_type: Literal["propose_ad", "modify_pending_ad", "end_turn", "commit_final"]
    ad_copy: str | None = Field(default=None, max_length=2000)
    landing_page_blurb: str | None = Field(default=None, max_length=2000)
    category: str | None = Field(default=None, max_length=64)
    targeting_summary: str | None = Field(default=None, max_length=512)
    tactic: Literal["blatant", "standard", "subtle", "camouflaged"] | None = None
    slot_index: int | None = Field(default=None, ge=0)
    ad_id: str | None = Field(default=None, max_length=32)  # modify: the ad, instead of slot_index
    new_ad_copy: str | None = Field(default=None, max_length=2000)
    new_landing_page_blurb: str | None = Field(default=None, max_length=2000)
    edit: Literal["soften_copy", "add_trust_blurb"] | None = None
    rationale: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _fields_match_type(self) -> FraudsterAction:
        t = self.action_type
        if t == "propose_ad":
            if not self.category:
                raise ValueError("propose_ad needs a category")
            if self.ad_copy is None and self.tactic is None:
                raise ValueError("propose_ad needs ad_copy (free text) or a tactic "
                                 f"(one of {TACTICS}) for env-written copy")
            if self.ad_copy is not None and self.tactic is not None:
                raise ValueError("propose_ad takes ad_copy (free text: the risk phrases in it set "
                                 "its tactic) or a tactic (env-written copy), not both")
            if self.ad_copy is not None and _blank(self.ad_copy):
                raise ValueError("propose_ad ad_copy is empty (nothing in it is visible)")
        elif t == "modify_pending_ad":
            if (self.slot_index is None) == (self.ad_id is None):
                raise ValueError("modify_pending_ad needs either slot_index (0-based index into "
                                 "your own proposals) or the ad_id of one of them")
            if self.new_ad_copy is None and self.new_landing_page_blurb is None \
                    and self.edit is None:
                raise ValueError("modify_pending_ad needs new_ad_copy, new_landing_page_blurb "
                                 f"or an edit (one of {FRAUDSTER_EDITS})")
            if self.new_ad_copy is not None and _blank(self.new_ad_copy):
                raise ValueError("modify_pending_ad new_ad_copy is empty (nothing in it is "
                                 "visible); an ad's copy cannot be blanked")
        if t != "propose_ad" and any(v is not None for v in (
                self.ad_copy, self.category, self.tactic, self.landing_page_blurb,
                self.targeting_summary)):
            raise ValueError(f"{t} takes no proposal fields")
        if t != "modify_pending_ad" and any(v is not None for v in (
                self.slot_index, self.ad_id, self.new_ad_copy, self.new_landing_page_blurb,
                self.edit)):
            raise ValueError(f"{t} takes no modify fields")
        return self


class FraudsterObservation(_Observation):
    feedback: str = ""
    task_id: str = ""
    proposals_used: int = 0
    proposals_remaining: int = 0
    actions_left_this_turn: int = 0
    current_queue: list[dict[str, Any]] = Field(default_factory=list)
    prior_verdicts: list[dict[str, Any]] = Field(default_factory=list)
    investigation_targets_used: dict[str, list[str]] = Field(default_factory=dict)
    allowed_categories: list[str] = Field(default_factory=list)
    my_proposal_signals: dict[str, dict[str, Any]] = Field(default_factory=dict)
    committed: bool = False
    can_propose: bool = True


# ---------------------------------------------------------------------------- investigator
class AdReviewAction(_Action):
    """Pull one evidence source for an ad, rule on an ad, link two ads, or pass the turn."""

    action_type: Literal["investigate", "verdict", "link_accounts", "end_turn"]
    ad_id: str | None = Field(default=None, max_length=32)
    investigation_target: Target | None = None
    verdict: Literal["approve", "reject", "escalate"] | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    rationale: str | None = Field(default=None, max_length=2000)
    linked_ad_id: str | None = Field(default=None, max_length=32)
    link_reason: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _fields_match_type(self) -> AdReviewAction:
        t = self.action_type
        if t != "end_turn" and not self.ad_id:
            raise ValueError(f"{t} needs an ad_id")
        if t == "investigate":
            if self.investigation_target is None:
                raise ValueError(f"investigate needs investigation_target, one of {TARGETS}")
        elif self.investigation_target is not None:
            raise ValueError(f"{t} takes no investigation_target")
        if t == "verdict":
            if self.verdict is None:
                raise ValueError("verdict needs a verdict: approve, reject or escalate")
        elif self.verdict is not None or self.confidence is not None:
            raise ValueError(f"{t} takes no verdict or confidence")
        if t == "link_accounts":
            if not self.linked_ad_id:
                raise ValueError("link_accounts needs linked_ad_id")
            if self.linked_ad_id == self.ad_id:
                raise ValueError("link_accounts needs two different ads")
        elif self.linked_ad_id is not None or self.link_reason is not None:
            raise ValueError(f"{t} takes no linked_ad_id or link_reason")
        if t == "end_turn" and self.ad_id is not None:
            raise ValueError("end_turn takes no ad_id")
        return self


class AdReviewObservation(_Observation):
    task_id: str = ""
    actions_left_this_turn: int = 0
    queue_summary: str = ""
    current_ad_info: str = ""
    investigation_findings: str = ""
    verdict_history_summary: str = ""
    feedback: str = ""
    available_ads: list[str] = Field(default_factory=list)
    queue_status: dict[str, Any] = Field(default_factory=dict)
    queue_may_grow: bool = True
    evidence_ledger: dict[str, dict[str, Any]] = Field(default_factory=dict)
    queue_digest: list[dict[str, Any]] = Field(default_factory=list)
    decided_ads: list[dict[str, Any]] = Field(default_factory=list)
    links: list[list[str]] = Field(default_factory=list)


InvestigatorAction = AdReviewAction
InvestigatorObservation = AdReviewObservation


# ---------------------------------------------------------------------------- auditor
class AuditFlag(_Sent):
    model_config = ConfigDict(extra="ignore")
    track: Literal["A", "B"]
    target_ad_id: str | None = None
    flag_type: str = Field(max_length=64)
    severity: float = Field(default=0.5, ge=0.0, le=1.0)
    note: str = Field(default="", max_length=2000)


class AuditReport(_Sent):
    model_config = ConfigDict(extra="ignore")
    track_a_flags: list[AuditFlag] = Field(default_factory=list)
    track_b_flags: list[AuditFlag] = Field(default_factory=list)
    investigator_audit_score: float = Field(default=1.0, ge=0.0, le=1.0)
    fraudster_plausibility_score: float = Field(default=1.0, ge=0.0, le=1.0)
    notes: str = Field(default="", max_length=4000)


class AuditorAction(_Action):
    """Flag a fault in the investigator's reasoning (track A) or an implausible fraudster ad
    (track B), or submit the report, which ends the match. A flag without ``target_ad_id`` is
    about the whole queue or match."""

    action_type: Literal["flag_investigator", "flag_fraudster", "submit_audit_report"]
    target_ad_id: str | None = Field(default=None, max_length=32)
    flag_type: str | None = Field(default=None, max_length=64)
    severity: float = Field(default=0.5, ge=0.0, le=1.0)
    note: str | None = Field(default=None, max_length=2000)
    audit_report: AuditReport | None = None

    @model_validator(mode="after")
    def _fields_match_type(self) -> AuditorAction:
        t = self.action_type
        if t == "flag_investigator":
            if self.flag_type not in AUDIT_TRACK_A:
                raise ValueError(f"flag_investigator needs flag_type in {AUDIT_TRACK_A}")
        elif t == "flag_fraudster":
            if self.flag_type not in AUDIT_TRACK_B:
                raise ValueError(f"flag_fraudster needs flag_type in {AUDIT_TRACK_B}")
        elif self.flag_type is not None or self.target_ad_id is not None:
            raise ValueError("submit_audit_report takes no flag_type or target_ad_id")
        return self


class AuditorObservation(_Observation):
    feedback: str = ""
    task_id: str = ""
    full_episode_record: dict[str, Any] = Field(default_factory=dict)
    investigator_actions: list[dict[str, Any]] = Field(default_factory=list)
    fraudster_proposals: list[dict[str, Any]] = Field(default_factory=list)
    investigation_data_seen: dict[str, dict[str, str]] = Field(default_factory=dict)
    pending_flags: list[dict[str, Any]] = Field(default_factory=list)
    actions_left: int = 0


# ---------------------------------------------------------------------------- referee
class RefereeState(BaseModel):
    model_config = ConfigDict(extra="ignore")
    episode_id: str = ""
    match_id: str = ""
    seed: int | None = None
    step_count: int = 0
    task_id: str = ""
    phase: Phase = "fraudster_turn"
    round_number: int = 1
    max_rounds: int = 0
    proposals_used: int = 0
    max_proposals: int = 0
    actions_this_turn: int = 0
    max_actions_per_turn: int = 0
    budget_remaining: int = 0
    investigator_state: dict[str, Any] = Field(default_factory=dict)
    fraudster_proposals: list[dict[str, Any]] = Field(default_factory=list)
    investigator_action_log: list[dict[str, Any]] = Field(default_factory=list)
    auditor_action_log: list[dict[str, Any]] = Field(default_factory=list)
    fraudster_committed: bool = False
    audit_report: dict[str, Any] | None = None
    fraudster_reward: float = 0.0
    investigator_reward: float = 0.0
    auditor_reward: float = 0.0
    grader_score: float | None = None
    end_reason: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


def _number_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields of ``model`` that hold an int or a float (alone or with None)."""
    def numeric(annotation) -> bool:
        kinds = get_args(annotation) or (annotation,)
        return bool(kinds) and all(k in (int, float, type(None)) for k in kinds) and \
            any(k in (int, float) for k in kinds)
    return frozenset(name for name, f in model.model_fields.items() if numeric(f.annotation))


_NUMBER_FIELDS = {m: _number_fields(m) for m in (FraudsterAction, AdReviewAction, AuditorAction,
                                                 AuditFlag, AuditReport)}

ACTION_MODELS: dict[str, type[_Action]] = {"fraudster": FraudsterAction,
                                           "investigator": AdReviewAction,
                                           "auditor": AuditorAction}


# each role's action types (its model's ``action_type`` literal)
_ACTION_TYPES = {role: frozenset(get_args(model.model_fields["action_type"].annotation))
                 for role, model in ACTION_MODELS.items()}


def _other_roles_action(role: str, action: Any) -> str | None:
    """Whose action ``action`` is, when it is another role's ("the investigator's", "the
    fraudster's or the investigator's"): its model, or a dict whose ``action_type`` only other
    roles have."""
    others = []
    for other, model in ACTION_MODELS.items():
        if other == role or model is ACTION_MODELS[role]:
            continue
        if isinstance(action, model) or (
                isinstance(action, dict) and isinstance(action.get("action_type"), str) and
                action["action_type"] in _ACTION_TYPES[other] and
                action["action_type"] not in _ACTION_TYPES[role]):
            others.append(f"the {other}'s")
    return " or ".join(others) or None


def validation_message(exc: ValidationError) -> str:
    """What failed validation, by field, without echoing the input (the server's replies and
    ``parse_action``'s errors)."""
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(repr(p)[:24] + "..." if isinstance(p, str) and len(p) > 24 else str(p)
                         for p in err.get("loc", ())) or "data"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_action(role: str, action: Any) -> _Action:
    """The role's action model for ``action`` (a model or a dict that validates to it), or an
    ``IllegalActionError`` that says what is wrong with it."""
    cls = ACTION_MODELS.get(role) if isinstance(role, str) else None
    if cls is None:
        raise ValueError(f"unknown role {role!r}; roles are {list(ACTION_MODELS)}")
    other = _other_roles_action(role, action)
    if other is not None:
        article = "an" if cls.__name__[0] in "AEIOU" else "a"
        raise IllegalActionError(role, action, f"that is {other} action, and it is the "
                                 f"{role}'s turn: send {article} {cls.__name__}")
    if isinstance(action, cls):
        # validated again: model_copy(update=...) and model_construct skip validation
        try:
            fields = action.model_dump(include=set(cls.model_fields))
        except Exception as exc:  # a model_construct without its required fields
            raise IllegalActionError(role, action, f"invalid {cls.__name__}: {exc}") from None
    elif isinstance(action, dict):
        fields = action
    else:
        raise IllegalActionError(role, action, f"expected a {cls.__name__} or a dict, got "
                                 f"{type(action).__name__}")
    try:
        return cls.model_validate(fields)
    except ValidationError as exc:
        raise IllegalActionError(role, action, f"invalid {cls.__name__}: "
                                 f"{validation_message(exc)}") from None


__all__ = [
    "ACTION_MODELS",
    "parse_action",
    "AdReviewAction",
    "AdReviewObservation",
    "AuditFlag",
    "AuditReport",
    "AuditorAction",
    "AuditorObservation",
    "FraudsterAction",
    "FraudsterObservation",
    "InvestigatorAction",
    "InvestigatorObservation",
    "RefereeState",
]
