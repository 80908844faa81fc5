"""What happened in a match, as typed events: the record the text face is told from.

The rules append one event per action to ``Referee.events``, but only on a referee that records
them (``Referee(record="events")``): the tensor face and ``VectorFraudArena`` turn recording off,
so they build no events and no text. ``faces.narration`` turns the events into the feedback
strings, the role logs and the evidence text a player reads.

An event holds data, never text a player reads: indices into the catalogue (``AD_IDS``,
``TARGETS``, ``VERDICTS``...), numbers, and whatever of the match may change after the action
(an ad's copy, its evidence signal), as it stood then. What cannot change afterwards (an ad's
category, its tactic, its place among the proposals) the narration reads from the referee.

Every event starts with ``at``, a ``Stamp``: the match's step count (a logical clock), round and
phase when the action was taken. Each role's module names the kinds its actions record
(``EVENTS``; ``rules.roles.role_of`` reads them); ``TurnEnded`` and ``Refused`` name the role.

``Referee.changes`` is another record, always kept: the changes (``Change``, below) the tensor
face's observers replay to update their vectors incrementally. A change says only where the
match changed (slots, a source, a flag); the observer reads what is there now.
"""

from __future__ import annotations

from typing import NamedTuple


class Stamp(NamedTuple):
    step: int  # the match's step count after the action: a logical clock
    round_number: int
    phase: str  # the phase the action was taken in


class Proposed(NamedTuple):
    """The fraudster proposed the ad in ``slot``; its text as proposed."""
    at: Stamp
    slot: int
    rationale: str | None
    copy: str
    blurb: str
    targeting: str


class Modified(NamedTuple):
    """The fraudster edited its ad in ``slot`` (``edit``: a ``FRAUDSTER_EDITS`` index, or -1 for
    a free-text rewrite); the ad's text after the edit."""
    at: Stamp
    slot: int
    edit: int
    new_ad_copy: str | None
    new_landing_page_blurb: str | None
    copy: str
    blurb: str
    targeting: str


class TurnEnded(NamedTuple):
    at: Stamp
    role: int  # F or I


class Committed(NamedTuple):
    """The fraudster committed: no more proposals this match (its turn ends)."""
    at: Stamp


class Pulled(NamedTuple):
    """The investigator pulled evidence source ``target`` for the ad in ``slot``; ``signal`` is
    the source's evidence signal then (a trust blurb added later changes it)."""
    at: Stamp
    slot: int
    target: int
    signal: float
    reward: float


class Decided(NamedTuple):
    """The investigator's verdict (a ``VERDICTS`` index) on the ad in ``slot``."""
    at: Stamp
    slot: int
    verdict: int
    confidence: float
    rationale: str | None
    reward: float


class Linked(NamedTuple):
    at: Stamp
    slot: int
    other: int
    reason: str | None
    reward: float


class Flagged(NamedTuple):
    """The auditor raised a flag on track ``track`` ("A" or "B") against the ad in ``slot`` (-1:
    the match as a whole). ``repeat``: raised before, so it counts once and earns nothing;
    ``confirmed``: the rule audit found the same fault."""
    at: Stamp
    track: str
    slot: int
    flag_type: str
    severity: float
    note: str | None
    reward: float
    repeat: bool
    confirmed: bool


class Submitted(NamedTuple):
    """The auditor submitted its report: the match is over."""
    at: Stamp


class Refused(NamedTuple):
    """An illegal action charged in penalize mode, or one that ended the match (``ended``: the
    env's terminate mode), and why it was illegal."""
    at: Stamp
    role: int
    reason: str
    reward: float
    ended: bool = False


Event = (Proposed | Modified | TurnEnded | Committed | Pulled | Decided | Linked | Flagged |
         Submitted | Refused)



class AdsArrived(NamedTuple):
    """Ads took these slots (organic arrivals, or a proposal)."""
    slots: tuple[int, ...]


class SourcePulled(NamedTuple):
    """Evidence source ``target`` of the ad in ``slot`` was pulled."""
    slot: int
    target: int


class VerdictGiven(NamedTuple):
    """The ad in ``slot`` was decided (by the investigator, or approved at the end of play)."""
    slot: int


class AdsLinked(NamedTuple):
    """The ads in ``slot`` and ``other`` were linked."""
    slot: int
    other: int


class AdEdited(NamedTuple):
    """The ad in ``slot`` changed: its copy, its blurb or what its landing page shows."""
    slot: int


class PlayFinished(NamedTuple):
    """Play ended: the record the auditor reads is complete."""


class FlagRaised(NamedTuple):
    """The auditor raised ``flag_type`` on track ``track`` ("A" or "B") against the ad in
    ``slot`` (-1: the match)."""
    track: str
    flag_type: str
    slot: int


Change = AdsArrived | SourcePulled | VerdictGiven | AdsLinked | AdEdited | PlayFinished | FlagRaised
FINISHED = PlayFinished()


__all__ = ["FINISHED", "AdEdited", "AdsArrived", "AdsLinked", "Change", "Committed", "Decided",
           "Event", "FlagRaised", "Flagged", "Linked", "Modified", "PlayFinished", "Proposed",
           "Pulled", "Refused", "SourcePulled", "Stamp", "Submitted", "TurnEnded",
           "VerdictGiven"]
