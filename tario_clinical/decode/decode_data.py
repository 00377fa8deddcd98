"""Inputs of :func:`tario_clinical.decode`: representations and labels aligned on patients
(:class:`DecodeData`), with every exclusion listed (the caller's cohort is never changed)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import CohortError, SchemaError

__all__ = ["DecodeData", "prepare_data", "to_binary", "log_exclusions"]

logger = logging.getLogger("tario_clinical.decode.cross_validation")


@dataclass(frozen=True)
class DecodeData:
    """Aligned inputs: rows (patients or slides), features, labels and exclusions."""

    X: np.ndarray
    row_patient: np.ndarray  # patient id of each row
    feature_names: np.ndarray
    labels: pd.DataFrame  # patients x targets, float 1/0/NaN (patients with rows + clinical)
    clinical: pd.DataFrame  # indexed by patient_id
    exclusions: pd.DataFrame


def to_binary(values: pd.Series, column: str) -> pd.Series:
    from ..cohort import normalise_binary

    out = normalise_binary(values, column=column)
    out.index = values.index
    return out


def prepare_data(representations: Any, cohort: Any, targets: list[str]) -> DecodeData:
    """Align representations with the clinical labels; log every exclusion (see :func:`decode`)."""
    # ---- representations
    if isinstance(representations, pd.DataFrame):
        X = representations.to_numpy()
        obs_names = representations.index.astype(str).to_numpy()
        feature_names = representations.columns.astype(str).to_numpy()
        obs = pd.DataFrame(index=obs_names)
    elif hasattr(representations, "X") and hasattr(representations, "obs_names"):
        X = representations.X
        if hasattr(X, "toarray"):
            X = X.toarray()
        X = np.asarray(X)
        obs_names = np.asarray(representations.obs_names).astype(str)
        feature_names = np.asarray(representations.var_names).astype(str)
        obs = representations.obs
    else:
        raise SchemaError(
            f"representations must be an AnnData (patients or slides x features) or a DataFrame; "
            f"got {type(representations).__name__}."
        )
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise SchemaError(f"representations must be a non-empty 2-D matrix; got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if pd.Index(obs_names).has_duplicates:
        dup = pd.Index(obs_names)[pd.Index(obs_names).duplicated()].unique()[:5].tolist()
        raise SchemaError(f"representations: duplicate obs_names {dup}; ids must be unique.")
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = obs_names[~finite][:5].tolist()
        raise SchemaError(
            f"representations: {int((~finite).sum())} rows hold NaN or infinite values, e.g. {bad}; "
            "fix or drop them before decoding."
        )
    if "patient_id" in obs.columns:
        row_patient = obs["patient_id"].astype(str).to_numpy()
    else:
        row_patient = obs_names

    # ---- clinical labels
    if hasattr(cohort, "label") and hasattr(cohort, "clinical"):
        clinical = cohort.clinical.copy()
        clinical["patient_id"] = clinical["patient_id"].astype(str)
        clinical = clinical.set_index("patient_id", drop=False)
        lab = {}
        for t in targets:
            s = cohort.label(t)
            s.index = s.index.astype(str)
            lab[t] = s
        labels = pd.DataFrame(lab).reindex(clinical.index)
    elif isinstance(cohort, pd.DataFrame):
        if "patient_id" not in cohort.columns:
            raise SchemaError(
                f"clinical table has no 'patient_id' column; columns: {list(cohort.columns)[:20]}"
            )
        clinical = cohort.copy()
        clinical["patient_id"] = clinical["patient_id"].astype(str)
        if clinical["patient_id"].duplicated().any():
            dup = (
                clinical.loc[clinical["patient_id"].duplicated(), "patient_id"]
                .unique()[:5]
                .tolist()
            )
            raise SchemaError(f"clinical table: duplicate patient_id {dup}.")
        clinical = clinical.set_index("patient_id", drop=False)
        missing = [t for t in targets if t not in clinical.columns]
        if missing:
            raise CohortError(
                f"targets {missing} are not columns of the clinical table; available: "
                f"{list(clinical.columns)[:30]}"
            )
        labels = pd.DataFrame({t: to_binary(clinical[t], t) for t in targets})
    else:
        raise SchemaError(
            f"cohort must be a Cohort or a DataFrame with patient_id; got {type(cohort).__name__}."
        )

    # ---- exclusions (never silent)
    rows = []
    rep_patients = pd.Index(pd.unique(row_patient))
    no_clin = rep_patients.difference(clinical.index)
    no_rep = clinical.index.difference(rep_patients)
    for t in targets:
        for p in no_clin:
            rows.append((p, t, "representation without clinical row"))
        for p in no_rep:
            if not np.isnan(labels.at[p, t]):
                rows.append((p, t, "no representation"))
        have = labels.index.intersection(rep_patients)
        for p in have[labels.loc[have, t].isna().to_numpy()]:
            rows.append((p, t, f"missing label {t}"))
        for p in no_rep:
            if np.isnan(labels.at[p, t]):
                rows.append((p, t, f"no representation and missing label {t}"))
    exclusions = pd.DataFrame(rows, columns=["patient_id", "target", "reason"])
    keep_rows = np.isin(row_patient, clinical.index.to_numpy())
    X = X[keep_rows]
    row_patient = row_patient[keep_rows]
    patients = pd.Index(pd.unique(row_patient))
    labels = labels.reindex(patients)
    return DecodeData(
        X=X,
        row_patient=row_patient,
        feature_names=feature_names,
        labels=labels,
        clinical=clinical.reindex(patients),
        exclusions=exclusions,
    )


def log_exclusions(exclusions: pd.DataFrame, log: logging.Logger = logger) -> None:
    """Log a decoder's ``patient_id, target, reason`` exclusions, one line per target and
    reason. Nothing is written into the caller's cohort: the result carries the table, and
    the cohort's owner records it with :meth:`~tario_clinical.cohort.Cohort.record_exclusions`."""
    if not len(exclusions):
        return
    for (t, reason), d in exclusions.groupby(["target", "reason"]):
        log.info("decode %s: excluded %d patients (%s)", t, len(d), reason)
