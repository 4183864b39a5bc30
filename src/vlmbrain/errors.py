"""Exceptions raised on bad user input.

Every user-facing error is one of these; the CLI prints ``str(err)`` as one line and exits
non-zero (a traceback only with ``--debug``). They subclass builtins so that callers can
catch them as usual (nilearn's ``DimensionError`` pattern).
"""


class VlmbrainError(Exception):
    """Base class of every error vlmbrain raises on user input."""


class ConfigError(VlmbrainError, ValueError):
    """A configuration key or value is unknown or invalid."""


class InputFileError(VlmbrainError, OSError):
    """An input file is missing, unreadable, truncated or of an unsupported kind."""


class DimensionError(VlmbrainError, ValueError):
    """Arrays or files disagree in shape (TR counts, grayordinates, neurons)."""


class ModelNotAvailableError(VlmbrainError, LookupError):
    """Model weights cannot be found (offline, not in the cache, wrong path)."""


class MissingDependencyError(VlmbrainError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""
