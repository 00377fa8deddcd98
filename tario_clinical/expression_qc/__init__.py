"""Check predicted expression against measured spatial transcriptomics (TARIO-2 accuracy metrics).

Where some patients also have measured spatial transcriptomics (SpT), an encoder's predicted
expression maps are compared with the measured ones on the slide's prediction grid:

1. **Binning** — measured transcripts (a table of ``x, y`` in µm and ``gene``, as CosMx / Xenium
   export them, :func:`bin_transcripts`) or cell / spot-level AnnData (:func:`bin_cells`) are
   summed into the bins of the prediction grid (:class:`PredictionGrid`, one bin per tile). An
   affine registration (2 × 3 or 3 × 3 matrix) maps the measured frame onto the slide frame (µm).
2. **Metrics**, vectorised over genes: :func:`grid_adjacency`, :func:`morans_i`,
   :func:`spatial_correlation` (per gene Pearson r across bins), and, over samples,
   :func:`evaluate_expression` which ranks genes by the mean Moran's I of the *measured* data,
   builds the curve of mean spatial correlation over the top-k ranked genes (k = 1 … all, per
   cancer type) and the bulk correlation (one pseudo-bulk value per gene and sample, correlated
   across samples).
3. **Figures**: :func:`plot_spatial_correlation_curve`, :func:`plot_bulk_correlation_curve`,
   :func:`plot_expression_maps`; a tidy table (:meth:`ExpressionQCResult.table`) and
   :func:`report_section` for the HTML report.

Coordinates
-----------
Everything is in the slide frame, in µm, with ``x`` to the right and ``y`` down. Bin ``(row,
col)`` covers ``origin + [col, col + 1) * tile_um`` in x and ``origin + [row, row + 1) *
tile_um`` in y; its flat index is ``row * n_cols + col``.

Tile-level predictions are AnnData with one row per tile and genes as ``var_names``; tile centres
are looked up in this order (:func:`tile_centres_um`): ``obsm["spatial_um"]`` (n × 2, µm);
``obs[["x_um", "y_um"]]``; ``obsm["spatial"]`` with 4 columns ``(x_px, y_px, x_um, y_um)``;
``obsm["spatial"]`` with 2 columns — level-0 pixels multiplied by ``mpp`` when ``mpp`` is given or
recorded in ``uns["tario_clinical"]["mpp"]`` (or ``["tiling"]["mpp"]``), otherwise taken as µm.
A plain ``(n, 2)`` array is taken as µm.

Moran's I
---------
For one gene with values ``x`` over ``n`` bins, ``z = x - mean(x)`` and spatial weights ``W``,

``I = n / S0 * sum_ij W_ij z_i z_j / sum_i z_i**2``, with ``S0 = sum_ij W_ij``.

By default ``W`` is the binary adjacency *row-standardised* (each row divided by its number of
neighbours, so ``S0`` is the number of bins that have at least one neighbour; bins without a
neighbour keep a zero row and add nothing to the numerator). Under spatial randomness
``E[I] = -1 / (n - 1)``. A gene that is constant over the bins has ``I`` = NaN (0 / 0); such genes
are left out of the ranking (reported as ``n_genes_unranked``) rather than ranked arbitrarily.
The same convention holds for correlations: a constant map has r = NaN.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

from ..errors import AnalysisError, SchemaError

if TYPE_CHECKING:  # pragma: no cover
    import anndata as ad
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "PredictionGrid",
    "SpatialSample",
    "SampleComparison",
    "ExpressionQCResult",
    "tile_centres_um",
    "apply_affine",
    "bin_transcripts",
    "bin_cells",
    "bin_predictions",
    "grid_adjacency",
    "morans_i",
    "spatial_correlation",
    "compare_sample",
    "evaluate_expression",
    "plot_spatial_correlation_curve",
    "plot_bulk_correlation_curve",
    "plot_expression_maps",
    "report_section",
]

logger = logging.getLogger(__name__)

UNS_KEY = "expression_qc"
AdjacencyKind = Literal["rook", "queen"]
BinSelection = Literal["both", "predicted"]
BulkTransform = Literal["log1p_cpm", "mean"]
_KINDS = ("rook", "queen")
_BIN_SELECTIONS = ("both", "predicted")
_BULK = ("log1p_cpm", "mean")
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
_X_COLUMNS = ("x", "x_um", "x_location", "x_global_um", "global_x")
_Y_COLUMNS = ("y", "y_um", "y_location", "y_global_um", "global_y")
_GENE_COLUMNS = ("gene", "feature_name", "target", "gene_name")


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise SchemaError(
            f"{name}={value!r} is not allowed; choose one of {', '.join(map(repr, allowed))}"
        )


# ----------------------------------------------------------------------------------------------
# grid and coordinate frames
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PredictionGrid:
    """The lattice of a slide's prediction tiles (one bin per tile), in slide µm.

    Parameters
    ----------
    origin_um
        ``(x, y)`` of the top-left corner of bin ``(0, 0)``.
    tile_um
        Bin edge length (the tile stride) in µm.
    shape
        ``(n_rows, n_cols)``; rows run along ``y``, columns along ``x``.
    """

    origin_um: tuple[float, float]
    tile_um: float
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        if not (np.isfinite(self.tile_um) and self.tile_um > 0):
            raise SchemaError(f"tile_um must be a positive finite number; got {self.tile_um!r}")
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise SchemaError(f"grid shape must be (n_rows, n_cols) >= 1; got {self.shape!r}")

    @property
    def n_bins(self) -> int:
        """Number of bins of the full grid."""
        return int(self.shape[0] * self.shape[1])

    def locate(self, xy_um: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat bin index of points and a mask of those inside the grid.

        Parameters
        ----------
        xy_um
            ``(n, 2)`` points in slide µm.

        Returns
        -------
        bins, inside
            ``bins`` (int64, ``-1`` outside) and the boolean ``inside`` mask.
        """
        xy = np.asarray(xy_um, dtype=np.float64)
        col = np.floor((xy[:, 0] - self.origin_um[0]) / self.tile_um)
        row = np.floor((xy[:, 1] - self.origin_um[1]) / self.tile_um)
        inside = (col >= 0) & (col < self.shape[1]) & (row >= 0) & (row < self.shape[0])
        inside &= np.isfinite(col) & np.isfinite(row)
        bins = np.full(xy.shape[0], -1, dtype=np.int64)
        bins[inside] = row[inside].astype(np.int64) * self.shape[1] + col[inside].astype(np.int64)
        return bins, inside

    def centres_um(self, bins: np.ndarray | None = None) -> np.ndarray:
        """``(n, 2)`` centres in µm of the given flat bins (all bins when ``None``)."""
        b = np.arange(self.n_bins) if bins is None else np.asarray(bins, dtype=np.int64)
        row, col = np.divmod(b, self.shape[1])
        return np.column_stack(
            [
                self.origin_um[0] + (col + 0.5) * self.tile_um,
                self.origin_um[1] + (row + 0.5) * self.tile_um,
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (stored in ``uns["expression_qc"]["grid"]``)."""
        return {
            "origin_um": [float(self.origin_um[0]), float(self.origin_um[1])],
            "tile_um": float(self.tile_um),
            "shape": [int(self.shape[0]), int(self.shape[1])],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PredictionGrid:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                origin_um=(float(d["origin_um"][0]), float(d["origin_um"][1])),
                tile_um=float(d["tile_um"]),
                shape=(int(d["shape"][0]), int(d["shape"][1])),
            )
        except (KeyError, TypeError, IndexError) as err:
            raise SchemaError(
                f"grid description {dict(d)!r} needs keys origin_um [x, y], tile_um, shape [rows, cols]"
            ) from err

    @classmethod
    def from_tiles(
        cls,
        tiles: ad.AnnData | np.ndarray,
        *,
        tile_um: float | None = None,
        mpp: float | None = None,
    ) -> PredictionGrid:
        """Infer the grid from tile centres lying on a regular lattice.

        Parameters
        ----------
        tiles
            Tile-level AnnData or an ``(n, 2)`` array of centres in µm (see
            :func:`tile_centres_um`).
        tile_um
            Tile stride in µm; inferred as the smallest spacing between distinct centre
            coordinates when ``None``.
        mpp
            µm per level-0 pixel, for AnnData whose ``obsm["spatial"]`` holds pixels.

        Raises
        ------
        SchemaError
            If the centres are not on a lattice of the given stride or the stride cannot be
            inferred.
        """
        xy = tile_centres_um(tiles, mpp=mpp)
        if xy.shape[0] == 0:
            raise SchemaError("no tile centres given; a prediction grid needs at least one tile")
        if tile_um is None:
            spacings = []
            for k in range(2):
                u = np.unique(np.round(xy[:, k], 6))
                if u.size > 1:
                    spacings.append(np.diff(u).min())
            if not spacings:
                raise SchemaError("cannot infer tile_um from a single tile; pass tile_um=")
            tile_um = float(min(spacings))
        origin = xy.min(axis=0) - tile_um / 2.0
        pos = (xy - origin) / tile_um - 0.5
        rc = np.rint(pos)
        off = np.abs(pos - rc).max()
        if off > 0.05:
            bad = int(np.argmax(np.abs(pos - rc).max(axis=1)))
            raise SchemaError(
                f"tile centres are not on a lattice of stride {tile_um:g} µm: tile {bad} at "
                f"{xy[bad].tolist()} is {off:.2f} tiles off; pass the right tile_um"
            )
        shape = (int(rc[:, 1].max()) + 1, int(rc[:, 0].max()) + 1)
        return cls(origin_um=(float(origin[0]), float(origin[1])), tile_um=tile_um, shape=shape)


def _uns_mpp(adata: ad.AnnData) -> float | None:
    prov = adata.uns.get("tario_clinical") if hasattr(adata, "uns") else None
    if isinstance(prov, Mapping):
        for d in (prov, prov.get("tiling")):
            if isinstance(d, Mapping) and d.get("mpp") is not None:
                return float(d["mpp"])
    return None


def tile_centres_um(
    data: ad.AnnData | np.ndarray,
    *,
    mpp: float | None = None,
    spatial_key: str = "spatial",
) -> np.ndarray:
    """Centres in µm of tiles (or cells) of an AnnData or an ``(n, 2)`` µm array.

    Lookup order for AnnData: ``obsm["spatial_um"]``; ``obs[["x_um", "y_um"]]``;
    ``obsm[spatial_key]`` with 4 columns ``(x_px, y_px, x_um, y_um)``; ``obsm[spatial_key]``
    with 2 columns in level-0 pixels times ``mpp`` (argument, else
    ``uns["tario_clinical"]["mpp"]`` or ``["tiling"]["mpp"]``), or in µm when no ``mpp`` is known.

    Parameters
    ----------
    data : AnnData or numpy.ndarray
        Tiles (or cells) AnnData, or an ``(n, 2)`` array already in µm (returned as float64).
    mpp : float, optional
        µm per level-0 pixel, applied to 2-column pixel coordinates in ``obsm[spatial_key]``;
        default from ``uns`` (see above).
    spatial_key : str, default "spatial"
        ``obsm`` key of the coordinates.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` float64 centres ``(x, y)`` in µm.

    Raises
    ------
    SchemaError
        If no coordinates are found or they have the wrong shape.
    """
    if isinstance(data, np.ndarray) or not hasattr(data, "obsm"):
        xy = np.asarray(data, dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise SchemaError(f"coordinates must be an (n, 2) array in µm; got shape {xy.shape}")
        return xy
    if "spatial_um" in data.obsm:
        xy = np.asarray(data.obsm["spatial_um"], dtype=np.float64)
    elif {"x_um", "y_um"} <= set(data.obs.columns):
        xy = data.obs[["x_um", "y_um"]].to_numpy(dtype=np.float64)
    elif spatial_key in data.obsm:
        s = np.asarray(data.obsm[spatial_key], dtype=np.float64)
        if s.ndim == 2 and s.shape[1] == 4:
            xy = s[:, 2:4]
        elif s.ndim == 2 and s.shape[1] == 2:
            scale = mpp if mpp is not None else _uns_mpp(data)
            xy = s * scale if scale is not None else s
        else:
            raise SchemaError(
                f'obsm["{spatial_key}"] must have 2 (x, y) or 4 (x_px, y_px, x_um, y_um) '
                f"columns; got shape {s.shape}"
            )
    else:
        raise SchemaError(
            f'no coordinates: expected obsm["spatial_um"], obs columns x_um/y_um or '
            f'obsm["{spatial_key}"]; found obsm keys {list(data.obsm.keys())}'
        )
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] != data.n_obs:
        raise SchemaError(f"coordinates must be (n_obs, 2) = ({data.n_obs}, 2); got {xy.shape}")
    return xy


def _check_affine(affine: np.ndarray | Sequence[Sequence[float]] | None) -> np.ndarray | None:
    if affine is None:
        return None
    a = np.asarray(affine, dtype=np.float64)
    if a.shape == (3, 3):
        if not np.allclose(a[2], [0.0, 0.0, 1.0]):
            raise SchemaError(f"a 3x3 affine must have last row [0, 0, 1]; got {a[2].tolist()}")
        a = a[:2]
    if a.shape != (2, 3):
        raise SchemaError(f"affine must be a 2x3 or 3x3 matrix; got shape {a.shape}")
    if not np.isfinite(a).all() or abs(np.linalg.det(a[:, :2])) < 1e-12:
        raise SchemaError(f"affine must be finite and invertible; got {a.tolist()}")
    return a


def apply_affine(
    xy: np.ndarray, affine: np.ndarray | Sequence[Sequence[float]] | None
) -> np.ndarray:
    """Map ``(n, 2)`` points with a 2 × 3 or 3 × 3 affine: ``xy' = A[:2, :2] @ xy + A[:2, 2]``.

    ``affine`` maps the measured (SpT) frame onto the slide frame, both in µm; ``None`` is the
    identity.

    Parameters
    ----------
    xy : array-like
        ``(n, 2)`` points ``(x, y)`` in µm.
    affine : array-like or None
        2 × 3 or 3 × 3 matrix (a 3 × 3 one must have last row ``[0, 0, 1]``), finite and
        invertible; ``None`` for the identity.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` float64 mapped points.

    Raises
    ------
    SchemaError
        If ``affine`` has the wrong shape or is not finite and invertible.
    """
    a = _check_affine(affine)
    xy = np.asarray(xy, dtype=np.float64)
    if a is None:
        return xy
    return xy @ a[:, :2].T + a[:, 2]


# ----------------------------------------------------------------------------------------------
# binning
# ----------------------------------------------------------------------------------------------


def _binned_anndata(
    X: sp.csr_matrix | np.ndarray,
    bins: np.ndarray,
    genes: pd.Index,
    grid: PredictionGrid,
    info: dict[str, Any],
) -> ad.AnnData:
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


def _pick_column(
    columns: Sequence[str], given: str | None, candidates: Sequence[str], what: str
) -> str:
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
    xc = _pick_column(cols, x, _X_COLUMNS, "x")
    yc = _pick_column(cols, y, _Y_COLUMNS, "y")
    gc = _pick_column(cols, gene, _GENE_COLUMNS, "gene")
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
    return _binned_anndata(X, np.arange(grid.n_bins), out_genes, grid, info)


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
    return _binned_anndata(B, np.arange(grid.n_bins), genes[gmask], grid, info)


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
    return _binned_anndata(Xb, uniq, pd.Index(predicted.var_names), grid, info)


# ----------------------------------------------------------------------------------------------
# spatial weights and kernels
# ----------------------------------------------------------------------------------------------

_OFFSETS = {"rook": ((0, 1), (1, 0)), "queen": ((0, 1), (1, 0), (1, 1), (1, -1))}


def _lattice_edges(
    rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Undirected edges ``(i, j)``, ``i`` < ``j`` in position order, between lattice points."""
    nr, nc = shape
    n = rows.size
    lookup = np.full(nr * nc, -1, dtype=np.int64)
    lookup[rows * nc + cols] = np.arange(n)
    src, dst = [], []
    for dr, dc in _OFFSETS[kind]:
        r2, c2 = rows + dr, cols + dc
        ok = (r2 >= 0) & (r2 < nr) & (c2 >= 0) & (c2 < nc)
        j = np.full(n, -1, dtype=np.int64)
        j[ok] = lookup[r2[ok] * nc + c2[ok]]
        m = j >= 0
        src.append(np.flatnonzero(m))
        dst.append(j[m])
    return np.concatenate(src), np.concatenate(dst)


def grid_adjacency(shape: tuple[int, int], kind: AdjacencyKind = "rook") -> sp.csr_matrix:
    """Binary, symmetric adjacency of a full ``n_rows × n_cols`` lattice (row-major bins).

    Parameters
    ----------
    shape
        ``(n_rows, n_cols)``.
    kind
        ``"rook"`` (4 edge neighbours) or ``"queen"`` (8, adding the diagonals).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n, n)`` float64 with ones on neighbour pairs, zero diagonal.

    Examples
    --------
    >>> grid_adjacency((2, 2)).toarray().astype(int).tolist()
    [[0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 0, 1], [0, 1, 1, 0]]
    """
    _check_choice("kind", kind, _KINDS)
    if len(shape) != 2 or int(shape[0]) < 1 or int(shape[1]) < 1:
        raise SchemaError(f"shape must be (n_rows, n_cols) >= 1; got {shape!r}")
    nr, nc = int(shape[0]), int(shape[1])
    rows, cols = np.divmod(np.arange(nr * nc), nc)
    i, j = _lattice_edges(rows, cols, (nr, nc), kind)
    n = nr * nc
    a = sp.coo_matrix(
        (np.ones(2 * i.size), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n)
    )
    return a.tocsr()


@dataclass(frozen=True)
class _Weights:
    """Spatial weights prepared for the kernels: half-edge slot table + Moran constants."""

    n: int
    nb: np.ndarray  # (n, K) int64 neighbour j > i (-1 = none)
    wt: np.ndarray  # (n, K) float64 weight w_ij + w_ji of that edge
    diag: np.ndarray | None  # (n,) w_ii or None
    c: np.ndarray  # (n,) row sums + column sums of W
    s0: float
    halo: int


def _prepare_weights(adjacency: sp.spmatrix, n: int, row_standardise: bool) -> _Weights:
    if not sp.issparse(adjacency):
        adjacency = sp.csr_matrix(np.asarray(adjacency, dtype=np.float64))
    if adjacency.shape != (n, n):
        raise SchemaError(f"adjacency must be ({n}, {n}) to match {n} bins; got {adjacency.shape}")
    W = sp.csr_matrix(adjacency, dtype=np.float64)
    W.sum_duplicates()
    W.eliminate_zeros()
    if W.nnz and (W.data < 0).any():
        raise SchemaError("adjacency weights must be non-negative")
    if row_standardise:
        d = np.asarray(W.sum(axis=1)).ravel()
        inv = np.divide(1.0, d, out=np.zeros_like(d), where=d > 0)
        W = sp.csr_matrix(sp.diags(inv) @ W)
    s0 = float(W.sum())
    if s0 <= 0:
        raise AnalysisError("the spatial weights have no edges: no bin has a neighbour")
    c = np.asarray(W.sum(axis=1)).ravel() + np.asarray(W.sum(axis=0)).ravel()
    diag = W.diagonal()
    diag = diag if np.any(diag) else None
    S = sp.triu(W + W.T, k=1).tocsr()
    S.sum_duplicates()
    deg = np.diff(S.indptr)
    k = int(deg.max()) if deg.size else 0
    nb = np.full((n, max(k, 1)), -1, dtype=np.int64)
    wt = np.zeros((n, max(k, 1)), dtype=np.float64)
    if S.nnz:
        rows = np.repeat(np.arange(n), deg)
        slot = np.arange(S.nnz) - np.repeat(S.indptr[:-1], deg)
        nb[rows, slot] = S.indices
        wt[rows, slot] = S.data
        halo = int((S.indices - rows).max())
    else:
        halo = 0
    return _Weights(n=n, nb=nb, wt=wt, diag=diag, c=c, s0=s0, halo=halo)


def _as_weights(adjacency: sp.spmatrix | _Weights, n: int, row_standardise: bool) -> _Weights:
    if isinstance(adjacency, _Weights):
        if adjacency.n != n:
            raise SchemaError(f"weights are for {adjacency.n} bins, data has {n}")
        return adjacency
    return _prepare_weights(adjacency, n, row_standardise)


def _chunks(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def _map(fn, items: list, n_jobs: int) -> list:  # noqa: ANN001 - internal
    if n_jobs <= 1 or len(items) <= 1:
        return [fn(it) for it in items]
    with ThreadPoolExecutor(max_workers=n_jobs) as ex:
        return list(ex.map(fn, items))


def _row_block(n_cols: int) -> int:
    # ~1-2 M float64 elements per block: stays in cache, bounds temporaries
    return int(max(16, min(4096, 2_000_000 // max(n_cols, 1))))


def _grouped_map(fn, spans: list[tuple[int, int]], n_jobs: int) -> list:  # noqa: ANN001
    """Run ``fn(spans_of_one_worker) -> list`` on contiguous groups of spans; results in span order.

    Each worker gets its own contiguous share so that it can reuse its buffers; the reduction
    order (by span) does not depend on ``n_jobs``.
    """
    if n_jobs <= 1 or len(spans) <= 1:
        return fn(spans)
    k = min(n_jobs, len(spans))
    bounds = np.linspace(0, len(spans), k + 1).astype(int)
    groups = [spans[bounds[i] : bounds[i + 1]] for i in range(k)]
    with ThreadPoolExecutor(max_workers=k) as ex:
        parts = list(ex.map(fn, groups))
    return [x for part in parts for x in part]


def _dense_moments(
    P: np.ndarray,
    shift: np.ndarray,
    r0: int,
    r1: int,
    buf: np.ndarray,
    rows_flat: np.ndarray | None = None,
    bounds: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-column ``sum (P - shift)`` and ``sum (P - shift)**2`` over rows ``r0:r1`` (float64).

    Also returns ``P`` read at the flat positions ``rows_flat`` (relative to row ``r0``) when
    given, else ``None``. The rows are shifted into a small float64 buffer a few rows at a time, so the buffer stays
    in cache and the float32 matrix is never copied whole; the look-ups of each few rows are
    done while they are in cache (``bounds[k]`` = first look-up of relative row ``k``).
    """
    g = P.shape[1]
    bs = buf.shape[0]
    s1 = np.zeros(g)
    s2 = np.zeros(g)
    pv = None if rows_flat is None else np.empty(rows_flat.size, dtype=P.dtype)
    flat_p = P.reshape(-1) if pv is not None and P.flags.c_contiguous else None
    for a in range(r0, r1, bs):
        b = min(r1, a + bs)
        C = buf[: b - a]
        np.subtract(P[a:b], shift, out=C)
        s1 += C.sum(axis=0)
        s2 += np.einsum("ij,ij->j", C, C)
        if pv is not None:
            i0, i1 = bounds[a - r0], bounds[b - r0]
            if flat_p is not None:
                np.take(flat_p, rows_flat[i0:i1] + r0 * g, out=pv[i0:i1], mode="clip")
            else:
                rr, cc = np.divmod(rows_flat[i0:i1], g)
                pv[i0:i1] = P[rr + r0, cc]
    return s1, s2, pv


def _neighbour_slots(w: _Weights) -> list[tuple[int | np.ndarray, np.ndarray]]:
    """Neighbour look-ups of the half-edge table as ``(row offset, weight per row)`` pairs.

    On a lattice most edges share a few row offsets (``+1``, ``+n_cols`` …); those become one
    slot each with a scalar offset (no per-entry index arithmetic). Otherwise the table's own
    slots are used, with an offset per row. Rows without that neighbour have weight 0.
    """
    n = w.n
    has = w.nb >= 0
    own = np.arange(n, dtype=np.int64)[:, None]
    offs = np.where(has, w.nb - own, 0)
    uniq = np.unique(offs[has])
    if 0 < uniq.size <= 2 * w.nb.shape[1]:
        out: list[tuple[int | np.ndarray, np.ndarray]] = []
        for o in uniq:
            wk = np.where(has & (offs == o), w.wt, 0.0).sum(axis=1)
            out.append((int(o), wk))
        return out
    return [(offs[:, k], np.where(has[:, k], w.wt[:, k], 0.0)) for k in range(w.nb.shape[1])]


def _column_sums(
    vals: np.ndarray, indices: np.ndarray, indptr: np.ndarray, g: int, x: np.ndarray
) -> np.ndarray:
    """``sum_i x[i] * V[i, j]`` per column of the CSR matrix ``V = (vals, indices, indptr)``.

    One sparse transposed mat-vec (compiled; per-row weights ``x`` at no extra pass). ``x`` may
    be ``(rows, q)`` for ``q`` weightings in the same pass.
    """
    ip = indptr - indptr[0] if indptr[0] else indptr
    # the CSR arrays read as CSC are the transpose: no conversion
    Vt = sp.csc_matrix((vals, indices, ip), shape=(g, ip.size - 1), copy=False)
    return np.asarray(Vt @ x)


def _fused_parts(
    P: np.ndarray | None,
    M: sp.csr_matrix,
    w: _Weights | None,
    n_jobs: int,
) -> dict[str, np.ndarray]:
    """All per-gene sums of a sample, reading the measured data only at its non-zeros.

    ``M`` (sparse, CSR with sorted indices) gives ``m1 = sum x``, ``m2 = sum x^2`` and, with
    weights ``w``, the Moran parts ``mcross = sum_e w_e x_i x_j`` and ``mcx = c · x``. ``P``
    (dense, same rows) gives ``s1, s2`` (sums of ``P`` shifted by its first row, accumulated in
    float64 from a small cache-resident buffer: the float32 matrix is never copied whole) and
    ``cross = sum (P - shift) x``, which reads ``P`` at the non-zeros of ``M`` only. Per-gene
    reductions are sparse transposed mat-vecs with per-row weights (no per-entry weight arrays).
    Blocks of bins are fixed and their sums are added in block order, so the result does not
    depend on ``n_jobs``.
    """
    n, g = M.shape
    indptr, indices, mdata = M.indptr, M.indices, M.data
    cnt = np.diff(indptr)
    halo = w.halo if w is not None else 0
    size = max(_row_block(g), 4 * halo)
    spans = _chunks(n, size)
    # shift by the first row: keeps the raw moments well conditioned and makes a constant column
    # exactly zero after shifting (so its sum of squares is exactly 0)
    shift = None if P is None else np.asarray(P[0], dtype=np.float64)
    if w is not None:
        slots = _neighbour_slots(w)
        ddt = mdata.dtype if mdata.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        rw = np.column_stack([np.ones(n), w.c])
    else:
        rw = np.ones((n, 1))
    # per-worker buffers sized for the largest block (no large allocations per block)
    most = int(max(indptr[r1] - indptr[r0] for r0, r1 in spans))

    def work(group: list[tuple[int, int]]) -> list[dict[str, np.ndarray]]:
        out = []
        D = np.zeros((size + halo) * g, dtype=ddt) if w is not None else None
        buf = np.empty((32, g)) if P is not None else None
        f64 = np.empty(most)
        idx = np.empty(most, dtype=np.int64) if w is not None else None
        look = np.empty(most, dtype=ddt) if w is not None else None
        for r0, r1 in group:
            a, e = indptr[r0], indptr[r1]
            m = int(e - a)
            ci_b, ip = indices[a:e], indptr[r0 : r1 + 1]
            d = mdata[a:e].astype(np.float64, copy=False)
            res = {}
            # m1 and the Moran row weights (c, diagonal) in one pass; then sum x^2
            both = _column_sums(d, ci_b, ip, g, rw[r0:r1])
            res["m1"] = both[:, 0]
            sq = np.multiply(d, d, out=f64[:m])
            res["m2"] = _column_sums(sq, ci_b, ip, g, np.ones(r1 - r0))
            if w is not None:
                res["mcx"] = both[:, 1]
                if w.diag is not None:
                    res["mcross"] = _column_sums(sq, ci_b, ip, g, w.diag[r0:r1])
            if P is None and w is None:
                out.append(res)
                continue
            flat = np.repeat(np.arange(r1 - r0, dtype=np.int64) * g, cnt[r0:r1])
            flat += ci_b
            if P is not None:
                res["s1"], res["s2"], pv = _dense_moments(P, shift, r0, r1, buf, flat, ip - a)
                res["cross"] = _column_sums(
                    np.multiply(d, pv, out=f64[:m]), ci_b, ip, g, np.ones(r1 - r0)
                )
            if w is not None:
                h1 = min(n, r1 + halo)
                b = indptr[h1]
                hflat = np.repeat(np.arange(r1 - r0, h1 - r0, dtype=np.int64) * g, cnt[r1:h1])
                hflat += indices[e:b]
                D[flat] = mdata[a:e]
                D[hflat] = mdata[e:b]
                acc = res.get("mcross", np.zeros(g))
                for off, wk in slots:
                    ix = idx[:m]
                    if np.isscalar(off):
                        np.add(flat, off * g, out=ix)
                    else:
                        np.add(flat, np.repeat(off[r0:r1], cnt[r0:r1]) * g, out=ix)
                    np.take(D, ix, out=look[:m], mode="clip")  # valid indices; unbuffered
                    prod = np.multiply(d, look[:m], out=f64[:m])
                    acc = acc + _column_sums(prod, ci_b, ip, g, wk[r0:r1])
                res["mcross"] = acc
                D[: (h1 - r0) * g] = 0
            out.append(res)
        return out

    parts = _grouped_map(work, spans, n_jobs)
    total = {}
    for key in parts[0]:
        acc = np.zeros(g)
        for p in parts:
            acc += p[key]
        total[key] = acc
    if shift is not None:
        # sum x (P - shift) = sum x P - shift * sum x
        total["cross"] = total["cross"] - shift * total["m1"]
        total["shift"] = shift
    return total


def _moran_from_raw(
    cross: np.ndarray, cx: np.ndarray, s1: np.ndarray, s2: np.ndarray, n: int, w: _Weights
) -> np.ndarray:
    m = s1 / n
    num = cross - m * cx + m * m * w.s0
    den = s2 - n * m * m
    return _finish_moran(num, den, n, w, s2)


def _finish_moran(
    num: np.ndarray, den: np.ndarray, n: int, w: _Weights, scale2: np.ndarray
) -> np.ndarray:
    # constant gene: variance zero up to rounding of the raw sums
    const = den <= 1e-12 * np.maximum(scale2, np.finfo(float).tiny)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (n / w.s0) * num / den
    out[const] = np.nan
    return out


def _dense_moran(X: np.ndarray, w: _Weights, n_jobs: int) -> np.ndarray:
    """Moran's I of dense X, centred per column block (exact to rounding)."""
    n, g = X.shape
    blk = int(max(8, min(g, 2_000_000 // max(n, 1))))

    def block(span: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        j0, j1 = span
        Z = np.array(X[:, j0:j1], dtype=np.float64)
        const = Z.max(axis=0) == Z.min(axis=0)
        Z -= Z.mean(axis=0)
        num = np.zeros(j1 - j0)
        for k in range(w.nb.shape[1]):
            j = w.nb[:, k]
            ok = np.flatnonzero(j >= 0)
            if ok.size:
                num += np.einsum("i,ij,ij->j", w.wt[ok, k], Z[ok], Z[j[ok]])
        if w.diag is not None:
            num += np.einsum("i,ij,ij->j", w.diag, Z, Z)
        den = np.einsum("ij,ij->j", Z, Z)
        return num, den, const

    parts = _map(block, _chunks(g, blk), n_jobs)
    num = np.concatenate([p[0] for p in parts])
    den = np.concatenate([p[1] for p in parts])
    const = np.concatenate([p[2] for p in parts])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (n / w.s0) * num / den
    out[const] = np.nan
    return out


def morans_i(
    X: np.ndarray | sp.spmatrix,
    adjacency: sp.spmatrix | np.ndarray,
    *,
    row_standardise: bool = True,
    n_jobs: int = 1,
) -> np.ndarray:
    """Moran's I of every column (gene) of a bins × genes matrix, vectorised over genes.

    ``I_g = n / S0 * sum_ij W_ij z_ig z_jg / sum_i z_ig**2`` with ``z = x - mean(x)``.

    Parameters
    ----------
    X
        Bins × genes, dense or scipy sparse.
    adjacency
        ``(n, n)`` non-negative spatial weights, e.g. :func:`grid_adjacency`.
    row_standardise
        Divide each row of ``adjacency`` by its sum (default, the usual choice: each bin's
        neighbours average to one). Rows without neighbours stay zero; ``S0`` is then the number
        of bins with a neighbour. ``False`` uses the weights as given.
    n_jobs
        Threads over blocks of bins/genes; the result does not depend on it.

    Returns
    -------
    numpy.ndarray
        One float64 per gene; NaN for genes constant over the bins (0 / 0).

    Notes
    -----
    Dense input is centred per block of genes (exact to rounding). Sparse input is not densified:
    the numerator is accumulated from raw moments,
    ``sum_e w_e x_i x_j - mean * (c · x) + mean**2 * S0`` with ``c`` = row + column sums of ``W``,
    which is exact for count data and loses about ``mean**2 / var`` relative precision otherwise.
    Under spatial randomness ``E[I] = -1 / (n - 1)``.

    Examples
    --------
    >>> chess = (np.indices((4, 4)).sum(axis=0) % 2).reshape(-1, 1).astype(float)
    >>> float(morans_i(chess, grid_adjacency((4, 4)))[0])
    -1.0
    """
    if X.ndim != 2:
        raise SchemaError(f"X must be 2-D bins × genes; got shape {X.shape}")
    n = X.shape[0]
    if n < 2:
        raise AnalysisError(f"Moran's I needs at least 2 bins; got {n}")
    w = _as_weights(adjacency, n, row_standardise)
    if sp.issparse(X):
        Xc = sp.csr_matrix(X)
        Xc.sum_duplicates()
        Xc.sort_indices()
        f = _fused_parts(None, Xc, w, n_jobs)
        return _moran_from_raw(f["mcross"], f["mcx"], f["m1"], f["m2"], n, w)
    return _dense_moran(np.asarray(X), w, n_jobs)


def _pearson_parts(f: dict[str, np.ndarray], n: int) -> np.ndarray:
    s1, m1 = f["s1"], f["m1"]
    sxx = f["s2"] - s1 * s1 / n
    sxy = f["cross"] - s1 * m1 / n
    syy = f["m2"] - m1 * m1 / n
    r = _pearson_from_moments(sxy, sxx, syy, f["s2"], f["m2"])
    r[f["s2"] == 0.0] = np.nan  # constant prediction (exactly zero after the first-row shift)
    return r


def _pearson_from_moments(
    sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray, scale_x: np.ndarray, scale_y: np.ndarray
) -> np.ndarray:
    const = (sxx <= 1e-12 * np.maximum(scale_x, np.finfo(float).tiny)) | (
        syy <= 1e-12 * np.maximum(scale_y, np.finfo(float).tiny)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    r[const] = np.nan
    return np.clip(r, -1.0, 1.0)


def spatial_correlation(
    predicted: np.ndarray | sp.spmatrix,
    measured: np.ndarray | sp.spmatrix,
    *,
    n_jobs: int = 1,
) -> np.ndarray:
    """Pearson correlation across bins, per gene (column), vectorised over genes.

    Parameters
    ----------
    predicted, measured
        Bins × genes, same shape and row/column order, dense or sparse.
    n_jobs
        Threads over blocks of bins; the result does not depend on it.

    Returns
    -------
    numpy.ndarray
        One r per gene in [-1, 1]; NaN where either map is constant.

    Examples
    --------
    >>> a = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    >>> spatial_correlation(a, a).round(6).tolist()
    [1.0, 1.0]
    """
    if predicted.shape != measured.shape or len(predicted.shape) != 2:
        raise SchemaError(
            f"predicted and measured must be bins × genes of the same shape; got "
            f"{predicted.shape} and {measured.shape}"
        )
    n = predicted.shape[0]
    if n < 2:
        raise AnalysisError(f"a spatial correlation needs at least 2 bins; got {n}")
    if sp.issparse(predicted) and not sp.issparse(measured):
        return spatial_correlation(measured, predicted, n_jobs=n_jobs)
    if sp.issparse(predicted):  # both sparse: raw moments
        A, B = sp.csr_matrix(predicted, dtype=np.float64), sp.csr_matrix(measured, dtype=np.float64)
        sa = np.asarray(A.sum(axis=0)).ravel()
        sb = np.asarray(B.sum(axis=0)).ravel()
        saa = np.asarray(A.multiply(A).sum(axis=0)).ravel()
        sbb = np.asarray(B.multiply(B).sum(axis=0)).ravel()
        sab = np.asarray(A.multiply(B).sum(axis=0)).ravel()
        return _pearson_from_moments(
            sab - sa * sb / n, saa - sa * sa / n, sbb - sb * sb / n, saa, sbb
        )
    if sp.issparse(measured):
        M = sp.csr_matrix(measured)
        M.sum_duplicates()
        M.sort_indices()
        f = _fused_parts(np.asarray(predicted), M, None, n_jobs)
        return _pearson_parts(f, n)
    # both dense: centre per column block
    Pa, Ma = np.asarray(predicted), np.asarray(measured)
    g = Pa.shape[1]
    blk = int(max(8, min(g, 2_000_000 // max(n, 1))))

    def block(span: tuple[int, int]) -> tuple[np.ndarray, ...]:
        j0, j1 = span
        A = np.array(Pa[:, j0:j1], dtype=np.float64)
        B = np.array(Ma[:, j0:j1], dtype=np.float64)
        ca = A.max(axis=0) == A.min(axis=0)
        cb = B.max(axis=0) == B.min(axis=0)
        A -= A.mean(axis=0)
        B -= B.mean(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.einsum("ij,ij->j", A, B) / np.sqrt(
                np.einsum("ij,ij->j", A, A) * np.einsum("ij,ij->j", B, B)
            )
        r[ca | cb] = np.nan
        return (np.clip(r, -1.0, 1.0),)

    return np.concatenate([p[0] for p in _map(block, _chunks(g, blk), n_jobs)])


# ----------------------------------------------------------------------------------------------
# one sample
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SpatialSample:
    """Predicted and measured expression of one sample (slide / SpT section).

    Parameters
    ----------
    sample_id
        Identifier (e.g. patient or slide id).
    predicted
        Tile-level predictions (AnnData tiles × genes with tile centres, see
        :func:`tile_centres_um`) or their binned form (:func:`bin_predictions`).
    measured
        Either a binned AnnData (:func:`bin_transcripts` / :func:`bin_cells`), a transcript
        table (binned with ``affine``), or a cell/spot AnnData (binned with ``affine``).
    cancer_type
        Group of the sample for the per-cancer-type curves.
    affine
        Measured µm → slide µm (2 × 3 or 3 × 3), used when ``measured`` is raw.
    tile_um, mpp
        Passed to :meth:`PredictionGrid.from_tiles` when the grid is inferred from the tiles.
    """

    sample_id: str
    predicted: Any
    measured: Any
    cancer_type: str | None = None
    affine: Any = None
    tile_um: float | None = None
    mpp: float | None = None

    def binned(self) -> tuple[ad.AnnData, ad.AnnData]:
        """``(predicted, measured)`` both on the same prediction grid."""
        pred, meas = self.predicted, self.measured
        meas_binned = (
            hasattr(meas, "uns")
            and UNS_KEY in meas.uns
            and meas.uns[UNS_KEY].get("kind") == "measured"
        )
        pred_binned = (
            hasattr(pred, "uns")
            and UNS_KEY in pred.uns
            and pred.uns[UNS_KEY].get("kind") == "predicted"
        )
        if meas_binned:
            grid = PredictionGrid.from_dict(meas.uns[UNS_KEY]["grid"])
        elif pred_binned:
            grid = PredictionGrid.from_dict(pred.uns[UNS_KEY]["grid"])
        else:
            grid = PredictionGrid.from_tiles(pred, tile_um=self.tile_um, mpp=self.mpp)
        if not pred_binned:
            pred = bin_predictions(pred, grid, mpp=self.mpp)
        elif PredictionGrid.from_dict(pred.uns[UNS_KEY]["grid"]) != grid:
            raise SchemaError(
                f"sample {self.sample_id!r}: predicted and measured were binned on different grids "
                f"({pred.uns[UNS_KEY]['grid']} vs {grid.to_dict()})"
            )
        if not meas_binned:
            if isinstance(meas, pd.DataFrame) or hasattr(meas, "to_pandas"):
                meas = bin_transcripts(meas, grid, affine=self.affine)
            elif hasattr(meas, "obsm"):
                meas = bin_cells(meas, grid, affine=self.affine)
            else:
                raise SchemaError(
                    f"sample {self.sample_id!r}: measured must be a transcript DataFrame or an "
                    f"AnnData; got {type(meas).__name__}"
                )
        return pred, meas


@dataclass(frozen=True, eq=False)
class SampleComparison:
    """Per-gene metrics of one sample (arrays aligned with ``genes``)."""

    sample_id: str
    cancer_type: str | None
    genes: pd.Index
    morans_i_measured: np.ndarray
    morans_i_predicted: np.ndarray
    spatial_r: np.ndarray
    bulk_predicted: np.ndarray
    bulk_measured: np.ndarray
    n_bins: int
    n_bins_predicted: int
    n_bins_measured: int
    n_genes_dropped: int


def compare_sample(
    sample: SpatialSample,
    *,
    kind: AdjacencyKind = "rook",
    bins: BinSelection = "both",
    bulk: BulkTransform = "log1p_cpm",
    morans_predicted: bool = False,
    n_jobs: int = 1,
) -> SampleComparison:
    """Per-gene Moran's I, spatial correlation and pseudo-bulk values of one sample.

    Parameters
    ----------
    sample
        The paired predicted / measured data.
    kind
        Lattice neighbourhood for Moran's I: ``"rook"`` or ``"queen"``.
    bins
        Bins compared: ``"both"`` (default) — bins with a prediction *and* at least one measured
        count (any gene), i.e. tissue inside the measured field of view; ``"predicted"`` — every
        bin with a prediction (measured zeros included).
    bulk
        Measured pseudo-bulk per gene: ``"log1p_cpm"`` (default) ``log1p(1e6 * counts_g /
        counts_all_genes)`` over the compared bins, or ``"mean"`` counts per bin. The predicted
        pseudo-bulk is always the mean prediction over the compared bins.
    morans_predicted
        Also compute Moran's I of the predicted maps (one more dense pass; NaN otherwise).
    n_jobs
        Threads over blocks of bins; results do not depend on it.

    Returns
    -------
    SampleComparison

    Raises
    ------
    AnalysisError
        If fewer than 3 bins or no gene are shared.
    """
    _check_choice("kind", kind, _KINDS)
    _check_choice("bins", bins, _BIN_SELECTIONS)
    _check_choice("bulk", bulk, _BULK)
    pred, meas = sample.binned()
    grid = PredictionGrid.from_dict(meas.uns[UNS_KEY]["grid"])
    pgenes, mgenes = pd.Index(pred.var_names), pd.Index(meas.var_names)
    if pgenes.equals(mgenes):
        genes, pidx, midx = pgenes, None, None
    else:
        genes = pgenes[pgenes.isin(mgenes)]
        pidx, midx = pgenes.get_indexer(genes), mgenes.get_indexer(genes)
    n_dropped = int(len(pgenes) + len(mgenes) - 2 * len(genes))
    if len(genes) == 0:
        raise AnalysisError(
            f"sample {sample.sample_id!r}: no gene is both predicted and measured "
            f"(predicted e.g. {pgenes[:3].tolist()}, measured e.g. {mgenes[:3].tolist()})"
        )
    if n_dropped:
        logger.info(
            "sample %s: %d genes not in both predicted and measured", sample.sample_id, n_dropped
        )
    pbins = pred.obs["bin"].to_numpy(dtype=np.int64)
    Mfull = sp.csr_matrix(meas.X)
    mbins = meas.obs["bin"].to_numpy(dtype=np.int64)
    if not np.array_equal(mbins, np.arange(grid.n_bins)):
        raise SchemaError(
            f"sample {sample.sample_id!r}: measured AnnData must hold every grid bin in order "
            "(as bin_transcripts / bin_cells produce)"
        )
    totals = np.asarray(Mfull.sum(axis=1)).ravel()
    keep = totals[pbins] > 0 if bins == "both" else np.ones(pbins.size, dtype=bool)
    n_sel = int(keep.sum())
    if n_sel < 3:
        raise AnalysisError(
            f"sample {sample.sample_id!r}: only {n_sel} bins have both a prediction and measured "
            f"counts; check the affine registration and tile size"
        )
    sel_bins = pbins[keep]
    P = pred.X if keep.all() else np.asarray(pred.X)[keep]
    P = np.asarray(P)
    if pidx is not None:
        P = P[:, pidx]
    # every grid bin compared (the usual full field of view): no copy of the measured rows
    all_bins = sel_bins.size == Mfull.shape[0] and np.array_equal(
        sel_bins, np.arange(sel_bins.size)
    )
    M = Mfull if all_bins else Mfull[sel_bins]
    lib = totals[sel_bins].sum()
    if midx is not None:
        M = M[:, midx]
    if not M.has_canonical_format:  # sorted, no duplicates; never reorder the caller's arrays
        M = M.copy()
        M.sum_duplicates()
    rows, cols = np.divmod(sel_bins, grid.shape[1])
    i, j = _lattice_edges(rows, cols, grid.shape, kind)
    A = sp.coo_matrix((np.ones(i.size), (i, j)), shape=(n_sel, n_sel))
    w = _prepare_weights(A + A.T, n_sel, row_standardise=True)
    if w.s0 <= 0:
        raise AnalysisError(f"sample {sample.sample_id!r}: no two compared bins are neighbours")

    n = n_sel
    f = _fused_parts(P, M, w, n_jobs)
    r = _pearson_parts(f, n)
    mi_m = _moran_from_raw(f["mcross"], f["mcx"], f["m1"], f["m2"], n, w)
    s1, m1, shift = f["s1"], f["m1"], f["shift"]
    mi_p = _dense_moran(P, w, n_jobs) if morans_predicted else np.full(len(genes), np.nan)
    bulk_p = shift + s1 / n
    if bulk == "mean":
        bulk_m = m1 / n
    else:
        bulk_m = np.log1p(1e6 * m1 / lib) if lib > 0 else np.full(len(genes), np.nan)
    return SampleComparison(
        sample_id=str(sample.sample_id),
        cancer_type=None if sample.cancer_type is None else str(sample.cancer_type),
        genes=genes,
        morans_i_measured=mi_m,
        morans_i_predicted=mi_p,
        spatial_r=r,
        bulk_predicted=bulk_p,
        bulk_measured=bulk_m,
        n_bins=n,
        n_bins_predicted=int(pbins.size),
        n_bins_measured=int((totals > 0).sum()),
        n_genes_dropped=n_dropped,
    )


# ----------------------------------------------------------------------------------------------
# across samples
# ----------------------------------------------------------------------------------------------

_METRICS = (
    "morans_i_measured",
    "morans_i_predicted",
    "spatial_r",
    "bulk_predicted",
    "bulk_measured",
)
ALL = "all"


def _nanmean0(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fin = np.isfinite(a)
    cnt = fin.sum(axis=0)
    s = np.where(fin, a, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / cnt, cnt


def _columnwise_pearson(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r per column over rows where both are finite, and the row count."""
    ok = np.isfinite(a) & np.isfinite(b)
    n = ok.sum(axis=0)
    a0, b0 = np.where(ok, a, 0.0), np.where(ok, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = a0.sum(axis=0) / n, b0.sum(axis=0) / n
        da, db = np.where(ok, a - ma, 0.0), np.where(ok, b - mb, 0.0)
        saa, sbb = (da * da).sum(axis=0), (db * db).sum(axis=0)
        r = (da * db).sum(axis=0) / np.sqrt(saa * sbb)
    const = (saa <= 1e-24 * np.maximum((a0 * a0).sum(axis=0), 1e-300)) | (
        sbb <= 1e-24 * np.maximum((b0 * b0).sum(axis=0), 1e-300)
    )
    r[const | (n < 2)] = np.nan
    return np.clip(r, -1.0, 1.0), n


@dataclass(frozen=True, eq=False)
class ExpressionQCResult:
    """Predicted vs measured expression over samples (arrays are samples × genes).

    Attributes
    ----------
    samples
        One row per sample: ``sample_id, cancer_type, n_bins, n_bins_predicted,
        n_bins_measured, n_genes_dropped``.
    genes
        Gene symbols (columns of the arrays).
    morans_i_measured, morans_i_predicted, spatial_r, bulk_predicted, bulk_measured
        Per-sample, per-gene values (NaN where a gene is absent or constant in a sample).
    parameters
        The options used (adjacency kind, bin selection, bulk transform, row standardisation).
    """

    samples: pd.DataFrame
    genes: pd.Index
    morans_i_measured: np.ndarray
    morans_i_predicted: np.ndarray
    spatial_r: np.ndarray
    bulk_predicted: np.ndarray
    bulk_measured: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)

    # -- groups ------------------------------------------------------------------------------
    def groups(self) -> dict[str, np.ndarray]:
        """Cancer type → sample positions; ``"all"`` first, then each type (sorted)."""
        ct = self.samples["cancer_type"].astype("string").fillna("unknown").to_numpy()
        out = {ALL: np.arange(len(ct))}
        for t in sorted(set(ct)):
            if t != ALL:
                out[str(t)] = np.flatnonzero(ct == t)
        if len(out) == 2:  # a single type: its group equals "all"
            out.pop(next(k for k in out if k != ALL))
        return out

    # -- tables ------------------------------------------------------------------------------
    def gene_ranking(self) -> pd.DataFrame:
        """Genes ranked by mean measured Moran's I, per cancer type (and over all samples).

        Columns ``cancer_type, rank, gene, mean_morans_i, n_samples, mean_spatial_r,
        n_samples_r``. ``rank`` is 1 for the most spatially structured gene; genes with no finite
        Moran's I in the group (constant everywhere) get ``rank`` <NA> and sort last.
        """
        frames = []
        for name, idx in self.groups().items():
            mi, nmi = _nanmean0(self.morans_i_measured[idx])
            sr, nsr = _nanmean0(self.spatial_r[idx])
            key = np.where(np.isfinite(mi), -mi, np.inf)
            order = np.argsort(key, kind="stable")
            rank = pd.array(np.arange(1, len(order) + 1), dtype="Int64")
            rank[~np.isfinite(mi[order])] = pd.NA
            frames.append(
                pd.DataFrame(
                    {
                        "cancer_type": name,
                        "rank": rank,
                        "gene": self.genes[order],
                        "mean_morans_i": mi[order],
                        "n_samples": nmi[order],
                        "mean_spatial_r": sr[order],
                        "n_samples_r": nsr[order],
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def spatial_curve(self) -> pd.DataFrame:
        """Mean spatial correlation over the top-k genes by Moran's I, k = 1 … all, per group.

        Columns ``cancer_type, k, gene, mean_morans_i, spatial_r`` (r of the k-th gene averaged
        over the group's samples) ``, mean_spatial_r`` (the curve: mean over the k top genes of
        those with a finite r). Only ranked genes appear.
        """
        return self._curve(self.gene_ranking(), "mean_spatial_r", "spatial_r")

    def bulk_correlation(self) -> pd.DataFrame:
        """Correlation across samples of predicted vs measured pseudo-bulk, per gene and group.

        Columns ``cancer_type, gene, rank`` (Moran's I rank in the group) ``, estimate, low,
        high, p_value, n_samples``: Pearson r over the group's samples, a 95 % Fisher-z
        interval and the two-sided t-test p-value (NaN with fewer than 3 samples).
        """
        ranking = self.gene_ranking()
        frames = []
        for name, idx in self.groups().items():
            r, n = _columnwise_pearson(self.bulk_predicted[idx], self.bulk_measured[idx])
            nf = n.astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                z = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15))
                se = 1.0 / np.sqrt(nf - 3)
                low, high = np.tanh(z - 1.959963984540054 * se), np.tanh(z + 1.959963984540054 * se)
                t = r * np.sqrt((nf - 2) / np.maximum(1 - r * r, 1e-300))
                p = 2 * stats.t.sf(np.abs(t), nf - 2)
            bad = n < 3
            r[bad] = low[bad] = high[bad] = p[bad] = np.nan
            rk = ranking[ranking["cancer_type"] == name].set_index("gene")["rank"]
            frames.append(
                pd.DataFrame(
                    {
                        "cancer_type": name,
                        "gene": self.genes,
                        "rank": rk.reindex(self.genes).to_numpy(),
                        "estimate": r,
                        "low": low,
                        "high": high,
                        "p_value": p,
                        "n_samples": n,
                    }
                ).sort_values("rank", kind="stable", na_position="last")
            )
        return pd.concat(frames, ignore_index=True)

    def bulk_curve(self) -> pd.DataFrame:
        """Mean bulk correlation over the top-k genes by Moran's I, per group.

        Columns ``cancer_type, k, gene, mean_morans_i, bulk_r, mean_bulk_r``.
        """
        ranking = self.gene_ranking()
        bc = self.bulk_correlation()[["cancer_type", "gene", "estimate"]]
        merged = ranking.merge(bc, on=["cancer_type", "gene"], how="left", sort=False)
        return self._curve(
            merged.rename(columns={"estimate": "bulk_r"}), "bulk_r", "bulk_r", "mean_bulk_r"
        )

    @staticmethod
    def _curve(
        ranking: pd.DataFrame, value: str, value_name: str, curve_name: str = "mean_spatial_r"
    ) -> pd.DataFrame:
        frames = []
        for name, df in ranking.groupby("cancer_type", sort=False):
            df = df[df["rank"].notna()]
            v = df[value].to_numpy(dtype=np.float64)
            fin = np.isfinite(v)
            with np.errstate(invalid="ignore", divide="ignore"):
                curve = np.cumsum(np.where(fin, v, 0.0)) / np.cumsum(fin)
            frames.append(
                pd.DataFrame(
                    {
                        "cancer_type": name,
                        "k": np.arange(1, len(df) + 1),
                        "gene": df["gene"].to_numpy(),
                        "mean_morans_i": df["mean_morans_i"].to_numpy(),
                        value_name: v,
                        curve_name: curve,
                    }
                )
            )
        cols = ["cancer_type", "k", "gene", "mean_morans_i", value_name, curve_name]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)

    def table(self) -> pd.DataFrame:
        """Tidy per sample × gene table.

        Columns ``sample_id, cancer_type, gene, morans_i_measured, morans_i_predicted,
        spatial_r, bulk_predicted, bulk_measured``.
        """
        s, g = self.spatial_r.shape
        out = pd.DataFrame(
            {
                "sample_id": np.repeat(self.samples["sample_id"].to_numpy(), g),
                "cancer_type": np.repeat(self.samples["cancer_type"].to_numpy(), g),
                "gene": np.tile(self.genes.to_numpy(), s),
            }
        )
        for m in _METRICS:
            out[m] = getattr(self, m).ravel()
        return out

    def summary(self, *, top: Sequence[int] = (10, 100)) -> pd.DataFrame:
        """One row per group: sample/gene counts and curve values at the given top-k.

        Columns ``cancer_type, n_samples, n_genes, n_genes_ranked, n_genes_unranked,
        mean_spatial_r_all, mean_spatial_r_top{k}…, mean_bulk_r_all, mean_bulk_r_top{k}…``
        (top-k capped at the number of ranked genes).
        """
        sc, bc = self.spatial_curve(), self.bulk_curve()
        groups = self.groups()
        rows = []
        for name, idx in groups.items():
            s = sc[sc["cancer_type"] == name]
            b = bc[bc["cancer_type"] == name]
            nr = len(s)
            row: dict[str, Any] = {
                "cancer_type": name,
                "n_samples": int(len(idx)),
                "n_genes": int(len(self.genes)),
                "n_genes_ranked": int(nr),
                "n_genes_unranked": int(len(self.genes) - nr),
                "mean_spatial_r_all": float(s["mean_spatial_r"].iloc[-1]) if nr else np.nan,
            }
            for k in top:
                row[f"mean_spatial_r_top{k}"] = (
                    float(s["mean_spatial_r"].iloc[min(k, nr) - 1]) if nr else np.nan
                )
            row["mean_bulk_r_all"] = float(b["mean_bulk_r"].iloc[-1]) if nr else np.nan
            for k in top:
                row[f"mean_bulk_r_top{k}"] = (
                    float(b["mean_bulk_r"].iloc[min(k, nr) - 1]) if nr else np.nan
                )
            rows.append(row)
        return pd.DataFrame(rows)

    # -- plots -------------------------------------------------------------------------------
    def plot_spatial_curve(self, *, ax: Axes | None = None) -> Axes:
        """See :func:`plot_spatial_correlation_curve`."""
        return plot_spatial_correlation_curve(self, ax=ax)

    def plot_bulk_curve(self, *, ax: Axes | None = None) -> Axes:
        """See :func:`plot_bulk_correlation_curve`."""
        return plot_bulk_correlation_curve(self, ax=ax)

    def _repr_html_(self) -> str:
        import html

        summ = self.summary()
        head = (
            f"<p><b>Predicted vs measured expression</b>: {len(self.samples)} samples, "
            f"{len(self.genes)} genes; adjacency {html.escape(str(self.parameters.get('kind')))}, "
            f"bins {html.escape(str(self.parameters.get('bins')))}</p>"
        )
        return head + summ.to_html(index=False, float_format=lambda v: f"{v:.3f}", escape=True)


def evaluate_expression(
    samples: Iterable[SpatialSample],
    *,
    kind: AdjacencyKind = "rook",
    bins: BinSelection = "both",
    bulk: BulkTransform = "log1p_cpm",
    morans_predicted: bool = False,
    n_jobs: int = 1,
) -> ExpressionQCResult:
    """Compare predicted with measured expression over samples (TARIO-2 accuracy metrics).

    Samples are consumed one at a time (a generator keeps only one sample in memory).

    Parameters
    ----------
    samples
        :class:`SpatialSample` items with distinct ``sample_id``.
    kind, bins, bulk, morans_predicted, n_jobs
        See :func:`compare_sample`.

    Returns
    -------
    ExpressionQCResult

    Raises
    ------
    SchemaError
        On duplicated sample ids or items that are not :class:`SpatialSample`.
    AnalysisError
        If no sample is given.
    """
    _check_choice("kind", kind, _KINDS)
    _check_choice("bins", bins, _BIN_SELECTIONS)
    _check_choice("bulk", bulk, _BULK)
    comps: list[SampleComparison] = []
    seen: set[str] = set()
    for item in samples:
        if not isinstance(item, SpatialSample):
            raise SchemaError(f"samples must be SpatialSample items; got {type(item).__name__}")
        if str(item.sample_id) in seen:
            raise SchemaError(f"sample_id {item.sample_id!r} appears more than once")
        seen.add(str(item.sample_id))
        comps.append(
            compare_sample(
                item,
                kind=kind,
                bins=bins,
                bulk=bulk,
                morans_predicted=morans_predicted,
                n_jobs=n_jobs,
            )
        )
    if not comps:
        raise AnalysisError("evaluate_expression needs at least one sample")
    return _assemble(comps, {"kind": kind, "bins": bins, "bulk": bulk, "row_standardise": True})


def _assemble(comps: list[SampleComparison], parameters: dict[str, Any]) -> ExpressionQCResult:
    genes = comps[0].genes
    same = all(c.genes.equals(genes) for c in comps)
    if not same:
        genes = pd.Index(pd.unique(np.concatenate([c.genes.to_numpy() for c in comps])))
    arrays = {}
    for m in _METRICS:
        out = np.full((len(comps), len(genes)), np.nan)
        for s, c in enumerate(comps):
            v = getattr(c, m)
            if same:
                out[s] = v
            else:
                out[s, genes.get_indexer(c.genes)] = v
        arrays[m] = out
    table = pd.DataFrame(
        {
            "sample_id": [c.sample_id for c in comps],
            "cancer_type": pd.array([c.cancer_type for c in comps], dtype="string"),
            "n_bins": [c.n_bins for c in comps],
            "n_bins_predicted": [c.n_bins_predicted for c in comps],
            "n_bins_measured": [c.n_bins_measured for c in comps],
            "n_genes_dropped": [c.n_genes_dropped for c in comps],
        }
    )
    return ExpressionQCResult(
        samples=table, genes=pd.Index(genes, name="gene"), parameters=parameters, **arrays
    )


# ----------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------


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
        The samples (a sequence or a mapping by id).
    pairs
        ``(sample_id, gene)`` per panel row.
    ax
        Optional array of Axes of shape ``(len(pairs), 3)``.
    bins
        Bins shown in the binned maps, as in :func:`compare_sample`.

    Returns
    -------
    numpy.ndarray
        The ``(len(pairs), 3)`` Axes; ``axes[0, 0].figure`` is the Figure. The raw column shows
        transcripts (points) or cells (coloured by count) in slide µm after the affine; it says
        so when only binned data was given.
    """
    _check_choice("bins", bins, _BIN_SELECTIONS)
    by_id = dict(samples) if isinstance(samples, Mapping) else {s.sample_id: s for s in samples}
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
            gc = _pick_column(list(df.columns), None, _GENE_COLUMNS, "gene")
            xc = _pick_column(list(df.columns), None, _X_COLUMNS, "x")
            yc = _pick_column(list(df.columns), None, _Y_COLUMNS, "y")
            sub = df[df[gc].astype(str) == gene]
            xy = apply_affine(sub[[xc, yc]].to_numpy(dtype=np.float64), s.affine)
            a_raw.scatter(xy[:, 0], xy[:, 1], s=1.0, c="tab:red", alpha=0.5, linewidths=0)
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
            a_raw.text(
                0.5, 0.5, "binned input only", ha="center", va="center", transform=a_raw.transAxes
            )
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


# ----------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------


def _json_safe(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_safe(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if v is pd.NA or v is None:
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [_json_safe(r) for r in df.astype(object).to_dict(orient="records")]


def report_section(
    result: ExpressionQCResult,
    *,
    maps: Figure | None = None,
    top_n: int = 20,
) -> dict[str, Any]:
    """Content of the report's "predicted vs measured expression" section.

    Parameters
    ----------
    result
        From :func:`evaluate_expression`.
    maps
        Optional figure from :func:`plot_expression_maps` (``axes[0, 0].figure``).
    top_n
        Number of top-ranked genes listed per cancer type.

    Returns
    -------
    dict
        JSON-safe except ``"figures"``: ``id, title, description, parameters`` and ``tables`` —
        ``samples``, ``summary``, ``top_genes`` (top ``top_n`` per group with mean Moran's I,
        mean spatial r and bulk r with 95 % CI), ``spatial_curve`` and ``bulk_curve`` (every point
        plotted: ``cancer_type, k, mean_spatial_r`` / ``mean_bulk_r``) — each a list of records
        (NaN → ``None``); ``figures``: name → matplotlib Figure (``spatial_correlation_curve``,
        ``bulk_correlation_curve`` and ``expression_maps`` when given).
    """
    import matplotlib.pyplot as plt

    ranking = result.gene_ranking()
    bc = result.bulk_correlation()
    top = ranking[ranking["rank"].notna() & (ranking["rank"] <= top_n)].merge(
        bc[["cancer_type", "gene", "estimate", "low", "high", "p_value"]].rename(
            columns={
                "estimate": "bulk_r",
                "low": "bulk_r_low",
                "high": "bulk_r_high",
                "p_value": "bulk_p_value",
            }
        ),
        on=["cancer_type", "gene"],
        how="left",
    )
    sc = result.spatial_curve()[["cancer_type", "k", "gene", "mean_spatial_r"]]
    bcurve = result.bulk_curve()[["cancer_type", "k", "gene", "mean_bulk_r"]]
    samples = result.samples.copy()
    figs: dict[str, Any] = {}
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    plot_spatial_correlation_curve(result, ax=ax)
    fig.tight_layout()
    figs["spatial_correlation_curve"] = fig
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    plot_bulk_correlation_curve(result, ax=ax)
    fig.tight_layout()
    figs["bulk_correlation_curve"] = fig
    if maps is not None:
        figs["expression_maps"] = maps
    return {
        "id": "expression_qc",
        "title": "Predicted vs measured expression",
        "description": (
            "Measured spatial transcriptomics binned onto the prediction grid. Genes are ranked by "
            "the mean Moran's I of the measured maps (row-standardised "
            f"{result.parameters.get('kind', 'rook')} adjacency); curves show the mean spatial "
            "Pearson correlation (per sample, across bins) and the bulk correlation (pseudo-bulk "
            "per sample, across samples) over the top-k genes."
        ),
        "parameters": _json_safe(
            {
                **result.parameters,
                "n_samples": int(len(result.samples)),
                "n_genes": int(len(result.genes)),
            }
        ),
        "tables": {
            "samples": _records(samples),
            "summary": _records(result.summary()),
            "top_genes": _records(top),
            "spatial_curve": _records(sc),
            "bulk_curve": _records(bcurve),
        },
        "figures": figs,
    }
