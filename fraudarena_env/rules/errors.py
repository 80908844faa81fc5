"""Errors a caller can act on."""

from __future__ import annotations


class IllegalActionError(ValueError):
    """An action that is outside the mask, fails validation, or comes in the wrong phase.

    The match is left unchanged, so the caller can fix the action and try again.
    """

    def __init__(self, agent: str, action: object, reason: str):
        self.agent = agent
        self.action = action
        self.reason = reason
        super().__init__(f"illegal action by {agent}: {reason} (action: {action!r})")


class OutOfTurnError(PermissionError, IllegalActionError):
    """A role tried to act while it is another role's turn."""

    def __init__(self, agent: str, action: object, reason: str):
        IllegalActionError.__init__(self, agent, action, reason)
