"""Blocked work over threads whose results do not depend on ``n_jobs``.

The kernels split bins or genes into fixed blocks (:func:`chunks`, :func:`row_block`) and map
a function over them with :func:`thread_map` (one block per task) or
:func:`grouped_thread_map` (contiguous groups of blocks per worker, so a worker reuses its
buffers); results come back in block order, so reductions are the same for any ``n_jobs``.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["chunks", "row_block", "thread_map", "grouped_thread_map"]


def chunks(n: int, size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` blocks of ``size`` covering ``range(n)``."""
    return [(a, min(n, a + size)) for a in range(0, n, size)]


def row_block(n_cols: int) -> int:
    """Rows per block for ``n_cols`` columns: about 1-2 M float64 elements, so a block stays in
    cache and bounds the temporaries."""
    return int(max(16, min(4096, 2_000_000 // max(n_cols, 1))))


def thread_map(fn: Callable[[Any], Any], items: list[Any], n_jobs: int) -> list[Any]:
    """``[fn(item) for item in items]`` on up to ``n_jobs`` threads, results in item order."""
    if n_jobs <= 1 or len(items) <= 1:
        return [fn(it) for it in items]
    with ThreadPoolExecutor(max_workers=n_jobs) as ex:
        return list(ex.map(fn, items))


def grouped_thread_map(
    fn: Callable[[list[tuple[int, int]]], list[Any]], spans: list[tuple[int, int]], n_jobs: int
) -> list[Any]:
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
