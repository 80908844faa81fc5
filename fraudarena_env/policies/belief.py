"""What an investigator can infer from what it sees: the generator's own likelihoods, read as a
Bayesian model over the kinds of ad (legit, each fraud tactic, gray-area escalate).

The rules are public (docs/rules.md states them), so a good investigator may know them: this module
turns what it sees of an ad (category, account age, TLD, payment type, country, risk phrases, the
evidence it pulled) into a posterior over ``catalog.KINDS``, the expected reward of each verdict,
and the expected value of pulling one more source (a preposterior analysis by Gauss-Hermite
quadrature). The scripted investigator decides with it; it draws no random numbers.

The functions compute from scratch, vectorised over ads. ``QueueBelief`` keeps their results for
every slot of a queue between decisions and recomputes a slot's only when what it depends on
changed (an ad arrives, evidence comes in), with the same floats as working it all out again
(``benchmarks/bench_scripted.py`` times the difference).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..rules.catalog import (
    CATEGORIES,
    CATEGORY_INDEX,
    COUNTRIES,
    ESCALATE,
    ESCALATE_SURFACE,
    EVIDENCE_PROFILE,
    FRAUD,
    GRAY_CATEGORY,
    KINDS,
    LEGIT,
    LEGIT_FAMILY,
    MAX_PULLS_PER_AD,
    PAYMENT_TYPES,
    TACTIC_SEVERITY,
    TACTIC_SURFACE,
    TACTICS,
    TASKS,
    TLDS,
)
from ..rules.generator import (
    _SURF_OFFSET,
    _SURF_SCALE,
    FRAUD_IN_LEGIT_CATEGORY,
    LEGIT_IN_RISKY_CATEGORY,
    MARKER_SHIFT,
    SURFACE_SHIFT,
)
from ..rules.scoring import verdict_reward

N_KINDS = len(KINDS)
KIND_LABEL = np.asarray([LEGIT] + [FRAUD] * len(TACTICS) + [ESCALATE])
PROFILE = np.asarray(EVIDENCE_PROFILE)  # (kinds, sources)
SURFACE_MU = np.asarray((0.0,) + TACTIC_SURFACE + (ESCALATE_SURFACE,)) * SURFACE_SHIFT
KIND_SEVERITY = np.asarray((0.0,) + TACTIC_SEVERITY + (0.0,))
JUNK_LOGLIK = 4.0  # gibberish copy: all but certainly not a legit advertiser's
_GH_X, _GH_W = np.polynomial.hermite.hermgauss(6)
_GH_X = _GH_X * math.sqrt(2.0)
_GH_W = _GH_W / math.sqrt(math.pi)
_SQRT2 = math.sqrt(2.0)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


def _bucket_loglik(n_buckets: int, offset: float, scale: float) -> np.ndarray:
    """log P(displayed bucket | kind) for one bucketed surface signal: (kinds, buckets)."""
    out = np.zeros((N_KINDS, n_buckets))
    for k, mu in enumerate(SURFACE_MU):
        for b in range(n_buckets):
            lo = -math.inf if b == 0 else b / scale - offset
            hi = math.inf if b == n_buckets - 1 else (b + 1) / scale - offset
            out[k, b] = math.log(max(_phi(hi - mu) - _phi(lo - mu), 1e-9))
    return out


_TLD_LL = _bucket_loglik(len(TLDS), _SURF_OFFSET[0], _SURF_SCALE[0])
_PAY_LL = _bucket_loglik(len(PAYMENT_TYPES), _SURF_OFFSET[1], _SURF_SCALE[1])
_COUNTRY_LL = _bucket_loglik(len(COUNTRIES), _SURF_OFFSET[2], _SURF_SCALE[2])


def _marker_loglik() -> np.ndarray:
    """log P(risk phrases shown | kind), 0..3 (more than three counts as three): (kinds, 4)."""
    out = np.zeros((N_KINDS, 4))
    for k, mu in enumerate(SURFACE_MU / SURFACE_SHIFT * MARKER_SHIFT - 0.3):
        edges = [-math.inf, 0.5, 1.5, 2.5, math.inf]
        for m in range(4):
            p = _phi((edges[m + 1] - mu) / 0.8) - _phi((edges[m] - mu) / 0.8)
            out[k, m] = math.log(max(p, 1e-9))
    return out


_MARKER_LL = _marker_loglik()


@lru_cache(maxsize=16)
def task_prior(task_id: str) -> tuple[np.ndarray, np.ndarray]:
    """log P(kind) and log P(category | kind) for a task's queue, organic ads and the
    fraudster's proposals pooled (proposals: any allowed category, any tactic, equally)."""
    task = TASKS[task_id]
    w = np.asarray(task.tactic_weights, float)
    w = w / w.sum()
    n_prop = task.max_proposals
    allowed = [CATEGORY_INDEX[c] for c in task.allowed_categories]
    risky = [CATEGORY_INDEX[c] for c in task.fraud_categories]
    legit_risky = risky + ([GRAY_CATEGORY] if task.n_escalate else [])
    n_cat = len(CATEGORIES)
    counts = np.zeros(N_KINDS)
    cat_mass = np.zeros((N_KINDS, n_cat))
    counts[0] = task.n_legit
    cat_mass[0, list(LEGIT_FAMILY)] += task.n_legit * (1 - LEGIT_IN_RISKY_CATEGORY) / len(
        LEGIT_FAMILY)
    cat_mass[0, legit_risky] += task.n_legit * LEGIT_IN_RISKY_CATEGORY / len(legit_risky)
    for t in range(len(TACTICS)):
        n = task.n_fraud * w[t]
        counts[1 + t] += n
        share_legit = 1.0 if TACTICS[t] == "camouflaged" else FRAUD_IN_LEGIT_CATEGORY
        cat_mass[1 + t, list(LEGIT_FAMILY)] += n * share_legit / len(LEGIT_FAMILY)
        cat_mass[1 + t, risky] += n * (1 - share_legit) / len(risky)
    counts[-1] += task.n_escalate
    cat_mass[-1, GRAY_CATEGORY] += task.n_escalate
    # proposals: allowed categories evenly, tactics evenly; gray-area proposals are escalate
    fraud_cats = [c for c in allowed if c != GRAY_CATEGORY]
    if GRAY_CATEGORY in allowed:
        n_gray = n_prop / len(allowed)
        counts[-1] += n_gray
        cat_mass[-1, GRAY_CATEGORY] += n_gray
    for t in range(len(TACTICS)):
        n = n_prop * len(fraud_cats) / len(allowed) / len(TACTICS)
        counts[1 + t] += n
        cat_mass[1 + t, fraud_cats] += n / len(fraud_cats)
    log_prior = np.log(np.maximum(counts / counts.sum(), 1e-9))
    cat_ll = np.log(np.maximum(cat_mass / np.maximum(cat_mass.sum(axis=1, keepdims=True),
                                                     1e-12), 1e-6))
    return log_prior, cat_ll


def first_sight_loglik(task_id: str, category: np.ndarray, age_days: np.ndarray,
                       tld: np.ndarray, payment: np.ndarray, country: np.ndarray,
                       markers: np.ndarray, junk: np.ndarray) -> np.ndarray:
    """log P(kind) + log P(what is visible for free | kind), per ad: (n, kinds)."""
    log_prior, cat_ll = task_prior(task_id)
    return first_sight_terms(log_prior + cat_ll[:, category].T, age_days, tld, payment, country,
                             markers, junk)


def first_sight_terms(ll: np.ndarray, age_days: np.ndarray, tld: np.ndarray, payment: np.ndarray,
                      country: np.ndarray, markers: np.ndarray, junk: np.ndarray) -> np.ndarray:
    """``first_sight_loglik`` given its prior and category terms ``ll`` (..., kinds), the rest
    (...,): element by element, so any leading axes (one queue, or a batch of them) give the
    same floats."""
    z_age = (6.0 - np.log(np.maximum(age_days, 1.0))) / 0.8
    ll = ll + SURFACE_MU * z_age[..., None] - SURFACE_MU ** 2 / 2
    ll = ll + _TLD_LL.T[tld] + _PAY_LL.T[payment] + _COUNTRY_LL.T[country]
    ll = ll + _MARKER_LL.T[np.minimum(markers, 3)]
    ll[..., 0] -= JUNK_LOGLIK * junk
    return ll


def evidence_loglik(signal: np.ndarray, pulled: np.ndarray) -> np.ndarray:
    """log P(pulled evidence | kind), up to a constant per ad: (n, kinds)."""
    # -(x - mu)^2 / 2 summed over the pulled sources, dropping the kind-free -x^2 / 2
    return (signal * pulled) @ PROFILE.T - pulled @ _PROFILE_T_SQUARED / 2


_PROFILE_T_SQUARED = PROFILE.T ** 2


def posterior(loglik: np.ndarray) -> np.ndarray:
    z = loglik - loglik.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def reward_table(category: np.ndarray) -> np.ndarray:
    """Expected reward of each verdict for each kind, per ad: (n, verdicts, kinds)."""
    base = np.asarray([c.base_severity for c in CATEGORIES])[category]
    sev = base[:, None] * KIND_SEVERITY[None, :]  # (n, kinds)
    out = np.empty((len(category), 3, N_KINDS))
    for v in range(3):
        for k in range(N_KINDS):
            label = int(KIND_LABEL[k])
            if label == FRAUD:
                r0, r1 = verdict_reward(v, FRAUD, 0.0), verdict_reward(v, FRAUD, 1.0)
                out[:, v, k] = r0 + (r1 - r0) * sev[:, k]
            else:
                out[:, v, k] = verdict_reward(v, label, 0.0)
    return out


_REWARDS_BY_CATEGORY = reward_table(np.arange(len(CATEGORIES)))  # the table of every category


def verdict_values(post: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """Expected reward of approve, reject, escalate per ad: (n, 3)."""
    return np.einsum("nvk,nk->nv", rewards, post)


def _pull_likelihood() -> np.ndarray:
    """lik[t, j, l, k]: the likelihood, under kind k, of the signal source t shows at quadrature
    node l when the ad's true kind is j, scaled so that its largest over k is one."""
    mu = PROFILE  # (kinds, sources)
    # x for true kind j, node l, source t: mu[j, t] + node[l]
    x = mu.T[:, :, None] + _GH_X[None, None, :]  # (t, j, l)
    # log-likelihood of x under each kind k: -(x - mu[k, t])^2 / 2
    ll = -(x[:, :, :, None] - mu.T[:, None, None, :]) ** 2 / 2  # (t, j, l, k)
    ll = ll - ll.max(axis=3, keepdims=True)
    return np.exp(ll)


_PULL_LIK = _pull_likelihood()
# ads at a time, so that a chunk's arrays stay in the cache: the in-place sums below work on
# blocks of 128 * 216 floats (timed on a 2-core box: a fifth to a quarter faster than 32 ads
# summed all at once; 192 spilled and was slower)
_PULL_CHUNK = 128
# below this many ads, summing all at once (fewer numpy calls) beats summing in place (less
# memory): for one ad, in half the time
_IN_PLACE_FROM = 24
_JTL = _PULL_LIK.transpose(1, 0, 2, 3).shape[:3]  # (j, t, l)
_PULL_LIK_BY_KIND = np.ascontiguousarray(_PULL_LIK.transpose(3, 1, 0, 2)).reshape(
    N_KINDS, -1)  # (k, j * t * l)


def pull_gain(post: np.ndarray, rewards: np.ndarray, now: float) -> np.ndarray:
    """Expected gain in verdict value from pulling each source once more, for one ad, available
    or not: (sources,). ``post``: (kinds,); ``rewards``: (verdicts, kinds); ``now``: the value
    of the best verdict today."""
    return pull_gains(post[None], rewards[None], np.asarray([now]))[0]


def pull_gains(post: np.ndarray, rewards: np.ndarray, now: np.ndarray) -> np.ndarray:
    """``pull_gain`` of ``m`` ads at once: (m, sources). Each ad's gain is the same floats
    however many are stacked, and the same as the tests' oracle's ``np.einsum`` formula: the sums
    over kinds are written out in the order ``np.sum`` (sequential) and ``np.einsum`` (two lanes)
    add them, and the last contraction, an einsum over (j, l), gets its operand in the memory
    order (m, j, t, l) that sets its order of summation. Ads go through in chunks that stay in
    the cache."""
    gain = np.empty((len(post), PROFILE.shape[1]))
    for a in range(0, len(post), _PULL_CHUNK):
        chunk = slice(a, a + _PULL_CHUNK)
        val = _best_value_after_pull(post[chunk], rewards[chunk])
        gain[chunk] = np.einsum("mtjl,l,mj->mt", val.transpose(0, 2, 1, 3), _GH_W, post[chunk])
    return gain - now[:, None]


def _best_value_after_pull(post: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    """The value of the best verdict after seeing source t's signal at node l when the true
    kind is j: (m, j, t, l)."""
    # posterior after seeing x, unnormalised: post[k] * lik[t, j, l, k]; kinds first, then
    # the ad, then (j, t, l) flat
    after = _PULL_LIK_BY_KIND[:, None, :] * post.T[:, :, None]  # (k, m, j * t * l)
    norm = after.sum(axis=0)  # over the outer axis: in order, as np.sum adds six in a row
    # sum_k after * R[v, k]: in two lanes (even and odd kinds, each in order), as einsum adds
    if len(post) < _IN_PLACE_FROM:  # all at once, in few numpy calls
        terms = after[:, None] * rewards.T[:, :, :, None]  # (k, v, m, j * t * l)
        value = terms[0::2].sum(axis=0)
        value += terms[1::2].sum(axis=0)
        best = np.maximum(value[0], value[1])
        best = np.maximum(best, value[2], out=best)
    else:  # a verdict at a time, each term written into one scratch block: the same floats
        weight = rewards.T[:, :, :, None]  # (k, v, m, 1)
        best, term = None, np.empty_like(norm)
        for v in range(3):
            lanes = [np.multiply(after[k], weight[k, v]) for k in (0, 1)]
            for k in range(2, N_KINDS):
                lanes[k % 2] += np.multiply(after[k], weight[k, v], out=term)
            value = np.add(*lanes, out=lanes[0])
            best = value if best is None else np.maximum(best, value, out=best)
    best /= norm
    return best.reshape(len(post), *_JTL)


def value_of_source(post: np.ndarray, rewards: np.ndarray, available: np.ndarray) -> np.ndarray:
    """Expected gain in verdict value from pulling each source once more, per ad: (n, sources).
    ``available``: (n, sources) bool; unavailable sources get -inf."""
    now = verdict_values(post, rewards).max(axis=1)
    gain = pull_gains(post, rewards, now)
    gain[~available] = -np.inf
    return gain


class QueueBelief:
    """The belief about every slot of one queue, kept from one decision to the next.

    ``update`` takes what the investigator sees (the free surface and the pulled evidence, per
    slot) and recomputes only what changed: the first-sight terms when an ad arrives or is
    edited and the evidence terms when evidence comes in (each over all slots, with the same
    shapes as the from-scratch functions above: a matrix product's rounding may depend on its
    shape), then the posterior and the verdict values of just the slots whose log-likelihood or
    reward table changed; a slot's best pull is worked out when first asked for, and kept until
    its posterior or its pulls change. Each of these is computed one slot at a time in numpy's
    order, so a slot's floats are the same whether they were computed now, with every slot, or
    kept from an earlier decision (``tests/policies/test_scripted_cache.py`` holds them to the
    from-scratch ones, bit for bit).

    After ``update``, per slot: ``post`` (slots, kinds), and as Python lists (the investigator
    loops over a few pending slots) ``p_bad``, ``best`` (the best verdict), ``sure`` (its value's
    margin over the runner-up's); ``best_pull(slot)`` gives the most valuable pull an ad may
    still have and its gain.
    """

    def __init__(self, n_slots: int):
        self.post = np.zeros((n_slots, N_KINDS))
        self.rewards = np.zeros((n_slots, 3, N_KINDS))
        self.p_bad = [0.0] * n_slots
        self.best = [0] * n_slots
        self.sure = [0.0] * n_slots
        self._top = [0.0] * n_slots  # the best verdict's value
        self._pulled = np.ones((n_slots, PROFILE.shape[1]), bool)
        self._best_pull: list[tuple[float, int] | None] = [None] * n_slots
        self._loglik = np.full((n_slots, N_KINDS), np.nan)
        self._first_sight = self._loglik
        self._first_sight_key = self._evidence_key = None

    def update(self, task_id: str, first_sight: tuple, first_sight_key, signal: np.ndarray,
               pulled: np.ndarray) -> None:
        """``first_sight``: the arguments of ``first_sight_loglik`` after the task id, per slot
        (the first is the category); ``first_sight_key`` stands for them and the task (equal
        keys, equal arguments). ``signal``, ``pulled``: as ``evidence_loglik`` takes them."""
        new_rewards = None
        if first_sight_key != self._first_sight_key:
            self._first_sight = first_sight_loglik(task_id, *first_sight)
            new_rewards = _REWARDS_BY_CATEGORY[first_sight[0]]
            self._first_sight_key, self._evidence_key = first_sight_key, None
        evidence_key = signal.tobytes() + pulled.tobytes()
        if evidence_key == self._evidence_key:
            return
        self._evidence_key = evidence_key
        loglik = self._first_sight + evidence_loglik(signal, pulled)
        # a slot is worked out again when its log-likelihood changed, and when its pulls did
        # (they bound its best pull)
        changed = (loglik != self._loglik).any(axis=1) | (pulled != self._pulled).any(axis=1)
        self._pulled = pulled.copy()
        if new_rewards is not None:
            changed |= (new_rewards != self.rewards).any(axis=(1, 2))
            self.rewards = new_rewards
        self._loglik = loglik
        rows = changed.nonzero()[0].tolist()
        if not rows:
            return
        # one ad changed (a pull): a slice, not a gather
        pick = slice(rows[0], rows[0] + 1) if len(rows) == 1 else rows
        post = posterior(loglik[pick])
        self.post[pick] = post
        values = verdict_values(post, self.rewards[pick])
        for row, legit, v in zip(rows, post[:, 0].tolist(), values.tolist()):
            top = max(v)
            self.p_bad[row] = 1.0 - legit
            self.best[row] = v.index(top)  # the first of equals, as argmax
            self.sure[row] = top - sorted(v)[-2]
            self._top[row] = top
            self._best_pull[row] = None

    def best_pull(self, slot: int) -> tuple[float, int]:
        """The largest expected gain of a pull this ad may still make (``pull_gain`` of the
        sources it has not pulled, while it has pulls left) and the first source that brings
        it; (-inf, 0) when it may pull none."""
        known = self._best_pull[slot]
        if known is None:
            seen = self._pulled[slot].tolist()
            if sum(seen) < MAX_PULLS_PER_AD:
                gain = pull_gain(self.post[slot], self.rewards[slot], self._top[slot]).tolist()
                gain = [-math.inf if p else g for g, p in zip(gain, seen)]
            else:
                gain = [-math.inf]
            top = max(gain)
            known = self._best_pull[slot] = (top, gain.index(top))
        return known
