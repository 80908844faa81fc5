"""The six evidence sources: what pulling a source reveals about an ad, as fields.

Each source has one *headline* field, a monotone function of that source's evidence signal, and a
few detail fields derived from the same signal plus the ad's own rendering noise. Ring tokens sit
in detail fields and look like every other token. The headline maps back to the signal with
``headline_to_signal`` so a policy reading the text face sees what a tensor policy sees.

The fields are game state, not presentation: the rule audit checks a rationale's citations
against the values the investigator's pulls revealed (``MatchMachine._revealed_values``). The
same fields as a line of text are the text face's (``faces.narration.evidence_text``).
"""

from __future__ import annotations

import math

from .catalog import (
    CATEGORIES,
    COUNTRIES,
    DOMAIN_STEMS,
    PAYMENT_TYPES,
    REGISTRARS,
    RING_SIGNAL_PREFIX,
    SIG_AUDIENCE,
    SIG_CAMPAIGN,
    SIG_HOST,
    SIG_PAYMENT,
    TARGETS,
    TLDS,
)
from .generator import U

HEADLINE = {  # source -> (field, scale, offset): value = offset + scale * risk
    "advertiser_history": ("approval_rate", -0.7, 0.98),
    "landing_page": ("scam_similarity", 1.0, 0.0),
    "payment_method": ("chargeback_rate", 0.3, 0.0),
    "targeting_overlap": ("scam_audience_overlap", 1.0, 0.0),
    "campaign_structure": ("spend_anomaly", 1.0, 0.0),
    "policy_classifier": ("unsafe_score", 1.0, 0.0),
}
SIGNAL_OFFSET = 1.0


def signal_to_risk(signal: float) -> float:
    return 1.0 / (1.0 + math.exp(-(signal - SIGNAL_OFFSET)))


def headline(target: str, signal: float) -> tuple[str, float]:
    """The headline field a source shows for an evidence signal: (name, value)."""
    name, scale, offset = HEADLINE[target]
    return name, round(offset + scale * signal_to_risk(signal), 3)


def headline_to_signal(target: str, value: float) -> float:
    """Invert a headline field back to the evidence signal (for text-face policies)."""
    _, scale, offset = HEADLINE[target]
    risk = min(max((value - offset) / scale, 1e-4), 1 - 1e-4)
    return math.log(risk / (1 - risk)) + SIGNAL_OFFSET


def token_text(signal_index: int, value: int) -> str:
    return f"{RING_SIGNAL_PREFIX[signal_index]}{int(value):06d}"


def domain_of(tld: int, uniform) -> str:
    a = DOMAIN_STEMS[int(uniform[U.DOMAIN_STEM] * len(DOMAIN_STEMS))]
    b = DOMAIN_STEMS[int(uniform[U.DOMAIN_STEM + 1] * len(DOMAIN_STEMS))]
    return f"{a}{b}.{TLDS[tld]}"


def surface_fields(rows, row: int) -> dict:
    """What anyone sees for free about an ad."""
    cat = CATEGORIES[int(rows.category[row])]
    return {
        "category": cat.name,
        "policy_area": cat.citation,
        "account_age_days": int(rows.age_days[row]),
        "landing_tld": TLDS[int(rows.tld[row])],
        "payment_type": PAYMENT_TYPES[int(rows.payment_type[row])],
        "country": COUNTRIES[int(rows.country[row])],
        "risk_markers": int(rows.markers[row]),
    }


def evidence_fields(rows, row: int, target_index: int, signal: float | None = None) -> dict:
    """The fields one evidence source reveals for one ad (``signal``: the source's evidence
    signal as it was when pulled, if it has changed since; by default it is read from ``rows``)."""
    target = TARGETS[target_index]
    x = float(rows.evidence[row, target_index]) if signal is None else signal
    risk = signal_to_risk(x)
    # the five detail draws, in column order
    u0, u1, u2, u3, u4 = rows.uniform[row, U.DETAIL:U.DETAIL + 5].tolist()
    name, value = headline(target, x)
    out: dict = {name: value}
    tok = rows.tokens[row]
    if target == "advertiser_history":
        out.update(verified_business=bool(u0 > risk), violations=int(risk * 4 * u1 + 0.5),
                   ads_last_30_days=int(3 + 60 * risk * u2))
    elif target == "landing_page":
        out.update(domain=domain_of(int(rows.tld[row]), rows.uniform[row]),
                   landing_host=token_text(SIG_HOST, tok[SIG_HOST]),
                   ssl_valid=bool(u0 > 0.7 * risk), domain_age_days=int(20 + 3000 * (1 - risk)
                                                                          * u1),
                   registrar=REGISTRARS[min(int(risk * len(REGISTRARS) * (0.5 + u2)),
                                            len(REGISTRARS) - 1)],
                   redirect_hops=int(4 * risk * u3))
    elif target == "payment_method":
        out.update(payment_type=PAYMENT_TYPES[int(rows.payment_type[row])],
                   payment_id=token_text(SIG_PAYMENT, tok[SIG_PAYMENT]),
                   accounts_on_payment=1 + int(8 * risk * u1))
    elif target == "targeting_overlap":
        out.update(audience_fingerprint=token_text(SIG_AUDIENCE, tok[SIG_AUDIENCE]),
                   geo_regions=1 + int(6 * risk * u2))
    elif target == "campaign_structure":
        out.update(campaign_fingerprint=token_text(SIG_CAMPAIGN, tok[SIG_CAMPAIGN]),
                   daily_budget=int(50 + 4000 * risk * u3), ad_sets=1 + int(30 * risk * u4))
    else:
        out.update(classification="unsafe" if risk > 0.5 else "safe")
    return out
