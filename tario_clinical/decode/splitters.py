"""Patient-level cross-validation splitters.

The unit of cross-validation is the patient: rows (slides) of one patient always fall in the same
fold. Folds are stratified on one or several binary labels at once (multi-label stratification on
the label combination, rare combinations pooled), repeated with child seeds of one ``seed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError, SchemaError

__all__ = ["PatientStratifiedGroupKFold", "LeaveOneGroupOut", "assign_folds"]

logger = logging.getLogger(__name__)


def _patient_table(n_rows: int, y: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (patient codes per row, unique patients, patient-level label matrix)."""
    if groups is None:
        codes = np.arange(n_rows)
        uniq = codes
    else:
        g = np.asarray(groups)
        if g.shape[0] != n_rows:
            raise SchemaError(f"groups has {g.shape[0]} values but X has {n_rows} rows.")
        uniq, codes = np.unique(g.astype(str), return_inverse=True)
    if y is None:
        lab = np.zeros((uniq.size, 0))
    else:
        ya = np.asarray(y, dtype=float)
        if ya.ndim == 1:
            ya = ya[:, None]
        if ya.shape[0] != n_rows:
            raise SchemaError(f"y has {ya.shape[0]} rows but X has {n_rows}.")
        lab = np.full((uniq.size, ya.shape[1]), np.nan)
        # first non-missing label of each patient (labels are per patient)
        for j in range(ya.shape[1]):
            col = ya[:, j]
            ok = ~np.isnan(col)
            order = np.flatnonzero(ok)[::-1]
            lab[codes[order], j] = col[order]
    return codes, uniq, lab


def assign_folds(labels: np.ndarray, n_splits: int, rng: np.random.Generator) -> np.ndarray:
    """Assign units (patients) to folds, stratified on the combination of their labels.

    Parameters
    ----------
    labels : (n, k) float array of 0/1/NaN (k may be 0)
    n_splits : int
    rng : numpy Generator

    Returns
    -------
    (n,) int array of fold numbers in ``0..n_splits-1``; fold sizes differ by at most one and
    each stratum's members are spread as evenly as possible (counts differ by at most one).
    """
    n = labels.shape[0]
    if labels.shape[1] == 0:
        keys = np.zeros(n, dtype=np.int64)
    else:
        filled = np.where(np.isnan(labels), 2, labels).astype(np.int64)
        keys = np.unique(filled, axis=0, return_inverse=True)[1].reshape(-1)
        counts = np.bincount(keys)
        rare = counts[keys] < n_splits
        if rare.any():  # pool rare combinations, then fall back to the first label alone
            first = filled[:, 0]
            keys = np.where(rare, counts.size + first, keys)
    folds = np.empty(n, dtype=np.int64)
    offset = int(rng.integers(n_splits))
    # deterministic stratum order, random order within stratum
    for key in np.unique(keys):
        members = np.flatnonzero(keys == key)
        members = members[rng.permutation(members.size)]
        folds[members] = (offset + np.arange(members.size)) % n_splits
        offset = (offset + members.size) % n_splits
    return folds


class PatientStratifiedGroupKFold:
    """Repeated stratified K-fold over patients (groups), optionally multi-label.

    Parameters
    ----------
    n_splits : int, default 5
    n_repeats : int, default 1
    seed : int, default 0
        Repeat ``r`` uses child seed ``SeedSequence(seed).spawn(n_repeats)[r]``.

    Notes
    -----
    ``split(X, y, groups)``: ``groups`` are patient ids (one per row); ``y`` may be 1-D or 2-D
    (several binary targets with NaN for missing, stratified jointly). Yields
    ``n_repeats * n_splits`` (train, test) index pairs, repeat-major. Use :meth:`iter_folds` to
    get ``(repeat, fold, train, test)``.

    Examples
    --------
    >>> import numpy as np
    >>> cv = PatientStratifiedGroupKFold(3, seed=1)
    >>> y = np.array([0, 1] * 6)
    >>> sum(1 for _ in cv.split(np.zeros((12, 1)), y))
    3
    """

    def __init__(self, n_splits: int = 5, *, n_repeats: int = 1, seed: int = 0) -> None:
        if int(n_splits) < 2:
            raise SchemaError(f"n_splits must be >= 2; got {n_splits!r}.")
        if int(n_repeats) < 1:
            raise SchemaError(f"n_repeats must be >= 1; got {n_repeats!r}.")
        self.n_splits = int(n_splits)
        self.n_repeats = int(n_repeats)
        self.seed = seed

    def __repr__(self) -> str:
        return (
            f"PatientStratifiedGroupKFold(n_splits={self.n_splits}, n_repeats={self.n_repeats}, "
            f"seed={self.seed})"
        )

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of (train, test) pairs yielded by :meth:`split`."""
        return self.n_splits * self.n_repeats

    def patient_folds(self, X: Any, y: Any = None, groups: Any = None) -> np.ndarray:
        """Fold of every row for every repeat, shape ``(n_repeats, n_rows)``."""
        n_rows = len(X) if not hasattr(X, "shape") else X.shape[0]
        codes, uniq, lab = _patient_table(n_rows, y, groups)
        if uniq.size < self.n_splits:
            raise AnalysisError(
                f"cannot make {self.n_splits} folds from {uniq.size} patients; lower n_splits."
            )
        out = np.empty((self.n_repeats, n_rows), dtype=np.int64)
        for r, child in enumerate(np.random.SeedSequence(self.seed).spawn(self.n_repeats)):
            pf = assign_folds(lab, self.n_splits, np.random.default_rng(child))
            out[r] = pf[codes]
        return out

    def iter_folds(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """Yield ``(repeat, fold, train_index, test_index)``."""
        folds = self.patient_folds(X, y, groups)
        for r in range(self.n_repeats):
            for k in range(self.n_splits):
                test = np.flatnonzero(folds[r] == k)
                train = np.flatnonzero(folds[r] != k)
                yield r, k, train, test

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_index, test_index)`` pairs (scikit-learn splitter protocol)."""
        for _, _, train, test in self.iter_folds(X, y, groups):
            yield train, test


class LeaveOneGroupOut:
    """Leave one site / cancer type out: train on all other groups, test on the held-out one.

    Parameters
    ----------
    min_size : int, default 1
        Groups with fewer rows are not used as test folds (they stay in training); logged.

    Notes
    -----
    ``split(X, y, groups)`` takes the *transfer* grouping (e.g. site) per row. Patients are
    nested in groups, so no patient is split; :meth:`check_patients` verifies it.
    """

    def __init__(self, *, min_size: int = 1) -> None:
        self.min_size = int(min_size)

    def __repr__(self) -> str:
        return f"LeaveOneGroupOut(min_size={self.min_size})"

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of held-out groups."""
        if groups is None:
            raise SchemaError("LeaveOneGroupOut needs groups= (e.g. site or cancer type per row).")
        g = pd.Series(np.asarray(groups).astype(str))
        return int((g.value_counts() >= self.min_size).sum())

    @staticmethod
    def check_patients(patients: Any, groups: Any) -> None:
        """Raise :class:`SchemaError` if a patient belongs to more than one group."""
        df = pd.DataFrame(
            {"p": np.asarray(patients).astype(str), "g": np.asarray(groups).astype(str)}
        )
        n = df.groupby("p")["g"].nunique()
        bad = n[n > 1]
        if len(bad):
            raise SchemaError(
                f"patients {bad.index[:5].tolist()} belong to several groups; a transfer grouping "
                "must be constant within a patient."
            )

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_index, test_index)``, one pair per held-out group (sorted by name)."""
        if groups is None:
            raise SchemaError("LeaveOneGroupOut needs groups= (e.g. site or cancer type per row).")
        g = np.asarray(groups).astype(str)
        for name in np.unique(g):
            test = np.flatnonzero(g == name)
            if test.size < self.min_size:
                logger.info(
                    "group %r has %d rows (< min_size); kept in training only", name, test.size
                )
                continue
            yield np.flatnonzero(g != name), test
