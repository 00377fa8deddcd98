"""Multiple testing: Benjamini–Hochberg q-values, the package's one implementation."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import SchemaError

__all__ = ["bh_qvalues"]


def bh_qvalues(p_values: Any) -> np.ndarray:
    """Benjamini–Hochberg q-values (false discovery rate adjusted p-values).

    ``q_(i) = min_{j >= i} min(1, m p_(j) / j)`` over the ``m`` finite p-values sorted
    ascending (Benjamini & Hochberg, 1995); the same numbers as
    ``statsmodels.stats.multitest.multipletests(p, method="fdr_bh")[1]``.

    Parameters
    ----------
    p_values : array-like of float
        P-values in [0, 1]; NaN entries (tests not done) stay NaN and are not counted in ``m``.

    Returns
    -------
    numpy.ndarray
        q-values, same shape as ``p_values``.

    Raises
    ------
    SchemaError
        If a p-value is outside [0, 1] or infinite.

    Examples
    --------
    >>> bh_qvalues([0.01, 0.04, 0.03, float("nan")]).round(4).tolist()
    [0.03, 0.04, 0.04, nan]
    """
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    vals = p[ok]
    bad = ~((vals >= 0) & (vals <= 1))
    if bad.any():
        raise SchemaError(
            f"p-values must lie in [0, 1]; got {vals[bad][:5].tolist()} "
            f"({int(bad.sum())} value(s) outside)."
        )
    m = vals.size
    if m == 0:
        return q
    order = np.argsort(vals, kind="mergesort")
    ranked = vals[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    q[ok] = out
    return q
