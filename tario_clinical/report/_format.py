"""Numbers rounded for reading (the exact values are in ``results.json``).

Estimates (AUROC, C, hazard ratios) get two decimals, p- and q-values two significant digits
(three near 0.05, so that a display never reads "0.05" for a value below 0.05), times one
decimal, counts as integers. Missing values are an en dash.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["is_number", "est", "pval", "p_text", "ci", "est_ci", "pct", "count", "time"]

DASH = "–"


def is_number(x: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def est(x: Any, digits: int = 2) -> str:
    """An estimate: ``digits`` decimals; small values keep ``digits`` significant digits."""
    if not is_number(x):
        return DASH
    x = float(x)
    if x != 0 and abs(x) < 10 ** (1 - digits):
        return f"{x:.{digits}g}"
    return f"{x:.{digits}f}"


def pval(p: Any) -> str:
    """A p- or q-value: ``<0.001``, else two significant digits (three in [0.045, 0.055))."""
    if not is_number(p):
        return DASH
    p = float(p)
    if p < 0.001:
        return "<0.001"
    if 0.045 <= p < 0.055:
        return f"{p:.3g}"
    text = f"{p:.2g}"
    return "1" if text in ("1", "1.0") else text


def p_text(p: Any, name: str = "p") -> str:
    """``p = 0.026`` / ``p < 0.001``."""
    text = pval(p)
    return f"{name} < 0.001" if text == "<0.001" else f"{name} = {text}"


def is_flag(x: Any) -> bool:
    """A boolean (Python, NumPy or JSON), not a missing value."""
    return isinstance(x, (bool, np.bool_))


def is_true(x: Any) -> bool:
    return is_flag(x) and bool(x)


def _bound(x: Any, digits: int, ref: float | None) -> str:
    """A bound, with one more decimal where rounding would put it on the null value ``ref``
    (an upper HR bound of 0.996 is shown as 0.996, not 1.00)."""
    text = est(x, digits)
    if ref is not None and is_number(x) and float(x) != ref:
        while digits < 6 and float(text) == ref:
            digits += 1
            text = est(x, digits)
    return text


def ci(
    low: Any, high: Any, digits: int = 2, *, ref: float | None = None, excludes_ref: bool = False
) -> str:
    """``0.82–0.97``; ``ref`` is the null value (1 for a hazard ratio, 0.5 for AUROC or C).

    ``excludes_ref``: the interval excludes ``ref`` although a bound equals it (an open bound,
    set by an exact test): that bound is written ``>0.50`` (``<0.50`` for an upper one).
    """
    lo, hi = _bound(low, digits, ref), _bound(high, digits, ref)
    if excludes_ref and ref is not None:
        if is_number(low) and float(low) == ref:
            lo = ">" + lo
        if is_number(high) and float(high) == ref:
            hi = "<" + hi
    return f"{lo}–{hi}"


def est_ci(
    x: Any,
    low: Any,
    high: Any,
    digits: int = 2,
    *,
    ref: float | None = None,
    excludes_ref: bool = False,
) -> str:
    """``0.90 (0.82–0.97)``."""
    if not is_number(x):
        return DASH
    if not (is_number(low) and is_number(high)):
        return est(x, digits)
    return f"{est(x, digits)} ({ci(low, high, digits, ref=ref, excludes_ref=excludes_ref)})"


def pct(fraction: Any) -> str:
    """A fraction as a percentage: ``51 %``."""
    if not is_number(fraction):
        return DASH
    v = 100.0 * float(fraction)
    return f"{v:.0f} %" if v >= 1 or v == 0 else f"{v:.1g} %"


def count(n: Any) -> str:
    """An integer count (floats that are whole numbers too)."""
    if not is_number(n):
        return DASH
    return str(int(n)) if float(n) == int(n) else est(n, 1)


def time(x: Any) -> str:
    """A time (months, years...): one decimal; whole numbers without (``24``, ``13.4``)."""
    if not is_number(x):
        return DASH
    x = float(x)
    return str(int(x)) if x == int(x) and abs(x) < 1e9 else f"{x:.1f}"
