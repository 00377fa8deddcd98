"""The whole study run: cohort -> (encode) -> decode -> stratify -> design -> report.

:func:`prepare` loads and validates *everything* (configuration, clinical table, slide manifest,
representations, targets, covariates) before any output is written, so bad input never leaves
partial files behind. :func:`run_study` then runs the analyses and writes the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import StudyConfig, ValidationConfig
from .errors import ConfigError, SchemaError

__all__ = [
    "PreparedStudy",
    "ValidationInputs",
    "prepare",
    "run_study",
    "align_representations",
    "design_inputs_from_stratification",
    "read_spatial_samples",
    "iter_spatial_samples",
]

log = logging.getLogger("tario_clinical")


@dataclass
class PreparedStudy:
    """Validated inputs of a study run."""

    config: StudyConfig
    cohort: Any
    representations: Any | None
    input_files: dict[str, Path] = field(default_factory=dict)
    validation: ValidationInputs | None = None
    other_representations: Any | None = None  # analyses.representation_comparison.other


@dataclass
class ValidationInputs:
    """Validated inputs of a ``validation:`` block: the other trial and the locked artefact."""

    cohort: Any
    representations: Any
    artefact: Any | None  # LockedBiomarker, or None to lock from this run's decoder
    target: str


def align_representations(adata: Any, cohort: Any, *, source: str) -> Any:
    """Check that representation rows belong to cohort patients; log patients without one.

    Rows are patients (``obs_names``) or slides with ``obs["patient_id"]``. A row whose patient
    is not in the clinical table is an error (wrong file or id mismatch); a clinical patient
    without a representation is recorded in ``cohort.exclusions``.

    Parameters
    ----------
    adata : AnnData
        Representations, one row per patient or slide.
    cohort : Cohort
        Patients without a representation are appended to ``cohort.exclusions``.
    source : str
        Name of the representations (e.g. their file) used in error messages.

    Returns
    -------
    AnnData
        ``adata`` (unchanged).

    Raises
    ------
    SchemaError
        If any row's patient is not in the clinical table (all such rows are listed).
    """
    if "patient_id" in adata.obs.columns:
        row_patients = adata.obs["patient_id"].astype(str)
    else:
        row_patients = pd.Series(adata.obs_names.astype(str), index=adata.obs_names)
    known = set(cohort.patient_ids)
    unknown = ~row_patients.isin(known)
    if unknown.all():
        raise SchemaError(
            f"{source}: none of the {len(row_patients)} representation ids matches a patient_id of the "
            f"clinical table (first ids: {', '.join(row_patients.head(3))}; clinical: "
            f"{', '.join(list(cohort.patient_ids[:3]))}); check that both files describe the same cohort"
        )
    if unknown.any():
        pos = np.flatnonzero(unknown.to_numpy())
        rows = pd.DataFrame(
            {
                "file": source,
                "row": pos + 1,
                "column": "obs_names",
                "value": row_patients.iloc[pos].to_numpy(),
                "rule": "patient is not in the clinical table",
            }
        )
        from .schemas import format_violations

        raise SchemaError(
            f"{source}: {len(pos)} representation row(s) belong to patients missing from the clinical table:\n"
            + format_violations(rows, header_lines=0),
            violations=rows,
        )
    missing = [p for p in cohort.patient_ids if p not in set(row_patients)]
    if missing:
        cohort.exclude(
            missing,
            reason="no representation (no slide or slide not encoded)",
            analysis="representations",
        )
    return adata


def prepare(config: StudyConfig) -> PreparedStudy:
    """Load and validate every input named by ``config``; write nothing.

    Raises
    ------
    SchemaError, CohortError, ConfigError
        Naming the file and row/column/key of every problem.
    """
    from .cohort import load_cohort
    from .schemas import read_representations

    c = config.cohort
    cohort = load_cohort(
        c.clinical,
        c.slides,
        genotype_columns=c.genotype_columns,
        responder_map=c.responder_map,
        time_unit=c.time_unit,
        allow_outside=c.allow_outside,
        check_paths=config.encode is not None,
    )
    files: dict[str, Path] = {"clinical": c.clinical}
    if c.slides is not None:
        files["slides"] = c.slides

    columns = set(cohort.clinical.columns)
    bad = [t for t in config.decode.targets if t not in columns]
    if bad:
        raise ConfigError(
            f"key 'decode.targets': {', '.join(map(repr, bad))} not a column of {c.clinical.name}; "
            f"genotype columns: {', '.join(cohort.genotype_columns) or 'none'}"
            f"{'; responder' if 'responder' in columns else ''}"
        )
    for t in config.decode.targets:
        cohort.label(t)  # raises SchemaError naming rows if a target column is not binary
    if config.decode.group_by and config.decode.group_by not in columns:
        raise ConfigError(
            f"key 'decode.group_by': column {config.decode.group_by!r} is not in {c.clinical.name}"
        )
    s = config.survival
    if s is not None:
        if s.score_target not in config.decode.targets:
            raise ConfigError(
                f"key 'survival.score_target': {s.score_target!r} is not one of decode.targets "
                f"({', '.join(config.decode.targets)})"
            )
        needed = [
            f"{s.endpoint}_time",
            f"{s.endpoint}_event",
            *([s.arm] if s.arm else []),
            *s.covariates,
        ]
        absent = [col for col in needed if col not in columns]
        if absent:
            raise ConfigError(
                f"key 'survival': column(s) {', '.join(absent)} not in {c.clinical.name} "
                f"(endpoint {s.endpoint!r} needs {s.endpoint}_time and {s.endpoint}_event)"
            )

    if config.expression_qc is not None:
        read_spatial_samples(config.expression_qc.samples)
        files["spatial_samples"] = config.expression_qc.samples

    adata = None
    if config.representations is not None:
        adata = read_representations(config.representations)
        align_representations(adata, cohort, source=str(config.representations))
        files["representations"] = config.representations
    other = _prepare_analyses(config, cohort, files)
    validation = None
    if config.validation is not None:
        validation = _prepare_validation(config, config.validation, adata, files)
    return PreparedStudy(
        config=config,
        cohort=cohort,
        representations=adata,
        input_files=files,
        validation=validation,
        other_representations=other,
    )


def _prepare_analyses(config: StudyConfig, cohort: Any, files: dict[str, Path]) -> Any:
    """Check the ``analyses:`` block against the clinical table (targets binary, group
    columns present, the specialist's cancer type with enough patients) and read the other
    representation of ``representation_comparison``; returns it (or None)."""
    from .schemas import read_representations

    a = config.analyses
    columns = set(cohort.clinical.columns)
    name = config.cohort.clinical.name
    blocks = {
        "learning_curve": a.learning_curve,
        "generalist_vs_specialist": a.generalist_vs_specialist,
        "leave_one_group_out": a.leave_one_group_out,
        "representation_comparison": a.representation_comparison,
    }
    for key, block in blocks.items():
        if block is None:
            continue
        bad = [t for t in block.targets if t not in columns]
        if bad:
            raise ConfigError(
                f"key 'analyses.{key}.targets': {', '.join(map(repr, bad))} not a column of {name}"
            )
        for t in block.targets:
            cohort.label(t)  # raises SchemaError naming rows if a target is not binary
        group = getattr(block, "group_column", None)
        if group is not None and group not in columns:
            raise ConfigError(f"key 'analyses.{key}.group_column': {group!r} is not in {name}")
    gs = a.generalist_vs_specialist
    if gs is not None:
        n_in = int((cohort.clinical[gs.group_column].astype(str) == gs.cancer_type).sum())
        if n_in < 2 * config.decode.n_splits:
            levels = sorted(map(str, cohort.clinical[gs.group_column].dropna().unique()))
            raise ConfigError(
                f"key 'analyses.generalist_vs_specialist.cancer_type': {n_in} patients with "
                f"{gs.group_column} = {gs.cancer_type!r} in {name}; at least "
                f"{2 * config.decode.n_splits} are needed ({config.decode.n_splits} folds); "
                f"values: {', '.join(levels)}"
            )
    rc = a.representation_comparison
    if rc is None:
        return None
    other = read_representations(rc.other)
    ids = (
        other.obs["patient_id"].astype(str)
        if "patient_id" in other.obs.columns
        else pd.Series(other.obs_names.astype(str))
    )
    unknown = sorted(set(ids) - set(map(str, cohort.patient_ids)))
    if len(unknown) == len(set(ids)):
        raise SchemaError(
            f"{rc.other}: none of its {len(ids)} ids is a patient_id of {name}; check that it "
            "describes the same patients (key 'analyses.representation_comparison.other')"
        )
    if unknown:
        raise SchemaError(
            f"{rc.other}: {len(unknown)} row(s) belong to patients missing from {name} "
            f"(first: {', '.join(unknown[:5])})"
        )
    files["representations_other"] = rc.other
    return other


def _decode_analyses(cfg: StudyConfig, cohort: Any, adata: Any, other: Any) -> dict[str, Any]:
    """The configured decoder analyses (decode settings, top-level seed). Each runs on a copy
    of the cohort; the patients it left out are logged under the analysis' name."""
    from .decode import analyses as da

    a, d = cfg.analyses, cfg.decode
    common = {"n_inner_splits": d.n_inner_splits, "n_c": d.n_c, "pca": d.pca}
    common.update(class_weight=d.class_weight, n_jackknife=d.n_jackknife, seed=cfg.seed)
    jobs: dict[str, Any] = {}
    if a.learning_curve is not None:
        lc = a.learning_curve
        jobs["learning_curve"] = lambda c: da.learning_curve(
            adata,
            c,
            targets=list(lc.targets),
            fractions=tuple(lc.fractions),
            n_splits=d.n_splits,
            **common,
        )
    if a.generalist_vs_specialist is not None:
        gs = a.generalist_vs_specialist
        jobs["generalist_vs_specialist"] = lambda c: da.generalist_vs_specialist(
            adata,
            c,
            targets=list(gs.targets),
            cancer_type=gs.cancer_type,
            group_column=gs.group_column,
            n_splits=d.n_splits,
            **common,
        )
    if a.leave_one_group_out is not None:
        lo = a.leave_one_group_out
        jobs["leave_one_group_out"] = lambda c: da.leave_one_group_out(
            adata, c, targets=list(lo.targets), group_column=lo.group_column, **common
        )
    if a.representation_comparison is not None:
        rc = a.representation_comparison
        jobs["representation_comparison"] = lambda c: da.representation_comparison(
            adata,
            other,
            c,
            targets=list(rc.targets),
            names=tuple(rc.names),
            n_splits=d.n_splits,
            **common,
        )
    out = {}
    for kind, job in jobs.items():
        log.info("decoder analysis %s", kind)
        work = cohort.copy()
        before = len(work.exclusions)
        out[kind] = job(work)
        new = work.exclusions.iloc[before:]
        for reason, rows in new.groupby("reason", sort=True):
            cohort.exclude(sorted(set(rows["patient_id"].dropna())), reason=reason, analysis=kind)
    return out


def _effect_curve(cfg: StudyConfig, strat: Any) -> Any:
    """The treatment HR along the continuous score, when the stratification has an arm and
    the score is continuous (the same patients as the stratification)."""
    from . import survival
    from .errors import AnalysisError

    e = cfg.analyses.effect_curve
    if e is None or strat is None or getattr(strat, "interaction", None) is None:
        return None
    a = strat.assignments
    if a["score"].nunique() < 10:
        log.info("effect curve skipped: the score has fewer than 10 distinct values")
        return None
    try:
        return survival.treatment_effect_curve(
            a,
            "score",
            time="time",
            event="event",
            arm=strat.interaction.arm,
            reference_arm=strat.interaction.control,
            r1=e.r1,
            r2=e.r2,
            n_permutations=e.n_permutations,
            knots=tuple(e.knots),
            seed=cfg.seed,
        )
    except AnalysisError as err:
        log.warning("treatment effect curve not computed: %s", err)
        return None


def _prepare_validation(
    config: StudyConfig, v: ValidationConfig, dev: Any, files: dict[str, Path]
) -> ValidationInputs:
    """Load and check the ``validation:`` block's trial and artefact before anything runs."""
    import warnings

    from .biomarker import (
        EncoderMismatchWarning,
        compare_representations,
        load_locked_biomarker,
        representation_identity,
    )
    from .cohort import load_cohort
    from .errors import EncoderError
    from .schemas import read_representations

    c = v.cohort
    vcohort = load_cohort(
        c.clinical,
        c.slides,
        genotype_columns=c.genotype_columns,
        responder_map=c.responder_map,
        time_unit=c.time_unit,
        allow_outside=c.allow_outside,
    )
    vreps = read_representations(v.representations)
    src = str(v.representations)
    artefact = None
    if v.artefact is not None:
        artefact = load_locked_biomarker(v.artefact)
        target = artefact.target
        features: Any = artefact.feature_names
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EncoderMismatchWarning)  # warned when it is applied
            artefact.check_representations(vreps, allow_encoder_mismatch=v.allow_encoder_mismatch)
        files["validation_artefact"] = v.artefact
    elif v.lock is not None:
        target = v.lock.target
        if target not in config.decode.targets:
            raise ConfigError(
                f"key 'validation.lock.target': {target!r} is not one of decode.targets "
                f"({', '.join(config.decode.targets)})"
            )
        features = None if dev is None else list(map(str, dev.var_names))
        if dev is not None:
            table = compare_representations(
                representation_identity(dev), representation_identity(vreps)
            )
            bad = table[table["must_match"] & ~table["match"]]
            if len(bad) and not v.allow_encoder_mismatch:
                raise EncoderError(
                    f"{src}: the validation representations were not made like the development "
                    f"ones ({', '.join(bad['field'])} differ); re-encode with the development "
                    "encoder and tiling or set validation.allow_encoder_mismatch: true"
                )
    else:
        raise ConfigError("key 'validation': give 'artefact' or 'lock'")
    columns = set(vcohort.clinical.columns)
    if target not in columns:
        raise ConfigError(
            f"key 'validation.cohort.clinical': {c.clinical.name} has no column {target!r} "
            "(the locked biomarker's target)"
        )
    vcohort.label(target)  # raises SchemaError naming rows if not binary
    absent = [col for col in v.covariates if col not in columns]
    if absent:
        raise ConfigError(
            f"key 'validation.covariates': column(s) {', '.join(absent)} not in {c.clinical.name}"
        )
    if features is not None:
        have = set(map(str, vreps.var_names))
        missing = [f for f in features if f not in have]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise SchemaError(
                f"{src}: lacks {len(missing)} of the {len(features)} features the locked "
                f"biomarker needs: {shown} (features are matched by name)"
            )
    rows = (
        vreps.obs["patient_id"].astype(str)
        if "patient_id" in vreps.obs.columns
        else pd.Series(vreps.obs_names.astype(str))
    )
    if not rows.isin(set(vcohort.patient_ids.astype(str))).any():
        raise SchemaError(
            f"{src}: none of the {len(rows)} representation ids matches a patient_id of "
            f"{c.clinical.name}; check that both files describe the validation cohort"
        )
    files["validation_clinical"] = c.clinical
    files["validation_representations"] = v.representations
    return ValidationInputs(cohort=vcohort, representations=vreps, artefact=artefact, target=target)


def _run_validation(
    prepared: PreparedStudy, dec: Any, adata: Any, out_dir: Path, written: dict[str, Path]
) -> Any:
    """Lock (or take) the biomarker, validate it on the other trial, write its tables."""
    from .biomarker import lock_biomarker, validate_biomarker
    from .progress import stage
    from .provenance import atomic_write

    cfg = prepared.config
    v, pv = cfg.validation, prepared.validation
    if v is None or pv is None:
        return None
    locked = pv.artefact
    if locked is None and v.lock is not None:
        with stage("lock biomarker"):
            path = out_dir / "locked_biomarker.json"
            locked = lock_biomarker(
                dec,
                v.lock.target,
                representations=adata,
                cohort=prepared.cohort,
                cutoff=v.lock.cutoff,
                cutoff_scale=v.lock.cutoff_scale,
                endpoint=v.endpoint,
                path=path,
                arrays=v.lock.arrays,
                include_time=False,
            )
            written["locked_biomarker"] = path
    log.info(
        "validating %s (artefact %s) on %s", locked.name, locked.sha256[:12], v.cohort.clinical.name
    )
    with stage("biomarker validation"):
        res = validate_biomarker(
            locked,
            pv.representations,
            pv.cohort,
            endpoint=v.endpoint,
            arm=v.arm,
            covariates=list(v.covariates),
            tau=v.tau,
            recalibrate=v.recalibrate,
            development=adata if v.shift_diagnostics else None,
            allow_encoder_mismatch=v.allow_encoder_mismatch,
            seed=cfg.seed,
        )
    for key, path in res.write(out_dir / "validation").items():
        written[f"validation_{key}" if not key.startswith("validation") else key] = path
    excl = pv.cohort.exclusions
    written["validation_exclusions"] = atomic_write(
        out_dir / "validation" / "exclusions.csv", lambda p: excl.to_csv(p, index=False)
    )
    return res


def run_study(
    prepared: PreparedStudy, out: str | Path, *, progress: bool = True
) -> dict[str, Path]:
    """Run the analyses of a prepared study and write the report into ``out``.

    Parameters
    ----------
    prepared : PreparedStudy
        Output of :func:`prepare` (configuration, cohort and, unless slides are to be encoded,
        representations).
    out : str or Path
        Output folder (created if needed); encoder outputs go to ``out/encode``.
    progress : bool, default True
        Show progress bars (encoding slides; the decoders' re-runs when stderr is a terminal).

    Returns
    -------
    dict
        Name -> path of every file written.
    """
    from .provenance import ensure_output_dir

    cfg = prepared.config
    out_dir = ensure_output_dir(out)
    cohort = prepared.cohort
    adata = prepared.representations
    written: dict[str, Path] = {}

    if adata is None and cfg.encode is not None:
        enc = cfg.encode
        common: dict[str, Any] = {
            "weights": enc.weights,
            "device": enc.device,
            "batch_size": enc.batch_size,
            "fusion": enc.fusion,
            "tile_output": enc.save_tiles,
            "seed": cfg.seed,
            "progress": progress,
            "allow_outside": True,  # manifest paths were already checked by load_cohort
        }
        if enc.engine == "ray":
            from .encode.ray_runner import encode_slides_ray

            result = encode_slides_ray(
                cohort.slides,
                enc.model,
                out_dir / "encode",
                address=enc.ray_address,
                concurrency=enc.ray_actors,
                read_concurrency=enc.ray_readers,
                **common,
            )
        else:
            from .encode import encode_slides

            result = encode_slides(
                cohort.slides, enc.model, out_dir / "encode", num_workers=enc.workers, **common
            )
        for rec in result.exclusions.itertuples(index=False):
            cohort.exclude(
                [rec.patient_id], reason=rec.reason, analysis=rec.analysis, slide_ids=[rec.slide_id]
            )
        adata = result.representations
        written["representations"] = out_dir / "encode" / "representations.h5ad"
        align_representations(adata, cohort, source=str(written["representations"]))

    import tario_clinical.decode as decode_mod

    from .progress import stage

    d = cfg.decode
    log.info(
        "decoding %d targets with %dx%d cross-validation", len(d.targets), d.n_splits, d.n_repeats
    )
    with stage("decode", targets=len(d.targets)):
        dec = decode_mod.decode(
            adata,
            cohort,
            targets=list(d.targets),
            n_splits=d.n_splits,
            n_repeats=d.n_repeats,
            n_inner_splits=d.n_inner_splits,
            n_c=d.n_c,
            penalty=d.penalty,
            pca=d.pca,
            class_weight=d.class_weight,
            group_by=d.group_by,
            ci_method=d.ci_method,
            p_method=d.p_method,
            alternative=d.alternative,
            n_permutations=d.n_permutations,
            n_jackknife=d.n_jackknife,
            n_bootstrap=d.n_bootstrap,
            n_jobs=-1 if d.n_jobs is None else d.n_jobs,
            progress=None if progress else False,
            seed=cfg.seed,
        )

    analyses: dict[str, Any] = {}
    if any(
        getattr(cfg.analyses, k) is not None
        for k in (
            "learning_curve",
            "generalist_vs_specialist",
            "leave_one_group_out",
            "representation_comparison",
        )
    ):
        with stage("decoder analyses"):
            analyses = _decode_analyses(cfg, cohort, adata, prepared.other_representations)

    strat = None
    if cfg.survival is not None:
        from . import survival

        s = cfg.survival
        cut: Any = s.cutoff_value if s.cutoff == "fixed" else s.cutoff
        kwargs: dict[str, Any] = {}
        if s.cutoff == "prevalence":
            kwargs["prevalence"] = s.cutoff_value
        if s.cutoff == "probability":
            kwargs["probability"] = s.cutoff_value
        if s.cutoff == "quantile":
            kwargs["quantile"] = s.cutoff_value
        log.info(
            "stratifying %s by the %s score (%s cut-off, cross-fitted)",
            s.endpoint,
            s.score_target,
            s.cutoff,
        )
        with stage("survival stratification"):
            strat = survival.stratify(
                cohort,
                dec.oof_scores(s.score_target),
                f"{s.endpoint}_time",
                f"{s.endpoint}_event",
                cutoff=cut,
                arm=s.arm,
                covariates=list(s.covariates),
                tau=s.tau,
                seed=cfg.seed,
                **kwargs,
            )

    curve = None
    if strat is not None:
        with stage("treatment effect curve"):
            curve = _effect_curve(cfg, strat)

    design_table = None
    if cfg.design is not None:
        design_table = _design_table(cfg, cohort, strat)

    qc = None
    if cfg.expression_qc is not None:
        qc = _expression_qc(cfg)

    validation = None
    if cfg.validation is not None and prepared.validation is not None:
        validation = _run_validation(prepared, dec, adata, out_dir, written)

    from . import report as report_mod
    from .provenance import provenance_record

    prov = provenance_record(
        kind="results",
        seed=cfg.seed,
        parameters=cfg.model_dump(mode="json"),
        inputs={k: v for k, v in prepared.input_files.items()},
        include_time=False,
    )
    with stage("report"):
        rep = report_mod.build_report(
            cohort=cohort,
            decode=dec,
            analyses=analyses or None,
            stratification=strat,
            effect_curve=curve,
            design=design_table,
            expression_qc=qc,
            representations=adata,
            provenance=prov,
            config=cfg.model_dump(mode="json"),
            show_patient_ids=cfg.report.show_patient_ids,
            seed=cfg.seed,
        )
        if validation is not None:
            import dataclasses

            results = dict(rep.results)
            results["validation"] = validation.to_dict(
                include_patient_ids=cfg.report.show_patient_ids
            )
            rep = dataclasses.replace(rep, results=results)
        written.update(rep.write(out_dir))
    from .provenance import atomic_write

    atomic_write(out_dir / "exclusions.csv", lambda p: cohort.exclusions.to_csv(p, index=False))
    written["exclusions"] = out_dir / "exclusions.csv"
    return written


def design_inputs_from_stratification(strat: Any, cohort: Any) -> dict[str, float] | None:
    """Design inputs estimated from a stratification with an arm.

    Biomarker-positive patients are the highest score group; HRs are experimental vs control
    within the positive and the negative (all other) patients; the control median is the KM
    median of positive control patients (falling back to all control patients). These are the
    cross-fitted groups, so no estimate comes from a cut-off tuned on the same patients.

    Parameters
    ----------
    strat : stratification result or None
        Output of :func:`~tario_clinical.survival.stratify` with an arm (its ``interaction``
        set).
    cohort : Cohort
        Supplies the arm column when the assignments lack it.

    Returns
    -------
    dict or None
        ``prevalence, hr_positive, hr_negative, median_control``; ``None`` without a
        stratification with an arm, or when a stratum lacks one arm or has fewer than 2 events.
    """
    from . import survival

    inter = getattr(strat, "interaction", None)
    if strat is None or inter is None:
        return None
    a = strat.assignments
    arm_col = inter.arm
    if arm_col not in a.columns:
        a = a.merge(cohort.clinical[["patient_id", arm_col]], on="patient_id", how="left")
    top = strat.groups[-1]
    a = a.assign(
        _positive=(a["risk_group"] == top).astype(int),
        _exp=(a[arm_col] == inter.experimental).astype(float),
    )
    out: dict[str, float] = {"prevalence": float(a["_positive"].mean())}
    for name, part in (
        ("hr_positive", a[a["_positive"] == 1]),
        ("hr_negative", a[a["_positive"] == 0]),
    ):
        if part["_exp"].nunique() < 2 or part["event"].sum() < 2:
            return None
        table = survival.cox(part, "time", "event", ["_exp"])
        out[name] = float(table.loc["_exp", "hr"])
    ctrl = a[(a["_exp"] == 0) & (a["_positive"] == 1)]
    median = np.nan
    if len(ctrl) and ctrl["event"].sum():
        median = float(survival.km(ctrl, "time", "event").summary["median"].iloc[0])
    if not np.isfinite(median):
        ctrl = a[a["_exp"] == 0]
        median = float(survival.km(ctrl, "time", "event").summary["median"].iloc[0])
    out["median_control"] = median
    return out


def _design_table(cfg: StudyConfig, cohort: Any, strat: Any) -> Any:
    """Trial-design numbers: inputs from the config where given, else estimated from the stratification."""
    from . import design

    d = cfg.design
    if d is None:
        return None
    guess = design_inputs_from_stratification(strat, cohort) or {}
    prevalence = d.prevalence if d.prevalence is not None else guess.get("prevalence")
    hr_pos = d.hr_positive if d.hr_positive is not None else guess.get("hr_positive")
    hr_neg = d.hr_negative if d.hr_negative is not None else guess.get("hr_negative")
    median = (
        d.control_median_months
        if d.control_median_months is not None
        else guess.get("median_control")
    )
    values = {
        "prevalence": prevalence,
        "hr_positive": hr_pos,
        "hr_negative": hr_neg,
        "median_control": median,
    }
    missing = [k for k, v in values.items() if v is None or not np.isfinite(v)]
    if missing:
        log.warning(
            "trial-design table skipped: no value for %s (set them under 'design')",
            ", ".join(missing),
        )
        return None
    if not hr_pos < 1 or not 0 < prevalence < 1:
        log.warning(
            "trial-design table skipped: estimated HR in biomarker-positive patients is %.2f (>= 1) or prevalence %.2f "
            "outside (0, 1); set design.hr_positive to plan a trial",
            hr_pos,
            prevalence,
        )
        return None
    kw = {"prevalence": float(prevalence), "hr_negative": float(hr_neg)}
    kw.update(median_control=float(median), accrual=d.accrual_months, follow_up=d.followup_months)
    kw.update(allocation=d.allocation, alpha=d.alpha, power=d.power)
    dc = design.compare_designs(hr_positive=float(hr_pos), **kw)
    if not d.sensitivity or d.hr_positive is not None:
        return dc  # an HR set in the configuration has no interval from this cohort
    bounds = _top_group_hr_interval(strat, float(hr_pos))
    if bounds is None:
        return dc
    rows = []
    for scenario, hr in zip(("lower 95 % bound", "upper 95 % bound"), bounds, strict=True):
        if hr < 1:
            t = design.compare_designs(hr_positive=float(hr), **kw).table
            rows.append(t.assign(scenario=scenario, hr_positive=float(hr), note=""))
        else:
            note = "no benefit at this HR: no trial can be powered"
            t = pd.DataFrame({"design": dc.table["design"], "hr": np.nan})
            rows.append(t.assign(scenario=scenario, hr_positive=float(hr), note=note))
    sens = pd.concat(rows, ignore_index=True)
    first = ["scenario", "hr_positive"]
    sens = sens[first + [c for c in sens.columns if c not in (*first, "note")] + ["note"]]
    return {"comparison": dc, "sensitivity": sens}


def _top_group_hr_interval(strat: Any, hr: float) -> tuple[float, float] | None:
    """``(hr_low, hr_high)`` of the forest row of the highest score group, when its HR is the
    design's (the same arm-only Cox fit), else None."""
    inter = getattr(strat, "interaction", None)
    if inter is None:
        return None
    f = inter.forest
    row = f[(f["variable"] == inter.biomarker) & (f["level"].astype(str) == str(strat.groups[-1]))]
    if len(row) != 1 or not abs(float(row["hr"].iloc[0]) - hr) <= 1e-9 * max(1.0, hr):
        log.warning("design sensitivity skipped: the high-score group's forest row is not the HR")
        return None
    lo, hi = float(row["hr_low"].iloc[0]), float(row["hr_high"].iloc[0])
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None


def read_spatial_samples(
    path: str | Path, *, tile_um: float | None = None, mpp: float | None = None
) -> list[Any]:
    """Read a spatial-transcriptomics sample table into lazily loaded ``SpatialSample`` specs.

    Validates the whole table first (columns, unique ids, files exist, affine numbers) and raises
    one :class:`SchemaError` naming every bad row; the AnnData/tables are opened one sample at a
    time by :func:`iter_spatial_samples`.

    Parameters
    ----------
    path : str or Path
        Sample table (any format :func:`~tario_clinical.cohort.read_table` reads) with columns
        ``sample_id``, ``predicted``, ``measured`` and optionally ``affine`` (6 or 9 numbers,
        row-major 2 × 3 or 3 × 3) and ``cancer_type``; file paths are relative to the table's
        folder and may not leave it.
    tile_um, mpp : float, optional
        Passed to every ``SpatialSample`` (used when the prediction grid is inferred from the
        tiles).

    Returns
    -------
    list of dict
        One spec per row: ``sample_id, cancer_type, affine, predicted, measured, tile_um, mpp``.

    Raises
    ------
    SchemaError
        Listing every bad row of the table.
    """
    from .cohort import read_table
    from .schemas import format_violations

    p = Path(path)
    table = read_table(p)
    rows: list[tuple[str, int | None, str | None, Any, str]] = []
    for col in ("sample_id", "predicted", "measured"):
        if col not in table.columns:
            rows.append(
                (
                    str(p),
                    None,
                    col,
                    None,
                    f"required column is missing (columns found: {', '.join(table.columns)})",
                )
            )
    if rows:
        v = pd.DataFrame(rows, columns=["file", "row", "column", "value", "rule"])
        raise SchemaError(f"{p}: spatial sample table:\n" + format_violations(v), violations=v)
    base = p.resolve().parent
    specs = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(table.to_dict("records"), start=1):
        sid = str(rec["sample_id"]).strip()
        if not sid:
            rows.append((str(p), i, "sample_id", rec["sample_id"], "required value is missing"))
        elif sid in seen:
            rows.append(
                (str(p), i, "sample_id", sid, f"duplicate sample_id (first at row {seen[sid]})")
            )
        seen.setdefault(sid, i)
        files = {}
        for col in ("predicted", "measured"):
            raw = str(rec[col]).strip()
            full = (base / raw).resolve()
            if not raw or not full.is_file():
                rows.append((str(p), i, col, raw, f"file not found ({full})"))
            elif not full.is_relative_to(base):
                rows.append((str(p), i, col, raw, f"path leaves the table's folder {base}"))
            files[col] = full
        affine = None
        text = str(rec.get("affine", "") or "").strip()
        if text and text.lower() not in ("na", "nan", "none"):
            try:
                nums = [float(t) for t in text.replace(",", " ").split()]
            except ValueError:
                nums = []
            if len(nums) not in (6, 9):
                rows.append(
                    (
                        str(p),
                        i,
                        "affine",
                        text,
                        "affine must be 6 or 9 numbers (row-major 2x3 or 3x3)",
                    )
                )
            else:
                affine = np.asarray(nums).reshape(-1, 3)
        ctype = rec.get("cancer_type")
        specs.append(
            {
                "sample_id": sid,
                "cancer_type": None if ctype in (None, "") else str(ctype),
                "affine": affine,
                **files,
            }
        )
    if rows:
        v = pd.DataFrame(rows, columns=["file", "row", "column", "value", "rule"])
        raise SchemaError(
            f"{p}: {len(rows)} problem(s) in the spatial sample table:\n" + format_violations(v),
            violations=v,
        )
    return [dict(s, tile_um=tile_um, mpp=mpp) for s in specs]


def iter_spatial_samples(specs: list[dict[str, Any]]) -> Any:
    """Yield ``SpatialSample`` objects, reading each sample's files only when it is reached."""
    import anndata as ad

    from .cohort import read_table
    from .expression_qc import SpatialSample

    for spec in specs:
        predicted = ad.read_h5ad(spec["predicted"])
        mpath = spec["measured"]
        measured = ad.read_h5ad(mpath) if mpath.suffix.lower() == ".h5ad" else read_table(mpath)
        if not isinstance(measured, ad.AnnData):
            for col in measured.columns:  # transcript tables are read as text: numbers back
                converted = pd.to_numeric(measured[col], errors="coerce")
                if converted.notna().all():
                    measured[col] = converted
        yield SpatialSample(
            sample_id=spec["sample_id"],
            predicted=predicted,
            measured=measured,
            cancer_type=spec["cancer_type"],
            affine=spec["affine"],
            tile_um=spec["tile_um"],
            mpp=spec["mpp"],
        )


def _expression_qc(cfg: StudyConfig) -> Any:
    from . import expression_qc

    q = cfg.expression_qc
    if q is None:
        return None
    specs = read_spatial_samples(q.samples, tile_um=q.tile_um, mpp=q.mpp)
    log.info("expression QC over %d spatial samples", len(specs))
    return expression_qc.evaluate_expression(iter_spatial_samples(specs), kind=q.adjacency)
