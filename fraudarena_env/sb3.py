"""Stable-Baselines3 models in FraudArena: what the training scripts and the tests share.

The training scripts live in ``training/`` (``training/selfplay.py``, CleanRL style, to be read and
copied); this module keeps only what more than one of them, or the tests, import:

- :class:`SB3Policy`: an SB3 model behind the :class:`~fraudarena_env.policies.Policy`
  interface (masked, deterministic), usable in the arena and as a ``RoleEnv`` opponent;
- :class:`TrainSeeds`: a ``RoleEnv`` wrapper whose matches draw seeds from a training range
  disjoint from the evaluation seeds;
- :func:`imitate`: warm-start a MaskablePPO model by imitating a role's scripted baseline;
- :func:`evaluate_models` and :func:`format_table`: trained models against the scripted, random
  and blind reference policies on held-out seeds, as a markdown table.

Needs the training extra (``pip install -e ".[train]"``) only where a function says so: the heavy
imports happen inside the functions.
"""

from __future__ import annotations

import inspect
import os
import weakref
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from .policies import BASELINES, BLIND_INVESTIGATORS, AlwaysReject, Policy, RandomPolicy
from .role_env import RoleEnv, WrongRoleError, check_role, model_actions  # noqa: F401 (re-exported)
from .rules.catalog import ROLES

# training matches draw their seeds from here; evaluation seeds (1000-1049) lie below it
TRAIN_SEED_RANGE: tuple[int, int] = (100_000, 2**31 - 1)


class TrainSeeds(gymnasium.Wrapper):
    """Every reset plays a match seed drawn from ``seed_range`` (so never an eval seed).

    ``reset(seed=s)`` reseeds the draw; ``reset()`` takes the next seed. ``action_masks`` is
    forwarded for MaskablePPO.
    """

    def __init__(self, env: RoleEnv, seed_range: tuple[int, int], seed: int | None = None):
        super().__init__(env)
        self.seed_range = seed_range
        self._rng = np.random.default_rng(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        match_seed = int(self._rng.integers(*self.seed_range))
        return self.env.reset(seed=match_seed, options=options)

    def action_masks(self) -> np.ndarray:
        return self.env.action_masks()


class SB3Policy(Policy):
    """An SB3 model on the Policy interface: ``predict(vector, action_masks=mask,
    deterministic=True)``.

    Works with :func:`fraudarena_env.arena.evaluate` (tensor face) and as a RoleEnv opponent.
    It never picks a masked action: a MaskablePPO model masks its own logits, and a model that
    knows no masks (PPO, A2C, DQN) plays the legal action it scores highest.

    ``fast=True`` (the default) computes the same masked argmax straight from the actor network
    for MaskablePPO MLP policies, skipping ``predict``'s distribution objects: about 3x cheaper per
    call, which matters for frozen opponents that act several times per learner step. Models
    without a maskable MLP actor always go through ``predict``.
    """

    def __init__(self, model, role: str, name: str = "", seed: int | None = None,
                 fast: bool = True):
        super().__init__(seed)
        check_role(model, role, name or "the model")
        self.model = model
        self.role = role
        self.name = name or f"sb3-{role}"
        try:
            self._maskable = "action_masks" in inspect.signature(model.predict).parameters
        except (TypeError, ValueError):
            self._maskable = False
        try:
            self._predict = model_actions(model)
        except ValueError as error:
            raise ValueError(f"{self.name}: {error}") from None
        policy = getattr(model, "policy", None)
        self._fast = bool(fast and self._maskable and policy is not None and
                          hasattr(policy, "mlp_extractor") and hasattr(policy, "action_net") and
                          isinstance(getattr(model, "observation_space", None),
                                     gymnasium.spaces.Box))
        if self._fast:
            policy.set_training_mode(False)

    def act_tensor(self, vector, mask) -> int:
        mask = np.asarray(mask, bool)
        if self._fast:
            return self._act_fast(vector, mask)
        return int(self._predict(np.asarray(vector, np.float32).reshape(1, -1),
                                 mask.reshape(1, -1))[0])

    def shared_player(self) -> SB3Policy:
        """One player per frozen model (the first policy made of it): every env whose opponent
        plays this checkpoint is asked in one call."""
        return _SHARED_PLAYERS.setdefault(self.model, self)

    def act_many(self, vectors, masks) -> np.ndarray:
        """``act_tensor`` for many matches at once: (k, D) vectors, (k, A) masks -> (k,)."""
        masks = np.asarray(masks, bool)
        if self._fast:
            import torch

            policy = self.model.policy
            with torch.no_grad():
                obs = torch.as_tensor(np.asarray(vectors, np.float32))
                features = policy.extract_features(obs, policy.pi_features_extractor)
                logits = policy.action_net(policy.mlp_extractor.forward_actor(features)).numpy()
            return np.argmax(np.where(masks, logits, -np.inf), axis=1).astype(np.int64)
        return self._predict(np.asarray(vectors, np.float32), masks)

    def _act_fast(self, vector, mask: np.ndarray) -> int:
        import torch

        policy = self.model.policy
        with torch.no_grad():
            obs = torch.as_tensor(np.asarray(vector, np.float32)).reshape(1, -1)
            features = policy.extract_features(obs, policy.pi_features_extractor)
            logits = policy.action_net(policy.mlp_extractor.forward_actor(features))[0].numpy()
        return int(np.argmax(np.where(mask, logits, -np.inf)))

    @classmethod
    def load(cls, path: str | Path, role: str, device: str = "cpu") -> SB3Policy:
        """The checkpoint at ``path`` as a policy of ``role``. A file loaded before (the same
        path, size and modification time) shares its frozen model: a batch of matches that
        each build their opponent loads it once."""
        stat = Path(path).stat()
        model = _load_model(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, device)
        check_role(model, role, str(path))
        return cls(model, role, name=Path(path).stem)


_SHARED_PLAYERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@lru_cache(maxsize=32)
def _load_model(path: str, size: int, mtime_ns: int, device: str):
    from sb3_contrib import MaskablePPO

    return MaskablePPO.load(path, device=device)


# Progress is counted in steps. Recording a decision of the teacher is one env step, like a PPO
# step; fitting costs far less per sample (measured on the shared 2-core development machine: 0.4
# ms per sample and epoch for the slot investigator, against 1.9 ms per recorded decision and 2.7
# ms per PPO step), so the fit counts one step per this many samples and epochs. A bar counting
# these steps moves through imitation at about the speed it moves through PPO, so its time
# estimate holds throughout.
IMITATION_FIT_SAMPLES_PER_STEP = 8


def imitation_steps(samples: int, epochs: int) -> int:
    """What ``imitate(..., samples, epochs)`` reports to its ``progress`` callback in all:
    one step per decision recorded, one per ``IMITATION_FIT_SAMPLES_PER_STEP`` fitted."""
    return samples + samples * epochs // IMITATION_FIT_SAMPLES_PER_STEP


def imitate(model, role: str, tasks: Sequence[str], samples: int, epochs: int, seed: int = 0,
            seed_range: tuple[int, int] = TRAIN_SEED_RANGE,
            teacher: Callable[..., Policy] | None = None,
            progress: Callable[[int], Any] | None = None) -> float:
    """Warm-start ``model`` by imitating ``role``'s scripted baseline (or ``teacher``), a fresh
    one per match seeded with the match's seed, so the same ``seed`` records the same
    decisions (the baseline fraudster draws its tactics): play its matches on ``RoleEnv`` (seeds from ``seed_range``,
    ``tasks`` in turn), record (observation, mask, action), and fit the policy's masked action
    distribution by cross-entropy. Returns the last epoch's mean loss.

    ``progress(n)``, when given, is called as the work advances, ``imitation_steps(samples,
    epochs)`` in all (a progress bar's ``update``)."""
    import torch

    make = BASELINES[role] if teacher is None else teacher
    rng = np.random.default_rng(seed + 7)
    obs, masks, actions = [], [], []
    k = 0
    while len(actions) < samples:
        env = RoleEnv(role, task_id=tasks[k % len(tasks)])
        k += 1
        match_seed = int(rng.integers(*seed_range))
        player = make(seed=match_seed)
        o, _ = env.reset(seed=match_seed)
        done = False
        while not done:
            m = env.action_masks()
            a = player.act(o, m)
            obs.append(o)
            masks.append(m)
            actions.append(a)
            if progress is not None and len(actions) <= samples:
                progress(1)
            o, _, terminated, truncated, _ = env.step(a)
            done = terminated or truncated
    x = torch.as_tensor(np.asarray(obs, np.float32))
    m = np.asarray(masks, bool)
    y = torch.as_tensor(np.asarray(actions))
    policy = model.policy
    policy.set_training_mode(True)
    optimizer = torch.optim.Adam(policy.parameters(), lr=1e-3)
    loss_mean = float("nan")
    fit_steps, reported = imitation_steps(samples, epochs) - samples, 0
    batches = -(-len(y) // 256)
    for epoch in range(epochs):
        order = np.random.default_rng(seed + epoch).permutation(len(y))
        total = 0.0
        for b, i in enumerate(range(0, len(y), 256)):
            idx = order[i:i + 256]
            loss = -policy.get_distribution(x[idx], action_masks=m[idx]).log_prob(y[idx]).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            if progress is not None:
                done = fit_steps * (epoch * batches + b + 1) // (epochs * batches)
                if done > reported:
                    progress(done - reported)
                    reported = done
        loss_mean = total / len(y)
    policy.set_training_mode(False)
    return loss_mean


def _matchups(models: dict[str, Any]) -> list[tuple[dict[str, str], dict[str, Callable]]]:
    """(who plays each role, role -> policy factory(seed)); roles without a factory play their
    scripted baseline (the arena's default)."""
    for role, m in models.items():
        if isinstance(m, (str, os.PathLike)):  # (it failed later: 'str' has no 'predict')
            raise TypeError(f"models[{role!r}] is a path ({m!r}); give the loaded model, e.g. "
                            f"MaskablePPO.load(path) or SB3Policy.load(path, {role!r}).model")
    learned = {role: SB3Policy(m, role, name=f"learned-{role}") for role, m in models.items()}

    def fixed(p):
        return lambda seed: p

    def rand(role):
        return lambda seed: RandomPolicy(role, seed=seed)

    out: list[tuple[dict[str, str], dict[str, Callable]]] = [({}, {})]
    for role in ("investigator", "fraudster", "auditor"):
        if role in learned:
            out.append(({role: "learned"}, {role: fixed(learned[role])}))
        out.append(({role: "random"}, {role: rand(role)}))
        if role == "investigator":  # the shortcut PPO finds first, and every blind rule
            out.append(({role: "always_reject"}, {role: lambda seed: AlwaysReject(seed=seed)}))
            for name, make in BLIND_INVESTIGATORS.items():
                out.append(({role: name}, {role: lambda seed, make=make: make(seed=seed)}))
    if "investigator" in learned and "fraudster" in learned:
        out.append(({"investigator": "learned", "fraudster": "learned"},
                    {"investigator": fixed(learned["investigator"]),
                     "fraudster": fixed(learned["fraudster"])}))
    return out


def evaluate_models(models: dict[str, Any], tasks: Sequence[str], seeds: Sequence[int]
                    ) -> list[dict]:
    """Mean grader and returns per task and matchup on ``seeds``, and their standard errors
    (``grader_sem``, ``<role>_return_sem``), run on the arena (where an illegal action
    raises)."""
    from .arena import evaluate_matches, mean_metrics, standard_error

    rows = []
    for task in tasks:
        for players, factories in _matchups(models):
            def make(seed, factories=factories):
                return {role: f(seed) for role, f in factories.items()}

            per_match = evaluate_matches(task, list(seeds), make)
            res = mean_metrics(per_match)
            sem = {key: standard_error([m[key] for m in per_match]) for key in ("grader", *ROLES)}
            rows.append({"task": task,
                         **{f"{r}_policy": players.get(r, "scripted") for r in ROLES},
                         "grader": res["grader"], **{f"{r}_return": res[r] for r in ROLES},
                         "steps": res["steps"], "legit_rejected": res["legit_rejected"],
                         "grader_sem": sem["grader"],
                         **{f"{r}_return_sem": sem[r] for r in ROLES}})
    return rows


# What each name in an evaluation table means. Rows say "scripted" for a role's scripted
# baseline; the table prints the name `fraudarena play` takes for it, so that "scripted" is only
# ever the investigator.
SHOWN_AS = {"investigator": {"scripted": "scripted"}, "fraudster": {"scripted": "reactive"},
            "auditor": {"scripted": "heuristic"}}
MEANING = {
    "scripted": "ScriptedInvestigator", "reactive": "ReactiveFraudster (the scripted fraudster)",
    "heuristic": "HeuristicAuditor (the scripted auditor)",
    "learned": "the trained model", "random": "RandomPolicy (a uniform draw of a legal action)",
    "always_reject": "AlwaysReject", "category_rule": "CategoryRule",
    "surface_rule": "SurfaceRule", "first_sight_classifier": "FirstSightClassifier",
}


def player_meaning(name: str) -> str:
    if name.startswith("reject_all_but_gray@"):
        return f"RejectAllButGray at confidence {name.partition('@')[2]}"
    return MEANING.get(name, name)


def format_table(rows: list[dict], n_seeds: int) -> str:
    """The rows of ``evaluate_models`` as Markdown, with a key saying which policy each name
    in each role's column is."""
    def shown(row: dict, role: str) -> str:
        name = row[f"{role}_policy"]
        return SHOWN_AS[role].get(name, name)

    def error(row: dict, key: str, digits: int) -> str:  # rows may come without errors
        sem = row.get(f"{key}_sem")
        return "" if sem is None else f" ± {sem:.{digits}f}"

    sems = any("grader_sem" in r for r in rows)
    head = ("| task | investigator | fraudster | auditor | grader{0} | inv. return | "
            "fr. return{0} | aud. return | legit rejected |").format(" (± s.e.)" if sems else "")
    lines = [f"Evaluation on {n_seeds} held-out seeds (means over the seeds)", "", head,
             "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['task']} | {shown(r, 'investigator')} | {shown(r, 'fraudster')} | "
                     f"{shown(r, 'auditor')} | {r['grader']:.3f}{error(r, 'grader', 3)} | "
                     f"{r['investigator_return']:+.2f} | {r['fraudster_return']:+.2f}"
                     f"{error(r, 'fraudster_return', 2)} | "
                     f"{r['auditor_return']:+.2f} | {r['legit_rejected']:.0%} |")
    key = []
    for role in ("investigator", "fraudster", "auditor"):  # the table's column order
        names = dict.fromkeys(shown(r, role) for r in rows)
        key.append(f"{role}: " + ", ".join(f"{n} = {player_meaning(n)}" for n in names))
    lines += ["", "Players. " + "; ".join(key) + ". `legit rejected`: the share of legit ads "
              "that ended rejected."]
    return "\n".join(lines)

