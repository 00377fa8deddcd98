"""``validate`` (a clinical table and slide manifest) and ``simulate`` (a synthetic trial).

:func:`slide_options` adds the ``--with-slides`` options to ``simulate`` and
:func:`write_slides_from_options` acts on them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .app import cli, handle_errors, writing_into

__all__ = ["validate", "simulate", "slide_options", "write_slides_from_options"]


# ----------------------------------------------------------------------- --with-slides options
def slide_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding ``--with-slides``, ``--slides-per-patient``, ``--slide-px``, ``--slide-mpp``."""

    @click.option(
        "--with-slides", is_flag=True, help="Also write synthetic H&E slides + slides.csv."
    )
    @click.option("--slides-per-patient", type=click.IntRange(min=1), default=1, show_default=True)
    @click.option(
        "--slide-px", type=click.IntRange(min=128), default=1024, show_default=True,
        help="Synthetic slide side in pixels.",
    )  # fmt: skip
    @click.option(
        "--slide-mpp", type=click.FloatRange(min=0.1, max=4.0), default=1.0, show_default=True,
        help="Synthetic slide resolution (µm/px).",
    )  # fmt: skip
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def write_slides_from_options(
    trial: Any,
    out: str,
    *,
    seed: int,
    with_slides: bool,
    slides_per_patient: int = 1,
    slide_px: int = 1024,
    slide_mpp: float = 1.0,
) -> Any:
    """Write synthetic slides when ``with_slides``; returns the manifest or None."""
    if not with_slides:
        return None
    from ..simulate.slides import write_synthetic_slides

    logging.getLogger(__name__).info("writing synthetic slides to %s", out)
    return write_synthetic_slides(
        trial,
        out,
        seed=seed,
        slides_per_patient=slides_per_patient,
        size_px=slide_px,
        mpp=slide_mpp,
    )


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
    from ..cohort import load_cohort

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
@slide_options
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def simulate(
    n_patients: int,
    seed: int,
    n_genes: int,
    snr: float,
    with_slides: bool,
    slides_per_patient: int,
    slide_px: int,
    slide_mpp: float,
    out: Path,
) -> None:
    """Write a synthetic trial cohort (clinical.csv, representations.h5ad, truth.json[, slides])."""
    import json

    from ..provenance import atomic_write_text
    from ..simulate import simulate_trial

    with writing_into(out, "simulate"):
        trial = simulate_trial(n_patients, seed=seed, n_genes=n_genes, snr=snr)
        paths = trial.write(out)
        truth = {
            "seed": seed,
            "attainable_auroc": trial.truth.attainable_auroc,
            "attainable_auroc_linear": trial.truth.attainable_auroc_linear,
            "effects": trial.truth.effects,
            "params": trial.truth.params,
        }
        atomic_write_text(
            out / "truth.json", json.dumps(truth, indent=2, sort_keys=True, default=str)
        )
        manifest = write_slides_from_options(
            trial,
            str(out),
            seed=seed,
            with_slides=with_slides,
            slides_per_patient=slides_per_patient,
            slide_px=slide_px,
            slide_mpp=slide_mpp,
        )
        if manifest is not None:
            paths["slides"] = str(out / "slides.csv")
            click.echo(f"wrote {len(manifest)} slides")
    for name, path in paths.items():
        click.echo(f"{name}: {path}")
