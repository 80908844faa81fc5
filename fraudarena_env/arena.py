"""Run whole matches between policies, straight on the referee (no PettingZoo in the loop).

Used by ``fraudarena play``, the speed benchmark, evaluation tables and the fairness tests. Each
role acts on the tensor face when its policy has one, otherwise on the text face.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .faces.encoding import Observer, apply_index
from .policies import BASELINES, Policy
from .referee import Referee
from .rules.catalog import LEGIT, PHASE_ROLE, REJECT, ROLES

MAX_MATCH_STEPS = 5000  # far above any legal match; a guard against a policy that loops


@dataclass
class MatchResult:
    task_id: str
    seed: int
    grader: float
    returns: dict[str, float]
    step_reward_sums: dict[str, float]
    end_reason: str
    steps: int
    referee: Referee = field(repr=False)


class Arena:
    """Reusable buffers for running many matches fast."""

    def __init__(self, illegal_action: str = "raise"):
        self.referee = Referee(illegal_action=illegal_action)
        self.observers = {r: Observer(r) for r in ROLES}

    def play(self, task_id: str, seed: int, policies: dict[str, Policy] | None = None,
             faces: dict[str, str] | None = None, **knobs) -> MatchResult:
        policies = dict(policies or {})
        for role in ROLES:
            if role not in policies:
                policies[role] = BASELINES[role](seed=seed)
        faces = dict(faces or {})
        for role, pol in policies.items():
            faces.setdefault(role, "tensor" if pol.has_tensor_face() else "text")
        ref = self.referee
        ref.reset_match(seed=seed, task_id=task_id, **knobs)
        # Per role: the policy, and the observer when it acts on the tensor face.
        actors = {role: (pol, self.observers[role] if faces[role] == "tensor" else None)
                  for role, pol in policies.items()}
        sums = [0.0, 0.0, 0.0]
        steps = 0
        while (role := PHASE_ROLE.get(ref.phase)) is not None:  # None once the match is done
            pol, observer = actors[role]
            if observer is not None:
                apply_index(ref, role, pol.act_tensor(*observer.observe(ref)))
            else:
                obs = getattr(ref, f"build_{role}_observation")()
                ref.apply_model(role, pol.act_model(obs))
            r = ref.step_rewards
            sums[0] += r[0]
            sums[1] += r[1]
            sums[2] += r[2]
            steps += 1
            if steps > MAX_MATCH_STEPS:
                raise RuntimeError(f"match {task_id}/{seed} did not end in {MAX_MATCH_STEPS} "
                                   "steps")
        return MatchResult(task_id, seed, float(ref.grader_score),
                           dict(zip(ROLES, ref.totals)), dict(zip(ROLES, sums)),
                           ref.end_reason, steps, ref)


def evaluate(task_id: str, seeds, make_policies, faces=None) -> dict[str, float]:
    """Mean grader and returns over seeds; ``make_policies(seed)`` builds the policies."""
    arena = Arena()
    rows, rejected = [], []
    for s in seeds:
        rows.append(arena.play(task_id, s, make_policies(s), faces))
        rejected.append(legit_rejected(arena.referee))  # the arena reuses its referee
    out = {"grader": float(np.mean([r.grader for r in rows]))}
    for role in ROLES:
        out[role] = float(np.mean([r.returns[role] for r in rows]))
    out["steps"] = float(np.mean([r.steps for r in rows]))
    out["legit_rejected"] = float(np.mean(rejected))
    return out


def legit_rejected(ref: Referee) -> float:
    """The share of a finished match's legit ads that ended rejected (lost advertisers)."""
    present = ref.present.nonzero()[0]
    legit = ref.rows.label[ref.slot_row[present]] == LEGIT
    if not legit.any():
        return 0.0
    return float(np.mean(ref.verdict[present][legit] == REJECT))
