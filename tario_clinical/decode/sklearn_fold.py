"""The scikit-learn reference engine of one outer fold (``engine="sklearn"``): scaler, optional
PCA and ``LogisticRegressionCV`` on the inner folds, fold-standardised scores; and the patient
codes both engines index folds with."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import engine as _engine

__all__ = ["patient_codes", "fit_sklearn_fold"]


def patient_codes(row_patient: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, codes = np.unique(row_patient, return_inverse=True)
    return uniq, codes


def fit_sklearn_fold(
    X: np.ndarray,
    Ytr: np.ndarray,
    inner: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    Cs: np.ndarray,
    *,
    penalty: str,
    l1_ratio: float,
    pca: int | None,
    class_weight: str | None,
    seed: int,
    scoring: str = "neg_log_loss",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reference path: Pipeline(StandardScaler, [PCA], LogisticRegressionCV) per target."""
    import warnings

    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    T = Ytr.shape[1]
    best = np.full(T, np.nan)
    std = np.zeros((test.size, T))
    scores = np.zeros((test.size, T))
    inner_oof = np.full((train.size, T), np.nan)
    for t in range(T):
        ok = ~np.isnan(Ytr[:, t])
        rows = train[ok]
        y = Ytr[ok, t].astype(int)
        if y.min() == y.max():
            prev = y.mean()
            scores[:, t] = np.log(max(prev, 1e-6) / max(1 - prev, 1e-6))
            continue
        inn = inner[ok]
        splits = [(np.flatnonzero(inn != m), np.flatnonzero(inn == m)) for m in np.unique(inn)]
        steps: list[Any] = [StandardScaler()]
        if pca is not None:
            steps.append(PCA(n_components=min(pca, rows.size - 1, X.shape[1]), random_state=seed))
        l1 = 0.0 if penalty == "l2" else l1_ratio
        steps.append(
            LogisticRegressionCV(
                Cs=list(Cs),
                cv=splits,
                scoring=scoring,
                l1_ratios=(l1,),
                solver="lbfgs" if l1 == 0 else "saga",
                class_weight=class_weight,
                max_iter=1000,
                tol=1e-6,
                random_state=seed,
                use_legacy_attributes=False,
            )
        )
        model = make_pipeline(*steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X[rows], y)
        lr = model[-1]
        best[t] = float(np.ravel(lr.C_)[0])
        if test.size:
            scores[:, t] = model.decision_function(X[test])
            std[:, t] = _engine._standardised(scores[:, t], model.decision_function(X[train]))
    return best, scores, std, inner_oof
