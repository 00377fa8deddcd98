"""``validate`` (a clinical table and slide manifest) and ``simulate`` (a synthetic trial)."""

from __future__ import annotations

from pathlib import Path

import click

from ..encode._cli import slide_options, write_slides_from_options
from .app import cli, handle_errors, writing_into

__all__ = ["validate", "simulate"]


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
