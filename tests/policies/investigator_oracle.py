"""The scripted investigator as it was before it kept its beliefs between decisions: every
decision reads the whole observation and works out the belief of every pending ad from scratch.

The oracle for ``ScriptedInvestigator``, which caches per slot what does not change between two
decisions of a match: both must choose the same action in every state, with the same floats
behind each choice. The numbers come from ``belief``'s from-scratch functions (first-sight and
evidence likelihoods, posterior, verdict values); the value of a pull is the one formula kept
here as it was written, with its quadrature tables rebuilt on every call, so that a change to the
package's faster version shows up as a difference.
"""

from __future__ import annotations

import numpy as np

from fraudarena_env.policies import belief
from fraudarena_env.policies.scripted import (
    _LOOK_ORDER,
    _RING_SOURCES,
    ScriptedInvestigator,
    read_investigator_tensor,
)
from fraudarena_env.rules.actions import EndTurn, Investigate, Link
from fraudarena_env.rules.catalog import MAX_PULLS_PER_AD


def value_of_source(post, rewards, available):
    """Expected gain in verdict value from pulling each source once more, per ad."""
    n = post.shape[0]
    now = belief.verdict_values(post, rewards).max(axis=1)
    mu = belief.PROFILE
    x = mu.T[:, :, None] + belief._GH_X[None, None, :]
    ll = -(x[:, :, :, None] - mu.T[:, None, None, :]) ** 2 / 2
    ll = ll - ll.max(axis=3, keepdims=True)
    lik = np.exp(ll)
    after = post[:, None, None, None, :] * lik[None]
    norm = after.sum(axis=4)
    val = np.einsum("ntjlk,nvk->ntjlv", after, rewards).max(axis=4) / norm
    pre = np.einsum("ntjl,l,nj->nt", val, belief._GH_W, post)
    gain = pre - now[:, None]
    gain[~available] = -np.inf
    return gain if n else gain.reshape(0, mu.shape[1])


class FromScratchInvestigator(ScriptedInvestigator):
    """``ScriptedInvestigator``'s rules of play with nothing kept between decisions: its own
    ``read`` (a fresh ``Reading`` of the whole vector) and ``decide``; both faces' ``act`` are
    inherited and call them. ``trace`` holds, per decision, the floats each choice rested on."""

    def __init__(self, seed: int | None = None):
        super().__init__(seed)
        self.trace: list[dict] = []

    def read(self, vector):
        return read_investigator_tensor(vector)

    def decide(self, task, r, pairs, budget, actions_left, rounds_remaining):
        if budget <= 0:
            return EndTurn()
        fs = belief.first_sight_loglik(task.task_id, r.category, r.age, r.tld, r.payment,
                                       r.country, r.markers, r.junk)
        all_rewards = belief.reward_table(r.category)
        post = belief.posterior(fs + belief.evidence_loglik(r.signal, r.pulled))
        p_bad = 1.0 - post[:, 0]
        trace = {"post": post, "p_bad": p_bad}
        self.trace.append(trace)
        for i, j in pairs:
            if p_bad[i] > self.LINK_P_BAD and p_bad[j] > self.LINK_P_BAD:
                return Link(i, j)
        pending = np.flatnonzero(r.pending)
        if not len(pending):
            return EndTurn()
        post_p, rewards = post[pending], all_rewards[pending]
        values = belief.verdict_values(post_p, rewards)
        best = values.argmax(axis=1)
        needs_verdict = best != 0
        present = int(np.count_nonzero(r.present))
        to_come = max(0, task.queue_size + task.max_proposals - present)
        keep = int(np.count_nonzero(needs_verdict)) + self.KEEP_PER_AD * to_come + 2
        spare = budget - keep
        last_round = rounds_remaining <= 1
        available = ~r.pulled[pending] & (r.pulled[pending].sum(axis=1) <
                                          MAX_PULLS_PER_AD)[:, None]
        price = self.PULL_PRICE + self.SCARCITY_PRICE * (1.0 + to_come) / max(spare, 1.0)
        n_verdicts = int(np.count_nonzero(needs_verdict))
        can_pull = spare >= 1 and (not last_round or actions_left > n_verdicts)
        closing = actions_left <= n_verdicts
        if can_pull and not closing:
            gain = value_of_source(post_p, rewards, available)
            settled = gain.max(axis=1) <= price
            trace["gain"] = gain
        else:
            settled = np.ones(len(pending), bool)
        sure = values.max(axis=1) - np.sort(values, axis=1)[:, -2]
        trace.update(pending=pending, values=values, sure=sure)
        surest_first = np.argsort(-sure, kind="stable").tolist()
        for i in surest_first:
            if settled[i] and needs_verdict[i]:
                slot = int(pending[i])
                if (task.n_rings and spare >= 1 and actions_left >= 2 and p_bad[slot] >
                        self.LINK_P_BAD and r.pulled[slot, _RING_SOURCES].sum() < self.RING_LOOKS):
                    for t in _LOOK_ORDER:
                        if available[i, t]:
                            return Investigate(slot, t)
                return self._verdict(slot, best[i], post_p[i])
        if can_pull:
            i, t = np.unravel_index(int(gain.argmax()), gain.shape)
            if gain[i, t] > price:
                return Investigate(int(pending[i]), int(t))
        for i in surest_first:
            if needs_verdict[i] or spare >= 1:
                return self._verdict(pending[i], best[i], post_p[i])
        return EndTurn()
