"""Benchmark of the time-to-event decoder's nested CV (not part of the test suite).

Full size: ``N`` patients x ``D`` features of a simulated trial (``simulate_trial``: OS with a
prognostic genotype signal carried by the expression-derived representation), penalised Cox
(L2, fast engine in the span of the training rows), 5-fold x 5-repeat outer CV, 5 inner folds,
10 penalties -- ``tc.decode_survival`` with ``ci_method="oof", p_method="oof"`` (the plain
nested CV; the jackknife's re-runs cost ``G`` times as much and are not timed here).

Every measurement runs in a fresh subprocess (peak RSS from ``resource``) and reports where the
time goes: the fold factorisations (``engine.fold_basis``), the batched Cox solver with its inner
CV (``cox_engine.nested_cox_fold``), and the rest (metrics, final model, tables). The driver
prints one JSON line per measurement, the machine description and the load average before and
after, and with ``--out`` appends them as JSON lines.

Usage::

    python benchmarks/bench_decode_survival.py --runs 2 --out benchmarks/results/decode_survival.json
    python benchmarks/bench_decode_survival.py --fold-only --out ...  # one full-size fold
    python benchmarks/bench_decode_survival.py --n 600 --d 4000 --runs 1      # quick
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


def one(n: int, d: int, n_repeats: int) -> dict:
    import numpy as np

    import tario_clinical as tc
    from tario_clinical.decode import engine, survival_decoder

    t0 = time.perf_counter()
    trial = tc.simulate_trial(n, seed=0, n_genes=d, compute_attainable=False)
    X = trial.representations
    clin = trial.clinical
    sim_s = time.perf_counter() - t0
    spent = {"fold_basis": 0.0, "nested_cox_fold": 0.0}
    calls = {"fold_basis": 0, "nested_cox_fold": 0}

    def timed(name, fn):  # noqa: ANN001, ANN202
        def wrapper(*a, **k):  # noqa: ANN002, ANN003, ANN202
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t
                calls[name] += 1

        return wrapper

    engine.fold_basis = timed("fold_basis", engine.fold_basis)
    survival_decoder.nested_cox_fold = timed("nested_cox_fold", survival_decoder.nested_cox_fold)
    t0 = time.perf_counter()
    res = tc.decode_survival(
        X,
        clin,
        time="os_time",
        event="os_event",
        n_splits=5,
        n_repeats=n_repeats,
        n_inner_splits=5,
        n_lambdas=10,
        ci_method="oof",
        p_method="oof",
        seed=0,
    )
    wall = time.perf_counter() - t0
    m = res.metrics.set_index("metric")["estimate"]
    return {
        "kind": "full",
        "n": n,
        "d": d,
        "n_events": int(np.asarray(clin["os_event"]).sum()),
        "outer": f"5x{n_repeats}",
        "inner": 5,
        "n_lambdas": 10,
        "wall_s": round(wall, 3),
        "fold_basis_s": round(spent["fold_basis"], 3),
        "fold_basis_calls": calls["fold_basis"],
        "cox_solver_s": round(spent["nested_cox_fold"], 3),
        "cox_solver_calls": calls["nested_cox_fold"],
        "other_s": round(wall - spent["fold_basis"] - spent["nested_cox_fold"], 3),
        "simulate_s": round(sim_s, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "harrell_c": round(float(m["harrell_c"]), 5),
        "uno_c": round(float(m["uno_c"]), 5),
    }


def one_fold(n: int, d: int) -> dict:
    """One outer fold of the full-size nested CV, as the decoder runs it (its own plan, default
    penalty path): the fold factorisation and the nested Cox fit, timed; the whole nested CV
    (25 outer folds and the final model on all n rows, ~(n / n_train)^2 = 1.56 folds) is
    extrapolated from it."""
    import numpy as np

    import tario_clinical as tc
    from tario_clinical.decode import engine, survival_decoder
    from tario_clinical.decode.cox_engine import nested_cox_fold
    from tario_clinical.decode.endpoint_inference import cv_design, renumber_inner

    trial = tc.simulate_trial(n, seed=0, n_genes=d, compute_attainable=False)
    X = np.asarray(trial.representations.X, dtype=np.float32)
    t = trial.clinical["os_time"].to_numpy(float)
    e = trial.clinical["os_event"].to_numpy(float)
    design = cv_design(
        e[:, None],
        trial.clinical,
        cv=None,
        n_splits=5,
        n_repeats=5,
        n_inner_splits=5,
        group_by=None,
        seed=0,
    )
    train = np.flatnonzero(design.plan.outer[0] != 0)
    test = np.flatnonzero(design.plan.outer[0] == 0)
    lam = survival_decoder.default_lambdas(10, n, d, int(e.sum()))
    t0 = time.perf_counter()
    b = engine.fold_basis(X, train, test)
    t_basis = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = nested_cox_fold(
        b.F, b.s, b.G, t[train], e[train], renumber_inner(design.plan.inner[0][train]), lam
    )
    t_cox = time.perf_counter() - t0
    per = t_basis + t_cox
    return {
        "kind": "one_fold",
        "n": n,
        "d": d,
        "n_train": int(train.size),
        "rank": int(b.F.shape[1]),
        "n_events": int(e.sum()),
        "fold_basis_s": round(t_basis, 3),
        "cox_solver_s": round(t_cox, 3),
        "chosen_penalty_index": int(fit.best),
        "fold_s": round(per, 3),
        "extrapolated_nested_cv_s": round(per * (25 + (n / train.size) ** 2), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def machine() -> dict:
    import numpy
    import scipy
    import sklearn

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "kind": "machine",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "cores_available": len(os.sched_getaffinity(0)),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2545)
    ap.add_argument("--d", type=int, default=18963)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--note", default="")
    ap.add_argument("--out", default="")
    ap.add_argument(
        "--fold-only",
        action="store_true",
        help="time one outer fold of the full-size nested CV and extrapolate (quick)",
    )
    ap.add_argument("--one-fold", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument(
        "--one", nargs=3, type=int, metavar=("N", "D", "REPEATS"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    if args.one_fold:
        print(json.dumps(one_fold(*args.one_fold)))
        return
    lines: list[dict] = []
    if args.note:
        lines.append(
            {
                "kind": "note",
                "note": args.note,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
        )
    lines.append(machine())
    for _ in range(args.runs):
        load0 = os.getloadavg()
        cmd = [sys.executable, __file__, "--one", str(args.n), str(args.d), str(args.repeats)]
        if args.fold_only:
            cmd = [sys.executable, __file__, "--one-fold", str(args.n), str(args.d)]
        try:
            p = subprocess.run(
                cmd, capture_output=True, text=True, timeout=args.timeout, check=True
            )
            row = json.loads(p.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            row = {"kind": "full", "error": f"timeout after {args.timeout}s"}
        except subprocess.CalledProcessError as err:
            row = {"kind": "full", "error": err.stderr[-2000:]}
        row["loadavg_before"] = [round(v, 2) for v in load0]
        row["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
        print(json.dumps(row), flush=True)
        lines.append(row)
    walls = [r["wall_s"] for r in lines if r.get("kind") == "full" and "wall_s" in r]
    walls += [r["extrapolated_nested_cv_s"] for r in lines if r.get("kind") == "one_fold"]
    summary = {
        "kind": "summary",
        "n": args.n,
        "d": args.d,
        "wall_s_runs": walls,
        "wall_s_min": min(walls) if walls else None,
        "target_s": 180,
    }
    print(json.dumps(summary))
    lines.append(summary)
    if args.out:
        with open(args.out, "a") as fh:
            for r in lines:
                fh.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
