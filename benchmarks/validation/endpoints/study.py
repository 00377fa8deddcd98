"""Validation study: coverage of the endpoint decoders' intervals and size/power of the benefit test.

Every replicate simulates a cohort from a Gaussian design with known truth, runs the endpoint's
default nested CV (5-fold x 5 repeats, 5 inner folds, the decoder's default penalty path, fast
engine in the span of the rows) through the decoder's own problem class
(``tario_clinical.decode.{regression,multiclass,survival_decoder,benefit}``) and
:func:`tario_clinical.decode.endpoint_inference.endpoint_inference`, and records, for every
metric of the endpoint (one CSV row per replicate and metric):

* ``T``: the statistic (mean over repeats of the metric of the pooled OOF predictions);
* ``truth``: the same metric of the *fitted fold models* on infinitely many new patients
  (``truth_cond``; see below); the estimand is its mean over the cell's replicates;
* the default interval (grouped jackknife of the whole nested CV, G = 10, the metric's scale,
  t_9: ``jack_lo, jack_hi``) and the jackknife Wald p-value (``p_jack``);
* the OOF-formula interval and p-value (``oof_lo, oof_hi, p_oof``; they treat OOF predictions as
  independent: kept for comparison);
* ``jack_reps``: the G = 10 delete-one-group statistics (JSON list), so that corrected
  jackknife variants (e.g. the (G - 2) / (2 (G - 1)) interaction correction) can be evaluated
  from the CSV without rerunning; ``jack_g`` the size of each deleted group.

Truth (``truth``, per replicate, averaged over the 5 repeats):

* continuous (``y = x'beta + e``, ``x ~ N(0, L L' + I)``, ``e ~ N(0, 1)``): every fold model's
  prediction is affine in ``x``, ``f_k(x) = a_k + b_k'x``; ``a_k, b_k`` are read off the fitted
  fold model by predicting ``D + 1`` probe rows (``0`` and the unit vectors) alongside its test
  rows. The pooled R^2 and Pearson r on infinitely many new patients are then exact Gaussian
  moments (folds weighted by their test share ``n_k / n``): ``R^2 = 1 - sum_k w_k [(beta -
  b_k)' S (beta - b_k) + a_k^2 + 1] / Var(y)``, ``r = sum_k w_k b_k' S beta / sqrt(Var(y)
  Var(f))``, ``Var(f) = sum_k w_k (b_k' S b_k + a_k^2) - (sum_k w_k a_k)^2``.
* categorical (4 classes, ``x | c ~ N(mu_c, L L' + I)``): the fold models' class probabilities
  for ``M_CAT`` fresh patients of the population (scored with the fold's test rows), pooled over
  the folds of a repeat exactly as the OOF predictions are, give every metric
  (:func:`~tario_clinical.decode.multiclass.categorical_metrics`) by Monte Carlo.
* survival (log-hazard ``x'beta``, exponential times, administrative censoring at 24 plus
  exponential drop-out): the fold models' score, linear predictor and risk for ``M_SURV`` fresh
  patients (same censoring), pooled per repeat, through
  :func:`~tario_clinical.decode.survival_decoder.survival_metrics` (Harrell's and Uno's C, time-
  dependent AUC at the run's own horizons ...).
* null cells: AUROCs and C's are 0.5 and correlations 0 exactly in the population
  (``truth`` still records the Monte Carlo / exact value of the fitted models).

Benefit cells (two arms 1:1, log-hazard ``x'beta_prog + arm (-0.3 + x'beta_pred)``, the
prognostic and predictive directions on different features): no planted benefit
(``beta_pred = 0``) gives the size of the one-sided tests of the arm x benefit-score
interaction and of the high-vs-low-group log-HR difference at 0.05; a planted benefit gives
their power.

Seeds: ``SeedSequence([crc32(cell name), rep])`` spawns data, plan and jackknife groups, truth
sample. The population (loadings, class means, coefficients) is fixed per cell
(``default_rng(crc32(cell name))``).

Usage (resumable; appends to ``replicates.csv``; one worker)::

    python benchmarks/validation/endpoints/study.py
    python benchmarks/validation/endpoints/summarise.py
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "replicates.csv"
N_LOADINGS = 10
N_SIGNAL = 10
M_CAT = 20_000
M_SURV = 4_000
G = 10
ADMIN = 24.0
DROPOUT = 0.02
BASE_HAZARD = 0.08


@dataclass(frozen=True)
class Cell:
    name: str
    endpoint: str  # continuous | categorical | survival | benefit
    n: int
    D: int
    signal: float  # continuous: population R^2 of x'beta; categorical: SD of class means;
    # survival: SD of the log-hazard; benefit: SD of the predictive log-HR term
    reps: int


CELLS = [
    Cell("cont_n150_d50", "continuous", 150, 50, 0.5, 400),
    Cell("cont_null_n150_d50", "continuous", 150, 50, 0.0, 400),
    Cell("cat_n150_d50", "categorical", 150, 50, 0.5, 400),
    Cell("cat_null_n150_d50", "categorical", 150, 50, 0.0, 400),
    Cell("surv_n150_d50", "survival", 150, 50, 0.8, 400),
    Cell("surv_null_n150_d50", "survival", 150, 50, 0.0, 400),
    Cell("ben_null_n200_d20", "benefit", 200, 20, 0.0, 400),
    Cell("ben_planted_n200_d20", "benefit", 200, 20, 1.0, 400),
]

FIELDS = [
    "cell",
    "endpoint",
    "rep",
    "n",
    "D",
    "metric",
    "T",
    "truth",
    "jack_lo",
    "jack_hi",
    "p_jack",
    "oof_lo",
    "oof_hi",
    "p_oof",
    "jack_reps",
    "jack_g",
    "seconds",
]

#: relative seconds per replicate (scheduling only)
COST = {"continuous": 0.2, "categorical": 1.0, "survival": 1.2, "benefit": 0.6}

CLASS_P = np.array([0.4, 0.3, 0.2, 0.1])


# ------------------------------------------------------------------------------ population
class Population:
    """Fixed per cell: loadings, signal directions, class means."""

    def __init__(self, cell: Cell) -> None:
        prng = np.random.default_rng(zlib.crc32(cell.name.encode()))
        D = cell.D
        self.L = prng.normal(scale=0.5, size=(D, N_LOADINGS))
        self.S = self.L @ self.L.T + np.eye(D)
        self.cell = cell
        sig = np.zeros(D)
        sig[:N_SIGNAL] = prng.normal(size=N_SIGNAL)
        pred = np.zeros(D)
        pred[N_SIGNAL : 2 * N_SIGNAL] = prng.normal(size=N_SIGNAL)
        self.mu = np.zeros((CLASS_P.size, D))
        self.mu[:, :N_SIGNAL] = prng.normal(size=(CLASS_P.size, N_SIGNAL))
        self.mu *= cell.signal
        if cell.endpoint == "continuous":
            # var(x'beta) = R2 / (1 - R2) so that the population R^2 of x'beta is `signal`
            v = cell.signal / (1.0 - cell.signal)
            self.beta = sig * np.sqrt(v / (sig @ self.S @ sig)) if v > 0 else np.zeros(D)
        elif cell.endpoint in ("survival", "benefit"):
            sd = cell.signal if cell.endpoint == "survival" else 0.7
            self.beta = sig * (sd / np.sqrt(sig @ self.S @ sig)) if sd > 0 else np.zeros(D)
            sdp = cell.signal if cell.endpoint == "benefit" else 0.0
            self.beta_pred = pred * (sdp / np.sqrt(pred @ self.S @ pred)) if sdp > 0 else 0 * pred

    def x(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(size=(n, N_LOADINGS)) @ self.L.T + rng.normal(size=(n, self.cell.D))

    def continuous(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        X = self.x(rng, n)
        return X, X @ self.beta + rng.normal(size=n)

    def categorical(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        # fixed class counts in the sample (as a study's cohort), random in the truth sample
        if n == self.cell.n:
            counts = np.round(CLASS_P * n).astype(int)
            counts[0] += n - counts.sum()
            y = rng.permutation(np.repeat(np.arange(CLASS_P.size), counts))
        else:
            y = rng.choice(CLASS_P.size, size=n, p=CLASS_P)
        return self.x(rng, n) + self.mu[y], y.astype(float)

    def _times(self, rng: np.random.Generator, lp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = lp.size
        t_true = rng.exponential(1.0 / (BASE_HAZARD * np.exp(lp)))
        cens = np.minimum(rng.uniform(ADMIN / 2, ADMIN, n), rng.exponential(1.0 / DROPOUT, n))
        return np.minimum(t_true, cens), (t_true <= cens).astype(float)

    def survival(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        X = self.x(rng, n)
        t, e = self._times(rng, X @ self.beta)
        return X, np.column_stack([t, e])

    def benefit(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        X = self.x(rng, n)
        arm = rng.permutation(np.arange(n) % 2).astype(float)
        lp = X @ self.beta + arm * (-0.3 + X @ self.beta_pred)
        t, e = self._times(rng, lp)
        return X, np.column_stack([t, e, arm])


# ------------------------------------------------------------------------------ problems
def _problems():  # noqa: ANN202 - the decoders' problem classes with a truth hook
    from tario_clinical.decode import engine as _engine
    from tario_clinical.decode import multiclass, regression, survival_decoder
    from tario_clinical.decode.endpoint_inference import FoldPredictions, renumber_inner

    class RegTruth(regression._RegressionProblem):
        """Also predicts ``extra`` rows of ``X`` with every outer fold model (stashed)."""

        extra: np.ndarray | None = None
        stash: list | None = None

        def _fit_fold(self, train, test, y, inner):  # noqa: ANN001, ANN202
            if self.extra is None:
                return super()._fit_fold(train, test, y, inner)
            a, yhat = super()._fit_fold(train, np.concatenate([test, self.extra]), y, inner)
            self.stash.append(yhat[test.size :])
            return a, yhat[: test.size]

    class SurvTruth(survival_decoder._SurvivalProblem):
        extra: np.ndarray | None = None
        stash: list | None = None

        def fit_fold(self, train, test, t, e, inner):  # noqa: ANN001, ANN202
            if self.extra is None:
                return super().fit_fold(train, test, t, e, inner)
            lam, tr, te = super().fit_fold(train, np.concatenate([test, self.extra]), t, e, inner)
            self.stash.append((t, e, tr, te[test.size :]))
            return lam, tr, te[: test.size]

    class CatTruth(multiclass._CategoricalProblem):
        extra: np.ndarray | None = None
        stash: list | None = None

        def cross_validate(self, rows, y, outer, inner):  # noqa: ANN001, ANN202
            if self.extra is None:
                return super().cross_validate(rows, y, outer, inner)
            # the decoder's loop (multiclass._CategoricalProblem.cross_validate) with the truth
            # sample appended to every fold's test rows
            R = outer.shape[0]
            K = len(self.classes)
            nK = len(inner) // R
            pred = np.full((R, rows.size, K), np.nan)
            for i in range(R * nK):
                r, k = divmod(i, nK)
                train = np.flatnonzero(outer[r] != k)
                test = np.flatnonzero(outer[r] == k)
                inn = renumber_inner(inner[i][train])
                basis = _engine.fold_basis(
                    self.X,
                    rows[train],
                    np.concatenate([rows[test], self.extra]),
                    n_components=self.pca,
                )
                _, P = self.fit_fold(basis, y[train].astype(int), inn)
                pred[r, test] = P[: test.size]
                self.stash.append(P[test.size :])
            return FoldPredictions(pred=pred, fold=outer.copy(), penalty=[])

    return RegTruth, SurvTruth, CatTruth


# ------------------------------------------------------------------------------ truths
def _truth_continuous(pop: Population, stash: list, plan_outer: np.ndarray, n: int) -> dict:
    R, K = plan_outer.shape[0], len(stash) // plan_outer.shape[0]
    S, beta = pop.S, pop.beta
    vy = float(beta @ S @ beta) + 1.0
    r2s, rs = [], []
    for r in range(R):
        w = np.array([np.mean(plan_outer[r] == k) for k in range(K)])
        mse = ea = ef2 = cov = 0.0
        for k in range(K):
            p = stash[r * K + k]
            a, b = p[0], p[1:] - p[0]
            d = beta - b
            mse += w[k] * (d @ S @ d + a * a + 1.0)
            ea += w[k] * a
            ef2 += w[k] * (b @ S @ b + a * a)
            cov += w[k] * (b @ S @ beta)
        r2s.append(1.0 - mse / vy)
        vf = ef2 - ea * ea
        rs.append(cov / np.sqrt(vy * vf) if vf > 0 else np.nan)
    return {"r2": float(np.mean(r2s)), "pearson_r": float(np.nanmean(rs))}


def _truth_categorical(problem, y_new: np.ndarray, stash: list, R: int) -> np.ndarray:  # noqa: ANN001
    from tario_clinical.decode.multiclass import categorical_metrics

    K = len(problem.classes)
    nK = len(stash) // R
    per = []
    for r in range(R):
        P = np.vstack(stash[r * nK : (r + 1) * nK])
        per.append(categorical_metrics(np.tile(y_new, nK), P, K))
    return np.nanmean(np.array(per), axis=0)


def _concordance_counts(t: np.ndarray, e: np.ndarray, s: np.ndarray) -> tuple:
    """Per event ``i``: #{j: t_j > t_i, s_j < s_i} (+1/2 per tie in score) and #{j: t_j > t_i}.

    O(N log N) (Fenwick tree over score ranks, times descending); for the truth samples, whose
    times are continuous (no ties in time), so every pair with ``t_j > t_i`` and ``i`` an event
    is comparable -- :func:`tario_clinical.survival.kernels.pair_concordance`'s definition.
    """
    n = t.size
    _, rk = np.unique(s, return_inverse=True)
    m = int(rk.max()) + 2
    tree = [0] * (m + 1)
    order = np.argsort(-t, kind="mergesort")
    less = np.zeros(n)
    tie = np.zeros(n)
    later = np.zeros(n)
    cnt = np.zeros(m, dtype=np.int64)
    seen = 0
    for i in order.tolist():
        r = int(rk[i]) + 1
        if e[i]:
            q, acc = r - 1, 0
            while q > 0:
                acc += tree[q]
                q -= q & -q
            less[i], tie[i], later[i] = acc, cnt[r], seen
        q = r
        while q <= m:
            tree[q] += 1
            q += q & -q
        cnt[r] += 1
        seen += 1
    return less + 0.5 * tie, later


def _truth_survival(problem, y_new: np.ndarray, stash: list, R: int) -> dict:  # noqa: ANN001
    """Harrell's C, Uno's C and td-AUC of the pooled fold models on the truth sample."""
    from tario_clinical.decode.inference import weighted_auroc
    from tario_clinical.decode.survival_decoder import _censoring_at

    nK = len(stash) // R
    t = np.tile(y_new[:, 0], nK)
    e = np.tile(y_new[:, 1], nK).astype(bool)
    g = _censoring_at(t, e.astype(float))
    with np.errstate(divide="ignore"):
        w_uno = np.where(e & (g > 0), 1.0 / g**2, 0.0)
        w_td = 1.0 / np.where(g > 0, g, np.inf)
    out: dict[str, list] = {}
    for r in range(R):
        sc = []
        for _, _, tr, te in stash[r * nK : (r + 1) * nK]:
            mu, sd = tr.mean(), tr.std()
            sc.append((te - mu) / (sd if sd > 0 else 1.0))
        s = np.concatenate(sc)
        conc, comp = _concordance_counts(t, e, s)
        out.setdefault("harrell_c", []).append(conc[e].sum() / comp[e].sum())
        out.setdefault("uno_c", []).append((w_uno * conc).sum() / (w_uno * comp).sum())
        for h in problem.times:
            case = e & (t <= h)
            ctrl = t > h
            use = case | ctrl
            wt = np.where(case, w_td, 1.0)
            out.setdefault(f"td_auc@{h:g}", []).append(weighted_auroc(case[use], s[use], wt[use]))
    return {k: float(np.mean(v)) for k, v in out.items()}


# ------------------------------------------------------------------------------ one replicate
#: the chance-level pass (``--chance``): per replicate and metric with an exact null value
#: (``MetricSpec.exact_null``), the statistic, the B = 19 permutation statistics of the
#: decoder's default permutation test (its own child seed, the whole nested CV re-run with new
#: folds) and the two-sided p of |T - null| that decides whether the default interval
#: contains the null value; into ``replicates_chance.csv``
CHANCE_FIELDS = [
    "cell",
    "endpoint",
    "rep",
    "metric",
    "T",
    "null_value",
    "p_chance",
    "null",
    "seconds",
]
CHANCE_B = 19


def chance_rows(cell, rep, problem, y, design, T, seed, t0):  # noqa: ANN001, ANN201, PLR0913
    from threadpoolctl import threadpool_limits

    from tario_clinical.decode import intervals as ivl
    from tario_clinical.decode.endpoint_inference import endpoint_inference

    M = len(problem.metrics)
    nan4 = tuple(np.full(M, np.nan) for _ in range(4))
    with threadpool_limits(1):
        _, reps = endpoint_inference(
            problem,
            y,
            design,
            T,
            ci_method="oof",
            p_method="permutation",
            level=0.95,
            n_jackknife=G,
            n_bootstrap=2,
            n_permutations=CHANCE_B,
            seed=seed,
            n_jobs=1,
            progress=False,
            oof_inference=lambda: nan4,
        )
    secs = round(time.perf_counter() - t0, 3)
    rows = []
    for j, m in enumerate(problem.metrics):
        if not m.exact_null:
            continue
        col = reps["permutation"][m.name].to_numpy()
        col = np.where(np.isfinite(col), col, m.null)
        p = ivl.chance_pvalue(np.array([T[j]]), col[:, None], m.null)[0]
        rows.append(
            {
                "cell": cell.name,
                "endpoint": cell.endpoint,
                "rep": rep,
                "metric": m.name,
                "T": float(T[j]),
                "null_value": m.null,
                "p_chance": float(p),
                "null": json.dumps([float(f"{v:.8g}") for v in col]),
                "seconds": secs,
            }
        )
    return rows


def one(cell: Cell, rep: int, *, chance: bool = False) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from tario_clinical.decode import benefit as ben
    from tario_clinical.decode import multiclass, regression, survival_decoder
    from tario_clinical.decode.cross_validation import default_Cs
    from tario_clinical.decode.endpoint_inference import (
        cross_validate_plan,
        cv_design,
    )

    RegTruth, SurvTruth, CatTruth = _problems()
    t0 = time.perf_counter()
    ss = np.random.SeedSequence([zlib.crc32(cell.name.encode()), rep])
    s_data, s_plan, s_truth = ss.spawn(3)
    seed = int(s_plan.generate_state(1)[0])
    pop = Population(cell)
    rng = np.random.default_rng(s_data)
    n, D = cell.n, cell.D
    X, y = getattr(pop, cell.endpoint)(rng, n)
    trng = np.random.default_rng(s_truth)
    truth: dict[str, float] = {}
    with threadpool_limits(1):
        if cell.endpoint == "continuous":
            probes = np.vstack([np.zeros(D), np.eye(D)])
            problem = RegTruth(X=np.vstack([X, probes]), alphas=regression.default_alphas(13, n, D))
            problem.extra = np.arange(n, n + D + 1)
            oof = lambda run: regression._oof_formulas(  # noqa: E731
                y, np.nanmean(run.pred[:, :, 0], axis=0), 0.95
            )
        elif cell.endpoint == "categorical":
            Xn, yn = pop.categorical(trng, M_CAT)
            K = CLASS_P.size
            problem = CatTruth(
                X=np.vstack([X, Xn]), Cs=default_Cs(10, n, D), classes=[f"c{j}" for j in range(K)]
            )
            problem.extra = np.arange(n, n + M_CAT)
            oof = lambda run: multiclass._oof_formulas(  # noqa: E731
                y, np.nanmean(run.pred, axis=0), K, 0.95
            )
        elif cell.endpoint == "survival":
            Xn, yn = pop.survival(trng, M_SURV)
            ev = y[y[:, 1] == 1, 0]
            problem = SurvTruth(
                X=np.vstack([X, Xn]),
                lambdas=survival_decoder.default_lambdas(10, n, D, int(y[:, 1].sum())),
                horizon=float(np.median(ev)),
                times=np.quantile(ev, [0.25, 0.5, 0.75]),
            )
            problem.extra = np.arange(n, n + M_SURV)
            oof = lambda run: survival_decoder._oof_formulas(  # noqa: E731
                y, np.nanmean(run.pred[:, :, 0], axis=0), len(problem.metrics), 0.95
            )
        else:
            pen = survival_decoder.default_lambdas(10, n, D, int(y[:, 1].sum())) / 4.0
            problem = ben._BenefitProblem(X=X, penalties=pen, survival=True)
            oof = lambda run: ben._oof_formulas(  # noqa: E731
                np.nanmean(run.pred[:, :, 0], axis=0), run, y, True, "median", 0.95
            )
        if hasattr(problem, "extra"):
            problem.stash = []
        design = cv_design(
            problem.strata(y),
            pd.DataFrame(index=np.arange(n)),
            cv=None,
            n_splits=5,
            n_repeats=5,
            n_inner_splits=5,
            group_by=None,
            seed=seed,
        )
        run = cross_validate_plan(problem, y, design.plan)
        T = problem.statistics(y, run)
        names = [m.name for m in problem.metrics]
        if cell.endpoint == "continuous":
            truth = _truth_continuous(pop, problem.stash, design.plan.outer, n)
        elif cell.endpoint == "categorical":
            truth = dict(zip(names, _truth_categorical(problem, yn, problem.stash, 5), strict=True))
        elif cell.endpoint == "survival":
            truth = _truth_survival(problem, yn, problem.stash, 5)
        if hasattr(problem, "extra"):
            problem.extra, problem.stash = None, None
    if chance:
        return chance_rows(cell, rep, problem, y, design, T, seed, t0)
    return infer_rows(cell, rep, n, D, problem, y, design, run, T, truth, oof, seed, t0)


def infer_rows(cell, rep, n, D, problem, y, design, run, T, truth, oof, seed, t0):  # noqa: ANN001, ANN201, PLR0913
    """The replicate's default inference (grouped jackknife, G = 10) and its CSV rows, one per
    metric: shared by this study and ``endpoints_simtrial``."""
    from threadpoolctl import threadpool_limits

    from tario_clinical.decode.endpoint_inference import endpoint_inference
    from tario_clinical.decode.splitters import assign_folds

    names = [m.name for m in problem.metrics]
    with threadpool_limits(1):
        table, reps = endpoint_inference(
            problem,
            y,
            design,
            T,
            ci_method="jackknife",
            p_method="jackknife",
            level=0.95,
            n_jackknife=G,
            n_bootstrap=2,
            n_permutations=1,
            seed=seed,
            n_jobs=1,
            progress=False,
            allowed_p=("jackknife", "oof"),
        )
        o_se, o_lo, o_hi, o_p = oof(run)
    # the jackknife's groups (endpoint_inference draws them from the same child seed)
    s_jack = np.random.SeedSequence(seed).spawn(3)[2].spawn(3)[1]
    groups = assign_folds(problem.strata(y), G, np.random.default_rng(s_jack))
    jack_g = json.dumps(np.bincount(groups, minlength=G).tolist())
    jr = reps["jackknife"]
    secs = round(time.perf_counter() - t0, 3)
    rows = []
    for j, m in enumerate(names):
        tab = table.iloc[j]
        rows.append(
            {
                "cell": cell.name,
                "endpoint": cell.endpoint,
                "rep": rep,
                "n": n,
                "D": D,
                "metric": m,
                "T": float(T[j]),
                "truth": truth.get(m, ""),
                "jack_lo": tab["low"],
                "jack_hi": tab["high"],
                "p_jack": tab["p_value"],
                "oof_lo": o_lo[j],
                "oof_hi": o_hi[j],
                "p_oof": o_p[j],
                "jack_reps": json.dumps([float(f"{v:.8g}") for v in jr[m].to_numpy()]),
                "jack_g": jack_g,
                "seconds": secs,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    ap.add_argument("--max-reps", type=int, default=0, help="cap replicates per cell (smoke)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument(
        "--chance",
        action="store_true",
        help="chance-level pass (permutation statistics of the metrics with an exact null) "
        "over the continuous, categorical and survival cells, into replicates_chance.csv; "
        "--max-reps caps the replicates per cell",
    )
    args = ap.parse_args()
    if args.chance and args.out == str(OUT):
        args.out = str(HERE / "replicates_chance.csv")
    cells = [c for c in CELLS if not args.cells or c.name in args.cells.split(",")]
    if args.chance:
        cells = [c for c in cells if c.endpoint != "benefit"]
    out = Path(args.out)
    done = set()
    if out.exists():
        with out.open() as fh:
            for r in csv.DictReader(fh):
                done.add((r["cell"], int(r["rep"])))
    # interleave cells so that every cell gets about the same share of the machine's time
    # (replicate r of a cell runs at "time" r x its cost): cheap cells get more replicates
    tasks = []
    for c in cells:
        cap = c.reps if not args.max_reps else min(c.reps, args.max_reps)
        tasks += [(c, rep) for rep in range(cap) if (c.name, rep) not in done]
    order = {c.name: i for i, c in enumerate(cells)}
    tasks.sort(key=lambda cr: (cr[1] * COST[cr[0].endpoint], order[cr[0].name]))
    print(f"{len(tasks)} replicates to run ({len(done)} done)", file=sys.stderr, flush=True)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CHANCE_FIELDS if args.chance else FIELDS)
        if new:
            w.writeheader()
        for i, (c, rep) in enumerate(tasks, 1):
            rows = one(c, rep, chance=args.chance)
            w.writerows(rows)
            fh.flush()
            if i % 10 == 0:
                print(
                    f"{i}/{len(tasks)} {c.name} {rows[0]['seconds']}s", file=sys.stderr, flush=True
                )


if __name__ == "__main__":
    main()
