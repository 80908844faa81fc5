"""``python -m fraudarena_env`` runs the ``fraudarena`` command line."""

import sys

from .cli import main

sys.exit(main())
