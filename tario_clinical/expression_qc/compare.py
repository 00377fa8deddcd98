"""Predicted vs measured expression of one sample: :func:`compare_sample` gives per-gene
Moran's I, spatial correlation and pseudo-bulk values (:class:`SampleComparison`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import AnalysisError, SchemaError
from .adjacency import lattice_edges, prepare_weights
from .binning import UNS_KEY
from .grid import PredictionGrid
from .moments import fused_moments
from .options import (
    ADJACENCY_KINDS,
    BIN_SELECTIONS,
    BULK_TRANSFORMS,
    AdjacencyKind,
    BinSelection,
    BulkTransform,
    check_choice,
)
from .sample import SpatialSample, as_spatial_sample
from .spatial_stats import dense_morans_i, moran_from_moments, pearson_from_fused

__all__ = ["SampleComparison", "compare_sample", "METRICS"]

logger = logging.getLogger(__name__)

#: the per-gene metrics of a :class:`SampleComparison` (and arrays of the cohort result)
METRICS = (
    "morans_i_measured",
    "morans_i_predicted",
    "spatial_r",
    "bulk_predicted",
    "bulk_measured",
)


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
        The paired predicted / measured data (a :class:`~.sample.SpatialSample`, or an object
        with its attributes, see :func:`~.sample.as_spatial_sample`).
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
    check_choice("kind", kind, ADJACENCY_KINDS)
    check_choice("bins", bins, BIN_SELECTIONS)
    check_choice("bulk", bulk, BULK_TRANSFORMS)
    sample = as_spatial_sample(sample)
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
    i, j = lattice_edges(rows, cols, grid.shape, kind)
    A = sp.coo_matrix((np.ones(i.size), (i, j)), shape=(n_sel, n_sel))
    w = prepare_weights(A + A.T, n_sel, row_standardise=True)
    if w.s0 <= 0:
        raise AnalysisError(f"sample {sample.sample_id!r}: no two compared bins are neighbours")

    n = n_sel
    f = fused_moments(P, M, w, n_jobs)
    r = pearson_from_fused(f, n)
    mi_m = moran_from_moments(f["mcross"], f["mcx"], f["m1"], f["m2"], n, w)
    s1, m1, shift = f["s1"], f["m1"], f["shift"]
    mi_p = dense_morans_i(P, w, n_jobs) if morans_predicted else np.full(len(genes), np.nan)
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
