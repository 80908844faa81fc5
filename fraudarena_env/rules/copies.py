"""Copies that keep views: pickling and deep-copying objects whose numpy arrays are views of
one another.

A match's arrays alias on purpose: ``MatchState``'s scalar columns are views of its ``scalars``,
a ``Referee``'s per-slot arrays and ad rows are views of its match's rows in the state, an
observer's named blocks are views of its vector. Plain ``pickle`` and ``copy.deepcopy`` copy each
array on its own, so a copy's views no longer share memory with what they viewed, and the copy
silently drifts from the original once it plays on. ``KeepsViews`` pickles an object (and every
``KeepsViews`` inside it) with a pickler that writes a view as its root array, once, plus where
the view sits in it (``dtype``, shape, strides, byte offset), and rebuilds the view over the
copied root: the copy aliases exactly as the original does.
"""

from __future__ import annotations

import io
import pickle

import numpy as np


class KeepsViews:
    """A mixin: ``pickle`` and ``copy.deepcopy`` copy the object whole, its arrays' views of each
    other kept (see the module docstring). ``copy.copy`` is a deep copy too."""

    def __reduce_ex__(self, protocol):
        return loads, (dumps(self),)

    def __deepcopy__(self, memo):
        return loads(dumps(self))


class _ViewPickler(pickle.Pickler):
    def reducer_override(self, obj):
        if isinstance(obj, KeepsViews):  # its attributes, without its own __setstate__
            return _blank, (type(obj),), obj.__dict__, None, None, _set_dict
        if type(obj) is np.ndarray and isinstance(obj.base, np.ndarray):
            root = obj.base
            while isinstance(root.base, np.ndarray):
                root = root.base
            if root.flags.c_contiguous and all(s >= 0 for s in obj.strides):
                offset = obj.__array_interface__["data"][0] - \
                    root.__array_interface__["data"][0]
                return _view, (root, obj.dtype, obj.shape, obj.strides, offset)
        return NotImplemented


def dumps(obj) -> bytes:
    """``obj`` pickled with its arrays' views of each other kept."""
    out = io.BytesIO()
    _ViewPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return out.getvalue()


def loads(data: bytes):
    """The object ``dumps`` wrote."""
    return pickle.loads(data)


def _blank(cls):
    return cls.__new__(cls)


def _set_dict(obj, state: dict):
    obj.__dict__.update(state)
    return obj


def _view(root: np.ndarray, dtype, shape, strides, offset: int) -> np.ndarray:
    return np.ndarray(shape, dtype, buffer=root, offset=offset, strides=strides)


__all__ = ["KeepsViews", "dumps", "loads"]
