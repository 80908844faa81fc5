"""The text face: FraudArena's rules as the seed protocol's pydantic models.

An LLM or a remote client plays through these models. This module translates an action model to
the rules' op (``op_from_model``, the one translator: the text step path and the codec both use
it), applies it to a match (``apply_model``), and builds each role's observation model, the
episode record and the ``RefereeState`` from a referee's state; the feedback and the logs in
them are ``faces.narration``'s, told from the match's events. ``fraudarena_env.Referee`` offers
these as its ``step_as_<role>``, ``build_<role>_observation`` and ``state`` (public API). Only
``apply_model`` changes a match, and only through the rules' ``apply`` or ``penalize``.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Sequence

import numpy as np

from ..models import (
    AdReviewAction,
    AdReviewObservation,
    AuditorAction,
    AuditorObservation,
    FraudsterAction,
    FraudsterObservation,
    RefereeState,
    parse_action,
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
    Submit,
    Verdict,
)
from ..rules.catalog import (
    AD_IDS,
    CATEGORIES,
    CATEGORY_INDEX,
    FRAUDSTER_EDITS,
    LABELS,
    RING_SIGNALS,
    ROLES,
    TACTICS,
    TARGET_INDEX,
    TARGETS,
    VERDICTS,
)
from ..rules.errors import IllegalActionError, OutOfTurnError
from ..rules.referee import Referee
from ..rules.state import A, F, I  # noqa: E741  (the roles' indices)
from . import narration
from .narration import evidence_text

# Resolves an ad id to its slot, or raises IllegalActionError: (ad_id, agent, action) -> slot.
SlotOf = Callable[[str, str, object], int]


# ----------------------------------------------------------------------------- actions
def op_from_model(role: str, model, slot_of: SlotOf, proposal_slots: Sequence[int] = ()) -> Op:
    """The op a validated action model stands for. ``slot_of`` resolves ad ids (the referee's
    checks them against the queue); ``proposal_slots`` resolves a fraudster's ``slot_index``.
    Raises ``IllegalActionError`` for a name the catalogue does not know."""
    return _TRANSLATE[role](model, slot_of, proposal_slots)


def header(ref, role: str) -> dict:
    """The fields every role's observation begins with. ``match_id`` is empty: the referee's is
    hashed from the seed, which a player could search for and so rebuild every hidden label;
    the server puts its own, random, id in."""
    return {"match_id": "", "role": role, "phase": ref.phase,
            "round_number": ref.round_number, "max_rounds": ref.max_rounds,
            "rounds_remaining": ref.rounds_remaining()}


def _unknown_category(name: str) -> str:
    """Why a category name is refused, and the name meant when one is close."""
    close = difflib.get_close_matches(name.lower(), CATEGORY_INDEX, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (f"unknown category {name!r}{hint} (propose_ad takes one of the observation's "
            "allowed_categories, as written there)")


def _fraudster_op(a: FraudsterAction, slot_of: SlotOf, proposal_slots) -> Op:
    t = a.action_type
    if t == "propose_ad":
        if a.category not in CATEGORY_INDEX:
            raise IllegalActionError("fraudster", a, _unknown_category(a.category))
        tactic = TACTICS.index(a.tactic) if a.tactic is not None else -1
        return Propose(CATEGORY_INDEX[a.category], tactic, a.ad_copy, a.landing_page_blurb,
                       a.targeting_summary, a.rationale)
    if t == "modify_pending_ad":
        if a.ad_id is not None:
            slot = slot_of(a.ad_id, "fraudster", a)
        elif a.slot_index >= len(proposal_slots):
            raise IllegalActionError("fraudster", a, f"slot_index {a.slot_index} is not one "
                                     f"of your {len(proposal_slots)} proposals")
        else:
            slot = proposal_slots[a.slot_index]
        edit = FRAUDSTER_EDITS.index(a.edit) if a.edit is not None else -1
        return Modify(slot, edit, a.new_ad_copy, a.new_landing_page_blurb)
    return CommitFinal() if t == "commit_final" else EndTurn()


def _investigator_op(a: AdReviewAction, slot_of: SlotOf, proposal_slots) -> Op:
    t = a.action_type
    if t == "end_turn":
        return EndTurn()
    slot = slot_of(a.ad_id, "investigator", a)
    if t == "investigate":
        return Investigate(slot, TARGET_INDEX[a.investigation_target])
    if t == "verdict":
        conf = 0.5 if a.confidence is None else float(a.confidence)
        return Verdict(slot, VERDICTS.index(a.verdict), conf, a.rationale)
    other = slot_of(a.linked_ad_id, "investigator", a)
    return Link(slot, other, a.link_reason)


def _auditor_op(a: AuditorAction, slot_of: SlotOf, proposal_slots) -> Op:
    if a.action_type == "submit_audit_report":
        return Submit(a.audit_report.model_dump() if a.audit_report else None)
    slot = -1 if a.target_ad_id is None else slot_of(a.target_ad_id, "auditor", a)
    track = "A" if a.action_type == "flag_investigator" else "B"
    return Flag(track, slot, a.flag_type, float(a.severity), a.note)


_TRANSLATE = {"fraudster": _fraudster_op, "investigator": _investigator_op,
              "auditor": _auditor_op}


def op_in_match(ref: Referee, role: str, action) -> Op:
    """The op a role's action model (or dict) stands for in ``ref``'s match: the turn is checked
    first, then the model is validated and translated, with ad ids checked against the queue."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {ROLES}")
    ref.check_turn(role, action)
    return op_from_model(role, parse_action(role, action), ref.slot_of, ref.proposal_slots)


def apply_model(ref: Referee, role: str, action) -> float:
    """Validate a role's action model (or dict) and apply it to ``ref``; returns the actor's
    reward. The one text-face step path of the env, the server and the arena.

    In penalize mode an action that fails validation is charged like any illegal action; acting
    out of turn always raises. A refused action's error names the action as given."""
    try:
        op = op_in_match(ref, role, action)
    except OutOfTurnError:
        raise
    except IllegalActionError as exc:
        if ref.illegal_action == "raise":
            raise
        return ref.penalize(role, action, exc.reason)
    try:
        return ref.apply(role, op)
    except OutOfTurnError:
        raise
    except IllegalActionError as exc:
        raise IllegalActionError(role, action, exc.reason) from None


# ----------------------------------------------------------------------------- observations
def revealed(ref, slot: int) -> dict[str, dict]:
    return {TARGETS[t]: ref.evidence_fields_of(slot, int(t))
            for t in np.flatnonzero(ref.pulled[slot])}


def seed_columns(ad_id: str, revealed: dict[str, dict]) -> dict:
    """The flat columns the seed's clients read off an ad's row: every revealed field, plus
    the seed's names ``advertiser_id`` (advertiser_history; one per ad, never shared) and
    ``targeting_fingerprint`` (targeting_overlap's audience fingerprint)."""
    out = {}
    for fields in revealed.values():
        out.update(fields)
    if "advertiser_history" in revealed:
        out["advertiser_id"] = f"adv_{ad_id}"
    if "audience_fingerprint" in out:
        out["targeting_fingerprint"] = out["audience_fingerprint"]
    return out


def fraudster_observation(ref) -> FraudsterObservation:
    """The fraudster's observation model: the public queue, what was done to its ads, and its own
    ads' hidden signals."""
    present = np.flatnonzero(ref.present)
    queue, prior, used, mine = [], [], {}, {}
    for s in present:
        item = {"ad_id": AD_IDS[s], "ad_copy": ref.copy[s],
                "category": CATEGORIES[ref.category_of(s)].name,
                "status": VERDICTS[ref.verdict[s]] if ref.verdict[s] >= 0 else "pending",
                "is_my_proposal": bool(ref.is_proposal[s])}
        if ref.is_proposal[s]:
            item["slot_index"] = ref.proposal_slots.index(s)
        queue.append(item)
        if ref.verdict[s] >= 0:
            prior.append({"ad_id": AD_IDS[s], "verdict": VERDICTS[ref.verdict[s]],
                          "confidence": float(ref.confidence[s]),
                          "rationale": ref.rationale[s] or "",
                          "auto_approved": bool(not ref.manual[s]),
                          "was_my_proposal": bool(ref.is_proposal[s])})
        if ref.pulled[s].any():
            used[AD_IDS[s]] = [TARGETS[t] for t in np.flatnonzero(ref.pulled[s])]
    for k, s in enumerate(ref.proposal_slots):
        signals = ref.surface_fields_of(s)
        signals.update(seed_columns(AD_IDS[s], {
            t: ref.evidence_fields_of(s, k) for k, t in enumerate(TARGETS)}))
        signals.update(slot_index=k, tactic=TACTICS[ref.tactic_of(s)],
                       investigator_verdict=VERDICTS[ref.verdict[s]]
                       if ref.verdict[s] >= 0 else None,
                       landing_page_blurb=ref.blurb[s], trust_blurb=bool(ref.trusted[s]),
                       targeting_summary=ref.targeting[s])
        mine[AD_IDS[s]] = signals
    return FraudsterObservation(
        **header(ref, "fraudster"), feedback=narration.feedback(ref, F), task_id=ref.task.task_id,
        proposals_used=ref.proposals_used,
        proposals_remaining=ref.proposals_remaining(),
        actions_left_this_turn=ref.actions_left_this_turn(F), current_queue=queue,
        prior_verdicts=prior, investigation_targets_used=used,
        allowed_categories=list(ref.allowed_categories), my_proposal_signals=mine,
        can_propose=bool(ref.phase == "fraudster_turn" and ref.may_propose()),
        committed=ref.committed, done=ref.done, reward=ref.totals[F])


def investigator_observation(ref) -> AdReviewObservation:
    """The investigator's observation model: the surface of every ad it sees and what it
    pulled (not the ads that arrived while the fraudster moves: ``unseen_by_investigator``)."""
    seen = ref.present.copy()
    seen[ref.unseen_by_investigator()] = False
    present = np.flatnonzero(seen)
    pending = [s for s in present if ref.verdict[s] < 0]
    ledger, digest, decided, findings = {}, [], [], []
    for s in present:
        entry = ref.surface_fields_of(s)
        entry.update(ad_copy=ref.copy[s], landing_page_blurb=ref.blurb[s],
                     targeting_summary=ref.targeting[s], status=ref.status_of(s),
                     arrived_round=int(ref.arrived[s]),
                     targets_pulled=[TARGETS[t] for t in np.flatnonzero(ref.pulled[s])])
        shown = revealed(ref, s)
        columns = seed_columns(AD_IDS[s], shown)
        entry.update(shown)
        entry.update(columns)
        ledger[AD_IDS[s]] = entry
        for t, fields in shown.items():
            findings.append(f"{AD_IDS[s]} {evidence_text(t, fields)}")
        if ref.verdict[s] < 0:
            digest.append({"ad_id": AD_IDS[s], **ref.surface_fields_of(s),
                           "domain": columns.get("domain"),
                           "registrar": columns.get("registrar")})
        else:
            decided.append({"ad_id": AD_IDS[s], **entry,
                            "verdict": VERDICTS[ref.verdict[s]],
                            "confidence": float(ref.confidence[s]),
                            "auto_approved": bool(not ref.manual[s])})
    focus = ""
    if pending:
        s = pending[0]
        e = ledger[AD_IDS[s]]
        focus = (f"{AD_IDS[s]} [{e['category']}, policy area {e['policy_area']}] "
                 f"\"{ref.copy[s]}\" targeting: {ref.targeting[s]}; account age "
                 f"{e['account_age_days']} days, .{e['landing_tld']} landing page, "
                 f"{e['payment_type']}, {e['country']}; pulled: "
                 f"{e['targets_pulled'] or 'nothing yet'}")
    n_dec = len(present) - len(pending)
    can_grow = ref.queue_may_grow()
    return AdReviewObservation(
        **header(ref, "investigator"), task_id=ref.task.task_id,
        actions_left_this_turn=ref.actions_left_this_turn(I),
        queue_summary=(f"{len(present)} ads in the queue: {len(pending)} pending, {n_dec} "
                       f"decided; budget {ref.budget}; round {ref.round_number}/"
                       f"{ref.max_rounds}"),
        current_ad_info=focus, investigation_findings="\n".join(findings),
        verdict_history_summary="; ".join(f"{d['ad_id']}: {d['verdict']}"
                                          for d in decided),
        feedback=narration.feedback(ref, I), available_ads=[AD_IDS[s] for s in pending],
        queue_status={"total_ads": len(present), "reviewed": n_dec,
                      "pending": len(pending), "budget": ref.budget,
                      "investigation_budget": ref.budget, "step": ref.step_count,
                      "steps_remaining": ref.budget, "task_id": ref.task.task_id},
        queue_may_grow=bool(can_grow and ref.playing),
        evidence_ledger=ledger, queue_digest=digest, decided_ads=decided,
        links=[[AD_IDS[a], AD_IDS[b]] for a, b in ref.links],
        done=ref.done, reward=ref.totals[I])


def handed_out(log: list[dict]) -> list[dict]:
    """A role log as a caller's own copy: its entries and the dicts in them (a pull's
    ``revealed``), so that changing what it was handed leaves the match's log alone."""
    return [{k: dict(v) if isinstance(v, dict) else v for k, v in entry.items()}
            for entry in log]


def episode_record(ref) -> dict:
    """The match as the auditor reviews it, ground truth included."""
    present = np.flatnonzero(ref.present)
    ads, verdicts = [], []
    for s in present:
        cat, label, tactic = CATEGORIES[ref.category_of(s)], ref.label_of(s), ref.tactic_of(s)
        ads.append({"ad_id": AD_IDS[s], "ad_copy": ref.copy[s], "category": cat.name,
                    "ground_truth": LABELS[label],
                    "severity": round(ref.severity_of(s), 4),
                    "fraud_type": cat.name if label != 0 else "",
                    "difficulty": TACTICS[tactic] if tactic >= 0 else "legit",
                    "is_fraudster_proposal": bool(ref.is_proposal[s]),
                    "landing_page_blurb": ref.blurb[s],
                    "targeting_summary": ref.targeting[s]})
        if ref.verdict[s] >= 0:
            verdicts.append({"ad_id": AD_IDS[s], "ground_truth": LABELS[label],
                             "verdict": VERDICTS[ref.verdict[s]],
                             "confidence": float(ref.confidence[s]),
                             "rationale": ref.rationale[s] or "",
                             "auto_approved": bool(not ref.manual[s]),
                             "targets_pulled": [TARGETS[t] for t in
                                                np.flatnonzero(ref.pulled[s])]})
    # a ring is two ads or more: the fraudster's own, while it has proposed one network ad,
    # links nothing yet
    members = [[AD_IDS[s] for s in ref.ring_slots(r)] for r in ref.rings]
    rings = [{"ring_id": f"ring_{r.ring_id}", "topology": r.topology, "member_ad_ids": ads,
              "shared_signal_types": [RING_SIGNALS[i] for i in r.shared_signals]}
             for r, ads in zip(ref.rings, members) if len(ads) >= 2]
    return {"task_id": ref.task.task_id, "round_number": ref.round_number,
            "proposals_used": ref.proposals_used, "end_reason": ref.end_reason,
            "ads": ads, "verdicts": verdicts,
            "links": [[AD_IDS[a], AD_IDS[b]] for a, b in ref.links],
            "grader_score": ref.grader_score, "grader_terms": dict(ref.grader_terms),
            "fraud_rings": rings}


def auditor_observation(ref) -> AuditorObservation:
    # The auditor reviews the finished match: nothing of it is shown before play has run to its
    # end (while play runs, or when an illegal action ended the match first).
    seen, record, inv_log, proposals = {}, {}, [], []
    if ref.play_finished:
        for s in np.flatnonzero(ref.present & ref.pulled.any(axis=1)):
            seen[AD_IDS[s]] = {t: evidence_text(t, f) for t, f in revealed(ref, s).items()}
        record = episode_record(ref)
        inv_log, proposals = handed_out(narration.logs(ref)[I]), narration.proposal_log(ref)
    return AuditorObservation(
        **header(ref, "auditor"), feedback=narration.feedback(ref, A), task_id=ref.task.task_id,
        full_episode_record=record, investigator_actions=inv_log,
        fraudster_proposals=proposals, investigation_data_seen=seen,
        pending_flags=list(ref.auditor_flags), actions_left=ref.actions_left_this_turn(A),
        done=ref.done, reward=ref.totals[A])


def referee_state(ref) -> RefereeState:
    """The whole match (for the in-process caller; remote roles get a sealed view).
    The seed's clients require ``max_actions_per_turn`` >= 1 in every phase (after the
    match it is the auditor's, the last to act) and ``grader_score`` and ``end_reason``
    null until the match is done."""
    role = ref.current_role or "auditor"
    done = ref.done
    logs = narration.logs(ref)
    return RefereeState(
        episode_id=ref.episode_id, match_id=ref.match_id, seed=ref.seed,
        step_count=ref.step_count, task_id=ref.task.task_id, phase=ref.phase,
        round_number=ref.round_number, max_rounds=ref.max_rounds,
        proposals_used=ref.proposals_used, max_proposals=ref.max_proposals,
        actions_this_turn=ref.actions_this_turn,
        max_actions_per_turn=ref.caps[ROLES.index(role)],
        budget_remaining=ref.budget,
        investigator_state={
            "budget": ref.budget,
            "verdicts": {AD_IDS[s]: {"verdict": VERDICTS[ref.verdict[s]],
                                     "confidence": float(ref.confidence[s]),
                                     "auto_approved": bool(not ref.manual[s])}
                         for s in np.flatnonzero(ref.present & (ref.verdict >= 0))},
            "pending": [AD_IDS[s] for s in ref.pending_slots()],
            "links": [[AD_IDS[a], AD_IDS[b]] for a, b in ref.links],
            "targets_pulled": {AD_IDS[s]: [TARGETS[t] for t in
                                           np.flatnonzero(ref.pulled[s])]
                               for s in np.flatnonzero(ref.pulled.any(axis=1))},
        },
        fraudster_proposals=narration.proposal_log(ref),
        investigator_action_log=handed_out(logs[I]),
        auditor_action_log=handed_out(logs[A]),
        fraudster_committed=ref.committed, audit_report=copy.deepcopy(ref.audit_report),
        fraudster_reward=ref.totals[F], investigator_reward=ref.totals[I],
        auditor_reward=ref.totals[A], grader_score=ref.grader_score if done else None,
        end_reason=ref.end_reason if done else None)
