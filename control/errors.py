"""Errors the control package raises on purpose; the CLI prints each as one line."""


class ControlError(Exception):
    """Base of every control error."""


class BrokerUnreachableError(ControlError):
    """No broker answers at the configured URL."""


class StackError(ControlError):
    """`gradq up` could not start or reach what it needs."""


class RunRefusedError(ControlError):
    """A run cannot be created, extended or trained here as asked; the message says why."""


class UserInputError(ControlError, ValueError):
    """A value the user gave is wrong; a ValueError too, so callers that catch those still do."""
