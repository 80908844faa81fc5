"""FraudArena in PettingZoo's and Gymnasium's registries: ``import fraudarena_env`` runs
:func:`register`, after which

* ``pettingzoo.make("aec", "fraudarena/fraudarena-v0", **cfg)`` is ``fraudarena_v0.env(**cfg)``
  (PettingZoo 1.27's ``aec_registry``; ``max_cycles=`` is passed on to the env);
* ``gymnasium.make("fraudarena/Fraudster-v0", **kwargs)`` (and ``Investigator-v0``,
  ``Auditor-v0``) is ``RoleEnv("fraudster", **kwargs)``, one role's seat against the others'
  opponents;
* ``gymnasium.make_vec("fraudarena/Fraudster-v0", num_envs=N, **kwargs)`` is
  ``gym_vector.RoleVectorEnv("fraudster", N, **kwargs)``, the same seat in N matches on the
  batched core (``vectorization_mode="sync"``: Gymnasium's ``SyncVectorEnv`` of N ``RoleEnv``s).

An id's role is fixed. Gymnasium lets keyword arguments override the kwargs an id was registered
with, so ``gymnasium.make("fraudarena/Investigator-v0", role="fraudster")`` would build the
fraudster's seat under the investigator's id; each id's entry points (``investigator_env``,
``investigator_vector_env``, ...) refuse a ``role=`` other than the id's own with a
``ValueError`` naming the id to use instead. ``RoleEnv`` and ``RoleVectorEnv``, built directly,
take any role.

Entry points are named as strings, so registering imports neither the env nor the rules.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium
import pettingzoo

PETTINGZOO_ID = "fraudarena/fraudarena-v0"
GYMNASIUM_IDS = {"fraudster": "fraudarena/Fraudster-v0",
                 "investigator": "fraudarena/Investigator-v0",
                 "auditor": "fraudarena/Auditor-v0"}


class SeatEntryPoint:
    """The entry point of one role's Gymnasium id: calling it builds ``target`` (``RoleEnv`` or
    ``RoleVectorEnv``, named as ``"module:Class"`` and imported on first use) for that role.

    The id is registered with ``kwargs={"role": role}``, and ``gymnasium.make`` and
    ``gymnasium.make_vec`` let a caller's keyword arguments replace those, so a ``role=`` for
    another role reaches this entry point, which refuses it: an id names one seat.
    """

    def __init__(self, role: str, target: str):
        self.role, self.target = role, target

    @property
    def metadata(self) -> dict[str, Any]:
        """The target's metadata; ``gymnasium.make`` reads its ``render_modes`` to wrap
        ``"ansi_list"`` in ``RenderCollection``, as it would for the class itself."""
        return self._load().metadata

    def _load(self) -> type:
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)

    def __call__(self, role: Any = None, **kwargs: Any) -> Any:
        """``target(self.role, **kwargs)``; ``role`` (the id's registered kwarg, or the
        caller's) must be the id's own role or None."""
        if role is not None and not (isinstance(role, str) and role == self.role):
            what = (f"for the {role}'s seat use {GYMNASIUM_IDS[role]!r} (and leave role= out)"
                    if isinstance(role, str) and role in GYMNASIUM_IDS
                    else f"leave role= out; each role's id is {GYMNASIUM_IDS}")
            raise ValueError(f"role={role!r} was given for {GYMNASIUM_IDS[self.role]!r}, the "
                             f"{self.role}'s seat, whose role is fixed: {what}")
        return self._load()(self.role, **kwargs)


# What each id's entry point strings name (``gymnasium.load_env_creator`` looks them up here).
fraudster_env = SeatEntryPoint("fraudster", "fraudarena_env.role_env:RoleEnv")
investigator_env = SeatEntryPoint("investigator", "fraudarena_env.role_env:RoleEnv")
auditor_env = SeatEntryPoint("auditor", "fraudarena_env.role_env:RoleEnv")
fraudster_vector_env = SeatEntryPoint("fraudster", "fraudarena_env.gym_vector:RoleVectorEnv")
investigator_vector_env = SeatEntryPoint("investigator",
                                         "fraudarena_env.gym_vector:RoleVectorEnv")
auditor_vector_env = SeatEntryPoint("auditor", "fraudarena_env.gym_vector:RoleVectorEnv")


def register() -> None:
    """Add FraudArena's ids to both registries (idempotent: an id already there is kept)."""
    if PETTINGZOO_ID not in pettingzoo.aec_registry:
        pettingzoo.register("aec", PETTINGZOO_ID, entry_point="fraudarena_env.fraudarena_v0:env")
    for role, env_id in GYMNASIUM_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point=f"{__name__}:{role}_env",
                               vector_entry_point=f"{__name__}:{role}_vector_env",
                               kwargs={"role": role})


__all__ = ["GYMNASIUM_IDS", "PETTINGZOO_ID", "SeatEntryPoint", "register"]
