"""``fraudarena_v0``: the versioned PettingZoo entry point.

>>> from fraudarena_env import fraudarena_v0
>>> env = fraudarena_v0.env(task_id="task_3", render_mode="ansi")
>>> env.reset(seed=7)

``env(**cfg)`` returns the raw env wrapped only in PettingZoo's ``OrderEnforcingWrapper`` (a thin
subclass of it that forwards the per-turn calls directly; same checks, same errors). The raw env
validates actions itself (``IllegalActionError`` naming the agent, the action and the reason, a
charged penalty with ``illegal_action="penalize"``, or with ``illegal_action="terminate"`` the end
of the match with the offender charged ``illegal_reward``, as the classic envs'
``TerminateIllegalWrapper`` does), so that wrapper and ``AssertOutOfBoundsWrapper`` would only add
cost.
``raw_env(**cfg)`` returns the bare ``AECEnv``.

cfg: ``task_id`` (``task_1`` default, ``task_2``, ``task_3``, ``task_3_unseen``), ``render_mode``
(``None``, ``"ansi"``, ``"human"``: printed after reset and every step), ``illegal_action``
(``"raise"`` default, ``"penalize"``, ``"terminate"``), ``illegal_reward`` (terminate mode's charge,
default ``-1.0``),
``max_cycles`` (safety truncation, in cycles of one step per agent; default 1000) and the match knobs
``max_rounds``, ``max_proposals``, ``max_fraudster_actions_per_turn``,
``max_investigator_actions_per_turn``, ``allowed_categories``. The knobs and ``task_id`` can also be
given per match in ``reset(seed, options={...})``.
"""

from __future__ import annotations

from typing import Any

from pettingzoo.utils.env_logger import EnvLogger
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

from .env import raw_env as _raw_env


def _forward(name: str) -> property:
    def get(self):
        if not self._has_reset:
            raise AttributeError(f"{name} cannot be accessed before reset")
        return getattr(self.env, name)

    get.__name__ = name
    return property(get, doc=f"The wrapped env's ``{name}`` (after reset).")


class FraudArenaOrderEnforcingWrapper(OrderEnforcingWrapper):
    """PettingZoo's ``OrderEnforcingWrapper`` with the per-turn attributes and calls (``last``,
    ``observe``, ``step``, ``agents``, ``agent_selection``, the reward/termination/info dicts)
    forwarded directly instead of through ``__getattr__``. It enforces the same order (errors
    before reset, a warning when stepping after the end) and is an ``OrderEnforcingWrapper``, so
    ``agent_iter`` and every PettingZoo tool treat it as one."""

    agents = _forward("agents")
    agent_selection = _forward("agent_selection")
    rewards = _forward("rewards")
    terminations = _forward("terminations")
    truncations = _forward("truncations")
    infos = _forward("infos")

    @property
    def _cumulative_rewards(self) -> dict:
        return self.env._cumulative_rewards

    def last(self, observe: bool = True):
        if not self._has_reset:
            EnvLogger.error_observe_before_reset()
        return self.env.last(observe)

    def observe(self, agent: str) -> Any:
        if not self._has_reset:
            EnvLogger.error_observe_before_reset()
        return self.env.observe(agent)

    def step(self, action: Any) -> None:
        if not self._has_reset:
            EnvLogger.error_step_before_reset()
        elif not self.env.agents:
            self._has_updated = True
            EnvLogger.warn_step_after_terminated_truncated()
        else:
            self._has_updated = True
            self.env.step(action)

    def __str__(self) -> str:
        return str(self.env)


def raw_env(**cfg) -> _raw_env:
    """The bare FraudArena AEC env."""
    return _raw_env(**cfg)


def env(**cfg) -> FraudArenaOrderEnforcingWrapper:
    """The FraudArena AEC env, wrapped in (a thin subclass of) ``OrderEnforcingWrapper``."""
    return FraudArenaOrderEnforcingWrapper(_raw_env(**cfg))


__all__ = ["env", "raw_env", "FraudArenaOrderEnforcingWrapper"]
