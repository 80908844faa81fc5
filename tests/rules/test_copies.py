"""Copies keep views: a pickled or deep-copied object whose arrays view one another aliases the
same way, so it plays on as the original would (``rules.copies``)."""

from __future__ import annotations

import copy
import pickle

import numpy as np

from fraudarena_env.rules.copies import KeepsViews
from fraudarena_env.rules.referee import Referee
from fraudarena_env.rules.state import SCALARS, MatchState


class Holder(KeepsViews):
    def __init__(self):
        self.root = np.arange(24, dtype=np.int64).reshape(4, 6)
        self.row = self.root[2]
        self.column = self.root[:, 3]
        self.block = self.root[1:3, 2:5]
        self.flat = self.root.reshape(-1)[5:17:3]
        self.backwards = self.root[::-1, 0]  # a negative stride: copied, not aliased
        self.me = self  # a cycle


def test_every_view_of_a_copy_views_the_copys_root_where_the_original_did():
    for how in (copy.deepcopy, lambda h: pickle.loads(pickle.dumps(h))):
        original, twin = Holder(), how(Holder())
        assert twin.me is twin and twin.root is not original.root
        for name in ("row", "column", "block", "flat"):
            view = getattr(twin, name)
            np.testing.assert_array_equal(view, getattr(original, name))
            assert np.shares_memory(view, twin.root), name
            assert not np.shares_memory(view, original.root), name
        np.testing.assert_array_equal(twin.backwards, original.backwards)
        twin.root[:] = -1  # writes through the copy's root reach its views only
        assert (twin.row == -1).all() and (twin.block == -1).all() and (twin.flat == -1).all()
        assert (original.row >= 0).all()


def test_a_copied_state_keeps_its_scalar_columns_as_views_of_its_scalars():
    state = copy.deepcopy(MatchState.zeros(3))
    for i, name in enumerate(SCALARS):
        column = getattr(state, name)
        column[1] = 7 + i
        assert state.scalars[1, i] == 7 + i


def test_a_copied_referee_keeps_its_arrays_as_views_of_its_match():
    ref = Referee()
    ref.reset_match(seed=4, task_id="task_3")
    twin = copy.deepcopy(ref)
    for name in ("verdict", "present", "slot_row", "linked"):
        assert np.shares_memory(getattr(twin, name), getattr(twin.match_state, name)), name
    assert np.shares_memory(twin.rows.label, twin.match_state.rows.label)
    assert not np.shares_memory(twin.verdict, ref.verdict)
