"""Errors a caller can act on."""

from __future__ import annotations

# How much of an action's repr a message quotes: enough to recognise it, never a whole ad copy.
ACTION_EXCERPT = 200


class IllegalActionError(ValueError):
    """An action that is outside the mask, fails validation, or comes in the wrong phase.

    The match is left unchanged, so the caller can fix the action and try again. The message
    quotes the start of a long action; ``action`` holds all of it.
    """

    def __init__(self, agent: str, action: object, reason: str):
        self.agent = agent
        self.action = action
        self.reason = reason
        shown = repr(action)
        if len(shown) > ACTION_EXCERPT:
            shown = shown[:ACTION_EXCERPT] + f"... ({len(shown)} characters)"
        super().__init__(f"illegal action by {agent}: {reason} (action: {shown})")

    def __reduce__(self):
        # rebuilt from what it was made of: a worker process (AsyncVectorEnv, SubprocVecEnv,
        # multiprocessing) pickles it to raise it in the parent
        return type(self), (self.agent, self.action, self.reason)


class OutOfTurnError(PermissionError, IllegalActionError):
    """A role tried to act while it is another role's turn."""

    def __init__(self, agent: str, action: object, reason: str):
        IllegalActionError.__init__(self, agent, action, reason)

    __reduce__ = IllegalActionError.__reduce__  # OSError's own comes first in the MRO
