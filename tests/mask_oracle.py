"""The legal-action mask from scratch, for the tests: every index of a role's catalogue whose op
the referee's one legality rule (``Referee.check``) accepts, less the flags already raised
(``Referee.repeats``: legal, but worth nothing, so the tensor face does not offer them). The
observers keep their masks incrementally, for speed; this is what they must equal."""

from __future__ import annotations

import numpy as np

from fraudarena_env.faces.encoding import OPS
from fraudarena_env.rules.referee import Referee


def legal_mask(role: str, ref: Referee) -> np.ndarray:
    """The int8 mask of ``role`` now: all zeros when it is not the role's turn."""
    if ref.current_role != role:
        return np.zeros(len(OPS[role]), np.int8)
    check, repeats = ref.check, ref.repeats
    return np.fromiter((check(role, op) is None and not repeats(op) for op in OPS[role]),
                       np.int8, len(OPS[role]))
