"""User-facing errors.

Anything raised as a :class:`GantrainError` is a problem with the user's input
(config, data, checkpoint).  The command-line entry points print its message as
one paragraph and exit non-zero instead of showing a traceback.
"""


class GantrainError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do."""


class DatasetError(GantrainError):
    """A dataset is missing, empty, or laid out differently from what was configured."""


class CheckpointError(GantrainError):
    """A checkpoint is missing, unreadable, or does not match the requested run."""


class ConfigError(GantrainError):
    """Config values that are valid one by one but impossible together."""


class TrainingError(GantrainError):
    """Training cannot go on (a NaN loss, a failed checkpoint write, a dead data worker).

    The message says what happened, which checkpoint is intact and how to resume.
    """
