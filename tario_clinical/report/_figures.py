"""Figures of the report: drawn by the analysis modules' ``plot_*`` functions, embedded as PNG.

Every figure is drawn inside a matplotlib style context (:func:`figure_style`) whose colour
cycle is the Okabe–Ito palette of :mod:`tario_clinical.palette` (distinguishable with the
common colour-vision deficiencies; Okabe & Ito, 2008), so plot functions that use the default
colour cycle (the decoders' ROC and calibration curves) come out colour-blind safe. Plot
functions that choose their own colours keep them.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..palette import OKABE_ITO

__all__ = [
    "OKABE_ITO",
    "Figures",
    "call_plot",
    "figure_of",
    "figure_style",
    "figure_to_data_uri",
    "new_figure",
]

logger = logging.getLogger("tario_clinical.report")


def figure_style() -> Any:
    """The report's matplotlib style: a context manager with the Okabe–Ito colour cycle
    (:data:`tario_clinical.palette.OKABE_ITO`, no yellow: too light on white), viridis and
    the report's font sizes."""
    import matplotlib as mpl
    from cycler import cycler

    return mpl.rc_context(
        {
            "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
            "image.cmap": "viridis",
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.labelsize": 9,
            "legend.fontsize": 8,
        }
    )


def figure_to_data_uri(fig: Any, *, dpi: int = 96) -> str:
    """Encode a matplotlib Figure as a ``data:image/png;base64`` URI and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # pragma: no cover - a Figure not managed by pyplot
        pass
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure not managed by pyplot (inches at 100 dpi)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def figure_of(obj: Any) -> Any:
    """The matplotlib Figure behind a Figure, Axes or display object (``figure_``)."""
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if isinstance(obj, Figure):
        return obj
    if isinstance(obj, Axes):
        return obj.figure
    for name in ("figure_", "figure", "fig"):
        f = getattr(obj, name, None)
        if isinstance(f, Figure):
            return f
    ax = getattr(obj, "ax_", None)
    if isinstance(ax, Axes):
        return ax.figure
    raise TypeError(f"not a matplotlib figure: {type(obj).__name__}")


class Figures:
    """Collects figures as PNG data URIs (closing each after encoding), with captions."""

    def __init__(self) -> None:
        self.uris: dict[str, str] = {}
        self.captions: dict[str, str] = {}

    def add(self, key: str, obj: Any, caption: str) -> None:
        fig = figure_of(obj)
        self.uris[key] = figure_to_data_uri(fig)
        self.captions[key] = caption

    def attempt(self, key: str, caption: str, draw: Callable[[], Any], notes: list[str]) -> None:
        """Draw with ``draw()`` (returning a figure-like object) in the report's colour-blind
        safe style; a failure becomes a note."""
        try:
            with figure_style():
                obj = draw()
                self.add(key, obj, caption)
        except Exception as err:  # plotting code of other modules: report, do not crash
            logger.warning("report: figure %s failed: %s", key, err)
            notes.append(f"figure '{caption}' could not be drawn: {type(err).__name__}: {err}")


def call_plot(obj: Any, names: Sequence[str], width: float, height: float) -> Any:
    """Call the first ``obj.<name>(ax=...)`` that exists on a fresh Figure."""
    for name in names:
        fn = getattr(obj, name, None)
        if callable(fn):
            fig = new_figure(width, height)
            ax = fig.add_subplot(1, 1, 1)
            res = fn(ax=ax)
            try:
                fig2 = figure_of(res)
            except TypeError:
                fig2 = fig
            if fig2 is not fig:
                return fig2
            fig.tight_layout()
            return fig
    raise AttributeError(f"{type(obj).__name__} has none of {list(names)}")
