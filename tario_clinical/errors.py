"""Exception types of tario_clinical.

Every error the toolkit raises on bad input derives from :class:`TarioClinicalError`, so the
CLI can turn it into exit code 2 with a readable message and no traceback. Messages name the
file, row, column or key, the value found and what is allowed.
"""

from __future__ import annotations

__all__ = [
    "TarioClinicalError",
    "SchemaError",
    "CohortError",
    "SlideError",
    "EncoderError",
    "ConfigError",
    "AnalysisError",
    "OutputError",
    "OutputLockedError",
    "TableError",
]


class TarioClinicalError(Exception):
    """Base class of every error raised by tario_clinical on bad input or a failed analysis."""

    #: exit code the CLI uses for this error (2 = bad input, 1 = analysis failure)
    exit_code: int = 2


class SchemaError(TarioClinicalError, ValueError):
    """A table violates its data contract.

    ``violations`` is a DataFrame with columns ``file, row, column, value, rule`` listing
    *every* violation found, not only the first.
    """

    def __init__(self, message: str, violations=None):  # noqa: ANN001 - DataFrame, lazy import
        super().__init__(message)
        self.violations = violations


class CohortError(TarioClinicalError, ValueError):
    """The clinical table or slide manifest cannot be turned into a cohort."""


class SlideError(TarioClinicalError, ValueError):
    """A slide cannot be opened, has no resolution, or holds no tissue."""


class EncoderError(TarioClinicalError, ValueError):
    """A model card or model file is invalid, or the model cannot be run."""


class ConfigError(TarioClinicalError, ValueError):
    """A run configuration (YAML) is invalid."""


class AnalysisError(TarioClinicalError, RuntimeError):
    """An analysis could not be carried out on valid input (e.g. a target with one class)."""

    exit_code = 1


class OutputError(TarioClinicalError, OSError):
    """An output location cannot be written (read-only, full disk, not a directory)."""


class OutputLockedError(OutputError):
    """An output folder is locked by another run (see ``tario_clinical._lock``).

    ``folder`` is the folder; ``holder`` the holder's record (``pid, host, started_utc,
    purpose``) or ``None`` when it could not be read.
    """

    def __init__(self, message: str, *, folder=None, holder=None):  # noqa: ANN001
        super().__init__(message)
        self.folder = folder
        self.holder = holder


class TableError(CohortError, SchemaError):
    """A table file (clinical table, slide manifest, scores, samples) cannot be read.

    The one error type of :func:`tario_clinical.tables.read_table`: missing file, unsupported
    format, not UTF-8, unparsable or without columns. It is both a :class:`CohortError` and a
    :class:`SchemaError`, the two types the readers of clinical tables and slide manifests
    raised before they shared one reader.
    """
