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
from .encode._cli import encode as encode_command
from .encode._cli import slide_options, write_slides_from_options
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


# ------------------------------------------------------------------------------ run / report
def _prepare_from_yaml(config_path: Path) -> Any:
    from .config import load_config
    from .pipeline import prepare

    return prepare(load_config(config_path))


def _print_written(written: dict[str, Path]) -> None:
    for name, path in written.items():
        click.echo(f"{name}: {path}")


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
    from .pipeline import run_study

    prepared = _prepare_from_yaml(config_path)
    _print_written(run_study(prepared, out, progress=not no_progress))


@cli.command()
@click.option(
    "--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def report(config_path: Path, out: Path) -> None:
    """Analyses and report from existing representations (the config's 'representations' file)."""
    from .errors import ConfigError
    from .pipeline import run_study

    prepared = _prepare_from_yaml(config_path)
    if prepared.representations is None:
        raise ConfigError(
            f"{config_path}: key 'representations' is required by `report` (use `run` to encode first)"
        )
    _print_written(run_study(prepared, out, progress=False))


# ------------------------------------------------------------------------------ decode
@cli.command("decode")
@click.option("--clinical", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--representations", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--targets",
    default="EGFR,KRAS,STK11,PTEN,responder",
    show_default=True,
    help="Comma-separated binary columns to decode.",
)
@click.option("--n-splits", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--n-repeats", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--group-by", type=click.Choice(["site", "cancer_type"]), default=None)
@click.option(
    "--ci-method",
    type=click.Choice(["jackknife", "bootstrap", "delong"]),
    default="jackknife",
    show_default=True,
    help="AUROC interval: re-runs of the whole nested CV (jackknife, bootstrap) or DeLong on "
    "out-of-fold scores (anti-conservative, comparison only).",
)
@click.option(
    "--p-method",
    type=click.Choice(["permutation", "jackknife", "delong"]),
    default="permutation",
    show_default=True,
    help="p-value of AUROC > 0.5: exact permutation test re-running the whole nested CV, "
    "jackknife Wald test (cheap at scale) or DeLong (comparison only).",
)
@click.option("--n-permutations", type=click.IntRange(min=1), default=99, show_default=True)
@click.option("--jobs", type=int, default=-1, show_default=True, help="Processes (-1: all cores).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def decode_cmd(
    clinical: Path,
    representations: Path,
    targets: str,
    n_splits: int,
    n_repeats: int,
    group_by: str | None,
    ci_method: str,
    p_method: str,
    n_permutations: int,
    jobs: int,
    no_progress: bool,
    seed: int,
    out: Path,
) -> None:
    """Decode binary targets from representations with patient-level nested CV."""
    import json

    from .config import config_from_dict
    from .pipeline import prepare
    from .provenance import atomic_write, atomic_write_text, ensure_output_dir

    cfg = config_from_dict(
        {
            "seed": seed,
            "cohort": {"clinical": str(clinical)},
            "representations": str(representations),
            "decode": {
                "targets": [t.strip() for t in targets.split(",") if t.strip()],
                "n_splits": n_splits,
                "n_repeats": n_repeats,
                "group_by": group_by,
            },
            "survival": None,
            "design": None,
        },
        source="command line",
    )
    prepared = prepare(cfg)
    import tario_clinical.decode as decode_mod

    res = decode_mod.decode(
        prepared.representations,
        prepared.cohort,
        targets=list(cfg.decode.targets),
        n_splits=n_splits,
        n_repeats=n_repeats,
        group_by=group_by,
        ci_method=ci_method,  # type: ignore[arg-type]
        p_method=p_method,  # type: ignore[arg-type]
        n_permutations=n_permutations,
        n_jobs=jobs,
        progress=False if no_progress else None,
        seed=seed,
    )
    ensure_output_dir(out)
    summary = res.summary()
    atomic_write(out / "decode_summary.csv", lambda p: summary.to_csv(p, index=False))
    atomic_write(out / "oof_scores.csv", lambda p: res.oof.to_csv(p, index=False))
    atomic_write(
        out / "exclusions.csv", lambda p: prepared.cohort.exclusions.to_csv(p, index=False)
    )
    atomic_write_text(
        out / "decode.json", json.dumps(res.to_dict(), indent=1, sort_keys=True, default=str)
    )
    click.echo(summary.to_string(index=False))


# ------------------------------------------------------------------------------ survival
@cli.command("survival")
@click.option("--clinical", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--scores",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="oof_scores.csv from `decode` (patient_id, target, repeat, score) or a patient_id,score table.",
)
@click.option(
    "--target", default=None, help="Which decoded target's score to use (with a decode OOF table)."
)
@click.option(
    "--endpoint", default="os", show_default=True, help="Uses <endpoint>_time and <endpoint>_event."
)
@click.option(
    "--cutoff", type=click.Choice(["median", "tertiles"]), default="median", show_default=True
)
@click.option("--arm", default=None, help="Treatment arm column for the interaction analysis.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def survival_cmd(
    clinical: Path,
    scores: Path,
    target: str | None,
    endpoint: str,
    cutoff: str,
    arm: str | None,
    seed: int,
    out: Path,
) -> None:
    """Risk groups at cross-fitted cut-offs: KM, log-rank, Cox, RMST, C-index, interaction."""
    import json

    import numpy as np
    import pandas as pd

    from . import survival
    from .cohort import load_cohort, read_table
    from .errors import SchemaError
    from .provenance import atomic_write, atomic_write_text, ensure_output_dir

    cohort = load_cohort(clinical)
    sc = read_table(scores)
    if "target" in sc.columns:
        if target is None or target not in set(sc["target"]):
            raise SchemaError(
                f"{scores}: pass --target, one of {', '.join(sorted(set(sc['target'])))}"
            )
        sc = sc[sc["target"] == target]
    if "score" not in sc.columns or "patient_id" not in sc.columns:
        raise SchemaError(
            f"{scores}: needs columns patient_id and score (found {', '.join(sc.columns)})"
        )
    sc = sc.assign(score=pd.to_numeric(sc["score"], errors="coerce"))
    bad = sc["score"].isna()
    if bad.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(bad.to_numpy())[:5])
        raise SchemaError(f"{scores}: column score is not a number at row(s) {rows}")
    series = sc.groupby("patient_id")["score"].mean()
    res = survival.stratify(
        cohort, series, f"{endpoint}_time", f"{endpoint}_event", cutoff=cutoff, arm=arm, seed=seed
    )
    ensure_output_dir(out)
    atomic_write_text(
        out / "survival.json", json.dumps(res.to_dict(), indent=1, sort_keys=True, default=str)
    )
    display = res.km_plot()
    fig = getattr(display, "figure_", None) or getattr(display, "figure", None)
    if fig is not None:
        atomic_write(out / "km.png", lambda p: fig.savefig(p, format="png", dpi=120))
    atomic_write(out / "exclusions.csv", lambda p: cohort.exclusions.to_csv(p, index=False))
    click.echo(f"wrote {out / 'survival.json'}")


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

    from .config import config_from_dict
    from .pipeline import prepare, run_study
    from .provenance import ensure_output_dir
    from .simulate import simulate_trial
    from .simulate.slides import write_synthetic_slides

    t0 = time.perf_counter()
    ensure_output_dir(out)
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
    written = run_study(prepare(cfg), out, progress=not no_progress)
    click.echo(f"[{time.perf_counter() - t0:5.1f}s] done")
    _print_written(written)


# ------------------------------------------------------------------------------ biomarkers
def _parse_cutoff(value: str) -> Any:
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

    from .biomarker import lock_biomarker
    from .cohort import load_cohort
    from .errors import CohortError
    from .pipeline import align_representations
    from .schemas import read_representations

    cut = _parse_cutoff(cutoff)
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

    from .biomarker import load_locked_biomarker, validate_biomarker
    from .cohort import load_cohort
    from .provenance import atomic_write
    from .schemas import read_representations

    locked = load_locked_biomarker(artefact)
    cohort = load_cohort(clinical)
    reps = read_representations(representations)
    dev = (
        None
        if development_representations is None
        else read_representations(development_representations)
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = validate_biomarker(
            locked,
            reps,
            cohort,
            endpoint=endpoint or None,
            arm=arm or None,
            covariates=[c.strip() for c in covariates.split(",") if c.strip()],
            tau=tau,
            recalibrate=not no_recalibrate,
            development=dev,
            allow_encoder_mismatch=allow_encoder_mismatch,
            seed=seed,
        )
    for w in caught:
        if issubclass(w.category, UserWarning):
            click.echo(f"warning: {w.message}", err=True)
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
    _print_written(written)


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

    from .config import config_from_dict
    from .pipeline import prepare, run_study
    from .provenance import atomic_write_text, ensure_output_dir
    from .simulate import GENOTYPES, simulate_trial

    if target not in (*GENOTYPES, "responder"):
        raise click.BadParameter(
            f"{target!r}: choose one of {', '.join((*GENOTYPES, 'responder'))}",
            param_hint="--target",
        )
    t0 = time.perf_counter()
    ensure_output_dir(out)
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
    from .biomarker import load_locked_biomarker

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
    _print_written(written)


cli.add_command(encode_command, "encode")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="tario-clinical")


if __name__ == "__main__":  # pragma: no cover
    main()
