"""Command-line checks the training scripts share.

Argparse ``type=`` functions that refuse a bad value as a usage error (exit code 2, the reason on
stderr, no traceback) before a script trains or writes anything, and what makes a run directory
hold a finished league (``selfplay.py``'s ``--out``, run by ``quick_seeds.py`` too). Standard
library only: a script imports it without torch.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path


def _number(text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None


def int_at_least(least: int) -> Callable[[str], int]:
    """An argparse ``type=``: an integer no smaller than ``least``."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value
    return parse


def int_between(least: int, most: int, why: str = "") -> Callable[[str], int]:
    """An argparse ``type=``: an integer from ``least`` to ``most``; ``why`` says why."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(
                f"must be from {least:,} to {most:,}{f' ({why})' if why else ''}, got {value}")
        return value
    return parse


def positive_float(text: str) -> float:
    """An argparse ``type=``: a number above 0 (a learning rate, a scale)."""
    value = _number(text, float)
    if not value > 0:  # nan too
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse ``type=``: a finite number of 0 or more (a reward's coefficient)."""
    value = _number(text, float)
    if not 0 <= value < float("inf"):  # nan too
        raise argparse.ArgumentTypeError(f"must be a finite number of 0 or more, got {text}")
    return value


def training_seed_refusal(seeds: Sequence[int], training: tuple[int, int], example: str
                          ) -> str | None:
    """Why ``seeds`` are not held out, or None: the first that falls in ``training`` (the range
    training matches draw from, end excluded); ``example`` names seeds to use instead."""
    lo, hi = training
    if (clash := next((s for s in seeds if lo <= s < hi), None)) is None:
        return None
    return (f"seed {clash} falls in the training seed range {lo}-{hi - 1}; use held-out seeds "
            f"such as {example}")


def held_out_seeds(parse: Callable[[str], list[int]], training: tuple[int, int], example: str
                   ) -> Callable[[str], list[int]]:
    """An argparse ``type=`` for seeds a table reports as held out: what ``parse`` reads, none of
    them in ``training`` (``training_seed_refusal``)."""
    def read(text: str) -> list[int]:
        seeds = parse(text)
        if why := training_seed_refusal(seeds, training, example):
            raise argparse.ArgumentTypeError(why)
        return seeds
    return read


def run_dir(text: str) -> str:
    """An argparse ``type=`` for ``--out``: a directory, new or existing, not a file."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file; give a directory for the run")
    return text


def league_files(out: Path) -> list[Path]:
    """What makes ``out`` hold a league (``selfplay.py``'s run): its ``config.json`` and the
    snapshots in ``pool/``; empty when there is none to lose."""
    out = Path(out)
    return [p for p in [out / "config.json"] if p.is_file()] + sorted(out.glob("pool/*/*.zip"))


def league_refusal(out: Path, option: str = "--out") -> str | None:
    """Why a league may not start in ``out`` without ``--overwrite``, or None when it may."""
    found = league_files(out)
    if not found:
        return None
    what = [p.name for p in found if p.suffix != ".zip"]
    if snapshots := sum(p.suffix == ".zip" for p in found):
        what.append(f"{snapshots} snapshot(s) in pool/")
    return (f"{option} {str(out)!r} already holds a league ({', '.join(what)}); give a new "
            f"{option}, or pass --overwrite to replace it")
