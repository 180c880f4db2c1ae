"""The error a checkpoint conversion raises: it names the file, key or field that is wrong."""

from __future__ import annotations

from medbench.errors import EXIT_USAGE, MedbenchError


class ConversionError(MedbenchError):
    """A source checkpoint cannot be converted faithfully; nothing was written."""

    exit_code = EXIT_USAGE
