"""The env's own rule audit: the truth the auditor is graded against.

Track A finds faults in the investigator's reasoning, judged from the record (what was pulled,
what it showed, what was decided), so it means the same on the tensor and the text face.
Track B scores each fraudster proposal's plausibility from its final text. Flags are keyed by
``(flag_type, ad_id or None)`` and are deduplicated by construction.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

from .catalog import APPROVE, CATEGORIES, LEGIT, REJECT, TARGETS
from .lexicon import (
    has_injection_or_generator_token,
    is_gibberish,
    jaccard,
    mentions_minors,
    shingles,
)

TRACK_B_PENALTY = {"gibberish": 0.8, "branding_anomaly": 0.6, "parameter_mismatch": 0.5,
                   "template_repetition": 0.4, "market_implausible": 0.3}
TRACK_A_WEIGHT = {"miscalibration": 0.25, "incoherent_rationale": 0.22, "inconsistency": 0.20,
                  "bias": 0.18, "missing_citation": 0.12}
REPETITION_JACCARD = 0.8
OVERCONFIDENCE_GAP = 0.3
MIN_BIN = 3
INCOHERENT_APPROVE_SIGNAL = 2.0  # mean pulled evidence signal that makes approving incoherent
INCOHERENT_REJECT_SIGNAL = 0.0  # ... and below which rejecting on two or more sources is
BIAS_GAP = 0.5


class ProposalText(NamedTuple):
    ad_id: str
    category: int
    copy: str
    blurb: str
    targeting: str


def track_b(proposals: list[ProposalText]) -> tuple[set[tuple[str, str]], dict[str, float]]:
    """Flags and plausibility in [0, 1] for every proposal, in proposal order."""
    flags: set[tuple[str, str]] = set()
    plaus: dict[str, float] = {}
    seen: list[frozenset] = []
    for p in proposals:
        found = list(text_findings(p.category, p.copy, p.blurb, p.targeting))
        sh = _shingles(p.copy)
        if any(_near(sh, other) for other in seen):
            found.append("template_repetition")
        seen.append(sh)
        for f in found:
            flags.add((f, p.ad_id))
        plaus[p.ad_id] = float(max(0.0, 1.0 - sum(TRACK_B_PENALTY[f] for f in found)))
    return flags, plaus


_shingles = lru_cache(maxsize=1 << 14)(shingles)  # template copy repeats across matches


def _near(a: frozenset, b: frozenset) -> bool:
    return jaccard(a, b) >= REPETITION_JACCARD


def repeats(copy_a: str, copy_b: str) -> bool:
    """Whether two proposals' copy reads as one template repeated (track B's shingle
    overlap): the later one is flagged ``template_repetition``."""
    return _near(_shingles(copy_a), _shingles(copy_b))


@lru_cache(maxsize=1 << 16)
def text_findings(category: int, copy: str, blurb: str, targeting: str) -> tuple[str, ...]:
    """The track B findings one proposal's own text supports (all but repetition, which
    compares proposals). Memoised: template proposals repeat across matches."""
    cat = CATEGORIES[category]
    text = " ".join((copy, blurb, targeting))
    found = []
    if is_gibberish(copy):
        found.append("gibberish")
    if has_injection_or_generator_token(text):
        found.append("branding_anomaly")
    if cat.adult_only and mentions_minors(targeting + " " + copy):
        found.append("parameter_mismatch")
    low = text.lower()
    if not any(k in low for k in cat.keywords):
        found.append("market_implausible")
    return tuple(found)


class VerdictRecord(NamedTuple):
    ad_id: str
    verdict: int
    confidence: float
    rationale: str | None
    label: int
    category: int
    pulled: tuple[int, ...]
    pulled_signal: tuple[float, ...]
    order: int  # position among manual verdicts


def track_a(verdicts: list[VerdictRecord], links: list[tuple[str, str]],
            revealed_values: dict[str, list[str]],
            calibration: list[tuple[int, float, float]]) -> set[tuple[str, str | None]]:
    """Faults in the investigator's manual verdicts (``calibration``: their
    ``scoring.calibration_bins``)."""
    flags: set[tuple[str, str | None]] = set()
    by_id = {v.ad_id: v for v in verdicts}
    for v in verdicts:
        if v.verdict in (APPROVE, REJECT):
            if not v.pulled:
                flags.add(("missing_citation", v.ad_id))
            elif v.rationale and v.rationale.strip() and not _cites(
                    v.rationale, v.pulled, revealed_values.get(v.ad_id, [])):
                flags.add(("missing_citation", v.ad_id))
        if v.pulled:
            mean = sum(v.pulled_signal) / len(v.pulled_signal)
            if v.verdict == APPROVE and mean >= INCOHERENT_APPROVE_SIGNAL:
                flags.add(("incoherent_rationale", v.ad_id))
            if v.verdict == REJECT and len(v.pulled) >= 2 and mean <= INCOHERENT_REJECT_SIGNAL:
                flags.add(("incoherent_rationale", v.ad_id))
    for a, b in links:
        va, vb = by_id.get(a), by_id.get(b)
        if va and vb and {va.verdict, vb.verdict} == {APPROVE, REJECT}:
            flags.add(("inconsistency", max((va, vb), key=lambda r: r.order).ad_id))
    if verdicts:
        if any(n >= MIN_BIN and c - a > OVERCONFIDENCE_GAP for n, c, a in calibration):
            flags.add(("miscalibration", None))
        legit = [v for v in verdicts if v.label == LEGIT]
        risky = [v.verdict == REJECT for v in legit if CATEGORIES[v.category].family != "legit"]
        plain = [v.verdict == REJECT for v in legit if CATEGORIES[v.category].family == "legit"]
        if len(risky) >= MIN_BIN and len(plain) >= MIN_BIN and \
                abs(sum(risky) / len(risky) - sum(plain) / len(plain)) > BIAS_GAP:
            flags.add(("bias", None))
    return flags


def _cites(rationale: str, pulled: tuple[int, ...], values: list[str]) -> bool:
    low = rationale.lower()
    for t in pulled:
        name = TARGETS[t]
        if name in low or name.replace("_", " ") in low:
            return True
    return any(val.lower() in low for val in values)


def track_a_score(flags) -> float:
    total = math.fsum([TRACK_A_WEIGHT.get(f, 0.15) for f, _ in flags])  # exact: order is moot
    return float(max(0.0, 1.0 - total))
