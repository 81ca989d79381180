"""User-facing errors.

An :class:`AdtoolError` is a mistake in the user's input (a path, a config key, a missing
weight file). The CLI prints its message on one line and exits non-zero; any other
exception is a bug and keeps its traceback. Every subclass takes a single message string,
because mmengine's ``build_from_cfg`` re-raises errors as ``type(e)(message)``.
"""


class AdtoolError(Exception):
    """A user mistake with a message that names the thing and the fix."""


class ConfigError(AdtoolError):
    """A config names a key, type or value that the component does not accept."""


class DataError(AdtoolError):
    """A dataset root, category or file is missing or malformed."""


class WeightsNotFoundError(AdtoolError):
    """Backbone weights could not be found offline."""
