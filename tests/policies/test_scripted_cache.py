"""The scripted investigator keeps its beliefs between decisions only to be fast: in every state,
on either face, it chooses what the from-scratch oracle (``investigator_oracle``) chooses, and
the floats behind each choice are the oracle's to the last bit.

The states come from matches driven three ways: by the scripted investigator itself, by a
random investigator (states the scripted one never steers into, and a cache that sees evidence
and verdicts it did not ask for), and on the text face. Each match has a fresh pair of players,
and one pair also plays many matches in a row, as a long-lived opponent in a training env does.
"""

import numpy as np
import pytest
from investigator_oracle import FromScratchInvestigator, value_of_source

from fraudarena_env.arena import Arena
from fraudarena_env.policies import RandomPolicy, ScriptedInvestigator, belief
from fraudarena_env.policies.base import Policy
from fraudarena_env.rules.catalog import TASK_IDS

SEEDS = range(300, 310)


class Witness(Policy):
    """Asks both investigators in every state and checks that they agree; plays the scripted
    one's choice, or a random legal action when given a ``driver``."""

    role = "investigator"

    def __init__(self, fast, oracle, driver=None):
        super().__init__()
        self.fast, self.oracle, self.driver = fast, oracle, driver
        self.decisions = 0

    def act_tensor(self, vector, mask):
        traced = len(self.oracle.trace)
        action = self.fast.act_tensor(vector, mask)
        assert action == self.oracle.act_tensor(vector, mask)
        if len(self.oracle.trace) > traced:
            assert_same_floats(self.fast._belief, self.oracle.trace[-1])
        self.decisions += 1
        return action if self.driver is None else self.driver.act_tensor(vector, mask)

    def act_model(self, observation):
        traced = len(self.oracle.trace)
        action = self.fast.act_model(observation)
        assert action == self.oracle.act_model(observation)
        if len(self.oracle.trace) > traced:
            assert_same_floats(self.fast._belief, self.oracle.trace[-1])
        self.decisions += 1
        return action


def assert_same_floats(kept: belief.QueueBelief, scratch: dict) -> None:
    """Bitwise: the posterior and p(bad) of every slot; for the pending ones the best verdict,
    its margin and, where the oracle priced pulls, the best pull and its value."""
    assert np.array_equal(kept.post, scratch["post"])
    assert kept.p_bad == scratch["p_bad"].tolist()
    if "pending" not in scratch:
        return
    pending = scratch["pending"].tolist()
    assert [kept.best[s] for s in pending] == scratch["values"].argmax(axis=1).tolist()
    assert [kept.sure[s] for s in pending] == scratch["sure"].tolist()
    if "gain" in scratch:
        for slot, priced in zip(pending, scratch["gain"].tolist()):
            assert kept.best_pull(slot) == (max(priced), priced.index(max(priced)))


def witness(driver=None) -> Witness:
    return Witness(ScriptedInvestigator(), FromScratchInvestigator(), driver)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_kept_beliefs_decide_as_from_scratch_in_scripted_play(task_id):
    arena = Arena()
    for seed in SEEDS:
        player = witness()
        arena.play(task_id, seed, {"investigator": player})
        assert player.decisions > 10


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_kept_beliefs_decide_as_from_scratch_when_someone_else_plays(task_id):
    arena = Arena()
    for seed in SEEDS:
        player = witness(RandomPolicy("investigator", seed=seed))
        arena.play(task_id, seed, {"investigator": player})
        assert player.decisions > 10


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_kept_beliefs_decide_as_from_scratch_on_the_text_face(task_id):
    arena = Arena()
    for seed in SEEDS[:4]:
        player = witness()
        arena.play(task_id, seed, {"investigator": player}, faces={"investigator": "text"})
        assert player.decisions > 10


def test_one_player_keeps_deciding_as_from_scratch_across_matches_and_tasks():
    arena, player = Arena(), witness()
    for seed in SEEDS:
        for task_id in TASK_IDS:
            arena.play(task_id, seed, {"investigator": player})


def test_the_value_of_a_pull_is_the_from_scratch_formula_to_the_last_bit():
    rng = np.random.default_rng(19)
    for n in (0, 1, 2, 7, 23, 24, 32, 129, 300):  # both ways of summing, several chunks
        post = belief.posterior(rng.normal(size=(n, belief.N_KINDS)) * rng.uniform(0.1, 8.0))
        rewards = belief.reward_table(rng.integers(0, 17, n))
        available = rng.random((n, belief.PROFILE.shape[1])) < 0.7
        assert np.array_equal(belief.value_of_source(post, rewards, available),
                              value_of_source(post, rewards, available))
