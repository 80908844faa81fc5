"""Microseconds per decision of ``ScriptedInvestigator`` on the tensor face, against the same
rules worked out from scratch at every decision (the tests' oracle, ``FromScratchInvestigator``
in ``tests/policies/investigator_oracle.py``: how the scripted investigator decided before it
kept its beliefs between decisions), in the same process. (The investigator before this change
already kept its first-sight terms until an ad arrived, so it was about a tenth faster than the
oracle: on the same states, about 400 us a decision against the oracle's 450.)

What is timed: ``act_tensor`` alone, over the observations the scripted investigator sees in
scripted matches (recorded first, by playing ``Arena().play(task, seed)`` on every task), replayed
in order through a fresh player per match, as in play. Both players must choose the same action
in every state (checked).

The batched investigator (``BatchedScriptedInvestigator``, what ``VectorRoleEnv`` asks when the
investigator is the scripted opponent) is timed on the same states: the matches replayed in
lockstep, every match that has a t-th decision deciding it in the t-th call (``act_batch`` over
up to ``seeds x tasks`` matches; its time split evenly over the decisions), and one match at a
time (``k = 1``, its worst case: the tail of a turn in a vector env). It must choose what the
scalar investigator chose (checked). ``RandomPolicy`` on the same states is the floor: what a decision costs
that reads nothing but the mask. Times are per second of this process's CPU time, the best of
``--repeats`` runs, so other work on a busy machine disturbs them less.

    python benchmarks/bench_scripted.py                  # 10 seeds per task, ~20 s
    python benchmarks/bench_scripted.py --seeds 64 --repeats 5   # 256 matches in lockstep
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from fraudarena_env.arena import Arena
from fraudarena_env.policies import BatchedScriptedInvestigator, RandomPolicy, ScriptedInvestigator
from fraudarena_env.rules.catalog import TASK_IDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "policies"))
from investigator_oracle import FromScratchInvestigator  # noqa: E402


class _Recorder(ScriptedInvestigator):
    """The scripted investigator, keeping a copy of every observation it decides on."""

    def __init__(self, seed=None):
        super().__init__(seed)
        self.states = []

    def act_tensor(self, vector, mask):
        self.states.append((vector.copy(), mask.copy()))
        return super().act_tensor(vector, mask)


def record(seeds: range) -> list[list[tuple]]:
    """Per match, the (observation, mask) of every investigator decision, in order."""
    arena, matches = Arena(), []
    for task_id in TASK_IDS:
        for seed in seeds:
            player = _Recorder(seed)
            arena.play(task_id, seed, {"investigator": player})
            matches.append(player.states)
    return matches


def replay(make, matches) -> tuple[float, list[int]]:
    """CPU seconds of ``act_tensor`` over every state, a fresh player per match, and the
    actions chosen."""
    actions, spent = [], 0.0
    for states in matches:
        player = make()
        for vector, mask in states:
            start = time.process_time()
            action = player.act_tensor(vector, mask)
            spent += time.process_time() - start
            actions.append(action)
    return spent, actions


def replay_lockstep(matches, size: int | None = None) -> tuple[float, list[int]]:
    """CPU seconds of ``act_batch`` over every state, the matches in lockstep, ``size`` of them
    at a time at most (all by default), and the actions chosen (in ``replay``'s order)."""
    size = size or len(matches)
    chosen: list[list[int]] = [[] for _ in matches]
    spent = 0.0
    for first in range(0, len(matches), size):
        group = matches[first:first + size]
        player = BatchedScriptedInvestigator(len(group))
        for t in range(max(map(len, group))):
            envs = np.asarray([m for m, states in enumerate(group) if t < len(states)])
            vectors = np.stack([group[m][t][0] for m in envs])
            masks = np.stack([group[m][t][1] for m in envs])
            start = time.process_time()
            actions = player.act_batch(envs, vectors, masks)
            spent += time.process_time() - start
            for m, action in zip(envs.tolist(), actions.tolist()):
                chosen[first + m].append(action)
    return spent, [a for actions in chosen for a in actions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="matches per task")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many replays")
    args = parser.parse_args()
    matches = record(range(args.seeds))
    n = sum(map(len, matches))
    players = {"from scratch (before)": FromScratchInvestigator,
               "ScriptedInvestigator (now)": ScriptedInvestigator,
               "RandomPolicy (floor)": lambda: RandomPolicy("investigator", seed=0)}
    runners = {name: (lambda make=make: replay(make, matches)) for name, make in players.items()}
    runners[f"batched, {len(matches)} in lockstep"] = lambda: replay_lockstep(matches)
    runners["batched, k = 1"] = lambda: replay_lockstep(matches, 1)
    micros, chosen = {}, {}
    for name, run in runners.items():
        runs = [run() for _ in range(args.repeats)]
        micros[name] = min(spent for spent, _ in runs) / n * 1e6
        chosen[name] = runs[0][1]
    before = micros["from scratch (before)"]
    scalar = chosen["ScriptedInvestigator (now)"]
    same = chosen["from scratch (before)"] == scalar and all(
        chosen[name] == scalar for name in runners if name.startswith("batched"))
    print(f"{n} investigator decisions from {len(matches)} scripted matches "
          f"({args.seeds} seeds x {len(TASK_IDS)} tasks); CPU microseconds per decision, "
          f"best of {args.repeats}:")
    for name, us in micros.items():
        ratio = f"  {before / us:5.1f}x fewer than from scratch" if us != before else ""
        print(f"  {name:28s} {us:8.1f}{ratio}")
    print(f"same actions in every state (from scratch, scalar, batched): {same}")
    if not same:
        raise SystemExit("the scripted investigators (oracle, scalar, batched) disagree")


if __name__ == "__main__":
    main()
