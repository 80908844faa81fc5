"""Old path of the game's catalogue, kept because scripts people copy import it
(``training/*.py``, ``benchmarks/bench_server.py``): it is ``fraudarena_env.rules.catalog`` itself
(one module object under two names). New code imports ``fraudarena_env.rules.catalog``."""

import sys

from .rules import catalog

sys.modules[__name__] = catalog
