"""The scripted investigator over many matches at once: ``BatchedScriptedInvestigator``.

``ScriptedInvestigator`` decides for one match at a time, in Python, over a few pending slots.
Training a fraudster asks it for a move in hundreds of matches at every step, so this module works
out the same decisions for ``k`` matches in one pass of array code: the reading of every slot of
every match, the belief about it (``belief``'s formulas, over a leading match axis), and the rules
of play as masks and ``argmax`` over slots (the first of equals, as the scalar loops take it).

Exactly the scalar investigator's choices, state by state (``tests/policies/test_batched.py``):
every float behind a choice is computed by the same operations in the same order. Element-wise
arithmetic does not care how many matches are stacked; the two reductions that might (the evidence
matrix product, whose rounding depends on its shape, and the value of a pull's contractions) run
per match on the shapes the scalar code uses, or were checked to give the same bits stacked.

Per match it keeps what only changes now and then: each ad's first sight (read again where those
columns of the vector changed), each slot's posterior and verdict values (where its
log-likelihood or category changed) and the value of its best pull, the one costly step (where
those or its pulls changed, and only in matches where a pull may be made). A call costs about
250 us plus 15-20 us per match (numpy's per-call costs, over every slot), so a batch of fewer than
``small_batch`` matches is decided match by match instead, each by a ``ScriptedInvestigator`` of
its own (the same choices; it keeps its own beliefs, brought up to date with whatever state it
is shown).
"""

from __future__ import annotations

import numpy as np

from ..faces.encoding import EVIDENCE_SCALE, decode_surface
from ..rules.action_catalog import I_END, I_LINK, I_VERDICT, N_CONF, N_VERDICT_OPS, PAIRS
from ..rules.catalog import CONFIDENCE_BUCKETS, MAX_PULLS_PER_AD, MAX_SLOTS, TARGETS
from ..rules.lexicon import reads_as_gibberish
from . import belief
from .base import SPANS, BatchPolicy
from .scripted import (
    _CORRECT_KINDS,
    _LOOK_ORDER,
    _RING_SOURCES,
    _TASK_LIST,
    ScriptedInvestigator,
    _InvGlobals,
)

S = MAX_SLOTS
N_T = len(TARGETS)
_BUCKETS = np.asarray(CONFIDENCE_BUCKETS)
_NO = -np.inf


def _view(vectors: np.ndarray, name: str) -> np.ndarray:
    """A named view of every row of a batch of investigator vectors: (k, *shape)."""
    a, b, shape = SPANS["investigator"][name]
    return vectors[:, a:b].reshape((len(vectors), *shape))


class FirstSight:
    """What is visible for free of every ad in each of ``k`` matches (``Reading``'s first-sight
    fields, slots on the second axis), and its log-likelihood, each on its match's task."""

    def __init__(self, vectors: np.ndarray):
        self.task = vectors[:, _InvGlobals.task].argmax(axis=1)
        self.present = _view(vectors, "present") > 0.5
        self.category = _view(vectors, "category").argmax(axis=2)
        surface = decode_surface(_view(vectors, "surface"))
        tld, payment, country, markers = (surface[name].astype(np.intp) for name in
                                          ("landing_tld", "payment_type", "country",
                                           "risk_markers"))
        junk = self.present & reads_as_gibberish(_view(vectors, "lexical"))
        log_prior, cat_ll = _task_priors()
        self.loglik = belief.first_sight_terms(
            log_prior[self.task][:, None, :] + cat_ll[self.task[:, None], :, self.category],
            surface["account_age"], tld, payment, country, markers, junk)


class BatchReading:
    """What the investigator sees in each of ``k`` matches, as arrays with a leading match axis:
    the evidence it pulled (slots on the second axis), which ads are pending and the numbers
    ``decide`` takes. ``present`` and ``category`` come from the matches' ``FirstSight``."""

    def __init__(self, vectors: np.ndarray, present: np.ndarray, category: np.ndarray):
        g, k = _InvGlobals, len(vectors)
        self.task = vectors[:, g.task].argmax(axis=1)
        self.present, self.category = present, category
        self.pending = vectors[:, g.pending] > 0.5
        self.pulled = _view(vectors, "pulled") > 0.5
        evidence = np.round(_view(vectors, "evidence") * EVIDENCE_SCALE, 2) * self.pulled
        self.signal = evidence.astype(np.float64)
        numbers = _TASK_NUMBERS[self.task]
        seen = vectors[:, [g.budget, g.actions_left, g.rounds_remaining]].astype(np.float64)
        self.budget, self.actions_left, self.rounds_remaining = np.round(
            seen * numbers[:, :3]).T
        self.expected, self.rings = numbers[:, 3], numbers[:, 4] > 0
        # unlinked pairs that visibly share infrastructure (read only in the matches where some
        # ads collide: few do)
        collide = np.flatnonzero(np.count_nonzero(vectors[:, g.collisions], axis=1))
        self.pairs = np.zeros((k, g.pair_shared.stop - g.pair_shared.start), bool)
        self.pairs[collide] = (vectors[collide, g.pair_shared] != 0) & \
            (vectors[collide, g.pair_linked] < 0.5)
        self.k = k


# What the scalar investigator reads of each task (``_TASK_LIST``, in the vector's task order):
# its action budget, turn and round caps, the ads its queue will hold and whether it has rings.
_TASK_NUMBERS = np.asarray([(t.action_budget, t.max_investigator_actions_per_turn, t.max_rounds,
                             t.queue_size + t.max_proposals, t.n_rings > 0)
                            for t in _TASK_LIST], np.float64)


# The columns a match's first sight is read from (its task's among them): read again only
# where they changed.
_FIRST_SIGHT_COLUMNS = [*_InvGlobals.first_sight_parts, _InvGlobals.task]


def _task_priors(kept: dict = {}) -> tuple[np.ndarray, np.ndarray]:  # noqa: B006 (a cache)
    """``belief.task_prior`` of every task, stacked: (tasks, kinds), (tasks, kinds, categories);
    stacked again only when ``task_prior`` gives other arrays."""
    priors = [belief.task_prior(t.task_id) for t in _TASK_LIST]
    key = [id(a) for pair in priors for a in pair]
    if kept.get("key") != key:
        kept.update(key=key, stacked=(np.stack([p for p, _ in priors]),
                                      np.stack([c for _, c in priors])))
    return kept["stacked"]


class BatchedScriptedInvestigator(BatchPolicy):
    """``ScriptedInvestigator``'s decisions in ``num_envs`` matches, any ``k`` of them at a time
    (``BatchPolicy``). Per match it keeps what it last read of the ads' first sight and the
    value of each slot's best pull, each checked against the state it is shown (read again
    where the vector changed, worked out again where the slot's belief did), so any match may
    be shown any state; ``reset_envs`` only forgets."""

    role = "investigator"

    def __init__(self, num_envs: int, rules: type[ScriptedInvestigator] = ScriptedInvestigator,
                 small_batch: int = 4):
        self.rules = rules  # where the prices and thresholds are read, at every decision
        self.small_batch = small_batch
        self.masked_picks = 0
        self._one: list[ScriptedInvestigator | None] = [None] * num_envs  # made when needed
        self._seen = np.full((num_envs, sum(c.stop - c.start for c in _FIRST_SIGHT_COLUMNS)),
                             np.nan, np.float32)  # the first-sight columns last read
        self._first_sight = np.zeros((num_envs, S, belief.N_KINDS))
        self._present = np.zeros((num_envs, S), bool)
        self._read_category = np.zeros((num_envs, S), np.intp)
        self._loglik = np.full((num_envs, S, belief.N_KINDS), np.nan)
        self._post = np.zeros((num_envs, S, belief.N_KINDS))
        self._values = np.zeros((num_envs, S, 3))
        self._category = np.zeros((num_envs, S), np.intp)
        self._pulled = np.zeros((num_envs, S, N_T), bool)
        self._gain_top = np.zeros((num_envs, S))
        self._gain_at = np.zeros((num_envs, S), np.intp)
        self._gain_known = np.zeros((num_envs, S), bool)

    def reset_envs(self, envs, seeds=None) -> None:
        """Forget what was kept about these matches (it draws no random numbers: no seed)."""
        self._seen[envs] = np.nan
        self._loglik[envs] = np.nan
        self._gain_known[envs] = False

    def act_batch(self, envs, vectors, masks) -> np.ndarray:
        envs = np.asarray(envs, np.intp)
        if len(envs) < self.small_batch:
            return self._act_one_by_one(envs, vectors, masks)
        vectors = np.asarray(vectors)
        first_sight = self._read_first_sight(envs, vectors)
        r = BatchReading(vectors, self._present[envs], self._read_category[envs])
        loglik = first_sight + belief.evidence_loglik(r.signal, r.pulled)
        b = self._beliefs(envs, r, loglik)
        action = self._choose(envs, r, b)
        legal = np.asarray(masks)[np.arange(r.k), action].astype(bool)
        self.masked_picks += int(np.count_nonzero(~legal))
        return np.where(legal, action, I_END).astype(np.int64)

    def _beliefs(self, envs: np.ndarray, r: BatchReading, loglik: np.ndarray) -> _Beliefs:
        """The belief about every slot: its posterior and verdict values worked out again where
        its log-likelihood or category changed (row by row, the same floats as all at once),
        its best pull forgotten where those or its pulls did."""
        m, s = ((loglik != self._loglik[envs]).any(axis=2)
                | (r.category != self._category[envs])).nonzero()
        changed = (r.pulled != self._pulled[envs]).any(axis=2)
        changed[m, s] = True
        self._gain_known[envs] &= ~changed
        self._loglik[envs], self._pulled[envs], self._category[envs] = \
            loglik, r.pulled, r.category
        if len(m):
            e = envs[m]
            post = belief.posterior(loglik[m, s])
            self._post[e, s] = post
            self._values[e, s] = belief.verdict_values(
                post, belief._REWARDS_BY_CATEGORY[r.category[m, s]])
        return _Beliefs(r.k, self._post[envs].reshape(-1, belief.N_KINDS),
                        self._values[envs].reshape(-1, 3))

    def _read_first_sight(self, envs: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """The first-sight log-likelihood of every slot, (k, slots, kinds), read again only in
        the matches whose first-sight columns changed (an ad arrived or was edited)."""
        seen = np.concatenate([vectors[:, c] for c in _FIRST_SIGHT_COLUMNS], axis=1)
        new = np.flatnonzero((seen != self._seen[envs]).any(axis=1))
        if len(new):
            e = envs[new]
            read = FirstSight(vectors[new])
            self._seen[e] = seen[new]
            self._first_sight[e], self._present[e], self._read_category[e] = \
                read.loglik, read.present, read.category
        return self._first_sight[envs]

    def _act_one_by_one(self, envs: np.ndarray, vectors, masks) -> np.ndarray:
        """A small batch, match by match, each by its own scalar investigator."""
        action = np.empty(len(envs), np.int64)
        for k, e in enumerate(envs.tolist()):
            player = self._one[e]
            if player is None:
                player = self._one[e] = self.rules()
            refused = player.masked_picks
            action[k] = player.act_tensor(vectors[k], masks[k])
            self.masked_picks += player.masked_picks - refused
        return action

    def _gains(self, envs: np.ndarray, rows: np.ndarray, r: BatchReading, b: _Beliefs):
        """The best pull of every pending slot of the matches ``rows`` (their value of a pull
        is needed): (k, slots) gain and source, worked out where not kept."""
        need = np.zeros((r.k, S), bool)
        need[rows] = r.pending[rows] & ~self._gain_known[envs[rows]]
        m, s = need.nonzero()
        if len(m):
            flat = m * S + s
            gain = belief.pull_gains(b.post[flat], belief._REWARDS_BY_CATEGORY[r.category[m, s]],
                                     b.top[flat])
            pulled = r.pulled[m, s]
            gain[pulled] = _NO
            gain[pulled.sum(axis=1) >= MAX_PULLS_PER_AD] = _NO
            e = envs[m]
            self._gain_top[e, s] = gain.max(axis=1)
            self._gain_at[e, s] = gain.argmax(axis=1)
            self._gain_known[e, s] = True
        return self._gain_top[envs], self._gain_at[envs]

    def _choose(self, envs: np.ndarray, r: BatchReading, b: _Beliefs) -> np.ndarray:
        """``ScriptedInvestigator.decide`` for every match at once, as action indices."""
        p = self.rules
        k, rows = r.k, np.arange(r.k)
        action = np.full(k, I_END, np.int64)
        undecided = r.budget > 0
        # 1. link pairs that visibly share infrastructure and both look bad
        m = np.flatnonzero(undecided & r.pairs.any(axis=1))  # few matches see shared signals
        bad = b.p_bad[m] > p.LINK_P_BAD
        link = r.pairs[m] & bad[:, PAIRS[:, 0]] & bad[:, PAIRS[:, 1]]
        linking = np.zeros(k, bool)
        linking[m] = link.any(axis=1)
        action[m] = np.where(linking[m], I_LINK + link.argmax(axis=1), action[m])
        undecided &= ~linking & r.pending.any(axis=1)
        # 2. the budget kept for what is still to come (as the scalar decide works it out)
        needs = r.pending & (b.best != 0)
        n_verdicts = needs.sum(axis=1)
        to_come = np.maximum(0, r.expected.astype(np.int64) - r.present.sum(axis=1))
        spare = r.budget - (n_verdicts + p.KEEP_PER_AD * to_come + 2)
        price = p.PULL_PRICE + p.SCARCITY_PRICE * (1.0 + to_come) / np.maximum(spare, 1.0)
        can_pull = (spare >= 1) & ((r.rounds_remaining > 1) | (r.actions_left > n_verdicts))
        pricing = can_pull & (r.actions_left > n_verdicts)
        gain_top, gain_at = self._gains(envs, np.flatnonzero(undecided & can_pull), r, b)
        # 3. stop harm first: reject or escalate the surest settled ad (no pull worth its price)
        settled = needs & (~pricing[:, None] | (gain_top <= price[:, None]))
        harm = undecided & settled.any(axis=1)
        slot = _surest(settled, b.sure)
        look = _ring_look(r, b, rows, slot, harm & r.rings & (spare >= 1) &
                          (r.actions_left >= 2), p)
        looking = look >= 0
        action[looking] = slot[looking] * N_T + look[looking]
        ruling = harm & ~looking
        undecided &= ~harm
        # 4. pull the most valuable source while it is worth its price
        pending_gain = np.where(r.pending, gain_top, _NO)  # (kept gains of decided ads are old)
        at = pending_gain.argmax(axis=1)
        pull = undecided & can_pull & (pending_gain[rows, at] > price)
        action[pull] = at[pull] * N_T + gain_at[rows, at][pull]
        undecided &= ~pull
        # 5. approve what is settled, with budget to spare; else leave it to the end
        ready = r.pending & ((b.best != 0) | (spare >= 1)[:, None])
        approving = undecided & ready.any(axis=1)
        _verdicts(action, b, ruling | approving, np.where(ruling, slot, _surest(ready, b.sure)))
        return action


class _Beliefs:
    """The belief about every slot of ``k`` matches: flat (k * slots) rows for the formulas,
    (k, slots) for the rules of play."""

    def __init__(self, k: int, post: np.ndarray, values: np.ndarray):
        self.post, self.values = post, values
        # max, argmax (the first of equals) and the runner-up of three values, by selection
        # (exact, as the scalar max, index and sort), column by column: fast on many rows
        v0, v1, v2 = values.T
        top = np.maximum(np.maximum(v0, v1), v2)
        self.top = top
        self.best = np.where(v0 == top, 0, np.where(v1 == top, 1, 2)).reshape(k, S)
        runner_up = np.maximum(np.minimum(v0, v1), np.minimum(np.maximum(v0, v1), v2))
        self.sure = (top - runner_up).reshape(k, S)
        self.p_bad = (1.0 - post[:, 0]).reshape(k, S)
        self.k = k


def _surest(candidates: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """Per match, the candidate slot with the largest margin, the first of equals (the scalar
    loop's stable sort by ``-sure``)."""
    return np.where(candidates, sure, _NO).argmax(axis=1)


def _ring_look(r: BatchReading, b: _Beliefs, rows, slot, may, p) -> np.ndarray:
    """In ring tasks, the source a bad ad's infrastructure is looked at through before it is
    rejected (every bad ad looks at the same sources first, so ring members collide); -1 for
    none."""
    pulled = r.pulled[rows, slot]  # (k, sources)
    may = may & (b.p_bad[rows, slot] > p.LINK_P_BAD)
    may &= pulled[:, _RING_SOURCES].sum(axis=1) < p.RING_LOOKS
    may &= pulled.sum(axis=1) < MAX_PULLS_PER_AD
    free = ~pulled[:, _LOOK_ORDER]
    first = free.argmax(axis=1)
    return np.where(may & free.any(axis=1), np.asarray(_LOOK_ORDER)[first], -1)


def _verdicts(action: np.ndarray, b: _Beliefs, which: np.ndarray, slot: np.ndarray) -> None:
    """The verdict op, at the confidence bucket nearest the posterior chance that it is right, on
    ``slot`` of the matches ``which``."""
    m = np.flatnonzero(which)
    if not len(m):
        return
    s = slot[m]
    verdict = b.best[m, s]
    post = b.post[m * S + s]
    # the posterior of the kinds the verdict is right for, summed in order, as np.sum adds a few
    p = [post[:, kinds.nonzero()[0]] for kinds in _CORRECT_KINDS]
    right = [q[:, 0] for q in p]
    for v, q in enumerate(p):
        for j in range(1, q.shape[1]):
            right[v] = right[v] + q[:, j]
    right = np.choose(verdict, right)
    bucket = np.abs(_BUCKETS[None, :] - right[:, None]).argmin(axis=1)
    action[m] = I_VERDICT + s * N_VERDICT_OPS + verdict * N_CONF + bucket


__all__ = ["BatchReading", "BatchedScriptedInvestigator", "FirstSight"]
