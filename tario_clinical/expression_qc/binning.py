"""Binning measured and predicted expression onto the prediction grid.

:func:`bin_transcripts` (a transcript table, as CosMx / Xenium export it) and :func:`bin_cells`
(cell- or spot-level AnnData) sum measured counts into every bin of the grid, after the affine
registration; :func:`bin_predictions` puts tile-level predictions on the grid. Every output is
an AnnData made by :func:`binned_anndata` with ``uns["expression_qc"]`` (:data:`UNS_KEY`)
holding the grid and the counts of what was read, binned and left out.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import SchemaError
from .grid import PredictionGrid, apply_affine, tile_centres_um

if TYPE_CHECKING:  # pragma: no cover
    import anndata as ad

__all__ = [
    "UNS_KEY",
    "CONTROL_PREFIXES",
    "X_COLUMNS",
    "Y_COLUMNS",
    "GENE_COLUMNS",
    "binned_anndata",
    "pick_column",
    "bin_transcripts",
    "bin_cells",
    "bin_predictions",
]

logger = logging.getLogger(__name__)

#: ``uns`` key of binned AnnData (grid, kind ``measured``/``predicted``, counts)
UNS_KEY = "expression_qc"


#: gene-name prefixes of control probes / codewords in CosMx and Xenium exports
CONTROL_PREFIXES: tuple[str, ...] = (
    "NegPrb",
    "NegControl",
    "SystemControl",
    "BLANK_",
    "Blank-",
    "UnassignedCodeword",
    "DeprecatedCodeword",
    "antisense_",
)

X_COLUMNS = ("x", "x_um", "x_location", "x_global_um", "global_x")

Y_COLUMNS = ("y", "y_um", "y_location", "y_global_um", "global_y")

GENE_COLUMNS = ("gene", "feature_name", "target", "gene_name")


def binned_anndata(
    X: sp.csr_matrix | np.ndarray,
    bins: np.ndarray,
    genes: pd.Index,
    grid: PredictionGrid,
    info: dict[str, Any],
) -> ad.AnnData:
    """Binned layout shared by every binning function: ``X`` bins × genes, ``obs`` columns
    ``bin, row, col``, ``obsm["spatial_um"]`` bin centres and ``uns[UNS_KEY]`` the grid plus
    ``info``."""
    import anndata as ad

    row, col = np.divmod(bins, grid.shape[1])
    obs = pd.DataFrame(
        {"bin": bins.astype(np.int64), "row": row.astype(np.int64), "col": col.astype(np.int64)},
        index=pd.Index([f"bin{b}" for b in bins], name="bin_id"),
    )
    out = ad.AnnData(X=X, obs=obs, var=pd.DataFrame(index=pd.Index(genes.astype(str), name="gene")))
    out.obsm["spatial_um"] = grid.centres_um(bins)
    out.uns[UNS_KEY] = {"grid": grid.to_dict(), **info}
    return out


def pick_column(
    columns: Sequence[str], given: str | None, candidates: Sequence[str], what: str
) -> str:
    """The column named ``given`` (checked), else the first of ``candidates`` present;
    :class:`SchemaError` naming ``what`` otherwise."""
    if given is not None:
        if given not in columns:
            raise SchemaError(
                f"transcript table has no {what} column {given!r}; columns: {list(columns)}"
            )
        return given
    for c in candidates:
        if c in columns:
            return c
    raise SchemaError(
        f"transcript table has no {what} column; looked for {list(candidates)}, found "
        f"{list(columns)}; pass {what}= to name it"
    )


def bin_transcripts(
    transcripts: pd.DataFrame,
    grid: PredictionGrid,
    *,
    affine: np.ndarray | Sequence[Sequence[float]] | None = None,
    x: str | None = None,
    y: str | None = None,
    gene: str | None = None,
    count: str | None = None,
    genes: Sequence[str] | None = None,
    exclude_controls: bool = True,
    min_qv: float | None = None,
) -> ad.AnnData:
    """Sum measured transcripts into the bins of a prediction grid.

    Parameters
    ----------
    transcripts
        One row per transcript (pandas or polars), coordinates in µm of the measured frame.
        Columns are found by name when not given: x in ``x, x_um, x_location, x_global_um,
        global_x``; y likewise; gene in ``gene, feature_name, target, gene_name``.
    grid
        The slide's prediction grid.
    affine
        2 × 3 or 3 × 3 matrix mapping measured µm onto slide µm (``None``: same frame).
    x, y, gene, count
        Column names; ``count`` (optional) holds a count per row instead of 1.
    genes
        Genes (and order) of the output; transcripts of other genes are counted in
        ``uns["expression_qc"]["n_other_gene"]``. Default: all genes seen, sorted.
    exclude_controls
        Drop control probes / codewords (:data:`CONTROL_PREFIXES`), counted in
        ``n_control``.
    min_qv
        Drop transcripts with ``qv`` below this (Xenium quality value), counted in
        ``n_low_qv``.

    Returns
    -------
    anndata.AnnData
        All ``n_rows * n_cols`` grid bins × genes, ``X`` CSR float32 counts, ``obs`` columns
        ``bin, row, col``, ``obsm["spatial_um"]`` bin centres, ``uns["expression_qc"]`` with the
        grid and the counts of transcripts read, binned and left out (outside the grid,
        controls, other genes, low qv) — nothing is dropped without a count.
    """
    if hasattr(transcripts, "to_pandas") and not isinstance(transcripts, pd.DataFrame):
        transcripts = transcripts.to_pandas()
    if not isinstance(transcripts, pd.DataFrame):
        raise SchemaError(f"transcripts must be a DataFrame; got {type(transcripts).__name__}")
    cols = list(transcripts.columns)
    xc = pick_column(cols, x, X_COLUMNS, "x")
    yc = pick_column(cols, y, Y_COLUMNS, "y")
    gc = pick_column(cols, gene, GENE_COLUMNS, "gene")
    n_input = int(len(transcripts))
    keep = np.ones(n_input, dtype=bool)
    info: dict[str, Any] = {"kind": "measured", "source": "transcripts", "n_input": n_input}
    gene_values = transcripts[gc].astype(str).to_numpy()
    if min_qv is not None:
        if "qv" not in transcripts.columns:
            raise SchemaError(f"min_qv={min_qv} given but the transcript table has no 'qv' column")
        low = ~(transcripts["qv"].to_numpy(dtype=np.float64) >= min_qv)
        info["n_low_qv"] = int(low.sum())
        keep &= ~low
    codes, uniques = pd.factorize(gene_values, sort=True)
    uniques = pd.Index(uniques.astype(str))
    if exclude_controls:
        is_ctrl_gene = np.zeros(len(uniques), dtype=bool)
        for p in CONTROL_PREFIXES:
            is_ctrl_gene |= uniques.str.startswith(p)
        ctrl = is_ctrl_gene[codes] & keep
        info["n_control"] = int(ctrl.sum())
        keep &= ~is_ctrl_gene[codes]
    else:
        is_ctrl_gene = np.zeros(len(uniques), dtype=bool)
    if genes is None:
        out_genes = uniques[~is_ctrl_gene]
    else:
        out_genes = pd.Index([str(g) for g in genes])
        if out_genes.has_duplicates:
            raise SchemaError(
                f"genes has duplicates: {out_genes[out_genes.duplicated()][:5].tolist()}"
            )
    gene_pos = out_genes.get_indexer(uniques)
    col_idx = gene_pos[codes]
    other = (col_idx < 0) & keep
    info["n_other_gene"] = int(other.sum())
    keep &= col_idx >= 0
    xy = np.column_stack(
        [transcripts[xc].to_numpy(dtype=np.float64), transcripts[yc].to_numpy(dtype=np.float64)]
    )
    bins, inside = grid.locate(apply_affine(xy, affine))
    outside = keep & ~inside
    info["n_outside_grid"] = int(outside.sum())
    keep &= inside
    w = np.ones(n_input) if count is None else transcripts[count].to_numpy(dtype=np.float64)
    info["n_binned"] = int(keep.sum())
    X = sp.csr_matrix(
        (w[keep].astype(np.float32), (bins[keep], col_idx[keep])),
        shape=(grid.n_bins, len(out_genes)),
        dtype=np.float32,
    )
    X.sum_duplicates()
    dropped = n_input - info["n_binned"]
    if dropped:
        logger.info(
            "bin_transcripts: %d of %d transcripts not binned (%s)",
            dropped,
            n_input,
            {
                k: v
                for k, v in info.items()
                if k.startswith("n_") and k not in ("n_input", "n_binned")
            },
        )
    return binned_anndata(X, np.arange(grid.n_bins), out_genes, grid, info)


def bin_cells(
    cells: ad.AnnData,
    grid: PredictionGrid,
    *,
    affine: np.ndarray | Sequence[Sequence[float]] | None = None,
    layer: str | None = None,
    mpp: float | None = None,
    spatial_key: str = "spatial",
    exclude_controls: bool = True,
) -> ad.AnnData:
    """Sum cell- or spot-level measured counts into the bins of a prediction grid.

    Parameters
    ----------
    cells
        AnnData cells/spots × genes; centres found as in :func:`tile_centres_um` (µm of the
        measured frame).
    grid
        The slide's prediction grid.
    affine
        2 × 3 or 3 × 3 matrix mapping measured µm onto slide µm.
    layer
        Layer holding counts (default ``X``).
    mpp, spatial_key
        See :func:`tile_centres_um`.
    exclude_controls
        Drop genes named like control probes (:data:`CONTROL_PREFIXES`).

    Returns
    -------
    anndata.AnnData
        Same layout as :func:`bin_transcripts`; ``uns["expression_qc"]`` counts cells read,
        binned and outside the grid.
    """
    X = cells.X if layer is None else cells.layers[layer]
    xy = apply_affine(tile_centres_um(cells, mpp=mpp, spatial_key=spatial_key), affine)
    bins, inside = grid.locate(xy)
    genes = pd.Index(cells.var_names.astype(str))
    gmask = np.ones(len(genes), dtype=bool)
    if exclude_controls:
        for p in CONTROL_PREFIXES:
            gmask &= ~genes.str.startswith(p)
    n = cells.n_obs
    ind = sp.csr_matrix(
        (np.ones(int(inside.sum())), (bins[inside], np.flatnonzero(inside))),
        shape=(grid.n_bins, n),
    )
    Xc = sp.csr_matrix(X) if not sp.issparse(X) else sp.csr_matrix(X)
    if not gmask.all():
        Xc = Xc[:, np.flatnonzero(gmask)]
    B = (ind @ Xc).astype(np.float32).tocsr()
    info = {
        "kind": "measured",
        "source": "cells",
        "n_input": int(n),
        "n_outside_grid": int((~inside).sum()),
        "n_binned": int(inside.sum()),
        "n_control_genes": int((~gmask).sum()),
    }
    if info["n_outside_grid"]:
        logger.info("bin_cells: %d of %d cells outside the grid", info["n_outside_grid"], n)
    return binned_anndata(B, np.arange(grid.n_bins), genes[gmask], grid, info)


def bin_predictions(
    predicted: ad.AnnData | None = None,
    grid: PredictionGrid | None = None,
    *,
    tile_um: float | None = None,
    mpp: float | None = None,
) -> ad.AnnData:
    """Put tile-level predictions onto a prediction grid (mean of tiles sharing a bin).

    Parameters
    ----------
    predicted
        Tile-level AnnData (tiles × genes) with tile centres (see :func:`tile_centres_um`).
    grid
        Target grid; inferred from the tiles (:meth:`PredictionGrid.from_tiles`) when ``None``.
    tile_um, mpp
        Passed to :meth:`PredictionGrid.from_tiles` / :func:`tile_centres_um`.

    Returns
    -------
    anndata.AnnData
        Occupied bins × genes (dense ``X`` in the input's float type, sorted by bin),
        ``uns["expression_qc"]`` with the grid and counts of tiles read and outside the grid.
    """
    if grid is None:
        grid = PredictionGrid.from_tiles(predicted, tile_um=tile_um, mpp=mpp)
    xy = tile_centres_um(predicted, mpp=mpp)
    bins, inside = grid.locate(xy)
    X = predicted.X
    X = X.toarray() if sp.issparse(X) else np.asarray(X)
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    sel = bins[inside]
    uniq, inv, cnt = np.unique(sel, return_inverse=True, return_counts=True)
    if inside.all() and uniq.size == sel.size and np.all(np.diff(sel) > 0):
        Xb = X  # already one tile per bin in bin order: no copy
    elif uniq.size == sel.size:
        order = np.argsort(sel)
        Xb = X[np.flatnonzero(inside)[order]]
    else:
        avg = sp.csr_matrix(
            (1.0 / cnt[inv], (inv, np.flatnonzero(inside))), shape=(uniq.size, X.shape[0])
        )
        Xb = np.asarray(avg @ X, dtype=X.dtype)
    info = {
        "kind": "predicted",
        "n_input": int(X.shape[0]),
        "n_outside_grid": int((~inside).sum()),
        "n_bins": int(uniq.size),
    }
    if info["n_outside_grid"]:
        logger.info("bin_predictions: %d tiles outside the grid", info["n_outside_grid"])
    return binned_anndata(Xb, uniq, pd.Index(predicted.var_names), grid, info)
