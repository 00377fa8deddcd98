"""Tables of the coverage study from summary.csv (see results.md)."""

from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
s = pd.read_csv(HERE / "summary.csv")
lines = [
    "| design | cens | estimator (truth) | truth | n | R | coverage ± MCSE | miss lo/hi | bias ± MCSE | mean SE | emp SD | SE/SD |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]
for _, r in s.iterrows():
    lines.append(
        f"| {r.design} | {r.cens_obs:.2f} | {r.estimator} | {r.truth:.4f} | {r.n} | {r.R} | "
        f"{r.coverage:.3f} ± {r.mcse_cov:.3f} | {r.miss_low:.3f}/{r.miss_high:.3f} | "
        f"{r.bias:+.4f} ± {r.mcse_bias:.4f} | {r.mean_se:.4f} | {r.emp_sd:.4f} | {r.se_ratio:.3f} |"
    )
open(HERE / "table.md", "w").write("\n".join(lines) + "\n")
p = s.groupby("estimator").agg(
    cells=("coverage", "size"),
    cov_mean=("coverage", "mean"),
    cov_min=("coverage", "min"),
    cov_max=("coverage", "max"),
    se_ratio_mean=("se_ratio", "mean"),
    se_ratio_min=("se_ratio", "min"),
)
txt = p.round(4).to_string()
print(txt)
open(HERE / "pooled.txt", "w").write(txt + "\n")
