"""``run`` and ``report`` (a study from one YAML file) and ``demo`` (the embedded default study)."""

from __future__ import annotations

from pathlib import Path

import click

from .app import cli, handle_errors, prepare_from_yaml, print_written, writing_into

__all__ = ["run", "report", "demo"]


# ------------------------------------------------------------------------------ run / report
@cli.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Study YAML (see tario_clinical.config).",
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@handle_errors
def run(config_path: Path, out: Path, no_progress: bool) -> None:
    """Run the whole pipeline from one YAML file (encode if configured, decode, survival, report)."""
    from ..pipeline import run_study

    prepared = prepare_from_yaml(config_path)  # every input checked; nothing written yet
    with writing_into(out, "run"):
        written = run_study(prepared, out, progress=not no_progress)
    print_written(written)


@cli.command()
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def report(config_path: Path, out: Path) -> None:
    """Analyses and report from existing representations (the config's 'representations' file)."""
    from ..errors import ConfigError
    from ..pipeline import run_study

    prepared = prepare_from_yaml(config_path)
    if prepared.representations is None:
        raise ConfigError(
            f"{config_path}: key 'representations' is required by `report` (use `run` to encode first)"
        )
    with writing_into(out, "report"):
        written = run_study(prepared, out, progress=False)
    print_written(written)


# ------------------------------------------------------------------------------ demo
@cli.command()
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_out"),
    show_default=True,
)
@click.option("--n-patients", type=click.IntRange(min=40), default=120, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@handle_errors
def demo(out: Path, n_patients: int, seed: int, no_progress: bool) -> None:
    """The embedded default: synthetic trial with slides -> encode (demo model) -> decode -> survival -> report."""
    import time

    t0 = time.perf_counter()
    with writing_into(out, "demo"):
        written = _demo(out, n_patients, seed, no_progress, t0)
    click.echo(f"[{time.perf_counter() - t0:5.1f}s] done")
    print_written(written)


def _demo(out: Path, n_patients: int, seed: int, no_progress: bool, t0: float) -> dict[str, Path]:
    import time

    from ..config import config_from_dict
    from ..pipeline import prepare, run_study
    from ..simulate import simulate_trial
    from ..simulate.slides import write_synthetic_slides

    data = out / "data"
    trial = simulate_trial(n_patients, seed=seed, n_genes=500)
    trial.write(data)
    write_synthetic_slides(trial, data, seed=seed)
    click.echo(
        f"[{time.perf_counter() - t0:5.1f}s] simulated {n_patients} patients with slides -> {data}"
    )
    cfg = config_from_dict(
        {
            "seed": seed,
            "cohort": {"clinical": "data/clinical.csv", "slides": "data/slides.csv"},
            "encode": {"model": "demo"},
            "decode": {"targets": ["EGFR", "KRAS", "STK11", "PTEN", "responder"]},
            "survival": {
                "endpoint": "os",
                "score_target": "responder",
                "cutoff": "median",
                "arm": "arm",
                "covariates": ["age", "ecog"],
            },
            "design": {},
            "report": {"title": "tario_clinical demo: synthetic trial"},
        },
        source="demo",
        base=out.resolve(),
    )
    return run_study(prepare(cfg), out, progress=not no_progress)
