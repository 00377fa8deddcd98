"""Binning measured and predicted expression onto the prediction grid.

:func:`bin_transcripts` (a transcript table, as CosMx / Xenium export it) and :func:`bin_cells`
(cell- or spot-level AnnData) sum measured counts into every bin of the grid, after the affine
registration; :func:`bin_predictions` puts tile-level predictions on the grid. Every output is
an AnnData made by :func:`binned_anndata` with ``uns["expression_qc"]`` (:data:`UNS_KEY`)
holding the grid and the counts of what was read, binned and left out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import SchemaError
from .grid import PredictionGrid, affine_matrix, apply_affine, tile_centres_um
from .transcripts import TranscriptTable, open_transcripts

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
    transcripts: pd.DataFrame | str | os.PathLike[str] | Any,
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
    points: str | None = None,
) -> ad.AnnData:
    """Sum measured transcripts into the bins of a prediction grid.

    A pandas DataFrame is binned in memory. Every other source — a polars DataFrame or
    LazyFrame, a CSV / gzipped CSV / TSV / Parquet file, a Xenium or CosMx output folder, a
    SpatialData zarr store or object (see :mod:`~tario_clinical.expression_qc.transcripts`) — is
    read by polars' streaming engine in batches and reduced to per-bin, per-gene counts as it is
    read, so a table of 10⁸–10⁹ rows is never held in memory (polars is imported only then). Both
    routes give the same counts.

    Parameters
    ----------
    transcripts
        One row per transcript, coordinates in µm of the measured frame (or in any unit the
        ``affine`` maps to slide µm). Columns are found by name when not given: x in ``x, x_um,
        x_location, x_global_um, global_x``; y likewise; gene in ``gene, feature_name, target,
        gene_name`` (a SpatialData points element's ``feature_key`` first).
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
    points
        Points element of a SpatialData store / object that holds several.

    Returns
    -------
    anndata.AnnData
        All ``n_rows * n_cols`` grid bins × genes, ``X`` CSR float32 counts, ``obs`` columns
        ``bin, row, col``, ``obsm["spatial_um"]`` bin centres, ``uns["expression_qc"]`` with the
        grid and the counts of transcripts read, binned and left out (outside the grid,
        controls, other genes, low qv) — nothing is dropped without a count. Transcripts with
        missing or non-finite coordinates count as outside the grid.

    Raises
    ------
    SchemaError
        Naming the table (file), column and row (from 1) when a column is missing, a coordinate,
        ``qv`` or ``count`` value is not a number or a gene name is missing; or when the source
        cannot be found or read.
    """
    if genes is not None:
        genes = pd.Index([str(g) for g in genes])
        if genes.has_duplicates:
            raise SchemaError(f"genes has duplicates: {genes[genes.duplicated()][:5].tolist()}")
    options = {"x": x, "y": y, "gene": gene, "count": count, "min_qv": min_qv}
    if isinstance(transcripts, pd.DataFrame):
        tally = _tally_frame(transcripts, grid, affine, options)
        reader = "pandas"
    else:
        tally = _tally_streaming(
            open_transcripts(transcripts, points=points), grid, affine, options
        )
        reader = "polars-streaming"
    return _binned_from_tally(tally, grid, genes, exclude_controls, reader)


def _resolve_columns(
    columns: Sequence[str], options: Mapping[str, Any], where: str, gene_hint: str | None, note: str
) -> dict[str, str]:
    """Column names for x, y, gene (and qv / count when asked), errors naming ``where``."""
    gene_candidates = GENE_COLUMNS if gene_hint is None else (gene_hint, *GENE_COLUMNS)
    try:
        cols = {
            "x": pick_column(columns, options["x"], X_COLUMNS, "x"),
            "y": pick_column(columns, options["y"], Y_COLUMNS, "y"),
            "gene": pick_column(columns, options["gene"], gene_candidates, "gene"),
        }
        if options["count"] is not None:
            cols["count"] = pick_column(columns, options["count"], (), "count")
    except SchemaError as err:
        raise SchemaError(f"{where}: {err}" + (f"; {note}" if note else "")) from err
    if options["min_qv"] is not None:
        if "qv" not in columns:
            raise SchemaError(
                f"{where}: min_qv={options['min_qv']} given but the transcript table has no "
                f"'qv' column; columns: {list(columns)}"
            )
        cols["qv"] = "qv"
    return cols


def _numbers(df: pd.DataFrame, col: str, where: str) -> np.ndarray:
    """Column ``col`` as float64; :class:`SchemaError` naming the first row that is no number."""
    try:
        return df[col].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        pass
    v = df[col]
    conv = pd.to_numeric(v, errors="coerce")
    bad = np.flatnonzero(conv.isna().to_numpy() & v.notna().to_numpy())
    if bad.size:
        raise SchemaError(
            f"{where}: column {col!r} row {bad[0] + 1}: value {v.iloc[bad[0]]!r} is not a number "
            f"({bad.size} such rows; rows count from 1)"
        )
    return conv.to_numpy(dtype=np.float64)


def _tally_frame(
    df: pd.DataFrame, grid: PredictionGrid, affine: Any, options: Mapping[str, Any]
) -> dict[str, Any]:
    """One entry per row of an in-memory table: gene, low qv, bin (-1 outside), 1, weight."""
    where = "transcript table"
    cols = _resolve_columns(list(df.columns), options, where, None, "")
    genes = df[cols["gene"]]
    missing = np.flatnonzero(genes.isna().to_numpy())
    if missing.size:
        raise SchemaError(
            f"{where}: column {cols['gene']!r} row {missing[0] + 1}: gene name is missing "
            f"({missing.size} such rows; rows count from 1)"
        )
    xy = np.column_stack([_numbers(df, cols["x"], where), _numbers(df, cols["y"], where)])
    bins, _ = grid.locate(apply_affine(xy, affine))
    n = len(df)
    low = None
    if "qv" in cols:
        low = ~(_numbers(df, cols["qv"], where) >= options["min_qv"])
    w = np.ones(n) if "count" not in cols else _numbers(df, cols["count"], where)
    codes, uniques = pd.factorize(genes.astype(str).to_numpy(), sort=True)
    return {
        "codes": codes,
        "uniques": pd.Index(np.asarray(uniques).astype(str)),
        "low": low,
        "bin": bins,
        "n": np.ones(n, dtype=np.int64),
        "w": w.astype(np.float32),
    }


#: rows per batch handed from polars' streaming engine to the accumulator
BATCH_ROWS = 2_000_000
#: (gene × bin) cells up to which counts accumulate in a dense array (512 MiB of int64); sparse
#: (sorted keys, merged as batches arrive) beyond — e.g. a whole-transcriptome panel on a big grid
DENSE_CELLS = 2**26
#: sparse mode: pending batch cells are merged once they outnumber this (and the merged cells)
SPARSE_MERGE_CELLS = 4_000_000


class GeneBinCounter:
    """Transcript counts (and summed weights) per ``(gene, slot)`` as batches arrive.

    ``slot`` is ``0`` for a transcript of low quality, ``1`` outside the grid, ``2 + bin``
    inside. Genes get dense indices in order of appearance (:attr:`names`). Memory is bounded by
    the number of (gene, slot) cells, never by the number of rows.
    """

    def __init__(self, n_slots: int, weighted: bool):
        self.n_slots = n_slots
        self.weighted = weighted
        self.names: list[str] = []
        self._index: dict[str, int] = {}
        self._lut = np.full(0, -1, dtype=np.int64)  # polars categorical code -> gene index
        self._n = np.zeros(0, dtype=np.int64)
        self._w = np.zeros(0) if weighted else None
        self._sparse: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        self._pending_size = 0

    def gene_indices(self, genes: Any) -> np.ndarray:
        """Dense gene indices of a polars Categorical Series (new genes are appended)."""
        import polars as pl

        u = genes.unique()
        phys = u.to_physical().to_numpy().astype(np.int64)
        if phys.size and phys.max() >= self._lut.size:
            lut = np.full(int(phys.max()) + 1, -1, dtype=np.int64)
            lut[: self._lut.size] = self._lut
            self._lut = lut
        for p, name in zip(phys, u.cast(pl.String).to_list()):
            if self._lut[p] < 0:
                self._lut[p] = self._index.setdefault(name, len(self._index))
                if len(self.names) < len(self._index):
                    self.names.append(name)
        return self._lut[genes.to_physical().to_numpy().astype(np.int64)]

    def add(self, gene: np.ndarray, slot: np.ndarray, w: np.ndarray | None) -> None:
        """Count one batch (gene indices, slots, weights or ``None``)."""
        key = gene * self.n_slots + slot
        if self._sparse is None:
            need = len(self.names) * self.n_slots
            if need <= DENSE_CELLS:
                if need > self._n.size:  # room for twice the genes, within the limit
                    cap = min(max(need, 2 * self._n.size), DENSE_CELLS)
                    cap -= cap % self.n_slots
                    self._n = np.concatenate([self._n, np.zeros(cap - self._n.size, np.int64)])
                    if self._w is not None:
                        self._w = np.concatenate([self._w, np.zeros(cap - self._w.size)])
                if key.size * 16 > self._n.size:
                    self._n += np.bincount(key, minlength=self._n.size)
                    if self._w is not None:
                        self._w += np.bincount(key, weights=w, minlength=self._w.size)
                else:
                    np.add.at(self._n, key, 1)
                    if self._w is not None:
                        np.add.at(self._w, key, w)
                return
            k = np.flatnonzero(self._n)  # too many cells for a dense array: go sparse
            self._sparse = (k, self._n[k], None if self._w is None else self._w[k])
            self._n = np.zeros(0, dtype=np.int64)
            self._w = None
        uk, inv = np.unique(key, return_inverse=True)
        cn = np.bincount(inv, minlength=uk.size).astype(np.int64)
        cw = None if w is None else np.bincount(inv, weights=w, minlength=uk.size)
        self._pending.append((uk, cn, cw))
        self._pending_size += uk.size
        if self._pending_size > max(SPARSE_MERGE_CELLS, self._sparse[0].size):
            self._merge()

    def _merge(self) -> None:
        parts = [p for p in (self._sparse, *self._pending) if p is not None]
        keys = np.concatenate([p[0] for p in parts])
        uk, inv = np.unique(keys, return_inverse=True)
        n = np.zeros(uk.size, dtype=np.int64)
        np.add.at(n, inv, np.concatenate([p[1] for p in parts]))
        w = None
        if self.weighted:
            w = np.bincount(inv, weights=np.concatenate([p[2] for p in parts]), minlength=uk.size)
        self._sparse, self._pending, self._pending_size = (uk, n, w), [], 0

    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``(gene, slot, n, w)`` of every non-empty cell."""
        if self._sparse is None:
            k = np.flatnonzero(self._n)
            n, w = self._n[k], None if self._w is None else self._w[k]
        else:
            self._merge()
            k, n, w = self._sparse
        gene, slot = np.divmod(k, self.n_slots)
        return gene, slot, n, w


def _tally_streaming(
    table: TranscriptTable, grid: PredictionGrid, affine: Any, options: Mapping[str, Any]
) -> dict[str, Any]:
    """The table read by polars' streaming engine in batches of :data:`BATCH_ROWS` rows, each
    counted into a :class:`GeneBinCounter`: memory follows the grid and the genes, not the rows."""
    import polars as pl

    cols = _resolve_columns(table.columns, options, table.label, table.gene_column, table.note)
    dtypes: dict[str, Any] = {cols["x"]: pl.Float64, cols["y"]: pl.Float64}
    for k in ("qv", "count"):
        if k in cols:
            dtypes[cols[k]] = pl.Float64
    dtypes[cols["gene"]] = pl.String
    a = affine_matrix(affine)
    ox, oy = grid.origin_um
    t, (nrow, ncol) = grid.tile_um, grid.shape
    counter = GeneBinCounter(grid.n_bins + 2, "count" in cols)
    try:
        for lf in table.parts(dtypes):
            X, Y = pl.col(cols["x"]), pl.col(cols["y"])
            if a is not None:  # same operations, in the same order, as apply_affine
                X, Y = (
                    X * a[0, 0] + Y * a[0, 1] + a[0, 2],
                    X * a[1, 0] + Y * a[1, 1] + a[1, 2],
                )
            c = ((X - ox) / t).floor()
            r = ((Y - oy) / t).floor()
            inside = (c >= 0) & (c < ncol) & (r >= 0) & (r < nrow) & c.is_finite() & r.is_finite()
            slot = pl.when(inside.fill_null(False)).then((r * ncol + c).cast(pl.Int64) + 2)
            if "qv" in cols:
                low = ~(pl.col(cols["qv"]) >= options["min_qv"]).fill_null(False)
                slot = pl.when(low).then(0).otherwise(slot.otherwise(1))
            else:
                slot = slot.otherwise(1)
            exprs = [pl.col(cols["gene"]).cast(pl.Categorical).alias("gene"), slot.alias("slot")]
            if "count" in cols:
                exprs.append(pl.col(cols["count"]).alias("w"))
            query = lf.select(exprs)
            for batch in query.collect_batches(chunk_size=BATCH_ROWS, maintain_order=False):
                if batch["gene"].null_count():
                    row = table.first_missing(cols["gene"])
                    raise SchemaError(
                        f"{table.label}: column {cols['gene']!r} row {row}: gene name is missing "
                        "(rows count from 1)"
                    )
                w = batch["w"].to_numpy() if "count" in cols else None
                counter.add(counter.gene_indices(batch["gene"]), batch["slot"].to_numpy(), w)
    except pl.exceptions.PolarsError as err:
        _raise_read_error(table, cols, err)
    gene, slot, n, w = counter.cells()
    names = np.asarray(counter.names, dtype=object)
    order = np.argsort(names) if names.size else np.zeros(0, dtype=np.int64)
    rank = np.empty(names.size, dtype=np.int64)
    rank[order] = np.arange(names.size)
    return {
        "codes": rank[gene],
        "uniques": pd.Index(names[order].astype(str)),
        "low": (slot == 0) if "qv" in cols else None,
        "bin": np.where(slot >= 2, slot - 2, -1),
        "n": n,
        "w": (n if w is None else w).astype(np.float32),
    }


def _raise_read_error(table: TranscriptTable, cols: Mapping[str, str], err: Exception) -> None:
    """Turn a polars read / cast failure into a :class:`SchemaError` naming file, column, row."""
    for key in ("x", "y", "qv", "count"):
        if key in cols:
            hit = table.first_bad_number(cols[key])
            if hit is not None:
                raise SchemaError(
                    f"{table.label}: column {cols[key]!r} row {hit[0]}: value {hit[1]!r} is not "
                    "a number (rows count from 1)"
                ) from err
    raise SchemaError(f"{table.label}: cannot read the transcript table: {err}") from err


def _binned_from_tally(
    tally: Mapping[str, Any],
    grid: PredictionGrid,
    genes: pd.Index | None,
    exclude_controls: bool,
    reader: str,
) -> ad.AnnData:
    """Apply the rules (low qv, controls, other genes, outside the grid — in this order) to the
    tally's entries, each standing for ``n`` transcripts, and build the binned AnnData."""
    n, bins = tally["n"], tally["bin"]
    n_input = int(n.sum())
    keep = np.ones(n.size, dtype=bool)
    info: dict[str, Any] = {"kind": "measured", "source": "transcripts", "n_input": n_input}
    if tally["low"] is not None:
        info["n_low_qv"] = int(n[tally["low"]].sum())
        keep &= ~tally["low"]
    codes, uniques = tally["codes"], tally["uniques"]
    is_ctrl_gene = np.zeros(len(uniques), dtype=bool)
    if exclude_controls:
        for p in CONTROL_PREFIXES:
            is_ctrl_gene |= uniques.str.startswith(p)
        info["n_control"] = int(n[is_ctrl_gene[codes] & keep].sum())
        keep &= ~is_ctrl_gene[codes]
    out_genes = uniques[~is_ctrl_gene] if genes is None else genes
    col_idx = out_genes.get_indexer(uniques)[codes]
    info["n_other_gene"] = int(n[(col_idx < 0) & keep].sum())
    keep &= col_idx >= 0
    inside = bins >= 0
    info["n_outside_grid"] = int(n[keep & ~inside].sum())
    keep &= inside
    info["n_binned"] = int(n[keep].sum())
    info["reader"] = reader
    X = sp.csr_matrix(
        (tally["w"][keep], (bins[keep], col_idx[keep])),
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
