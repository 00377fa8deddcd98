"""Spatial weights of the prediction lattice.

:func:`grid_adjacency` is the binary rook / queen adjacency of a full grid; :func:`lattice_edges`
the edges between any set of lattice bins (the compared bins of a sample);
:func:`prepare_weights` turns a weights matrix into the :class:`SpatialWeights` the Moran
kernels read (half-edge slot table, row and column sums, ``S0``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..errors import AnalysisError, SchemaError
from .options import ADJACENCY_KINDS, AdjacencyKind, check_choice

__all__ = ["grid_adjacency", "lattice_edges", "SpatialWeights", "prepare_weights", "as_weights"]


_OFFSETS = {"rook": ((0, 1), (1, 0)), "queen": ((0, 1), (1, 0), (1, 1), (1, -1))}


def lattice_edges(
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
    check_choice("kind", kind, ADJACENCY_KINDS)
    if len(shape) != 2 or int(shape[0]) < 1 or int(shape[1]) < 1:
        raise SchemaError(f"shape must be (n_rows, n_cols) >= 1; got {shape!r}")
    nr, nc = int(shape[0]), int(shape[1])
    rows, cols = np.divmod(np.arange(nr * nc), nc)
    i, j = lattice_edges(rows, cols, (nr, nc), kind)
    n = nr * nc
    a = sp.coo_matrix(
        (np.ones(2 * i.size), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n)
    )
    return a.tocsr()


@dataclass(frozen=True)
class SpatialWeights:
    """Spatial weights prepared for the kernels: half-edge slot table + Moran constants."""

    n: int
    nb: np.ndarray  # (n, K) int64 neighbour j > i (-1 = none)
    wt: np.ndarray  # (n, K) float64 weight w_ij + w_ji of that edge
    diag: np.ndarray | None  # (n,) w_ii or None
    c: np.ndarray  # (n,) row sums + column sums of W
    s0: float
    halo: int


def prepare_weights(adjacency: sp.spmatrix, n: int, row_standardise: bool) -> SpatialWeights:
    """Checked ``(n, n)`` non-negative weights (optionally row-standardised) as
    :class:`SpatialWeights`; :class:`AnalysisError` when no bin has a neighbour."""
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
    return SpatialWeights(n=n, nb=nb, wt=wt, diag=diag, c=c, s0=s0, halo=halo)


def as_weights(
    adjacency: sp.spmatrix | SpatialWeights, n: int, row_standardise: bool
) -> SpatialWeights:
    """``adjacency`` as :class:`SpatialWeights` for ``n`` bins: prepared ones are checked and
    passed through, a matrix goes through :func:`prepare_weights`."""
    if isinstance(adjacency, SpatialWeights):
        if adjacency.n != n:
            raise SchemaError(f"weights are for {adjacency.n} bins, data has {n}")
        return adjacency
    return prepare_weights(adjacency, n, row_standardise)
