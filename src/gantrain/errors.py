"""User-facing errors, and the one for a missing optional extra.

Anything raised as a :class:`GantrainError` is a problem with the user's input
(config, data, checkpoint).  The command-line entry points print its message as
one paragraph and exit non-zero instead of showing a traceback.
"""

import importlib
from typing import Any


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


def require_extra(module: str, extra: str, feature: str) -> Any:
    """The optional ``module``, or one line that names the extra to install for ``feature``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f'{feature} needs the {extra} extra, which is not installed: pip install "gantrain[{extra}]" '
            f'(or pip install -e ".[{extra}]" in a checkout).'
        ) from None
