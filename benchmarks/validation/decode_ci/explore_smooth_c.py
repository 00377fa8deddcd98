"""Exploration: does a *continuous* inner-CV choice of C make the jackknife(s) unbiased?

Hypothesis tested (2026-12-01): jackknife2 under-covers with signal because its pair deletions
register the discrete jumps of the inner-CV choice of C on the 10-point grid. Variant: the
inner-CV log-loss is interpolated by a parabola in log C through the best grid point and its two
neighbours, each outer fold is refitted at that continuous C, and the plain (G = 10) and
second-order-corrected jackknives are formed from the same variant of the procedure. Same data,
folds and jackknife groups as the main pass (``study._replicate_setup``); truth = the exact
pooled AUROC of the variant's fold models.

Usage (about 8 min on 2 cores)::

    OPENBLAS_NUM_THREADS=1 python benchmarks/validation/decode_ci/explore_smooth_c.py \
        null_n100_d50,mod_n100_d50,strong_n100_d50 60

Writes ``replicates_smooth_c.jsonl`` next to this file (appends); the README has the result.
"""

import json
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from tario_clinical.decode import engine
from tario_clinical.decode import intervals as ivl
from tario_clinical.decode.splitters import assign_folds

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import study  # noqa: E402


def smooth_C(Cs, scores):
    b = int(np.nanargmax(scores))
    if b == 0 or b == len(Cs) - 1 or not np.all(np.isfinite(scores[b - 1 : b + 2])):
        return Cs[b]
    x = np.log(Cs[b - 1 : b + 2])
    y = scores[b - 1 : b + 2]
    den = y[0] - 2 * y[1] + y[2]
    if den >= 0:
        return Cs[b]
    h = x[1] - x[0]
    xs = x[1] + 0.5 * h * (y[0] - y[2]) / den
    return float(np.exp(np.clip(xs, x[0], x[2])))


def cv_smooth(problem, Y, plan, keep, hook=None):
    """The CV statistic with each fold refitted at its continuous C (``study.cv_with``);
    ``hook(r, (u, c))`` receives each fold model (for the truth)."""

    def fit(r, k, train, test, inner):
        y_tr = Y[problem.codes][train]
        basis = engine.fold_basis(problem.X, train, test, with_feature_map=hook is not None)
        ff = engine.nested_fold(basis, y_tr, inner, problem.Cs)
        Cst = smooth_C(problem.Cs, ff.inner_scores[0])
        V, b, fv, _ = engine.solve_path(
            basis.F, y_tr, np.ones((train.size, 1)), np.array([Cst]), basis.s
        )
        std = engine._standardised(basis.G @ V[:, 0] + b[0], fv[:, 0])
        if hook is not None:
            hook(r, study.fold_model_from(basis, V[:, 0], b[0], fv[:, 0]))
        return std[:, None]

    return float(study.cv_with(problem, Y, plan, keep, fit)[0])


def one(args):
    name, rep = args
    cell = {c.name: c for c in study.CELLS}[name]
    t0 = time.perf_counter()
    X, y, delta, L, problem, plan, kw, (s_jack, _, _) = study._replicate_setup(cell, rep)
    Y = y[:, None]
    n = X.shape[0]
    models = {}
    with threadpool_limits(1):
        T = cv_smooth(
            problem,
            Y,
            plan,
            np.ones(n, bool),
            hook=(lambda r, m: models.setdefault(r, []).append(m)) if delta is not None else None,
        )
        groups = assign_folds(Y, 10, np.random.default_rng(s_jack))
        one_ = [cv_smooth(problem, Y, plan, groups != g) for g in range(10)]
        two_ = [
            cv_smooth(problem, Y, plan, ~np.isin(groups, p)) for p in combinations(range(10), 2)
        ]
    truth = study._replicate_truth(models, delta, L)
    jr = np.array(one_ + two_)[:, None]
    lo, hi, _ = ivl.jackknife_interval_logit(np.array([T]), jr[:10], 0.95)
    lo2, hi2, _ = ivl.jackknife2_interval(np.array([T]), jr, 0.95, 10)
    return dict(
        cell=name,
        rep=rep,
        T=T,
        truth=truth,
        jack_lo=float(lo[0]),
        jack_hi=float(hi[0]),
        j2_lo=float(lo2[0]),
        j2_hi=float(hi2[0]),
        reps=[round(v, 6) for v in jr[:, 0]],
        sec=round(time.perf_counter() - t0, 2),
    )


if __name__ == "__main__":
    from multiprocessing import Pool

    cells = sys.argv[1].split(",")
    nrep = int(sys.argv[2])
    tasks = [(c, r) for r in range(nrep) for c in cells]
    with Pool(2) as p, open(HERE / "replicates_smooth_c.jsonl", "a") as fh:
        for i, row in enumerate(p.imap_unordered(one, tasks)):
            fh.write(json.dumps(row) + "\n")
            fh.flush()
            if i % 10 == 0:
                print(i, row["cell"], row["sec"], flush=True)
