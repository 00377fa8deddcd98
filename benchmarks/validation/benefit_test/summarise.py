"""Table of the benefit permutation-test study: rejection rates with Monte Carlo SEs.

Reads ``replicates*.csv`` in this folder (the study's output; ``--out`` files of split runs are
named ``replicates_<x>.csv``), checks that ``T`` reproduces the sibling studies' replicates, and
writes ``table.md`` and ``summary.csv``: per cell, scheme and metric the share of replicates with
``p <= alpha`` (alpha 0.05, 0.10, 0.20) +/- its binomial Monte Carlo SE, next to the jackknife
Wald and OOF model-based tests of the same replicates (from the sibling studies); and, from
``truth.csv``, ``coverage.csv``: the coverage of the benefit metrics' intervals.

    python benchmarks/validation/benefit_test/summarise.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
SIBLINGS = {
    "gauss": HERE.parent / "endpoints" / "replicates.csv",
    "simtrial": HERE.parent / "endpoints_simtrial" / "replicates.csv",
}
ALPHAS = (0.05, 0.10, 0.20)


def _rate(p_values: pd.Series, alpha: float) -> str:
    """Share of the (non-missing) p-values at or below ``alpha`` +/- its binomial MC SE."""
    x = p_values.dropna().astype(float)
    if x.empty:
        return "—"
    p = float((x <= alpha + 1e-12).mean())
    return f"{p:.3f} ± {np.sqrt(max(p * (1 - p), 1e-12) / x.size):.3f}"


def _role(metric: str) -> str:
    if metric.startswith("interaction"):
        return "interaction"
    if metric.endswith("high_vs_low"):
        return "high_vs_low"
    return metric


def load() -> pd.DataFrame:
    parts = [pd.read_csv(f) for f in sorted(HERE.glob("replicates*.csv"))]
    d = pd.concat(parts, ignore_index=True).drop_duplicates(["cell", "rep", "scheme", "metric"])
    sib = pd.concat([pd.read_csv(f) for f in SIBLINGS.values()], ignore_index=True)
    sib = sib[sib["cell"].str.startswith("ben_")][["cell", "rep", "metric", "T", "p_jack", "p_oof"]]
    m = d.merge(sib, on=["cell", "rep", "metric"], how="left", suffixes=("", "_sib"))
    have = m["T_sib"].notna()
    bad = have & ~np.isclose(m["T"], m["T_sib"], rtol=1e-5, atol=1e-5)
    if bad.any():
        raise SystemExit(f"T does not reproduce the sibling study in {int(bad.sum())} rows")
    return m


def coverage() -> pd.DataFrame | None:
    """Coverage of the sibling studies' jackknife (default) and OOF intervals of the benefit
    metrics, of the estimand: the mean over the cell's replicates of ``truth`` (``--truth``)."""
    path = HERE / "truth.csv"
    if not path.exists():
        return None
    t = pd.read_csv(path).drop_duplicates(["cell", "rep", "metric"])
    sib = pd.concat([pd.read_csv(f) for f in SIBLINGS.values()], ignore_index=True)
    cols = ["cell", "rep", "metric", "T", "jack_lo", "jack_hi", "oof_lo", "oof_hi"]
    d = t.merge(sib[cols], on=["cell", "rep", "metric"], suffixes=("", "_sib"))
    bad = ~np.isclose(d["T"], d["T_sib"], rtol=1e-5, atol=1e-5)
    if bad.any():
        raise SystemExit(
            f"truth pass: T does not reproduce the sibling study in {int(bad.sum())} rows"
        )
    rows = []
    for (cell, metric), g in d.groupby(["cell", "metric"], sort=False):
        theta = float(g["truth"].mean())
        row = {
            "cell": cell,
            "metric": metric,
            "replicates": len(g),
            "estimand": f"{theta:.3f} ± {g['truth'].std(ddof=1) / np.sqrt(len(g)):.3f}",
            "mean_T": round(float(g["T"].mean()), 3),
            "SD_T": round(float(g["T"].std(ddof=1)), 3),
        }
        for name in ("jack", "oof"):
            lo, hi = g[f"{name}_lo"].astype(float), g[f"{name}_hi"].astype(float)
            ok = lo.notna() & hi.notna()
            cov = ((lo <= theta) & (theta <= hi))[ok]
            if ok.any():
                p = float(cov.mean())
                row[f"cover_{name}"] = (
                    f"{p:.3f} ± {np.sqrt(max(p * (1 - p), 1e-12) / ok.sum()):.3f}"
                )
            else:
                row[f"cover_{name}"] = "—"
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["cell", "metric"], kind="mergesort")


def _ind(lo, hi, theta: float) -> np.ndarray:  # noqa: ANN001
    """Per-replicate coverage indicators of the finite intervals."""
    lo, hi = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    return ((lo <= theta) & (theta <= hi))[ok].astype(float)


def _fmt(ind: np.ndarray) -> str:
    """Coverage ± its binomial Monte Carlo SE."""
    if not ind.size:
        return "—"
    p = float(ind.mean())
    return f"{p:.3f} ± {np.sqrt(max(p * (1 - p), 1e-12) / ind.size):.3f}"


def _scale(metric: str):  # noqa: ANN202 - (g, g^-1) of the decoder's interval scale
    from tario_clinical.decode.benefit_metrics import metric_specs
    from tario_clinical.decode.endpoint_inference import inverse_transform, transform

    scale = {m.name: m.scale for m in (*metric_specs(True), *metric_specs(False))}[metric]
    return (
        lambda x: transform(np.asarray(x, dtype=float), scale),
        lambda x: inverse_transform(np.asarray(x, dtype=float), scale),
    )


def _jack_interval(reps: pd.Series, T: pd.Series, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Grouped-jackknife interval (G = 10, t_9, on the metric's scale) from the JSON re-runs."""
    g, gi = _scale(metric)
    vals = reps.map(lambda r: g(json.loads(r)))
    se = vals.map(lambda v: np.sqrt(0.9 * np.sum((v - v.mean()) ** 2))).to_numpy()
    q = stats.t.ppf(0.975, 9)
    return gi(g(T) - q * se), gi(g(T) + q * se)


def _rand_interval(perm: pd.Series, T: pd.Series, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The randomisation interval (the decoder's default for the benefit statistics):
    ``g^-1(g(T) -/+ t_{B-1} sd_b g(T_b))`` from the JSON permutation re-runs."""
    g, gi = _scale(metric)
    vals = perm.map(lambda r: g(json.loads(r))).map(lambda v: v[np.isfinite(v)])
    se = vals.map(lambda v: np.std(v, ddof=1)).to_numpy()
    q = vals.map(lambda v: stats.t.ppf(0.975, v.size - 1)).to_numpy()
    return gi(g(T) - q * se), gi(g(T) + q * se)


def default_coverage() -> pd.DataFrame | None:
    """Coverage of the decoder's default intervals (``ci_method="randomisation"``) of the
    estimands (``truth.csv``): the benefit statistics' randomisation interval formed from the
    committed ``arm``-scheme re-runs (``replicates*.csv``, B = 19; the decoder computes the
    same from the same seeds), the within-group effects' jackknife interval from the sibling
    studies; and, for the cells of the interval pass (``intervals*.csv``), the decoder's own
    ``low``/``high`` next to the all-jackknife interval from the same re-runs."""
    tpath = HERE / "truth.csv"
    if not tpath.exists():
        return None
    t = pd.read_csv(tpath).drop_duplicates(["cell", "rep", "metric"])
    theta = t.groupby(["cell", "metric"])["truth"].agg(["mean", "std", "size"])
    rows = []
    # the size/power pass's replicates (benefit statistics) + the siblings' (within-group)
    parts = [pd.read_csv(f) for f in sorted(HERE.glob("replicates*.csv"))]
    d = pd.concat(parts, ignore_index=True).drop_duplicates(["cell", "rep", "scheme", "metric"])
    d = d[d["scheme"] == "arm"]
    sib = pd.concat([pd.read_csv(f) for f in SIBLINGS.values()], ignore_index=True)
    sib = sib[sib["cell"].str.startswith("ben_")]
    iv_files = sorted(HERE.glob("intervals*.csv"))
    iv = (
        pd.concat([pd.read_csv(f) for f in iv_files], ignore_index=True).drop_duplicates(
            ["cell", "rep", "metric"]
        )
        if iv_files
        else pd.DataFrame(columns=["cell", "rep", "metric"])
    )
    iv_cells = set(iv.groupby("cell").size().loc[lambda s: s >= 20].index)
    for (cell, metric), (mu, sd, k) in theta.iterrows():
        row = {"cell": cell, "metric": metric, "estimand": f"{mu:.3f} ± {sd / np.sqrt(k):.3f}"}
        if cell in iv_cells:
            g = iv[(iv["cell"] == cell) & (iv["metric"] == metric)]
            lo_j, hi_j = _jack_interval(g["jack"], g["T"], metric)
            row.update(
                source="interval pass",
                replicates=len(g),
                default=_ind(g["low"], g["high"], mu),
                jackknife=_ind(lo_j, hi_j, mu),
            )
        else:
            g = d[(d["cell"] == cell) & (d["metric"] == metric)]
            if len(g):  # a benefit statistic: randomisation interval from the arm re-runs
                lo, hi = _rand_interval(g["perm"], g["T"], metric)
                js = sib[(sib["cell"] == cell) & (sib["metric"] == metric)]
                row.update(
                    source="size/power pass",
                    replicates=len(g),
                    default=_ind(lo, hi, mu),
                    jackknife=_ind(js["jack_lo"], js["jack_hi"], mu),
                )
            else:  # a within-group effect: the jackknife (the default for these)
                js = sib[(sib["cell"] == cell) & (sib["metric"] == metric)]
                if not len(js):
                    continue
                row.update(
                    source="sibling study",
                    replicates=len(js),
                    default=_ind(js["jack_lo"], js["jack_hi"], mu),
                    jackknife=_ind(js["jack_lo"], js["jack_hi"], mu),
                )
        if row["replicates"] >= 20:  # ben_planted_n200_g50's 3 size/power replicates: left out
            rows.append(row)
    out = pd.DataFrame(rows).sort_values(["cell", "metric"], kind="mergesort")
    # pooled over the cells: the benefit statistics (tested) and the within-group effects
    tested = out["metric"].map(lambda m: m.startswith(("c_for", "interaction")) or "_vs_" in m)
    out["role"] = np.where(tested, "benefit statistics", "within-group effects")
    pooled = [
        {
            "cell": "all cells",
            "metric": role,
            "source": "",
            "replicates": int(g["replicates"].sum()),
            "estimand": "",
            "default": np.concatenate(list(g["default"])),
            "jackknife": np.concatenate(list(g["jackknife"])),
        }
        for role, g in out.groupby("role", sort=True)
    ]
    out = pd.concat([out.drop(columns="role"), pd.DataFrame(pooled)], ignore_index=True)
    for col in ("default", "jackknife"):
        out[col] = out[col].map(_fmt)
    cols = ["cell", "metric", "source", "replicates", "estimand", "default", "jackknife"]
    return out[cols]


def interval_pass_size() -> pd.DataFrame | None:
    """Rejection at 0.05 of the decoder's test in the interval pass's cells (B = 19)."""
    files = sorted(HERE.glob("intervals*.csv"))
    if not files:
        return None
    iv = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    iv = iv.drop_duplicates(["cell", "rep", "metric"]).dropna(subset=["p"])
    rows = [
        {"cell": c, "metric": m, "replicates": len(g), "reject_0.05": _rate(g["p"], 0.05)}
        for (c, m), g in iv.groupby(["cell", "metric"], sort=True)
        if len(g) >= 20
    ]
    return pd.DataFrame(rows) if rows else None


def _md(df: pd.DataFrame) -> list[str]:
    """A DataFrame as markdown table lines."""
    return [
        "| " + " | ".join(df.columns) + " |",
        "|" + "---|" * len(df.columns),
        *("| " + " | ".join(str(v) for v in r) + " |" for r in df.itertuples(index=False)),
    ]


def main() -> None:
    m = load()
    m["role"] = m["metric"].map(_role)
    pooled = m[m["cell"].str.contains("_null_")].assign(cell="all null cells")
    pooled["metric"] = pooled["role"]
    rows = []
    for (cell, scheme, metric), g in pd.concat([m, pooled]).groupby(
        ["cell", "scheme", "metric"], sort=False
    ):
        row = {"cell": cell, "scheme": scheme, "metric": metric, "replicates": len(g)}
        for a in ALPHAS:
            row[f"perm_{a:.2f}"] = _rate(g["p_perm"], a)
        sib = g[g["T_sib"].notna()]
        row["jackknife_0.05"] = _rate(sib["p_jack"], 0.05)
        row["oof_0.05"] = _rate(sib["p_oof"], 0.05)
        row["mean_p"] = round(float(g["p_perm"].mean()), 3)
        row["seconds_per_scheme"] = round(float(g["seconds"].median()), 1)
        rows.append(row)
    s = pd.DataFrame(rows)
    tpath = HERE / "truth.csv"
    if tpath.exists():  # the estimand of each cell's metric (--truth), e.g. ~0 under the null
        t = pd.read_csv(tpath).drop_duplicates(["cell", "rep", "metric"])
        est = t.groupby(["cell", "metric"])["truth"].agg(
            lambda x: f"{x.mean():.3f} ± {x.std(ddof=1) / np.sqrt(len(x)):.3f}"
        )
        s.insert(4, "estimand", [est.get((c, m), "—") for c, m in zip(s["cell"], s["metric"])])
    s["_last"] = s["cell"] == "all null cells"
    s = s.sort_values(["_last", "cell", "metric", "scheme"], kind="mergesort").drop(columns="_last")
    s.to_csv(HERE / "summary.csv", index=False)
    lines = [
        "# Benefit test: rejection rates of the permutation test (B = 19) by scheme",
        "",
        "Share of replicates with p <= alpha ± binomial Monte Carlo SE. `ben_null_*`: no planted",
        "benefit (the size; exact size of a valid test: alpha); `ben_planted_*`: planted",
        "benefit (the power). `jackknife_0.05` / `oof_0.05`: the jackknife Wald and OOF",
        "model-based tests of the same replicates (sibling studies; — where not run there).",
        "",
        *_md(s),
    ]
    cov = coverage()
    if cov is not None:
        cov.to_csv(HERE / "coverage.csv", index=False)
        lines += [
            "",
            "## Coverage of the benefit metrics' intervals (sibling studies' replicates)",
            "",
            "Default interval (grouped jackknife of the whole cross-fitting, G = 10) and the OOF",
            "model-based one, of the estimand: the mean over replicates of the metric of the",
            "replicate's fold models on 4,000 fresh patients (`truth.csv`, `--truth`).",
            "",
            *_md(cov),
        ]
    dc = default_coverage()
    if dc is not None:
        dc.to_csv(HERE / "coverage_default.csv", index=False)
        lines += [
            "",
            '## Coverage of the decoder\'s default intervals (`ci_method="randomisation"`)',
            "",
            "Benefit statistics: `g^-1(g(T) -/+ t_{B-1} sd_b)` over the B = 19 arm",
            "re-randomisations (logit scale for C); within-group effects: the grouped jackknife",
            "(G = 10, t_9). `source`: the size/power pass's re-runs (the decoder forms the same",
            "interval from the same seeds), the sibling studies' jackknife, or the interval pass",
            "(`--ci`: the decoder's own `low`/`high`). `jackknife`: the all-jackknife interval",
            "(the sibling studies' replicates, a subset of the size/power pass's; the interval",
            "pass: the same replicates). Estimand: as above (`truth.csv`).",
            "",
            *_md(dc),
        ]
    ps = interval_pass_size()
    if ps is not None:
        lines += [
            "",
            "## The test in the interval pass's cells (B = 19; rejection at 0.05)",
            "",
            *_md(ps),
        ]
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
