"""The batched scripted investigator chooses, state by state, what the scalar one chooses.

States are recorded from whole matches (driven by the scripted investigator itself, and by a
random one, whose states the scripted one never steers into), then replayed in lockstep: at
each step every match that still has a state is decided in one batch, its envs in a shuffled
order and some left out now and then, as ``VectorRoleEnv`` asks only the envs waiting on the
investigator.
"""

from pathlib import Path

import numpy as np
import pytest

from fraudarena_env.arena import Arena
from fraudarena_env.policies import RandomPolicy, ScriptedInvestigator
from fraudarena_env.policies.base import PerEnvPolicies
from fraudarena_env.policies.batched import BatchedScriptedInvestigator
from fraudarena_env.rules.action_catalog import I_END
from fraudarena_env.rules.catalog import TASK_IDS


class Recorder(ScriptedInvestigator):
    """Keeps every (observation, mask) it is asked about; plays its own choice or the
    ``driver``'s."""

    def __init__(self, driver=None):
        super().__init__()
        self.driver, self.states = driver, []

    def act_tensor(self, vector, mask):
        self.states.append((vector.copy(), mask.copy()))
        action = super().act_tensor(vector, mask)
        return action if self.driver is None else self.driver.act_tensor(vector, mask)


def recorded(task_ids, seeds, random_driver=False) -> list[list[tuple]]:
    arena, matches = Arena(), []
    for task_id in task_ids:
        for seed in seeds:
            driver = RandomPolicy("investigator", seed=seed) if random_driver else None
            player = Recorder(driver)
            arena.play(task_id, seed, {"investigator": player})
            matches.append(player.states)
    return matches


def replay_in_lockstep(matches, batch, seed=0) -> int:
    """Every state through ``batch`` and a fresh scalar player per match; asserts equal
    actions. Returns how many decisions were compared."""
    rng = np.random.default_rng(seed)
    scalar = [ScriptedInvestigator() for _ in matches]
    batch.reset_envs(np.arange(len(matches)))
    at = [0] * len(matches)
    compared = 0
    while True:
        envs = [m for m in range(len(matches)) if at[m] < len(matches[m])
                and rng.random() < 0.9]
        if not envs:
            if all(at[m] == len(matches[m]) for m in range(len(matches))):
                return compared
            continue
        envs = rng.permutation(envs)
        vectors = np.stack([matches[m][at[m]][0] for m in envs])
        masks = np.stack([matches[m][at[m]][1] for m in envs])
        got = batch.act_batch(envs, vectors, masks)
        assert got.dtype == np.int64 and got.shape == (len(envs),)
        for m, action in zip(envs.tolist(), got.tolist()):
            vector, mask = matches[m][at[m]]
            assert action == scalar[m].act_tensor(vector, mask), (m, at[m])
            at[m] += 1
            compared += 1


# the array code alone (0), and small batches decided match by match (the default)
SMALL_BATCH = [0, 6]


@pytest.mark.parametrize("small_batch", SMALL_BATCH)
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_batched_investigator_decides_as_the_scalar_one_in_scripted_play(task_id, small_batch):
    matches = recorded([task_id], range(40, 56))
    batch = BatchedScriptedInvestigator(len(matches), small_batch=small_batch)
    assert replay_in_lockstep(matches, batch) > 300


@pytest.mark.parametrize("small_batch", SMALL_BATCH)
@pytest.mark.parametrize("task_id", TASK_IDS)
def test_batched_investigator_decides_as_the_scalar_one_when_someone_else_plays(task_id,
                                                                                small_batch):
    matches = recorded([task_id], range(60, 72), random_driver=True)
    batch = BatchedScriptedInvestigator(len(matches), small_batch=small_batch)
    assert replay_in_lockstep(matches, batch, 1) > 300


def test_one_batch_mixes_tasks_and_replays_new_matches_after_a_reset():
    matches = recorded(TASK_IDS, range(80, 84))
    batch = BatchedScriptedInvestigator(len(matches), small_batch=3)
    replay_in_lockstep(matches, batch, 2)
    replay_in_lockstep(matches[::-1], batch, 3)  # each env now sees another match


@pytest.mark.parametrize("small_batch", SMALL_BATCH)
def test_batched_investigator_stays_legal_and_counts_refusals(small_batch):
    matches = recorded(["task_1"], range(2))
    batch = BatchedScriptedInvestigator(1, small_batch=small_batch)
    vector, mask = matches[0][0]
    chosen = batch.act_batch([0], vector[None], mask[None])
    refused = mask.copy()
    refused[chosen[0]] = 0
    batch.reset_envs([0])
    end = batch.act_batch([0], vector[None], refused[None])
    assert end.tolist() == [I_END] and batch.masked_picks == 1


def test_per_env_policies_ask_each_env_its_own_player():
    players = [RandomPolicy("investigator", seed=s) for s in range(3)]
    batch = PerEnvPolicies(players)
    twins = [RandomPolicy("investigator", seed=s) for s in range(3)]
    matches = recorded(["task_2"], range(3))
    vectors = np.stack([m[0][0] for m in matches])
    masks = np.stack([m[0][1] for m in matches])
    batch.reset_envs([2, 0], seeds=[7, 8])
    twins[2].reset(seed=7)
    twins[0].reset(seed=8)
    got = batch.act_batch(np.array([2, 0, 1]), vectors, masks)
    assert got.tolist() == [twins[i].act_tensor(vectors[k], masks[k])
                            for k, i in enumerate([2, 0, 1])]


def test_a_gain_kept_from_a_decided_ad_never_sends_the_investigator_pulling():
    """A state where every pending ad has had all its pulls (from a fraudster's training run,
    task_2): the scalar investigator rules on it. The batched one keeps each slot's best pull
    from earlier states, decided ads' included; with no pending pull left, argmax over the
    pending slots fell on slot 0, and its old gain (decided since) beat the price: a masked
    pull, played as end_turn."""
    data = np.load(Path(__file__).parent / "data" / "all_pulled_state.npz")
    vector, mask = data["vector"], data["mask"]
    scalar = ScriptedInvestigator().act_tensor(vector, mask)
    batch = BatchedScriptedInvestigator(1, small_batch=1)
    batch._gain_top[0] = 1.0  # what earlier states may have left for any slot
    assert batch.act_batch(np.array([0]), vector[None], mask[None])[0] == scalar != I_END
    assert batch.masked_picks == 0
