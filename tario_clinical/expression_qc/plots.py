"""Figures of the expression QC: correlation curves over the top-k genes and maps of chosen
genes. Plots take computed results and never fit, save or show."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import SchemaError
from ..palette import OKABE_ITO
from .binning import GENE_COLUMNS, UNS_KEY, X_COLUMNS, Y_COLUMNS, pick_column
from .grid import PredictionGrid, apply_affine, tile_centres_um
from .options import BIN_SELECTIONS, BinSelection, check_choice
from .result import ALL
from .sample import SpatialSample, as_spatial_sample

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .result import ExpressionQCResult

__all__ = [
    "plot_spatial_correlation_curve",
    "plot_bulk_correlation_curve",
    "plot_expression_maps",
]


def _new_ax(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(5.5, 4.0))
    return ax


def _plot_curve(curve: pd.DataFrame, column: str, ax: Axes, ylabel: str) -> Axes:
    for name, df in curve.groupby("cancer_type", sort=False):
        style = {"color": "black", "lw": 2.0} if name == ALL else {"lw": 1.2}
        ax.plot(df["k"], df[column], label=str(name), **style)
    if len(curve) and curve["k"].max() > 50:
        ax.set_xscale("log")
    ax.axhline(0.0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("number of genes (top-k by measured Moran's I)")
    ax.set_ylabel(ylabel)
    ax.legend(title="cancer type", fontsize="small")
    return ax


def plot_spatial_correlation_curve(result: ExpressionQCResult, *, ax: Axes | None = None) -> Axes:
    """Mean spatial correlation over the top-k genes ranked by Moran's I, per cancer type.

    Parameters
    ----------
    result : ExpressionQCResult
        Output of :func:`evaluate_expression`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new 5.5 x 4 inch figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _new_ax(ax)
    _plot_curve(result.spatial_curve(), "mean_spatial_r", ax, "mean spatial Pearson r")
    ax.set_title("Predicted vs measured: spatial correlation")
    return ax


def plot_bulk_correlation_curve(result: ExpressionQCResult, *, ax: Axes | None = None) -> Axes:
    """Mean bulk correlation (across samples) over the top-k genes by Moran's I, per cancer type.

    Parameters
    ----------
    result : ExpressionQCResult
        Output of :func:`evaluate_expression`.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; default a new 5.5 x 4 inch figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _new_ax(ax)
    _plot_curve(result.bulk_curve(), "mean_bulk_r", ax, "mean bulk Pearson r (across samples)")
    ax.set_title("Predicted vs measured: bulk correlation")
    return ax


def _grid_image(values: np.ndarray, bins: np.ndarray, grid: PredictionGrid) -> np.ndarray:
    img = np.full(grid.n_bins, np.nan)
    img[bins] = values
    return img.reshape(grid.shape)


def plot_expression_maps(
    samples: Sequence[SpatialSample] | Mapping[str, SpatialSample],
    pairs: Sequence[tuple[str, str]],
    *,
    ax: np.ndarray | None = None,
    bins: BinSelection = "both",
) -> np.ndarray:
    """Measured raw / measured binned / predicted maps for chosen ``(sample_id, gene)`` pairs.

    Parameters
    ----------
    samples
        The samples (a sequence or a mapping by id); items as accepted by
        :func:`~.sample.as_spatial_sample`.
    pairs
        ``(sample_id, gene)`` per panel row.
    ax
        Optional array of Axes of shape ``(len(pairs), 3)``.
    bins
        Bins shown in the binned maps, as in :func:`~.compare.compare_sample`.

    Returns
    -------
    numpy.ndarray
        The ``(len(pairs), 3)`` Axes; ``axes[0, 0].figure`` is the Figure. The raw column shows
        transcripts (points) or cells (coloured by count) in slide µm after the affine; it says
        so when only binned data was given.
    """
    check_choice("bins", bins, BIN_SELECTIONS)
    if isinstance(samples, Mapping):
        by_id = {k: as_spatial_sample(s) for k, s in samples.items()}
    else:
        by_id = {s.sample_id: s for s in map(as_spatial_sample, samples)}
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(len(pairs), 3, figsize=(10.5, 3.3 * len(pairs)), squeeze=False)
    ax = np.asarray(ax).reshape(len(pairs), 3)
    for row, (sid, gene) in enumerate(pairs):
        if sid not in by_id:
            raise SchemaError(f"sample {sid!r} not among the samples given: {list(by_id)[:5]}")
        s = by_id[sid]
        pred, meas = s.binned()
        grid = PredictionGrid.from_dict(meas.uns[UNS_KEY]["grid"])
        if gene not in pred.var_names or gene not in meas.var_names:
            raise SchemaError(f"gene {gene!r} is not both predicted and measured in sample {sid!r}")
        pbins = pred.obs["bin"].to_numpy(dtype=np.int64)
        mX = sp.csr_matrix(meas.X)
        totals = np.asarray(mX.sum(axis=1)).ravel()
        keep = totals[pbins] > 0 if bins == "both" else np.ones(pbins.size, dtype=bool)
        mv = np.asarray(mX[:, meas.var_names.get_loc(gene)].toarray()).ravel()
        pv = np.asarray(pred[:, gene].X).ravel()
        x0, y0 = grid.origin_um
        extent = (x0, x0 + grid.shape[1] * grid.tile_um, y0 + grid.shape[0] * grid.tile_um, y0)
        a_raw, a_bin, a_pred = ax[row]
        raw = s.measured
        if isinstance(raw, pd.DataFrame) or hasattr(raw, "to_pandas"):
            df = raw if isinstance(raw, pd.DataFrame) else raw.to_pandas()
            gc = pick_column(list(df.columns), None, GENE_COLUMNS, "gene")
            xc = pick_column(list(df.columns), None, X_COLUMNS, "x")
            yc = pick_column(list(df.columns), None, Y_COLUMNS, "y")
            sub = df[df[gc].astype(str) == gene]
            xy = apply_affine(sub[[xc, yc]].to_numpy(dtype=np.float64), s.affine)
            a_raw.scatter(xy[:, 0], xy[:, 1], s=1.0, c=OKABE_ITO[1], alpha=0.5, linewidths=0)
            a_raw.set_xlim(extent[0], extent[1])
            a_raw.set_ylim(extent[2], extent[3])
            a_raw.set_aspect("equal")
        elif hasattr(raw, "obsm") and UNS_KEY not in raw.uns:
            xy = apply_affine(tile_centres_um(raw), s.affine)
            cv = np.asarray(
                raw[:, gene].X.toarray() if sp.issparse(raw.X) else raw[:, gene].X
            ).ravel()
            a_raw.scatter(xy[:, 0], xy[:, 1], s=2.0, c=cv, cmap="viridis", linewidths=0)
            a_raw.set_xlim(extent[0], extent[1])
            a_raw.set_ylim(extent[2], extent[3])
            a_raw.set_aspect("equal")
        else:
            what = "binned input only" if hasattr(raw, "uns") else "raw points not drawn (streamed)"
            a_raw.text(0.5, 0.5, what, ha="center", va="center", transform=a_raw.transAxes)
        a_raw.set_title(f"{sid} · {gene}: measured raw", fontsize="small")
        im = a_bin.imshow(
            _grid_image(mv[pbins[keep]], pbins[keep], grid), extent=extent, cmap="viridis"
        )
        a_bin.figure.colorbar(im, ax=a_bin, shrink=0.7)
        a_bin.set_title("measured, binned", fontsize="small")
        im = a_pred.imshow(_grid_image(pv[keep], pbins[keep], grid), extent=extent, cmap="magma")
        a_pred.figure.colorbar(im, ax=a_pred, shrink=0.7)
        a_pred.set_title("predicted", fontsize="small")
        for a in ax[row]:
            a.set_xlabel("x (µm)")
        a_raw.set_ylabel("y (µm)")
    return ax
