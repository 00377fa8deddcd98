"""Inputs of the endpoint decoders: patient-level representations, outcome parsing, target types.

Every endpoint decoder (categorical, continuous, time to event, treatment benefit) works on one row
per patient: slides of a patient are averaged (for a linear model on standardised features the
mean of the slides' predictions is the prediction at the mean slide, so this is what the binary
decoder's averaging of slide scores does at test time; in training every patient counts once).

Target types are inferred from the cohort (:func:`infer_target_types`): two distinct values ->
``binary``; text (or categorical) with more levels -> ``categorical``; integer codes with at most
``max_categorical_levels`` distinct values -> ``categorical`` (logged: an ordinal score such as
ECOG may be meant as continuous; override with ``target_types``); other numbers ->
``continuous``. The choice and its reason are logged and kept in the results.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import CohortError, SchemaError
from .cross_validation import prepare_data

__all__ = [
    "TargetKind",
    "TARGET_KINDS",
    "PatientData",
    "patient_data",
    "clinical_column",
    "clinical_frame",
    "infer_target_types",
    "categorical_labels",
    "continuous_values",
    "binary_codes",
    "outcome_exclusions",
    "survival_outcome",
    "MISSING_SPELLINGS",
]

logger = logging.getLogger(__name__)

TargetKind = Literal["binary", "categorical", "continuous"]
TARGET_KINDS = ("binary", "categorical", "continuous")

#: spellings of a missing value (those of the clinical schema)
MISSING_SPELLINGS = frozenset(
    ["", "na", "n/a", "nan", "none", "null", "unknown", "not tested", "nd", "."]
)


@dataclass(frozen=True)
class PatientData:
    """Patient-level representations aligned with the clinical table.

    Attributes
    ----------
    X : (n_patients, D) array
        Mean representation of each patient's rows (slides), float64 or the input's float32.
    patient_ids : (n_patients,) str array, sorted
    clinical : DataFrame
        Clinical rows of these patients (index ``patient_id``), in the same order.
    feature_names : (D,) str array
    n_rows : (n_patients,) int
        Number of representation rows (slides) averaged per patient.
    no_clinical : list of str
        Patients with representations but no clinical row.
    no_representation : list of str
        Patients with a clinical row but no representation.
    """

    X: np.ndarray
    patient_ids: np.ndarray
    clinical: pd.DataFrame
    feature_names: np.ndarray
    n_rows: np.ndarray
    no_clinical: list[str]
    no_representation: list[str]


def patient_data(representations: Any, cohort: Any) -> PatientData:
    """Align representations (patients or slides) with the clinical table; one row per patient.

    Parameters
    ----------
    representations : AnnData or DataFrame
        As in :func:`tario_clinical.decode` (rows are patients, or slides with
        ``obs["patient_id"]``).
    cohort : Cohort or DataFrame
        With a ``patient_id`` column.

    Returns
    -------
    PatientData
    """
    d = prepare_data(representations, cohort, [])
    uniq, codes = np.unique(d.row_patient, return_inverse=True)
    counts = np.bincount(codes, minlength=uniq.size)
    X = np.zeros((uniq.size, d.X.shape[1]))
    np.add.at(X, codes, d.X.astype(np.float64))
    X /= counts[:, None]
    if d.X.dtype == np.float32:
        X = X.astype(np.float32)
    clin_all = clinical_frame(cohort)
    rep = pd.Index(pd.unique(_all_row_patients(representations)))
    no_clin = sorted(rep.difference(clin_all.index).astype(str).tolist())
    no_rep = sorted(clin_all.index.difference(pd.Index(uniq)).astype(str).tolist())
    return PatientData(
        X=X,
        patient_ids=uniq.astype(str),
        clinical=clin_all.reindex(uniq),
        feature_names=d.feature_names,
        n_rows=counts,
        no_clinical=no_clin,
        no_representation=no_rep,
    )


def _all_row_patients(representations: Any) -> np.ndarray:
    if isinstance(representations, pd.DataFrame):
        return representations.index.astype(str).to_numpy()
    obs = representations.obs
    if "patient_id" in obs.columns:
        return obs["patient_id"].astype(str).to_numpy()
    return np.asarray(representations.obs_names).astype(str)


def clinical_frame(cohort: Any) -> pd.DataFrame:
    """The clinical table of a Cohort or DataFrame as a copy indexed by ``patient_id`` (str)."""
    if hasattr(cohort, "clinical") and hasattr(cohort, "label"):
        clin = cohort.clinical.copy()
    elif isinstance(cohort, pd.DataFrame):
        clin = cohort.copy()
    else:
        raise SchemaError(
            f"cohort must be a Cohort or a DataFrame with patient_id; got {type(cohort).__name__}."
        )
    if "patient_id" not in clin.columns:
        raise SchemaError(
            f"clinical table has no 'patient_id' column; columns: {list(clin.columns)[:20]}"
        )
    clin["patient_id"] = clin["patient_id"].astype(str)
    return clin.set_index("patient_id", drop=False)


def clinical_column(cohort: Any, column: str) -> pd.Series:
    """One clinical column indexed by ``patient_id`` (raises :class:`CohortError` if absent)."""
    clin = clinical_frame(cohort)
    if column not in clin.columns:
        raise CohortError(
            f"column {column!r} is not in the clinical table; available: {list(clin.columns)[:30]}"
        )
    return clin[column]


# ------------------------------------------------------------------------------ parsing
def _is_missing(values: pd.Series) -> np.ndarray:
    miss = values.isna().to_numpy(dtype=bool)
    text = values.astype(str).str.strip().str.lower()
    return miss | text.isin(MISSING_SPELLINGS).to_numpy()


def categorical_labels(
    values: pd.Series, target: str, *, classes: Sequence[Any] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Class codes (float, NaN = missing) and the class names (sorted, or categorical order).

    Parameters
    ----------
    values : Series
        One value per patient.
    target : str
        Column name (for messages).
    classes : sequence, optional
        Class order; values outside it raise :class:`SchemaError`.

    Returns
    -------
    (codes, classes)
    """
    miss = _is_missing(values)
    text = values.astype(str).str.strip().to_numpy()
    if classes is None:
        if isinstance(values.dtype, pd.CategoricalDtype):
            order = [str(c) for c in values.cat.categories]
            present = set(text[~miss])
            cls = [c for c in order if c in present]
        else:
            cls = sorted(set(text[~miss].tolist()))
    else:
        cls = [str(c) for c in classes]
        bad = ~miss & ~np.isin(text, cls)
        if bad.any():
            raise SchemaError(
                f"column {target!r}: values {sorted(set(text[bad]))[:5]} (patients "
                f"{values.index[bad][:5].tolist()}) are not among the classes {cls}."
            )
    lookup = {c: i for i, c in enumerate(cls)}
    codes = np.array([np.nan if m else lookup[t] for t, m in zip(text, miss, strict=True)])
    return codes, cls


def continuous_values(values: pd.Series, target: str) -> np.ndarray:
    """Float values (NaN = missing); non-numeric, non-missing values raise :class:`SchemaError`."""
    miss = _is_missing(values)
    num = pd.to_numeric(values.where(~miss), errors="coerce").to_numpy(dtype=float)
    bad = ~miss & ~np.isfinite(num)
    if bad.any():
        shown = values[bad].astype(str).unique()[:5].tolist()
        raise SchemaError(
            f"column {target!r} must be numeric for a continuous target; got {shown} for "
            f"patients {values.index[bad][:5].tolist()}; fix them or declare the target "
            "categorical (target_types={...: 'categorical'})."
        )
    return num


def binary_codes(values: pd.Series, target: str) -> tuple[pd.Series, dict[str, float]]:
    """A two-level column as float 0/1/NaN: the second level in sorted order is 1.

    Returns the coded Series (same index) and the mapping used (logged by the caller).
    """
    miss = _is_missing(values)
    text = values.astype(str).str.strip()
    levels = sorted(set(text[~miss].tolist()))
    if len(levels) > 2:
        raise SchemaError(f"column {target!r} has {len(levels)} levels; a binary target has 2.")
    mapping = {lv: float(i) for i, lv in enumerate(levels)}
    out = text.map(mapping).where(~miss).astype(float)
    return out, mapping


def infer_target_types(
    cohort: Any,
    targets: Sequence[str],
    *,
    target_types: Mapping[str, str] | None = None,
    max_categorical_levels: int = 10,
) -> dict[str, tuple[str, str]]:
    """Kind of every target, inferred from the cohort unless given.

    Parameters
    ----------
    cohort : Cohort or DataFrame
    targets : sequence of str
    target_types : mapping, optional
        ``{target: "binary" | "categorical" | "continuous"}`` overrides.
    max_categorical_levels : int, default 10
        Integer-coded columns with at most this many distinct values are categorical.

    Returns
    -------
    dict
        ``target -> (kind, reason)``.

    Raises
    ------
    SchemaError
        An override names an unknown kind or a target not in ``targets``.
    CohortError
        A target is not a clinical column (only for targets that need inferring).
    """
    given = dict(target_types or {})
    bad = {k: v for k, v in given.items() if v not in TARGET_KINDS}
    if bad:
        raise SchemaError(f"target_types values must be one of {list(TARGET_KINDS)}; got {bad}.")
    unknown = sorted(set(given) - set(targets))
    if unknown:
        raise SchemaError(
            f"target_types names {unknown}, which are not among targets {list(targets)}."
        )
    clin = clinical_frame(cohort)
    out: dict[str, tuple[str, str]] = {}
    for t in targets:
        if t in given:
            out[t] = (given[t], "given in target_types")
            continue
        if t not in clin.columns:
            raise CohortError(
                f"targets {[t]} are not columns of the clinical table; available: "
                f"{list(clin.columns)[:30]}"
            )
        out[t] = _infer_one(clin[t], max_categorical_levels)
    for t, (kind, why) in out.items():
        logger.info("decode: target %s is %s (%s)", t, kind, why)
    return out


def _infer_one(values: pd.Series, max_levels: int) -> tuple[str, str]:
    from ..cohort import normalise_binary

    miss = _is_missing(values)
    present = values[~miss]
    if pd.api.types.is_bool_dtype(values):
        return "binary", "boolean column"
    try:
        normalise_binary(values, column=str(values.name))
    except SchemaError:
        pass
    else:
        return "binary", "0/1 or genotype spellings"
    n_levels = int(present.astype(str).str.strip().nunique())
    if n_levels <= 2:
        return "binary", f"{n_levels} distinct value(s)"
    num = pd.to_numeric(present, errors="coerce")
    if isinstance(values.dtype, pd.CategoricalDtype) or num.isna().any():
        return "categorical", f"text with {n_levels} levels"
    arr = num.to_numpy(dtype=float)
    if np.all(arr == np.round(arr)) and n_levels <= max_levels:
        return (
            "categorical",
            f"integer codes with {n_levels} levels (an ordinal score? declare it "
            "continuous in target_types)",
        )
    return "continuous", f"numeric with {n_levels} distinct values"


def outcome_exclusions(
    data: PatientData, target: str, missing: np.ndarray, reason: str
) -> pd.DataFrame:
    """Exclusion rows of one target: missing outcome, no clinical row, no representation."""
    rows = [(p, target, reason) for p in data.patient_ids[missing]]
    rows += [(p, target, "representation without clinical row") for p in data.no_clinical]
    rows += [(p, target, "no representation") for p in data.no_representation]
    return pd.DataFrame(rows, columns=["patient_id", "target", "reason"])


def survival_outcome(
    clinical: pd.DataFrame, time: str, event: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Times, events (0/1 float) and the mask of patients missing either (to be excluded).

    Raises
    ------
    CohortError
        A column is absent.
    SchemaError
        Negative, infinite or non-numeric times, or event values other than 1/0/True/False,
        naming the patients.
    """
    for c in (time, event):
        if c not in clinical.columns:
            raise CohortError(
                f"column {c!r} is not in the clinical table; available: {list(clinical.columns)[:30]}"
            )
    tcol, ecol = clinical[time], clinical[event]
    tmiss = _is_missing(tcol)
    emiss = _is_missing(ecol)
    t = pd.to_numeric(tcol.where(~tmiss), errors="coerce").to_numpy(dtype=float)
    bad = ~tmiss & (~np.isfinite(t) | (t < 0))
    if bad.any():
        raise SchemaError(
            f"column {time!r}: invalid time(s) {tcol[bad].astype(str).tolist()[:5]} for patients "
            f"{clinical.index[bad][:5].tolist()}; times must be finite numbers >= 0."
        )
    if ecol.dtype == bool:
        e = ecol.to_numpy(dtype=float)
    else:
        e = pd.to_numeric(ecol.astype("object").where(~emiss), errors="coerce").to_numpy(
            dtype=float
        )
    bad = ~emiss & ~np.isin(e, (0.0, 1.0))
    if bad.any():
        raise SchemaError(
            f"column {event!r}: values {ecol[bad].astype(str).unique().tolist()[:5]} for patients "
            f"{clinical.index[bad][:5].tolist()} are not an event indicator; allowed: 1 (event), "
            "0 (censored), True/False."
        )
    return t, e, tmiss | emiss
