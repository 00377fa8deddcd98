"""Plots of survival results (private): KM curves with a number-at-risk table, forest plots.

Plots take computed results and never fit, save or show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .survival import KaplanMeier

_PALETTE = ("#2E9FDF", "#E7B800", "#FC4E07", "#00AFBB", "#868686", "#6A3D9A")


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
    title: str | None = None,
    time_label: str = "Time",
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
        Log-rank p-value written on the plot.
    title, time_label : str
    colors : sequence of str, optional

    Returns
    -------
    KMDisplay
    """
    import matplotlib.pyplot as plt

    colors = list(colors or _PALETTE)
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
        txt = "log-rank p < 0.0001" if p_value < 1e-4 else f"log-rank p = {p_value:.3g}"
        ax.text(0.03, 0.05, txt, transform=ax.transAxes, fontsize=10)
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
    tax.set_xlabel(time_label)
    tax.set_title("Number at risk", fontsize=9, loc="left", pad=4)
    for sp in ("top", "right", "left"):
        tax.spines[sp].set_visible(False)
    tax.tick_params(axis="y", length=0, pad=14)
    ax.set_xticks(ticks)
    ax.tick_params(labelbottom=False)
    return KMDisplay(ax_=ax, table_ax_=tax, figure_=fig, at_risk_=table)


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
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lim = ax.get_xlim()
    cand = [0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 10.0, 20.0]
    ax.xaxis.set_major_locator(FixedLocator([c for c in cand if lim[0] <= c <= lim[1]] or [1.0]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("Hazard ratio (95 % CI)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.set_ylim(-0.8, len(forest) - 0.2)
    return ax


_ = Any
