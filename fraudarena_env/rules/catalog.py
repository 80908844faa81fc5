"""The game as data: roles, phases, evidence sources, categories, tactics, tasks and text banks.

Everything the rules need to know about the world is declared here, before any logic, so a reader
knows what kind of game FraudArena is without reading the referee. Nothing here draws random
numbers; the generator and referee index into these tables with the match's own generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

ROLES: tuple[str, ...] = ("fraudster", "investigator", "auditor")
PHASES: tuple[str, ...] = ("fraudster_turn", "investigator_turn", "audit_phase", "done")
PHASE_ROLE = {"fraudster_turn": "fraudster", "investigator_turn": "investigator",
              "audit_phase": "auditor"}

# The six evidence sources an investigator can pull for an ad.
TARGETS: tuple[str, ...] = (
    "advertiser_history",
    "landing_page",
    "payment_method",
    "targeting_overlap",
    "campaign_structure",
    "policy_classifier",
)
TARGET_INDEX = {t: i for i, t in enumerate(TARGETS)}
MAX_PULLS_PER_AD = 3

# Shared infrastructure that can tie ads of one ring together, and the source revealing each.
RING_SIGNALS: tuple[str, ...] = ("payment_id", "landing_host", "audience_fingerprint",
                                 "campaign_fingerprint")
RING_SIGNAL_SOURCE = (TARGET_INDEX["payment_method"], TARGET_INDEX["landing_page"],
                      TARGET_INDEX["targeting_overlap"], TARGET_INDEX["campaign_structure"])
RING_SIGNAL_PREFIX = ("pmt_", "host_", "fp_", "cfg_")
# the ring signals by name: columns of the ad rows' tokens
SIG_PAYMENT, SIG_HOST, SIG_AUDIENCE, SIG_CAMPAIGN = range(len(RING_SIGNALS))
TOPOLOGIES: tuple[str, ...] = ("clique", "chain", "hub")

LABELS: tuple[str, ...] = ("legit", "fraud", "escalate")
LEGIT, FRAUD, ESCALATE = 0, 1, 2
VERDICTS: tuple[str, ...] = ("approve", "reject", "escalate")
APPROVE, REJECT, ESCALATE_V = 0, 1, 2
# The verdict that is right for each label (legit -> approve, fraud -> reject, escalate -> escalate).
CORRECT_VERDICT = (APPROVE, REJECT, ESCALATE_V)
STATUSES: tuple[str, ...] = ("pending", "approved", "rejected", "escalated")
CONFIDENCE_BUCKETS: tuple[float, ...] = (0.55, 0.75, 0.95)


def nearest_bucket(confidence: float) -> float:
    """The confidence bucket closest to ``confidence`` (the first of equals)."""
    best, gap = CONFIDENCE_BUCKETS[0], abs(CONFIDENCE_BUCKETS[0] - confidence)
    for bucket in CONFIDENCE_BUCKETS[1:]:
        if abs(bucket - confidence) < gap:
            best, gap = bucket, abs(bucket - confidence)
    return best


# The tactics of fraud, organic or proposed by the fraudster (the tensor face proposes a
# (category, tactic) pair). A tactic sets how far an ad's free surface sits from a legit ad's
# (account age, TLD, payment type, country, risk phrases), how far each evidence source reads,
# and how much harm the ad does if it runs. Blatant copy is easy to spot and pays the most if it
# survives; camouflaged copy looks like an organic legit ad at first sight, pays the least, and
# only evidence catches it.
TACTICS: tuple[str, ...] = ("blatant", "standard", "subtle", "camouflaged")
TACTIC_SURFACE = (3.3, 1.3, 0.6, 0.0)  # surface shift, in units of generator.SURFACE_SHIFT
TACTIC_SEVERITY = (1.0, 0.75, 0.55, 0.4)  # scales the category's base severity
ESCALATE_SURFACE = 0.7  # gray-area ads look a little risky at first sight
# Evidence shift per source, in noise standard deviations, for each kind of ad (TARGETS order:
# advertiser_history, landing_page, payment_method, targeting_overlap, campaign_structure,
# policy_classifier). Legit ads read 0 everywhere. The classifier reads the copy, so clean
# camouflaged copy barely moves it; account history and payment see through any copy. Gray-area
# ads trip the classifier but have ordinary accounts: telling them from fraud takes both kinds.
KINDS: tuple[str, ...] = ("legit",) + TACTICS + ("escalate",)
EVIDENCE_PROFILE: tuple[tuple[float, ...], ...] = (
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),  # legit
    (2.6, 2.6, 2.3, 1.8, 2.0, 3.0),  # blatant
    (2.3, 2.2, 2.1, 1.6, 1.8, 2.2),  # standard
    (1.9, 1.4, 1.9, 1.2, 1.4, 1.0),  # subtle
    (1.7, 0.9, 1.7, 1.0, 1.1, 0.3),  # camouflaged
    (0.9, 0.8, 0.5, 0.6, 0.6, 2.6),  # escalate (gray area)
)
KIND_ESCALATE = KINDS.index("escalate")
# Reusing a tactic leaves a trail: each earlier proposal of the same tactic makes the next one
# read this much worse on every evidence source (its signature is known).
SIGNATURE_REUSE_SHIFT = 0.6
FRAUDSTER_EDITS: tuple[str, ...] = ("soften_copy", "add_trust_blurb")

AUDIT_TRACK_A: tuple[str, ...] = ("miscalibration", "missing_citation", "incoherent_rationale",
                                  "inconsistency", "bias")
AUDIT_TRACK_B: tuple[str, ...] = ("gibberish", "parameter_mismatch", "template_repetition",
                                  "market_implausible", "branding_anomaly")
# Track A flags that are about the match as a whole rather than one ad.
MATCH_LEVEL_FLAGS = frozenset({"miscalibration", "bias"})


@dataclass(frozen=True)
class Category:
    name: str
    family: str  # legit | fraud | gray | network
    base_severity: float
    difficulty: str
    adult_only: bool
    keywords: tuple[str, ...]
    citation: str
    bodies: tuple[str, ...]
    targeting: tuple[str, ...]
    markers: tuple[str, ...] = field(default=())


_URGENCY = ("Only 3 hours left!", "Act now before it's gone!", "Last chance today only!")
_GUARANTEE = ("100% guaranteed results.", "Risk-free, money back guaranteed!",
              "Results guaranteed or double refund!")
_PRIZE = ("You have been selected as a winner!", "Claim your free prize now!",
          "Free gift for the first 100 visitors!")
_RICHES = ("Turn $250 into $5,000 in a week!", "Earn passive income with zero effort!",
           "10x returns, no experience needed!")
_MIRACLE = ("Doctors don't want you to know this secret!", "Miracle formula cures it overnight!",
            "Lose 20 pounds in 10 days without dieting!")
_SECRECY = ("Send the fee by wire to unlock your funds.", "Keep this offer confidential.",
            "Pay with gift cards for instant approval.")
_AUTHORITY = ("As seen on national TV!", "Officially endorsed by a celebrity you trust!",
              "Approved by the government!")
_DISCOUNT = ("90% off authentic designer goods!", "Brand-new for a fraction of retail!",
             "Official store clearance, 85% off!")

# Phrases the lexical scan counts as visible risk markers, on any face.
RISK_PHRASES: tuple[str, ...] = tuple(
    p.lower().rstrip("!.")
    for group in (_URGENCY, _GUARANTEE, _PRIZE, _RICHES, _MIRACLE, _SECRECY, _AUTHORITY, _DISCOUNT)
    for p in group
)
RISK_WORDS: tuple[str, ...] = ("guaranteed", "free prize", "act now", "miracle", "winner",
                               "risk-free", "wire", "gift card", "10x", "secret", "overnight",
                               "last chance", "passive income", "100%", "double refund")
TRUST_PHRASES: tuple[str, ...] = (
    "Registered business with a published returns policy.",
    "Customer support by phone and email, 30-day returns.",
    "Independent reviews and a verified business address.",
)
TRUST_WORDS: tuple[str, ...] = ("registered business", "returns policy", "30-day returns",
                                "verified business", "customer support", "independent reviews")
MINOR_WORDS: tuple[str, ...] = ("kids", "teens", "children", "minors", "under 18", "students aged")
INJECTION_WORDS: tuple[str, ...] = ("ignore previous", "ignore all previous", "<system>",
                                    "system prompt", "you are now", "disregard the rules")


def _c(name, family, sev, diff, adult, keywords, citation, bodies, targeting, markers=()):
    return Category(name, family, sev, diff, adult, tuple(keywords), citation, tuple(bodies),
                    tuple(targeting), tuple(markers))


CATEGORIES: tuple[Category, ...] = (
    _c("ecommerce", "legit", 0.45, "easy", False, ("shop", "store", "order", "delivery"),
       "RET-GEN-01",
       ("Handmade ceramic mugs from our studio, shipped in recyclable packaging.",
        "Spring sale on outdoor furniture; order online and pick up in store.",
        "Everyday sneakers in twelve colours with free delivery over $50."),
       ("Adults 25-54 interested in home and garden", "Adults 18-40 interested in fashion"),
       _DISCOUNT + _URGENCY),
    _c("saas", "legit", 0.45, "easy", False, ("software", "app", "team", "cloud"), "RET-SW-02",
       ("Project planning software for small teams; try the free tier.",
        "Cloud invoicing app that syncs with your bank and accountant.",
        "Team chat and file sharing built for remote companies."),
       ("Small business owners and managers", "Professionals in operations and finance"),
       _GUARANTEE + _URGENCY),
    _c("local_service", "legit", 0.45, "easy", False, ("local", "service", "book", "home"),
       "RET-LS-03",
       ("Licensed plumbers in your neighbourhood, book a visit online.",
        "Dog walking and pet sitting by insured local carers.",
        "Same-week house cleaning with vetted local staff."),
       ("Homeowners within 15 km", "Adults 30-65 in the metro area"),
       _URGENCY + _GUARANTEE),
    _c("education", "legit", 0.45, "easy", False, ("course", "learn", "class", "skills"),
       "RET-ED-04",
       ("Evening Python course with weekly projects and mentor feedback.",
        "Learn conversational Spanish in small online classes.",
        "Certified first-aid class, one Saturday, hands-on practice."),
       ("Adults 18-45 interested in learning", "Career changers and job seekers"),
       _RICHES + _GUARANTEE),
    _c("fitness", "legit", 0.45, "easy", False, ("fitness", "gym", "training", "health"),
       "RET-FT-05",
       ("Adjustable dumbbells for home workouts, two-year warranty.",
        "Join our gym: open 24/7 with coached group training.",
        "Running shoes fitted in store by trained staff."),
       ("Adults 18-50 interested in fitness", "Runners and gym members"),
       _MIRACLE + _URGENCY),
    _c("fake_giveaway", "fraud", 0.90, "easy", True, ("giveaway", "prize", "win", "free"),
       "FSP-GV-03",
       ("Monthly giveaway: win a new phone by entering your details.",
        "Sweepstakes for loyal customers: a prize every week.",
        "Spin the wheel and win a free shopping voucher."),
       ("Adults 18+ interested in contests", "Adults 18-65 who like sweepstakes"),
       _PRIZE + _URGENCY),
    _c("counterfeit_goods", "fraud", 0.80, "easy", False, ("designer", "brand", "watch", "bag"),
       "IPR-CG-01",
       ("Designer handbags and watches from last season's collections.",
        "Luxury sunglasses, outlet prices on branded frames.",
        "Premium sneakers from top brands, limited stock."),
       ("Adults 18-40 interested in luxury fashion", "Brand-conscious shoppers"),
       _DISCOUNT + _AUTHORITY),
    _c("miracle_cure", "fraud", 0.95, "easy", True, ("health", "cure", "remedy", "wellness"),
       "ADS-HC-07",
       ("Natural remedy for joint pain from a family herbal recipe.",
        "Wellness drops that support better sleep and energy.",
        "Herbal tea blend for healthy digestion."),
       ("Adults 45+ interested in wellness", "Adults with chronic pain interests"),
       _MIRACLE + _GUARANTEE),
    _c("advance_fee", "fraud", 0.85, "easy", True, ("loan", "funds", "grant", "fee"),
       "FSP-AF-02",
       ("Fast personal loans with a simple application.",
        "Small business grants: check your eligibility online.",
        "Unclaimed funds search: find money owed to you."),
       ("Adults 25-65 seeking credit", "Small business owners"),
       _SECRECY + _URGENCY),
    _c("fake_crypto", "fraud", 0.70, "medium", True, ("crypto", "token", "investing", "coin"),
       "ADS-CR-05",
       ("New crypto token launching on a major exchange; join the presale.",
        "Automated crypto trading bot for everyday investors.",
        "Stake your coins and earn weekly investing rewards."),
       ("Adults 21-50 interested in crypto investing", "Retail investors"),
       _RICHES + _GUARANTEE),
    _c("celebrity_endorsement_fraud", "fraud", 0.65, "medium", True,
       ("celebrity", "star", "favourite", "endorsed"), "FSP-IP-04",
       ("The skincare routine your favourite star swears by.",
        "The kitchen gadget a TV chef uses every day.",
        "The diet plan a famous athlete follows."),
       ("Adults 25-55 following entertainment news", "Fans of celebrity lifestyle pages"),
       _AUTHORITY + _MIRACLE),
    _c("clone_brand", "fraud", 0.75, "medium", False, ("official", "store", "brand", "outlet"),
       "IPR-TM-02",
       ("Official outlet store for a well-known outdoor brand.",
        "Authorised reseller of popular headphones.",
        "Factory store for a famous furniture label."),
       ("Adults 18-55 interested in brand names", "Bargain hunters"),
       _DISCOUNT + _URGENCY),
    _c("gray_area_supplements", "gray", 0.40, "medium", True,
       ("supplement", "vitamin", "health", "energy"), "ADS-SUP-03",
       ("Daily vitamin gummies for energy and focus.",
        "Protein and herbal supplement stack for athletes.",
        "Nootropic capsules to support concentration."),
       ("Adults 18-45 interested in supplements", "Gym-goers and students"),
       _MIRACLE + _GUARANTEE),
    _c("network_crypto", "network", 0.60, "hard", True, ("crypto", "wallet", "investing", "coin"),
       "CHM-CIB-01",
       ("Wallet app with rewards for every trade.",
        "Community investing club for new crypto holders.",
        "Earn coin rewards by inviting friends."),
       ("Adults 21-45 interested in crypto investing", "Online investing communities"),
       _RICHES + _URGENCY),
    _c("network_ecommerce", "network", 0.50, "hard", False, ("shop", "deal", "store", "order"),
       "CHM-CIB-02",
       ("Daily deals on electronics, ships within 48 hours.",
        "Flash store for home gadgets and kitchenware.",
        "Bundle offers on phone accessories."),
       ("Adults 18-60 interested in online deals", "Deal seekers"),
       _DISCOUNT + _URGENCY),
    _c("network_fintech", "network", 0.55, "hard", True, ("payment", "card", "credit", "account"),
       "CHM-CIB-03",
       ("Instant virtual cards for online shopping.",
        "Credit builder account with no paperwork.",
        "Cash advance app with same-day payment."),
       ("Adults 21-55 seeking credit", "Gig workers and freelancers"),
       _SECRECY + _GUARANTEE),
    _c("network_health", "network", 0.50, "hard", False, ("health", "clinic", "care", "wellness"),
       "CHM-CIB-04",
       ("Online clinic consultations from home.",
        "Wellness programme with personal coaching.",
        "Discount card for pharmacies nationwide."),
       ("Adults 30-70 interested in health", "Caregivers"),
       _MIRACLE + _SECRECY),
)
CATEGORY_INDEX = {c.name: i for i, c in enumerate(CATEGORIES)}
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
LEGIT_FAMILY = tuple(i for i, c in enumerate(CATEGORIES) if c.family == "legit")
GRAY_CATEGORY = CATEGORY_INDEX["gray_area_supplements"]

# Surface vocabularies, ordered from the most legit-looking to the most suspicious value.
TLDS: tuple[str, ...] = ("com", "org", "co", "net", "io", "store", "shop", "site", "xyz", "top",
                         "click")
PAYMENT_TYPES: tuple[str, ...] = ("corporate_card", "bank_account", "credit_card", "debit_card",
                                  "virtual_card", "prepaid_card", "wire_transfer", "crypto")
REGISTRARS: tuple[str, ...] = ("Gandi", "Cloudflare", "Namecheap", "GoDaddy", "Porkbun",
                               "NameSilo", "Epik", "Njalla (privacy)", "Openprovider")
COUNTRIES: tuple[str, ...] = ("US", "GB", "DE", "CA", "AU", "NL", "SG", "EE", "AE", "GE")
DOMAIN_STEMS: tuple[str, ...] = ("bright", "north", "maple", "cedar", "harbor", "summit", "nova",
                                 "pixel", "urban", "lumen", "orbit", "river", "atlas", "ember")


@dataclass(frozen=True)
class TaskConfig:
    task_id: str
    title: str
    n_legit: int
    n_fraud: int
    n_escalate: int
    n_rings: int
    tactic_weights: tuple[float, ...]  # how often organic fraud uses each tactic (TACTICS order)
    fraud_categories: tuple[str, ...]  # risky categories the generated fraud may sit in
    action_budget: int
    max_rounds: int
    max_proposals: int
    max_fraudster_actions_per_turn: int
    max_investigator_actions_per_turn: int
    allowed_categories: tuple[str, ...]

    @cached_property
    def queue_size(self) -> int:
        return self.n_legit + self.n_fraud + self.n_escalate


_LEGIT_NAMES = tuple(CATEGORIES[i].name for i in LEGIT_FAMILY)
_EASY_FRAUD = ("fake_giveaway", "counterfeit_goods", "miracle_cure", "advance_fee")
_MEDIUM_FRAUD = ("fake_crypto", "celebrity_endorsement_fraud", "clone_brand")
_NETWORK = ("network_crypto", "network_ecommerce", "network_fintech", "network_health")

# Legit-majority queues, as in real ad review: a wrongly rejected advertiser is lost revenue, so
# rejecting on sight is a losing rule. The ladder: more ads, subtler fraud, gray areas, rings and
# a tighter budget per ad (task_1 about 2.5 actions per ad it can expect, task_3_unseen 1.75).
TASKS: dict[str, TaskConfig] = {
    "task_1": TaskConfig("task_1", "Basic Ad Triage", 10, 3, 0, 0, (0.15, 0.3, 0.3, 0.25),
                         _EASY_FRAUD, 40, 4, 3, 3, 12,
                         _LEGIT_NAMES + ("fake_giveaway", "miracle_cure")),
    "task_2": TaskConfig("task_2", "Sophisticated Fraud Under Budget Pressure", 12, 4, 2, 0,
                         (0.1, 0.35, 0.3, 0.25), _EASY_FRAUD + _MEDIUM_FRAUD, 48, 4, 5, 3, 14,
                         _LEGIT_NAMES + ("fake_giveaway", "miracle_cure", "counterfeit_goods",
                                         "advance_fee", "fake_crypto",
                                         "celebrity_endorsement_fraud", "clone_brand",
                                         "gray_area_supplements")),
    "task_3": TaskConfig("task_3", "Coordinated Fraud Network Detection", 14, 6, 3, 2,
                         (0.1, 0.25, 0.3, 0.35), _EASY_FRAUD + _MEDIUM_FRAUD + _NETWORK, 54, 5,
                         6, 3, 13, CATEGORY_NAMES),
    "task_3_unseen": TaskConfig("task_3_unseen", "Held-out Coordinated Fraud Networks", 15, 8,
                                2, 3, (0.05, 0.25, 0.3, 0.4),
                                _EASY_FRAUD + _MEDIUM_FRAUD + _NETWORK, 56, 5, 7, 3, 14,
                                CATEGORY_NAMES),
}
TASK_IDS: tuple[str, ...] = tuple(TASKS)
MATCH_KNOBS: tuple[str, ...] = ("max_rounds", "max_proposals", "max_fraudster_actions_per_turn",
                                "max_investigator_actions_per_turn", "allowed_categories")
MAX_SLOTS = 32  # queue slots on every task, so one policy can train across tasks
AD_IDS: tuple[str, ...] = tuple(f"ad_{s + 1:03d}" for s in range(MAX_SLOTS))  # by slot
AD_SLOT = {a: s for s, a in enumerate(AD_IDS)}
MAX_AUDITOR_ACTIONS = 48
