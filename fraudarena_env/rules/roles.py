"""The roles, declared once: each role's rules module, in turn order.

A role module (``rules.fraudster``, ``rules.investigator``, ``rules.auditor``) declares its
``ROLE`` name, the ``PHASE`` it acts in, ``CHECKS`` (per kind of op, the conditions it must
meet) and ``legal_mask(state)``. ``explain`` and ``legal_mask`` here dispatch to them; adding a
role is its own module and one entry in ``ROLE_RULES``.
"""

from __future__ import annotations

import numpy as np

from . import auditor, fraudster, investigator
from .catalog import PHASES, ROLES
from .state import MatchState

ROLE_RULES = {module.ROLE: module for module in (fraudster, investigator, auditor)}
assert tuple(ROLE_RULES) == ROLES  # the catalogue's turn order
# (role, kind of op) -> its checks, and each role's phase: one lookup each on the hot path.
_CHECKS = {(role, kind): checks for role, rules in ROLE_RULES.items()
           for kind, checks in rules.CHECKS.items()}
_PHASE = {role: rules.PHASE for role, rules in ROLE_RULES.items()}


def _excerpt(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def explain(st: MatchState, m: int, role: str, op) -> str | None:
    """Why ``op`` is illegal for ``role`` in match ``m`` now, or None when it is legal."""
    if st.phase[m] != _PHASE[role]:
        return f"it is not {role}'s turn (phase {PHASES[st.phase[m]]!r})"
    checks = _CHECKS.get((role, type(op)))
    if checks is None:
        return f"unknown {role} action {_excerpt(op)}"
    for check in checks:  # the first check the op fails names the reason
        if not check.holds(st, m, op):
            return check.reason(st, m, op)
    return None


def legal_mask(st: MatchState, role: str, out: np.ndarray | None = None) -> np.ndarray:
    """(N, actions of ``role``) int8: what ``role`` may pick in every match (zeros off its
    turn)."""
    return ROLE_RULES[role].legal_mask(st, out)


__all__ = ["ROLE_RULES", "explain", "legal_mask"]
