"""JSON-safe values with canonical numbers (the leaf every other report module builds on)."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["jsonable", "canonical_json", "records"]

_FLOAT_DIGITS = 12


def jsonable(obj: Any) -> Any:
    """JSON-safe copy of ``obj`` with canonical numbers.

    numpy / pandas scalars become Python numbers; NaN, inf and missing values become ``None``;
    floats are rounded to 12 significant digits (so last-bit differences of summation order do
    not change the file); DataFrames become lists of records; paths and other objects strings.
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, pd.DataFrame):
        return [jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, pd.Series):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return [jsonable(v) for v in sorted(obj, key=str)]
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        if not math.isfinite(v):
            return None
        r = float(f"{v:.{_FLOAT_DIGITS}g}")
        return 0.0 if r == 0 else r  # no "-0.0"
    if isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, _dt.datetime | _dt.date | pd.Timestamp):
        return obj.isoformat()
    if hasattr(obj, "model_dump"):  # pydantic models (configs)
        return jsonable(obj.model_dump(mode="json"))
    return str(obj)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, UTF-8, trailing newline."""
    return (
        json.dumps(jsonable(obj), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
        + "\n"
    )


def records(df: Any) -> list[dict[str, Any]]:
    """A DataFrame (or list of dicts) as JSON-safe records; ``None`` as an empty list."""
    if df is None:
        return []
    if isinstance(df, pd.DataFrame):
        return jsonable(df.reset_index(drop=True))
    return jsonable(df)
