"""Plots of survival results: KM curves with a number-at-risk table, forest plots.

Plots take computed results and never fit, save or show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..palette import OKABE_ITO

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .nonparametric import KaplanMeier


__all__ = ["KMDisplay", "plot_km", "plot_forest"]


@dataclass
class KMDisplay:
    """KM plot display (scikit-learn style): ``ax_`` curves, ``table_ax_`` number at risk,
    ``figure_`` the figure, ``at_risk_`` the table shown."""

    ax_: Axes
    table_ax_: Axes
    figure_: Figure
    at_risk_: pd.DataFrame


def _nice_ticks(tmax: float, n: int = 6) -> np.ndarray:
    raw = tmax / max(n - 1, 1)
    mag = 10 ** np.floor(np.log10(raw)) if raw > 0 else 1.0
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    return np.arange(0, tmax + 1e-9, step)


def plot_km(
    result: KaplanMeier,
    *,
    ax: Axes | None = None,
    at_risk_times: Sequence[float] | None = None,
    p_value: float | None = None,
    p_label: str = "log-rank p",
    p_note: str | None = None,
    title: str | None = None,
    time_label: str = "Time",
    time_unit: str | None = "months",
    colors: Sequence[str] | None = None,
) -> KMDisplay:
    """KM curves with confidence bands, censoring ticks and a number-at-risk table below.

    Parameters
    ----------
    result : KaplanMeier
    ax : Axes, optional
        Axes for the curves; the risk table is appended below it. A new figure otherwise.
    at_risk_times : sequence of float, optional
        Times of the risk-table columns (default: the x ticks).
    p_value : float, optional
        Log-rank p-value written on the plot as ``"{p_label} = {p_value}"``.
    p_label : str
        What the p-value is (e.g. ``"corrected log-rank p"``).
    p_note : str, optional
        Second line under the p-value (e.g. how it was corrected).
    title, time_label : str
    time_unit : str, optional
        Unit of the times, appended to ``time_label`` as ``"Time (months)"``; default months,
        the clinical schema's ``x-time-unit``. ``None`` for no unit.
    colors : sequence of str, optional
        Default: the Okabe–Ito colour-blind-safe palette.

    Returns
    -------
    KMDisplay
    """
    import matplotlib.pyplot as plt

    colors = list(colors or OKABE_ITO)
    if ax is None:
        fig, (ax, tax) = plt.subplots(
            2,
            1,
            figsize=(7, 5.6),
            sharex=True,
            gridspec_kw={"height_ratios": [3.2, 1], "hspace": 0.08},
        )
    else:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        fig = ax.figure
        tax = make_axes_locatable(ax).append_axes("bottom", size="30%", pad=0.45, sharex=ax)
    tmax = max(float(c.time.max()) for c in result.curves.values())
    for i, (g, c) in enumerate(result.curves.items()):
        col = colors[i % len(colors)]
        x = np.concatenate([[0.0], c.time])
        y = np.concatenate([[1.0], c.survival])
        lo = np.concatenate([[1.0], c.low])
        hi = np.concatenate([[1.0], c.high])
        label = f"{g} (n={int(c.n_risk[0])})"
        ax.step(x, y, where="post", color=col, lw=1.8, label=label)
        ax.fill_between(
            x,
            np.nan_to_num(lo),
            np.nan_to_num(hi, nan=1.0),
            step="post",
            color=col,
            alpha=0.15,
            lw=0,
        )
        cens = c.n_censor > 0
        ax.plot(c.time[cens], c.survival[cens], ls="none", marker="|", ms=7, color=col)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, tmax * 1.02)
    ax.set_ylabel("Survival probability")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper right", frameon=False, title=result.group)
    if p_value is not None and np.isfinite(p_value):
        txt = f"{p_label} < 0.0001" if p_value < 1e-4 else f"{p_label} = {p_value:.3g}"
        if p_note:
            txt += f"\n{p_note}"
        ax.text(0.03, 0.05, txt, transform=ax.transAxes, fontsize=10, va="bottom")
    if title:
        ax.set_title(title)
    ticks = (
        np.asarray(at_risk_times, dtype=float) if at_risk_times is not None else _nice_ticks(tmax)
    )
    ticks = ticks[ticks <= tmax * 1.02]
    table = result.at_risk(ticks)
    groups = list(table.index)
    for i, g in enumerate(groups):
        ypos = len(groups) - 1 - i
        for t, v in zip(ticks, table.loc[g].to_numpy(), strict=True):
            tax.text(
                t,
                ypos,
                str(int(v)),
                ha="center",
                va="center",
                fontsize=9,
                color=colors[i % len(colors)],
            )
    tax.set_yticks(range(len(groups)))
    tax.set_yticklabels([str(g) for g in reversed(groups)])
    tax.set_ylim(-0.6, len(groups) - 0.4)
    tax.set_xticks(ticks)
    tax.set_xlabel(f"{time_label} ({time_unit})" if time_unit else time_label)
    tax.set_title("Number at risk", fontsize=9, loc="left", pad=4)
    for sp in ("top", "right", "left"):
        tax.spines[sp].set_visible(False)
    tax.tick_params(axis="y", length=0, pad=14)
    ax.set_xticks(ticks)
    ax.tick_params(labelbottom=False)
    return KMDisplay(ax_=ax, table_ax_=tax, figure_=fig, at_risk_=table)


#: tick mantissas per decade for a log HR axis, densest first
_LOG_TICK_TIERS = (
    (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0),
    (1.0, 1.5, 2.0, 3.0, 5.0, 7.5),
    (1.0, 2.0, 5.0),
    (1.0, 3.0),
    (1.0,),
)


def _log_ticks(low: float, high: float, width_pt: float, fontsize: float) -> list[float]:
    """The densest tick set of ``_LOG_TICK_TIERS`` inside ``[low, high]`` whose ``:g`` labels
    do not overlap on a log axis ``width_pt`` points wide (label width estimated as 0.62 em
    per character plus one em of space), at most 9 ticks; 1 is always a tick when in range.
    Too wide a range for one tick per decade: every k-th power of ten."""
    llo, lhi = np.log10(low), np.log10(high)
    span = max(lhi - llo, 1e-12)

    def fits(ticks: list[float]) -> bool:
        if len(ticks) > 9:
            return False
        x = (np.log10(ticks) - llo) / span * width_pt
        w = np.array([len(f"{t:g}") * 0.62 * fontsize for t in ticks])
        return bool(np.all(np.diff(x) >= (w[:-1] + w[1:]) / 2 + fontsize))

    decades = range(int(np.floor(llo)) - 1, int(np.ceil(lhi)) + 1)
    for mantissas in _LOG_TICK_TIERS:
        ticks = [
            float(f"{m * 10.0**d:.6g}")
            for d in decades
            for m in mantissas
            if low <= m * 10.0**d <= high
        ]
        if len(ticks) >= 2 and fits(ticks):
            return ticks
    for step in range(2, 12):
        ticks = [10.0**d for d in decades if d % step == 0 and low <= 10.0**d <= high]
        if len(ticks) < 2 or fits(ticks):
            return ticks or [1.0]
    return [1.0]


def _hr_locator() -> Any:
    """A matplotlib Locator giving :func:`_log_ticks` for the axis' width *at draw time*, so the
    ticks stay apart after ``tight_layout``, a resize or a smaller report figure."""
    from matplotlib.ticker import Locator

    class HazardRatioLocator(Locator):
        def __call__(self) -> list[float]:
            vmin, vmax = self.axis.get_view_interval()
            return self.tick_values(vmin, vmax)

        def tick_values(self, vmin: float, vmax: float) -> list[float]:
            vmin, vmax = sorted((float(vmin), float(vmax)))
            if not (vmin > 0 and np.isfinite(vmax)):
                return [1.0]
            width_pt, fontsize = 400.0, 10.0
            if self.axis is not None:
                axes = self.axis.axes
                width_pt = axes.bbox.width * 72.0 / axes.figure.dpi
                fontsize = self.axis.get_major_ticks(1)[0].label1.get_fontsize()
            return _log_ticks(vmin, vmax, width_pt, fontsize)

    return HazardRatioLocator()


def plot_forest(forest: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Forest plot of HRs (columns ``variable, level, n, events, hr, hr_low, hr_high``) on a
    log axis with a line at HR = 1; returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.45 * len(forest) + 1.4))
    y = np.arange(len(forest))[::-1]
    ok = forest["hr"].notna().to_numpy()
    hr = forest["hr"].to_numpy(dtype=float)
    lo = forest["hr_low"].to_numpy(dtype=float)
    hi = forest["hr_high"].to_numpy(dtype=float)
    ax.errorbar(
        hr[ok],
        y[ok],
        xerr=[hr[ok] - lo[ok], hi[ok] - hr[ok]],
        fmt="s",
        color="black",
        ecolor="black",
        ms=5,
        capsize=2,
    )
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    labels: list[str] = []
    for _, r in forest.iterrows():
        name = (
            str(r["level"]) if r["variable"] == "All patients" else f"{r['variable']}: {r['level']}"
        )
        if r["variable"] == "All patients":
            name = "All patients"
        labels.append(f"{name}  (n={int(r['n'])}, ev={int(r['events'])})")
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    finite = np.concatenate([lo[ok], hi[ok]])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size:
        ax.set_xlim(min(finite.min(), 1.0) / 1.3, max(finite.max(), 1.0) * 1.3)
    trans = ax.get_yaxis_transform()
    for yi, h, lo_, hi_ in zip(y, hr, lo, hi, strict=True):
        txt = "not estimable" if not np.isfinite(h) else f"{h:.2f} ({lo_:.2f}–{hi_:.2f})"
        ax.text(1.02, yi, txt, transform=trans, va="center", fontsize=9)
    from matplotlib.ticker import FuncFormatter, NullLocator

    ax.xaxis.set_major_locator(_hr_locator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("Hazard ratio (95 % CI)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_ylim(-0.8, len(forest) - 0.2)
    return ax
