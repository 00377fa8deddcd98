"""Summarise ``replicates.csv`` of the biomarker_validation study into ``table.md`` and
``summary.csv``.

Coverage is of the truth conditional on the locked biomarker (see ``study.py``): the locked
score's AUROC and the HR of its locked cut-off in the validation cohort's population. Every
proportion carries a Monte Carlo SE clustered by development (the validation cohorts of one
development share its locked model, so they are not independent draws of the study):
``sd(per-development means) / sqrt(developments)``, never below the binomial SE.

Usage::

    python benchmarks/validation/biomarker_validation/summarise.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
TARGET_RANGE = (0.93, 0.97)
CELL_TEXT = {
    "noshift": "no site shift, development population",
    "noshift_pop": "no site shift, EGFR prevalence 0.30, 2:1 allocation",
    "shift05": "site/scanner shift 0.5 (offsets, gains, noise)",
    "shift10": "site/scanner shift 1.0",
}


def _prop(x: pd.Series, dev: pd.Series) -> tuple[float, float, int]:
    """Share, development-clustered Monte Carlo SE (at least binomial), count."""
    ok = x.notna()
    x, dev = x[ok].astype(float), dev[ok]
    n = int(x.size)
    if n == 0:
        return np.nan, np.nan, 0
    p = float(x.mean())
    binom = np.sqrt(p * (1 - p) / n)
    means = x.groupby(dev).mean()
    sizes = x.groupby(dev).size()
    k = means.size
    if k > 1:
        # ratio estimator's variance with unequal cluster sizes
        resid = (means - p) * sizes
        clus = float(np.sqrt((resid**2).sum() * k / (k - 1)) / sizes.sum())
    else:
        clus = np.nan
    return p, float(np.nanmax([binom, clus])) if p * (1 - p) > 0 else 0.0, n


def _mean_se(x: pd.Series, dev: pd.Series) -> tuple[float, float]:
    ok = x.notna()
    x, dev = x[ok].astype(float), dev[ok]
    m = x.groupby(dev).mean()
    return float(x.mean()), float(m.std(ddof=1) / np.sqrt(m.size)) if m.size > 1 else np.nan


def _fmt(p: float, se: float, n: int | None = None, digits: int = 3) -> str:
    if not np.isfinite(p):
        return "—"
    if se == 0 and p in (0.0, 1.0):  # a share of none or all: no spread to show
        return f"{p:.{digits}f} ({'none' if p == 0 else 'all'}{'' if n is None else f' of {n}'})"
    core = f"{p:.{digits}f} ± {se:.{digits}f}"
    return core if n is None else f"{core} ({n})"


def summarise(d: pd.DataFrame) -> pd.DataFrame:
    base = d[d["cell"] == "noshift"].set_index(["dev", "val"])
    rows = []
    for cell, g in d.groupby("cell", sort=False):
        dev = g["dev"]
        z = 1.959963984540054
        wald_lo, wald_hi = g["auroc"] - z * g["auroc_se"], g["auroc"] + z * g["auroc_se"]
        cov = {
            "auroc": (g["auroc_lo"] <= g["truth_auroc"]) & (g["truth_auroc"] <= g["auroc_hi"]),
            "auroc_wald": (wald_lo <= g["truth_auroc"]) & (g["truth_auroc"] <= wald_hi),
            "hr": ((g["hr_lo"] <= g["truth_hr"]) & (g["truth_hr"] <= g["hr_hi"])).where(
                g["hr"].notna()
            ),
            "slope": (g["cal_slope_lo"] <= g["truth_cal_slope"])
            & (g["truth_cal_slope"] <= g["cal_slope_hi"]),
            "intercept": (g["cal_intercept_lo"] <= g["truth_cal_intercept"])
            & (g["truth_cal_intercept"] <= g["cal_intercept_hi"]),
        }
        row: dict = {
            "cell": cell,
            "description": CELL_TEXT.get(cell, ""),
            "developments": int(dev.nunique()),
            "cohorts": len(g),
            "n_median": float(g["n"].median()),
            "n_pos_median": float(g["n_pos"].median()),
            "events_median": float(pd.to_numeric(g["events"]).median()),
            "dev_auroc_cv_mean": float(g.groupby("dev")["dev_auroc_cv"].first().mean()),
        }
        for k, c in cov.items():
            p, se, n = _prop(c, dev)
            row[f"cov_{k}"], row[f"cov_{k}_mc_se"], row[f"n_{k}"] = p, se, n
        for side, miss in (
            ("below", g["truth_auroc"] < g["auroc_lo"]),
            ("above", g["truth_auroc"] > g["auroc_hi"]),
            ("wald_below", g["truth_auroc"] < wald_lo),
            ("wald_above", g["truth_auroc"] > wald_hi),
        ):
            row[f"auroc_truth_{side}"] = float(miss.mean())
        row["auroc_truth_mean"] = float(g["truth_auroc"].mean())
        row["auroc_mean"] = float(g["auroc"].mean())
        row["auroc_bias"], row["auroc_bias_mc_se"] = _mean_se(g["auroc"] - g["truth_auroc"], dev)
        row["auroc_width_median"] = float((g["auroc_hi"] - g["auroc_lo"]).median())
        err = np.log(g["hr"]) - np.log(g["truth_hr"])
        row["hr_truth_geomean"] = float(np.exp(np.log(g["truth_hr"]).mean()))
        row["log_hr_bias"], row["log_hr_bias_mc_se"] = _mean_se(err, dev)
        row["log_hr_sd"] = float(err.std(ddof=1))
        row["log_hr_se_mean"] = float(((np.log(g["hr_hi"]) - np.log(g["hr_lo"])) / 3.919928).mean())
        row["truth_log_hr_mc_se_mean"] = float(g["truth_log_hr_mc_se"].mean())
        row["slope_truth_mean"] = float(g["truth_cal_slope"].mean())
        row["slope_truth_median"] = float(g["truth_cal_slope"].median())
        row["slope_mean"], row["slope_mean_mc_se"] = _mean_se(g["cal_slope"], dev)
        row["slope_median"] = float(g["cal_slope"].median())
        p, se, n = _prop(g["cal_slope"] < 1, dev)
        row["slope_below_1"], row["slope_below_1_mc_se"] = p, se
        p, se, n = _prop(g["truth_cal_slope"] < 1, dev)
        row["truth_slope_below_1"], row["truth_slope_below_1_mc_se"] = p, se
        # paired with the same patients without the shift (same development and index)
        key = pd.MultiIndex.from_frame(g[["dev", "val"]])
        ref = base.reindex(key)
        if cell.startswith("shift"):
            below = pd.Series(g["cal_slope"].to_numpy() < ref["cal_slope"].to_numpy(), g.index)
            p, se, n = _prop(below, dev)
            row["slope_below_paired"], row["slope_below_paired_mc_se"] = p, se
            ratio = np.log(g["cal_slope"].to_numpy() / ref["cal_slope"].to_numpy())
            ok = np.isfinite(ratio)
            row["slope_ratio_geomean"] = float(np.exp(np.mean(ratio[ok]))) if ok.any() else np.nan
            tb = pd.Series(
                g["truth_cal_slope"].to_numpy() < ref["truth_cal_slope"].to_numpy(), g.index
            )
            p, se, n = _prop(tb, dev)
            row["truth_slope_below_paired"], row["truth_slope_below_paired_mc_se"] = p, se
            row["truth_auroc_drop_mean"] = float(
                (ref["truth_auroc"].to_numpy() - g["truth_auroc"].to_numpy()).mean()
            )
        for flag in ("flag_distinguishable", "flag_features", "flag_score"):
            x = g[flag].map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0})
            p, se, n = _prop(x, dev)
            row[flag], row[f"{flag}_mc_se"] = p, se
        anyflag = (
            g[["flag_distinguishable", "flag_features"]]
            .map(lambda v: v in (True, "True"))
            .any(axis=1)
            .astype(float)
        )
        p, se, n = _prop(anyflag, dev)
        row["flag_membership_or_features"], row["flag_membership_or_features_mc_se"] = p, se
        row["membership_auroc_mean"] = float(g["membership_auroc"].mean())
        row["median_abs_smd_mean"] = float(g["median_abs_smd"].mean())
        row["seconds_mean"] = float(g["seconds"].mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _ok(p: float, cell: str) -> str:
    """Whether a no-shift cell's coverage is in the target range (not required with a shift)."""
    if cell.startswith("shift"):
        return "(not required)"
    lo, hi = TARGET_RANGE
    return "yes" if lo <= p <= hi else "**no**"


def table(s: pd.DataFrame) -> str:
    L = [
        "# Locked biomarker, external validation: coverage and shift detection",
        "",
        "Generated by `summarise.py` from `replicates.csv` (`study.py`). Entries: estimate ± "
        "Monte Carlo SE (clustered by development; replicates in brackets). Each development "
        "simulates a trial (300 patients, 40 genes, a new biology), decodes EGFR and locks the "
        "final decoder at the development median of its score; the validation cohorts (300 "
        "patients each) are independent trials from the same biology. Truth = what the locked "
        "score and cut-off achieve in the validation cohort's population (AUROC: "
        "`locked_truth` on 200,000 fresh patients; HR: the same Cox fit on a 200,000-patient "
        "trial of that population; 50,000 for each shifted cohort, whose site realisation is "
        "its own).",
        "",
        "## Coverage of the 95 % intervals (target 0.93–0.97)",
        "",
        "| cell | developments × cohorts | n / positives / events (median) | truth AUROC (mean) "
        "| AUROC, DeLong SE, logit-scale Wald (the library's) | in range | truth HR (geo. mean) "
        "| HR by the locked cut-off, Cox Wald | in range | calibration slope "
        "| calibration intercept (sandwich) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s.itertuples():
        L.append(
            f"| {r.cell}: {r.description} | {r.developments} × {r.cohorts // r.developments} "
            f"= {r.cohorts} | {r.n_median:.0f} / {r.n_pos_median:.0f} / {r.events_median:.0f} "
            f"| {r.auroc_truth_mean:.3f} | {_fmt(r.cov_auroc, r.cov_auroc_mc_se, r.n_auroc)} "
            f"| {_ok(r.cov_auroc, r.cell)} | {r.hr_truth_geomean:.3f} "
            f"| {_fmt(r.cov_hr, r.cov_hr_mc_se, r.n_hr)} | {_ok(r.cov_hr, r.cell)} "
            f"| {_fmt(r.cov_slope, r.cov_slope_mc_se, r.n_slope)} "
            f"| {_fmt(r.cov_intercept, r.cov_intercept_mc_se, r.n_intercept)} |"
        )
    L += [
        "",
        "The AUROC interval's misses, by side (truth below the lower bound / above the upper "
        "bound), for the library's logit-scale interval and for the Wald interval on the AUROC "
        "scale (`AUROC ± 1.96 SE`, the same DeLong SE; what the library reported before this "
        "study):",
        "",
        "| cell | logit scale: coverage | below / above | AUROC scale: coverage | below / above |",
        "|---|---|---|---|---|",
    ]
    for r in s.itertuples():
        L.append(
            f"| {r.cell} | {_fmt(r.cov_auroc, r.cov_auroc_mc_se, r.n_auroc)} "
            f"| {r.auroc_truth_below:.3f} / {r.auroc_truth_above:.3f} "
            f"| {_fmt(r.cov_auroc_wald, r.cov_auroc_wald_mc_se, r.n_auroc_wald)} "
            f"| {r.auroc_truth_wald_below:.3f} / {r.auroc_truth_wald_above:.3f} |"
        )
    L += [
        "",
        "Estimation error against the truth (mean ± MC SE): AUROC bias; log-HR bias, empirical "
        "SD of the log-HR error vs the mean model-based SE.",
        "",
        "| cell | AUROC bias | AUROC interval width (median) | log-HR bias | SD(log-HR error) "
        "| mean SE(log HR) | truth's own MC SE (log HR) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in s.itertuples():
        L.append(
            f"| {r.cell} | {_fmt(r.auroc_bias, r.auroc_bias_mc_se, digits=4)} "
            f"| {r.auroc_width_median:.3f} | {_fmt(r.log_hr_bias, r.log_hr_bias_mc_se, digits=4)} "
            f"| {r.log_hr_sd:.3f} | {r.log_hr_se_mean:.3f} | {r.truth_log_hr_mc_se_mean:.4f} |"
        )
    L += [
        "",
        "## Shift diagnostics and calibration under a planted site/scanner shift",
        "",
        "Flags of `shift_diagnostics` (development representations given): *membership* = the "
        "cross-validated cohort-membership classifier's AUROC lower bound > 0.6; *features* = "
        "median |standardised difference| > 0.1; *score* = two-sample KS test of the locked "
        "score, p < 0.05 (a change of case mix moves it too). In the no-shift cells a flag is a "
        "false alarm; in the shift cells its rate is the detection rate. The planted shift "
        "adds per-gene noise and gains to the representation, so the locked score is "
        "over-dispersed for what it knows: the planted direction of the calibration slope is "
        "*down* (below 1, and below the slope of the same patients without the shift).",
        "",
        "| cell | membership AUROC (mean) | flag: membership | flag: features | flag: "
        "membership or features | flag: score (KS) | median abs SMD (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in s.itertuples():
        L.append(
            f"| {r.cell} | {r.membership_auroc_mean:.3f} "
            f"| {_fmt(r.flag_distinguishable, r.flag_distinguishable_mc_se)} "
            f"| {_fmt(r.flag_features, r.flag_features_mc_se)} "
            f"| {_fmt(r.flag_membership_or_features, r.flag_membership_or_features_mc_se)} "
            f"| {_fmt(r.flag_score, r.flag_score_mc_se)} | {r.median_abs_smd_mean:.3f} |"
        )
    L += [
        "",
        "| cell | calibration slope: mean (median) | share < 1 | truth slope: mean (median) "
        "| truth share < 1 | share below the same patients' no-shift slope | truth below "
        "the no-shift truth | slope ratio to no shift (geo. mean) | truth AUROC lost to the "
        "shift |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s.itertuples():
        paired = getattr(r, "slope_below_paired", np.nan)
        has = isinstance(paired, float) and np.isfinite(paired)
        L.append(
            f"| {r.cell} | {_fmt(r.slope_mean, r.slope_mean_mc_se)} ({r.slope_median:.3f}) "
            f"| {_fmt(r.slope_below_1, r.slope_below_1_mc_se)} "
            f"| {r.slope_truth_mean:.3f} ({r.slope_truth_median:.3f}) "
            f"| {_fmt(r.truth_slope_below_1, r.truth_slope_below_1_mc_se)} "
            + (
                f"| {_fmt(r.slope_below_paired, r.slope_below_paired_mc_se)} "
                f"| {_fmt(r.truth_slope_below_paired, r.truth_slope_below_paired_mc_se)} "
                f"| {r.slope_ratio_geomean:.3f} | {r.truth_auroc_drop_mean:.3f} |"
                if has
                else "| — | — | — | — |"
            )
        )
    L.append("")
    return "\n".join(L)


def main() -> None:
    d = pd.read_csv(HERE / "replicates.csv", keep_default_na=False, na_values=[""])
    s = summarise(d)
    s.to_csv(HERE / "summary.csv", index=False, float_format="%.6g")
    (HERE / "table.md").write_text(table(s), encoding="utf-8")
    print(table(s))


if __name__ == "__main__":
    main()
