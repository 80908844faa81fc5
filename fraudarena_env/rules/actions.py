"""The rules' actions: one small typed op per kind of action.

Both faces translate to these: an action index of the tensor face decodes to one op (see
``faces.encoding.OPS``), and a pydantic action model of the text face parses to one op (see
``faces.textface.op_from_model``). The referee checks and applies ops only, so a reader never
needs a tuple's layout: every field has a name.

Ads are named by their queue slot (``AD_IDS[slot]``), categories, tactics, edits, targets and
verdicts by their index in the catalogue (``catalog.CATEGORIES``, ``TACTICS``,
``FRAUDSTER_EDITS``, ``TARGETS``, ``VERDICTS``). Free text (copy, blurbs, rationales, notes) is
``None`` when the action carries none; the tensor face never carries any.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Propose:
    """Fraudster: put a new ad in the queue. ``tactic`` -1: free ``ad_copy`` decides it."""
    category: int
    tactic: int
    ad_copy: str | None = None
    landing_page_blurb: str | None = None
    targeting_summary: str | None = None
    rationale: str | None = None


@dataclass(frozen=True, slots=True)
class Modify:
    """Fraudster: edit one of its pending proposals. ``edit`` -1: a free rewrite only."""
    slot: int
    edit: int
    new_ad_copy: str | None = None
    new_landing_page_blurb: str | None = None


@dataclass(frozen=True, slots=True)
class EndTurn:
    """Fraudster or investigator: pass the rest of the turn."""


@dataclass(frozen=True, slots=True)
class CommitFinal:
    """Fraudster: no more proposals this match; ends the turn."""


@dataclass(frozen=True, slots=True)
class Investigate:
    """Investigator: pull one evidence source (``target``) for a pending ad."""
    slot: int
    target: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """Investigator: decide a pending ad (``verdict`` indexes ``VERDICTS``)."""
    slot: int
    verdict: int
    confidence: float
    rationale: str | None = None


@dataclass(frozen=True, slots=True)
class Link:
    """Investigator: claim that two ads belong to one fraud ring."""
    slot: int
    other: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Flag:
    """Auditor: flag a fault, track "A" (the investigator) or "B" (the fraudster); ``slot`` -1
    flags the match as a whole."""
    track: str
    slot: int
    flag_type: str
    severity: float = 0.5
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Submit:
    """Auditor: submit the report (optionally the auditor's own, as a dict); ends the match."""
    report: dict | None = None

    def __hash__(self) -> int:  # a report is a dict: ops hash by kind alone
        return hash(Submit)


Op = Propose | Modify | EndTurn | CommitFinal | Investigate | Verdict | Link | Flag | Submit

__all__ = ["CommitFinal", "EndTurn", "Flag", "Investigate", "Link", "Modify", "Op", "Propose",
           "Submit", "Verdict"]
