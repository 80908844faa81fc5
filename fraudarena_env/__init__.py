"""FraudArena: a three-role adversarial ad-fraud game for multi-agent RL.

>>> from fraudarena_env import fraudarena_v0
>>> env = fraudarena_v0.env(task_id="task_3")

Importing the package registers ``fraudarena/fraudarena-v0`` with PettingZoo
(``pettingzoo.make("aec", ...)``) and ``fraudarena/Fraudster-v0``, ``fraudarena/Investigator-v0``
and ``fraudarena/Auditor-v0`` with Gymnasium (``gymnasium.make``); see
:mod:`fraudarena_env.registration`. That imports gymnasium and PettingZoo, not the env: everything
below is imported lazily (on first attribute access).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, tuple[str, str | None]] = {
    # name -> (module, attribute or None for the module itself)
    "fraudarena_v0": (".fraudarena_v0", None),
    "RoleEnv": (".role_env", "RoleEnv"),
    "Referee": (".referee", "Referee"),
    "IllegalActionError": (".rules.errors", "IllegalActionError"),
    "FraudsterAction": (".models", "FraudsterAction"),
    "FraudsterObservation": (".models", "FraudsterObservation"),
    "AdReviewAction": (".models", "AdReviewAction"),
    "AdReviewObservation": (".models", "AdReviewObservation"),
    "InvestigatorAction": (".models", "InvestigatorAction"),
    "InvestigatorObservation": (".models", "InvestigatorObservation"),
    "AuditorAction": (".models", "AuditorAction"),
    "AuditorObservation": (".models", "AuditorObservation"),
    "AuditReport": (".models", "AuditReport"),
    "AuditFlag": (".models", "AuditFlag"),
    "RefereeState": (".models", "RefereeState"),
}

__all__ = ["__version__", *_LAZY]

from .registration import register as _register  # noqa: E402  (after the lazy table, on purpose)

_register()


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from . import fraudarena_v0 as fraudarena_v0
    from .models import AdReviewAction as AdReviewAction
    from .models import AdReviewObservation as AdReviewObservation
    from .models import AuditFlag as AuditFlag
    from .models import AuditorAction as AuditorAction
    from .models import AuditorObservation as AuditorObservation
    from .models import AuditReport as AuditReport
    from .models import FraudsterAction as FraudsterAction
    from .models import FraudsterObservation as FraudsterObservation
    from .models import InvestigatorAction as InvestigatorAction
    from .models import InvestigatorObservation as InvestigatorObservation
    from .models import RefereeState as RefereeState
    from .referee import Referee as Referee
    from .role_env import RoleEnv as RoleEnv
    from .rules.errors import IllegalActionError as IllegalActionError
