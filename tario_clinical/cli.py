"""``tario-clinical`` command line.

Exit codes: 0 success, 1 analysis failure, 2 bad input (a message naming the file, row,
column or key; never a Python traceback). Set ``TARIO_CLINICAL_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import TarioClinicalError

__all__ = ["main", "cli"]

log = logging.getLogger("tario_clinical")


def _fail(message: str, code: int) -> None:
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
            _fail(str(err), err.exit_code)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except MemoryError:
            _fail("out of memory; reduce --batch-size or the cohort size", 1)
        except OSError as err:
            if debug:
                raise
            where = f" ({err.filename})" if getattr(err, "filename", None) else ""
            _fail(f"{err.strerror or err}{where}", 2)
        except Exception as err:  # an analysis failure we did not anticipate
            if debug:
                raise
            _fail(
                f"analysis failed: {type(err).__name__}: {err} "
                "(rerun with TARIO_CLINICAL_DEBUG=1 for the traceback and report it)",
                1,
            )

    return wrapper


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tario-clinical")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """tario-clinical: H&E -> expression-derived representations -> decoders -> survival -> report."""
    _setup_logging(verbose, quiet)


# ----------------------------------------------------------------------------------- validate
@cli.command()
@click.option(
    "--clinical",
    "clinical",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Clinical table (CSV/TSV/Parquet/Excel), one row per patient.",
)
@click.option(
    "--slides",
    "slides",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Slide manifest (one row per slide; paths relative to it).",
)
@click.option("--check-paths", is_flag=True, help="Also require every slide file to exist.")
@handle_errors
def validate(clinical: Path, slides: Path | None, check_paths: bool) -> None:
    """Validate a clinical table (and slide manifest); print every problem, exit 2 if any."""
    from .cohort import load_cohort

    cohort = load_cohort(clinical, slides, check_paths=check_paths)
    n_slides = 0 if cohort.slides is None else len(cohort.slides)
    click.echo(
        f"ok: {len(cohort)} patients, {n_slides} slides; genotype columns: "
        f"{', '.join(cohort.genotype_columns) or 'none'}"
    )


# ----------------------------------------------------------------------------------- simulate
@cli.command()
@click.option("--n-patients", type=click.IntRange(min=10), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--n-genes", type=click.IntRange(8, 25_000), default=2000, show_default=True)
@click.option("--snr", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--with-slides", is_flag=True, help="Also write synthetic H&E slides and slides.csv.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def simulate(
    n_patients: int, seed: int, n_genes: int, snr: float, with_slides: bool, out: Path
) -> None:
    """Write a synthetic trial cohort (clinical.csv, representations.h5ad[, slides])."""
    import json

    from .provenance import atomic_write_text, ensure_output_dir
    from .simulate import simulate_trial

    ensure_output_dir(out)
    trial = simulate_trial(n_patients, seed=seed, n_genes=n_genes, snr=snr)
    paths = trial.write(out)
    truth = {
        "seed": seed,
        "attainable_auroc": trial.truth.attainable_auroc,
        "attainable_auroc_linear": trial.truth.attainable_auroc_linear,
        "effects": trial.truth.effects,
        "params": trial.truth.params,
    }
    atomic_write_text(out / "truth.json", json.dumps(truth, indent=2, sort_keys=True, default=str))
    if with_slides:
        from .simulate.slides import write_synthetic_slides

        manifest = write_synthetic_slides(trial, out, seed=seed)
        paths["slides"] = str(out / "slides.csv")
        click.echo(f"wrote {len(manifest)} slides")
    for name, path in paths.items():
        click.echo(f"{name}: {path}")


def _register_optional(group: click.Group) -> None:
    """Commands living next to the code they run (kept importable without torch)."""
    try:
        from .encode._cli import encode as encode_command
    except ImportError:  # pragma: no cover - the encode package is part of the distribution
        return
    group.add_command(encode_command, "encode")


_register_optional(cli)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="tario-clinical")


if __name__ == "__main__":  # pragma: no cover
    main()
