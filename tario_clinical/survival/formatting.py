"""How survival results are shown: JSON-safe records (``to_dict``, results.json) and HTML
tables (``_repr_html_`` in notebooks). Used by the result classes of
:mod:`tario_clinical.survival`; not re-exported by its face.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["nan_to_none", "records", "html_table"]


def nan_to_none(value: Any) -> Any:
    """``value`` with JSON-safe types, recursively: non-finite floats and pandas NA -> ``None``,
    numpy scalars -> Python, DataFrames -> :func:`records`."""
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return None if not math.isfinite(v) else v
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, dict):
        return {str(k): nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return records(value)
    return value


def records(df: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    """JSON-safe list of row dicts (NaN -> None, numpy scalars -> Python)."""
    if df is None:
        return None
    out = df.reset_index() if df.index.name is not None else df
    return [{str(k): nan_to_none(v) for k, v in row.items()} for row in out.to_dict("records")]


def html_table(df: pd.DataFrame | None, caption: str) -> str:
    """``df`` as an escaped HTML table under a ``caption`` heading, floats to 4 significant
    digits; ``""`` for no or an empty table."""
    if df is None or len(df) == 0:
        return ""
    shown = df.copy()
    for c in shown.columns:
        if pd.api.types.is_float_dtype(shown[c]):
            shown[c] = shown[c].map(lambda v: "" if pd.isna(v) else f"{v:.4g}")
    return f"<h4>{html.escape(caption)}</h4>" + shown.to_html(escape=True, border=0)
