"""The shared core of the decoding analyses (:mod:`tario_clinical.decode.analyses`): the
result type, inputs aligned once, the fold-standardised fit-and-score step, pooled AUROC, the
grouped jackknife of a whole analysis and its interval rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import metrics
from .._json import json_safe
from ..errors import SchemaError
from . import engine as _engine
from .splitters import assign_folds

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = [
    "AnalysisResult",
    "prepare_analysis",
    "AnalysisDesign",
    "fit_score",
    "pooled_auroc",
    "jackknife_groups",
    "jack_stats",
    "auroc_jack",
    "diff_jack",
    "JACKKNIFE_METHOD",
    "DELONG_INDEPENDENT",
    "auroc_row",
    "class_counts",
    "paired_rows",
    "c_grid",
]


@dataclass(frozen=True)
class AnalysisResult:
    """A tidy table plus the figure recipe of one analysis.

    Attributes
    ----------
    table : DataFrame
        One row per estimate (columns depend on ``kind``; AUROCs as ``auroc, low, high``,
        differences as ``estimate, low, high, p_value``).
    kind : str
    params : dict
    exclusions : DataFrame
        ``patient_id, target, reason`` of the patients the analysis left out (the caller's
        cohort is not changed; record them with ``cohort.record_exclusions``).
    """

    table: pd.DataFrame
    kind: str
    params: dict[str, Any]
    exclusions: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["patient_id", "target", "reason"])
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return json_safe({"kind": self.kind, "table": self.table, "params": self.params})

    def _repr_html_(self) -> str:
        return f"<b>{self.kind}</b>" + self.table.to_html(index=False, float_format="%.3f")

    def plot(self, ax: Axes | None = None) -> Axes:
        """Figure of the analysis (learning curve / grouped AUROCs with CIs)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        t = self.table
        if self.kind == "learning_curve":
            for target, d in t.groupby("target", sort=False):
                ax.errorbar(
                    d["fraction"],
                    d["auroc"],
                    yerr=[d["auroc"] - d["low"], d["high"] - d["auroc"]],
                    marker="o",
                    capsize=3,
                    label=str(target),
                )
            ax.set_xscale("log")
            ax.set_xlabel("fraction of training patients")
            ax.set_ylabel("pooled out-of-fold AUROC")
        else:
            label_col = {
                "generalist_vs_specialist": "model",
                "leave_one_group_out": "group",
                "representation_comparison": "representation",
            }[self.kind]
            d = t.reset_index(drop=True)
            y = np.arange(len(d))
            ax.errorbar(
                d["auroc"],
                y,
                xerr=[d["auroc"] - d["low"], d["high"] - d["auroc"]],
                fmt="o",
                capsize=3,
            )
            ax.set_yticks(y, [f"{a} / {b}" for a, b in zip(d["target"], d[label_col], strict=True)])
            ax.set_xlabel("AUROC (95% CI)")
        ax.axhline(
            0.5, color="grey", lw=0.6, ls="--"
        ) if self.kind == "learning_curve" else ax.axvline(0.5, color="grey", lw=0.6, ls="--")
        ax.set_title(self.kind.replace("_", " "))
        if self.kind == "learning_curve":
            ax.legend(fontsize=7)
        return ax


# ------------------------------------------------------------------------- shared core
def prepare_analysis(representations: Any, cohort: Any, targets: list[str]):  # noqa: ANN202
    from .decode_data import log_exclusions, prepare_data

    data = prepare_data(representations, cohort, targets)
    log_exclusions(data.exclusions)
    if not np.array_equal(np.unique(data.row_patient), np.sort(data.row_patient)):
        raise SchemaError("analyses need one representation row per patient (pool slides first).")
    return data


class AnalysisDesign:
    """Patient-level outer folds and, per outer fold, the inner folds of its training patients.

    Drawn once; jackknife replicates delete patients from it without redrawing anything.
    """

    def __init__(self, Y: np.ndarray, n_splits: int, n_inner_splits: int, seed: Any) -> None:
        s_fold, self._s_inner = seed.spawn(2)
        self.n_inner_splits = n_inner_splits
        self.folds = assign_folds(Y, n_splits, np.random.default_rng(s_fold))
        self.n_splits = n_splits
        self._inner: dict[tuple[int, int], np.ndarray] = {}
        self.Y = Y

    def inner(self, k: int, slot: int, train: np.ndarray) -> np.ndarray:
        """Inner fold (per patient, -1 outside ``train``) of training set ``slot`` of fold ``k``."""
        key = (k, slot)
        if key not in self._inner:
            v = np.full(self.Y.shape[0], -1, dtype=np.int64)
            child = np.random.SeedSequence(
                self._s_inner.entropy, spawn_key=(*self._s_inner.spawn_key, k, slot)
            )
            v[train] = assign_folds(
                self.Y[train], self.n_inner_splits, np.random.default_rng(child)
            )
            self._inner[key] = v
        return self._inner[key]


def fit_score(
    X: np.ndarray,
    Y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    Cs: np.ndarray,
    inner_all: np.ndarray,
    *,
    class_weight: str | None,
    pca: int | None,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Nested-CV fit on ``train`` rows (all targets at once); fold-standardised scores on ``test``.

    ``inner_all`` gives the inner fold of every training row; ``keep`` (bool per row) deletes
    rows from training (jackknife) without changing anybody's folds.
    """
    if keep is not None:
        train = train[keep[train]]
    _, inner = np.unique(inner_all[train], return_inverse=True)
    basis = _engine.fold_basis(X, train, test, n_components=pca)
    return _engine.nested_fold(basis, Y[train], inner, Cs, class_weight=class_weight).test_std


def pooled_auroc(y: np.ndarray, s: np.ndarray, keep: np.ndarray | None = None) -> float:
    ok = ~np.isnan(y) & ~np.isnan(s)
    if keep is not None:
        ok &= keep
    yy = y[ok]
    if yy.size == 0 or yy.min() == yy.max():
        return float("nan")
    return metrics.auroc(yy.astype(int), s[ok])


def jackknife_groups(Y: np.ndarray, n_jackknife: int, seed: Any) -> np.ndarray:
    if int(n_jackknife) < 3:
        raise SchemaError(f"n_jackknife must be >= 3; got {n_jackknife!r}.")
    return assign_folds(Y, int(n_jackknife), np.random.default_rng(seed))


def jack_stats(stat_fn: Any, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """``(G, ...)`` replicates of ``stat_fn(keep)`` with one group deleted each time."""
    return np.array([stat_fn(groups != g) for g in range(n_groups)])


def auroc_jack(est: float, reps: np.ndarray, level: float) -> tuple[float, float]:
    from .intervals import jackknife_interval

    if not np.isfinite(est) or not np.all(np.isfinite(reps)):
        return float("nan"), float("nan")
    lo, hi, _ = jackknife_interval(np.array([est]), reps.reshape(-1, 1), level)
    return float(lo[0]), float(hi[0])


def diff_jack(est: float, reps: np.ndarray, level: float) -> tuple[float, float, float]:
    """(low, high, two-sided p) of a difference from jackknife replicates (t_{G-1})."""
    from scipy import stats

    G = reps.size
    if not np.isfinite(est) or not np.all(np.isfinite(reps)):
        return float("nan"), float("nan"), float("nan")
    se = float(np.sqrt((G - 1) / G * np.sum((reps - reps.mean()) ** 2)))
    q = stats.t.ppf(0.5 + level / 2.0, G - 1)
    p = float(2 * stats.t.sf(abs(est) / se, G - 1)) if se > 0 else (0.0 if est else 1.0)
    return est - q * se, est + q * se, p


JACKKNIFE_METHOD = "grouped jackknife of the whole analysis (G={G})"
DELONG_INDEPENDENT = "DeLong (held-out group independent of the training patients)"


def auroc_row(y: np.ndarray, s: np.ndarray, level: float) -> dict[str, Any]:
    """DeLong AUROC row of scores from one model on patients independent of its training."""
    ok = ~np.isnan(y) & ~np.isnan(s)
    yy, ss = y[ok].astype(int), s[ok]
    if yy.size == 0 or yy.min() == yy.max():
        nan = float("nan")
        return {
            "n": int(yy.size),
            "n_positive": int(yy.sum()),
            "auroc": nan,
            "low": nan,
            "high": nan,
        }
    r = metrics.auroc_ci(yy, ss, level=level)
    return {"n": r.n, "n_positive": r.n_positive, "auroc": r.auroc, "low": r.low, "high": r.high}


def class_counts(y: np.ndarray) -> dict[str, int]:
    ok = ~np.isnan(y)
    return {"n": int(ok.sum()), "n_positive": int(np.nansum(y))}


def paired_rows(
    targets: Sequence[str],
    Y: np.ndarray,
    stat_fn: Any,
    groups: np.ndarray,
    n_groups: int,
    label: str,
    names: tuple[str, str],
    level: float,
    eval_rows: np.ndarray,
) -> list[dict[str, Any]]:
    """AUROC of two scorings of the same patients per target and their difference (jackknife).

    ``stat_fn(keep)`` returns ``(2, T)`` pooled AUROCs (scoring a, scoring b) over ``eval_rows``.
    """
    full = stat_fn(np.ones(groups.size, dtype=bool))
    reps = jack_stats(stat_fn, groups, n_groups)
    rows = []
    desc = JACKKNIFE_METHOD.format(G=n_groups)
    for j, t in enumerate(targets):
        y = Y[eval_rows, j]
        for a, nm in enumerate(names):
            lo, hi = auroc_jack(full[a, j], reps[:, a, j], level)
            rows.append(
                {
                    "target": t,
                    label: nm,
                    **class_counts(y),
                    "auroc": full[a, j],
                    "low": lo,
                    "high": hi,
                    "ci_method": desc,
                }
            )
        est = float(full[0, j] - full[1, j])
        lo, hi, p = diff_jack(est, reps[:, 0, j] - reps[:, 1, j], level)
        rows.append(
            {
                "target": t,
                label: "difference",
                **class_counts(y),
                "estimate": est,
                "low": lo,
                "high": hi,
                "p_value": p,
                "ci_method": desc,
            }
        )
    return rows


def c_grid(Cs: Any, n_c: int, X: np.ndarray) -> np.ndarray:
    from .cross_validation import default_Cs

    return default_Cs(n_c, X.shape[0], X.shape[1]) if Cs is None else np.sort(np.asarray(Cs, float))
