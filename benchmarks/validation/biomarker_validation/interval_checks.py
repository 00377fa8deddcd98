"""Targeted check of the two validation intervals on a few *fixed* locked biomarkers.

The main study (``study.py``) varies the development; here each of ``N_MODELS`` locked EGFR
biomarkers (developed as in the study: 300 patients, 40 genes, locked at the development
median) is validated on ``N_COHORTS`` independent no-shift cohorts of 300 patients, so the
sampling behaviour of each interval can be read off one fixed truth at a time:

* AUROC: estimate, DeLong SE, and two intervals with that SE: Wald on the AUROC scale
  (``A -/+ z SE``) and Wald on the logit scale (the library's,
  ``tario_clinical.biomarker.validate.auroc_logit_interval``); misses by side.
* HR of the locked cut-off (Cox, Efron): the model-based SE (the library's) and the robust
  sandwich SE (Lin & Wei 1989, score residuals; the library does not compute it) against the
  empirical SD of the log HR.

Truth as in ``study.py``: ``locked_truth`` on 400,000 fresh patients (AUROC) and the same Cox
fit on a 300,000-patient trial of the population (HR). Seeds:
``SeedSequence([crc32("biomarker_validation/interval_checks"), model])``. One process.

Usage::

    python benchmarks/validation/biomarker_validation/interval_checks.py   # -> interval_checks.md
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
N_MODELS = 4
N_COHORTS = 1000
ROOT_SEED = zlib.crc32(b"biomarker_validation/interval_checks")
Z = 1.959963984540054


def _int_seed(ss: np.random.SeedSequence) -> int:
    return int(ss.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


def robust_se(t: np.ndarray, e: np.ndarray, x: np.ndarray, beta: float) -> float:
    """Sandwich SE of a one-covariate Cox coefficient (Breslow risk sets, score residuals)."""
    o = np.argsort(-t, kind="mergesort")
    t, e, x = t[o], e[o], x[o]
    r = np.exp(beta * x)
    idx = pd.Series(np.arange(t.size))
    last = idx.groupby(t).transform("max").to_numpy()  # the risk set includes tied times
    first = idx.groupby(t).transform("min").to_numpy()
    s0, s1, s2 = np.cumsum(r)[last], np.cumsum(r * x)[last], np.cumsum(r * x * x)[last]
    xbar = s1 / s0
    info = float(np.sum(e * (s2 / s0 - xbar**2)))
    dlam = e / s0
    ca = np.cumsum(dlam[::-1])[::-1][first]
    cb = np.cumsum((dlam * xbar)[::-1])[::-1][first]
    u = e * (x - xbar) - r * (x * ca - cb)
    return float(np.sqrt(np.sum(u**2)) / info)


def one_model(m: int) -> pd.DataFrame:
    from threadpoolctl import threadpool_limits

    import tario_clinical as tc
    from tario_clinical import metrics

    ss = np.random.SeedSequence([ROOT_SEED, m])
    s_dev, s_decode, s_auc, s_hr, s_cohorts = ss.spawn(5)
    rows = []
    with threadpool_limits(1):
        dev = tc.simulate_trial(300, seed=_int_seed(s_dev), n_genes=40, compute_attainable=False)
        res = tc.decode(
            dev.representations,
            dev.cohort(),
            targets=["EGFR"],
            n_repeats=1,
            ci_method="delong",
            p_method="delong",
            seed=_int_seed(s_decode),
            progress=False,
        )
        lk = tc.lock_biomarker(
            res, "EGFR", representations=dev.representations, endpoint=None, include_time=False
        )
        pop = dev.draw_second_trial(20, seed=0, compute_attainable=False)
        t_auc = pop.locked_truth(lk.predict_proba, "EGFR", n=400_000, seed=_int_seed(s_auc))
        big = dev.draw_second_trial(300_000, seed=_int_seed(s_hr), compute_attainable=False)
        g = lk.assign_groups(lk.score(big.representations))
        db = big.clinical[["os_time", "os_event"]].assign(biomarker=g.to_numpy())
        t_b = float(tc.survival.cox(db, "os_time", "os_event", ["biomarker"]).iloc[0]["coef"])
        for c in s_cohorts.spawn(N_COHORTS):
            v = dev.draw_second_trial(300, seed=_int_seed(c), compute_attainable=False)
            s = lk.score(v.representations)
            y = v.cohort().label("EGFR").reindex(s.index)
            ok = y.notna().to_numpy()
            a = metrics.auroc_ci(y[ok].to_numpy(int), s.to_numpy()[ok])
            g = lk.assign_groups(s)
            d = v.clinical[["os_time", "os_event"]].assign(biomarker=g.to_numpy())
            cx = tc.survival.cox(d, "os_time", "os_event", ["biomarker"]).iloc[0]
            x = (g.to_numpy() == "positive").astype(float)
            rse = robust_se(
                d["os_time"].to_numpy(float), d["os_event"].to_numpy(float), x, cx["coef"]
            )
            rows.append(
                {
                    "model": m,
                    "truth_auroc": t_auc["auroc"],
                    "auroc": a.auroc,
                    "auroc_se": a.se,
                    "n_pos": a.n_positive,
                    "truth_log_hr": t_b,
                    "log_hr": float(cx["coef"]),
                    "se_model": float(cx["se"]),
                    "se_robust": rse,
                }
            )
    return pd.DataFrame(rows)


def summarise(d: pd.DataFrame) -> str:
    from tario_clinical.biomarker.validate import auroc_logit_interval

    lines = [
        "# Validation intervals on fixed locked biomarkers",
        "",
        f"Generated by `interval_checks.py`: {d['model'].nunique()} locked EGFR biomarkers × "
        f"{N_COHORTS} independent no-shift validation cohorts of 300 patients each. Coverage of "
        "the truth of each locked biomarker (binomial MC SE); misses by side.",
        "",
        "## AUROC (DeLong SE)",
        "",
        "| model | truth | mean positives | bias of the estimate | SD(estimate) | mean DeLong SE "
        "| AUROC-scale Wald: coverage | below / above | logit-scale Wald (library): coverage "
        "| below / above |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m, g in d.groupby("model"):
        t = g["truth_auroc"].iloc[0]
        a, se = g["auroc"], g["auroc_se"]
        wl, wh = a - Z * se, a + Z * se
        lg = np.array([auroc_logit_interval(x, s_, 0.95) for x, s_ in zip(a, se, strict=True)])
        ll, lh = lg[:, 0], lg[:, 1]
        n = len(g)

        def cov(lo, hi, n=n, t=t):
            p = float(np.mean((lo <= t) & (t <= hi)))
            return f"{p:.3f} ± {np.sqrt(p * (1 - p) / n):.3f}"

        err = a - t
        lines.append(
            f"| {m} | {t:.4f} | {g['n_pos'].mean():.1f} | {err.mean():+.4f} ± "
            f"{err.std(ddof=1) / np.sqrt(n):.4f} | {a.std(ddof=1):.4f} | {se.mean():.4f} "
            f"| {cov(wl, wh)} | {np.mean(t < wl):.3f} / {np.mean(t > wh):.3f} "
            f"| {cov(ll, lh)} | {np.mean(t < ll):.3f} / {np.mean(t > lh):.3f} |"
        )
    lines += [
        "",
        "## HR of the locked cut-off (Cox, unadjusted)",
        "",
        "| model | truth HR | bias of log HR | SD(log HR) | mean model SE (library) "
        "| mean robust SE | model SE: coverage | robust SE: coverage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, g in d.groupby("model"):
        t = g["truth_log_hr"].iloc[0]
        err = g["log_hr"] - t
        n = len(g)
        cm = float(np.mean(np.abs(err) <= Z * g["se_model"]))
        cr = float(np.mean(np.abs(err) <= Z * g["se_robust"]))
        lines.append(
            f"| {m} | {np.exp(t):.3f} | {err.mean():+.4f} ± {err.std(ddof=1) / np.sqrt(n):.4f} "
            f"| {err.std(ddof=1):.4f} | {g['se_model'].mean():.4f} | {g['se_robust'].mean():.4f} "
            f"| {cm:.3f} ± {np.sqrt(cm * (1 - cm) / n):.3f} "
            f"| {cr:.3f} ± {np.sqrt(cr * (1 - cr) / n):.3f} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    import logging
    import warnings

    logging.getLogger("tario_clinical").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    out = HERE / "interval_checks.csv"
    parts = []
    for m in range(N_MODELS):
        t0 = time.perf_counter()
        parts.append(one_model(m))
        print(f"model {m} done ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
    d = pd.concat(parts, ignore_index=True)
    d.to_csv(out, index=False, float_format="%.10g")
    text = summarise(d)
    (HERE / "interval_checks.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
