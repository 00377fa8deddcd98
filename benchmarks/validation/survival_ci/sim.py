"""Coverage study of tario_clinical.survival.concordance (Harrell, Uno) and time_dependent_auc.

Run: python benchmarks/validation/survival_ci/sim.py [R]  (about 4 CPU-minutes for R = 2000)
Writes raw.csv (one row per replication x estimator) and summary.csv beside this script (raw.csv is not committed: 10 MB).
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import truth  # noqa: E402

from tario_clinical.survival import concordance, time_dependent_auc

warnings.filterwarnings(
    "ignore", category=RuntimeWarning
)  # 1/G at G=0 for non-cases in time_dependent_auc

R = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
NS = (200, 500)
TAU = 10.0
HOR = (4.0, 10.0)
A_ADMIN = 15.0
OUT = str(Path(__file__).resolve().parent)

designs = []
for design, A in (("admin15+exp", A_ADMIN), ("exp only", np.inf)):
    for frac in (0.3, 0.6):
        designs.append((design, A, frac, truth.lam_for(frac, A)))

rows = []
truths = {}
t_start = time.process_time()
ss = np.random.SeedSequence(20240501)
cell_seeds = ss.spawn(len(designs) * len(NS))
k = 0
for design, A, frac, lam in designs:
    c_window = truth.c_trunc(A=A)  # uncensored C over T_i < A (A = inf: full C)
    tv = {
        "harrell": c_window,
        "harrell@lim": truth.c_trunc(lam2=2 * lam, A=A),
        "uno(tau=None)": c_window,
        f"uno(tau={TAU:g})": truth.c_trunc(TAU),
        **{f"auc(t={h:g})": truth.auc_cd(h) for h in HOR},
    }
    truths[(design, frac)] = {**tv, "lam_c": lam, "A": A}
    for n in NS:
        rng = np.random.default_rng(cell_seeds[k])
        k += 1
        for r in range(R):
            s, t, x, e = truth.simulate(rng, n, lam, A)
            df = pd.DataFrame({"time": x, "event": e.astype(int), "score": s})
            rec = {
                "design": design,
                "cens_target": frac,
                "n": n,
                "rep": r,
                "cens_obs": 1 - e.mean(),
            }
            res = []
            try:
                c0 = concordance(df, "time", "event", "score")
                res += [
                    ("harrell", *c0.loc["harrell", ["estimate", "se", "low", "high"]]),
                    ("uno(tau=None)", *c0.loc["uno", ["estimate", "se", "low", "high"]]),
                ]
            except Exception as err:  # noqa: BLE001
                res += [
                    ("harrell", np.nan, np.nan, np.nan, np.nan),
                    ("uno(tau=None)", np.nan, np.nan, np.nan, np.nan),
                ]
                rec["err_c"] = repr(err)
            try:
                c1 = concordance(df, "time", "event", "score", tau=TAU)
                res.append((f"uno(tau={TAU:g})", *c1.loc["uno", ["estimate", "se", "low", "high"]]))
            except Exception as err:  # noqa: BLE001
                res.append((f"uno(tau={TAU:g})", np.nan, np.nan, np.nan, np.nan))
                rec["err_c1"] = repr(err)
            for h in HOR:
                try:
                    a = time_dependent_auc(df, "time", "event", "score", [h]).iloc[0]
                    res.append((f"auc(t={h:g})", a.auc, a.se, a.low, a.high))
                except Exception as err:  # noqa: BLE001
                    res.append((f"auc(t={h:g})", np.nan, np.nan, np.nan, np.nan))
                    rec[f"err_auc{h:g}"] = repr(err)
            for est, val, se, lo, hi in res:
                rows.append(
                    {**rec, "estimator": est, "estimate": val, "se": se, "low": lo, "high": hi}
                )
        print(
            f"{design} cens~{frac} n={n}: done, cpu {time.process_time() - t_start:.0f}s",
            flush=True,
        )

raw = pd.DataFrame(rows)
raw.to_csv(f"{OUT}/raw.csv", index=False)

summ = []
for (design, frac, n), g in raw.groupby(["design", "cens_target", "n"], sort=False):
    tv = truths[(design, frac)]
    for est in tv:
        if est in ("lam_c", "A"):
            continue
        src = "harrell" if est == "harrell@lim" else est
        d = g[g.estimator == src].dropna(subset=["estimate"])
        T = tv[est]
        cov = ((d.low <= T) & (T <= d.high)).to_numpy()
        Rk = len(d)
        p = cov.mean()
        summ.append(
            {
                "design": design,
                "cens_target": frac,
                "cens_obs": g.cens_obs.mean(),
                "n": n,
                "estimator": est,
                "truth": T,
                "R": Rk,
                "failed": int(R - Rk),
                "coverage": p,
                "mcse_cov": np.sqrt(p * (1 - p) / Rk),
                "miss_low": (d.high < T).mean(),
                "miss_high": (d.low > T).mean(),
                "bias": d.estimate.mean() - T,
                "mcse_bias": d.estimate.std(ddof=1) / np.sqrt(Rk),
                "mean_se": d.se.mean(),
                "emp_sd": d.estimate.std(ddof=1),
                "se_ratio": d.se.mean() / d.estimate.std(ddof=1),
                # coverage achievable with the right SE: estimate +/- 1.96*emp_sd
                "cov_oracle_sd": (
                    np.abs(d.estimate - T) <= 1.959964 * d.estimate.std(ddof=1)
                ).mean(),
            }
        )
summ = pd.DataFrame(summ)
summ.to_csv(f"{OUT}/summary.csv", index=False)
pd.set_option("display.width", 250)
pd.set_option("display.max_rows", 200)
print(summ.round(4).to_string())
print(f"total cpu {time.process_time() - t_start:.0f}s")
