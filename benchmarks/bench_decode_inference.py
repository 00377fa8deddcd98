"""Cost of the decoders' inference (re-runs of the whole nested CV); not part of the test suite.

Measures, each in a fresh subprocess:

* ``demo``: the demo trial's decoding (``simulate_trial(120, n_genes=500)``, 5 targets, the
  demo's settings: 5x5 outer, 3 inner folds) plain (DeLong only) and with the demo's default
  inference (permutation test + grouped jackknife), ``n_jobs=2``; the difference is what the
  inference adds.
* ``scale``: the plain nested CV and one re-run of it at TARIO scale (N x D, 5 targets, 5x5
  outer, 5 inner); the inference costs ``G = 10`` re-runs (jackknife: the documented cheaper
  option, ``p_method="jackknife"``) or ``B = 199`` (permutation test), extrapolated from the
  measured re-run time and stated as such.

Usage::

    python benchmarks/bench_decode_inference.py --out benchmarks/results/decode_inference.json
    python benchmarks/bench_decode_inference.py --skip-scale      # demo part only
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_decode import _data, machine  # noqa: E402
from bench_decode import _sub as _sub_run  # noqa: E402


def demo(kind: str, n_permutations: int) -> dict:
    import tario_clinical as tc

    trial = tc.simulate_trial(120, seed=0, n_genes=500)
    cohort = trial.cohort()
    targets = ["EGFR", "KRAS", "STK11", "PTEN", "responder"]
    kw: dict = {"n_splits": 5, "n_repeats": 5, "n_inner_splits": 3, "n_jobs": 2, "seed": 0}
    if kind == "plain":
        kw.update(p_method="delong", ci_method="delong")
    else:
        kw.update(n_permutations=n_permutations)
    t0 = time.perf_counter()
    res = tc.decode(trial.representations, cohort, targets=targets, progress=False, **kw)
    wall = time.perf_counter() - t0
    s = res.summary()
    return {
        "kind": f"demo_{kind}",
        "n_permutations": None if kind == "plain" else n_permutations,
        "wall_s": round(wall, 2),
        "auroc": s["auroc"].round(5).tolist(),
        "low": s["low"].round(4).tolist(),
        "high": s["high"].round(4).tolist(),
        "p_value": s["p_value"].round(4).tolist(),
    }


def scale(n: int, d: int) -> dict:
    import tario_clinical as tc
    from tario_clinical.decode import cross_validation as cv
    from tario_clinical.decode import default_Cs
    from tario_clinical.decode import inference as inf

    X, clin, targets = _data(n, d, 5, seed=0)
    t0 = time.perf_counter()
    res = tc.decode(X, clin, targets=targets, p_method="delong", ci_method="delong", seed=0)
    wall_plain = time.perf_counter() - t0
    data = cv.prepare_data(X, clin, targets)
    uniq, codes = np.unique(data.row_patient, return_inverse=True)
    Y = data.labels.reindex(uniq).to_numpy(float)
    kw = {"n_splits": 5, "n_repeats": 5, "n_inner_splits": 5, "stratify_jointly": True}
    plan = inf.make_plan(Y, seed_seq=np.random.SeedSequence(1), **kw)
    pb = inf.CVProblem(X=data.X, codes=codes, Cs=default_Cs(10, uniq.size, d))
    t1 = time.perf_counter()
    inf.cv_statistic(pb, Y, plan)
    rerun = time.perf_counter() - t1
    return {
        "kind": "scale",
        "n": n,
        "d": d,
        "n_targets": 5,
        "plain_decode_wall_s": round(wall_plain, 1),
        "one_rerun_wall_s": round(rerun, 1),
        "jackknife_G10_extrapolated_s": round(10 * rerun, 0),
        "permutation_B199_extrapolated_s": round(199 * rerun, 0),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "auroc": res.summary()["auroc"].round(5).tolist(),
    }


def _sub(args: list[str], timeout: float) -> dict:
    return _sub_run(args, timeout, script=__file__) or {"kind": args[0], "error": "no result"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs="+")
    ap.add_argument("--n-permutations", type=int, default=99)
    ap.add_argument("--scale", default="2545,18963")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.one:
        if a.one[0] == "demo":
            print(json.dumps(demo(a.one[1], int(a.one[2]))))
        else:
            print(json.dumps(scale(int(a.one[1]), int(a.one[2]))))
        return
    lines = [machine()]
    print(json.dumps(lines[0]), flush=True)
    for kind in ("plain", "default", "plain", "default"):
        r = _sub(["demo", kind, str(a.n_permutations)], a.timeout)
        print(json.dumps(r), flush=True)
        lines.append(r)
    plain = [x["wall_s"] for x in lines if x.get("kind") == "demo_plain" and "wall_s" in x]
    dflt = [x["wall_s"] for x in lines if x.get("kind") == "demo_default" and "wall_s" in x]
    if plain and dflt:
        summ = {
            "kind": "demo_summary",
            "plain_wall_s_median": float(np.median(plain)),
            "default_inference_wall_s_median": float(np.median(dflt)),
            "added_s": round(float(np.median(dflt) - np.median(plain)), 1),
            "target_added_s": 60,
        }
        print(json.dumps(summ), flush=True)
        lines.append(summ)
    if not a.skip_scale:
        n, d = (int(v) for v in a.scale.split(","))
        r = _sub(["scale", str(n), str(d)], a.timeout)
        print(json.dumps(r), flush=True)
        lines.append(r)
    if a.out:
        with open(a.out, "w") as fh:
            for ln in lines:
                fh.write(json.dumps(ln) + "\n")


if __name__ == "__main__":
    main()
