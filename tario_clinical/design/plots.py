"""The power-curve figure of a design comparison."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .._checks import check_choice
from ..palette import OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["plot_power_curves"]

#: (Okabe–Ito colour, line style, line width, marker) of each design's power curve: the
#: enriched and biomarker-positive-test curves coincide against patients screened, so the
#: first is wide and solid under the second, thin and dashed, in the opposite colour
_CURVE_STYLES = {
    "enriched": ("#0072B2", "-", 3.2, "o"),
    "all-comers": ("#009E73", "-.", 1.8, "^"),
    "all-comers (biomarker-positive test)": ("#D55E00", "--", 1.6, "s"),
}


def plot_power_curves(
    curves: pd.DataFrame,
    *,
    ax: Axes | None = None,
    x: str = "n_screened",
    target: float | None = None,
) -> Axes:
    """Plot power against ``x`` (``n_screened``, ``n_patients`` or ``events``) per design.

    Parameters
    ----------
    curves : DataFrame
        Output of :func:`power_curves` (columns ``design``, ``power`` and ``x``).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new 6.5 x 4.2 inch figure.
    x : {"n_screened", "n_patients", "events"}, default "n_screened"
        Column on the horizontal axis.
    target : float, optional
        Target power, drawn as a dashed horizontal line.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        Unknown ``x``.

    Notes
    -----
    Against patients screened the ``enriched`` and ``all-comers (biomarker-positive test)``
    curves coincide (both test the same biomarker-positive patients per patient screened), so
    each design has its own colour (Okabe–Ito, colour-blind safe), line style, width and
    markers at different points: the enriched curve is wide and solid under the thin dashed
    one, and both stay visible where they overlap.
    """
    check_choice("x", x, ("n_screened", "n_patients", "events"))
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (design, g) in enumerate(curves.groupby("design", sort=False)):
        color, ls, lw, marker = _CURVE_STYLES.get(
            str(design), (OKABE_ITO[(i + 3) % len(OKABE_ITO)], ":", 1.8, "D")
        )
        ax.plot(
            g[x],
            g["power"],
            color=color,
            ls=ls,
            lw=lw,
            marker=marker,
            # markers every 12 % of the line's drawn length, shifted per design: the markers of
            # coinciding curves interleave instead of hiding each other
            markevery=(0.04 * i, 0.12),
            ms=6,
            mfc="white" if i else color,
            label=str(design),
            zorder=2 + i,
        )
    if target is not None:
        ax.axhline(target, color="grey", ls="--", lw=1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(
        {"n_screened": "Patients screened", "n_patients": "Patients enrolled", "events": "Events"}[
            x
        ]
    )
    ax.set_ylabel("Power (two-sided log-rank)")
    ax.grid(alpha=0.25)
    ax.legend(frameon=False, fontsize=9)
    return ax
