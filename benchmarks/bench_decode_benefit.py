"""Benchmark of the benefit decoder's tests, side by side (not part of the test suite).

``tc.decode_benefit`` on a ``simulate_trial`` cohort (OS, two arms): the plain cross-fitting
(``p_method="oof"``), the jackknife Wald tests (G = 10 re-runs) and the default randomisation
test (``p_method="permutation"``, B re-runs of the whole cross-fitting), each in the same
process and run, ``--runs`` times interleaved; medians and the ratios to the plain
cross-fitting. The randomisation test costs about B times the plain fit by construction: this
measures the constant and what it means at scale.

Usage::

    python benchmarks/bench_decode_benefit.py --runs 3 --out benchmarks/results/decode_benefit.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
from pathlib import Path


def _machine() -> dict:
    path = Path(__file__).with_name("bench_decode_survival.py")
    spec = importlib.util.spec_from_file_location("bench_decode_survival", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--permutations", type=int, default=19)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    import tario_clinical as tc

    trial = tc.simulate_trial(args.n, seed=7, n_genes=args.d, compute_attainable=False)
    common = dict(arm="arm", time="os_time", event="os_event", n_jobs=1, progress=False, seed=0)
    variants = {
        "plain (oof)": dict(ci_method="oof", p_method="oof"),
        "jackknife (G=10)": dict(ci_method="oof", p_method="jackknife"),
        f"permutation (B={args.permutations})": dict(
            ci_method="oof", p_method="permutation", n_permutations=args.permutations
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    load_before = os.getloadavg()
    for _ in range(args.runs):
        for name, kw in variants.items():
            t0 = time.perf_counter()
            tc.decode_benefit(trial.representations, trial.clinical, **common, **kw)
            times[name].append(round(time.perf_counter() - t0, 3))
    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["plain (oof)"]
    rows = [
        {
            "kind": "note",
            "note": "decode_benefit, OS, 5 x 5 outer / 5 inner folds, 10 penalties; variants "
            "interleaved in one process; seconds per call",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        _machine(),
    ]
    for name in variants:
        rows.append(
            {
                "kind": "benefit_test",
                "n": args.n,
                "d": args.d,
                "variant": name,
                "seconds": times[name],
                "median_s": med[name],
                "ratio_to_plain": round(med[name] / base, 2),
            }
        )
    for r in rows:
        print(json.dumps(r))
    if args.out:
        with open(args.out, "a") as fh:
            for r in rows:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
