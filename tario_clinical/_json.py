"""The one JSON-safe converter of the package (results.json, artefact cards, ``to_dict``).

:func:`json_safe` turns numpy / pandas values and containers into plain Python that
:func:`json.dumps` writes with ``allow_nan=False``: numpy scalars become Python numbers, NaN,
infinities and missing values (``None``, ``pd.NA``, ``NaT``) become ``None``, DataFrames become
lists of records, arrays, Series, tuples and sets become lists, paths and dates strings. With
``digits`` floats are rounded to that many significant digits, so last-bit differences of a
summation order do not change a file. :func:`records` is the DataFrame case with the index
handling spelled out; :func:`canonical_json` the deterministic text of a document.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = ["json_safe", "records", "canonical_json"]


def _float(value: float, digits: int | None) -> float | None:
    if not math.isfinite(value):
        return None
    if digits is None:
        return value
    r = float(f"{value:.{digits}g}")
    return 0.0 if r == 0 else r  # no "-0.0"


def json_safe(obj: Any, *, digits: int | None = None) -> Any:
    """A JSON-safe copy of ``obj``.

    Parameters
    ----------
    obj : Any
        A value, or a (nested) mapping, list, tuple, set, numpy array, pandas Series or
        DataFrame of values.
    digits : int, optional
        Round floats to this many significant digits (``None``: keep every bit).

    Returns
    -------
    Any
        ``dict`` (keys as ``str``), ``list``, ``str``, ``int``, ``float``, ``bool`` or ``None``.
        Objects of other types become ``str(obj)``; pydantic models their JSON dump.

    Examples
    --------
    >>> import numpy as np
    >>> json_safe({"auroc": np.float64(0.71), 1: [np.nan, np.int64(3)], "ok": np.True_})
    {'auroc': 0.71, '1': [None, 3], 'ok': True}
    >>> json_safe(1 / 3, digits=3)
    0.333
    """
    if isinstance(obj, str):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v, digits=digits) for k, v in obj.items()}
    if isinstance(obj, pd.DataFrame):
        return records(obj, digits=digits)
    if isinstance(obj, pd.Series | pd.Index | np.ndarray):
        return [json_safe(v, digits=digits) for v in obj.tolist()]
    if isinstance(obj, list | tuple):
        return [json_safe(v, digits=digits) for v in obj]
    if isinstance(obj, set | frozenset):
        return [json_safe(v, digits=digits) for v in sorted(obj, key=str)]
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _float(float(obj), digits)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, _dt.datetime | _dt.date | pd.Timestamp):
        return obj.isoformat()
    if hasattr(obj, "model_dump"):  # pydantic models (configs)
        return json_safe(obj.model_dump(mode="json"), digits=digits)
    try:
        if pd.isna(obj):  # np.datetime64("NaT") and other scalar missing values
            return None
    except (TypeError, ValueError):
        pass
    return str(obj)


def records(
    df: pd.DataFrame | None,
    *,
    index: bool | Literal["named"] = False,
    digits: int | None = None,
) -> list[dict[str, Any]] | None:
    """A DataFrame as a JSON-safe list of row dicts.

    Parameters
    ----------
    df : DataFrame or None
        The table (``None`` gives ``None``).
    index : bool or "named", default False
        Keep the index as leading column(s): always (``True``), never (``False``) or only when
        it has a name (``"named"``).
    digits : int, optional
        As in :func:`json_safe`.

    Returns
    -------
    list of dict or None

    Examples
    --------
    >>> import pandas as pd
    >>> records(pd.DataFrame({"hr": [0.5, float("nan")]}, index=pd.Index(["a", "b"], name="arm")),
    ...         index="named")
    [{'arm': 'a', 'hr': 0.5}, {'arm': 'b', 'hr': None}]
    """
    if df is None:
        return None
    if not isinstance(df, pd.DataFrame):
        return json_safe(df, digits=digits)
    keep = index is True or (index == "named" and any(n is not None for n in df.index.names))
    table = df.reset_index() if keep else df
    return [
        {str(k): json_safe(v, digits=digits) for k, v in row.items()}
        for row in table.to_dict(orient="records")
    ]


def canonical_json(obj: Any, *, indent: int = 2, digits: int | None = None) -> str:
    """Deterministic JSON text of ``obj``: :func:`json_safe`, sorted keys, UTF-8, newline.

    Parameters
    ----------
    obj : Any
        The document.
    indent : int, default 2
        Spaces per nesting level.
    digits : int, optional
        As in :func:`json_safe`; with ``None`` floats round-trip bit-identically.

    Returns
    -------
    str
    """
    text = json.dumps(
        json_safe(obj, digits=digits),
        sort_keys=True,
        indent=indent,
        ensure_ascii=False,
        allow_nan=False,
    )
    return text + "\n"
