"""Microseconds per decision of ``ScriptedInvestigator`` on the tensor face, against the same
rules worked out from scratch at every decision (the tests' oracle, ``FromScratchInvestigator``
in ``tests/policies/investigator_oracle.py``: how the scripted investigator decided before it
kept its beliefs between decisions), in the same process. (The investigator before this change
already kept its first-sight terms until an ad arrived, so it was about a tenth faster than the
oracle: on the same states, about 400 us a decision against the oracle's 450.)

What is timed: ``act_tensor`` alone, over the observations the scripted investigator sees in
scripted matches (recorded first, by playing ``Arena().play(task, seed)`` on every task), replayed
in order through a fresh player per match, as in play. Both players must choose the same action
in every state (checked). ``RandomPolicy`` on the same states is the floor: what a decision costs
that reads nothing but the mask. Times are per second of this process's CPU time, the best of
``--repeats`` runs, so other work on a busy machine disturbs them less.

    python benchmarks/bench_scripted.py                  # 10 seeds per task, ~20 s
    python benchmarks/bench_scripted.py --seeds 40 --repeats 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fraudarena_env.arena import Arena
from fraudarena_env.policies import RandomPolicy, ScriptedInvestigator
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="matches per task")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many replays")
    args = parser.parse_args()
    matches = record(range(args.seeds))
    n = sum(map(len, matches))
    players = {"from scratch (before)": FromScratchInvestigator,
               "ScriptedInvestigator (now)": ScriptedInvestigator,
               "RandomPolicy (floor)": lambda: RandomPolicy("investigator", seed=0)}
    micros, chosen = {}, {}
    for name, make in players.items():
        runs = [replay(make, matches) for _ in range(args.repeats)]
        micros[name] = min(spent for spent, _ in runs) / n * 1e6
        chosen[name] = runs[0][1]
    before, now = micros["from scratch (before)"], micros["ScriptedInvestigator (now)"]
    same = chosen["from scratch (before)"] == chosen["ScriptedInvestigator (now)"]
    print(f"{n} investigator decisions from {len(matches)} scripted matches "
          f"({args.seeds} seeds x {len(TASK_IDS)} tasks); CPU microseconds per decision, "
          f"best of {args.repeats}:")
    for name, us in micros.items():
        print(f"  {name:28s} {us:8.1f}")
    print(f"speedup: {before / now:.1f}x fewer microseconds per decision; "
          f"same actions in every state: {same}")
    if not same:
        raise SystemExit("the scripted investigator and the from-scratch oracle disagree")


if __name__ == "__main__":
    main()
