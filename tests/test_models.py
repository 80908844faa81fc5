"""The role models: actions validate strictly, observations tolerate extra keys.

Each test names one rule of the wire contract: the role models and illegal input.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fraudarena_env.models import (
    AdReviewAction,
    AdReviewObservation,
    AuditorAction,
    AuditorObservation,
    AuditReport,
    FraudsterAction,
    FraudsterObservation,
    InvestigatorAction,
    InvestigatorObservation,
    RefereeState,
)
from fraudarena_env.rules.catalog import AUDIT_TRACK_A, AUDIT_TRACK_B


def rejects(cls, payload: dict) -> None:
    with pytest.raises(ValidationError):
        cls.model_validate(payload)


# ------------------------------------------------------------------ aliases
def test_investigator_names_are_aliases_of_the_ad_review_models():
    assert InvestigatorAction is AdReviewAction
    assert InvestigatorObservation is AdReviewObservation


# ------------------------------------------------------------------ investigator actions
def test_investigate_is_valid_with_ad_id_and_target():
    a = AdReviewAction.model_validate({"action_type": "investigate", "ad_id": "ad_001",
                                       "investigation_target": "payment_method"})
    assert a.investigation_target == "payment_method"


def test_investigate_needs_ad_id():
    rejects(AdReviewAction, {"action_type": "investigate",
                             "investigation_target": "landing_page"})


def test_investigate_needs_investigation_target():
    rejects(AdReviewAction, {"action_type": "investigate", "ad_id": "ad_001"})


def test_investigate_rejects_unknown_target():
    rejects(AdReviewAction, {"action_type": "investigate", "ad_id": "ad_001",
                             "investigation_target": "horoscope"})


def test_verdict_needs_a_verdict():
    rejects(AdReviewAction, {"action_type": "verdict", "ad_id": "ad_001"})


def test_verdict_rejects_unknown_verdict_value():
    rejects(AdReviewAction, {"action_type": "verdict", "ad_id": "ad_001", "verdict": "maybe"})


def test_verdict_needs_ad_id():
    rejects(AdReviewAction, {"action_type": "verdict", "verdict": "approve"})


@pytest.mark.parametrize("confidence", [-0.01, 1.01, 7])
def test_confidence_outside_unit_interval_is_rejected(confidence):
    rejects(AdReviewAction, {"action_type": "verdict", "ad_id": "ad_001", "verdict": "reject",
                             "confidence": confidence})


@pytest.mark.parametrize("confidence", [0.0, 0.5, 1.0])
def test_confidence_inside_unit_interval_is_accepted(confidence):
    a = AdReviewAction.model_validate({"action_type": "verdict", "ad_id": "ad_001",
                                       "verdict": "reject", "confidence": confidence})
    assert a.confidence == confidence


def test_confidence_only_goes_with_a_verdict():
    rejects(AdReviewAction, {"action_type": "investigate", "ad_id": "ad_001",
                             "investigation_target": "landing_page", "confidence": 0.9})


def test_link_accounts_needs_linked_ad_id():
    rejects(AdReviewAction, {"action_type": "link_accounts", "ad_id": "ad_001"})


def test_link_accounts_needs_two_different_ads():
    rejects(AdReviewAction, {"action_type": "link_accounts", "ad_id": "ad_001",
                             "linked_ad_id": "ad_001"})


def test_link_accounts_with_two_ads_is_valid():
    a = AdReviewAction.model_validate({"action_type": "link_accounts", "ad_id": "ad_001",
                                       "linked_ad_id": "ad_002", "link_reason": "same payment"})
    assert a.linked_ad_id == "ad_002"


def test_end_turn_needs_no_fields():
    assert AdReviewAction.model_validate({"action_type": "end_turn"}).ad_id is None


def test_end_turn_takes_no_ad_id():
    rejects(AdReviewAction, {"action_type": "end_turn", "ad_id": "ad_001"})


def test_investigator_action_rejects_unknown_keys():
    rejects(AdReviewAction, {"action_type": "end_turn", "please": "approve everything"})


def test_investigator_action_rejects_unknown_action_type():
    rejects(AdReviewAction, {"action_type": "approve_all"})


def test_investigator_rationale_longer_than_2000_chars_is_rejected():
    rejects(AdReviewAction, {"action_type": "verdict", "ad_id": "ad_001", "verdict": "approve",
                             "rationale": "x" * 2001})


def test_investigator_ad_id_length_is_bounded():
    rejects(AdReviewAction, {"action_type": "verdict", "ad_id": "a" * 33,
                             "verdict": "approve"})


def test_actions_are_immutable():
    a = AdReviewAction(action_type="end_turn")
    with pytest.raises(ValidationError):
        a.ad_id = "ad_001"


# ------------------------------------------------------------------ fraudster actions
def test_propose_ad_with_category_and_tactic_is_valid():
    a = FraudsterAction.model_validate({"action_type": "propose_ad", "category": "ecommerce",
                                        "tactic": "subtle"})
    assert a.tactic == "subtle"


def test_propose_ad_with_category_and_free_copy_is_valid():
    a = FraudsterAction.model_validate({"action_type": "propose_ad", "category": "saas",
                                        "ad_copy": "Team chat for remote companies."})
    assert a.ad_copy.startswith("Team chat")


def test_propose_ad_needs_a_category():
    rejects(FraudsterAction, {"action_type": "propose_ad", "tactic": "blatant"})


def test_propose_ad_needs_ad_copy_or_tactic():
    rejects(FraudsterAction, {"action_type": "propose_ad", "category": "ecommerce"})


def test_propose_ad_takes_free_copy_or_a_tactic_not_both():
    """Free copy's tactic is read from its risk phrases: a tactic beside it was silently
    ignored."""
    with pytest.raises(ValidationError, match="not both"):
        FraudsterAction.model_validate({"action_type": "propose_ad", "category": "ecommerce",
                                        "ad_copy": "hi there friend", "tactic": "blatant"})


def test_propose_ad_rejects_blank_copy():
    rejects(FraudsterAction, {"action_type": "propose_ad", "category": "ecommerce",
                              "ad_copy": "   "})


@pytest.mark.parametrize("copy", ["\u200b\u200b", "\u200d \ufeff", "\u3000\n"])
def test_propose_ad_rejects_copy_with_nothing_visible(copy):
    rejects(FraudsterAction, {"action_type": "propose_ad", "category": "ecommerce",
                              "ad_copy": copy})


@pytest.mark.parametrize("copy", ["", "   ", "\u200b"])
def test_modify_pending_ad_rejects_blank_new_copy(copy):
    """An edit cannot blank an ad that a proposal could not have made blank."""
    rejects(FraudsterAction, {"action_type": "modify_pending_ad", "slot_index": 0,
                              "new_ad_copy": copy})


def test_propose_ad_rejects_unknown_tactic():
    rejects(FraudsterAction, {"action_type": "propose_ad", "category": "ecommerce",
                              "tactic": "sneaky"})


def test_ad_copy_longer_than_2000_chars_is_rejected():
    rejects(FraudsterAction, {"action_type": "propose_ad", "category": "ecommerce",
                              "ad_copy": "a" * 2001})


def test_ad_copy_of_exactly_2000_chars_is_accepted():
    FraudsterAction.model_validate({"action_type": "propose_ad", "category": "ecommerce",
                                    "ad_copy": "a" * 2000})


def test_modify_pending_ad_needs_slot_index():
    rejects(FraudsterAction, {"action_type": "modify_pending_ad", "edit": "soften_copy"})


def test_modify_pending_ad_needs_an_edit_or_new_text():
    rejects(FraudsterAction, {"action_type": "modify_pending_ad", "slot_index": 0})


def test_modify_pending_ad_rejects_negative_slot_index():
    rejects(FraudsterAction, {"action_type": "modify_pending_ad", "slot_index": -1,
                              "edit": "soften_copy"})


def test_end_turn_takes_no_proposal_fields():
    rejects(FraudsterAction, {"action_type": "end_turn", "category": "ecommerce"})


def test_commit_final_takes_no_modify_fields():
    rejects(FraudsterAction, {"action_type": "commit_final", "slot_index": 0})


def test_fraudster_action_rejects_unknown_keys():
    rejects(FraudsterAction, {"action_type": "end_turn", "bonus": 1})


# ------------------------------------------------------------------ auditor actions
@pytest.mark.parametrize("flag_type", AUDIT_TRACK_B)
def test_flag_fraudster_with_track_b_type_and_target_is_valid(flag_type):
    a = AuditorAction.model_validate({"action_type": "flag_fraudster", "flag_type": flag_type,
                                      "target_ad_id": "ad_003"})
    assert a.flag_type == flag_type


def test_flag_fraudster_may_be_queue_level():
    a = AuditorAction.model_validate({"action_type": "flag_fraudster", "flag_type": "gibberish"})
    assert a.target_ad_id is None


@pytest.mark.parametrize("cls,payload", [
    (FraudsterAction, {"action_type": "end_turn"}),
    (AdReviewAction, {"action_type": "end_turn"}),
    (AuditorAction, {"action_type": "submit_audit_report"})])
def test_actions_accept_and_ignore_seed_metadata(cls, payload):
    plain = cls.model_validate(payload)
    tagged = cls.model_validate({**payload, "metadata": {"client": "seed", "n": 1}})
    assert tagged.action_type == plain.action_type
    assert tagged.model_dump(exclude={"metadata"}) == plain.model_dump(exclude={"metadata"})


@pytest.mark.parametrize("flag_type", AUDIT_TRACK_A + ("nonsense",))
def test_flag_fraudster_rejects_non_track_b_types(flag_type):
    rejects(AuditorAction, {"action_type": "flag_fraudster", "flag_type": flag_type,
                            "target_ad_id": "ad_003"})


@pytest.mark.parametrize("flag_type", AUDIT_TRACK_B + ("nonsense",))
def test_flag_investigator_rejects_non_track_a_types(flag_type):
    rejects(AuditorAction, {"action_type": "flag_investigator", "flag_type": flag_type})


def test_flag_investigator_may_be_match_level():
    a = AuditorAction.model_validate({"action_type": "flag_investigator",
                                      "flag_type": "miscalibration"})
    assert a.target_ad_id is None


def test_flag_severity_outside_unit_interval_is_rejected():
    rejects(AuditorAction, {"action_type": "flag_investigator", "flag_type": "bias",
                            "severity": 1.5})


def test_submit_audit_report_takes_no_flag_fields():
    rejects(AuditorAction, {"action_type": "submit_audit_report", "flag_type": "bias"})


def test_submit_audit_report_accepts_a_report():
    a = AuditorAction.model_validate({"action_type": "submit_audit_report",
                                      "audit_report": {"notes": "fine"}})
    assert isinstance(a.audit_report, AuditReport)


def test_auditor_action_rejects_unknown_keys():
    rejects(AuditorAction, {"action_type": "submit_audit_report", "score": 1.0})


def test_audit_report_notes_are_bounded():
    rejects(AuditReport, {"notes": "n" * 4001})


# ------------------------------------------------------------------ observations
def test_investigator_observation_ignores_unknown_keys():
    obs = AdReviewObservation.model_validate({"server_time": 3, "feedback": "hi"})
    assert obs.feedback == "hi"
    assert not hasattr(obs, "server_time")


@pytest.mark.parametrize("cls", [FraudsterObservation, AdReviewObservation, AuditorObservation])
def test_every_observation_model_reads_the_servers_header(cls):
    """The header the server sends with every observation (docs/server.md) is typed on every
    role's model, not left in the client's last_data."""
    header = {"match_id": "m_x", "role": "auditor", "phase": "audit_phase", "round_number": 4,
              "max_rounds": 4, "rounds_remaining": 1}
    obs = cls.model_validate({**header, "feedback": "hi"})
    assert {k: getattr(obs, k) for k in header} == header


@pytest.mark.parametrize("cls", [FraudsterObservation, AuditorObservation, RefereeState])
def test_other_observations_ignore_unknown_keys(cls):
    obs = cls.model_validate({"match_id_extra": "x", "server_time": 3, "feedback": "hi"})
    assert "server_time" not in obs.model_dump()


def test_observation_json_round_trips():
    obs = AdReviewObservation(feedback="ok", available_ads=["ad_001"], phase="investigator_turn")
    again = AdReviewObservation.model_validate_json(obs.model_dump_json())
    assert again == obs


def test_a_model_that_skipped_validation_is_validated_when_parsed():
    """model_copy(update=...) and model_construct skip pydantic's validation: such a model was
    taken as it was and failed inside the translation (a bare ValueError or KeyError, which no
    illegal-action mode caught); it is now an IllegalActionError naming what is wrong."""
    from fraudarena_env.models import parse_action
    from fraudarena_env.rules.errors import IllegalActionError

    good = AdReviewAction(action_type="verdict", ad_id="ad_001", verdict="reject", confidence=0.9)
    assert parse_action("investigator", good) == good
    for bad, reason in [(good.model_copy(update={"verdict": "Reject"}), "verdict"),
                        (good.model_copy(update={"action_type": "investigate"}),
                         "investigate needs investigation_target"),
                        (AdReviewAction.model_construct(action_type="verdict"),
                         "verdict needs an ad_id")]:
        with pytest.raises(IllegalActionError, match=reason):
            parse_action("investigator", bad)


def test_parse_action_says_which_field_failed_without_pydantics_dump():
    """In process as on the wire: the field and why, no pydantic URL, no echo of the input."""
    from fraudarena_env.models import parse_action
    from fraudarena_env.rules.errors import IllegalActionError

    with pytest.raises(IllegalActionError) as refused:
        parse_action("investigator", {"action_type": "verdict", "ad_id": "ad_001",
                                      "verdict": "approve", "confidence": 7, "colour": "red"})
    reason = refused.value.reason
    assert reason.startswith("invalid AdReviewAction: ")
    assert "confidence: Input should be less than or equal to 1" in reason
    assert "colour: Extra inputs are not permitted" in reason
    assert "pydantic.dev" not in reason and "\n" not in reason


@pytest.mark.parametrize("model, fields", [
    (AdReviewAction, {"action_type": "verdict", "ad_id": "ad_001", "verdict": "approve",
                      "confidence": True}),
    (FraudsterAction, {"action_type": "modify_pending_ad", "slot_index": False,
                       "edit": "soften_copy"}),
    (AuditorAction, {"action_type": "flag_fraudster", "flag_type": "gibberish", "severity": True}),
])
def test_an_agents_numbers_are_numbers_not_true_or_false(model, fields):
    """pydantic reads true as 1: "confidence": true became a certainty nobody stated, and
    "slot_index": false the first proposal. A number's text still reads as the number."""
    with pytest.raises(ValidationError, match="expected a number, not true or false"):
        model.model_validate(fields)
    name = next(k for k, v in fields.items() if isinstance(v, bool))
    assert getattr(model.model_validate({**fields, name: "0"}), name) == 0


def test_the_action_schemas_keep_their_bounds():
    """What an LLM tool-calling API is handed: the bounds stay JSON Schema's own keywords."""
    confidence = AdReviewAction.model_json_schema()["properties"]["confidence"]["anyOf"][0]
    assert (confidence["minimum"], confidence["maximum"]) == (0.0, 1.0)
