"""``tario-clinical`` command line.

Exit codes: 0 success, 1 analysis failure, 2 bad input (a message naming the file, row,
column or key; never a Python traceback). Set ``TARIO_CLINICAL_DEBUG=1`` to see tracebacks.

Modules: :mod:`.app` (the command group, error handling, logging), :mod:`.cohort_commands`
(``validate``, ``simulate``), :mod:`.study_commands` (``run``, ``report``, ``demo``),
:mod:`.decode_commands` (``decode``, ``survival``), :mod:`.encode_commands` (``encode``),
:mod:`.biomarker_commands` (``lock``, ``validate-biomarker``, ``demo-validation``).
"""

from __future__ import annotations

from . import (
    biomarker_commands,
    cohort_commands,
    decode_commands,
    encode_commands,
    study_commands,
)
from .app import cli, handle_errors

__all__ = ["main", "cli", "handle_errors"]

_COMMAND_MODULES = (
    cohort_commands,
    study_commands,
    decode_commands,
    encode_commands,
    biomarker_commands,
)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="tario-clinical")
