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

from .config import StudyConfig
from .errors import ConfigError, SchemaError

__all__ = ["PreparedStudy", "prepare", "run_study", "align_representations"]

log = logging.getLogger("tario_clinical")


@dataclass
class PreparedStudy:
    """Validated inputs of a study run."""

    config: StudyConfig
    cohort: Any
    representations: Any | None
    input_files: dict[str, Path] = field(default_factory=dict)


def align_representations(adata: Any, cohort: Any, *, source: str) -> Any:
    """Check that representation rows belong to cohort patients; log patients without one.

    Rows are patients (``obs_names``) or slides with ``obs["patient_id"]``. A row whose patient
    is not in the clinical table is an error (wrong file or id mismatch); a clinical patient
    without a representation is recorded in ``cohort.exclusions``.
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

    adata = None
    if config.representations is not None:
        adata = read_representations(config.representations)
        align_representations(adata, cohort, source=str(config.representations))
        files["representations"] = config.representations
    return PreparedStudy(config=config, cohort=cohort, representations=adata, input_files=files)


def run_study(
    prepared: PreparedStudy, out: str | Path, *, progress: bool = True
) -> dict[str, Path]:
    """Run the analyses of a prepared study and write the report into ``out``.

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
        from .encode import encode_slides

        enc = cfg.encode
        result = encode_slides(
            cohort.slides,
            model=enc.model,
            out_dir=out_dir / "encode",
            device=enc.device,
            batch_size=enc.batch_size,
            workers=enc.workers,
            fusion=enc.fusion,
            save_tiles=enc.save_tiles,
            seed=cfg.seed,
            progress=progress,
            cohort=cohort,
        )
        adata = result.representations if hasattr(result, "representations") else result
        written["representations"] = out_dir / "encode" / "representations.h5ad"
        align_representations(adata, cohort, source=str(written["representations"]))

    import tario_clinical.decode as decode_mod

    d = cfg.decode
    log.info(
        "decoding %d targets with %dx%d cross-validation", len(d.targets), d.n_splits, d.n_repeats
    )
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
        seed=cfg.seed,
    )

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

    design_table = None
    if cfg.design is not None:
        design_table = _design_table(cfg, cohort, strat)

    qc = None
    if cfg.expression_qc is not None:
        qc = _expression_qc(cfg)

    from . import report as report_mod
    from .provenance import provenance_record

    prov = provenance_record(
        kind="results",
        seed=cfg.seed,
        parameters=cfg.model_dump(mode="json"),
        inputs={k: v for k, v in prepared.input_files.items()},
        include_time=False,
    )
    rep = report_mod.build_report(
        cohort=cohort,
        decode=dec,
        stratification=strat,
        design=design_table,
        expression_qc=qc,
        representations=adata,
        provenance=prov,
        config=cfg.model_dump(mode="json"),
        show_patient_ids=cfg.report.show_patient_ids,
        seed=cfg.seed,
    )
    written.update(rep.write(out_dir))
    from .provenance import atomic_write

    atomic_write(out_dir / "exclusions.csv", lambda p: cohort.exclusions.to_csv(p, index=False))
    written["exclusions"] = out_dir / "exclusions.csv"
    return written


def _design_table(cfg: StudyConfig, cohort: Any, strat: Any) -> Any:
    """Trial-design numbers: from the config where given, else estimated from the stratification."""
    from . import design

    d = cfg.design
    assert d is not None
    prevalence = d.prevalence
    hr_pos, hr_neg = d.hr_positive, d.hr_negative
    if strat is not None and (prevalence is None or hr_pos is None or hr_neg is None):
        est = getattr(strat, "design_inputs", None)
        if callable(est):
            guess = est()
            prevalence = prevalence or guess.get("prevalence")
            hr_pos = hr_pos or guess.get("hr_positive")
            hr_neg = hr_neg or guess.get("hr_negative")
    if prevalence is None or hr_pos is None or hr_neg is None:
        return None
    median = d.control_median_months or 12.0
    return design.compare_designs(
        prevalence=prevalence,
        hr_positive=hr_pos,
        hr_negative=hr_neg,
        alpha=d.alpha,
        power=d.power,
        allocation=d.allocation,
        accrual=d.accrual_months,
        followup=d.followup_months,
        control_median=median,
    )


def _expression_qc(cfg: StudyConfig) -> Any:
    from . import expression_qc

    q = cfg.expression_qc
    assert q is not None
    return expression_qc.evaluate_files(q.measured, q.predicted, tile_um=q.tile_um, seed=cfg.seed)
