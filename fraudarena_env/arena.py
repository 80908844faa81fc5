"""Run whole matches between policies, straight on the referee (no PettingZoo in the loop).

Used by ``fraudarena play``, the speed benchmark, evaluation tables and the fairness tests. Each
role acts on the tensor face when its policy has one, otherwise on the text face.

What an evaluation reports of a finished match comes from one place, :func:`match_metrics`
(built on :func:`outcome_counts`, which also feeds ``fraudarena play``'s scoreboard):
``evaluate`` averages it over seeds, ``fraudarena evaluate --json`` adds the spread.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .faces.encoding import Observer, apply_index
from .policies import BASELINES, Policy
from .referee import Referee
from .rules.catalog import APPROVE, ESCALATE_V, FRAUD, LEGIT, PHASE_ROLE, REJECT, ROLES

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
        # The ops played, not events: a tensor match builds no text, and a text request (a
        # text-face policy's observation, the state) replays the match into events.
        self.referee = Referee(illegal_action=illegal_action, record="ops")
        self.observers = {r: Observer(r) for r in ROLES}

    def play(self, task_id: str, seed: int, policies: dict[str, Policy] | None = None,
             faces: dict[str, str] | None = None, actions: list | None = None,
             **knobs) -> MatchResult:
        """One match. Every policy is reset with the match's seed first (``reset(seed=seed)``,
        as ``RoleEnv`` resets its opponents), so that a policy reused across matches plays each
        seed as a new one would, whatever it played before; the roles left out play their
        scripted baseline, made with that seed. With a list as ``actions``, every applied action
        is appended to it as the archive records it (``{"role", "action"}``; see
        :mod:`fraudarena_env.archive`)."""
        policies = dict(policies or {})
        for role, pol in policies.items():  # a mistake here would surface mid-match, obscurely
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r} in policies; roles are {list(ROLES)}")
            if not isinstance(pol, Policy):
                raise TypeError(f"the {role} policy must be a fraudarena_env.policies.Policy "
                                f"(act_tensor or act_model), got {type(pol).__name__}")
            pol.check_plays(role, f"the policy given for {role}")
            pol.reset(seed=seed)
        for role in ROLES:
            if role not in policies:
                policies[role] = BASELINES[role](seed=seed)
        faces = dict(faces or {})
        for role, pol in policies.items():
            faces.setdefault(role, "tensor" if pol.has_tensor_face() else "text")
        ref = self.referee
        for pol in policies.values():
            bind = getattr(pol, "bind", None)  # a policy that reads the referee (the oracle)
            if bind is not None:
                bind(ref)
        ref.reset_match(seed=seed, task_id=task_id, **knobs)
        # Per role: the policy, and the observer when it acts on the tensor face.
        actors = {role: (pol, self.observers[role] if faces[role] == "tensor" else None)
                  for role, pol in policies.items()}
        sums = [0.0, 0.0, 0.0]
        steps = 0
        while (role := PHASE_ROLE.get(ref.phase)) is not None:  # None once the match is done
            pol, observer = actors[role]
            if observer is not None:
                index = pol.act_tensor(*observer.observe(ref))
                apply_index(ref, role, index)
                if actions is not None:
                    actions.append({"role": role, "action": {"action_index": int(index)}})
            else:
                obs = getattr(ref, f"build_{role}_observation")()
                model = pol.act_model(obs)
                ref.apply_model(role, model)
                if actions is not None:
                    actions.append({"role": role, "action": model.model_dump(mode="json")})
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


# ============================================================================ what a match did
OUTCOME_COUNTS = ("fraud", "fraud_caught", "fraud_live", "fraud_live_auto", "fraud_escalated",
                  "legit", "legit_approved", "legit_rejected", "legit_escalated",
                  "gray", "gray_escalated", "escalations",
                  "links_correct", "links_wrong", "ring_pairs",
                  "proposals", "proposals_approved", "proposals_rejected", "proposals_escalated")


def outcome_counts(ref: Referee) -> dict[str, int]:
    """How a finished match ended for every ad in its queue (auto-approvals included), by
    label and verdict, and how many of the investigator's links joined two ads of one ring."""
    c = dict.fromkeys(OUTCOME_COUNTS, 0)
    for s in ref.present.nonzero()[0].tolist():
        label, v = ref.label_of(s), int(ref.verdict[s])
        if label == FRAUD:
            c["fraud"] += 1
            c["fraud_caught"] += v == REJECT
            c["fraud_live"] += v == APPROVE
            c["fraud_live_auto"] += v == APPROVE and not ref.manual[s]
            c["fraud_escalated"] += v == ESCALATE_V
        elif label == LEGIT:
            c["legit"] += 1
            c["legit_approved"] += v == APPROVE
            c["legit_rejected"] += v == REJECT
            c["legit_escalated"] += v == ESCALATE_V
        else:
            c["gray"] += 1
            c["gray_escalated"] += v == ESCALATE_V
        c["escalations"] += v == ESCALATE_V
        if ref.is_proposal[s]:
            c["proposals"] += 1
            c["proposals_approved"] += v == APPROVE
            c["proposals_rejected"] += v == REJECT
            c["proposals_escalated"] += v == ESCALATE_V
    for a, b in ref.links:
        c["links_correct" if same_ring(ref, a, b) >= 0 else "links_wrong"] += 1
    c["ring_pairs"] = ref.n_ring_pairs
    return c


def same_ring(ref: Referee, a: int, b: int) -> int:
    """The ring the ads in slots ``a`` and ``b`` both belong to, or -1."""
    ra, rb = ref.ring_of(a), ref.ring_of(b)
    return ra if ra >= 0 and ra == rb else -1


def match_metrics(result: MatchResult) -> dict[str, float]:
    """What an evaluation reports of one finished match. Read it before the arena plays its next
    match (the arena reuses its referee).

    ``grader``; each role's return under the role's name (``fraudster``, ``investigator``,
    ``auditor``); ``steps``; ``fraud_live``, the share of fraud ads that ended approved (by
    verdict or unreviewed at the end: they ran), and ``fraud_live_count``; ``legit_rejected``, the
    share of legit ads rejected (false rejections, lost advertisers), and
    ``legit_rejected_count``; ``escalations``, verdicts of escalate; ``links_correct`` and
    ``links_wrong``, the investigator's links between two ads of one ring and the others.
    """
    c = outcome_counts(result.referee)
    return {"grader": result.grader, **{role: result.returns[role] for role in ROLES},
            "steps": result.steps,
            "fraud_live": c["fraud_live"] / c["fraud"] if c["fraud"] else 0.0,
            "fraud_live_count": c["fraud_live"],
            "legit_rejected": c["legit_rejected"] / c["legit"] if c["legit"] else 0.0,
            "legit_rejected_count": c["legit_rejected"],
            "escalations": c["escalations"],
            "links_correct": c["links_correct"], "links_wrong": c["links_wrong"]}


# ============================================================================ many matches
def repeated(seeds) -> list[int]:
    """The seeds ``seeds`` names more than once, in order."""
    return sorted(s for s, n in Counter(seeds).items() if n > 1)


def evaluate_matches(task_id: str, seeds, make_policies, faces=None) -> list[dict[str, float]]:
    """:func:`match_metrics` of one match per seed; ``make_policies(seed)`` builds the policies
    (roles left out play their scripted baseline). A seed is one match: a seed given twice
    would count one match as two, and is refused, as is an empty list."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("no seeds: give at least one match seed to evaluate on")
    if twice := repeated(seeds):
        raise ValueError(f"seeds {twice[:5]} are given more than once: a seed is one match, so "
                         f"a repeat would count it twice and shrink the standard errors")
    arena = Arena()
    return [match_metrics(arena.play(task_id, s, make_policies(s), faces)) for s in seeds]


def standard_error(values) -> float:
    """The standard error of the mean of ``values`` (nan for fewer than two)."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")


def mean_metrics(per_match: list[dict[str, float]]) -> dict[str, float]:
    """The mean of every :func:`match_metrics` key over matches (``evaluate_matches``)."""
    return {key: float(np.mean([m[key] for m in per_match])) for key in per_match[0]}


def evaluate(task_id: str, seeds, make_policies, faces=None) -> dict[str, float]:
    """The mean of every :func:`match_metrics` key over one match per seed."""
    return mean_metrics(evaluate_matches(task_id, seeds, make_policies, faces))
