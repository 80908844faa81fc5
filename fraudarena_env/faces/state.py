"""The global state, for centralised training (PettingZoo's ``state()``).

A centralised critic (MAPPO's, QMIX's mixer, an asymmetric actor-critic) may read what no
player sees. The state is, in order: each role's own vector as its observer keeps it, in
``ROLES`` order (the investigator's with the ads its observation withholds while the fraudster
moves), then, per slot, what the referee knows of the ad there: its true label one-hot, which
ring it belongs to (one-hot: the task's drawn rings, then, on every task, ``ring.fraudster``, the
fraudster's own network, when it proposes into one) and its severity. An empty slot reads all
zeros there. Every entry lies in ``[-OBS_BOUND, OBS_BOUND]``, like the observations.

It is for training only: the env hands it out in process, and the server never does.
"""

from __future__ import annotations

import numpy as np

from ..rules.catalog import AD_IDS, LABELS, MAX_SLOTS, ROLES, TASKS
from ..rules.view import MatchView
from .encoding import Observer

N_RINGS = max(t.n_rings for t in TASKS.values()) + 1  # the drawn rings and the fraudster's own
TRUTH_COLUMNS = (*(f"label.{name}" for name in LABELS),
                 *(f"ring.{r}" for r in range(N_RINGS - 1)), "ring.fraudster", "severity")
ROLE_SIZES = {role: Observer(role).size for role in ROLES}
STATE_SIZE = sum(ROLE_SIZES.values()) + MAX_SLOTS * len(TRUTH_COLUMNS)


def state_vector(views: dict[str, np.ndarray], ref: MatchView) -> np.ndarray:
    """The state (``STATE_SIZE`` float32) from every role's own vector (``views``, by role, each
    as its observer keeps it) and the referee's truth about the queue's ads."""
    facts = {name: np.zeros(MAX_SLOTS, dtype) for name, dtype in
             (("label", np.int64), ("ring", np.int64), ("severity", np.float64))}
    slots = np.flatnonzero(ref.present)
    if len(slots):
        for name, values in ref.facts_of(slots, tuple(facts)).items():
            facts[name][slots] = values
    return np.concatenate([views[role] for role in ROLES] +
                          [truth_block(ref.present, ref.is_proposal, **facts)])


def truth_block(present: np.ndarray, is_proposal: np.ndarray, label: np.ndarray,
                ring: np.ndarray, severity: np.ndarray) -> np.ndarray:
    """The state's last block, from per-slot arrays (..., slots) of the ads' truth: (...,
    slots * len(TRUTH_COLUMNS)) float32, zeros where no ad is ``present`` (for one match, or for
    many at once)."""
    out = np.zeros(present.shape + (len(TRUTH_COLUMNS),), np.float32)
    out[..., :len(LABELS)] = np.where(present, label, -1)[..., None] == np.arange(len(LABELS))
    # the fraudster's own ring is numbered after the task's drawn ones (0 on a task without
    # rings); the state gives it the last index on every task, so it never reads as a drawn ring
    ring = np.where(is_proposal & (ring >= 0), N_RINGS - 1, ring)
    out[..., len(LABELS):-1] = np.where(present, ring, -1)[..., None] == np.arange(N_RINGS)
    out[..., -1] = np.where(present, severity, 0.0)
    return out.reshape(present.shape[:-1] + (-1,))


def state_feature_names() -> list[str]:
    """One name per entry of the state, in order: ``<role>:<the role's feature name>``, then
    ``truth[ad_001].label.legit`` and so on."""
    names = [f"{role}:{name}" for role in ROLES for name in Observer(role).feature_names()]
    names += [f"truth[{ad}].{column}" for ad in AD_IDS for column in TRUTH_COLUMNS]
    return names
