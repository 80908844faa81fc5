"""A legality check: one condition an op must meet, written once for one op or for all of them.

``holds(state, m, op)`` is a pointwise numpy expression. Given one match index and one op it
answers for that op (the role module's ``explain``); given index grids (``m`` of shape
``(N, 1, ...)`` and an op whose fields are arrays) broadcasting answers for every op of every
match at once (``holds_all``, which the role modules' ``legal_mask`` use). ``reason`` words a failure for the player.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .state import MatchState


@dataclass(frozen=True)
class Check:
    name: str
    holds: Callable  # (state, m, op) -> bool or bool array
    reason: Callable[..., str]  # (state, m, op) -> why the op fails this check
    form: bool = False  # about the op's own fields only: true of every catalogue op


def _index_in(value, low: int, high: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) \
        and low <= value < high


def index_check(field: str, low: int, high: int, what: str) -> Check:
    """A form check: the op's ``field`` is an integer in ``[low, high)`` (an ad slot, an index
    into the catalogue), before any state check reads the state at it (a slot of -1 would
    wrap to the last ad, one past the end would raise IndexError halfway through a move)."""
    return Check(f"{field}_known", lambda st, m, op: _index_in(getattr(op, field), low, high),
                 lambda st, m, op: f"{field} must be {what} (an integer in [{low}, {high})), "
                                   f"got {getattr(op, field)!r}", form=True)


def unit_check(field: str) -> Check:
    """A form check: the op's ``field`` is a number in [0, 1] (a confidence, a severity)."""
    def holds(st, m, op) -> bool:
        value = getattr(op, field)
        return isinstance(value, (int, float, np.integer, np.floating)) and \
            not isinstance(value, (bool, np.bool_)) and 0.0 <= value <= 1.0
    return Check(f"{field}_in_unit", holds,
                 lambda st, m, op: f"{field} must be a number in [0, 1], got "
                                   f"{getattr(op, field)!r}", form=True)


def holds_all(checks: Sequence[Check], st: MatchState, m: np.ndarray, grid, shape) -> np.ndarray:
    """Where every state check holds, over index grids (``shape``: the broadcast result). Form
    checks are skipped: the catalogue's ops are well formed by construction."""
    out = np.ones(shape, bool)
    for check in checks:
        if not check.form:
            out &= check.holds(st, m, grid)
    return out


__all__ = ["Check", "holds_all", "index_check", "unit_check"]
