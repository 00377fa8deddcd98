"""``LinearDecoder``: standardise -> optional PCA -> L2 / elastic-net logistic regression."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._checks import check_choice
from ..errors import SchemaError

__all__ = ["LinearDecoder"]

_PENALTIES = ("l2", "elasticnet")


class LinearDecoder(ClassifierMixin, BaseEstimator):
    """Linear decoder of a label from patient representations (a scikit-learn classifier).

    ``StandardScaler`` -> optional ``PCA`` -> ``LogisticRegression``, all fitted on the rows
    passed to :meth:`fit` only.

    Parameters
    ----------
    C : float, default 1.0
        Inverse regularisation strength (scikit-learn convention: ``C * sum(loss) + penalty``).
    penalty : {"l2", "elasticnet"}, default "l2"
    l1_ratio : float, default 0.5
        Elastic-net mixing (used only with ``penalty="elasticnet"``).
    n_components : int or None, default None
        Principal components kept after standardisation (``None``: no PCA).
    class_weight : {"balanced"} or dict or None, default None
    max_iter : int, default 1000
    tol : float, default 1e-6
    seed : int, default 0
        Seed of PCA's randomised solver and of the saga solver.

    Attributes
    ----------
    classes_, coef_, intercept_, scaler_, pca_, logistic_, n_features_in_

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 5)); y = (X[:, 0] > 0).astype(int)
    >>> LinearDecoder(C=1.0).fit(X, y).score(X, y) > 0.9
    True
    """

    def __init__(
        self,
        C: float = 1.0,
        *,
        penalty: str = "l2",
        l1_ratio: float = 0.5,
        n_components: int | None = None,
        class_weight: Any = None,
        max_iter: int = 1000,
        tol: float = 1e-6,
        seed: int = 0,
    ) -> None:
        self.C = C
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.n_components = n_components
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.seed = seed

    # ------------------------------------------------------------------------------ fit
    def _validate_params_own(self) -> None:
        check_choice("penalty", self.penalty, _PENALTIES)
        if not (np.isscalar(self.C) and float(self.C) > 0):
            raise SchemaError(f"C must be a positive number; got {self.C!r}.")
        if self.n_components is not None and int(self.n_components) < 1:
            raise SchemaError(f"n_components must be None or >= 1; got {self.n_components!r}.")

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LinearDecoder:
        """Fit scaler, PCA and logistic regression on ``X, y``; returns ``self``."""
        self._validate_params_own()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            raise ValueError(
                f"LinearDecoder needs at least 2 classes in y; got 1 class: {self.classes_[0]!r}"
            )
        self.scaler_ = StandardScaler().fit(X, sample_weight=sample_weight)
        Z = self.scaler_.transform(X)
        if self.n_components is not None:
            k = int(min(self.n_components, Z.shape[0], Z.shape[1]))
            self.pca_ = PCA(n_components=k, random_state=self.seed).fit(Z)
            Z = self.pca_.transform(Z)
        else:
            self.pca_ = None
        l1 = 0.0 if self.penalty == "l2" else float(self.l1_ratio)
        self.logistic_ = LogisticRegression(
            C=float(self.C),
            l1_ratio=l1,
            solver="lbfgs" if l1 == 0.0 else "saga",
            class_weight=self.class_weight,
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            random_state=self.seed,
        ).fit(Z, y, sample_weight=sample_weight)
        self.coef_ = self.logistic_.coef_
        self.intercept_ = self.logistic_.intercept_
        self.n_iter_ = self.logistic_.n_iter_
        return self

    @classmethod
    def _from_solution(
        cls,
        params: dict[str, Any],
        *,
        mean: np.ndarray,
        scale: np.ndarray,
        coef_std: np.ndarray,
        intercept: float,
        classes: np.ndarray,
        feature_names: np.ndarray | None = None,
    ) -> LinearDecoder:
        """Build a fitted decoder from a solution of the fast engine (binary, no PCA)."""
        est = cls(**params)
        est.scaler_ = StandardScaler()
        est.scaler_.mean_ = np.asarray(mean, float)
        est.scaler_.scale_ = np.asarray(scale, float)
        est.scaler_.var_ = est.scaler_.scale_**2
        est.scaler_.n_features_in_ = mean.size
        est.scaler_.n_samples_seen_ = 0
        est.pca_ = None
        lr = LogisticRegression(C=float(params.get("C", 1.0)))
        lr.coef_ = np.asarray(coef_std, float).reshape(1, -1)
        lr.intercept_ = np.array([float(intercept)])
        lr.classes_ = np.asarray(classes)
        lr.n_features_in_ = mean.size
        est.logistic_ = lr
        est.coef_ = lr.coef_
        est.intercept_ = lr.intercept_
        est.n_iter_ = np.array([0])
        est.classes_ = np.asarray(classes)
        est.n_features_in_ = mean.size
        if feature_names is not None:
            est.feature_names_in_ = np.asarray(feature_names, dtype=object)
        return est

    # -------------------------------------------------------------------------- predict
    def _transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "logistic_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        Z = self.scaler_.transform(X)
        if self.pca_ is not None:
            Z = self.pca_.transform(Z)
        return Z

    def decision_function(self, X: Any) -> np.ndarray:
        """Linear score (log-odds for binary problems)."""
        Z = self._transform(X)
        return self.logistic_.decision_function(Z)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        Z = self._transform(X)
        return self.logistic_.predict_proba(Z)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        Z = self._transform(X)
        return self.logistic_.predict_log_proba(Z)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class."""
        Z = self._transform(X)
        return self.logistic_.predict(Z)

    # ------------------------------------------------------------------------ explain
    def coef_table(self, feature_names: Any = None) -> pd.DataFrame:
        """Weights mapped back to input features, largest magnitude first.

        Parameters
        ----------
        feature_names : sequence of str, optional
            Defaults to ``feature_names_in_`` (a DataFrame was fitted) or ``x0, x1, ...``.

        Returns
        -------
        DataFrame
            Columns ``class, feature, weight, abs_weight``. ``weight`` is on the standardised
            scale (per standard deviation of the feature), so weights are comparable across
            features; with PCA the component weights are mapped back through the loadings.
        """
        check_is_fitted(self, "logistic_")
        if feature_names is None:
            feature_names = getattr(self, "feature_names_in_", None)
        if feature_names is None:
            feature_names = [f"x{i}" for i in range(self.n_features_in_)]
        names = np.asarray(feature_names, dtype=object)
        if names.size != self.n_features_in_:
            raise SchemaError(
                f"feature_names has {names.size} entries; the decoder has {self.n_features_in_} features."
            )
        W = np.atleast_2d(self.coef_)
        if self.pca_ is not None:
            W = W @ self.pca_.components_
        labels = [self.classes_[1]] if W.shape[0] == 1 else list(self.classes_)
        frames = []
        for k, lab in enumerate(labels):
            frames.append(
                pd.DataFrame(
                    {
                        "class": str(lab),
                        "feature": names,
                        "weight": W[k],
                        "abs_weight": np.abs(W[k]),
                    }
                )
            )
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values(
            ["class", "abs_weight"], ascending=[True, False], kind="mergesort"
        ).reset_index(drop=True)
