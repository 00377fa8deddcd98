"""The ``tario-clinical`` command group and what every command shares.

:data:`cli` is the click group the command modules register with; :func:`handle_errors` turns
the toolkit's errors into exit codes (0 success, 1 analysis failure, 2 bad input: a message
naming the file, row, column or key, never a Python traceback; ``TARIO_CLINICAL_DEBUG=1``
shows tracebacks); :func:`prepare_from_yaml` and :func:`print_written` serve the commands that
run a study.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import TarioClinicalError

__all__ = [
    "cli",
    "handle_errors",
    "fail",
    "setup_logging",
    "prepare_from_yaml",
    "print_written",
    "writing_into",
]

log = logging.getLogger("tario_clinical")


def fail(message: str, code: int) -> None:
    """Print ``error: message`` on stderr and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into exit codes with a readable message and no traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = os.environ.get("TARIO_CLINICAL_DEBUG") == "1"
        try:
            return func(*args, **kwargs)
        except TarioClinicalError as err:
            if debug:
                raise
            fail(str(err), err.exit_code)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except MemoryError:
            fail("out of memory; reduce --batch-size or the cohort size", 1)
        except OSError as err:
            if debug:
                raise
            where = f" ({err.filename})" if getattr(err, "filename", None) else ""
            fail(f"{err.strerror or err}{where}", 2)
        except Exception as err:  # an analysis failure we did not anticipate
            if debug:
                raise
            fail(
                f"analysis failed: {type(err).__name__}: {err} "
                "(rerun with TARIO_CLINICAL_DEBUG=1 for the traceback and report it)",
                1,
            )

    return wrapper


def setup_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr: INFO by default, DEBUG with ``-vv``, WARNING with ``-q``."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(level)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tario-clinical")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """tario-clinical: H&E -> expression-derived representations -> decoders -> survival -> report."""
    setup_logging(verbose, quiet)


def prepare_from_yaml(config_path: Path) -> Any:
    """Load and validate a study YAML and every input it names (writes nothing)."""
    from ..config import load_config
    from ..pipeline import prepare

    return prepare(load_config(config_path))


def print_written(written: dict[str, Path]) -> None:
    """One ``name: path`` line per written file."""
    for name, path in written.items():
        click.echo(f"{name}: {path}")


@contextmanager
def writing_into(out: Path, command: str) -> Iterator[Path]:
    """Hold the output folder's advisory lock (:func:`tario_clinical._lock.output_lock`) while a
    command writes into it: a second run into the same folder stops at once with exit 2, naming
    the folder and the holder. The folder is created (and checked writable) first."""
    from .._lock import output_lock
    from ..provenance import ensure_output_dir

    ensure_output_dir(out)
    with output_lock(out, purpose=f"tario-clinical {command}") as folder:
        yield folder
