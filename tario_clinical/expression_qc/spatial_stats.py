"""Moran's I and spatial correlation, vectorised over genes.

:func:`morans_i` and :func:`spatial_correlation` take bins × genes matrices, dense or sparse;
:func:`moran_from_moments`, :func:`pearson_from_fused` and :func:`dense_morans_i` finish them
from the sums of :func:`~.moments.fused_moments` (used by :func:`~.compare.compare_sample`).
Definitions and the NaN convention for constant genes: see :mod:`tario_clinical.expression_qc`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..errors import AnalysisError, SchemaError
from .adjacency import SpatialWeights, as_weights
from .moments import fused_moments
from .parallel import chunks, thread_map

__all__ = [
    "morans_i",
    "spatial_correlation",
    "moran_from_moments",
    "dense_morans_i",
    "pearson_from_fused",
]


def moran_from_moments(
    cross: np.ndarray, cx: np.ndarray, s1: np.ndarray, s2: np.ndarray, n: int, w: SpatialWeights
) -> np.ndarray:
    """Moran's I per gene from raw sums: ``cross = sum_e w_e x_i x_j`` (with the diagonal),
    ``cx = c · x``, ``s1 = sum x``, ``s2 = sum x^2`` over ``n`` bins (NaN for constant genes)."""
    m = s1 / n
    num = cross - m * cx + m * m * w.s0
    den = s2 - n * m * m
    return _finish_moran(num, den, n, w, s2)


def _finish_moran(
    num: np.ndarray, den: np.ndarray, n: int, w: SpatialWeights, scale2: np.ndarray
) -> np.ndarray:
    # constant gene: variance zero up to rounding of the raw sums
    const = den <= 1e-12 * np.maximum(scale2, np.finfo(float).tiny)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (n / w.s0) * num / den
    out[const] = np.nan
    return out


def dense_morans_i(X: np.ndarray, w: SpatialWeights, n_jobs: int) -> np.ndarray:
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

    parts = thread_map(block, chunks(g, blk), n_jobs)
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
    >>> from tario_clinical.expression_qc import grid_adjacency
    >>> float(morans_i(chess, grid_adjacency((4, 4)))[0])
    -1.0
    """
    if X.ndim != 2:
        raise SchemaError(f"X must be 2-D bins × genes; got shape {X.shape}")
    n = X.shape[0]
    if n < 2:
        raise AnalysisError(f"Moran's I needs at least 2 bins; got {n}")
    w = as_weights(adjacency, n, row_standardise)
    if sp.issparse(X):
        Xc = sp.csr_matrix(X)
        Xc.sum_duplicates()
        Xc.sort_indices()
        f = fused_moments(None, Xc, w, n_jobs)
        return moran_from_moments(f["mcross"], f["mcx"], f["m1"], f["m2"], n, w)
    return dense_morans_i(np.asarray(X), w, n_jobs)


def pearson_from_fused(f: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Per-gene Pearson r of predicted vs measured from the sums of
    :func:`~.moments.fused_moments` (NaN where either map is constant)."""
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
        f = fused_moments(np.asarray(predicted), M, None, n_jobs)
        return pearson_from_fused(f, n)
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

    return np.concatenate([p[0] for p in thread_map(block, chunks(g, blk), n_jobs)])
