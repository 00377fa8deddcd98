"""How survival results are shown: JSON-safe records (``to_dict``, results.json; the converter
is the package's one, :mod:`tario_clinical._json`) and HTML tables (``_repr_html_`` in
notebooks). Used by the result classes of
:mod:`tario_clinical.survival`; not re-exported by its face.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from .._json import json_safe
from .._json import records as _records

__all__ = ["json_safe", "records", "html_table"]


def records(df: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    """JSON-safe list of row dicts (NaN -> None, numpy scalars -> Python); a named index is
    kept as the leading column."""
    return _records(df, index="named")


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
