"""Input checks of the metrics: one label and one score per patient, labels 0/1, finite scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import AnalysisError, SchemaError

__all__ = ["check_binary"]


def check_binary(
    y_true: Any, y_score: Any, *, name: str = "y_score", need_both: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(y_score, dtype=float)
    if y.ndim != 1 or s.ndim != 1:
        raise SchemaError(
            f"y_true and {name} must be 1-D; got shapes {y.shape} and {s.shape}. "
            "Pass one label and one score per patient."
        )
    if y.shape[0] != s.shape[0]:
        raise SchemaError(
            f"y_true has {y.shape[0]} values but {name} has {s.shape[0]}; they must match."
        )
    if y.dtype == bool:
        y = y.astype(int)
    try:
        yf = y.astype(float)
    except (TypeError, ValueError) as err:
        raise SchemaError(f"y_true must be 0/1; got values such as {y[:3].tolist()}") from err
    bad = ~np.isin(yf, (0.0, 1.0))
    if bad.any():
        raise SchemaError(
            f"y_true must hold only 0 and 1; got {np.unique(y[bad])[:5].tolist()} "
            f"at positions {np.flatnonzero(bad)[:5].tolist()}."
        )
    if not np.all(np.isfinite(s)):
        where = np.flatnonzero(~np.isfinite(s))[:5].tolist()
        raise SchemaError(f"{name} holds NaN or infinite values at positions {where}.")
    yi = yf.astype(np.int8)
    if need_both:
        n1 = int(yi.sum())
        if n1 == 0 or n1 == yi.size:
            raise AnalysisError(
                f"AUROC needs both classes; y_true has {n1} positives and {yi.size - n1} negatives."
            )
    return yi, s
