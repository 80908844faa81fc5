"""Template copy as numbers, for a core that steps many matches and builds no text.

A proposal the tensor face makes carries template copy: a category's body and risk phrases
(``machine.template_text``), softened some number of times (``fraudster.drop_one_risk_phrase``,
which takes out one phrase per edit). So its copy is a function of five small integers, packed
into one ``copy_key``; its blurb (a trust phrase or none) and its targeting line are indices too.
``CopyTable`` answers, by key, what the rules would read from the text: its lexical features, its
soften edit, and the rule audit's track B (``audit.track_b``), each worked out from the text once,
the first time a key is met, and gathered as arrays after that. ``track_b_batch`` is track B for
many matches at once, to the bit: every finding is the text function's own, and a plausibility is
the same sum as ``track_b``'s, taken from a table of every combination of findings.

Keys are canonical (the same copy has the same key in any process); the ids ``CopyTable`` gives
them are its own, in the order met, and never leave it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import audit
from .catalog import CATEGORIES, TRUST_PHRASES
from .fraudster import drop_one_risk_phrase
from .lexicon import N_LEXICAL, lexical_features, shingles
from .machine import template_text

_N_BODIES = max(len(c.bodies) for c in CATEGORIES)
_N_STARTS = max(len(c.markers) for c in CATEGORIES)
_N_MARKERS = 128  # risk markers are kept as int8
_N_SOFTENS = 128  # a soften takes a marker: never more than the copy had
_N_AIMS = max(len(c.targeting) for c in CATEGORIES)
_BODIES = np.asarray([len(c.bodies) for c in CATEGORIES])
_STARTS = np.asarray([len(c.markers) for c in CATEGORIES])

# track B's findings as bits: the text's own, in the order ``audit.text_findings`` lists them,
# then repetition (which compares a proposal's copy with the earlier proposals')
TEXT_FINDINGS = ("gibberish", "branding_anomaly", "parameter_mismatch", "market_implausible")
FINDINGS = (*TEXT_FINDINGS, "template_repetition")
_REPEATED = 1 << FINDINGS.index("template_repetition")
# a proposal's plausibility for each set of findings: ``track_b``'s own sum, in its order
PLAUSIBILITY = np.asarray([
    float(max(0.0, 1.0 - sum(audit.TRACK_B_PENALTY[f] for i, f in enumerate(FINDINGS)
                             if bits >> i & 1)))
    for bits in range(1 << len(FINDINGS))])


def template_parts(category, body, u_marker) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Referee._template_copy``'s arithmetic on its arguments (the body and first marker as
    the generator's uniforms give them): the category, the body's index and the first risk
    phrase's, as int arrays."""
    category = np.asarray(category, np.int64)
    return (category, np.asarray(body, np.int64) % _BODIES[category],
            (np.asarray(u_marker) * _STARTS[category]).astype(np.int64))


def template_key(category, body, markers, u_marker) -> np.ndarray:
    """The key of the template copy a proposal is drawn with, unsoftened."""
    category, body, start = template_parts(category, body, u_marker)
    flat = ((category * _N_BODIES + body) * _N_MARKERS + np.asarray(markers, np.int64)) * \
        _N_STARTS + start
    return flat * _N_SOFTENS


def softened(key: np.ndarray) -> np.ndarray:
    """The key of the copy after one more soften edit."""
    return np.asarray(key, np.int64) + 1


def key_category(key: np.ndarray) -> np.ndarray:
    """The category whose template a key's copy comes from."""
    return np.asarray(key, np.int64) // (_N_SOFTENS * _N_STARTS * _N_MARKERS * _N_BODIES)


@lru_cache(maxsize=1 << 14)
def copy_text(key: int) -> str:
    """The copy a key stands for: the template, softened as many times as the key says."""
    flat, softens = divmod(int(key), _N_SOFTENS)
    flat, start = divmod(flat, _N_STARTS)
    flat, markers = divmod(flat, _N_MARKERS)
    category, body = divmod(flat, _N_BODIES)
    text = template_text(category, body, markers, start)
    for _ in range(softens):
        text = drop_one_risk_phrase(text)
    return text


def blurb_text(blurb: int) -> str:
    """A blurb index's text: a trust phrase, or none (-1)."""
    return TRUST_PHRASES[blurb] if blurb >= 0 else ""


def targeting_text(category: int, aim: int) -> str:
    """A targeting index's line, in its category."""
    return CATEGORIES[category].targeting[aim]


class CopyTable:
    """What the rules read from copy, by key (see the module docstring): ``lexical``,
    ``findings`` (track B's text findings, as bits) and ``repeats`` (whether two copies read as
    one template repeated), from each copy's text worked out once, when its key is first met."""

    def __init__(self, capacity: int = 256):
        self._keys: list[int] = []  # by id
        self._known = np.full(1, -1, np.int64)  # the keys met, sorted, and each one's id
        self._known_id = np.zeros(1, np.int64)
        self._lexical = np.zeros((capacity, N_LEXICAL), np.float32)
        self._findings = np.full((capacity, len(TRUST_PHRASES) + 1, _N_AIMS), -1, np.int8)
        # each copy's shingles (track B's word 4-grams) as sorted ids into _vocabulary, -1 after
        self._vocabulary: dict[tuple, int] = {}
        self._shingles = np.full((capacity, 8), -1, np.int64)
        self._n_shingles = np.zeros(capacity, np.int64)

    def ids(self, keys) -> np.ndarray:
        """The table's id of each key (same shape), new keys taken in."""
        keys = np.asarray(keys, np.int64)
        at = np.minimum(np.searchsorted(self._known, keys), len(self._known) - 1)
        new = self._known[at] != keys
        if new.any():
            first = len(self._keys)
            for key in dict.fromkeys(keys[new].tolist()):
                self._take(key)
            # the new keys go into the sorted run where they belong (not a sort of them all)
            added = np.asarray(self._keys[first:], np.int64)
            order = np.argsort(added)
            known, known_id = (self._known, self._known_id) if first else \
                (self._known[:0], self._known_id[:0])  # (the first keys replace the -1 stub)
            where = np.searchsorted(known, added[order])
            self._known = np.insert(known, where, added[order])
            self._known_id = np.insert(known_id, where, first + order)
            at = np.searchsorted(self._known, keys)
        return self._known_id[at]

    def _take(self, key: int) -> int:
        i = len(self._keys)
        if i == len(self._lexical):
            self._grow(2 * i)
        self._keys.append(key)
        text = copy_text(key)
        self._lexical[i] = lexical_features(text)
        grams = sorted(self._vocabulary.setdefault(g, len(self._vocabulary))
                       for g in shingles(text))
        if len(grams) > self._shingles.shape[1]:
            wider = np.full((len(self._shingles), 2 * len(grams)), -1, np.int64)
            wider[:, :self._shingles.shape[1]] = self._shingles
            self._shingles = wider
        self._shingles[i, :len(grams)] = grams
        self._n_shingles[i] = len(grams)
        return i

    def _grow(self, capacity: int) -> None:
        def grown(a: np.ndarray, fill) -> np.ndarray:
            out = np.full((capacity,) + a.shape[1:], fill, a.dtype)
            out[:len(a)] = a
            return out

        self._lexical = grown(self._lexical, 0)
        self._findings = grown(self._findings, -1)
        self._shingles = grown(self._shingles, -1)
        self._n_shingles = grown(self._n_shingles, 0)

    def lexical(self, keys) -> np.ndarray:
        """``lexical_features`` of each key's copy (shape + (N_LEXICAL,))."""
        ids = self.ids(keys)  # (first: a new key may grow the arrays)
        return self._lexical[ids]

    def findings(self, ids: np.ndarray, blurb: np.ndarray, aim: np.ndarray) -> np.ndarray:
        """Track B's text findings (bits of ``TEXT_FINDINGS``) of copies by id, with their blurb
        (-1: none) and targeting index: ``audit.text_findings`` on their text."""
        at = (ids, blurb + 1, aim)
        bits = self._findings[at]
        for i, b, a in set(zip(*(x[bits < 0].tolist() for x in at))):
            key = self._keys[i]
            category = int(key_category(key))
            found = audit.text_findings(category, copy_text(key), blurb_text(b - 1),
                                         targeting_text(category, a))
            self._findings[i, b, a] = sum(1 << TEXT_FINDINGS.index(f) for f in found)
        return self._findings[at] if (bits < 0).any() else bits

    def repeats(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether copy ``a`` repeats copy ``b``'s template, by id, pair by pair:
        ``audit.repeats``, the shingles' Jaccard overlap (shared over the union's size, 1 for
        two copies without words) against ``audit.REPETITION_JACCARD``, for all pairs at once."""
        p = len(a)
        span = len(self._vocabulary) + 1  # pair k's shingles become k * span + id: one sorted run
        offset = np.arange(p)[:, None] * span
        mine, theirs = self._shingles[a], self._shingles[b]
        mine = (mine + offset)[mine >= 0]
        theirs = (theirs + offset)[theirs >= 0]
        shared = np.bincount(mine[np.isin(mine, theirs, assume_unique=True)] // span,
                             minlength=p)
        n_a, n_b = self._n_shingles[a], self._n_shingles[b]
        overlap = np.where((n_a == 0) & (n_b == 0), 1.0,
                           shared / np.maximum(n_a + n_b - shared, 1))
        return overlap >= audit.REPETITION_JACCARD


def track_b_batch(table: CopyTable, keys: np.ndarray, blurb: np.ndarray, aim: np.ndarray,
                  proposed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``audit.track_b`` for many matches: each row holds a match's proposals in the order
    proposed (``proposed``: which entries are proposals; the others are ignored), their copy
    keys, blurb (-1: none) and targeting indices. Returns each proposal's findings (bits of
    ``FINDINGS``) and plausibility, as ``track_b`` gives them (0 where not proposed)."""
    ids = np.zeros(keys.shape, np.int64)
    ids[proposed] = table.ids(keys[proposed])
    bits = np.zeros(keys.shape, np.int64)
    bits[proposed] = table.findings(ids[proposed], blurb[proposed].astype(np.int64),
                                    aim[proposed].astype(np.int64))
    p = keys.shape[1]
    earlier = np.tril(np.ones((p, p), bool), -1)  # [i, j]: j was proposed before i
    both = proposed[:, :, None] & proposed[:, None, :] & earlier
    k, i, j = np.nonzero(both)
    repeated = np.zeros(keys.shape, bool)
    if len(k):
        near = table.repeats(ids[k, i], ids[k, j])
        repeated[k[near], i[near]] = True
    bits |= np.where(repeated, _REPEATED, 0)
    return bits, np.where(proposed, PLAUSIBILITY[bits], 0.0)


# one table for every batched core in the process: a cache (keys are canonical), filled as met
TABLE = CopyTable()


__all__ = ["FINDINGS", "PLAUSIBILITY", "TABLE", "TEXT_FINDINGS", "CopyTable", "blurb_text",
           "copy_text", "key_category", "softened", "targeting_text", "template_key", "template_parts",
           "track_b_batch"]
