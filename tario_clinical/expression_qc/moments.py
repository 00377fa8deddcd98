"""Per-gene sums of a sample in one pass over the measured non-zeros.

:func:`fused_moments` reads the sparse measured counts (and the dense predictions of the same
bins) once and returns every sum that Moran's I and the spatial Pearson correlation need; the
float32 prediction matrix is never copied whole. Used by :mod:`.spatial_stats` and
:mod:`.compare`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .adjacency import SpatialWeights
from .parallel import chunks, grouped_thread_map, row_block

__all__ = ["fused_moments"]


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


def _neighbour_slots(w: SpatialWeights) -> list[tuple[int | np.ndarray, np.ndarray]]:
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


def fused_moments(
    P: np.ndarray | None,
    M: sp.csr_matrix,
    w: SpatialWeights | None,
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
    size = max(row_block(g), 4 * halo)
    spans = chunks(n, size)
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

    parts = grouped_thread_map(work, spans, n_jobs)
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
