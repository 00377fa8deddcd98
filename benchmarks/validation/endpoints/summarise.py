"""Summarise ``replicates.csv`` of the endpoints study into ``table.md`` and ``summary.csv``.

Coverage is of the estimand: the mean over the cell's replicates of ``truth`` (the metric of the
fitted fold models on infinitely many new patients, see ``study.py``); in null cells the exact
population value where one exists (AUROC and C 0.5, Pearson r 0, balanced accuracy 1 / K).
Monte Carlo standard errors: binomial for proportions, ``sd / sqrt(R)`` for means.

Interval methods (all from the CSVs):

* ``chance`` -- the default: ``jack`` made coherent with the exact two-sided permutation test
  of |T - null| (``replicates_chance.csv``; ``intervals.chance_coherent``) for the metrics with
  an exact null value (AUROC, C, correlations, balanced accuracy); ``jack`` for the others;
* ``jack`` -- grouped jackknife of the whole nested CV, G = 10, on the metric's
  scale, ``t_9`` (as recorded by the decoder);
* ``jack_int`` -- the same with the jackknife variance multiplied by ``(G - 2) / (2 (G - 1))``
  (recomputed from ``jack_reps``): the lead's correction of the interaction (second-order)
  component applied to the *whole* variance, i.e. the most a correction of that kind can shrink
  the interval (a lower bound on the corrected interval's width);
* ``oof`` -- textbook formulas on the OOF predictions (independence assumed).

``SE ratio`` is ``sqrt(mean jackknife variance) / SD(T)`` on the metric's scale (1 = the
jackknife estimates the statistic's variance without bias; > 1 conservative).

Usage::

    python benchmarks/validation/endpoints/summarise.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from tario_clinical.decode.endpoint_inference import inverse_transform, transform

HERE = Path(__file__).resolve().parent
G = 10
SHRINK = (G - 2) / (2 * (G - 1))
METHODS = {
    "chance": "jackknife G=10, null value decided by the exact test (default)",
    "jack": "jackknife G=10 (before the chance rule)",
    "jack_int": "jackknife x (G-2)/(2(G-1)) (bound)",
    "oof": "OOF formula",
}
#: metrics with a truth, per endpoint, in table order
COVERED = {
    "continuous": ["r2", "pearson_r"],
    "categorical": ["macro_auroc", "auroc[c0]", "auroc[c3]", "balanced_accuracy"],
    "survival": ["harrell_c", "uno_c"],
}
BENEFIT_TESTS = ["interaction_log_hr_per_sd", "log_hr_difference_high_vs_low", "c_for_benefit"]


def scale_of(metric: str) -> str:
    if re.match(
        r"(auroc|macro_auroc|balanced_accuracy|accuracy|harrell_c|uno_c|td_auc|c_for)", metric
    ):
        return "logit"
    if metric in ("pearson_r", "spearman_rho"):
        return "fisher"
    if metric == "r2":
        return "r2"
    if metric in ("rmse", "log_loss") or metric.startswith("oe_ratio"):
        return "log"
    if metric.startswith(("observed_risk", "predicted_risk")):
        return "logit"
    return "identity"


def null_value(metric: str) -> float | None:
    if re.match(r"(auroc|macro_auroc|harrell_c|uno_c|td_auc)", metric):
        return 0.5
    if metric in ("pearson_r", "spearman_rho"):
        return 0.0
    if metric == "balanced_accuracy":
        return 0.25
    return None


def _prop(x: pd.Series) -> tuple[float, float, int]:
    x = x.dropna().astype(float)
    n = int(x.size)
    if n == 0:
        return np.nan, np.nan, 0
    p = float(x.mean())
    return p, float(np.sqrt(max(p * (1 - p), 1e-12) / n)), n


def add_variants(d: pd.DataFrame) -> pd.DataFrame:
    """``jack_int`` interval and the jackknife variance on the metric's scale, from jack_reps."""
    lo, hi, var, chk = [], [], [], []
    q = stats.t.ppf(0.975, G - 1)
    for m, T, reps, jl in zip(d["metric"], d["T"], d["jack_reps"], d["jack_lo"], strict=True):
        sc = scale_of(m)
        g = transform(np.asarray(json.loads(reps), float), sc)
        if not np.all(np.isfinite(g)) or not np.isfinite(T):
            lo.append(np.nan), hi.append(np.nan), var.append(np.nan), chk.append(np.nan)
            continue
        v = (G - 1) / G * np.sum((g - g.mean()) ** 2)
        gt = float(transform(np.array([T]), sc)[0])
        s = np.sqrt(v * SHRINK)
        lo.append(float(inverse_transform(np.array([gt - q * s]), sc)[0]))
        hi.append(float(inverse_transform(np.array([gt + q * s]), sc)[0]))
        var.append(v)
        chk.append(float(inverse_transform(np.array([gt - q * np.sqrt(v)]), sc)[0]) - jl)
    d = d.assign(jack_int_lo=lo, jack_int_hi=hi, jack_var=var, jack_check=chk)
    bad = np.nanmax(np.abs(d["jack_check"].to_numpy(float))) if len(d) else 0.0
    assert not np.isfinite(bad) or bad < 1e-4, (
        f"jackknife replicates (8 digits) do not give jack_lo ({bad})"
    )
    return d


EXACT_NULL = ("auroc", "macro_auroc", "balanced_accuracy", "harrell_c", "uno_c", "td_auc")


def _exact_null(metric: str) -> bool:
    return (
        metric in ("pearson_r", "spearman_rho") or metric.split("[")[0].split("@")[0] in EXACT_NULL
    )


def add_chance(d: pd.DataFrame) -> pd.DataFrame:
    """The default interval: the jackknife interval made coherent with the exact two-sided
    permutation test of |T - null| (``replicates_chance.csv``, B = 19) for the metrics with an
    exact null value; the jackknife interval itself for the others (R^2 ...). NaN where a
    metric with an exact null has no chance-pass replicate."""
    from tario_clinical.decode import intervals as ivl

    d = d.copy()
    d["p_chance"] = np.nan
    path = HERE / "replicates_chance.csv"
    if path.exists():
        c = pd.read_csv(path).drop_duplicates(["cell", "rep", "metric"])
        c = c.set_index(["cell", "rep", "metric"])
        key = pd.MultiIndex.from_arrays([d["cell"], d["rep"], d["metric"]])
        hit = key.isin(c.index)
        got = c.reindex(key[hit])
        assert np.allclose(got["T"].to_numpy(), d.loc[hit, "T"].to_numpy(), rtol=0, atol=1e-9)
        d.loc[hit, "p_chance"] = got["p_chance"].to_numpy()
    exact = d["metric"].map(_exact_null).to_numpy(bool)
    d["chance_lo"] = np.where(exact, np.nan, d["jack_lo"].astype(float))
    d["chance_hi"] = np.where(exact, np.nan, d["jack_hi"].astype(float))
    has = exact & d["p_chance"].notna().to_numpy()
    for nv in {null_value(m) for m in d.loc[has, "metric"]}:
        sel = has & (d["metric"].map(null_value) == nv).to_numpy()
        lo, hi, _ = ivl.chance_coherent(
            d.loc[sel, "T"].to_numpy(float),
            d.loc[sel, "jack_lo"].to_numpy(float),
            d.loc[sel, "jack_hi"].to_numpy(float),
            d.loc[sel, "p_chance"].to_numpy(float),
            0.95,
            nv,
        )
        d.loc[sel, "chance_lo"], d.loc[sel, "chance_hi"] = lo, hi
    return d


def coverage(d: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (cell, metric), g in d.groupby(["cell", "metric"], sort=False):
        if metric not in COVERED.get(g["endpoint"].iloc[0], []):
            continue
        tr = g["truth"].astype(float)
        nv = null_value(metric)
        exact = "_null_" in cell and nv is not None
        theta = nv if exact else float(tr.mean())
        sc = scale_of(metric)
        gT = transform(g["T"].to_numpy(float), sc)
        row = {
            "cell": cell,
            "endpoint": g["endpoint"].iloc[0],
            "metric": metric,
            "reps": len(g),
            "estimand": theta,
            "estimand_mc_se": 0.0 if exact else float(tr.std(ddof=1) / np.sqrt(len(g))),
            "mean_truth": float(tr.mean()),
            "T_mean": float(g["T"].mean()),
            "T_sd": float(g["T"].std(ddof=1)),
            "se_ratio": float(np.sqrt(np.nanmean(g["jack_var"])) / np.std(gT, ddof=1))
            if len(g) > 2
            else np.nan,
        }
        for m in METHODS:
            lo, hi = g[f"{m}_lo"].astype(float), g[f"{m}_hi"].astype(float)
            ok = lo.notna() & hi.notna()
            cov = (lo <= theta) & (theta <= hi)
            if m == "chance" and exact:  # a null value excluded by the test is an open bound
                cov &= ~(g["p_chance"].astype(float) <= 0.05 + 1e-12)
            p, se, n = _prop(cov.where(ok))
            row[f"cov_{m}"], row[f"cov_{m}_mc"], row[f"n_{m}"] = p, se, n
            row[f"width_{m}"] = float((hi - lo)[ok].median()) if ok.any() else np.nan
            row[f"miss_low_{m}"] = float((hi[ok] < theta).mean()) if ok.any() else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def rejection(d: pd.DataFrame) -> pd.DataFrame:
    rows = []
    b = d[d["endpoint"] == "benefit"]
    q = stats.t
    for (cell, metric), g in b.groupby(["cell", "metric"], sort=False):
        if metric not in BENEFIT_TESTS:
            continue
        row = {"cell": cell, "metric": metric, "reps": len(g), "T_mean": float(g["T"].mean())}
        for t in ("jack", "oof"):
            p = g[f"p_{t}"].astype(float)
            row[f"rej_{t}"], row[f"rej_{t}_mc"], row[f"n_{t}"] = _prop((p <= 0.05).where(p.notna()))
        # the Wald test with the shrunken (bound) jackknife SE
        sc = scale_of(metric)
        nv = 0.5 if metric == "c_for_benefit" else 0.0
        sign = 1.0 if metric == "c_for_benefit" else -1.0  # log HR: benefit = negative
        z = (transform(g["T"].to_numpy(float), sc) - transform(np.array([nv]), sc)[0]) / np.sqrt(
            g["jack_var"].to_numpy(float) * SHRINK
        )
        pint = pd.Series(q.sf(sign * z, G - 1)).where(np.isfinite(z))
        row["rej_jack_int"], row["rej_jack_int_mc"], row["n_jack_int"] = _prop(
            (pint <= 0.05).where(pint.notna())
        )
        rows.append(row)
    return pd.DataFrame(rows)


def _fmt(p: float, se: float, n: int) -> str:
    return "—" if not n else f"{p:.3f} ± {se:.3f} ({n})"


def main() -> None:
    d = pd.read_csv(HERE / "replicates.csv", keep_default_na=False, na_values=[""])
    d = add_variants(d)
    d = add_chance(d)
    cov = coverage(d)
    rej = rejection(d)
    pd.concat([cov.assign(kind="coverage"), rej.assign(kind="rejection")]).to_csv(
        HERE / "summary.csv", index=False
    )
    secs = d.drop_duplicates(["cell", "rep"]).groupby("cell")["seconds"].median()
    lines = [
        "# Endpoint decoders: coverage of 95 % intervals and size/power of the benefit tests",
        "",
        "Generated by `summarise.py` from `replicates.csv` (`study.py`). Entries: estimate ±",
        "Monte Carlo SE (replicates). Coverage is of the estimand (mean over replicates of the",
        "fitted fold models' metric on infinitely many new patients; exact population value in",
        "null cells). `SE ratio` = sqrt(mean jackknife variance) / SD(T) on the interval's scale.",
        "`miss low` = share of intervals entirely below the estimand.",
        "",
        "## Coverage",
        "",
    ]
    head = ["cell", "metric", "reps", "estimand", "mean T", "SD(T)", "SE ratio"]
    head += [METHODS[m] for m in METHODS] + ["miss low (default)"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for _, r in cov.iterrows():
        est = f"{r['estimand']:.3f}" + (
            "" if r["estimand_mc_se"] == 0 else f" ± {r['estimand_mc_se']:.3f}"
        )
        cells_ = [
            r["cell"],
            r["metric"],
            str(int(r["reps"])),
            est,
            f"{r['T_mean']:.3f}",
            f"{r['T_sd']:.3f}",
            f"{r['se_ratio']:.2f}",
        ]
        cells_ += [
            _fmt(r[f"cov_{m}"], r[f"cov_{m}_mc"], int(r[f"n_{m}"]))
            + ("" if not r[f"n_{m}"] else f", width {r[f'width_{m}']:.3f}")
            for m in METHODS
        ]
        cells_.append(f"{r['miss_low_chance']:.3f}")
        lines.append("| " + " | ".join(cells_) + " |")
    lines += [
        "",
        "## Coverage pooled over the cells of an endpoint (signal and null cells together)",
        "",
    ]
    head = ["endpoint", "metric", "reps", "SE ratio (mean)"] + [METHODS[m] for m in METHODS]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for (ep, metric), g in cov.groupby(["endpoint", "metric"], sort=False):
        cells_ = [ep, metric, str(int(g["reps"].sum())), f"{g['se_ratio'].mean():.2f}"]
        for m in METHODS:
            n = int(g[f"n_{m}"].sum())
            p = float((g[f"cov_{m}"] * g[f"n_{m}"]).sum() / n) if n else np.nan
            cells_.append(_fmt(p, float(np.sqrt(max(p * (1 - p), 1e-12) / n)) if n else np.nan, n))
        lines.append("| " + " | ".join(cells_) + " |")
    lines += [
        "",
        "## Benefit analysis: rejection at 0.05 (one-sided, direction of benefit)",
        "",
        "Null cell (`ben_null_*`: prognostic signal, no planted benefit): the size; planted cell:",
        "the power. Jackknife: Wald test on the metric's scale with the jackknife SE and t_9",
        '(the decoder\'s `p_method="jackknife"`); OOF: model-based SE on the mean cross-fitted',
        'score (`p_method="oof"`; none for C-for-benefit).',
        "",
    ]
    head = [
        "cell",
        "metric",
        "reps",
        "mean T",
        "jackknife (default)",
        "jackknife x (G-2)/(2(G-1))",
        "OOF",
    ]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for _, r in rej.iterrows():
        lines.append(
            "| "
            + " | ".join(
                [
                    r["cell"],
                    r["metric"],
                    str(int(r["reps"])),
                    f"{r['T_mean']:.3f}",
                    _fmt(r["rej_jack"], r["rej_jack_mc"], int(r["n_jack"])),
                    _fmt(r["rej_jack_int"], r["rej_jack_int_mc"], int(r["n_jack_int"])),
                    _fmt(r["rej_oof"], r["rej_oof_mc"], int(r["n_oof"])),
                ]
            )
            + " |"
        )
    lines += ["", "## Median seconds per replicate (one worker, shared machine)", ""]
    lines += [f"- {c}: {s:.1f}" for c, s in secs.items()]
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
