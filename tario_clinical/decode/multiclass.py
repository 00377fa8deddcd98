"""Categorical targets (more than two levels): one-vs-rest or multinomial L2-logistic decoders.

Both fit in the fold basis of :mod:`tario_clinical.decode.engine` (the L2 solution lies in the
span of the training rows, so every problem is a logistic ridge problem on the ``r`` fold
coordinates ``F`` instead of the ``D`` features):

``multi_class="ovr"`` (default)
    One binary L2-logistic decoder per class (class vs rest), each with its own ``C`` chosen by
    inner CV log-loss -- the binary decoder's batched Newton engine (:func:`engine.nested_fold`)
    with one target per class. Probabilities are the classes' sigmoids normalised to sum to one
    (as scikit-learn's ``OneVsRestClassifier.predict_proba``).
``multi_class="multinomial"``
    The softmax model with the symmetric L2 penalty of scikit-learn's
    ``LogisticRegression(C)`` (``C * sum_i logloss_i + ||W||^2 / 2``, intercepts free), solved by
    L-BFGS in the fold basis with warm starts along the ``C`` path; one ``C`` for all classes,
    chosen by the mean inner-fold multinomial log-loss (ties: the smaller ``C``). About ten
    times slower than ``ovr`` (one L-BFGS run per inner fold and ``C``).

Metrics of the pooled out-of-fold class probabilities (mean over repeats): the one-vs-rest
AUROC of every class (``auroc[<class>]``: the class's probability against membership), their
unweighted mean (``macro_auroc``, scikit-learn's ``roc_auc_score(multi_class="ovr")``), the
balanced accuracy (mean per-class recall of the most probable class), the accuracy and the
multinomial log-loss. The confusion matrix (mean counts over repeats) is
``tables["confusion"]``.

Levels with fewer than ``min_class_size`` (10) patients are kept and flagged (their AUROC's
interval is unreliable), or merged into one ``other`` level with ``merge_rare=True``; a level is
never dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from ..errors import AnalysisError, SchemaError
from . import engine as _engine
from .cross_validation import default_Cs
from .decode_data import log_exclusions
from .endpoint_data import (
    categorical_labels,
    outcome_exclusions,
    patient_data,
)
from .endpoint_inference import (
    FoldPredictions,
    MetricSpec,
    fit_and_infer,
    renumber_inner,
)
from .endpoint_result import EndpointResult, EndpointResults, LinearModel
from .inference import weighted_auroc
from .splitters import assign_folds

__all__ = ["decode_categorical", "multinomial_path", "categorical_metrics"]

logger = logging.getLogger(__name__)

_EPS = 1e-15


# ------------------------------------------------------------------------------ solvers
def multinomial_path(
    F: np.ndarray,
    y: np.ndarray,
    a: np.ndarray,
    Cs: np.ndarray,
    n_classes: int,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """L2 multinomial logistic regression on coordinates ``F`` for every ``C`` (warm starts).

    Parameters
    ----------
    F : (n, r) coordinates of the rows
    y : (n,) int class codes ``0..n_classes-1``
    a : (n,) non-negative row weights (0 = not in the problem)
    Cs : (L,) ascending
    n_classes : int
    tol : float, default 1e-6
        L-BFGS projected-gradient tolerance on the objective divided by ``C * sum(a)``
        (scikit-learn's default ``tol`` is 1e-4).

    Returns
    -------
    list of ``(V (r, K), b (K,))``; classes without weighted rows get ``b = -inf``.
    """
    n, r = F.shape
    K = n_classes
    Y = np.zeros((n, K))
    Y[np.arange(n), y.astype(int)] = 1.0
    present = (a[:, None] * Y).sum(axis=0) > 0
    kp = np.flatnonzero(present)
    Yp = Y[:, kp]
    Kp = kp.size
    out = []
    x0 = np.zeros(r * Kp + Kp)
    prior = (a[:, None] * Yp).sum(0) / max(a.sum(), 1e-300)
    x0[r * Kp :] = np.log(np.maximum(prior, 1e-12))
    for C in np.asarray(Cs, dtype=float):
        scale = C * max(a.sum(), 1e-300)

        def fun(x: np.ndarray, C: float = C, scale: float = scale) -> tuple[float, np.ndarray]:
            V = x[: r * Kp].reshape(r, Kp)
            b = x[r * Kp :]
            f = F @ V + b
            lse = special.logsumexp(f, axis=1)
            loss = C * np.sum(a * (lse - (f * Yp).sum(1))) + 0.5 * np.sum(V * V)
            R = C * a[:, None] * (np.exp(f - lse[:, None]) - Yp)
            g = np.concatenate([(F.T @ R + V).ravel(), R.sum(0)])
            return loss / scale, g / scale

        if Kp <= 1:
            V = np.zeros((r, K))
            b = np.full(K, -np.inf)
            b[kp] = 0.0
            out.append((V, b))
            continue
        res = optimize.minimize(
            fun,
            x0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": tol, "ftol": 1e-15, "maxcor": 20},
        )
        x0 = res.x
        V = np.zeros((r, K))
        b = np.full(K, -np.inf)
        V[:, kp] = res.x[: r * Kp].reshape(r, Kp)
        b[kp] = res.x[r * Kp :]
        out.append((V, b))
    return out


def _softmax(f: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        f = np.where(np.isneginf(f), -np.inf, f)
        return np.exp(f - special.logsumexp(f, axis=1, keepdims=True))


def _ovr_proba(scores: np.ndarray) -> np.ndarray:
    p = special.expit(scores)
    return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)


def _balanced_weights(y: np.ndarray, member: np.ndarray, K: int) -> np.ndarray:
    cnt = np.bincount(y[member], minlength=K).astype(float)
    w = np.zeros(y.size)
    present = cnt > 0
    w[member] = member.sum() / (present.sum() * cnt[y[member]])
    return w


# ------------------------------------------------------------------------------ metrics
def categorical_metrics(y: np.ndarray, P: np.ndarray, K: int) -> np.ndarray:
    """``auroc[class]`` x K, ``macro_auroc, balanced_accuracy, accuracy, log_loss``."""
    ok = np.isfinite(P).all(axis=1)
    y, P = y[ok].astype(int), P[ok]
    out = np.full(K + 4, np.nan)
    if y.size == 0:
        return out
    aucs = np.array([weighted_auroc(y == c, P[:, c]) for c in range(K)])
    out[:K] = aucs
    out[K] = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else np.nan
    pred = np.argmax(P, axis=1)
    recalls = [np.mean(pred[y == c] == c) for c in range(K) if np.any(y == c)]
    out[K + 1] = float(np.mean(recalls))
    out[K + 2] = float(np.mean(pred == y))
    out[K + 3] = float(-np.mean(np.log(np.clip(P[np.arange(y.size), y], _EPS, 1.0))))
    return out


# ------------------------------------------------------------------------------ problem
@dataclass
class _CategoricalProblem:
    """Label-free state of the nested categorical CV."""

    X: np.ndarray
    Cs: np.ndarray
    classes: list[str]
    multi_class: str = "ovr"
    class_weight: str | None = None
    pca: int | None = None

    @property
    def metrics(self) -> tuple[MetricSpec, ...]:
        """Per-class AUROCs, macro AUROC, balanced accuracy, accuracy, log-loss."""
        K = len(self.classes)
        return (
            *(MetricSpec(f"auroc[{c}]", "logit", 0.5, exact_null=True) for c in self.classes),
            MetricSpec("macro_auroc", "logit", 0.5, exact_null=True),
            MetricSpec("balanced_accuracy", "logit", 1.0 / K, exact_null=True),
            MetricSpec("accuracy", "logit", None),
            MetricSpec("log_loss", "log", None),
        )

    def strata(self, y: np.ndarray) -> np.ndarray:
        """One-hot classes."""
        return (y[:, None] == np.arange(len(self.classes))[None, :]).astype(float)

    def cross_validate(
        self, rows: np.ndarray, y: np.ndarray, outer: np.ndarray, inner: list[np.ndarray]
    ) -> FoldPredictions:
        """Nested CV of ``X[rows]`` against class codes ``y``; see :class:`EndpointProblem`."""
        R = outer.shape[0]
        K = len(self.classes)
        nK = len(inner) // R
        pred = np.full((R, rows.size, K), np.nan)
        info = []
        for i in range(R * nK):
            r, k = divmod(i, nK)
            train = np.flatnonzero(outer[r] != k)
            test = np.flatnonzero(outer[r] == k)
            if test.size == 0:
                continue
            inn = renumber_inner(inner[i][train])
            basis = _engine.fold_basis(self.X, rows[train], rows[test], n_components=self.pca)
            C, P = self.fit_fold(basis, y[train].astype(int), inn)
            pred[r, test] = P
            info.append(
                {"repeat": r, "fold": k, "penalty": C, "n_train": train.size, "n_test": test.size}
            )
        return FoldPredictions(pred=pred, fold=outer.copy(), penalty=info)

    def fit_fold(
        self, basis: _engine.FoldBasis, y: np.ndarray, inner: np.ndarray
    ) -> tuple[Any, np.ndarray]:
        """Chosen C (per class for OvR: their median is reported) and test probabilities."""
        K = len(self.classes)
        if self.multi_class == "ovr":
            Y = (y[:, None] == np.arange(K)[None, :]).astype(float)
            ff = _engine.nested_fold(basis, Y, inner, self.Cs, class_weight=self.class_weight)
            C = float(np.nanmedian(ff.best_C)) if np.isfinite(ff.best_C).any() else np.nan
            return C, _ovr_proba(ff.test_scores)
        best, V, b = self._multinomial_nested(basis.F, y, inner)
        return float(self.Cs[best]), _softmax(basis.G @ V + b)

    def _multinomial_nested(
        self, F: np.ndarray, y: np.ndarray, inner: np.ndarray
    ) -> tuple[int, np.ndarray, np.ndarray]:
        K = len(self.classes)
        k = int(inner.max()) + 1
        L = self.Cs.size
        losses = np.full((k, L), np.nan)
        for m in range(k):
            fit, val = inner != m, inner == m
            a = self._weights(y, fit)
            path = multinomial_path(F, y, a, self.Cs, K)
            for j, (V, b) in enumerate(path):
                P = _softmax(F[val] @ V + b)
                losses[m, j] = -np.mean(np.log(np.clip(P[np.arange(val.sum()), y[val]], _EPS, 1)))
        score = np.nanmean(losses, axis=0)
        best = int(np.nanargmin(score))
        V, b = multinomial_path(
            F, y, self._weights(y, np.ones(y.size, bool)), self.Cs[: best + 1], K
        )[-1]
        return best, V, b

    def _weights(self, y: np.ndarray, member: np.ndarray) -> np.ndarray:
        if self.class_weight == "balanced":
            return _balanced_weights(y, member, len(self.classes))
        return member.astype(float)

    def statistics(self, y: np.ndarray, cv: FoldPredictions) -> np.ndarray:
        """Mean over repeats of :func:`categorical_metrics` of the pooled OOF probabilities."""
        K = len(self.classes)
        per = np.array([categorical_metrics(y, cv.pred[r], K) for r in range(cv.pred.shape[0])])
        with np.errstate(all="ignore"):
            return np.nanmean(per, axis=0) if np.isfinite(per).any() else per[0]


def _oof_formulas(
    y: np.ndarray, P: np.ndarray, K: int, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """DeLong per class on the per-patient mean OOF probabilities (independence assumed)."""
    from .. import metrics

    M = K + 4
    se, low, high, p = (np.full(M, np.nan) for _ in range(4))
    for c in range(K):
        yc = (y == c).astype(int)
        if 0 < yc.sum() < yc.size:
            r = metrics.auroc_ci(yc, P[:, c], level=level)
            se[c], low[c], high[c] = r.se, r.low, r.high
            p[c] = stats.norm.sf((r.auroc - 0.5) / r.se) if r.se > 0 else np.nan
    return se, low, high, p


def _merge_rare(
    codes: np.ndarray, classes: list[str], min_size: int
) -> tuple[np.ndarray, list[str], list[str]]:
    ok = np.isfinite(codes)
    cnt = np.bincount(codes[ok].astype(int), minlength=len(classes))
    rare = [c for c, n in zip(classes, cnt, strict=True) if n < min_size]
    if not rare:
        return codes, classes, []
    name = "other" if "other" not in classes else "other (merged)"
    keep = [c for c in classes if c not in rare]
    new_classes = keep + [name]
    lookup = {c: (new_classes.index(c) if c in keep else len(keep)) for c in classes}
    new = np.array([np.nan if not np.isfinite(v) else lookup[classes[int(v)]] for v in codes])
    return new, new_classes, rare


# ------------------------------------------------------------------------------ API
def decode_categorical(
    representations: Any,
    cohort: Any,
    *,
    targets: list[str] | str,
    multi_class: Literal["ovr", "multinomial"] = "ovr",
    classes: dict[str, list[Any]] | None = None,
    min_class_size: int = 10,
    merge_rare: bool = False,
    Cs: Any = None,
    n_c: int = 10,
    class_weight: Literal["balanced"] | None = None,
    cv: Any = None,
    n_splits: int = 5,
    n_repeats: int = 5,
    n_inner_splits: int = 5,
    pca: int | None = None,
    group_by: str | None = None,
    ci_method: Literal["jackknife", "jackknife2", "bootstrap", "oof"] = "jackknife",
    p_method: Literal["permutation", "jackknife", "oof"] = "permutation",
    level: float = 0.95,
    n_permutations: int = 99,
    n_jackknife: int = 10,
    n_bootstrap: int = 200,
    n_jobs: int | None = 1,
    progress: bool | None = None,
    seed: int = 0,
) -> EndpointResults:
    """Decode categorical targets (cancer type, histology ...) with nested, patient-level CV.

    Parameters
    ----------
    representations : AnnData or DataFrame
        Patients or slides (``obs["patient_id"]``) x features; slides of a patient are averaged.
    cohort : Cohort or DataFrame
        Clinical table with ``patient_id`` and the target columns (blank/NA = missing).
    targets : list of str
    multi_class : {"ovr", "multinomial"}, default "ovr"
        See the module docstring.
    classes : dict, optional
        ``target -> class order``; default sorted levels (or the categorical dtype's order).
    min_class_size : int, default 10
        Levels with fewer patients are flagged (or merged with ``merge_rare``).
    merge_rare : bool, default False
        Merge all levels below ``min_class_size`` into one ``other`` level (logged, in
        ``params["merged_levels"]``).
    Cs, n_c : array-like, int
        C path (default :func:`~tario_clinical.decode.default_Cs`).
    class_weight : {"balanced"} or None
    cv, n_splits, n_repeats, n_inner_splits, pca, group_by
        As in :func:`tario_clinical.decode`; folds are stratified on the classes.
    ci_method : {"jackknife", "jackknife2", "bootstrap", "oof"}, default "jackknife"
        ``oof``: DeLong on the OOF probabilities (anti-conservative, comparison only).
    p_method : {"permutation", "jackknife", "oof"}, default "permutation"
        One-sided tests of every AUROC > 0.5 and of the balanced accuracy > 1/K.
    level : float, default 0.95
    n_permutations, n_jackknife, n_bootstrap, n_jobs, progress, seed
        As in :func:`tario_clinical.decode`.

    Returns
    -------
    EndpointResults
        One :class:`EndpointResult` (kind ``categorical``) per target; OOF columns
        ``patient_id, target, repeat, fold, y_true, predicted, p_<class>...`` and ``score``
        (the probability of the true class).
    """
    if multi_class not in ("ovr", "multinomial"):
        raise SchemaError(
            f"multi_class must be one of ['ovr', 'multinomial']; got {multi_class!r}."
        )
    if class_weight not in (None, "balanced"):
        raise SchemaError(f"class_weight must be None or 'balanced'; got {class_weight!r}.")
    targets = [targets] if isinstance(targets, str) else list(targets)
    if not targets:
        raise SchemaError("targets must name at least one categorical column.")
    data = patient_data(representations, cohort)
    out: dict[str, EndpointResult] = {}
    for t in targets:
        if t not in data.clinical.columns:
            raise SchemaError(f"target {t!r} is not a column of the clinical table.")
        codes, cls = categorical_labels(data.clinical[t], t, classes=(classes or {}).get(t))
        merged: list[str] = []
        if merge_rare:
            codes, cls, merged = _merge_rare(codes, cls, min_class_size)
            if merged:
                logger.info("decode %s: levels %s merged into %r", t, merged, cls[-1])
        have = np.isfinite(codes)
        excl = outcome_exclusions(data, t, ~have, f"missing label {t}")
        log_exclusions(excl, logger)
        idx = np.flatnonzero(have)
        y = codes[idx].astype(int)
        counts = np.bincount(y, minlength=len(cls))
        absent = [c for c, n in zip(cls, counts, strict=True) if n == 0]
        if absent:
            keep = [c for c, n in zip(cls, counts, strict=True) if n > 0]
            logger.info("decode %s: classes %s have no patient with a representation", t, absent)
            remap = {cls.index(c): i for i, c in enumerate(keep)}
            y = np.array([remap[v] for v in y])
            cls = keep
            counts = np.bincount(y, minlength=len(cls))
        if len(cls) < 2:
            raise AnalysisError(
                f"target {t!r} has {len(cls)} level(s) among patients with representations; "
                "decoding needs at least two."
            )
        X = data.X[idx]
        Cs_arr = (
            default_Cs(n_c, idx.size, X.shape[1]) if Cs is None else np.sort(np.asarray(Cs, float))
        )
        problem = _CategoricalProblem(
            X=X, Cs=Cs_arr, classes=cls, multi_class=multi_class, class_weight=class_weight, pca=pca
        )
        fit = fit_and_infer(
            problem,
            y,
            X,
            data.clinical.iloc[idx],
            design_kw=dict(
                cv=cv,
                n_splits=n_splits,
                n_repeats=n_repeats,
                n_inner_splits=n_inner_splits,
                group_by=group_by,
                seed=seed,
            ),
            inference_kw=dict(
                ci_method=ci_method,
                p_method=p_method,
                level=level,
                n_jackknife=n_jackknife,
                n_bootstrap=n_bootstrap,
                n_permutations=n_permutations,
                seed=seed,
                n_jobs=n_jobs,
                progress=progress,
            ),
            final_model=lambda pb=problem, y=y: _final_model(
                pb, y, data.feature_names, n_inner_splits, seed
            ),
            oof_inference=lambda run, y=y, K=len(cls): _oof_formulas(
                y, np.nanmean(run.pred, axis=0), K, level
            ),
        )
        design, run, final, table, reps = fit.design, fit.run, fit.final, fit.table, fit.reps
        pids = data.patient_ids[idx]
        notes, metric_notes = [], {}
        small = [c for c, n in zip(cls, counts, strict=True) if n < min_class_size]
        for c, n in zip(cls, counts, strict=True):
            if n < min_class_size:
                metric_notes[f"auroc[{c}]"] = (
                    f"{n} patients (< {min_class_size}): interval unreliable"
                )
        if small:
            metric_notes["macro_auroc"] = f"includes small classes {small}"
            notes.append(
                f"levels {small} have fewer than {min_class_size} patients (flagged; "
                "merge_rare=True merges them)"
            )
            logger.warning(
                "target %s: levels %s have fewer than %d patients", t, small, min_class_size
            )
        if merged:
            notes.append(f"levels {merged} merged into {cls[-1]!r} (merge_rare=True)")
        tables = {
            "confusion": _confusion(y, run.pred, cls),
            "per_class": pd.DataFrame({"class": cls, "n": counts}),
        }
        params = {
            "cv": design.description,
            "n_splits": design.plan.n_splits,
            "n_repeats": int(design.plan.outer.shape[0]),
            "n_inner_splits": n_inner_splits,
            "multi_class": multi_class,
            "classes": cls,
            "merged_levels": merged,
            "min_class_size": min_class_size,
            "Cs": Cs_arr.tolist(),
            "class_weight": class_weight,
            "inner_scoring": "neg_log_loss",
            "pca": pca,
            "group_by": group_by,
            "ci_method": ci_method,
            "p_method": p_method,
            "level": level,
            "n_permutations": n_permutations if p_method == "permutation" else None,
            "n_jackknife": n_jackknife if "jackknife" in (ci_method, p_method) else None,
            "n_bootstrap": n_bootstrap if ci_method == "bootstrap" else None,
            "seed": seed,
            "n_patients": int(idx.size),
            "n_features": int(X.shape[1]),
        }
        out[t] = EndpointResult(
            target=t,
            kind="categorical",
            metrics=table,
            oof=_oof_table(t, pids, y, run, cls),
            folds=pd.DataFrame(run.penalty).assign(target=t)[
                ["target", "repeat", "fold", "penalty", "n_train", "n_test"]
            ],
            exclusions=excl,
            params=params,
            tables=tables,
            resamples=reps,
            final_model=final,
            notes=tuple(notes),
            metric_notes=metric_notes,
        )
    return EndpointResults(
        results=out, target_types={t: ("categorical", "decode_categorical") for t in targets}
    )


def _confusion(y: np.ndarray, pred: np.ndarray, cls: list[str]) -> pd.DataFrame:
    K = len(cls)
    cm = np.zeros((K, K))
    for r in range(pred.shape[0]):
        ok = np.isfinite(pred[r]).all(axis=1)
        np.add.at(cm, (y[ok], np.argmax(pred[r][ok], axis=1)), 1.0)
    cm /= pred.shape[0]
    return pd.DataFrame(
        cm, index=pd.Index(cls, name="true"), columns=pd.Index(cls, name="predicted")
    )


def _oof_table(
    t: str, pids: np.ndarray, y: np.ndarray, run: FoldPredictions, cls: list[str]
) -> pd.DataFrame:
    parts = []
    for r in range(run.pred.shape[0]):
        P = run.pred[r]
        d = pd.DataFrame(
            {
                "patient_id": pids,
                "target": t,
                "repeat": r,
                "fold": run.fold[r],
                "score": P[np.arange(y.size), y],
                "y_true": np.asarray(cls, dtype=object)[y],
                "predicted": np.asarray(cls, dtype=object)[np.argmax(P, axis=1)],
            }
        )
        for j, c in enumerate(cls):
            d[f"p_{c}"] = P[:, j]
        parts.append(d)
    return (
        pd.concat(parts, ignore_index=True)
        .sort_values(["repeat", "patient_id"], kind="mergesort")
        .reset_index(drop=True)
    )


def _final_model(
    problem: _CategoricalProblem, y: np.ndarray, feature_names: np.ndarray, n_inner: int, seed: int
) -> LinearModel:
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[1].spawn(1)[0])
    inner = assign_folds(problem.strata(y), n_inner, rng)
    rows = np.arange(y.size)
    b = _engine.fold_basis(problem.X, rows, None, n_components=problem.pca, with_feature_map=True)
    K = len(problem.classes)
    fmap = b.feature_map if b.feature_map is not None else np.zeros((problem.X.shape[1], b.s.size))
    if problem.multi_class == "ovr":
        Y = (y[:, None] == np.arange(K)[None, :]).astype(float)
        ff = _engine.nested_fold(b, Y, inner, problem.Cs, class_weight=problem.class_weight)
        C = float(np.nanmedian(ff.best_C))
        coef, intercept = fmap @ ff.coef, ff.intercept
    else:
        best, V, bb = problem._multinomial_nested(b.F, y, inner)
        C, coef, intercept = float(problem.Cs[best]), fmap @ V, bb
    return LinearModel(
        kind="categorical",
        penalty=C,
        mean_=b.mean,
        scale_=b.scale,
        coef_=coef,
        intercept_=intercept,
        feature_names_in_=feature_names,
        classes_=list(problem.classes),
    )
