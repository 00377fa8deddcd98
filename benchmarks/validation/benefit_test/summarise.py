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

from pathlib import Path

import numpy as np
import pandas as pd

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
    head = "| " + " | ".join(s.columns) + " |"
    lines = [
        "# Benefit test: rejection rates of the permutation test (B = 19) by scheme",
        "",
        "Share of replicates with p <= alpha ± binomial Monte Carlo SE. `ben_null_*`: no planted",
        "benefit (the size; exact size of a valid test: alpha); `ben_planted_*`: planted",
        "benefit (the power). `jackknife_0.05` / `oof_0.05`: the jackknife Wald and OOF",
        "model-based tests of the same replicates (sibling studies; — where not run there).",
        "",
        head,
        "|" + "---|" * len(s.columns),
    ]
    lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in s.itertuples(index=False)]
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
            "| " + " | ".join(cov.columns) + " |",
            "|" + "---|" * len(cov.columns),
        ]
        lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in cov.itertuples(index=False)]
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
