"""Shared helpers of the biomarker package: JSON-safe values, HTML tables, representation input.

Private module; its names are used by ``lock``, ``validate`` and ``shift`` only.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._checks import check_level
from .._json import json_safe, records
from ..errors import SchemaError

__all__ = [
    "json_safe",
    "canonical_json_bytes",
    "html_table",
    "records",
    "Matrix",
    "as_matrix",
    "align_features",
    "patient_means",
    "check_level",
    "sigmoid",
]


def canonical_json_bytes(doc: Any) -> bytes:
    """Deterministic UTF-8 JSON (sorted keys, one-space indent, no NaN, trailing newline).

    Floats are written with Python's shortest round-trip representation, so a float64 read
    back is bit-identical.
    """
    text = json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _cell(v: Any) -> str:
    if isinstance(v, float | np.floating):
        if not np.isfinite(v):
            return ""
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.3f}"
    return "" if v is None else str(v)


def html_table(df: pd.DataFrame | None, caption: str, *, max_rows: int = 30) -> str:
    """A small escaped HTML table (empty string for None)."""
    if df is None:
        return ""
    d = df.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in d.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in d.itertuples(index=False)
    )
    more = f" (first {max_rows} of {len(df)})" if len(df) > max_rows else ""
    return f"<table><caption>{html.escape(caption)}{more}</caption><tr>{head}</tr>{body}</table>"


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, overflow-free."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


# ------------------------------------------------------------------------ representations
@dataclass(frozen=True)
class Matrix:
    """Representation rows as arrays: ``X`` (rows x features), row and patient ids, names."""

    X: np.ndarray
    row_ids: np.ndarray
    patient_ids: np.ndarray
    feature_names: np.ndarray
    uns: dict[str, Any]


def as_matrix(representations: Any, *, what: str = "representations") -> Matrix:
    """AnnData or DataFrame -> :class:`Matrix` (rows are patients, or slides with ``obs.patient_id``).

    Raises
    ------
    SchemaError
        Not a 2-D table, duplicate row ids or duplicate feature names.
    """
    if isinstance(representations, pd.DataFrame):
        X = representations.to_numpy()
        row_ids = representations.index.astype(str).to_numpy()
        names = representations.columns.astype(str).to_numpy()
        obs = pd.DataFrame(index=row_ids)
        uns: dict[str, Any] = {}  # a DataFrame carries no provenance
    elif hasattr(representations, "X") and hasattr(representations, "obs_names"):
        X = representations.X
        if hasattr(X, "toarray"):
            X = X.toarray()
        X = np.asarray(X)
        row_ids = np.asarray(representations.obs_names).astype(str)
        names = np.asarray(representations.var_names).astype(str)
        obs = representations.obs
        uns = dict(getattr(representations, "uns", {}) or {})
    else:
        raise SchemaError(
            f"{what} must be an AnnData (patients or slides x features) or a DataFrame; got "
            f"{type(representations).__name__}."
        )
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise SchemaError(f"{what} must be a non-empty 2-D matrix; got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.number):
        raise SchemaError(f"{what}: values must be numeric; got dtype {X.dtype}.")
    idx = pd.Index(row_ids)
    if idx.has_duplicates:
        dup = idx[idx.duplicated()].unique()[:5].tolist()
        raise SchemaError(f"{what}: duplicate row ids {dup}; ids must be unique.")
    fidx = pd.Index(names)
    if fidx.has_duplicates:
        dup = fidx[fidx.duplicated()].unique()[:5].tolist()
        raise SchemaError(f"{what}: duplicate feature names {dup}; features are matched by name.")
    if "patient_id" in obs.columns:
        patients = obs["patient_id"].astype(str).to_numpy()
    else:
        patients = row_ids
    return Matrix(X=X, row_ids=row_ids, patient_ids=patients, feature_names=names, uns=uns)


def align_features(
    m: Matrix, required: Any, *, what: str = "representations", context: str = ""
) -> np.ndarray:
    """Columns of ``m.X`` in the order of ``required`` (C-contiguous copy).

    Raises
    ------
    SchemaError
        Naming the missing features (first 10 and how many), matched by name.
    """
    req = pd.Index(np.asarray(required, dtype=object).astype(str))
    pos = pd.Index(m.feature_names).get_indexer(req)
    missing = req[pos < 0]
    if len(missing):
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise SchemaError(
            f"{what} lack {len(missing)} of the {len(req)} features {context or 'required'}: "
            f"{shown}. Features are matched by name (var_names / columns); use representations "
            "made with the same encoder, head and feature list."
        )
    return np.ascontiguousarray(m.X[:, pos])


def patient_means(values: np.ndarray, patient_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of row ``values`` per patient (rows or matrices); patients in first-seen order.

    One row per patient is returned unchanged (no arithmetic), so patient-level scores stay
    bit-identical.
    """
    ids = pd.Index(patient_ids)
    if not ids.has_duplicates:
        return np.asarray(patient_ids), values
    codes, uniq = pd.factorize(ids)
    counts = np.bincount(codes)
    if values.ndim == 1:
        sums = np.bincount(codes, weights=values)
        return np.asarray(uniq), sums / counts
    out = np.zeros((uniq.size, values.shape[1]), dtype=float)
    np.add.at(out, codes, values)
    return np.asarray(uniq), out / counts[:, None]
