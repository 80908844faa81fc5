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

Entry points are named as strings, so registering imports neither the env nor the rules.
"""

from __future__ import annotations

import gymnasium
import pettingzoo

PETTINGZOO_ID = "fraudarena/fraudarena-v0"
GYMNASIUM_IDS = {"fraudster": "fraudarena/Fraudster-v0",
                 "investigator": "fraudarena/Investigator-v0",
                 "auditor": "fraudarena/Auditor-v0"}


def register() -> None:
    """Add FraudArena's ids to both registries (idempotent: an id already there is kept)."""
    if PETTINGZOO_ID not in pettingzoo.aec_registry:
        pettingzoo.register("aec", PETTINGZOO_ID, entry_point="fraudarena_env.fraudarena_v0:env")
    for role, env_id in GYMNASIUM_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(env_id, entry_point="fraudarena_env.role_env:RoleEnv",
                               vector_entry_point="fraudarena_env.gym_vector:RoleVectorEnv",
                               kwargs={"role": role})


__all__ = ["GYMNASIUM_IDS", "PETTINGZOO_ID", "register"]
