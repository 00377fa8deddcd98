"""Benchmark of tario_clinical.decode's fast engine (not part of the test suite).

(i)  full size: N patients x D features, 5 targets, 5-fold x 5-repeat outer CV, 5 inner folds,
     10 C values (fast engine);
(ii) side by side at a smaller size: the fast engine vs the naive baseline (scikit-learn
     ``Pipeline(StandardScaler, LogisticRegressionCV)`` refit per outer fold and target, same
     folds and C grid: ``decode(engine="sklearn")``), speed ratio and pooled AUROC difference.

Every measurement runs in a fresh subprocess (peak RSS from ``resource``); the driver prints one
JSON line per measurement and a summary line with medians, and with ``--out`` writes them (plus
the machine description) as JSON lines.

Usage::

    OPENBLAS_NUM_THREADS=2 taskset -c 0,1 python benchmarks/bench_decode.py --runs 3 \
        --out benchmarks/results/decode.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def _data(n: int, d: int, n_targets: int, seed: int):
    import pandas as pd

    rng = np.random.default_rng(seed)
    lat = rng.standard_normal((n, 12))
    load = rng.standard_normal((12, d)) * 0.3
    X = (lat @ load + rng.standard_normal((n, d))).astype(np.float32)
    ids = [f"P{i:05d}" for i in range(n)]
    clin = pd.DataFrame({"patient_id": ids})
    for t in range(n_targets):
        clin[f"T{t}"] = (lat[:, t] + rng.standard_normal(n) > 0.8).astype(int)
    return pd.DataFrame(X, index=ids), clin, [f"T{t}" for t in range(n_targets)]


def one(kind: str, n: int, d: int, n_targets: int, n_repeats: int, engine: str) -> dict:
    import tario_clinical

    X, clin, targets = _data(n, d, n_targets, seed=0)
    t0 = time.perf_counter()
    res = tario_clinical.decode(
        X,
        clin,
        targets=targets,
        n_splits=5,
        n_repeats=n_repeats,
        n_inner_splits=5,
        n_c=10,
        engine=engine,
        p_method="delong",  # the plain nested CV (the re-runs of the inference are timed in
        ci_method="delong",  # bench_decode_inference.py)
        seed=0,
    )
    wall = time.perf_counter() - t0
    s = res.summary()
    return {
        "kind": kind,
        "engine": engine,
        "n": n,
        "d": d,
        "n_targets": n_targets,
        "outer": f"5x{n_repeats}",
        "inner": 5,
        "n_c": 10,
        "wall_s": round(wall, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "auroc": [round(float(a), 5) for a in s["auroc"]],
    }


def machine() -> dict:
    import scipy
    import sklearn

    info = {
        "kind": "machine",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "cores_available": len(os.sched_getaffinity(0)),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        info["cpu"] = names[0] if names else info["cpu"]
    except OSError:
        pass
    return info


def _sub(args: list[str], timeout: float, script: str = __file__) -> dict | None:
    """Run ``script --one ARGS`` in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, script, "--one", *args]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    try:
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=True, env=env
        )
    except subprocess.TimeoutExpired:
        return {"kind": args[0], "error": f"timeout after {timeout}s"}
    except subprocess.CalledProcessError as err:
        return {"kind": args[0], "error": err.stderr[-500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", nargs=6, metavar=("KIND", "N", "D", "T", "REPEATS", "ENGINE"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--full", default="2545,18963")
    ap.add_argument("--small", default="400,2000")
    ap.add_argument("--small-repeats", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    if a.one:
        k, n, d, t, r, e = a.one
        print(json.dumps(one(k, int(n), int(d), int(t), int(r), e)))
        return
    lines = [machine()]
    print(json.dumps(lines[0]), flush=True)
    n, d = (int(v) for v in a.full.split(","))
    full = []
    if not a.skip_full:
        for _ in range(a.runs):
            r = _sub(["full", str(n), str(d), "5", "5", "fast"], a.timeout)
            print(json.dumps(r), flush=True)
            lines.append(r)
            full.append(r)
    n2, d2 = (int(v) for v in a.small.split(","))
    fast, naive = [], []
    for _ in range(a.runs):
        r = _sub(["small", str(n2), str(d2), "5", str(a.small_repeats), "fast"], a.timeout)
        print(json.dumps(r), flush=True)
        lines.append(r)
        fast.append(r)
    r = _sub(["small", str(n2), str(d2), "5", str(a.small_repeats), "sklearn"], a.timeout)
    print(json.dumps(r), flush=True)
    lines.append(r)
    naive.append(r)

    def med(rs: list[dict], key: str) -> float | None:
        v = [x[key] for x in rs if x and key in x]
        return float(np.median(v)) if v else None

    summ = {
        "kind": "summary",
        "full_wall_s_median": med(full, "wall_s"),
        "full_peak_rss_mib_median": med(full, "peak_rss_mib"),
        "full_target_s": 120,
        "small_fast_wall_s_median": med(fast, "wall_s"),
        "small_naive_wall_s": med(naive, "wall_s"),
    }
    if summ["small_fast_wall_s_median"] and summ["small_naive_wall_s"]:
        summ["speedup"] = round(summ["small_naive_wall_s"] / summ["small_fast_wall_s_median"], 2)
        fa, na = np.array(fast[0]["auroc"]), np.array(naive[0]["auroc"])
        summ["max_abs_auroc_diff"] = round(float(np.max(np.abs(fa - na))), 5)
        summ["pooled_auroc_fast"] = fa.tolist()
        summ["pooled_auroc_naive"] = na.tolist()
    print(json.dumps(summ), flush=True)
    lines.append(summ)
    if a.out:
        with open(a.out, "w") as fh:
            for ln in lines:
                fh.write(json.dumps(ln) + "\n")


if __name__ == "__main__":
    main()
