"""``DecodeResult``: out-of-fold scores, summaries, figures and JSON of a decoding run."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import metrics
from .._json import json_safe
from ..errors import AnalysisError, SchemaError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .estimator import LinearDecoder

__all__ = ["DecodeResult", "json_safe"]


def _roc_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ROC vertices (ties as one diagonal step), from (0, 0) to (1, 1)."""
    order = np.argsort(-s, kind="mergesort")
    ss, ys = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ss) != 0), ss.size - 1]
    tp = np.cumsum(ys)[last]
    fp = np.cumsum(1 - ys)[last]
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def _interp_roc(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Sensitivity of the piecewise-linear ROC curve at each ``grid`` value of 1 - specificity."""
    # collapse vertical runs to their top point except the first vertex of the run
    keep = np.r_[np.diff(fpr) > 0, True] | (np.arange(fpr.size) == 0)
    return np.interp(grid, fpr[keep], tpr[keep])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class DecodeResult:
    """Result of :func:`tario_clinical.decode`.

    Attributes
    ----------
    oof : DataFrame
        Out-of-fold scores, one row per patient x target x repeat: ``patient_id, target,
        repeat, fold, score`` (the fold model's linear predictor standardised by its mean and SD
        over that fold's training rows -- not log-odds), ``probability, y_true``.
    exclusions : DataFrame
        ``patient_id, target, reason``: every patient left out of a target's analysis.
    final_models : dict
        Target -> :class:`LinearDecoder` fitted on all labelled patients, C chosen by CV on them.
    folds : DataFrame
        ``target, repeat, fold, C, n_train, n_test``: the C chosen in each outer training fold.
    inner_oof : DataFrame
        ``target, repeat, fold, score, y_true``: inner cross-validated scores of each outer
        training fold at its chosen C (for cut-offs chosen on training folds only).
    params : dict
        Everything needed to reproduce the run (CV design, C grid, seed, engine, inference
        methods and the estimand ...).
    inference : DataFrame
        One row per target: ``auroc`` (the statistic ``T``: mean over repeats of the pooled
        out-of-fold AUROC), ``se, low, high, ci_method, p_value, p_method, p_mc_se,
        alternative`` and DeLong-on-OOF values for comparison (``*_delong``); see
        :mod:`tario_clinical.decode.inference`.
    resamples : dict of DataFrame
        The replicates of ``T`` behind the inference (``permutation``, ``jackknife``,
        ``bootstrap``), one column per target.
    """

    oof: pd.DataFrame
    exclusions: pd.DataFrame
    final_models: dict[str, LinearDecoder]
    folds: pd.DataFrame
    inner_oof: pd.DataFrame
    params: dict[str, Any]
    targets: list[str] = field(default_factory=list)
    inference: pd.DataFrame | None = None
    resamples: dict[str, pd.DataFrame] = field(default_factory=dict)

    # ------------------------------------------------------------------------ scores
    def _target_oof(self, target: str) -> pd.DataFrame:
        if target not in self.targets:
            raise SchemaError(f"target {target!r} was not decoded; decoded targets: {self.targets}")
        return self.oof[self.oof["target"] == target]

    def oof_scores(self, target: str) -> pd.Series:
        """Mean out-of-fold (fold-standardised) score per patient across repeats, indexed by ``patient_id``."""
        d = self._target_oof(target)
        s = d.groupby("patient_id", sort=True)["score"].mean()
        s.name = target
        return s

    def _per_patient(self, target: str) -> pd.DataFrame:
        d = self._target_oof(target)
        g = d.groupby("patient_id", sort=True)
        return pd.DataFrame(
            {
                "score": g["score"].mean(),
                "probability": g["probability"].mean(),
                "y_true": g["y_true"].first(),
            }
        )

    # ----------------------------------------------------------------------- summary
    def summary(self) -> pd.DataFrame:
        """One row per target: cross-validated AUROC with a valid interval, p- and q-values, AUPRC, Brier, calibration.

        ``auroc`` is the mean over repeats of the AUROC pooled over all out-of-fold patients of
        the repeat (never a mean of per-fold AUROCs). ``low, high`` and ``p_value`` come from
        re-running the whole nested CV (``ci_method``, ``p_method`` name the methods; default
        grouped-jackknife interval and permutation test, see
        :mod:`tario_clinical.decode.inference`); ``excludes_chance`` says whether the interval
        excludes 0.5, decided by the exact two-sided permutation test when one was run; ``q_value`` is Benjamini-Hochberg across
        targets (:func:`tario_clinical.metrics.bh_qvalues`) of those p-values. ``auprc``, ``brier`` and calibration use the
        per-patient mean probability over repeats. ``note`` flags small or degenerate targets.
        """
        inf = self.inference
        if inf is None:
            raise AnalysisError("this DecodeResult carries no inference table.")
        inf = inf.set_index("target")
        rows = []
        for t in self.targets:
            pp = self._per_patient(t)
            y = pp["y_true"].to_numpy(int)
            n, n1 = int(y.size), int(y.sum())
            row: dict[str, Any] = {"target": t, "n": n, "n_positive": n1}
            notes = []
            if n1 < 10 or n - n1 < 10:
                notes.append(
                    f"fewer than 10 {'positives' if n1 < 10 else 'negatives'}: interval unreliable"
                )
            r = inf.loc[t]
            if n1 == 0 or n1 == n:
                notes.append("one class only: not estimable")
                row.update(
                    auroc=np.nan,
                    low=np.nan,
                    high=np.nan,
                    excludes_chance=np.nan,
                    se=np.nan,
                    p_value=np.nan,
                    auprc=np.nan,
                    brier=np.nan,
                    calibration_intercept=np.nan,
                    calibration_slope=np.nan,
                )
            else:
                prob = pp["probability"].to_numpy()
                try:
                    cal = metrics.calibration(y, prob)
                    ci, cs = cal.intercept, cal.slope
                except AnalysisError:
                    ci, cs = np.nan, np.nan
                    notes.append("calibration not estimable (separated predictions)")
                if not np.isfinite(r["low"]) or not np.isfinite(r["high"]):
                    notes.append("interval not estimable")
                elif r["low"] == r["high"]:
                    notes.append(
                        "zero-width interval (perfect separation in every re-run)"
                        if r["auroc"] in (0.0, 1.0)
                        else "zero-width interval"
                    )
                excl = _excludes_chance(r)
                if excl and 0.5 in (r["low"], r["high"]):
                    notes.append("0.5 excluded by the exact permutation test (open bound)")
                row.update(
                    auroc=float(r["auroc"]),
                    low=float(r["low"]),
                    high=float(r["high"]),
                    excludes_chance=np.nan if excl is None else excl,
                    se=float(r["se"]),
                    p_value=float(r["p_value"]),
                    auprc=metrics.auprc(y, prob),
                    brier=metrics.brier(y, prob),
                    calibration_intercept=ci,
                    calibration_slope=cs,
                )
            row["ci_method"] = str(r["ci_method"])
            row["p_method"] = str(r["p_method"])
            row["p_mc_se"] = float(r["p_mc_se"])
            sub = self.folds[self.folds["target"] == t]["C"]
            row["C_median"] = float(sub.median()) if len(sub) else np.nan
            row["n_excluded"] = int((self.exclusions["target"] == t).sum())
            row["note"] = "; ".join(notes)
            rows.append(row)
        out = pd.DataFrame(rows)
        q = metrics.bh_qvalues(out["p_value"].to_numpy(dtype=float))
        out.insert(out.columns.get_loc("p_value") + 1, "q_value", q)
        return out

    def auroc_ci(self, target: str, *, method: str | None = None) -> metrics.AUROCResult:
        """The summary's AUROC of ``target`` with its interval.

        Parameters
        ----------
        target : str
        method : {None, "delong"}
            None: the run's ``ci_method`` (the interval of :meth:`summary`); ``"delong"``: DeLong
            on the OOF scores, averaged over repeats (anti-conservative, comparison only). Other
            methods need a re-run: ``decode(..., ci_method=...)``.
        """
        if target not in self.targets:
            raise SchemaError(f"target {target!r} was not decoded; decoded targets: {self.targets}")
        if method not in (None, "delong", self.params.get("ci_method")):
            raise SchemaError(
                f"this run's interval is {self.params.get('ci_method')!r}; method={method!r} "
                "needs decode(..., ci_method=...) (only 'delong' is available afterwards)."
            )
        if self.inference is None:
            raise AnalysisError("this DecodeResult carries no inference table.")
        r = self.inference.set_index("target").loc[target]
        pp = self._per_patient(target)
        y = pp["y_true"].to_numpy(int)
        level = float(self.params.get("level", 0.95))
        if method == "delong":
            lo, hi, se, m = r["low_delong"], r["high_delong"], r["se_delong"], "delong"
        else:
            lo, hi, se, m = r["low"], r["high"], r["se"], str(self.params.get("ci_method"))
        return metrics.AUROCResult(
            auroc=float(r["auroc"]),
            low=float(lo),
            high=float(hi),
            se=float(se),
            level=level,
            method=m,
            n=int(y.size),
            n_positive=int(y.sum()),
        )

    # ------------------------------------------------------------------------ triage
    def triage(
        self, target: str, *, sensitivity: float | None = None, npv: float | None = None
    ) -> pd.DataFrame:
        """Triage numbers with cut-offs chosen on the training folds only.

        In every outer fold the threshold meeting ``sensitivity`` (or ``npv``) is chosen on the
        inner cross-validated scores of the training patients, then applied to the held-out
        patients. Per repeat the held-out decisions are pooled (Wilson intervals); the table
        reports the mean over repeats of estimate and bounds.

        Returns
        -------
        DataFrame with ``metric, estimate, low, high`` (``tests_avoided``, ``sensitivity``,
        ``npv``, ``missed_positives``).
        """
        d = self._target_oof(target)
        inner = self.inner_oof[self.inner_oof["target"] == target]
        if inner.empty:
            raise AnalysisError(f"no inner cross-validated scores stored for {target!r}.")
        level = float(self.params.get("level", 0.95))
        per_rep = []
        for rep, dr in d.groupby("repeat", sort=True):
            thr = np.empty(len(dr))
            for k, idx in dr.groupby("fold").indices.items():
                ii = inner[(inner["repeat"] == rep) & (inner["fold"] == k)]
                thr[idx] = metrics.triage_threshold(
                    ii["y_true"].to_numpy(int),
                    ii["score"].to_numpy(),
                    sensitivity=sensitivity,
                    npv=npv,
                )
            per_rep.append(
                metrics.triage_summary(
                    dr["y_true"].to_numpy(int), dr["score"].to_numpy(), threshold=thr, level=level
                )
            )
        allr = pd.concat(per_rep)
        return allr.groupby("metric", sort=False)[["estimate", "low", "high"]].mean().reset_index()

    # ------------------------------------------------------------------------- plots
    def plot_roc(self, ax: Axes | None = None, *, targets: list[str] | None = None) -> Axes:
        """Out-of-fold ROC curves, one line per target: the vertical average over repeats.

        Each repeat's pooled OOF scores give one ROC curve; the curve drawn is their mean
        sensitivity at every 1 - specificity, whose area is (up to the plotting grid) the mean of
        the repeats' AUROCs -- the ``auroc`` of :meth:`summary`, shown in the legend with its
        interval.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.5))
        summ = self.summary().set_index("target")
        grid = np.linspace(0.0, 1.0, 501)
        for t in targets or self.targets:
            d = self._target_oof(t)
            curves = []
            for _, dr in d.groupby("repeat", sort=True):
                y = dr["y_true"].to_numpy(int)
                if y.min() == y.max():
                    continue
                fpr, tpr = _roc_points(y, dr["score"].to_numpy())
                curves.append(_interp_roc(fpr, tpr, grid))
            if not curves:
                continue
            r = summ.loc[t]
            ax.plot(
                grid,
                np.mean(curves, axis=0),
                label=f"{t} (AUROC {r['auroc']:.2f}, {_ci_text(r)}, n={int(r['n'])})",
            )
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_title("Out-of-fold ROC (patient level, mean over repeats)")
        ax.legend(fontsize=7, loc="lower right")
        return ax

    def plot_calibration(
        self, ax: Axes | None = None, *, targets: list[str] | None = None, n_bins: int = 10
    ) -> Axes:
        """Reliability diagram: observed rate vs mean predicted probability in quantile bins."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.5))
        for t in targets or self.targets:
            pp = self._per_patient(t)
            if len(pp) < n_bins:
                continue
            bins = pd.qcut(pp["probability"].rank(method="first"), n_bins, labels=False)
            g = pp.groupby(bins)
            ax.plot(g["probability"].mean(), g["y_true"].mean(), marker="o", ms=3, label=t)
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed fraction")
        ax.set_title("Calibration (out-of-fold)")
        ax.legend(fontsize=7)
        return ax

    # ------------------------------------------------------------------------ export
    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: summary rows, chosen C per fold, exclusion counts, parameters."""
        summ = self.summary()
        excl = (
            self.exclusions.groupby(["target", "reason"]).size().reset_index(name="n")
            if len(self.exclusions)
            else pd.DataFrame(columns=["target", "reason", "n"])
        )
        return json_safe(
            {
                "summary": summ,
                "inference": self.inference,
                "resamples": {
                    k: {
                        "n": len(v),
                        "mean": v.mean().to_dict(),
                        "sd": v.std(ddof=1).to_dict(),
                    }
                    for k, v in self.resamples.items()
                },
                "folds": self.folds,
                "exclusions": excl,
                "params": self.params,
                "targets": list(self.targets),
            }
        )

    def _repr_html_(self) -> str:
        s = self.summary()
        cols = ["target", "n", "n_positive", "auroc", "low", "high", "p_value", "q_value", "note"]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = []
        for _, r in s[cols].iterrows():
            cells = []
            for c in cols:
                v = r[c]
                txt = (
                    f"{v:.3g}"
                    if isinstance(v, float) and c in ("p_value", "q_value")
                    else (f"{v:.3f}" if isinstance(v, float) else str(v))
                )
                cells.append(f"<td>{html.escape(txt)}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        cv = html.escape(str(self.params.get("cv", "")))
        return (
            f"<table><caption>DecodeResult — {cv}; {len(self.exclusions)} exclusions</caption>"
            f"<tr>{head}</tr>{''.join(body)}</table>"
        )

    def __repr__(self) -> str:
        return f"DecodeResult(targets={self.targets}, n_oof_rows={len(self.oof)}, cv={self.params.get('cv')!r})"


def _excludes_chance(r: Any) -> bool | None:
    """An inference or summary row's ``excludes_chance`` as a bool; None where missing (NaN,
    or a table written before the column existed)."""
    v = r.get("excludes_chance", None)
    return bool(v) if isinstance(v, (bool, np.bool_)) or v in (0, 1) else None


def _ci_text(r: Any) -> str:
    """``0.61-0.83``; a bound of 0.5 that the exact test excluded is written ``>0.50``."""
    lo, hi = f"{r['low']:.2f}", f"{r['high']:.2f}"
    if _excludes_chance(r):
        if r["low"] == 0.5:
            lo = ">" + lo
        if r["high"] == 0.5:
            hi = "<" + hi
    return f"{lo}-{hi}"
