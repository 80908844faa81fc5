"""The tensor face's action catalogue: every action index stands for exactly one op.

The catalogue is fixed-size, whatever the task, so one policy can train across tasks. It lives
with the rules because legality is computed over it: each role module's ``legal_mask(state)``
returns one entry per index, in this order. ``faces.encoding`` turns indices into pydantic
models and back; the offsets below name each block of a role's catalogue.
"""

from __future__ import annotations

import numpy as np

from .actions import (
    CommitFinal,
    EndTurn,
    Flag,
    Investigate,
    Link,
    Modify,
    Op,
    Propose,
    Submit,
    Verdict,
)
from .catalog import (
    AUDIT_TRACK_A,
    AUDIT_TRACK_B,
    CATEGORIES,
    CONFIDENCE_BUCKETS,
    FRAUDSTER_EDITS,
    MAX_SLOTS,
    TACTICS,
    TARGETS,
    VERDICTS,
    nearest_bucket,
)

S = MAX_SLOTS
N_CAT = len(CATEGORIES)
N_T = len(TARGETS)
N_CONF = len(CONFIDENCE_BUCKETS)
N_VERDICT_OPS = len(VERDICTS) * N_CONF  # verdict ops per ad: every verdict at every confidence
# Every unordered pair of slots, once (a < b), and each pair's index.
PAIRS = np.array([(i, j) for i in range(S) for j in range(i + 1, S)], dtype=np.int64)
PAIR_INDEX = np.full((S, S), -1, np.int64)
PAIR_INDEX[PAIRS[:, 0], PAIRS[:, 1]] = np.arange(len(PAIRS))
PAIR_INDEX[PAIRS[:, 1], PAIRS[:, 0]] = np.arange(len(PAIRS))


def _fraudster_ops() -> list[Op]:
    ops: list[Op] = [Propose(c, t) for c in range(N_CAT) for t in range(len(TACTICS))]
    ops += [Modify(s, e) for s in range(S) for e in range(len(FRAUDSTER_EDITS))]
    return ops + [EndTurn(), CommitFinal()]


def _investigator_ops() -> list[Op]:
    ops: list[Op] = [Investigate(s, t) for s in range(S) for t in range(N_T)]
    ops += [Verdict(s, v, CONFIDENCE_BUCKETS[c]) for s in range(S)
            for v in range(len(VERDICTS)) for c in range(N_CONF)]
    ops += [Link(int(i), int(j)) for i, j in PAIRS]
    return ops + [EndTurn()]


def _auditor_ops() -> list[Op]:
    ops: list[Op] = [Flag("A", k - 1, f) for k in range(S + 1) for f in AUDIT_TRACK_A]
    ops += [Flag("B", s, f) for s in range(S) for f in AUDIT_TRACK_B]
    return ops + [Submit()]


OPS: dict[str, list[Op]] = {"fraudster": _fraudster_ops(),
                            "investigator": _investigator_ops(),
                            "auditor": _auditor_ops()}
N_ACTIONS = {role: len(ops) for role, ops in OPS.items()}

# Where each block of a role's catalogue starts.
F_PROPOSE, F_MODIFY = 0, N_CAT * len(TACTICS)
F_END = F_MODIFY + S * len(FRAUDSTER_EDITS)
F_COMMIT = F_END + 1
I_INVESTIGATE, I_VERDICT = 0, S * N_T
I_LINK = I_VERDICT + S * N_VERDICT_OPS
I_END = I_LINK + len(PAIRS)
A_FLAG_A, A_FLAG_B = 0, (S + 1) * len(AUDIT_TRACK_A)
A_SUBMIT = A_FLAG_B + S * len(AUDIT_TRACK_B)


def _key(op: Op) -> Op | None:
    """The op an index stands for, with what no index carries dropped: free text (rationale,
    notes, report), the confidence beyond its bucket, a link's order, a flag's severity. None
    when the op carries free copy, which no index stands for."""
    kind = type(op)
    if kind is Propose:
        free = op.ad_copy is not None or op.landing_page_blurb is not None or \
            op.targeting_summary is not None
        return None if free or op.tactic < 0 else Propose(op.category, op.tactic)
    if kind is Modify:
        free = op.new_ad_copy is not None or op.new_landing_page_blurb is not None
        return None if free or op.edit < 0 else Modify(op.slot, op.edit)
    if kind is Verdict:
        return Verdict(op.slot, op.verdict, nearest_bucket(op.confidence))
    if kind is Link:
        return Link(min(op.slot, op.other), max(op.slot, op.other))
    if kind is Flag:
        return Flag(op.track, op.slot, op.flag_type)
    if kind is Submit:
        return Submit()
    return op


_INDEX = {role: {_key(op): i for i, op in enumerate(ops)} for role, ops in OPS.items()}


def index_to_op(role: str, index: int) -> Op:
    return OPS[role][index]


def op_to_index(role: str, op: Op) -> int | None:
    """The index of an op, or None when it carries free text that no index stands for."""
    return _INDEX[role].get(_key(op))


__all__ = ["A_FLAG_A", "A_FLAG_B", "A_SUBMIT", "F_COMMIT", "F_END", "F_MODIFY", "F_PROPOSE",
           "I_END", "I_INVESTIGATE", "I_LINK", "I_VERDICT", "N_ACTIONS", "N_VERDICT_OPS", "OPS",
           "PAIRS", "PAIR_INDEX", "index_to_op", "op_to_index"]
