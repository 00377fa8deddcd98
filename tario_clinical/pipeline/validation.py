"""The ``validation:`` block: check the other trial and the artefact up front; lock (or take) the
biomarker and validate it on the other trial when the study runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import StudyConfig, ValidationConfig
from ..errors import ConfigError, SchemaError

__all__ = ["ValidationInputs", "prepare_validation", "run_validation"]

log = logging.getLogger("tario_clinical")


@dataclass
class ValidationInputs:
    """Validated inputs of a ``validation:`` block: the other trial and the locked artefact."""

    cohort: Any
    representations: Any
    artefact: Any | None  # LockedBiomarker, or None to lock from this run's decoder
    target: str


def prepare_validation(
    config: StudyConfig, v: ValidationConfig, dev: Any, files: dict[str, Path]
) -> ValidationInputs:
    """Load and check the ``validation:`` block's trial and artefact before anything runs."""
    import warnings

    from ..biomarker import (
        EncoderMismatchWarning,
        compare_representations,
        load_locked_biomarker,
        representation_identity,
    )
    from ..cohort import load_cohort
    from ..errors import EncoderError
    from ..schemas import read_representations

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
        kind = config.decode.target_types.get(target, "binary")
        if kind != "binary":
            raise ConfigError(
                f"key 'validation.lock.target': {target!r} is a {kind} target; a locked "
                "biomarker is the decoder of a binary target"
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
    if v.endpoint is not None:
        lacking = [
            col for col in (f"{v.endpoint}_time", f"{v.endpoint}_event") if col not in columns
        ]
        if lacking:
            raise ConfigError(
                f"key 'validation.endpoint': {c.clinical.name} has no column(s) "
                f"{', '.join(lacking)} (endpoint {v.endpoint!r}); give the validation trial's "
                "follow-up or set validation.endpoint: null"
            )
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


def run_validation(
    prepared: Any, dec: Any, adata: Any, out_dir: Path, written: dict[str, Path]
) -> Any:
    """Lock (or take) the biomarker, validate it on the other trial, write its tables.

    ``prepared`` is the :class:`~tario_clinical.pipeline.PreparedStudy`; written files are
    added to ``written``.
    """
    from ..biomarker import lock_biomarker, validate_biomarker
    from ..progress import stage
    from ..provenance import atomic_write

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
    pv.cohort.record_exclusions(res.exclusions, patients_only=True)
    excl = pv.cohort.exclusions
    written["validation_exclusions"] = atomic_write(
        out_dir / "validation" / "exclusions.csv", lambda p: excl.to_csv(p, index=False)
    )
    return res
