"""Speed benchmarks: the AEC env against PettingZoo's connect_four_v3, the referee on its own, and
the vector env against the scalar one.

The benchmarks are scripts in the checkout, to read top to bottom (and copy):
``benchmarks/bench_env.py`` times the wrapped env against connect_four_v3 in the same process,
``benchmarks/bench_referee.py`` times full scripted matches on the referee against the lineage's
figures, ``benchmarks/bench_vector.py`` times ``VectorFraudArena`` at several batch sizes against
the scalar shared-space env. ``fraudarena bench`` runs them from the checkout the package is installed from (``pip
install -e``), as ``fraudarena train`` runs ``training/selfplay.py``. This module holds only what
the command needs: its options (the scripts take the same ones) and the loader.

    fraudarena bench                 # ~3 s per measurement
    fraudarena bench --quick         # ~1 s per measurement
    python benchmarks/bench_env.py   # env section only
    python benchmarks/bench_referee.py --quick
    fraudarena bench --section vector
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

from .rules.catalog import TASK_IDS

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = {"env": "bench_env.py", "referee": "bench_referee.py", "vector": "bench_vector.py"}


def add_arguments(parser: argparse.ArgumentParser, sections: bool = True,
                  memory: bool = True) -> None:
    """The options of ``fraudarena bench`` (``sections``: ``--section``, the command's only)."""
    parser.add_argument("--quick", action="store_true",
                        help="about 1 s per measurement instead of 3 s")
    parser.add_argument("--seconds", type=_positive_float, default=None,
                        help="seconds per measurement (overrides --quick)")
    parser.add_argument("--tasks", nargs="+", default=list(TASK_IDS), choices=list(TASK_IDS),
                        metavar="TASK",
                        help=f"tasks to time (default: all of {', '.join(TASK_IDS)})")
    if sections:
        parser.add_argument("--section", choices=("all", *SCRIPTS), default="all",
                            help="which benchmark to run (default: all)")
    if memory:
        parser.add_argument("--no-memory", action="store_true",
                            help="skip the env's memory-per-instance measurement")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_SECONDS:g} "
                                         f"seconds, got {text!r}")
    return value


MAX_SECONDS = 3600.0  # per measurement: an hour, far past any need (inf never ends)


def seconds(args: argparse.Namespace) -> float:
    """Seconds per measurement: ``--seconds``, else 1 with ``--quick``, else 3."""
    return args.seconds if args.seconds is not None else (1.0 if args.quick else 3.0)


def load(section: str) -> types.ModuleType:
    """The benchmark script of ``section`` (a key of ``SCRIPTS``), imported from the checkout."""
    name = f"fraudarena_bench_{section}"
    if name in sys.modules:
        return sys.modules[name]
    path = BENCHMARKS / SCRIPTS[section]
    if not path.is_file():
        raise SystemExit(f"fraudarena bench runs benchmarks/{SCRIPTS[section]} from a checkout "
                         f"of the repository, and there is none at {BENCHMARKS.parent}. Clone "
                         "the repository and install it with: pip install -e \".[dev]\"")
    from .cli import load_script

    return load_script(path, name)


def run(args: argparse.Namespace) -> dict:
    """Run the sections ``args`` asks for (``fraudarena bench``)."""
    section = getattr(args, "section", "all")
    results: dict = {}
    if section in ("all", "env"):
        results["env"] = load("env").run(seconds(args), args.tasks, memory=not args.no_memory)
    if section in ("all", "referee"):
        if results:
            print()
        results["referee"] = load("referee").run(seconds(args), args.tasks)
    if section in ("all", "vector"):
        if results:
            print()
        envs = (1, 64, 1024) if args.quick else (1, 64, 1024, 4096)
        results["vector"] = load("vector").run("task_3" if "task_3" in args.tasks else
                                               args.tasks[0], envs, seconds(args))
    return results
