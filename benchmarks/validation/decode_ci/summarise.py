"""Summarise ``replicates.csv`` of the decode_ci study into ``table.md`` and ``summary.csv``.

Coverage is of the estimand: the mean over the cell's replicates of the exact pooled AUROC of
the decoders fitted in each replicate (``truth_cond``; 0.5 exactly in null cells). Monte Carlo
standard errors are binomial for proportions and ``sd / sqrt(R)`` for the estimand.

Usage::

    python benchmarks/validation/decode_ci/summarise.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
METHODS = {
    "delong": "DeLong on OOF scores",
    "nb": "Nadeau-Bengio corrected",
    "chance": "jackknife G=10, AUROC scale, t9, 0.5 decided by the exact test (default)",
    "jack": "jackknife G=10, logit, t9 (default until 2026-12-01)",
    "jack_plain": "jackknife G=10, AUROC scale, t9",
    "boot": "bootstrap B=20, logit, z",
    "boot_t": "bootstrap B=20, logit, t19",
    "j2": "second-order-corrected jackknife G=10 (+45 pairs), logit, t9",
    "jfix": "jackknife G=10 with each fold's C fixed at the full-data choice, logit, t9",
    "ncv": "nested CV (Bates, Hastie & Tibshirani 2023, for the pooled AUROC), logit, z",
}


def _prop(x: pd.Series) -> tuple[float, float, int]:
    x = x.dropna().astype(float)
    n = int(x.size)
    if n == 0:
        return np.nan, np.nan, 0
    p = float(x.mean())
    return p, float(np.sqrt(max(p * (1 - p), 1e-12) / n)), n


def summarise(d: pd.DataFrame, key: str) -> pd.DataFrame:
    rows = []
    for name, g in d.groupby(key, sort=False):
        row = {
            key: name,
            "replicates": len(g),
            "n_pos_median": float(g["n_pos"].median()),
            "T_mean": g["T"].mean(),
            "estimand": g["theta"].mean(),
            "estimand_mc_se": g["truth_cond"].std(ddof=1) / np.sqrt(len(g))
            if len(g) > 1
            else np.nan,
            "T_sd": g["T"].std(ddof=1),
        }
        for m in METHODS:
            lo, hi = g[f"{m}_lo"], g[f"{m}_hi"]
            ok = lo.notna() & hi.notna()
            cov = (lo <= g["theta"]) & (g["theta"] <= hi)
            if m == "chance":  # 0.5 excluded by the test is an open bound
                cov &= ~((g["theta"] == 0.5) & (g["p_chance"] <= 0.05 + 1e-12))
            cov = cov.where(ok)
            p, se, n = _prop(cov)
            row[f"cov_{m}"] = p
            row[f"cov_{m}_mc"] = se
            row[f"n_{m}"] = n
            row[f"width_{m}"] = float((hi - lo)[ok].median()) if ok.any() else np.nan
        for t in ("perm", "jack", "delong"):
            p, se, n = _prop((g[f"p_{t}"] <= 0.05).where(g[f"p_{t}"].notna()))
            row[f"rej_{t}"] = p
            row[f"rej_{t}_mc"] = se
            row[f"n_rej_{t}"] = n
        rows.append(row)
    return pd.DataFrame(rows)


def _logit(p: pd.Series | np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _pass_ratios(g: pd.DataFrame, m: str, q: float, qm: float | None = None) -> str:
    """``reps | plain ratio | method ratio`` on the replicates where the ``m`` pass ran.

    ``q``: the default jackknife's quantile (t_9); ``qm``: the method's (default ``q``).
    """
    h = g[g[f"{m}_lo"].notna()]
    if len(h) <= 2:
        return "— | — | —"
    var_h = _logit(h["T"]).var(ddof=1)
    v1 = ((_logit(h["jack_hi"]) - _logit(h["jack_lo"])) / (2 * q)) ** 2
    vm = ((_logit(h[f"{m}_hi"]) - _logit(h[f"{m}_lo"])) / (2 * (qm or q))) ** 2
    return f"{len(h)} | {v1.mean() / var_h:.2f} | {vm.mean() / var_h:.2f}"


def _variance_ratios(d: pd.DataFrame) -> list[str]:
    """Mean jackknife variance / sampling variance of logit T, per cell (from the intervals)."""
    from scipy import stats

    q = stats.t.ppf(0.975, 9)
    out = [
        "## Why the jackknife is conservative: its variance over the sampling variance",
        "",
        "Mean over replicates of the interval's variance on the logit scale (recovered from the",
        "interval: ((logit hi - logit lo) / (2 t_9))^2) divided by the variance of logit T across",
        "replicates. 1 is unbiased; the delete-a-group jackknife counts a k-th order interaction",
        "term k (G - 1) / (G - k) times (2.25 for pairs at G = 10). The corrected jackknife only",
        "where the j2 pass ran; the fixed-C jackknife (C of every outer fold fixed at the value",
        "the full-data run chose, so that the inner-CV choice of C cannot jump) where the jfix",
        "pass ran; the nested-CV (NCV) interval's (z quantile) where the ncv pass ran.",
        "",
        "| cell | reps | plain jackknife | reps (j2) | plain on those | corrected (j2) "
        "| reps (jfix) | plain on those | fixed C (jfix) | reps (ncv) | plain on those | NCV |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, g in d.groupby("cell", sort=False):
        var_t = _logit(g["T"]).var(ddof=1)
        v1 = ((_logit(g["jack_hi"]) - _logit(g["jack_lo"])) / (2 * q)) ** 2
        j2, jf = _pass_ratios(g, "j2", q), _pass_ratios(g, "jfix", q)
        nc = _pass_ratios(g, "ncv", q, float(stats.norm.ppf(0.975)))
        out.append(f"| {cell} | {len(g)} | {v1.mean() / var_t:.2f} | {j2} | {jf} | {nc} |")
    return out + [""]


def _fmt(p: float, se: float, n: int) -> str:
    return "—" if not n else f"{p:.3f} ± {se:.3f} ({n})"


def _merge_pass(d: pd.DataFrame, name: str, cols: tuple, *, check_jack: bool = False):  # noqa: ANN202
    """Columns ``cols`` of a side pass (``name``, same cells and replicates) into ``d``."""
    for c in cols:
        if c not in d:
            d[c] = np.nan
    path = HERE / name
    if not path.exists():
        return d
    j = pd.read_csv(path).set_index(["cell", "rep"])
    d = d.set_index(["cell", "rep"])
    both = d.index.intersection(j.index)
    assert np.allclose(d.loc[both, "T"], j.loc[both, "T"], rtol=0, atol=1e-12), name
    if check_jack:
        assert np.allclose(d.loc[both, "jack_lo"], j.loc[both, "jack_lo"], rtol=0, atol=1e-9)
    for c in cols:
        d.loc[both, c] = j.loc[both, c]
    return d.reset_index()


def _ncv_section() -> list[str]:
    """Coverage of the NCV interval on all replicates of its pass (it may run more than the
    main pass): estimand = mean ``truth_cond`` over the pass's replicates of the cell."""
    path = HERE / "replicates_ncv.csv"
    if not path.exists():
        return []
    d = pd.read_csv(path)
    grp = {
        "null": "null",
        "few10": "few_positives",
        "few20": "few_positives",
        "few45": "few_positives",
        "mod": "moderate",
        "strong": "strong",
    }
    d["group"] = [grp[c.split("_")[0]] for c in d["cell"]]
    d["theta"] = d.groupby("cell")["truth_cond"].transform("mean")
    d["cover"] = (d["ncv_lo"] <= d["theta"]) & (d["theta"] <= d["ncv_hi"])
    d["lt"] = _logit(d["T"])
    d["v"] = ((_logit(d["ncv_hi"]) - _logit(d["ncv_lo"])) / (2 * 1.959964)) ** 2
    out = [
        "## Nested-CV (NCV) interval, every replicate of its pass",
        "",
        "`study.py --ncv`: Bates, Hastie & Tibshirani (2023) nested CV adapted to the pooled",
        "AUROC (see `NCV_FIELDS` in `study.py`), logit scale, z quantile. Estimand: mean",
        "`truth_cond` over the pass's replicates of the cell. Variance ratio: mean interval",
        "variance of logit T over the variance of logit T across replicates (1 is unbiased).",
        "",
        "| cell | group | reps | estimand | mean T | coverage ± MC SE | median width "
        "| variance ratio | zero-width (SE 0) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ("cell", "group"):
        for name, g in d.groupby(key, sort=False):
            p, se, n = _prop(g["cover"])
            ratio = g["v"].mean() / g["lt"].var(ddof=1) if key == "cell" else np.nan
            out.append(
                f"| {name if key == 'cell' else '**all**'} | {g['group'].iloc[0]} | {n} "
                f"| {g['theta'].mean():.3f} | {g['T'].mean():.3f} | {p:.3f} ± {se:.3f} "
                f"| {(g['ncv_hi'] - g['ncv_lo']).median():.2f} "
                f"| {'—' if np.isnan(ratio) else f'{ratio:.2f}'} "
                f"| {int((g['ncv_se'] <= 0).sum())} |"
            )
    return out + [""]


def _with_chance(d: pd.DataFrame) -> pd.DataFrame:
    """The default interval where the chance pass ran: the AUROC-scale jackknife interval
    (``jack_plain``, clipped to [0, 1]) made coherent with the two-sided permutation test of
    |T - 0.5| (B = 19, same permutations as ``p_perm``) by ``intervals.chance_coherent``."""
    from tario_clinical.decode import intervals as ivl

    d = _merge_pass(d, "replicates_chance.csv", ("p_chance", "p_greater"))
    has = d["p_chance"].notna()
    # the pass re-ran the main pass's permutations: its one-sided p must reproduce p_perm
    both = has & d["p_perm"].notna()
    assert np.allclose(d.loc[both, "p_perm"], d.loc[both, "p_greater"], rtol=0, atol=1e-12)
    d["chance_lo"], d["chance_hi"] = np.nan, np.nan
    lo, hi, _ = ivl.chance_coherent(
        d.loc[has, "T"].to_numpy(),
        np.clip(d.loc[has, "jack_plain_lo"].to_numpy(), 0, 1),
        np.clip(d.loc[has, "jack_plain_hi"].to_numpy(), 0, 1),
        d.loc[has, "p_chance"].to_numpy(),
        0.95,
    )
    d.loc[has, "chance_lo"], d.loc[has, "chance_hi"] = lo, hi
    return d


def _chance_section(d: pd.DataFrame) -> list[str]:
    """Per cell, on the replicates of the chance pass: how the rule changes coverage."""
    h = d[d["p_chance"].notna()].copy()
    if h.empty:
        return []
    th = h["theta"]
    # an excluded 0.5 is an open bound: the null estimand 0.5 is missed when the test rejects
    cov_new = (h["chance_lo"] <= th) & (th <= h["chance_hi"])
    cov_new &= ~((th == 0.5) & (h["p_chance"] <= 0.05 + 1e-12))
    h["cov_new"] = cov_new
    h["cov_old"] = (h["jack_plain_lo"] <= th) & (th <= h["jack_plain_hi"])
    out = [
        "## The chance-level rule (`--chance` pass): the default interval",
        "",
        "The default interval is the AUROC-scale jackknife interval made coherent with the exact",
        "two-sided permutation test of |T - 0.5| (B = 19, the main pass's permutations; their",
        "one-sided p reproduces `p_perm` on every replicate where both ran): cut at 0.5 (an open",
        "bound) where the test rejects at 0.05, widened to reach 0.5 where it does not. The pass",
        "ran on every null-cell replicate and on the first 60 of each signal cell (all of the two",
        "large cells). `widened` / `cut`: replicates where the rule changed whether the estimand",
        "is covered (widened to cover it / cut so that it is missed).",
        "",
        "| cell | group | reps | estimand | AUROC-scale jackknife | default (chance rule) "
        "| widened | cut | two-sided test rejects |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ("cell", "group"):
        for name, g in h.groupby(key, sort=False):
            po, so, no = _prop(g["cov_old"])
            pn, sn, nn = _prop(g["cov_new"])
            pr, sr, nr = _prop(g["p_chance"] <= 0.05 + 1e-12)
            out.append(
                f"| {name if key == 'cell' else '**all**'} | {g['group'].iloc[0]} | {len(g)} "
                f"| {g['theta'].mean():.3f} | {_fmt(po, so, no)} | {_fmt(pn, sn, nn)} "
                f"| {int((g['cov_new'] & ~g['cov_old']).sum())} "
                f"| {int((~g['cov_new'] & g['cov_old']).sum())} | {_fmt(pr, sr, nr)} |"
            )
    return out + [""]


def main() -> None:
    d = pd.read_csv(HERE / "replicates.csv", keep_default_na=False, na_values=[""])
    # the bootstrap pass re-simulates the same data; the j2 and jfix passes also use the main
    # pass's folds and jackknife groups: T must agree exactly (and j2's plain jackknife)
    d = _merge_pass(d, "replicates_boot.csv", ("boot_lo", "boot_hi", "boot_t_lo", "boot_t_hi"))
    d = _merge_pass(d, "replicates_j2.csv", ("j2_lo", "j2_hi"), check_jack=True)
    d = _merge_pass(d, "replicates_jfix.csv", ("jfix_lo", "jfix_hi"))
    d = _merge_pass(d, "replicates_ncv.csv", ("ncv_lo", "ncv_hi"))
    d = _with_chance(d)
    d["theta"] = d.groupby("cell")["truth_cond"].transform("mean")
    cells = summarise(d, "cell")
    groups = summarise(d, "group")
    cells.to_csv(HERE / "summary.csv", index=False)
    lines = [
        "# Decoder inference: coverage of 95 % intervals and size/power of tests at 0.05",
        "",
        "Generated by `summarise.py` from `replicates.csv` (`study.py`). Entries: estimate ± Monte",
        "Carlo SE (replicates). Coverage is of the estimand (expected pooled AUROC of the decoders",
        "the procedure fits; 0.5 in null cells). Rejection: share of p <= 0.05 for AUROC > 0.5;",
        "in null cells this is the size, elsewhere the power (permutation test with B = 19).",
        "",
        "The default interval (AUROC-scale jackknife, 0.5 decided by the exact two-sided",
        "permutation test) needs the permuted statistics of the `--chance` pass: every null-cell",
        "replicate, the first 60 of each signal cell. Elsewhere it equals the AUROC-scale",
        "jackknife interval except where the rule widens it to reach 0.5 (which can only add",
        "coverage); the last section counts how often the rule changed coverage.",
        "",
    ]
    for title, tab, key in (
        ("By cell group (pooled)", groups, "group"),
        ("By cell", cells, "cell"),
    ):
        lines += [f"## {title}", ""]
        head = [key, "reps", "n_pos", "estimand", "mean T", "SD(T)"]
        head += [METHODS[m] for m in METHODS]
        head += ["reject: permutation", "reject: jackknife Wald", "reject: DeLong"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for _, r in tab.iterrows():
            cells_ = [
                str(r[key]),
                str(int(r["replicates"])),
                f"{r['n_pos_median']:.0f}",
                f"{r['estimand']:.3f}",
                f"{r['T_mean']:.3f}",
                f"{r['T_sd']:.3f}",
            ]
            cells_ += [
                _fmt(r[f"cov_{m}"], r[f"cov_{m}_mc"], int(r[f"n_{m}"]))
                + ("" if not r[f"n_{m}"] else f", width {r[f'width_{m}']:.2f}")
                for m in METHODS
            ]
            cells_ += [
                _fmt(r[f"rej_{t}"], r[f"rej_{t}_mc"], int(r[f"n_rej_{t}"]))
                for t in ("perm", "jack", "delong")
            ]
            lines.append("| " + " | ".join(cells_) + " |")
        lines.append("")
    lines += _chance_section(d)
    lines += _variance_ratios(d)
    lines += _ncv_section()
    (HERE / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
