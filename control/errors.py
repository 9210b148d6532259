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
    """A value the user gave is wrong: control's one input error. The CLI reports it as a usage
    error (exit 2) naming `option` when there is one; the web answers 400."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


# RunConfig field -> the option that sets it: "--" and the field with dashes, but for these
OPTION = {"acts": "--act", "dataset": "--data"}


def option_of(field: str | None) -> str | None:
    """The command-line option that sets a RunConfig field."""
    return OPTION.get(field, "--" + field.replace("_", "-")) if field else None
