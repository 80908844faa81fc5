"""The rules' behaviour is pinned: the same seeds give the same final ``RefereeState``.

A digest of the final state's JSON over 320 matches on every task: scripted trios on the tensor
face and on the text face, and masked-random players. Refactoring (moving modules, renaming,
speeding up) must leave it unchanged. A change to the rules on purpose changes it: then update
``PINNED`` in the same commit and say in the message why the game changed.
"""

from __future__ import annotations

import hashlib

from fraudarena_env.arena import Arena
from fraudarena_env.policies import RandomPolicy
from fraudarena_env.rules.catalog import ROLES, TASK_IDS

SCRIPTED_TENSOR_SEEDS = range(40)
SCRIPTED_TEXT_SEEDS = range(100, 110)
RANDOM_SEEDS = range(200, 230)
PINNED = "e20179d9e4fc43557ec96c7d7057d25758c1b171262689dcc405b78a9ea619cd"


def state_digest() -> str:
    arena = Arena()
    h = hashlib.sha256()

    def record(task_id: str, seed: int, **play) -> None:
        arena.play(task_id, seed, **play)
        h.update(arena.referee.state.model_dump_json().encode())

    for task_id in TASK_IDS:
        for seed in SCRIPTED_TENSOR_SEEDS:
            record(task_id, seed)
        for seed in SCRIPTED_TEXT_SEEDS:
            record(task_id, seed, faces=dict.fromkeys(ROLES, "text"))
        for seed in RANDOM_SEEDS:
            record(task_id, seed, policies={r: RandomPolicy(r, seed=seed) for r in ROLES})
    return h.hexdigest()


def test_final_states_match_the_pinned_digest():
    assert state_digest() == PINNED

