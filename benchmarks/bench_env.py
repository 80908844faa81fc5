"""Throughput of the FraudArena AEC env against PettingZoo's connect_four_v3, in one process.

A thin script over ``fraudarena_env.bench`` (also run by ``fraudarena bench``); see its docstring
for what is measured.

    python benchmarks/bench_env.py            # ~3 s per env
    python benchmarks/bench_env.py --quick    # ~1 s per env
"""

from fraudarena_env.bench import main_env

if __name__ == "__main__":
    main_env()
