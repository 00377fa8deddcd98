"""JSON-safe values with canonical numbers (the leaf every other report module builds on)."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from .._json import json_safe

__all__ = ["jsonable", "canonical_json", "records"]

_FLOAT_DIGITS = 12


def jsonable(obj: Any) -> Any:
    """JSON-safe copy of ``obj`` with floats rounded to 12 significant digits (so last-bit
    differences of summation order do not change the file); the package's converter."""
    return json_safe(obj, digits=_FLOAT_DIGITS)


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
