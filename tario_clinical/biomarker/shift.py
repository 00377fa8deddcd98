"""Shift diagnostics: how far a validation cohort's representations are from the development one.

A locked biomarker that fails on a new trial may have failed (the biology differs, it was
overfitted) or the representations may have moved (another site, scanner or stain: a *site
effect*). Three views tell these apart:

- a **cohort-membership classifier**: a linear decoder trained to tell development from
  validation patients (nested, patient-level cross-validation of
  :func:`tario_clinical.decode`); an AUROC near 0.5 means the cohorts look alike, near 1 that
  they are easily told apart. Its DeLong interval treats the out-of-fold scores as independent
  (slightly narrow); it is a flag, not an estimate to report;
- **per-feature standardised differences** ``(mean_v - mean_d) / sqrt((sd_d^2 + sd_v^2) / 2)``,
  with each feature's contribution to the shift of the locked score's mean (``weight x mean
  difference / development scale``; they sum to the mean score shift);
- the **locked score's distribution** in both cohorts (quantiles, standardised difference,
  two-sample Kolmogorov-Smirnov test).

Without the development representations, the standardised differences use the feature means and
SDs stored in the locked artefact and the score comparison its 101 development percentiles; the
membership classifier needs the representations themselves.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import AnalysisError, SchemaError
from ._common import (
    align_features,
    as_matrix,
    check_level,
    html_table,
    json_safe,
    patient_means,
    records,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes

__all__ = ["ShiftResult", "shift_diagnostics", "MEMBERSHIP_FLAG", "SMD_FLAG"]

logger = logging.getLogger(__name__)

#: membership AUROC lower bound above which the cohorts are flagged as distinguishable
MEMBERSHIP_FLAG = 0.6
#: |standardised difference| counted as a shifted feature (the usual balance threshold)
SMD_FLAG = 0.1
_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True, eq=False)
class ShiftResult:
    """Result of :func:`shift_diagnostics`.

    Attributes
    ----------
    membership : DataFrame or None
        One row: ``auroc, low, high, se, method, n_development, n_validation, n_features``
        of the cross-validated cohort-membership classifier (None without development
        representations or with too few patients; the reason is in ``notes``).
    feature_differences : DataFrame
        One row per feature: ``feature, mean_development, sd_development, mean_validation,
        sd_validation, smd, abs_smd`` and, with a locked biomarker, ``weight`` (per development
        SD) and ``score_contribution``; largest ``abs_smd`` first.
    feature_summary : DataFrame
        ``metric, value``: number of features, median and maximum ``|smd|``, fraction above
        0.1 and 0.25, the mean score shift.
    score_distribution : DataFrame or None
        ``cohort, n, mean, sd, p05, p25, p50, p75, p95, basis`` of the locked score.
    score_test : DataFrame or None
        ``test, statistic, p_value``: Kolmogorov-Smirnov (raw development scores only) and the
        standardised difference of the score.
    flags : dict
        ``representations_distinguishable`` (membership lower bound > 0.6),
        ``features_shifted`` (median ``|smd|`` > 0.1), ``score_shifted`` (KS p < 0.05, or
        ``|smd|`` of the score > 0.25 from percentiles).
    notes : tuple of str
    params : dict
    """

    membership: pd.DataFrame | None
    feature_differences: pd.DataFrame
    feature_summary: pd.DataFrame
    score_distribution: pd.DataFrame | None
    score_test: pd.DataFrame | None
    flags: dict[str, bool | None]
    notes: tuple[str, ...]
    params: dict[str, Any]
    cutoffs: tuple[float, ...] = ()
    _scores: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def summary(self) -> pd.DataFrame:
        """Headline numbers: ``metric, estimate, low, high, p_value``."""
        rows = []
        if self.membership is not None:
            r = self.membership.iloc[0]
            rows.append(("membership_auroc", r["auroc"], r["low"], r["high"], np.nan))
        fs = self.feature_summary.set_index("metric")["value"]
        for k in ("median_abs_smd", "max_abs_smd", "fraction_abs_smd_gt_0.1", "mean_score_shift"):
            if k in fs.index:
                rows.append((k, fs[k], np.nan, np.nan, np.nan))
        if self.score_test is not None:
            for r in self.score_test.itertuples():
                rows.append((f"score_{r.test}", r.statistic, np.nan, np.nan, r.p_value))
        return pd.DataFrame(rows, columns=["metric", "estimate", "low", "high", "p_value"])

    def to_dict(self) -> dict[str, Any]:
        """Every number as JSON-safe Python (no patient ids)."""
        return json_safe(
            {
                "membership": records(self.membership),
                "feature_summary": records(self.feature_summary),
                "top_features": records(self.feature_differences.head(20)),
                "score_distribution": records(self.score_distribution),
                "score_test": records(self.score_test),
                "flags": self.flags,
                "notes": list(self.notes),
                "params": self.params,
            }
        )

    def plot_score_distribution(self, ax: Axes | None = None) -> Axes:
        """Empirical CDFs of the locked score in both cohorts, with the locked cut-offs."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        for (name, values), style in zip(self._scores.items(), ("-", "--"), strict=False):
            v = np.sort(np.asarray(values, dtype=float))
            if name.endswith("(percentiles)"):
                ax.plot(v, np.linspace(0, 1, v.size), ls=style, label=name)
            else:
                ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", ls=style, label=name)
        for c in self.cutoffs:
            ax.axvline(c, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("locked score (log-odds)")
        ax.set_ylabel("cumulative fraction of patients")
        ax.set_title("Locked score: development vs validation")
        ax.legend(fontsize=7, loc="lower right")
        return ax

    def plot_feature_differences(self, ax: Axes | None = None, *, bins: int = 40) -> Axes:
        """Histogram of the per-feature standardised differences (validation - development)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        smd = self.feature_differences["smd"].dropna().to_numpy()
        ax.hist(smd, bins=bins, color="#0072B2", alpha=0.8)
        for x in (-SMD_FLAG, SMD_FLAG):
            ax.axvline(x, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("standardised difference per feature")
        ax.set_ylabel("features")
        ax.set_title(f"Feature shift ({smd.size} features)")
        return ax

    def _repr_html_(self) -> str:
        flags = ", ".join(f"{k}: {v}" for k, v in self.flags.items())
        return (
            f"<p><b>Shift diagnostics</b> — {html.escape(flags)}</p>"
            + html_table(self.summary(), "Shift diagnostics")
            + html_table(self.score_distribution, "Locked score distribution")
            + html_table(self.feature_differences.head(10), "Most shifted features")
            + "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        )


def _patient_matrix(reps: Any, features: Any, what: str) -> tuple[np.ndarray, np.ndarray, int]:
    m = as_matrix(reps, what=what)
    X = align_features(m, features, what=what, context="compared").astype(np.float64)
    ok = np.isfinite(X).all(axis=1)
    ids, P = patient_means(X[ok], m.patient_ids[ok])
    return ids, P, int((~ok).sum())


def _membership(
    Xd: np.ndarray, Xv: np.ndarray, features: Any, *, n_splits: int, seed: int, level: float
) -> tuple[pd.DataFrame | None, str | None]:
    if min(len(Xd), len(Xv)) < 2 * n_splits:
        return None, (
            f"membership classifier not run: {len(Xd)} development and {len(Xv)} validation "
            f"patients (needs at least {2 * n_splits} in each for {n_splits}-fold CV)"
        )
    from ..decode import decode

    ids = [f"D{i}" for i in range(len(Xd))] + [f"V{i}" for i in range(len(Xv))]
    frame = pd.DataFrame(np.vstack([Xd, Xv]), index=ids, columns=[str(f) for f in features])
    labels = pd.DataFrame({"patient_id": ids, "in_validation": [0] * len(Xd) + [1] * len(Xv)})
    res = decode(
        frame,
        labels,
        targets=["in_validation"],
        n_splits=n_splits,
        n_repeats=1,
        ci_method="delong",
        p_method="delong",
        level=level,
        seed=seed,
    )
    s = res.summary().iloc[0]
    return (
        pd.DataFrame(
            [
                {
                    "auroc": float(s["auroc"]),
                    "low": float(s["low"]),
                    "high": float(s["high"]),
                    "se": float(s["se"]),
                    "method": (
                        f"L2 logistic decoder, {n_splits}-fold patient-level nested CV; DeLong "
                        "interval on out-of-fold scores"
                    ),
                    "n_development": len(Xd),
                    "n_validation": len(Xv),
                    "n_features": len(features),
                }
            ]
        ),
        None,
    )


def shift_diagnostics(
    development: Any,
    validation: Any,
    *,
    locked: Any = None,
    features: Any = None,
    n_splits: int = 5,
    level: float = 0.95,
    seed: int = 0,
) -> ShiftResult:
    """How far the validation representations are from the development ones.

    Parameters
    ----------
    development : AnnData, DataFrame or None
        Development representations (patients or slides; slides are averaged per patient).
        None: use the summaries stored in ``locked`` (no membership classifier).
    validation : AnnData or DataFrame
        Validation representations.
    locked : LockedBiomarker, optional
        Adds the locked score's distribution and each feature's contribution to its shift;
        its features are the ones compared.
    features : sequence of str, optional
        Features to compare (default: the locked biomarker's, else those both cohorts have).
    n_splits : int, default 5
        Folds of the membership classifier.
    level : float, default 0.95
    seed : int, default 0
        Seeds the membership classifier's folds.

    Returns
    -------
    ShiftResult

    Raises
    ------
    SchemaError
        Missing features (named), no shared features, no development data at all.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> d = pd.DataFrame(rng.normal(size=(60, 5)), columns=list("abcde"))
    >>> v = pd.DataFrame(rng.normal(1.0, 1.0, size=(60, 5)), columns=list("abcde"))
    >>> r = shift_diagnostics(d, v)
    >>> bool(r.membership["auroc"].iloc[0] > 0.8), bool(r.flags["features_shifted"])
    (True, True)
    """
    level = check_level(level)
    if not isinstance(n_splits, int | np.integer) or n_splits < 2:
        raise SchemaError(f"n_splits must be an integer >= 2; got {n_splits!r}")
    notes: list[str] = []
    mv = as_matrix(validation, what="validation representations")
    if features is None:
        if locked is not None:
            features = list(locked.feature_names)
        elif development is not None:
            md = as_matrix(development, what="development representations")
            features = [f for f in md.feature_names if f in set(mv.feature_names)]
        else:
            raise SchemaError("shift_diagnostics needs development representations or locked=")
    features = [str(f) for f in features]
    if not features:
        raise SchemaError("development and validation representations share no feature names")
    _, Xv, bad_v = _patient_matrix(validation, features, "validation representations")
    if bad_v:
        notes.append(f"{bad_v} validation rows with non-finite values left out")
    Xd = None
    if development is not None:
        _, Xd, bad_d = _patient_matrix(development, features, "development representations")
        if bad_d:
            notes.append(f"{bad_d} development rows with non-finite values left out")
        mean_d = Xd.mean(axis=0)
        sd_d = Xd.std(axis=0, ddof=1) if len(Xd) > 1 else np.zeros(len(features))
        basis = "development representations"
    elif locked is not None:
        dev = locked.document["development"]
        full_mean = np.asarray(dev["feature_mean"]["values"], dtype=float)
        full_sd = np.asarray(dev["feature_sd"]["values"], dtype=float)
        pos = pd.Index(locked.feature_names).get_indexer(features)
        if (pos < 0).any():
            raise SchemaError("features must be among the locked biomarker's features")
        mean_d, sd_d = full_mean[pos], full_sd[pos]
        basis = "feature means and SDs stored in the locked artefact"
        notes.append(
            "membership classifier not run: it needs the development representations (development=)"
        )
    else:
        raise SchemaError("shift_diagnostics needs development representations or locked=")
    mean_v = Xv.mean(axis=0)
    sd_v = Xv.std(axis=0, ddof=1) if len(Xv) > 1 else np.zeros(len(features))
    pooled = np.sqrt((sd_d**2 + sd_v**2) / 2.0)
    diff = mean_v - mean_d
    with np.errstate(divide="ignore", invalid="ignore"):
        smd = np.where(pooled > 0, diff / pooled, np.where(diff == 0, 0.0, np.nan))
    fd = pd.DataFrame(
        {
            "feature": features,
            "mean_development": mean_d,
            "sd_development": sd_d,
            "mean_validation": mean_v,
            "sd_validation": sd_v,
            "smd": smd,
            "abs_smd": np.abs(smd),
        }
    )
    score_shift = np.nan
    if locked is not None:
        w = _standardised_weights(locked)
        pos = pd.Index(locked.feature_names).get_indexer(features)
        scale = np.asarray(locked.document["model"]["scaler_scale"]["values"], dtype=float)
        fd["weight"] = w[pos]
        fd["score_contribution"] = w[pos] * diff / scale[pos]
        score_shift = float(fd["score_contribution"].sum())
    fd = fd.sort_values("abs_smd", ascending=False, kind="mergesort").reset_index(drop=True)
    a = fd["abs_smd"].dropna()
    fsum = pd.DataFrame(
        [
            ("n_features", len(features)),
            ("median_abs_smd", float(a.median()) if len(a) else np.nan),
            ("max_abs_smd", float(a.max()) if len(a) else np.nan),
            ("fraction_abs_smd_gt_0.1", float((a > 0.1).mean()) if len(a) else np.nan),
            ("fraction_abs_smd_gt_0.25", float((a > 0.25).mean()) if len(a) else np.nan),
            ("mean_score_shift", score_shift),
        ],
        columns=["metric", "value"],
    )

    membership = None
    if Xd is not None:
        try:
            membership, why = _membership(
                Xd, Xv, features, n_splits=int(n_splits), seed=seed, level=level
            )
        except AnalysisError as err:
            membership, why = None, f"membership classifier not run: {err}"
        if why:
            notes.append(why)

    dist = test = None
    scores: dict[str, np.ndarray] = {}
    cut_values: tuple[float, ...] = ()
    if locked is not None:
        cut_values = tuple(float(c["score"]) for c in locked.document["cutoffs"])
        sv = _finite_scores(locked, validation)
        pct = np.linspace(0, 1, 101)
        if development is not None:
            sd_scores = _finite_scores(locked, development)
            scores["development"] = sd_scores
            dev_row = _dist_row("development", sd_scores, "development representations")
        else:
            sd_scores = None
            stored = locked.document["development"]["score_distribution"]
            perc = np.asarray(stored["percentiles"], dtype=float)
            scores["development (percentiles)"] = perc
            dev_row = {
                "cohort": "development",
                "n": int(stored["n"]),
                "mean": stored.get("mean"),
                "sd": stored.get("sd"),
                **{f"p{int(q * 100):02d}": float(np.interp(q, pct, perc)) for q in _QUANTILES},
                "basis": "percentiles stored in the locked artefact",
            }
        scores["validation"] = sv
        dist = pd.DataFrame([dev_row, _dist_row("validation", sv, "validation representations")])
        md_, sdd = float(dev_row["mean"]), float(dev_row["sd"] or np.nan)
        s_smd = (float(np.mean(sv)) - md_) / np.sqrt((sdd**2 + float(np.var(sv, ddof=1))) / 2)
        rows = [{"test": "smd", "statistic": s_smd, "p_value": np.nan}]
        if sd_scores is not None:
            from scipy import stats

            ks = stats.ks_2samp(sd_scores, sv)
            rows.insert(0, {"test": "ks", "statistic": ks.statistic, "p_value": ks.pvalue})
        test = pd.DataFrame(rows)

    flags: dict[str, bool | None] = {
        "representations_distinguishable": (
            None if membership is None else bool(membership["low"].iloc[0] > MEMBERSHIP_FLAG)
        ),
        "features_shifted": bool(
            fsum.set_index("metric").loc["median_abs_smd", "value"] > SMD_FLAG
        ),
        "score_shifted": None,
    }
    if test is not None:
        t = test.set_index("test")
        flags["score_shifted"] = (
            bool(t.loc["ks", "p_value"] < 0.05)
            if "ks" in t.index
            else bool(abs(t.loc["smd", "statistic"]) > 0.25)
        )
    if flags["representations_distinguishable"]:
        notes.append(
            "the cohorts' representations are easily told apart (membership AUROC lower bound "
            f"> {MEMBERSHIP_FLAG}): a site/scanner effect is likely; a drop in performance may "
            "be the shift rather than the biomarker"
        )
    return ShiftResult(
        membership=membership,
        feature_differences=fd,
        feature_summary=fsum,
        score_distribution=dist,
        score_test=test,
        flags=flags,
        notes=tuple(notes),
        params={
            "n_splits": int(n_splits),
            "level": level,
            "seed": int(seed),
            "development_basis": basis,
            "membership_flag": MEMBERSHIP_FLAG,
            "smd_flag": SMD_FLAG,
        },
        cutoffs=cut_values,
        _scores=scores,
    )


def _finite_scores(locked: Any, reps: Any) -> np.ndarray:
    rows = locked.score_rows(reps).dropna(subset=["score"])
    _, s = patient_means(rows["score"].to_numpy(), rows["patient_id"].to_numpy())
    return np.asarray(s, dtype=float)


def _dist_row(cohort: str, s: np.ndarray, basis: str) -> dict[str, Any]:
    return {
        "cohort": cohort,
        "n": int(s.size),
        "mean": float(np.mean(s)),
        "sd": float(np.std(s, ddof=1)) if s.size > 1 else np.nan,
        **{f"p{int(q * 100):02d}": float(np.quantile(s, q)) for q in _QUANTILES},
        "basis": basis,
    }


def _standardised_weights(locked: Any) -> np.ndarray:
    """The locked model's weight per development SD of each input feature."""
    m = locked.document["model"]
    coef = np.asarray(m["coef"]["values"], dtype=float)
    if m.get("pca_components") is not None:
        comps = np.asarray(m["pca_components"]["values"], dtype=float).reshape(
            m["pca_components"]["shape"]
        )
        return coef @ comps
    return coef
