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


def holds_all(checks: Sequence[Check], st: MatchState, m: np.ndarray, grid, shape) -> np.ndarray:
    """Where every state check holds, over index grids (``shape``: the broadcast result). Form
    checks are skipped: the catalogue's ops are well formed by construction."""
    out = np.ones(shape, bool)
    for check in checks:
        if not check.form:
            out &= check.holds(st, m, grid)
    return out


__all__ = ["Check", "holds_all"]
