"""Episode generator: the hidden world of one match, drawn from one seeded generator.

Every ad has a label (legit / fraud / escalate) and a *kind*: legit, one of the fraud tactics,
or gray-area escalate (``catalog.KINDS``). The kind sets two groups of signals, each with unit
Gaussian noise:

* surface signals, free to the investigator: account age, landing TLD, payment type, country and
  risk phrases in the copy. The kind shifts them by its surface strength (``TACTIC_SURFACE``,
  times ``SURFACE_SHIFT``): blatant fraud shows, camouflaged fraud looks exactly like a legit ad.
  Categories overlap between classes too, so the surface is informative but never decisive;
* evidence signals, one per evidence source, shifted by the kind's ``EVIDENCE_PROFILE``: which
  sources are worth pulling depends on what the investigator suspects.

Organic ads arrive evenly over the rounds, and some carry a trust blurb on their landing page,
legit ones more often than fraud; a fraudster's template proposal is drawn from the very same
distributions for its category and tactic, so nothing but its signals sets it apart.

The generator draws all random numbers of a match in a handful of vectorised calls at reset,
including a block reserved for fraudster proposals, so what a proposal looks like does not depend
on the order of earlier actions. Arrays are plain numpy; text is rendered later, on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

import numpy as np

from .catalog import (
    CATEGORIES,
    CATEGORY_INDEX,
    COUNTRIES,
    ESCALATE,
    ESCALATE_SURFACE,
    EVIDENCE_PROFILE,
    FRAUD,
    GRAY_CATEGORY,
    KIND_ESCALATE,
    LEGIT,
    LEGIT_FAMILY,
    MAX_SLOTS,
    PAYMENT_TYPES,
    SIG_CAMPAIGN,
    SIGNATURE_REUSE_SHIFT,
    TACTIC_SEVERITY,
    TACTIC_SURFACE,
    TACTICS,
    TLDS,
    TOPOLOGIES,
    TRUST_PHRASES,
    TaskConfig,
)

SURFACE_SHIFT = 0.40  # per surface signal, in noise standard deviations, for surface strength 1
MARKER_SHIFT = 1.2  # risk phrases in the copy, per unit of surface strength
LEGIT_IN_RISKY_CATEGORY = 0.30  # legit ads filed under a risky policy area
FRAUD_IN_LEGIT_CATEGORY = 0.35  # non-camouflaged fraud hiding in a legit-looking category
TRUST_BLURB_SHARE = (0.35, 0.2, 0.3)  # organic ads with a trust blurb, by label
TOKEN_SPACE = 1_000_000
N_NORMAL = 12  # normal draws per ad: 4 surface, 1 markers, 6 evidence, 1 slot order
N_UNIFORM = 18  # uniform draws per ad: category, tactic, copy choices and rendering detail


class Z(IntEnum):
    """The columns of an ad's normal draws, by what each moves."""

    AGE = 0  # the surface: account age, TLD, payment type, country (four columns)
    MARKERS = 4  # the risk phrases in its copy
    EVIDENCE = 5  # one column per evidence source (six)
    SLOT_ORDER = 11  # a proposal row's: which slot the k-th arrival takes


class U(IntEnum):
    """The columns of an ad row's uniform draws (``AdRows.uniform``), by what each decides."""

    TACTIC = 0  # a fraud ad's tactic
    LEGIT_CATEGORY = 1  # its category, if filed under a legit-looking one
    RISKY_CATEGORY = 2  # ... under a risky one
    WHERE = 3  # which of the two it is filed under
    BODY = 4  # its template copy's body
    TARGETING = 5  # a proposal's targeting line
    DOMAIN_STEM = 6  # the two stems of its landing domain (this column and the next)
    DETAIL = 8  # evidence fields' details (five columns; which field reads which varies by
    # source)
    MARKER_START = 12  # the first risk phrase its template copy carries (the last detail too)
    TRUST_PHRASE = 13  # which trust phrase its blurb has
    LABEL_ORDER = 14  # the order labels are dealt to organic ads
    DECOY = 15  # row 0's: whether two legit ads share an agency's fingerprint
    BLURB = 16  # whether it carries a trust blurb
    # column 17 is drawn and unused (so every draw stays where it is)


# The two uniform rows past the ad rows (at ``cap`` and ``cap + 1``) build the rings.
RING_SIGNAL_ROW, RING_ROW = 0, 1
R_CLIQUE = 0  # RING_ROW[r]: whether clique ring r shares a third signal
R_SIZE_ORDER = 4  # RING_ROW[4 + i]: the order ring sizes are dealt in
R_TOPOLOGY = 15  # RING_ROW's: the first ring's topology
# RING_SIGNAL_ROW[4 * (r % 4) + i], i = 1..3: which signals ring r shares beyond its payment id


@dataclass
class RingInfo:
    ring_id: int
    topology: str
    members: list[int]  # ad rows
    shared_signals: tuple[int, ...]  # indices into RING_SIGNALS


@dataclass
class AdRows:
    """Per-ad hidden state, one row per ad, in arrival order (base ads, then proposals)."""

    label: np.ndarray
    category: np.ndarray
    tactic: np.ndarray  # index into TACTICS, -1 for legit and gray-area ads
    kind: np.ndarray  # index into KINDS
    severity: np.ndarray
    age_days: np.ndarray
    tld: np.ndarray
    payment_type: np.ndarray
    country: np.ndarray
    markers: np.ndarray
    blurb: np.ndarray  # trust phrase on the landing page: index into TRUST_PHRASES, or -1
    body: np.ndarray
    evidence: np.ndarray  # (n, 6) evidence z-scores, one per source
    uniform: np.ndarray  # (n, N_UNIFORM) rendering detail
    tokens: np.ndarray  # (n, 4) ring-signal tokens
    ring: np.ndarray
    arrival_round: np.ndarray


@dataclass
class Episode:
    n_base: int
    rows: AdRows  # capacity n_base + MAX_SLOTS; rows past n_base are reserved for proposals
    rings: list[RingInfo]
    slot_order: np.ndarray  # the k-th ad to arrive takes slot slot_order[k]
    proposal_ring_tokens: np.ndarray  # infrastructure the fraudster's network proposals share
    proposal_signals: ProposalSignals  # what each usable proposal row shows, per tactic


_SURF_OFFSET = np.asarray([1.6, 1.6, 1.8])
_SURF_SCALE = np.asarray([len(TLDS) / 4.4, len(PAYMENT_TYPES) / 4.4, len(COUNTRIES) / 4.8])
_SURF_HIGH = np.asarray([len(TLDS) - 1, len(PAYMENT_TYPES) - 1, len(COUNTRIES) - 1])
_BASE_SEVERITY = tuple(c.base_severity for c in CATEGORIES)
_CAMOUFLAGED = TACTICS.index("camouflaged")
_PROFILE = np.asarray(EVIDENCE_PROFILE)
_TACTIC_SURFACE = np.asarray(TACTIC_SURFACE)


@dataclass
class ProposalSignals:
    """What each usable proposal row would show under each tactic, indexed
    ``[tactic, row - n_base]``; the columns are cast when written into ``AdRows``."""

    age_days: np.ndarray  # (tactics, rows), float
    surface: np.ndarray  # (tactics, rows, 3): TLD, payment type, country
    markers: np.ndarray  # (tactics, rows), float
    evidence: np.ndarray  # (tactics, rows, 6)


def signals(surface_strength: np.ndarray, evidence_shift: np.ndarray,
            noise: np.ndarray) -> tuple[np.ndarray, ...]:
    """Map ads' surface strengths, evidence shifts (..., 6) and noise rows to what those ads show
(any leading axes: one match's ads, or many matches'):
    account age, (TLD, payment type, country), risk markers and one evidence signal per source.
    Age and markers are floats: integer columns truncate them on write, like astype."""
    shift = surface_strength * SURFACE_SHIFT
    z = noise[..., Z.AGE:Z.MARKERS] + shift[..., None]
    age = np.minimum(np.maximum(np.exp(6.0 - 0.8 * z[..., 0]), 1), 4000)
    surface = np.minimum(np.maximum(
        ((z[..., 1:4] + _SURF_OFFSET) * _SURF_SCALE).astype(np.int64), 0), _SURF_HIGH)
    markers = np.minimum(np.maximum(
        np.rint(surface_strength * MARKER_SHIFT + 0.8 * noise[..., Z.MARKERS] - 0.3), 0), 3)
    evidence = evidence_shift + noise[..., Z.EVIDENCE:Z.SLOT_ORDER]
    return age, surface, markers, evidence


def kind_of(label: int, tactic: int) -> int:
    """The row of ``KINDS`` an ad of this label and tactic belongs to."""
    if label == LEGIT:
        return 0
    if label == ESCALATE:
        return KIND_ESCALATE
    return 1 + tactic


@dataclass(frozen=True)
class _Plan:
    """What does not change between matches of one task: label counts, category pools,
    the arrival schedule, ring sizes and the blank rows every match starts from."""

    n: int
    labels: np.ndarray
    tactic_cdf: tuple[float, ...]
    risky: tuple[int, ...]
    legit_risky: tuple[int, ...]
    ring_sizes: tuple[int, ...]
    blank: dict[str, np.ndarray]  # AdRows fields not drawn at reset, capacity long; copy them


@lru_cache(maxsize=128)
def _plan(task: TaskConfig, max_rounds: int) -> _Plan:
    n = task.queue_size
    cap = n + MAX_SLOTS
    labels = np.repeat(np.asarray([LEGIT, FRAUD, ESCALATE], np.int8),
                       [task.n_legit, task.n_fraud, task.n_escalate])
    risky = tuple(CATEGORY_INDEX[c] for c in task.fraud_categories)
    legit_risky = risky if task.n_escalate == 0 else risky + (GRAY_CATEGORY,)
    # Organic ads arrive evenly over all rounds but the last (the first ones at reset), so the
    # round an ad arrived in says little about whether the fraudster placed it, and the last
    # round is left for what is still pending.
    arrival = np.zeros(cap, np.int8)
    arrival[:n] = 1 + (np.arange(n) * max(1, max_rounds - 1)) // n
    weights = np.asarray(task.tactic_weights, float)
    cdf = tuple(np.cumsum(weights / weights.sum()).tolist())
    blank = {"label": np.full(cap, FRAUD, np.int8), "category": np.zeros(cap, np.int16),
             "tactic": np.full(cap, -1, np.int8), "kind": np.zeros(cap, np.int8),
             "severity": np.zeros(cap),
             "age_days": np.zeros(cap, np.int32),
             "tld": np.zeros(cap, np.int8), "payment_type": np.zeros(cap, np.int8),
             "country": np.zeros(cap, np.int8), "markers": np.zeros(cap, np.int8),
             "blurb": np.full(cap, -1, np.int8),
             "evidence": np.zeros((cap, 6), np.float32), "ring": np.full(cap, -1, np.int16),
             "arrival_round": arrival}
    return _Plan(n, labels, cdf, risky, legit_risky,
                 tuple(_ring_sizes(task.n_rings, task.n_fraud)), blank)


def generate(task: TaskConfig, rng: np.random.Generator, max_rounds: int,
             max_proposals: int = MAX_SLOTS) -> Episode:
    plan = _plan(task, max_rounds)
    n = plan.n
    cap = n + MAX_SLOTS
    # All of the match's randomness, in three draws. Rows past n are reserved for proposals;
    # the two extra uniform rows drive ring construction.
    normal = rng.standard_normal((cap, N_NORMAL))
    uniform = rng.random((cap + 2, N_UNIFORM))
    tokens = rng.integers(0, TOKEN_SPACE, (cap + 4 * task.n_rings + 1, 4))
    slot_order = np.argsort(normal[n:, Z.SLOT_ORDER])

    rows = AdRows(**{name: a.copy() for name, a in plan.blank.items()},
                  body=(uniform[:cap, U.BODY] * 3).astype(np.int8), uniform=uniform, tokens=tokens)
    rows.label[:n] = plan.labels[np.argsort(uniform[:n, U.LABEL_ORDER])]
    labels = rows.label[:n].tolist()
    tactic, category, kind, severity, blurb = _base_ads(
        plan, labels, uniform[:n, U.TACTIC:U.WHERE + 1].tolist(), uniform[:n, U.BLURB].tolist(),
        uniform[:n, U.TRUST_PHRASE].tolist())
    rows.tactic[:n], rows.category[:n], rows.kind[:n] = tactic, category, kind
    rows.severity[:n], rows.blurb[:n] = severity, blurb
    # One pass of numpy (whose cost on arrays this small is per call) maps the base ads and,
    # for every usable proposal row, each tactic the fraudster may propose it with.
    p = min(max_proposals, MAX_SLOTS)
    kinds = np.concatenate((np.asarray(kind, np.intp), np.repeat(np.arange(1, 1 + len(TACTICS)),
                                                                 p)))
    surface_strength = np.concatenate((_KIND_SURFACE[kinds[:n]],
                                       np.repeat(_TACTIC_SURFACE, p)))
    age, surface, markers, evidence = signals(
        surface_strength, _PROFILE[kinds],
        np.concatenate((normal[:n],) + (normal[n:n + p],) * len(TACTICS)))
    rows.age_days[:n] = age[:n]
    rows.tld[:n], rows.payment_type[:n], rows.country[:n] = surface[:n].T
    rows.markers[:n] = markers[:n]
    rows.evidence[:n] = evidence[:n]
    proposal_signals = ProposalSignals(age[n:].reshape(len(TACTICS), p),
                                       surface[n:].reshape(len(TACTICS), p, 3),
                                       markers[n:].reshape(len(TACTICS), p),
                                       evidence[n:].reshape(len(TACTICS), p, -1))

    rings = []
    if task.n_rings:
        rings = _build_rings(plan, uniform[cap + RING_SIGNAL_ROW], uniform[cap + RING_ROW],
                             normal[:n, Z.SLOT_ORDER].tolist(),
                             labels, tokens, rows.ring, n)
        _agency_decoy(labels, tokens, uniform)
    return Episode(n, rows, rings, slot_order, tokens[cap + 4 * task.n_rings].copy(),
                   proposal_signals)


_KIND_SURFACE = np.asarray((0.0,) + TACTIC_SURFACE + (ESCALATE_SURFACE,))


def generate_into(task: TaskConfig, seeds: list[int], max_rounds: int, max_proposals: int,
                  rows: AdRows, matches: np.ndarray) -> list[Episode]:
    """``generate`` for many matches of one task at once, straight into ``rows`` (a state's
    ad rows, with a leading match axis) at ``matches``: match ``matches[j]`` is drawn from
    seed ``seeds[j]`` exactly as ``generate(task, Generator(PCG64(seed)), ...)`` draws it
    (each match's three draws come from its own generator; the arithmetic on them runs on all
    matches together). Returns each match's ``Episode``, its rows views of ``rows``."""
    plan = _plan(task, max_rounds)
    n, k = plan.n, len(seeds)
    cap = n + MAX_SLOTS
    n_tokens = cap + 4 * task.n_rings + 1
    normal = np.empty((k, cap, N_NORMAL))
    uniform = np.empty((k, cap + 2, N_UNIFORM))
    tokens = np.empty((k, n_tokens, 4), np.int64)
    for j, seed in enumerate(seeds):
        rng = np.random.Generator(np.random.PCG64(seed))
        rng.standard_normal(out=normal[j])
        rng.random(out=uniform[j])
        tokens[j] = rng.integers(0, TOKEN_SPACE, (n_tokens, 4))
    slot_order = np.argsort(normal[:, n:, Z.SLOT_ORDER], axis=1)
    m2 = matches[:, None]
    for name, blank in plan.blank.items():
        column = getattr(rows, name)
        column[m2, np.arange(cap)] = blank
        column[matches, cap:] = 0
    rows.body[m2, np.arange(cap)] = (uniform[:, :cap, U.BODY] * 3).astype(np.int8)
    rows.body[matches, cap:] = 0
    label = plan.labels[np.argsort(uniform[:, :n, U.LABEL_ORDER], axis=1)]
    rows.label[m2, np.arange(n)] = label
    tactic, category, kind, severity, blurb = _base_ads_batch(plan, label, uniform[:, :n])
    base = np.arange(n)
    for name, values in (("tactic", tactic), ("category", category), ("kind", kind),
                         ("severity", severity), ("blurb", blurb)):
        getattr(rows, name)[m2, base] = values
    p = min(max_proposals, MAX_SLOTS)
    t = len(TACTICS)
    kinds = np.concatenate((kind, np.broadcast_to(np.repeat(np.arange(1, 1 + t), p), (k, t * p))),
                           axis=1)
    surface_strength = np.concatenate(
        (_KIND_SURFACE[kind], np.broadcast_to(np.repeat(_TACTIC_SURFACE, p), (k, t * p))), axis=1)
    age, surface, markers, evidence = signals(
        surface_strength, _PROFILE[kinds],
        np.concatenate((normal[:, :n],) + (normal[:, n:n + p],) * t, axis=1))
    rows.age_days[m2, base] = age[:, :n]
    rows.tld[m2, base] = surface[:, :n, 0]
    rows.payment_type[m2, base] = surface[:, :n, 1]
    rows.country[m2, base] = surface[:, :n, 2]
    rows.markers[m2, base] = markers[:, :n]
    rows.evidence[m2, base] = evidence[:, :n]
    rows.uniform[m2, np.arange(cap + 2)] = uniform
    rows.uniform[matches, cap + 2:] = 0
    rows.tokens[m2, np.arange(n_tokens)] = tokens
    rows.tokens[matches, n_tokens:] = 0
    out = []
    for j, m in enumerate(matches.tolist()):
        view = AdRows(**{f: getattr(rows, f)[m, :cap] for f in _ROW_FIELDS},
                      uniform=rows.uniform[m, :cap + 2], tokens=rows.tokens[m, :n_tokens])
        labels = label[j].tolist()
        rings = []
        if task.n_rings:
            rings = _build_rings(plan, view.uniform[cap + RING_SIGNAL_ROW],
                                 view.uniform[cap + RING_ROW], normal[j, :n, Z.SLOT_ORDER].tolist(),
                                 labels, view.tokens, view.ring, n)
            _agency_decoy(labels, view.tokens, view.uniform)
        signals_j = ProposalSignals(age[j, n:].reshape(t, p), surface[j, n:].reshape(t, p, 3),
                                    markers[j, n:].reshape(t, p), evidence[j, n:].reshape(t, p, -1))
        out.append(Episode(n, view, rings, slot_order[j],
                           view.tokens[cap + 4 * task.n_rings].copy(), signals_j))
    return out


_ROW_FIELDS = ("label", "category", "tactic", "kind", "severity", "age_days", "tld",
               "payment_type", "country", "markers", "blurb", "body", "evidence", "ring",
               "arrival_round")


def _base_ads_batch(plan: _Plan, label: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, ...]:
    """``_base_ads`` for (matches, ads) arrays of labels and uniform rows: the same choices,
    by the same arithmetic, as arrays."""
    u_tactic, u_legit, u_risky, u_where = (u[..., i] for i in (U.TACTIC, U.LEGIT_CATEGORY,
                                                                 U.RISKY_CATEGORY, U.WHERE))
    legit, escalate = label == LEGIT, label == ESCALATE
    fraud = ~legit & ~escalate
    cdf = np.asarray(plan.tactic_cdf)
    tactic = np.minimum(np.searchsorted(cdf, u_tactic, side="right"), len(cdf) - 1)
    tactic = np.where(fraud, tactic, -1)
    legit_family = np.asarray(LEGIT_FAMILY)
    in_legit = legit_family[(u_legit * len(LEGIT_FAMILY)).astype(np.int64)]
    in_risky = np.asarray(plan.risky)[(u_risky * len(plan.risky)).astype(np.int64)]
    legit_risky = np.asarray(plan.legit_risky)[
        (u_risky * len(plan.legit_risky)).astype(np.int64)]
    category = np.where(
        legit, np.where(u_where < LEGIT_IN_RISKY_CATEGORY, legit_risky, in_legit),
        np.where(escalate, GRAY_CATEGORY,
                 np.where((tactic == _CAMOUFLAGED) | (u_where < FRAUD_IN_LEGIT_CATEGORY),
                          in_legit, in_risky)))
    base_severity = np.asarray(_BASE_SEVERITY)[category]
    severity = np.where(legit, 0.0, np.where(
        escalate, base_severity, base_severity * np.asarray(TACTIC_SEVERITY)[tactic]))
    kind = np.where(legit, 0, np.where(escalate, KIND_ESCALATE, 1 + tactic))
    return tactic, category, kind, severity, blurbs_of(label, u)


def _pick(cdf: tuple[float, ...], u: float) -> int:
    for i, c in enumerate(cdf):
        if u < c:
            return i
    return len(cdf) - 1


def blurbs_of(label: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``blurb_of`` over arrays: for ads of these labels with these uniform rows (..., N_UNIFORM),
    the trust phrase each carries, or -1."""
    share = np.asarray(TRUST_BLURB_SHARE)[label]
    return np.where(u[..., U.BLURB] < share,
                    (u[..., U.TRUST_PHRASE] * len(TRUST_PHRASES)).astype(np.int64), -1)


def blurb_of(label: int, u_blurb: float, u_pick: float) -> int:
    """Whether an ad of this label carries a trust blurb (-1: none), and which one."""
    if u_blurb < TRUST_BLURB_SHARE[label]:
        return int(u_pick * len(TRUST_PHRASES))
    return -1


def _base_ads(plan: _Plan, labels: list[int], u: list[list[float]], u_blurb: list[float],
              u_pick: list[float]) -> tuple[list, ...]:
    """Tactic, category, kind, severity and trust blurb of each base ad (a plain loop: queues
    are short).

    Camouflaged fraud always sits in a legit-looking category; other fraud sometimes does;
    legit ads sometimes sit in a risky one."""
    tactics, categories, kinds, severities, blurbs = [], [], [], [], []
    for label, (u_tactic, u_legit, u_risky, u_where), ub, up in zip(labels, u, u_blurb, u_pick):
        if label == LEGIT:
            tactic, severity = -1, 0.0
            if u_where < LEGIT_IN_RISKY_CATEGORY:
                category = plan.legit_risky[int(u_risky * len(plan.legit_risky))]
            else:
                category = LEGIT_FAMILY[int(u_legit * len(LEGIT_FAMILY))]
        elif label == ESCALATE:
            tactic, category = -1, GRAY_CATEGORY
            severity = _BASE_SEVERITY[category]
        else:
            tactic = _pick(plan.tactic_cdf, u_tactic)
            if tactic == _CAMOUFLAGED or u_where < FRAUD_IN_LEGIT_CATEGORY:
                category = LEGIT_FAMILY[int(u_legit * len(LEGIT_FAMILY))]
            else:
                category = plan.risky[int(u_risky * len(plan.risky))]
            severity = _BASE_SEVERITY[category] * TACTIC_SEVERITY[tactic]
        tactics.append(tactic)
        categories.append(category)
        kinds.append(kind_of(label, tactic))
        severities.append(severity)
        blurbs.append(blurb_of(label, ub, up))
    return tactics, categories, kinds, severities, blurbs


def _ring_sizes(n_rings: int, n_fraud: int) -> list[int]:
    """Rings of three, shrunk to two until at least two fraud ads are left over as decoys."""
    sizes = [3] * n_rings
    i = n_rings - 1
    while sum(sizes) > n_fraud - 2 and any(s > 2 for s in sizes):
        if sizes[i] > 2:
            sizes[i] -= 1
        i = (i - 1) % n_rings
    return sizes


def _build_rings(plan, u_signals, u_rings, order_noise, label, tokens, ring, n) -> list[RingInfo]:
    n_rings = len(plan.ring_sizes)
    fraud_rows = sorted((i for i, lab in enumerate(label) if lab == FRAUD),
                        key=order_noise.__getitem__)
    u_sig = u_signals.tolist()
    u_ring = u_rings.tolist()
    size_order = sorted(range(n_rings), key=lambda i: u_ring[R_SIZE_ORDER + i])
    first_topology = int(u_ring[R_TOPOLOGY] * len(TOPOLOGIES))
    ring_tokens = tokens[n + MAX_SLOTS:].tolist()  # four rows per ring: one per chain edge
    out, start = [], 0
    for r in range(n_rings):
        size = plan.ring_sizes[size_order[r]]
        members = fraud_rows[start:start + size]
        start += size
        topology = TOPOLOGIES[(first_topology + r) % len(TOPOLOGIES)]
        if topology == "clique":
            k = 2 + (u_ring[R_CLIQUE + r] < 0.5)  # clique rings share 2 or 3 signals
        elif topology == "chain":
            k = 2
        else:
            k = max(2, size - 1)
        base = 4 * (r % 4)
        # a ring's money trail (its payment id) is always among what it shares; the rest of
        # its shared signals are drawn
        signals = (0,) + tuple(sorted(range(1, 4), key=lambda i: u_sig[base + i])[:k - 1])
        _share_tokens(topology, members, signals, tokens, ring_tokens[4 * r:4 * r + 4])
        for m in members:
            ring[m] = r
        out.append(RingInfo(r, topology, members, signals))
    return out


def _share_tokens(topology, members, signals, tokens, ring_tokens):
    """Write shared tokens so that the pairs that share a signal are exactly the topology's edges.

    Clique: every member carries the ring's token for every shared signal. Chain: edge j between
    members j and j+1 uses signal j mod k, with a token of its own, so non-neighbours share
    nothing. Hub: spoke i shares signal i-1 with the hub, one signal per spoke.
    """
    if topology == "clique":
        for s in signals:
            for m in members:
                tokens[m, s] = ring_tokens[0][s]
    elif topology == "chain":
        for j in range(len(members) - 1):
            s = signals[j % len(signals)]
            tokens[members[j], s] = tokens[members[j + 1], s] = ring_tokens[j][s]
    else:
        hub = members[0]
        for i, spoke in enumerate(members[1:]):
            s = signals[i % len(signals)]
            tokens[hub, s] = tokens[spoke, s] = ring_tokens[0][s]


def _agency_decoy(label, tokens, uniform):
    """Two legit ads run by one agency share a campaign fingerprint: a decoy for naive linking."""
    legit = [i for i, lab in enumerate(label) if lab == LEGIT]
    if len(legit) >= 2 and uniform[0, U.DECOY] < 0.5:
        a, b = legit[0], legit[1]
        tokens[b, SIG_CAMPAIGN] = tokens[a, SIG_CAMPAIGN]


def proposal_surface(tactic: int, row: int, episode: Episode, free_text_markers: int | None,
                     reuse: int = 0):
    """Fill a proposal's row from the reserved block: kind, surface and evidence as drawn for
    its tactic; ``reuse`` earlier proposals of the same tactic make its evidence read worse."""
    rows = episode.rows
    rows.tactic[row] = tactic
    rows.kind[row] = 1 + tactic
    drawn, i = episode.proposal_signals, row - episode.n_base
    rows.age_days[row] = drawn.age_days[tactic, i]
    rows.tld[row], rows.payment_type[row], rows.country[row] = drawn.surface[tactic, i].tolist()
    rows.evidence[row] = drawn.evidence[tactic, i] + SIGNATURE_REUSE_SHIFT * reuse
    # Template copy carries the risk phrases drawn for the tactic; free text carries its own.
    rows.markers[row] = drawn.markers[tactic, i] if free_text_markers is None else \
        min(free_text_markers, 9)


def surface_z(age, tld, pay, country) -> np.ndarray:
    """Invert ``signals`` (up to bucket width): the latent surface signals behind
    displayed values. Policies use it to read the surface the way the generator wrote it."""
    age = np.asarray(age, float)
    return np.stack([
        (6.0 - np.log1p(age)) / 0.8,
        (np.asarray(tld) + 0.5) * 4.4 / len(TLDS) - 1.6,
        (np.asarray(pay) + 0.5) * 4.4 / len(PAYMENT_TYPES) - 1.6,
        (np.asarray(country) + 0.5) * 4.8 / len(COUNTRIES) - 1.8,
    ], axis=-1)
