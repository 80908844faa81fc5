"""How a match reads: the feedback, the role logs and the evidence text, told from its events.

The rules record what happened as typed events (``rules.events``) and build no text. This module
tells them, only when the text face asks: each event becomes one entry of its role's log (the
seed protocol's wire format: ``fraudster_proposals``, ``investigator_action_log``,
``auditor_action_log``) and that role's feedback line. A referee's reading is kept on it
(``ref.narration``) and brought up to date incrementally, as the tensor face's observers are.

A referee that records the ops it plays instead of events (``record="ops"``: the env, whose
tensor path builds no text) is replayed into events the first time its text is asked for, and
records events from then on until its next match. The replay is exact: the rules are
deterministic given the match's seed and ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..rules.catalog import AD_IDS, CATEGORIES, FRAUDSTER_EDITS, TACTICS, TARGETS, VERDICTS
from ..rules.events import (
    Committed,
    Decided,
    Event,
    Flagged,
    Linked,
    Modified,
    Proposed,
    Pulled,
    Refused,
    Stamp,
    Submitted,
    TurnEnded,
)
from ..rules.evidence import headline
from ..rules.referee import Forfeit, Referee
from ..rules.roles import role_of
from ..rules.state import F

FINDINGS_EXCERPT = 240  # characters of a pull's findings kept in the log
PROPOSAL_ACTIONS = ("propose_ad", "modify_pending_ad")  # the fraudster_proposals entries
# The seed's readers expect these fields on every entry of the investigator's log, so fields an
# action does not use are present and null.
_INVESTIGATOR_ENTRY = dict.fromkeys(("ad_id", "investigation_target", "verdict", "confidence",
                                     "rationale", "linked_ad_id", "link_reason"),
                                    None) | {"findings_excerpt": ""}


def evidence_text(target: str, fields: dict) -> str:
    """One evidence source's revealed fields as a line: ``[source] name=value, ...``."""
    parts = ", ".join(f"{k}={v}" for k, v in fields.items())
    return f"[{target}] {parts}"


# ----------------------------------------------------------------------------- log entries
def _entry(at: Stamp, action_type: str, **fields: Any) -> dict:
    """A log entry: ``ts`` (the step count: a logical clock, so logs replay identically),
    ``round_number``, ``phase`` and ``action_type``, then the action's own fields."""
    return {"ts": at.step, "round_number": at.round_number, "phase": at.phase,
            "action_type": action_type, **fields}


def _proposal_entry(ref: Referee, ev: Proposed | Modified, action_type: str,
                    **fields: Any) -> dict:
    """A ``fraudster_proposals`` entry: the ad as it stood after the action."""
    slot = ev.slot
    return _entry(
        ev.at, action_type, reward=0.0, ad_id=AD_IDS[slot],
        slot_index=ref.proposal_slots.index(slot),
        category=CATEGORIES[ref.category_of(slot)].name,
        ad_copy=ev.copy, landing_page_blurb=ev.blurb, targeting_summary=ev.targeting,
        **{"new_ad_copy": None, "new_landing_page_blurb": None, **fields})


def _investigator_entry(at: Stamp, action_type: str, reward: float, **fields: Any) -> dict:
    return _entry(at, action_type, **{**_INVESTIGATOR_ENTRY, "reward": reward, **fields})


# ----------------------------------------------------------------------------- per event
# Each kind's reading: (its log entry, its role's feedback line).
def _proposed(ref: Referee, ev: Proposed) -> tuple[dict, str]:
    tactic = TACTICS[ref.tactic_of(ev.slot)]
    return (_proposal_entry(ref, ev, "propose_ad", rationale=ev.rationale, tactic=tactic),
            f"proposed {AD_IDS[ev.slot]}")


def _modified(ref: Referee, ev: Modified) -> tuple[dict, str]:
    edit = FRAUDSTER_EDITS[ev.edit] if ev.edit >= 0 else "rewrite"
    return (_proposal_entry(ref, ev, "modify_pending_ad", new_ad_copy=ev.new_ad_copy,
                            new_landing_page_blurb=ev.new_landing_page_blurb, edit=edit),
            f"modified {AD_IDS[ev.slot]}")


def _turn_ended(ref: Referee, ev: TurnEnded) -> tuple[dict, str]:
    if ev.role == F:
        return _entry(ev.at, "end_turn", reward=0.0), "turn ended"
    return _investigator_entry(ev.at, "end_turn", 0.0), "turn ended"


def _committed(ref: Referee, ev: Committed) -> tuple[dict, str]:
    return (_entry(ev.at, "commit_final", reward=0.0),
            "committed: no more proposals this match")


def _pulled(ref: Referee, ev: Pulled) -> tuple[dict, str]:
    source, ad_id = TARGETS[ev.target], AD_IDS[ev.slot]
    name, value = headline(source, ev.signal)
    fields = ref.evidence_fields_of(ev.slot, ev.target, ev.signal)
    findings = evidence_text(source, fields)
    entry = _investigator_entry(ev.at, "investigate", ev.reward, ad_id=ad_id,
                                investigation_target=source,
                                revealed={name: value},  # what the pull showed, at the time
                                findings_excerpt=findings[:FINDINGS_EXCERPT])
    return entry, f"pulled {source} for {ad_id}"


def _decided(ref: Referee, ev: Decided) -> tuple[dict, str]:
    verdict, ad_id = VERDICTS[ev.verdict], AD_IDS[ev.slot]
    return (_investigator_entry(ev.at, "verdict", ev.reward, ad_id=ad_id, verdict=verdict,
                                confidence=ev.confidence, rationale=ev.rationale),
            f"{verdict} {ad_id}")


def _linked(ref: Referee, ev: Linked) -> tuple[dict, str]:
    ad_id, other = AD_IDS[ev.slot], AD_IDS[ev.other]
    return (_investigator_entry(ev.at, "link_accounts", ev.reward, ad_id=ad_id,
                                linked_ad_id=other, link_reason=ev.reason),
            f"linked {ad_id} and {other}")


def _flagged(ref: Referee, ev: Flagged) -> tuple[dict, str]:
    target = AD_IDS[ev.slot] if ev.slot >= 0 else None
    flag = {"track": ev.track, "target_ad_id": target, "flag_type": ev.flag_type,
            "severity": ev.severity, "note": ev.note or ""}
    action_type = "flag_investigator" if ev.track == "A" else "flag_fraudster"
    on = f"flag {ev.flag_type} on {target or 'the match'}"
    if ev.repeat:
        return (_entry(ev.at, action_type, **flag, reward=0.0, repeat=True),
                f"{on} was already raised; it counts once")
    return (_entry(ev.at, action_type, **flag, reward=ev.reward),
            f"{on}: " + ("confirmed by the rule audit" if ev.confirmed
                         else "not supported by the rule audit"))


def _submitted(ref: Referee, ev: Submitted) -> tuple[dict, str]:
    return _entry(ev.at, "submit_audit_report"), "report submitted; the match is over"


def _refused(ref: Referee, ev: Refused) -> tuple[dict, str]:
    return (_entry(ev.at, "illegal", reason=ev.reason, reward=ev.reward),
            f"illegal action ({ev.reason}); charged {ev.reward}" +
            ("; the match is over" if ev.ended else ""))


NARRATE: dict[type, Callable[[Referee, Any], tuple[dict, str]]] = {
    Proposed: _proposed, Modified: _modified, TurnEnded: _turn_ended, Committed: _committed,
    Pulled: _pulled, Decided: _decided, Linked: _linked, Flagged: _flagged,
    Submitted: _submitted, Refused: _refused}


def tell(ref: Referee, event: Event) -> tuple[dict, str]:
    """One event of ``ref``'s match as its log entry and its role's feedback line."""
    return NARRATE[type(event)](ref, event)


# ----------------------------------------------------------------------------- the match
class Narration:
    """What a match's events say so far: each role's log and its latest feedback line."""

    def __init__(self):
        self.clear(-1)

    def clear(self, epoch: int) -> None:
        """Forget what was told: a new match (``epoch``: the referee's reset it belongs to)."""
        self.epoch = epoch
        self.cursor = 0
        self.logs: tuple[list[dict], list[dict], list[dict]] = ([], [], [])
        self.feedback = ["", "", ""]

    def sync(self, ref: Referee) -> Narration:
        """Tell the events ``ref`` recorded since the last call (all of them after a reset)."""
        if ref.epoch != self.epoch:
            self.clear(ref.epoch)
        events = recorded_events(ref)
        for event in events[self.cursor:]:
            role = role_of(event)
            entry, self.feedback[role] = tell(ref, event)
            self.logs[role].append(entry)
        self.cursor = len(events)
        return self


def recorded_events(ref: Referee) -> list[Event]:
    """``ref``'s events of its match so far. A referee that recorded only the ops it played is
    replayed into them first, and records events from then on."""
    if not ref.recording:
        if ref.played is None:
            raise RuntimeError("this referee records nothing of its matches (record='nothing', "
                               "as VectorFraudArena's do), so there is no text to show")
        seed, task_id, knobs = ref.setup
        twin = Referee(ref.illegal_action, record="events")
        twin.reset_match(seed, task_id, **knobs)
        for played in ref.played:
            role = twin.current_role
            if isinstance(played, str):  # the reason an illegal action was charged for
                twin.penalize(role, None, played)
            elif isinstance(played, Forfeit):  # an illegal action that ended the match
                twin.end_on_illegal(role, None, played.reason, played.charge)
            else:
                twin.carry_out(role, played)
        ref.adopt_events(twin.events)
    return ref.events


def narration(ref: Referee) -> Narration:
    """``ref``'s match as read so far, up to date."""
    told = ref.narration
    if told is None:
        told = ref.narration = Narration()
    return told.sync(ref)


def feedback(ref: Referee, role: int) -> str:
    """The feedback line on role ``role``'s last action ("" before it has acted)."""
    return narration(ref).feedback[role]


def logs(ref: Referee) -> tuple[list[dict], list[dict], list[dict]]:
    """Each role's log, in ``ROLES`` order (the lists themselves: copy before changing)."""
    return narration(ref).logs


def proposal_log(ref: Referee) -> list[dict]:
    """The fraudster's proposals and modifications in order (``fraudster_proposals``); turn
    control (end_turn, commit_final) stays in the fraudster's log only."""
    return [e for e in narration(ref).logs[F] if e["action_type"] in PROPOSAL_ACTIONS]


__all__ = ["FINDINGS_EXCERPT", "NARRATE", "Narration", "evidence_text", "feedback", "logs",
           "narration", "proposal_log", "recorded_events", "tell"]
