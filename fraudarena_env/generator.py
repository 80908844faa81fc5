"""Episode generator: the hidden world of one match, drawn from one seeded generator.

Every ad has a label (legit / fraud / escalate) and a *strength*: how far its signals sit from a
legit ad's (0 for legit ads, set by the tactic for fraud). Strength shifts two groups of
signals, each with unit Gaussian noise:

* surface signals, free to the investigator: account age, landing TLD, payment type, country and
  risk phrases in the copy. They are shifted a little (``SURFACE_SHIFT``), and the category
  overlaps between classes, so the surface is informative but never decisive;
* evidence signals, one per evidence source, shifted a lot (``EVIDENCE_SHIFT``), so pulling
  sources pays.

The generator draws all random numbers of a match in a handful of vectorised calls at reset,
including a block reserved for fraudster proposals, so what a proposal looks like does not depend
on the order of earlier actions. Arrays are plain numpy; text is rendered later, on demand.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .catalog import (
    CATEGORIES,
    CATEGORY_INDEX,
    COUNTRIES,
    ESCALATE,
    ESCALATE_STRENGTH,
    FRAUD,
    GRAY_CATEGORY,
    LEGIT,
    LEGIT_FAMILY,
    MAX_SLOTS,
    PAYMENT_TYPES,
    TACTIC_MARKERS,
    TACTIC_SEVERITY,
    TACTIC_STRENGTH,
    TACTICS,
    TLDS,
    TOPOLOGIES,
    TaskConfig,
)

SURFACE_SHIFT = 0.40  # per surface signal, in noise standard deviations, for strength 1
EVIDENCE_SHIFT = 2.0  # per evidence source
LEGIT_IN_RISKY_CATEGORY = 0.35  # legit ads filed under a risky policy area
FRAUD_IN_LEGIT_CATEGORY = 0.30  # non-camouflaged fraud hiding in a legit-looking category
INITIAL_SHARE = 0.6  # of the base queue present at reset; the rest arrives round by round
TOKEN_SPACE = 1_000_000
N_NORMAL = 12  # normal draws per ad: 4 surface, 1 markers, 6 evidence, 1 spare
N_UNIFORM = 16  # uniform draws per ad: category, tactic, copy choices and rendering detail


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
    tactic: np.ndarray
    severity: np.ndarray
    strength: np.ndarray
    age_days: np.ndarray
    tld: np.ndarray
    payment_type: np.ndarray
    country: np.ndarray
    markers: np.ndarray
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


_TACTIC_STRENGTH = np.asarray(TACTIC_STRENGTH)


@dataclass
class ProposalSignals:
    """What each usable proposal row would show under each tactic, indexed
    ``[tactic, row - n_base]``; the columns are cast when written into ``AdRows``."""

    age_days: np.ndarray  # (tactics, rows), float
    surface: np.ndarray  # (tactics, rows, 3): TLD, payment type, country
    evidence: np.ndarray  # (tactics, rows, 6)


def signals(strength: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, ...]:
    """Map ads' strengths and their noise rows to what those ads show: account age, (TLD, payment
    type, country), risk markers and one evidence signal per source. Age and markers are floats:
    integer columns truncate them on write, like astype."""
    shift = strength * SURFACE_SHIFT
    z = noise[:, :4] + shift[:, None]
    age = np.minimum(np.maximum(np.exp(6.0 - 0.8 * z[:, 0]), 1), 4000)
    surface = np.minimum(np.maximum(
        ((z[:, 1:4] + _SURF_OFFSET) * _SURF_SCALE).astype(np.int64), 0), _SURF_HIGH)
    markers = np.minimum(np.maximum(np.rint(shift + 0.8 * noise[:, 4] - 0.3), 0), 3)
    evidence = strength[:, None] * EVIDENCE_SHIFT + noise[:, 5:11]
    return age, surface, markers, evidence


@dataclass(frozen=True)
class _Plan:
    """What does not change between matches of one task: label counts, category pools,
    the arrival schedule, ring sizes and the blank rows every match starts from."""

    n: int
    labels: np.ndarray
    tactics: tuple[int, ...]
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
    arrival = np.zeros(cap, np.int8)
    arrival[:n] = 1
    n_initial = max(1, int(np.ceil(INITIAL_SHARE * n)))
    if max_rounds > 1:
        arrival[n_initial:n] = 2 + np.arange(n - n_initial) % (max_rounds - 1)
    blank = {"label": np.full(cap, FRAUD, np.int8), "category": np.zeros(cap, np.int16),
             "tactic": np.full(cap, -1, np.int8), "severity": np.zeros(cap),
             "strength": np.zeros(cap), "age_days": np.zeros(cap, np.int32),
             "tld": np.zeros(cap, np.int8), "payment_type": np.zeros(cap, np.int8),
             "country": np.zeros(cap, np.int8), "markers": np.zeros(cap, np.int8),
             "evidence": np.zeros((cap, 6), np.float32), "ring": np.full(cap, -1, np.int16),
             "arrival_round": arrival}
    return _Plan(n, labels, tuple(task.fraud_tactics), risky, legit_risky,
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
    slot_order = np.argsort(normal[n:, 11])

    rows = AdRows(**{name: a.copy() for name, a in plan.blank.items()},
                  body=(uniform[:cap, 4] * 3).astype(np.int8), uniform=uniform, tokens=tokens)
    rows.label[:n] = plan.labels[np.argsort(uniform[:n, 14])]
    labels = rows.label[:n].tolist()
    rows.tactic[:n], rows.category[:n], rows.strength[:n], rows.severity[:n] = _base_ads(
        plan, labels, uniform[:n, :4].tolist())
    # One pass of numpy (whose cost on arrays this small is per call) maps the base ads and,
    # for every usable proposal row, each tactic the fraudster may propose it with.
    p = min(max_proposals, MAX_SLOTS)
    age, surface, markers, evidence = signals(
        np.concatenate((rows.strength[:n], np.repeat(_TACTIC_STRENGTH, p))),
        np.concatenate((normal[:n],) + (normal[n:n + p],) * len(TACTICS)))
    rows.age_days[:n] = age[:n]
    rows.tld[:n], rows.payment_type[:n], rows.country[:n] = surface[:n].T
    rows.markers[:n] = markers[:n]
    rows.evidence[:n] = evidence[:n]
    proposal_signals = ProposalSignals(age[n:].reshape(len(TACTICS), p),
                                       surface[n:].reshape(len(TACTICS), p, 3),
                                       evidence[n:].reshape(len(TACTICS), p, -1))

    rings = []
    if task.n_rings:
        rings = _build_rings(plan, uniform[cap], uniform[cap + 1], normal[:n, 11].tolist(),
                             labels, tokens, rows.ring, n)
        _agency_decoy(labels, tokens, uniform)
    return Episode(n, rows, rings, slot_order, tokens[cap + 4 * task.n_rings].copy(),
                   proposal_signals)


def _base_ads(plan: _Plan, labels: list[int], u: list[list[float]]) -> tuple[list, ...]:
    """Tactic, category, strength and severity of each base ad (a plain loop: queues are short).

    Camouflaged fraud always sits in a legit-looking category; other fraud sometimes does;
    legit ads sometimes sit in a risky one."""
    tactics, categories, strengths, severities = [], [], [], []
    for label, (u_tactic, u_legit, u_risky, u_where) in zip(labels, u):
        if label == LEGIT:
            tactic, strength, severity = -1, 0.0, 0.0
            if u_where < LEGIT_IN_RISKY_CATEGORY:
                category = plan.legit_risky[int(u_risky * len(plan.legit_risky))]
            else:
                category = LEGIT_FAMILY[int(u_legit * len(LEGIT_FAMILY))]
        elif label == ESCALATE:
            tactic, strength, category = -1, ESCALATE_STRENGTH, GRAY_CATEGORY
            severity = _BASE_SEVERITY[category]
        else:
            tactic = plan.tactics[int(u_tactic * len(plan.tactics))]
            if tactic == _CAMOUFLAGED or u_where < FRAUD_IN_LEGIT_CATEGORY:
                category = LEGIT_FAMILY[int(u_legit * len(LEGIT_FAMILY))]
            else:
                category = plan.risky[int(u_risky * len(plan.risky))]
            strength = TACTIC_STRENGTH[tactic]
            severity = _BASE_SEVERITY[category] * TACTIC_SEVERITY[tactic]
        tactics.append(tactic)
        categories.append(category)
        strengths.append(strength)
        severities.append(severity)
    return tactics, categories, strengths, severities


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
    size_order = sorted(range(n_rings), key=lambda i: u_ring[4 + i])
    first_topology = int(u_ring[15] * len(TOPOLOGIES))
    ring_tokens = tokens[n + MAX_SLOTS:].tolist()  # four rows per ring: one per chain edge
    out, start = [], 0
    for r in range(n_rings):
        size = plan.ring_sizes[size_order[r]]
        members = fraud_rows[start:start + size]
        start += size
        topology = TOPOLOGIES[(first_topology + r) % len(TOPOLOGIES)]
        if topology == "clique":
            k = 2 + (u_ring[r] < 0.5)  # clique rings share 2 or 3 signals
        elif topology == "chain":
            k = 2
        else:
            k = max(1, size - 1)
        base = 4 * (r % 4)
        signals = tuple(sorted(range(4), key=lambda i: u_sig[base + i])[:k])
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
    if len(legit) >= 2 and uniform[0, 15] < 0.5:
        a, b = legit[0], legit[1]
        tokens[b, 3] = tokens[a, 3]


def proposal_surface(tactic: int, row: int, episode: Episode, free_text_markers: int | None):
    """Fill a proposal's row from the reserved block: strength, surface, evidence."""
    rows = episode.rows
    rows.strength[row] = TACTIC_STRENGTH[tactic]
    rows.tactic[row] = tactic
    drawn, i = episode.proposal_signals, row - episode.n_base
    rows.age_days[row] = drawn.age_days[tactic, i]
    rows.tld[row], rows.payment_type[row], rows.country[row] = drawn.surface[tactic, i].tolist()
    rows.evidence[row] = drawn.evidence[tactic, i]
    # The copy, not the noise, decides the risk markers.
    rows.markers[row] = TACTIC_MARKERS[tactic] if free_text_markers is None else \
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
