"""Does skill pay? The measurements behind ``fraudarena evaluate --suite skill``.

* ``investigator_table``: mean grader and return, per task, of random play, every degenerate and
  blind reference investigator, the scripted investigator and an oracle that reads the truth;
  with the evidence premium (scripted minus the best blind policy) and the headroom (oracle minus
  scripted).
* ``fraudster_table``: never proposing, each single tactic, and ``ReactiveFraudster``.
* ``information_value``: balanced accuracy (mean recall of bad, i.e. fraud or escalate, and
  legit) of a linear classifier on first-sight features, then with the 1, 2 and 3 most useful
  evidence sources added: what investigation buys within the rules (at most 3 per ad).
* ``camouflage``: per tactic, how well first-sight features tell the fraudster's proposals from
  organic ads of the same categories.

Classifiers are softmax regressions fitted with numpy on one half of the ads and scored on the
other. Training matches for ``FirstSightClassifier`` use seeds no evaluation uses.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .arena import Arena, standard_error
from .faces.encoding import Observer
from .policies import (
    BLIND_INVESTIGATORS,
    DEGENERATE_INVESTIGATORS,
    SINGLE_TACTIC_FRAUDSTERS,
    NeverPropose,
    OracleInvestigator,
    RandomPolicy,
    ReactiveFraudster,
    views,
)
from .rules.catalog import LEGIT, TACTICS, TARGETS, TASK_IDS

FIT_SEEDS = range(900_000, 900_080)  # the first-sight classifier's training matches
_FIRST_SIGHT = ("category", "surface", "lexical", "arrived_round")


def first_sight_features(vector: np.ndarray) -> np.ndarray:
    """Everything an investigator sees of each slot before pulling evidence, one row per slot:
    category one-hot, surface (age, TLD, payment, country, risk phrases), copy features and the
    round it arrived in."""
    v = views("investigator", vector, _FIRST_SIGHT)
    return np.concatenate([v["category"], v["surface"], v["lexical"],
                           v["arrived_round"][:, None]], axis=1)


class Softmax:
    """Multinomial logistic regression, fitted by full-batch gradient descent with momentum."""

    def __init__(self, n_classes: int, l2: float = 1e-3):
        self.k = n_classes
        self.l2 = l2

    def fit(self, x: np.ndarray, y: np.ndarray, steps: int = 600, lr: float = 0.5) -> Softmax:
        self.mean = x.mean(axis=0)
        self.scale = x.std(axis=0) + 1e-6
        z = np.c_[(x - self.mean) / self.scale, np.ones(len(x))]
        onehot = np.eye(self.k)[y]
        w = np.zeros((z.shape[1], self.k))
        vel = np.zeros_like(w)
        for _ in range(steps):
            p = _softmax(z @ w)
            grad = z.T @ (p - onehot) / len(z) + self.l2 * w
            vel = 0.9 * vel - lr * grad
            w += vel
        self.w = w
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = np.c_[(x - self.mean) / self.scale, np.ones(len(x))]
        return _softmax(z @ self.w)


def _softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(axis=1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class Ads:
    """Every ad of many finished matches: first-sight features, label, evidence signals, and
    whether (and with which tactic) the fraudster proposed it."""

    features: np.ndarray
    label: np.ndarray
    evidence: np.ndarray
    proposal: np.ndarray
    tactic: np.ndarray
    category: np.ndarray


def collect_ads(task_id: str, seeds, make_policies=lambda seed: {}) -> Ads:
    arena = Arena()
    observer = Observer("investigator")
    cols: dict[str, list] = {k: [] for k in Ads.__dataclass_fields__}
    for seed in seeds:
        ref = arena.play(task_id, seed, make_policies(seed)).referee
        vector = observer.fill(ref)
        slots = np.flatnonzero(ref.present)
        truth = ref.facts_of(slots, ("label", "evidence", "tactic", "category"))
        cols["features"].append(first_sight_features(vector)[slots])
        cols["label"].append(truth["label"])
        cols["evidence"].append(truth["evidence"])
        cols["proposal"].append(ref.is_proposal[slots])
        cols["tactic"].append(truth["tactic"])
        cols["category"].append(truth["category"])
    return Ads(**{k: np.concatenate(v) for k, v in cols.items()})


def balanced_accuracy(truth: np.ndarray, guess: np.ndarray) -> float:
    """Mean recall over the classes present in ``truth`` (booleans: bad vs legit)."""
    return float(np.mean([np.mean(guess[truth == c] == c) for c in np.unique(truth)]))


def _split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return order[: n // 2], order[n // 2:]


def _bad_vs_legit(x: np.ndarray, bad: np.ndarray) -> float:
    fit, test = _split(len(x))
    model = Softmax(2).fit(x[fit], bad[fit].astype(int))
    return balanced_accuracy(bad[test], model.predict(x[test]).argmax(axis=1) == 1)


def information_value(task_id: str, seeds) -> dict[str, object]:
    """Balanced accuracy of bad-vs-legit on first-sight features plus the best k sources."""
    ads = collect_ads(task_id, seeds)
    bad = ads.label != LEGIT
    out: dict[str, object] = {"first_sight": _bad_vs_legit(ads.features, bad)}
    for k in (1, 2, 3):
        best, which = -1.0, ()
        for combo in itertools.combinations(range(len(TARGETS)), k):
            x = np.c_[ads.features, ads.evidence[:, combo]]
            score = _bad_vs_legit(x, bad)
            if score > best:
                best, which = score, combo
        out[f"{k}_sources"] = best
        out[f"{k}_sources_which"] = tuple(TARGETS[t] for t in which)
    out["all_sources"] = _bad_vs_legit(np.c_[ads.features, ads.evidence], bad)
    return out


def camouflage(task_id: str, seeds) -> dict[str, float]:
    """Per tactic: balanced accuracy of telling a single-tactic fraudster's proposals from the
    organic ads of the same categories, on first-sight features."""
    out = {}
    for tactic in TACTICS:
        make = SINGLE_TACTIC_FRAUDSTERS[f"only_{tactic}"]
        ads = collect_ads(task_id, seeds, lambda s, make=make: {"fraudster": make(seed=s)})
        used = np.unique(ads.category[ads.proposal])
        keep = np.isin(ads.category, used)
        x, y = ads.features[keep], ads.proposal[keep]
        fit, test = _split(len(x))
        model = Softmax(2).fit(x[fit], y[fit].astype(int))
        out[tactic] = balanced_accuracy(y[test], model.predict(x[test]).argmax(axis=1) == 1)
    return out


@lru_cache(maxsize=8)
def fit_first_sight(task_id: str) -> Softmax:
    """The first-sight classifier of ``FirstSightClassifier``: legit / fraud / escalate, fitted
    on the baselines' matches over ``FIT_SEEDS``."""
    ads = collect_ads(task_id, FIT_SEEDS)
    return Softmax(3).fit(ads.features, ads.label.astype(int))


def _mean_row(results) -> dict[str, float]:
    """Mean grader and returns over matches, and the standard error of the fraudster's return
    (it varies a lot from seed to seed; nan for one match)."""
    fraudster = [r.returns["fraudster"] for r in results]
    return {"grader": float(np.mean([r.grader for r in results])),
            "investigator": float(np.mean([r.returns["investigator"] for r in results])),
            "fraudster": float(np.mean(fraudster)), "fraudster_sem": standard_error(fraudster)}


def investigator_table(task_id: str, seeds) -> dict[str, dict[str, float]]:
    """Mean grader and returns of every reference investigator on one task."""
    arena = Arena()
    oracle = OracleInvestigator().bind(arena.referee)
    makers = {"random": lambda seed=None: RandomPolicy("investigator", seed)}
    makers.update({k: v for k, v in DEGENERATE_INVESTIGATORS.items() if k != "random"})
    makers.update(BLIND_INVESTIGATORS)
    rows = {}
    for name, make in makers.items():
        rows[name] = _mean_row([arena.play(task_id, s, {"investigator": make(seed=s)})
                                for s in seeds])
    rows["scripted"] = _mean_row([arena.play(task_id, s) for s in seeds])
    rows["oracle"] = _mean_row([arena.play(task_id, s, {"investigator": oracle},
                                           faces={"investigator": "text"}) for s in seeds])
    return rows


def fraudster_table(task_id: str, seeds) -> dict[str, dict[str, float]]:
    arena = Arena()
    makers = {"never_propose": NeverPropose, **SINGLE_TACTIC_FRAUDSTERS,
              "random": lambda seed=None: RandomPolicy("fraudster", seed),
              "reactive": ReactiveFraudster}
    return {name: _mean_row([arena.play(task_id, s, {"fraudster": make(seed=s)})
                             for s in seeds]) for name, make in makers.items()}


BLIND_NAMES = tuple(BLIND_INVESTIGATORS)


def investigator_rows(table: dict[str, dict[str, float]]) -> list[str]:
    """``investigator_table`` as the Markdown rows the report prints (docs/skill.md quotes them)."""
    return [f"| {name} | {row['grader']:.3f} | {row['investigator']:+.2f} |"
            for name, row in table.items()]


def fraudster_rows(table: dict[str, dict[str, float]]) -> list[str]:
    """``fraudster_table`` as the Markdown rows the report prints."""
    return [f"| {name} | {row['fraudster']:+.3f} ± {row['fraudster_sem']:.3f} | "
            f"{row['grader']:.3f} |" for name, row in table.items()]


def skill_report(seeds, tasks=TASK_IDS, progress=None) -> str:
    """The whole suite as Markdown (what ``fraudarena evaluate --suite skill`` prints)."""
    lines = []
    for task_id in tasks:
        inv = investigator_table(task_id, seeds)
        best_blind = max(BLIND_NAMES, key=lambda n: inv[n]["grader"])
        premium = inv["scripted"]["grader"] - inv[best_blind]["grader"]
        headroom = inv["oracle"]["grader"] - inv["scripted"]["grader"]
        lines += [f"### {task_id}: investigators (grader / investigator return)", "",
                  "| investigator | grader | return |", "|---|---|---|"]
        lines += investigator_rows(inv)
        lines += ["", f"evidence premium (scripted - best blind, {best_blind}): "
                  f"**{premium:+.3f}**; headroom (oracle - scripted): **{headroom:+.3f}**", ""]
        fr = fraudster_table(task_id, seeds)
        lines += [f"### {task_id}: fraudsters against the scripted investigator", "",
                  "| fraudster | fraudster return (± s.e.) | grader |", "|---|---|---|"]
        lines += fraudster_rows(fr)
        info = information_value(task_id, seeds)
        cam = camouflage(task_id, seeds)
        lines += ["", f"information value (balanced accuracy, bad vs legit): first sight "
                  f"{info['first_sight']:.3f}; best 1 source {info['1_sources']:.3f} "
                  f"({', '.join(info['1_sources_which'])}); best 2 {info['2_sources']:.3f} "
                  f"({', '.join(info['2_sources_which'])}); best 3 {info['3_sources']:.3f}; "
                  f"all six {info['all_sources']:.3f}",
                  "", "proposals told from organic ads at first sight (balanced accuracy): "
                  + ", ".join(f"{t} {v:.3f}" for t, v in cam.items()), ""]
        if progress:
            progress(task_id)
    return "\n".join(lines)


__all__ = ["Softmax", "collect_ads", "information_value", "camouflage", "fit_first_sight",
           "investigator_table", "fraudster_table", "investigator_rows", "fraudster_rows",
           "skill_report", "first_sight_features"]
