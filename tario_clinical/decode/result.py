"""``DecodeResult``: out-of-fold scores, summaries, figures and JSON of a decoding run."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from .. import metrics
from ..errors import AnalysisError, SchemaError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

    from .estimator import LinearDecoder

__all__ = ["DecodeResult", "json_safe"]


def json_safe(obj: Any) -> Any:
    """Convert numpy / pandas scalars and containers to JSON-safe Python (NaN/inf -> None)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, pd.DataFrame):
        return [json_safe(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    return obj if isinstance(obj, str) else str(obj)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class DecodeResult:
    """Result of :func:`tario_clinical.decode`.

    Attributes
    ----------
    oof : DataFrame
        Out-of-fold scores, one row per patient x target x repeat: ``patient_id, target,
        repeat, fold, score`` (log-odds), ``probability, y_true``.
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
        Everything needed to reproduce the run (CV design, C grid, seed, engine ...).
    """

    oof: pd.DataFrame
    exclusions: pd.DataFrame
    final_models: dict[str, LinearDecoder]
    folds: pd.DataFrame
    inner_oof: pd.DataFrame
    params: dict[str, Any]
    targets: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------------ scores
    def _target_oof(self, target: str) -> pd.DataFrame:
        if target not in self.targets:
            raise SchemaError(f"target {target!r} was not decoded; decoded targets: {self.targets}")
        return self.oof[self.oof["target"] == target]

    def oof_scores(self, target: str) -> pd.Series:
        """Mean out-of-fold score (log-odds) per patient across repeats, indexed by ``patient_id``."""
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
        """One row per target: pooled out-of-fold AUROC with CI, p- and q-values, AUPRC, Brier, calibration.

        ``auroc`` is the mean over repeats of the AUROC pooled over all out-of-fold patients of
        the repeat (never a mean of per-fold AUROCs); ``low, high`` are ``auroc -/+ z * se``
        with ``se`` the mean DeLong standard error of the repeats (each repeat scores every
        patient once, so the DeLong variance applies). ``p_value`` is the two-sided DeLong Wald
        test of AUROC = 0.5 with the same ``se``; ``q_value`` is Benjamini-Hochberg across
        targets (statsmodels). ``p_permutation`` permutes labels against the repeat-0 OOF
        scores. ``auprc``, ``brier`` and calibration use the per-patient mean probability.
        ``note`` flags small or degenerate targets.
        """
        from statsmodels.stats.multitest import multipletests

        level = float(self.params.get("level", 0.95))
        z = stats.norm.ppf(0.5 + level / 2.0)
        rows = []
        for t in self.targets:
            d = self._target_oof(t)
            pp = self._per_patient(t)
            y = pp["y_true"].to_numpy(int)
            n, n1 = int(y.size), int(y.sum())
            row: dict[str, Any] = {"target": t, "n": n, "n_positive": n1}
            notes = []
            if n1 < 10 or n - n1 < 10:
                notes.append(
                    f"fewer than 10 {'positives' if n1 < 10 else 'negatives'}: interval unreliable"
                )
            if n1 == 0 or n1 == n:
                notes.append("one class only: not estimable")
                row.update(
                    auroc=np.nan,
                    low=np.nan,
                    high=np.nan,
                    se=np.nan,
                    p_value=np.nan,
                    p_permutation=np.nan,
                    auprc=np.nan,
                    brier=np.nan,
                    calibration_intercept=np.nan,
                    calibration_slope=np.nan,
                )
            else:
                aucs, ses = [], []
                for _, dr in d.groupby("repeat", sort=True):
                    r = metrics.auroc_ci(
                        dr["y_true"].to_numpy(int), dr["score"].to_numpy(), level=level
                    )
                    aucs.append(r.auroc)
                    ses.append(r.se)
                a, se = float(np.mean(aucs)), float(np.mean(ses))
                if se > 0:
                    p = float(2 * stats.norm.sf(abs(a - 0.5) / se))
                else:
                    p = 0.0 if a != 0.5 else 1.0
                    notes.append("zero DeLong variance (perfect separation)")
                d0 = d[d["repeat"] == d["repeat"].min()]
                pperm = metrics.permutation_pvalue(
                    d0["y_true"].to_numpy(int),
                    d0["score"].to_numpy(),
                    n_permutations=int(self.params.get("n_permutations", 1000)),
                    seed=int(self.params.get("seed", 0)),
                )
                prob = pp["probability"].to_numpy()
                try:
                    cal = metrics.calibration(y, prob)
                    ci, cs = cal.intercept, cal.slope
                except AnalysisError:
                    ci, cs = np.nan, np.nan
                    notes.append("calibration not estimable (separated predictions)")
                row.update(
                    auroc=a,
                    low=max(0.0, a - z * se),
                    high=min(1.0, a + z * se),
                    se=se,
                    p_value=p,
                    p_permutation=pperm,
                    auprc=metrics.auprc(y, prob),
                    brier=metrics.brier(y, prob),
                    calibration_intercept=ci,
                    calibration_slope=cs,
                )
            sub = self.folds[self.folds["target"] == t]["C"]
            row["C_median"] = float(sub.median()) if len(sub) else np.nan
            row["n_excluded"] = int((self.exclusions["target"] == t).sum())
            row["note"] = "; ".join(notes)
            rows.append(row)
        out = pd.DataFrame(rows)
        ok = out["p_value"].notna().to_numpy()
        q = np.full(len(out), np.nan)
        if ok.any():
            q[ok] = multipletests(out.loc[ok, "p_value"].to_numpy(), method="fdr_bh")[1]
        out.insert(out.columns.get_loc("p_value") + 1, "q_value", q)
        return out

    def auroc_ci(
        self, target: str, *, method: str = "delong", seed: int | None = None
    ) -> metrics.AUROCResult:
        """AUROC with CI of the per-patient mean OOF score (see :func:`tario_clinical.metrics.auroc_ci`)."""
        pp = self._per_patient(target)
        return metrics.auroc_ci(
            pp["y_true"].to_numpy(int),
            pp["score"].to_numpy(),
            level=float(self.params.get("level", 0.95)),
            method=method,  # type: ignore[arg-type]
            seed=int(self.params.get("seed", 0)) if seed is None else seed,
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
                    dr["y_true"].to_numpy(int), dr["score"].to_numpy(), thr, level=level
                )
            )
        allr = pd.concat(per_rep)
        return allr.groupby("metric", sort=False)[["estimate", "low", "high"]].mean().reset_index()

    # ------------------------------------------------------------------------- plots
    def plot_roc(self, ax: Axes | None = None, *, targets: list[str] | None = None) -> Axes:
        """ROC curves of the per-patient mean OOF scores, one line per target, AUROC in the legend."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.5))
        for t in targets or self.targets:
            pp = self._per_patient(t)
            y = pp["y_true"].to_numpy(int)
            if y.min() == y.max():
                continue
            s = pp["score"].to_numpy()
            order = np.argsort(-s, kind="mergesort")
            ys = y[order]
            tpr = np.r_[0.0, np.cumsum(ys) / ys.sum()]
            fpr = np.r_[0.0, np.cumsum(1 - ys) / (1 - ys).sum()]
            ax.plot(fpr, tpr, label=f"{t} (AUROC {metrics.auroc(y, s):.2f}, n={y.size})")
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.set_title("Out-of-fold ROC (patient level)")
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
