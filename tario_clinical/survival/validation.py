"""Input checks shared by the survival analyses.

Every public survival function validates its table here before it computes anything: the
survival columns (:func:`survival_arrays`), group columns (:func:`group_codes`), option values
(:func:`~tario_clinical._checks.check_choice`, :func:`~tario_clinical._checks.check_level`,
the package's own). Messages name the column, the count, the first
patient ids (or row labels), what is allowed and how to fix it. Used by the modules of
:mod:`tario_clinical.survival`; not re-exported by its face.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .._checks import check_choice, check_level
from ..errors import SchemaError

__all__ = [
    "check_choice",
    "check_level",
    "as_pandas",
    "require_columns",
    "row_labels",
    "survival_arrays",
    "level_order",
    "group_codes",
    "norm_ppf",
]


def as_pandas(df: Any, what: str = "df") -> pd.DataFrame:
    """``df`` as a pandas DataFrame (a polars one is converted); ``TypeError`` naming ``what``
    otherwise."""
    if isinstance(df, pd.DataFrame):
        return df
    if hasattr(df, "to_pandas"):  # polars
        return df.to_pandas()
    raise TypeError(f"{what} must be a pandas or polars DataFrame; got {type(df).__name__}")


def require_columns(df: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise :class:`SchemaError` listing the missing and the available columns."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(
            f"column(s) {', '.join(map(repr, missing))} not in the table; available: "
            f"{', '.join(map(str, df.columns))}"
        )


def row_labels(df: pd.DataFrame, mask: np.ndarray, limit: int = 5) -> str:
    """The first ``limit`` patient ids (else index labels) where ``mask`` is true, for messages."""
    if "patient_id" in df.columns:
        labels = df.loc[mask, "patient_id"].astype(str).tolist()
    else:
        labels = [str(i) for i in df.index[mask]]
    more = f" (+{len(labels) - limit} more)" if len(labels) > limit else ""
    return ", ".join(labels[:limit]) + more


def survival_arrays(df: pd.DataFrame, time: str, event: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated float times (finite, >= 0) and boolean events of ``df``.

    Raises
    ------
    SchemaError
        Missing columns; infinite, missing, non-numeric or negative times; event values other
        than 1/0/True/False, naming the rows.
    """
    require_columns(df, [time, event])
    t = pd.to_numeric(df[time], errors="coerce").astype(float).to_numpy()
    inf = np.isinf(t)
    if inf.any():
        raise SchemaError(
            f"column {time!r}: infinite time(s) {t[inf][:5].tolist()} at rows "
            f"{row_labels(df, inf)}; times must be finite and >= 0 (give the last follow-up "
            "time of a censored patient)"
        )
    bad = ~np.isfinite(t)
    if bad.any():
        raise SchemaError(
            f"column {time!r}: {int(bad.sum())} missing or non-numeric time(s) at rows "
            f"{row_labels(df, bad)}; drop or exclude them first (stratify() does this and lists "
            "them)"
        )
    neg = t < 0
    if neg.any():
        raise SchemaError(
            f"column {time!r}: negative time(s) {t[neg][:5].tolist()} at rows {row_labels(df, neg)}; "
            "times must be >= 0"
        )
    raw = df[event]
    if raw.dtype == bool:
        e = raw.to_numpy(dtype=float)
    else:
        e = pd.to_numeric(raw.astype("object").where(raw.notna(), np.nan), errors="coerce")
        e = e.astype(float).to_numpy()
    bad = ~np.isin(e, (0.0, 1.0))
    if bad.any():
        vals = sorted({str(v) for v in raw[bad].tolist()})[:5]
        raise SchemaError(
            f"column {event!r}: {int(bad.sum())} value(s) {vals} at rows {row_labels(df, bad)} "
            "are not an event indicator; allowed: 1 (event), 0 (censored), True/False"
        )
    return t, e.astype(bool)


def level_order(s: pd.Series) -> list[Any]:
    """Levels of ``s`` in a stable order: categorical order (observed levels only), else
    sorted (by their text when the values do not compare)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        present = set(s.dropna().unique())
        return [c for c in s.cat.categories if c in present]
    vals = s.dropna().unique().tolist()
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def group_codes(df: pd.DataFrame, group: str) -> tuple[np.ndarray, list[Any]]:
    """Integer code of each row's level of ``group`` and the levels (:func:`level_order`);
    :class:`SchemaError` naming the rows with a missing value."""
    require_columns(df, [group])
    s = df[group]
    miss = s.isna().to_numpy()
    if miss.any():
        raise SchemaError(
            f"column {group!r}: {int(miss.sum())} missing group value(s) at rows "
            f"{row_labels(df, miss)}; drop or label them first"
        )
    levels = level_order(s)
    lookup = {lv: i for i, lv in enumerate(levels)}
    codes = s.map(lookup).to_numpy(dtype=int)
    return codes, levels


def norm_ppf(level: float) -> float:
    """Two-sided standard normal quantile of ``level`` (1.96 for 0.95)."""
    return float(stats.norm.ppf(0.5 + level / 2.0))
