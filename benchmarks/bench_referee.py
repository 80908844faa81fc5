"""Throughput of full scripted matches straight on the referee, against the lineage's figures.

A thin script over ``fraudarena_env.bench`` (also run by ``fraudarena bench``); see its docstring
for what is measured.

    python benchmarks/bench_referee.py            # ~3 s per task
    python benchmarks/bench_referee.py --quick    # ~1 s per task
"""

from fraudarena_env.bench import main_referee

if __name__ == "__main__":
    main_referee()
