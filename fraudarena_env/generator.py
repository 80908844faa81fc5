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
    normal: np.ndarray  # the match's normal draws; proposal rows use theirs when proposed


_SURF_OFFSET = np.asarray([1.6, 1.6, 1.8])
_SURF_SCALE = np.asarray([len(TLDS) / 4.4, len(PAYMENT_TYPES) / 4.4, len(COUNTRIES) / 4.8])
_SURF_HIGH = np.asarray([len(TLDS) - 1, len(PAYMENT_TYPES) - 1, len(COUNTRIES) - 1])
_BASE_SEVERITY = np.asarray([c.base_severity for c in CATEGORIES])
_TACTIC_STRENGTH = np.asarray(TACTIC_STRENGTH)
_TACTIC_SEVERITY = np.asarray(TACTIC_SEVERITY)


def surface_from_latent(strength, normal, uniform=None):
    """Map strength and noise to the visible surface: age, TLD, payment type, country, markers."""
    shift = strength * SURFACE_SHIFT
    z = normal[:, :4] + shift[:, None]
    age = np.minimum(np.maximum(np.exp(6.0 - 0.8 * z[:, 0]), 1), 4000).astype(np.int32)
    idx = np.minimum(np.maximum(((z[:, 1:4] + _SURF_OFFSET) * _SURF_SCALE).astype(np.int64), 0),
                     _SURF_HIGH).astype(np.int8)
    markers = np.minimum(np.maximum(np.rint(shift + 0.8 * normal[:, 4] - 0.3), 0), 3)
    return age, idx[:, 0], idx[:, 1], idx[:, 2], markers.astype(np.int8)


def evidence_from_latent(strength, normal):
    return (strength[:, None] * EVIDENCE_SHIFT + normal[:, 5:11]).astype(np.float32)


@dataclass(frozen=True)
class _Plan:
    """What does not change between matches of one task: label counts, category pools,
    the arrival schedule and ring sizes."""

    n: int
    labels: np.ndarray
    tactics: np.ndarray
    risky: np.ndarray
    legit_family: np.ndarray
    legit_risky: np.ndarray
    arrival: np.ndarray
    ring_sizes: tuple[int, ...]


@lru_cache(maxsize=128)
def _plan(task: TaskConfig, max_rounds: int) -> _Plan:
    n = task.queue_size
    labels = np.repeat(np.asarray([LEGIT, FRAUD, ESCALATE], np.int8),
                       [task.n_legit, task.n_fraud, task.n_escalate])
    risky = np.asarray([CATEGORY_INDEX[c] for c in task.fraud_categories])
    legit_risky = risky if task.n_escalate == 0 else np.append(risky, GRAY_CATEGORY)
    arrival = np.ones(n, np.int8)
    n_initial = max(1, int(np.ceil(INITIAL_SHARE * n)))
    if max_rounds > 1:
        arrival[n_initial:] = 2 + np.arange(n - n_initial) % (max_rounds - 1)
    return _Plan(n, labels, np.asarray(task.fraud_tactics), risky, np.asarray(LEGIT_FAMILY),
                 legit_risky, arrival, tuple(_ring_sizes(task.n_rings, task.n_fraud)))


def generate(task: TaskConfig, rng: np.random.Generator, max_rounds: int) -> Episode:
    plan = _plan(task, max_rounds)
    n = plan.n
    cap = n + MAX_SLOTS
    # All of the match's randomness, in three draws. Rows past n are reserved for proposals;
    # the two extra uniform rows drive ring construction.
    normal = rng.standard_normal((cap, N_NORMAL))
    uniform = rng.random((cap + 2, N_UNIFORM))
    tokens = rng.integers(0, TOKEN_SPACE, (cap + 4 * task.n_rings + 1, 4))
    slot_order = np.argsort(normal[n:, 11])
    u = uniform

    label = np.full(cap, FRAUD, np.int8)
    lab = label[:n]
    lab[:] = plan.labels[np.argsort(u[:n, 14])]
    is_fraud = lab == FRAUD
    tactic = np.full(cap, -1, np.int8)
    tac = plan.tactics[(u[:n, 0] * len(plan.tactics)).astype(np.int64)]
    tactic[:n] = np.where(is_fraud, tac, -1)
    # Category. Camouflaged fraud always sits in a legit-looking category; other fraud
    # sometimes does; legit ads sometimes sit in a risky one.
    pick_legit = plan.legit_family[(u[:n, 1] * len(plan.legit_family)).astype(np.int64)]
    pick_risky = plan.risky[(u[:n, 2] * len(plan.risky)).astype(np.int64)]
    pick_legit_risky = plan.legit_risky[(u[:n, 2] * len(plan.legit_risky)).astype(np.int64)]
    category = np.zeros(cap, np.int16)
    category[:n] = np.where(
        lab == LEGIT,
        np.where(u[:n, 3] < LEGIT_IN_RISKY_CATEGORY, pick_legit_risky, pick_legit),
        np.where(lab == ESCALATE, GRAY_CATEGORY,
                 np.where((tac == 3) | (u[:n, 3] < FRAUD_IN_LEGIT_CATEGORY), pick_legit,
                          pick_risky)))
    strength = np.zeros(cap)
    severity = np.zeros(cap)
    is_esc = lab == ESCALATE
    strength[:n] = np.where(is_fraud, _TACTIC_STRENGTH[tac], np.where(is_esc, ESCALATE_STRENGTH,
                                                                       0.0))
    severity[:n] = np.where(is_fraud | is_esc, _BASE_SEVERITY[category[:n]] *
                            np.where(is_fraud, _TACTIC_SEVERITY[tac], 1.0), 0.0)

    age = np.zeros(cap, np.int32)
    tld = np.zeros(cap, np.int8)
    pay = np.zeros(cap, np.int8)
    country = np.zeros(cap, np.int8)
    markers = np.zeros(cap, np.int8)
    age[:n], tld[:n], pay[:n], country[:n], markers[:n] = surface_from_latent(strength[:n],
                                                                              normal[:n])
    evidence = np.zeros((cap, 6), np.float32)
    evidence[:n] = evidence_from_latent(strength[:n], normal[:n])
    body = (u[:cap, 4] * 3).astype(np.int8)
    arrival = np.zeros(cap, np.int8)
    arrival[:n] = plan.arrival

    ring = np.full(cap, -1, np.int16)
    rings = []
    if task.n_rings:
        rings = _build_rings(plan, u[cap], u[cap + 1], normal[:n, 11], lab, tokens, ring, n)
        _agency_decoy(lab, tokens, u)
    rows = AdRows(label, category, tactic, severity, strength, age, tld, pay, country, markers,
                  body, evidence, uniform, tokens, ring, arrival)
    return Episode(n, rows, rings, slot_order, tokens[cap + 4 * task.n_rings].copy(), normal)


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
    fraud_rows = np.flatnonzero(label == FRAUD)
    fraud_rows = fraud_rows[np.argsort(order_noise[fraud_rows])].tolist()
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
    legit = np.flatnonzero(label == LEGIT)
    if len(legit) >= 2 and uniform[0, 15] < 0.5:
        a, b = legit[0], legit[1]
        tokens[b, 3] = tokens[a, 3]


def proposal_surface(tactic: int, row: int, episode: Episode, free_text_markers: int | None):
    """Fill a proposal's row from the reserved block: strength, surface, evidence."""
    rows = episode.rows
    strength = TACTIC_STRENGTH[tactic]
    normal = episode.normal[row:row + 1]
    age, tld, pay, country, _ = surface_from_latent(np.asarray([strength]), normal)
    rows.strength[row] = strength
    rows.tactic[row] = tactic
    rows.age_days[row] = age[0]
    rows.tld[row] = tld[0]
    rows.payment_type[row] = pay[0]
    rows.country[row] = country[0]
    rows.markers[row] = TACTIC_MARKERS[tactic] if free_text_markers is None else \
        min(free_text_markers, 9)
    rows.evidence[row] = strength * EVIDENCE_SHIFT + normal[0, 5:11]


def surface_z(age, tld, pay, country) -> np.ndarray:
    """Invert ``surface_from_latent`` (up to bucket width): the latent surface signals behind
    displayed values. Policies use it to read the surface the way the generator wrote it."""
    age = np.asarray(age, float)
    return np.stack([
        (6.0 - np.log1p(age)) / 0.8,
        (np.asarray(tld) + 0.5) * 4.4 / len(TLDS) - 1.6,
        (np.asarray(pay) + 0.5) * 4.4 / len(PAYMENT_TYPES) - 1.6,
        (np.asarray(country) + 0.5) * 4.8 / len(COUNTRIES) - 1.8,
    ], axis=-1)
