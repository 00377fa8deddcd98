"""``lock`` (a biomarker's final decoder into an artefact), ``validate-biomarker`` (apply it to
another trial) and ``demo-validation`` (both on two simulated trials)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .app import cli, handle_errors, print_written, writing_into

__all__ = ["parse_cutoff", "lock_cmd", "validate_biomarker_cmd", "demo_validation"]


# ------------------------------------------------------------------------------ biomarkers
def parse_cutoff(value: str) -> Any:
    """``median``/``tertiles``/``prevalence`` or comma-separated numbers."""
    text = value.strip()
    if text in ("median", "tertiles", "prevalence"):
        return text
    try:
        nums = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use median, tertiles, prevalence or numbers separated by commas",
            param_hint="--cutoff",
        ) from None
    if not nums:
        raise click.BadParameter("no cut-off given", param_hint="--cutoff")
    return nums[0] if len(nums) == 1 else nums


@cli.command("lock")
@click.option("--clinical", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--representations", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", required=True, help="Binary column whose final decoder is locked.")
@click.option(
    "--cutoff",
    default="median",
    show_default=True,
    help="median, tertiles, prevalence, or numbers (comma-separated) on --cutoff-scale.",
)
@click.option(
    "--cutoff-scale",
    type=click.Choice(["quantile", "score", "probability"]),
    default="quantile",
    show_default=True,
)
@click.option(
    "--endpoint",
    default="os",
    show_default=True,
    help="Follow-up summary (<endpoint>_time/_event).",
)
@click.option("--n-splits", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--n-repeats", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option(
    "--ci-method",
    type=click.Choice(["jackknife", "bootstrap", "delong"]),
    default="jackknife",
    show_default=True,
    help="Interval of the development (cross-validated) AUROC.",
)
@click.option(
    "--p-method",
    type=click.Choice(["permutation", "jackknife", "delong"]),
    default="jackknife",
    show_default=True,
)
@click.option("--arrays", type=click.Choice(["json", "npz"]), default="json", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The artefact's .json file.",
)
@handle_errors
def lock_cmd(
    clinical: Path,
    representations: Path,
    target: str,
    cutoff: str,
    cutoff_scale: str,
    endpoint: str,
    n_splits: int,
    n_repeats: int,
    ci_method: str,
    p_method: str,
    arrays: str,
    seed: int,
    out: Path,
) -> None:
    """Decode TARGET on a development trial and lock its final decoder into an artefact."""
    import tario_clinical.decode as decode_mod

    from ..biomarker import lock_biomarker
    from ..cohort import load_cohort
    from ..errors import CohortError
    from ..pipeline import align_representations
    from ..schemas import read_representations

    cut = parse_cutoff(cutoff)
    values = [] if isinstance(cut, str) else [cut] if isinstance(cut, float) else cut
    if cutoff_scale != "score" and any(not 0 < v < 1 for v in values):
        raise click.BadParameter(
            f"{cutoff!r}: a {cutoff_scale} cut-off must lie in (0, 1)", param_hint="--cutoff"
        )
    cohort = load_cohort(clinical)
    if target not in cohort.clinical.columns:
        raise CohortError(
            f"--target {target!r} is not a column of {clinical}; columns: "
            f"{', '.join(map(str, cohort.clinical.columns))}"
        )
    reps = read_representations(representations)
    align_representations(reps, cohort, source=str(representations))
    res = decode_mod.decode(
        reps,
        cohort,
        targets=[target],
        n_splits=n_splits,
        n_repeats=n_repeats,
        ci_method=ci_method,  # type: ignore[arg-type]
        p_method=p_method,  # type: ignore[arg-type]
        n_jobs=-1,
        progress=False,
        seed=seed,
    )
    locked = lock_biomarker(
        res,
        target,
        representations=reps,
        cohort=cohort,
        cutoff=cut,
        cutoff_scale=cutoff_scale,  # type: ignore[arg-type]
        endpoint=endpoint or None,
        path=out,
        arrays=arrays,  # type: ignore[arg-type]
    )
    perf = locked.development["performance"]
    click.echo(f"locked {locked.name}: {out} (sha256 {locked.sha256})")
    click.echo(
        f"development AUROC {perf['auroc']:.3f} ({perf['low']:.3f}-{perf['high']:.3f}, "
        f"{perf['ci_method']}); n={perf['n']}, positives={perf['n_positive']}"
    )
    for c in locked.document["cutoffs"]:
        click.echo(
            f"cut-off {c['name']}: score {c['score']:.6g} (development quantile "
            f"{c['quantile']:.3f}, probability {c['probability']:.3f})"
        )


@cli.command("validate-biomarker")
@click.option(
    "--artefact",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Locked biomarker .json.",
)
@click.option("--clinical", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--representations", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--development-representations",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Development .h5ad: adds the cohort-membership classifier to the shift diagnostics.",
)
@click.option(
    "--endpoint", default="os", show_default=True, help="Survival endpoint ('' for none)."
)
@click.option("--arm", default="arm", show_default=True, help="Arm column ('' for none).")
@click.option("--covariates", default="", help="Comma-separated adjustment covariates.")
@click.option(
    "--tau", type=click.FloatRange(min=0, min_open=True), default=None, help="RMST horizon."
)
@click.option("--no-recalibrate", is_flag=True, help="Skip the (separate) logistic recalibration.")
@click.option(
    "--allow-encoder-mismatch",
    is_flag=True,
    help="Apply the biomarker to representations of another encoder/tiling (flagged).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def validate_biomarker_cmd(
    artefact: Path,
    clinical: Path,
    representations: Path,
    development_representations: Path | None,
    endpoint: str,
    arm: str,
    covariates: str,
    tau: float | None,
    no_recalibrate: bool,
    allow_encoder_mismatch: bool,
    seed: int,
    out: Path,
) -> None:
    """Apply a locked biomarker to another trial without refitting; write tables and figures."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")

    from ..biomarker import load_locked_biomarker, validate_biomarker
    from ..cohort import load_cohort
    from ..provenance import atomic_write

    locked = load_locked_biomarker(artefact)
    cohort = load_cohort(clinical)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = validate_biomarker(  # paths: read there and named in its errors
            locked,
            representations,
            cohort,
            endpoint=endpoint or None,
            arm=arm or None,
            covariates=[c.strip() for c in covariates.split(",") if c.strip()],
            tau=tau,
            recalibrate=not no_recalibrate,
            development=development_representations,
            allow_encoder_mismatch=allow_encoder_mismatch,
            seed=seed,
        )
    for w in caught:
        if issubclass(w.category, UserWarning):
            click.echo(f"warning: {w.message}", err=True)
    cohort.record_exclusions(res.exclusions, patients_only=True)
    with writing_into(out, "validate-biomarker"):
        written = res.write(out)
        written["exclusions"] = atomic_write(
            Path(out) / "exclusions.csv", lambda p: cohort.exclusions.to_csv(p, index=False)
        )
    d = res.discrimination.set_index("metric").loc["auroc"]
    c = res.calibration.set_index("metric")
    dev_perf = locked.development["performance"]
    click.echo(
        f"{locked.name} (sha256 {locked.sha256[:12]}): validation AUROC {d['estimate']:.3f} "
        f"({d['low']:.3f}-{d['high']:.3f}, DeLong; n={int(d['n'])}) vs development "
        f"{dev_perf['auroc']:.3f}; calibration intercept "
        f"{c.loc['calibration_intercept', 'estimate']:.2f}, slope "
        f"{c.loc['calibration_slope', 'estimate']:.2f}"
    )
    if res.shift is not None and res.shift.membership is not None:
        m = res.shift.membership.iloc[0]
        click.echo(f"cohort-membership AUROC {m['auroc']:.3f} ({m['low']:.3f}-{m['high']:.3f})")
    for note in res.notes:
        click.echo(f"note: {note}")
    print_written(written)


@cli.command("demo-validation")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_validation_out"),
    show_default=True,
)
@click.option("--n-patients", type=click.IntRange(min=60), default=300, show_default=True)
@click.option("--n-validation", type=click.IntRange(min=60), default=300, show_default=True)
@click.option(
    "--site-shift",
    type=click.FloatRange(min=0),
    default=0.5,
    show_default=True,
    help="Site/scanner shift of the validation trial's representations (noise-SD units).",
)
@click.option("--target", default="EGFR", show_default=True, help="The biomarker that is locked.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@handle_errors
def demo_validation(
    out: Path,
    n_patients: int,
    n_validation: int,
    site_shift: float,
    target: str,
    seed: int,
    no_progress: bool,
) -> None:
    """Two simulated trials from one biology: develop -> lock -> validate on the second trial.

    Representations are simulated directly (no slides). The second trial has its own sites
    with a site/scanner shift; ``validation_truth.json`` holds what the locked biomarker truly
    achieves there (Monte Carlo over fresh patients of that population).
    """
    import json
    import time

    from ..config import config_from_dict
    from ..pipeline import prepare, run_study
    from ..provenance import atomic_write_text
    from ..simulate import GENOTYPES, simulate_trial

    if target not in (*GENOTYPES, "responder"):
        raise click.BadParameter(
            f"{target!r}: choose one of {', '.join((*GENOTYPES, 'responder'))}",
            param_hint="--target",
        )
    t0 = time.perf_counter()
    with writing_into(out, "demo-validation"):
        trial = simulate_trial(
            n_patients,
            seed=seed,
            n_genes=500,
            second_trial={"n_patients": n_validation, "seed": seed + 1, "site_shift": site_shift},
        )
        trial.write(out / "data" / "development")
        second = trial.second_trial
        second.write(out / "data" / "validation")
        click.echo(
            f"[{time.perf_counter() - t0:5.1f}s] simulated {n_patients} development and "
            f"{n_validation} validation patients (site shift {site_shift:g})"
        )
        surv = {"endpoint": "os", "arm": "arm", "covariates": ["age", "ecog"]}
        cfg = config_from_dict(
            {
                "seed": seed,
                "cohort": {"clinical": "data/development/clinical.csv"},
                "representations": "data/development/representations.h5ad",
                "decode": {"targets": [*GENOTYPES, "responder"], "p_method": "jackknife"},
                "survival": {"score_target": "responder", "cutoff": "median", **surv},
                "design": {},
                "validation": {
                    "lock": {"target": target, "cutoff": "prevalence"},
                    "cohort": {"clinical": "data/validation/clinical.csv"},
                    "representations": "data/validation/representations.h5ad",
                    **surv,
                },
                "report": {"title": "tario_clinical demo: lock on one trial, validate on another"},
            },
            source="demo-validation",
            base=out.resolve(),
        )
        written = run_study(prepare(cfg), out, progress=not no_progress)
        from ..biomarker import load_locked_biomarker

        locked = load_locked_biomarker(written["locked_biomarker"])
        truth = second.locked_truth(locked.predict_proba, target, seed=seed)
        truth = {
            "target": target,
            "artefact_sha256": locked.sha256,
            "locked_truth": truth,
            "attainable_auroc_refitted": second.truth.attainable_auroc.get(target),
            "population": second.truth.population,
        }
        written["validation_truth"] = atomic_write_text(
            out / "validation_truth.json", json.dumps(truth, indent=1, sort_keys=True) + "\n"
        )
    click.echo(
        f"[{time.perf_counter() - t0:5.1f}s] done; true AUROC of the locked {target} biomarker "
        f"in the validation population: {truth['locked_truth']['auroc']:.3f}"
    )
    print_written(written)
