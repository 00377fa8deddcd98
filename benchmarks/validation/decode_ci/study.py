"""Validation study: coverage of AUROC intervals and size/power of tests for cross-validated decoders.

Every replicate simulates a cohort with known truth, runs the default nested CV of
``tario_clinical.decode`` (5-fold x 5 repeats, 5 inner folds, 10 C values, fast engine) through
``tario_clinical.decode.inference`` and records, for the same statistic ``T`` (mean over repeats of
the pooled fold-standardised OOF AUROC):

* intervals: DeLong on OOF scores (``delong``), Nadeau-Bengio corrected repeated-CV variance of
  per-fold AUROCs (``nb``), grouped jackknife of the whole CV, G = 10, logit scale with t_9
  (``jack``, the default) and on the AUROC scale (``jack_plain``), and on a subset of replicates
  the patient bootstrap of the whole CV, B = 20, logit scale (``boot`` with z, ``boot_t`` with t_19);
  (the bootstrap in a separate pass, ``--boot``, over the same replicates);
* p-values of AUROC = 0.5 against "better than chance": the permutation test that re-runs the
  whole nested CV with a new fold assignment (B = 19, so p <= 0.05 iff T beats all 19), the
  jackknife Wald test and one-sided DeLong.

Truth (the estimand). Features are Gaussian given the class, ``x | y ~ N(y * delta, L L^T + I)``,
so every fold model's standardised score is Gaussian given the class and the AUROC of the pooled
scores on infinitely many new patients is exact:
``(1/K^2) sum_{k,l} Phi((m1_k - m0_l) / sqrt(v_k + v_l))`` per repeat, averaged over repeats
(``truth_cond``: the decoders actually fitted). The estimand -- the expected AUROC of the decoders
the procedure fits to n(k-1)/k patients -- is the mean of ``truth_cond`` over the cell's replicates
(Monte Carlo error reported). Null cells have truth 0.5 exactly. The ``real`` cell uses the 76-gene
breast-cancer expression matrix shipped by scikit-survival (198 patients; used here only, as in the
tests) with labels drawn independently of the features (null, prevalence of ER-positive); the
``simtrial`` cell uses ``simulate_trial``'s correlated expression-derived representations (a new
simulated cohort per replicate) with null labels.

Usage (resumable; appends to ``replicates.csv``)::

    python benchmarks/validation/decode_ci/study.py --jobs 2
    python benchmarks/validation/decode_ci/study.py --jobs 2 --boot
    python benchmarks/validation/decode_ci/study.py --jobs 2 --chance
    python benchmarks/validation/decode_ci/summarise.py

The default interval since 2026-12-01 is ``jack_plain`` (AUROC scale, t_9) made coherent with
the exact two-sided permutation test of |T - 0.5| (``--chance`` pass; see the README).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
OUT = HERE / "replicates.csv"


@dataclass(frozen=True)
class Cell:
    name: str
    group: str
    n: int
    D: int
    prevalence: float
    signal: float  # per-feature mean shift on the first 10 features
    reps: int
    perm_reps: int  # replicates (first ones) that also run the permutation test
    boot_reps: int  # replicates (first ones) that also run the bootstrap
    real: bool | str = False  # True: the breast-cancer matrix; "simtrial": simulate_trial's


# replicate caps raised on 2026-12-01 (before the new replicates ran) so that every cell group
# can pool >= 1,000 replicates: null 600 + 200 + 100 + 30 + 100, few positives 3 x 334, moderate
# 945 + 30 + 25, strong 900 + 100
CELLS = [
    Cell("null_n100_d50", "null", 100, 50, 0.3, 0.0, 600, 600, 40),
    Cell("null_real_bc76", "null", 198, 76, 134 / 198, 0.0, 200, 200, 0, real=True),
    Cell("null_n200_d500", "null", 200, 500, 0.3, 0.0, 100, 100, 25),
    Cell("null_n200_d500_10pos", "null", 200, 500, 0.05, 0.0, 30, 30, 0),
    Cell("few10_n200_d500", "few_positives", 200, 500, 0.05, 1.1, 334, 21, 0),
    Cell("few20_n200_d500", "few_positives", 200, 500, 0.10, 0.95, 334, 21, 25),
    Cell("few45_n200_d500", "few_positives", 200, 500, 0.225, 0.8, 334, 21, 25),
    Cell("mod_n100_d50", "moderate", 100, 50, 0.3, 0.55, 945, 21, 40),
    Cell("mod_n300_d5000", "moderate", 300, 5000, 0.3, 1.0, 30, 0, 20),
    Cell("mod_n1000_d200", "moderate", 1000, 200, 0.3, 0.35, 25, 0, 0),
    Cell("strong_n100_d50", "strong", 100, 50, 0.3, 0.85, 900, 0, 40),
    Cell("strong_n200_d500", "strong", 200, 500, 0.3, 1.3, 100, 0, 25),
    Cell("null_simtrial_n200_d500", "null", 200, 500, 0.3, 0.0, 100, 100, 0, real="simtrial"),
]

FIELDS = [
    "cell",
    "group",
    "rep",
    "n",
    "D",
    "n_pos",
    "T",
    "truth_cond",
    *[
        f"{m}_{b}"
        for m in ("delong", "nb", "jack", "jack_plain", "boot", "boot_t")
        for b in ("lo", "hi")
    ],
    "p_perm",
    "p_jack",
    "p_delong",
    "seconds",
]

BOOT_FIELDS = ["cell", "rep", "T", "boot_lo", "boot_hi", "boot_t_lo", "boot_t_hi", "seconds"]

# the second-order-corrected jackknife pass (``--j2``): G = 10 delete-one and 45 delete-pair
# re-runs per replicate, all kept (``reps``, JSON) so other estimators can be formed from the CSV
J2_FIELDS = [
    "cell",
    "rep",
    "T",
    "truth_cond",
    "jack_lo",
    "jack_hi",
    "j2_lo",
    "j2_hi",
    "reps",
    "seconds",
]

# the fixed-C jackknife pass (``--jfix``): the G = 10 delete-one-group re-runs with each outer
# fold's C fixed at the value the full-data run chose for it (the inner-CV choice of C is the
# non-smooth part of the statistic; this pass measures how much of the jackknife's excess
# variance it accounts for); the delete-one statistics are kept (``reps``, JSON)
JFIX_FIELDS = ["cell", "rep", "T", "truth_cond", "jfix_lo", "jfix_hi", "reps", "seconds"]

# the nested-CV pass (``--ncv``): Bates, Hastie & Tibshirani (JASA 2023) nested cross-validation
# adapted to the pooled AUROC. For every repeat r and outer fold k of the main CV: the AUROC on
# fold k of fold k's decoder (``A_out``, fitted on the other folds, inner-CV choice of C as in
# the main run), its DeLong variance given the decoder (``b``: valid, the decoder never saw fold
# k), and the CV estimate ``T_in`` on the other folds (pooled AUROC over j != k of the decoders
# fitted without folds k and j). ``a = T_in - A_out``; the mean of ``a^2 - b`` estimates the
# mean squared error of a single CV estimate on n(K-1)/K patients; x (K-1)/K to n patients,
# minus (1 - 1/R) times the variance between the R repeats' AUROCs (T averages R repeats).
# The pieces are kept (``pieces``, JSON) so that other combinations can be formed from the CSV.
NCV_FIELDS = ["cell", "rep", "T", "truth_cond", "ncv_lo", "ncv_hi", "ncv_se", "pieces", "seconds"]

# the chance-level pass (``--chance``): the permutation null of the main pass re-run (same
# seeds, B = 19, whole nested CV with new folds per permutation) with every permuted statistic
# kept (``null``, JSON), so that the two-sided test of |T - 0.5| -- the test that decides
# whether the default interval contains chance level -- can be formed; ``p_greater`` must
# reproduce the main pass's ``p_perm`` where that ran, and ``T`` its ``T``
CHANCE_FIELDS = ["cell", "group", "rep", "T", "p_greater", "p_chance", "null", "seconds"]

N_LOADINGS = 10


def _real_matrix() -> np.ndarray:
    from sksurv.datasets import load_breast_cancer

    X, _ = load_breast_cancer()
    num = X.select_dtypes("number")
    return num.iloc[:, :76].to_numpy(np.float64)


def _simulate(cell: Cell, rng: np.random.Generator):
    """(X, y, delta, L) with x | y ~ N(y delta, L L^T + I)."""
    if cell.real == "simtrial":
        import tario_clinical as tc

        trial = tc.simulate_trial(
            cell.n, seed=int(rng.integers(2**31)), n_genes=cell.D, compute_attainable=False
        )
        X = np.asarray(trial.representations.X, dtype=np.float64)
        y = np.zeros(X.shape[0])
        y[rng.choice(X.shape[0], int(round(cell.prevalence * X.shape[0])), replace=False)] = 1
        return X.astype(np.float32), y, None, None
    if cell.real:
        X = _real_matrix()
        y = np.zeros(X.shape[0])
        y[rng.choice(X.shape[0], int(round(cell.prevalence * X.shape[0])), replace=False)] = 1
        return X.astype(np.float32), y, None, None
    # fixed population structure per cell (seeded by the cell), patients per replicate
    prng = np.random.default_rng(zlib.crc32(cell.name.encode()))
    L = prng.normal(scale=0.5, size=(cell.D, N_LOADINGS))
    delta = np.zeros(cell.D)
    delta[: min(10, cell.D)] = cell.signal
    n1 = int(round(cell.prevalence * cell.n))
    y = np.zeros(cell.n)
    y[:n1] = 1
    y = y[rng.permutation(cell.n)]
    Z = rng.normal(size=(cell.n, N_LOADINGS))
    X = y[:, None] * delta[None, :] + Z @ L.T + rng.normal(size=(cell.n, cell.D))
    return X.astype(np.float32), y, delta, L


def _pooled_truth(models, delta, L) -> float:
    """Exact AUROC of the pooled standardised scores of one repeat's fold models."""
    m1, m0, v = [], [], []
    for u, c in models:
        m0.append(c)
        m1.append(c + float(delta @ u))
        v.append(float(np.sum((L.T @ u) ** 2) + np.sum(u * u)))
    m1, m0, v = np.array(m1), np.array(m0), np.array(v)
    z = (m1[:, None] - m0[None, :]) / np.sqrt(v[:, None] + v[None, :])
    return float(stats.norm.cdf(z).mean())


def _replicate_truth(models: dict, delta, L) -> float:  # noqa: ANN001
    """Exact pooled AUROC of a replicate's fold models, averaged over its repeats (0.5 when the
    cell has no planted signal direction: real or simtrial features with null labels)."""
    if delta is None:
        return 0.5
    return float(np.mean([_pooled_truth(models[r], delta, L) for r in sorted(models)]))


def _replicate_setup(cell: Cell, rep: int):  # noqa: ANN202
    """Data, CV problem, plan and the remaining seeds of one replicate (identical in every pass)."""
    from tario_clinical.decode import default_Cs
    from tario_clinical.decode import inference as inf

    ss = np.random.SeedSequence([zlib.crc32(cell.name.encode()), rep])
    s_data, s_plan, s_jack, s_perm, s_boot = ss.spawn(5)
    X, y, delta, L = _simulate(cell, np.random.default_rng(s_data))
    n = X.shape[0]
    kw = dict(n_splits=5, n_repeats=5, n_inner_splits=5, stratify_jointly=True, groups=None)
    Cs = default_Cs(10, n, X.shape[1])
    problem = inf.CVProblem(X=X, codes=np.arange(n), Cs=Cs, feature_map=delta is not None)
    plan = inf.make_plan(y[:, None], seed_seq=s_plan, **kw)
    return X, y, delta, L, problem, plan, kw, (s_jack, s_perm, s_boot)


def one_j2(cell: Cell, rep: int) -> dict:
    """The ``--j2`` pass: same data, plan and jackknife groups as the main pass's replicate."""
    import json

    from threadpoolctl import threadpool_limits

    from tario_clinical.decode import inference as inf
    from tario_clinical.decode import intervals as ivl

    t0 = time.perf_counter()
    X, y, delta, L, problem, plan, kw, (s_jack, _s_perm, _s_boot) = _replicate_setup(cell, rep)
    Y = y[:, None]
    models: dict[int, list] = {}

    def hook(r, k, train, test, basis, ff):  # noqa: ANN001
        if delta is not None:
            models.setdefault(r, []).append(_fold_model(basis, ff))

    with threadpool_limits(1):
        T = inf.cv_statistic(problem, Y, plan, fold_hook=hook)
        jr = inf.jackknife_replicates(problem, Y, plan, n_groups=10, seed_seq=s_jack, pairs=True)
    truth = _replicate_truth(models, delta, L)
    lo, hi, _ = ivl.jackknife_interval_logit(T, jr[:10], 0.95)
    lo2, hi2, _ = ivl.jackknife2_interval(T, jr, 0.95, 10)
    return {
        "cell": cell.name,
        "rep": rep,
        "T": float(T[0]),
        "truth_cond": truth,
        "jack_lo": float(lo[0]),
        "jack_hi": float(hi[0]),
        "j2_lo": float(lo2[0]),
        "j2_hi": float(hi2[0]),
        "reps": json.dumps([round(float(v), 6) for v in jr[:, 0]]),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def cv_with(problem, Y, plan, keep, fit_fold):  # noqa: ANN001, ANN201
    """``inference.cv_statistic`` with the fold fit replaced: ``fit_fold(r, k, train, test,
    inner)`` returns the fold's standardised test scores (n_test, T), pooled as the package
    pools them (mean over repeats of the pooled AUROC)."""
    from tario_clinical.decode import inference as inf

    parts, reps, cods = [], [], []
    for r, k, train, test, inner in inf.fold_designs(plan, problem.codes, keep):
        parts.append(fit_fold(r, k, train, test, inner))
        reps.append(np.full(test.size, r))
        cods.append(problem.codes[test])
    aucs = inf._pooled_auroc_by_repeat(
        np.concatenate(parts),
        np.concatenate(reps),
        np.concatenate(cods),
        Y,
        plan.outer.shape[0],
        None,
    )
    return np.nanmean(aucs, axis=0)


def _cv_fixed_C(problem, Y, plan, keep, C_of):  # noqa: ANN001, ANN202
    """``inference.cv_statistic`` with each outer fold's C fixed (``C_of[(r, k)]``)."""
    from tario_clinical.decode import engine

    def fit(r, k, train, test, inner):  # noqa: ANN001, ANN202
        basis = engine.fold_basis(problem.X, train, test)
        C = np.array([C_of[(r, k)]])
        return engine.nested_fold(basis, Y[problem.codes][train], inner, C).test_std

    return cv_with(problem, Y, plan, keep, fit)


def one_jfix(cell: Cell, rep: int) -> dict:
    """The ``--jfix`` pass: same data, plan and jackknife groups as the main pass's replicate."""
    import json

    from threadpoolctl import threadpool_limits

    from tario_clinical.decode import inference as inf
    from tario_clinical.decode import intervals as ivl
    from tario_clinical.decode.splitters import assign_folds

    t0 = time.perf_counter()
    X, y, delta, L, problem, plan, kw, (s_jack, _s_perm, _s_boot) = _replicate_setup(cell, rep)
    Y = y[:, None]
    models: dict[int, list] = {}
    C_of: dict = {}

    def hook(r, k, train, test, basis, ff):  # noqa: ANN001
        C_of[(r, k)] = float(ff.best_C[0])
        if delta is not None:
            models.setdefault(r, []).append(_fold_model(basis, ff))

    with threadpool_limits(1):
        T = inf.cv_statistic(problem, Y, plan, fold_hook=hook)
        groups = assign_folds(Y, 10, np.random.default_rng(s_jack))
        jr = np.vstack([_cv_fixed_C(problem, Y, plan, groups != g, C_of) for g in range(10)])
    truth = _replicate_truth(models, delta, L)
    lo, hi, _ = ivl.jackknife_interval_logit(T, jr, 0.95)
    return {
        "cell": cell.name,
        "rep": rep,
        "T": float(T[0]),
        "truth_cond": truth,
        "jfix_lo": float(lo[0]),
        "jfix_hi": float(hi[0]),
        "reps": json.dumps([round(float(v), 6) for v in jr[:, 0]]),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def ncv_se(a: np.ndarray, b: np.ndarray, t_rep: np.ndarray, K: int) -> float:
    """The NCV standard error of the repeat-mean pooled AUROC (see ``NCV_FIELDS``); 0 if <= 0."""
    R = t_rep.size
    mse = float(np.mean(a * a - b)) * (K - 1) / K
    split = float(np.var(t_rep, ddof=1)) if R > 1 else 0.0
    return float(np.sqrt(max(mse - (1.0 - 1.0 / R) * split, 0.0)))


def one_ncv(cell: Cell, rep: int) -> dict:
    """The ``--ncv`` pass: same data and plan as the main pass's replicate."""
    import json

    from threadpoolctl import threadpool_limits

    from tario_clinical import metrics
    from tario_clinical.decode import engine
    from tario_clinical.decode import inference as inf
    from tario_clinical.decode import intervals as ivl
    from tario_clinical.decode.splitters import assign_folds

    t0 = time.perf_counter()
    X, y, delta, L, problem, plan, kw, _seeds = _replicate_setup(cell, rep)
    Y = y[:, None]
    n = X.shape[0]
    K = int(plan.outer.max()) + 1
    R = plan.outer.shape[0]
    models: dict[int, list] = {}
    a_out: dict = {}
    b_out: dict = {}
    oof = {r: np.full(n, np.nan) for r in range(R)}

    def hook(r, k, train, test, basis, ff):  # noqa: ANN001
        sc = ff.test_std[:, 0]
        oof[r][test] = sc
        a_out[(r, k)] = metrics.auroc(y[test].astype(int), sc)
        b_out[(r, k)] = metrics.auroc_ci(y[test].astype(int), sc).se ** 2
        if delta is not None:
            models.setdefault(r, []).append(_fold_model(basis, ff))

    ss_pairs = np.random.SeedSequence([zlib.crc32(cell.name.encode()), rep, 7])
    with threadpool_limits(1):
        T = float(inf.cv_statistic(problem, Y, plan, fold_hook=hook)[0])
        t_rep = np.array([metrics.auroc(y.astype(int), oof[r]) for r in range(R)])
        a, b = [], []
        pair_seeds = iter(ss_pairs.spawn(R * K * (K - 1) // 2))
        for r in range(R):
            fold = plan.outer[r]
            # scores of fold j's patients from the decoder fitted without folds k and j
            inner_sc: dict = {}
            for k in range(K):
                for j in range(k + 1, K):
                    train = np.flatnonzero((fold != k) & (fold != j))
                    test = np.flatnonzero((fold == k) | (fold == j))
                    inner = assign_folds(Y[train], 5, np.random.default_rng(next(pair_seeds)))
                    basis = engine.fold_basis(X, train, test)
                    ff = engine.nested_fold(basis, Y[train], inner, problem.Cs)
                    for q, f_ in ((k, j), (j, k)):
                        rows = fold[test] == q
                        inner_sc[(f_, q)] = (test[rows], ff.test_std[rows, 0])
            for k in range(K):
                idx = np.concatenate([inner_sc[(k, q)][0] for q in range(K) if q != k])
                sc = np.concatenate([inner_sc[(k, q)][1] for q in range(K) if q != k])
                t_in = metrics.auroc(y[idx].astype(int), sc)
                a.append(t_in - a_out[(r, k)])
                b.append(b_out[(r, k)])
    a, b = np.array(a), np.array(b)
    se = ncv_se(a, b, t_rep, K)
    # interval on the logit scale (delta method), as the default jackknife's
    lt = ivl.logit(np.array([T]))[0]
    se_l = se / max(T * (1.0 - T), 1e-12)
    truth = _replicate_truth(models, delta, L)
    return {
        "cell": cell.name,
        "rep": rep,
        "T": T,
        "truth_cond": truth,
        "ncv_lo": float(ivl.expit(lt - 1.959964 * se_l)),
        "ncv_hi": float(ivl.expit(lt + 1.959964 * se_l)),
        "ncv_se": se,
        "pieces": json.dumps(
            {
                "a": [round(float(v), 6) for v in a],
                "b": [round(float(v), 8) for v in b],
                "t_rep": [round(float(v), 6) for v in t_rep],
            }
        ),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def _fold_model(basis, ff) -> tuple[np.ndarray, float]:  # noqa: ANN001
    """The fold's standardised score as ``x . u + c`` in the raw feature space."""
    v, b = ff.coef[:, 0], ff.intercept[0]
    return fold_model_from(basis, v, b, basis.F @ v + b)


def fold_model_from(basis, v, b, f_train) -> tuple[np.ndarray, float]:  # noqa: ANN001
    """``x . u + c``: the score ``(F v + b - mean(f_train)) / sd(f_train)`` in raw features."""
    w = basis.feature_map @ v
    mu, sd = f_train.mean(), f_train.std()
    sd = sd if sd > 0 else 1.0
    u = (w / basis.scale) / sd
    c = (-(basis.mean / basis.scale) @ w + b - mu) / sd
    return u, float(c)


def one(cell: Cell, rep: int, *, boot_only: bool = False) -> dict:
    from threadpoolctl import threadpool_limits

    from tario_clinical import metrics
    from tario_clinical.decode import inference as inf
    from tario_clinical.decode import intervals as ivl

    t0 = time.perf_counter()
    X, y, delta, L, problem, plan, kw, (s_jack, s_perm, s_boot) = _replicate_setup(cell, rep)
    Y = y[:, None]
    n = X.shape[0]
    models: dict[int, list] = {}
    scores = {r: np.full(n, np.nan) for r in range(5)}
    fold_auc = []

    def hook(r, k, train, test, basis, ff):  # noqa: ANN001
        scores[r][test] = ff.test_std[:, 0]
        yt = y[test]
        if 0 < yt.sum() < yt.size:
            fold_auc.append(metrics.auroc(yt.astype(int), ff.test_std[:, 0]))
        if delta is not None:
            models.setdefault(r, []).append(_fold_model(basis, ff))

    with threadpool_limits(1):
        if boot_only:
            T = float(inf.cv_statistic(problem, Y, plan)[0])
            br = inf.bootstrap_replicates(problem, Y, kw, n_bootstrap=20, seed_seq=s_boot)
            lo, hi, _ = ivl.bootstrap_interval(np.array([T]), br, 0.95)
            lb = ivl.logit(br[:, 0])
            sd, lt, qt = lb.std(ddof=1), ivl.logit(np.array([T]))[0], stats.t.ppf(0.975, 19)
            return {
                "cell": cell.name,
                "rep": rep,
                "T": T,
                "boot_lo": float(lo[0]),
                "boot_hi": float(hi[0]),
                "boot_t_lo": float(ivl.expit(lt - qt * sd)),
                "boot_t_hi": float(ivl.expit(lt + qt * sd)),
                "seconds": round(time.perf_counter() - t0, 3),
            }
        T = float(inf.cv_statistic(problem, Y, plan, fold_hook=hook)[0])
        row: dict = {f: "" for f in FIELDS}
        row.update(cell=cell.name, group=cell.group, rep=rep, n=n, D=X.shape[1], n_pos=int(y.sum()))
        row["T"] = T
        row["truth_cond"] = _replicate_truth(models, delta, L)
        # DeLong on OOF scores, averaged over repeats
        ses = [metrics.auroc_ci(y.astype(int), scores[r]).se for r in range(5)]
        se_d = float(np.mean(ses))
        row["delong_lo"], row["delong_hi"] = T - 1.959964 * se_d, T + 1.959964 * se_d
        row["p_delong"] = float(stats.norm.sf((T - 0.5) / se_d)) if se_d > 0 else ""
        # Nadeau-Bengio corrected resampled variance of per-fold AUROCs
        fa = np.array(fold_auc)
        if fa.size > 2:
            v_nb = (1 / fa.size + 0.25) * fa.var(ddof=1)
            row["nb_lo"], row["nb_hi"] = T - 1.959964 * np.sqrt(v_nb), T + 1.959964 * np.sqrt(v_nb)
        # grouped jackknife (default)
        jr = inf.jackknife_replicates(problem, Y, plan, n_groups=10, seed_seq=s_jack)
        lo, hi, _ = ivl.jackknife_interval_logit(np.array([T]), jr, 0.95)
        row["jack_lo"], row["jack_hi"] = float(lo[0]), float(hi[0])
        jv = 0.9 * np.sum((jr[:, 0] - jr[:, 0].mean()) ** 2)
        q9 = stats.t.ppf(0.975, 9)
        row["jack_plain_lo"], row["jack_plain_hi"] = T - q9 * np.sqrt(jv), T + q9 * np.sqrt(jv)
        lj = ivl.logit(jr[:, 0])
        se_l = np.sqrt(0.9 * np.sum((lj - lj.mean()) ** 2))
        row["p_jack"] = float(stats.t.sf(ivl.logit(np.array([T]))[0] / se_l, 9)) if se_l > 0 else ""
        if rep < cell.perm_reps:
            null = inf.permutation_null(problem, Y, kw, n_permutations=19, seed_seq=s_perm)
            row["p_perm"] = float(ivl.permutation_pvalue(np.array([T]), null, "greater")[0])
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def one_chance(cell: Cell, rep: int) -> dict:
    """T and the B = 19 permutation null of the main pass (same seeds), every T_b kept."""
    import json

    from threadpoolctl import threadpool_limits

    from tario_clinical.decode import inference as inf
    from tario_clinical.decode import intervals as ivl

    t0 = time.perf_counter()
    X, y, delta, L, problem, plan, kw, (s_jack, s_perm, s_boot) = _replicate_setup(cell, rep)
    Y = y[:, None]
    with threadpool_limits(1):
        T = inf.cv_statistic(problem, Y, plan)
        null = inf.permutation_null(problem, Y, kw, n_permutations=19, seed_seq=s_perm)
    return {
        "cell": cell.name,
        "group": cell.group,
        "rep": rep,
        "T": float(T[0]),
        "p_greater": float(ivl.permutation_pvalue(T, null, "greater")[0]),
        "p_chance": float(ivl.chance_pvalue(T, null)[0]),
        "null": json.dumps([float(f"{v:.10g}") for v in null[:, 0]]),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _task(args):  # noqa: ANN001, ANN202
    cell, rep, mode = args
    if mode == "chance":
        return one_chance(cell, rep)
    if mode == "j2":
        return one_j2(cell, rep)
    if mode == "jfix":
        return one_jfix(cell, rep)
    if mode == "ncv":
        return one_ncv(cell, rep)
    return one(cell, rep, boot_only=mode == "boot")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    ap.add_argument("--max-reps", type=int, default=0, help="cap replicates per cell (smoke)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument(
        "--boot",
        action="store_true",
        help="bootstrap pass: B = 20 bootstrap intervals for the first boot_reps replicates of "
        "each cell (same data and T as the main pass), into replicates_boot.csv",
    )
    ap.add_argument(
        "--j2",
        action="store_true",
        help="second-order-corrected jackknife pass (G = 10 groups and their 45 pairs) over "
        "the first j2_reps replicates of each cell, into replicates_j2.csv",
    )
    ap.add_argument("--j2-reps", type=int, default=400, help="replicates per cell in --j2")
    ap.add_argument(
        "--jfix",
        action="store_true",
        help="fixed-C jackknife pass (each outer fold's C fixed at the full-data run's choice) "
        "over the first j2_reps replicates of each cell, into replicates_jfix.csv",
    )
    ap.add_argument(
        "--ncv",
        action="store_true",
        help="nested-CV pass (Bates, Hastie & Tibshirani 2023, adapted to the pooled AUROC) over "
        "the first j2_reps replicates of each cell, into replicates_ncv.csv",
    )
    ap.add_argument(
        "--chance",
        action="store_true",
        help="chance-level pass: the permutation null (B = 19, same seeds as the main pass) of "
        "every null-cell replicate and of the first --chance-signal-reps replicates of each "
        "signal cell, every permuted statistic kept, into replicates_chance.csv",
    )
    ap.add_argument("--chance-signal-reps", type=int, default=60)
    args = ap.parse_args()
    if args.chance and args.out == str(OUT):
        args.out = str(HERE / "replicates_chance.csv")
    if args.ncv and args.out == str(OUT):
        args.out = str(HERE / "replicates_ncv.csv")
    if args.boot and args.out == str(OUT):
        args.out = str(HERE / "replicates_boot.csv")
    if args.j2 and args.out == str(OUT):
        args.out = str(HERE / "replicates_j2.csv")
    if args.jfix and args.out == str(OUT):
        args.out = str(HERE / "replicates_jfix.csv")
    mode = (
        "boot"
        if args.boot
        else "j2"
        if args.j2
        else "jfix"
        if args.jfix
        else "ncv"
        if args.ncv
        else "chance"
        if args.chance
        else "main"
    )
    cells = [c for c in CELLS if not args.cells or c.name in args.cells.split(",")]
    out = Path(args.out)
    done = set()
    if out.exists():
        with out.open() as fh:
            for r in csv.DictReader(fh):
                done.add((r["cell"], int(r["rep"])))
    # interleave cells so every cell fills up at the same pace
    tasks = []
    max_reps = max(max(c.reps for c in cells), args.j2_reps)
    for rep in range(max_reps):
        for c in cells:
            cap = (
                (c.reps if c.group == "null" else min(c.reps, args.chance_signal_reps))
                if args.chance
                else c.boot_reps
                if args.boot
                else args.j2_reps
                if args.j2 or args.jfix or args.ncv
                else c.reps
            )
            cap = cap if not args.max_reps else min(cap, args.max_reps)
            if rep < cap and (c.name, rep) not in done:
                tasks.append((c, rep, mode))
    print(f"{len(tasks)} replicates to run ({len(done)} done)", file=sys.stderr, flush=True)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        fields = (
            BOOT_FIELDS
            if args.boot
            else J2_FIELDS
            if args.j2
            else JFIX_FIELDS
            if args.jfix
            else NCV_FIELDS
            if args.ncv
            else CHANCE_FIELDS
            if args.chance
            else FIELDS
        )
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        if args.jobs == 1:
            it = map(_task, tasks)
        else:
            import multiprocessing as mp

            pool = mp.get_context("fork").Pool(args.jobs)
            it = pool.imap_unordered(_task, tasks, chunksize=1)
        for i, row in enumerate(it, 1):
            w.writerow(row)
            fh.flush()
            if i % 25 == 0:
                print(f"{i}/{len(tasks)}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
