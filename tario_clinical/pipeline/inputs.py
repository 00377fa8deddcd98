"""Validate every input of a study before anything is written.

:func:`prepare` loads the clinical table, slide manifest, representations and the other
inputs a configuration names and checks each block against them (targets, columns, levels),
raising an error that names the file, row, column or key; it writes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import StudyConfig
from ..errors import ConfigError, SchemaError
from .endpoints import check_endpoints, target_kinds
from .spatial import read_spatial_samples
from .validation import ValidationInputs, prepare_validation

__all__ = ["PreparedStudy", "prepare", "prepare_analyses", "align_representations"]

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
    #: ``target -> (kind, reason)`` of every decode target (:func:`.endpoints.target_kinds`)
    target_kinds: dict[str, tuple[str, str]] = field(default_factory=dict)


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
        from ..schemas import format_violations

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
    from ..cohort import load_cohort
    from ..schemas import read_representations

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
    kinds = target_kinds(config, cohort)
    check_endpoints(config, cohort, kinds)  # names file/row/column/value of a bad target
    if config.decode.group_by and config.decode.group_by not in columns:
        raise ConfigError(
            f"key 'decode.group_by': column {config.decode.group_by!r} is not in {c.clinical.name}"
        )
    s = config.survival
    if s is not None:
        risk_scores = [d.result_name for d in config.decode.survival_decoders]
        if s.score_target not in config.decode.targets and s.score_target not in risk_scores:
            also = f"; survival decoders: {', '.join(risk_scores)}" if risk_scores else ""
            raise ConfigError(
                f"key 'survival.score_target': {s.score_target!r} is not one of decode.targets "
                f"({', '.join(config.decode.targets)}){also}"
            )
        if s.score_target in kinds and kinds[s.score_target][0] not in ("binary", "continuous"):
            raise ConfigError(
                f"key 'survival.score_target': {s.score_target!r} is a "
                f"{kinds[s.score_target][0]} target; patients are stratified by the score of a "
                "binary or continuous target, or by a survival decoder's risk score"
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
    other = prepare_analyses(config, cohort, files)
    validation = None
    if config.validation is not None:
        validation = prepare_validation(config, config.validation, adata, files)
    return PreparedStudy(
        config=config,
        cohort=cohort,
        representations=adata,
        input_files=files,
        validation=validation,
        other_representations=other,
        target_kinds=kinds,
    )


def prepare_analyses(config: StudyConfig, cohort: Any, files: dict[str, Path]) -> Any:
    """Check the ``analyses:`` block against the clinical table (targets binary, group
    columns present, the specialist's cancer type with enough patients) and read the other
    representation of ``representation_comparison``; returns it (or None)."""
    from ..schemas import read_representations

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
