"""``fraudarena_env.Referee``: the rules' state machine, with the text face's entry points on it.

The rules (``rules.referee.Referee``) take typed ops only and import no pydantic. This subclass
adds what DESIGN §1 promises a caller without PettingZoo, in the seed protocol's models:
``step_as_<role>``, ``apply_model``, ``build_<role>_observation``, ``episode_record`` and
``state``. Each is one call into ``faces.textface``, which does the translating and building;
the role logs and feedback lines are ``faces.narration``'s, told from the match's events. The
env, the server, the arena and the archive all run this class.
"""

from __future__ import annotations

from typing import Any

from .faces import narration, textface
from .models import (
    AdReviewAction,
    AdReviewObservation,
    AuditorAction,
    AuditorObservation,
    FraudsterAction,
    FraudsterObservation,
    RefereeState,
)
from .rules import referee as rules
from .rules.state import A, F, I


class Referee(rules.Referee):
    """One FraudArena match. ``reset_match`` starts it; roles act through ``step_as_<role>``
    (text face), ``faces.encoding.apply_index`` (tensor face) or ``apply`` (the rules' ops)."""

    def step_as_fraudster(self, action: FraudsterAction | dict) -> FraudsterObservation:
        self.apply_model("fraudster", action)
        return self.build_fraudster_observation()

    def step_as_investigator(self, action: AdReviewAction | dict) -> AdReviewObservation:
        self.apply_model("investigator", action)
        return self.build_investigator_observation()

    def step_as_auditor(self, action: AuditorAction | dict) -> AuditorObservation:
        self.apply_model("auditor", action)
        return self.build_auditor_observation()

    def apply_model(self, role: str, action: Any) -> float:
        """Validate a role's action model (or dict) and apply it; returns the actor's reward
        (see ``textface.apply_model``)."""
        return textface.apply_model(self, role, action)

    def build_fraudster_observation(self) -> FraudsterObservation:
        return textface.fraudster_observation(_started(self))

    def build_investigator_observation(self) -> AdReviewObservation:
        return textface.investigator_observation(_started(self))

    def build_auditor_observation(self) -> AuditorObservation:
        return textface.auditor_observation(_started(self))

    def episode_record(self) -> dict:
        return textface.episode_record(_started(self))

    # Each role's log, as the RefereeState carries it (the lists themselves: copy to change).
    @property
    def fraudster_log(self) -> list[dict]:
        return narration.logs(_started(self))[F]

    @property
    def investigator_log(self) -> list[dict]:
        return narration.logs(_started(self))[I]

    @property
    def auditor_log(self) -> list[dict]:
        return narration.logs(_started(self))[A]

    def proposal_log(self) -> list[dict]:
        """The fraudster's proposals and edits (``fraudster_proposals``)."""
        return narration.proposal_log(_started(self))

    @property
    def feedback(self) -> list[str]:
        """Each role's feedback line on its last action, in ``ROLES`` order."""
        return list(narration.narration(_started(self)).feedback)

    @property
    def state(self) -> RefereeState:
        """The whole match (for the in-process caller; remote roles get a sealed view)."""
        return textface.referee_state(_started(self))


def _started(referee: Referee) -> Referee:
    """``referee``, once a match has started; before that, an error that says so."""
    if referee.setup is None:
        raise RuntimeError("this Referee has no match yet: call reset_match(seed=...) first")
    return referee


__all__ = ["Referee"]
