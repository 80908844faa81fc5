"""The roles, declared once: each role's rules module, in turn order.

A role module (``rules.fraudster``, ``rules.investigator``, ``rules.auditor``) declares its
``ROLE`` name, the ``PHASE`` it acts in, ``CHECKS`` (per kind of op, the conditions it must
meet), ``legal_mask(state)``, its ``MOVES`` (the mixin of ``Referee`` that carries its actions
out), ``APPLY`` (what one of its ops does), ``END_TURN`` (how a full turn ends; None for a role
without turns) and ``EVENTS`` (the kinds of event its actions record). ``explain``,
``legal_mask`` and ``role_of`` here dispatch to them, ``Referee`` takes its bases and its
step's dispatch from ``MOVES``, ``APPLY`` and ``END_TURN``: the rules of a role are its own
module and one entry in ``ROLE_RULES``.
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
# in turn order (index = the role's index in ROLES): for the referee
MOVES = tuple(rules.MOVES for rules in ROLE_RULES.values())
APPLY = tuple(rules.APPLY for rules in ROLE_RULES.values())
END_TURN = tuple(rules.END_TURN for rules in ROLE_RULES.values())
# each kind of event, the index of the role whose actions record it
ROLE_OF = {kind: index for index, rules in enumerate(ROLE_RULES.values())
           for kind in rules.EVENTS}


def role_of(event) -> int:
    """The index of the role whose action ``event`` (a ``rules.events.Event``) records."""
    role = ROLE_OF.get(type(event))
    return event.role if role is None else role  # TurnEnded and Refused name it


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


__all__ = ["APPLY", "END_TURN", "MOVES", "ROLE_OF", "ROLE_RULES", "explain", "legal_mask", "role_of"]
