"""Errors that stop a run before or during work with one line telling the user what to do."""


class TredError(Exception):
    """Base class: the message is shown to the user as is, without a traceback."""


class ConfigError(TredError):
    """A config value is unknown, of the wrong type or out of range."""


class DataError(TredError):
    """A dataset is missing, incomplete or unreadable."""


class NonFiniteLossError(TredError):
    """A loss term became NaN or infinite during training."""


class OutputError(TredError):
    """The run directory cannot be written (read-only, no permission, full disk)."""


class PenaltyScaleError(TredError):
    """A regularizer term dwarfs the cross-entropy at the first step: its weight is off by orders
    of magnitude for this backbone and image size (trainer.penalty_check)."""
