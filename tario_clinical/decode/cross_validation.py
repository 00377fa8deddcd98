"""``decode()``: nested, patient-level cross-validation of linear decoders over many targets."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import AnalysisError, CohortError, SchemaError
from . import engine as _engine
from .estimator import LinearDecoder
from .result import DecodeResult
from .splitters import LeaveOneGroupOut, PatientStratifiedGroupKFold, assign_folds

__all__ = ["decode", "prepare_data", "DecodeData", "default_Cs"]

logger = logging.getLogger(__name__)

_ENGINES = ("auto", "fast", "sklearn")
_PENALTIES = ("l2", "elasticnet")
_CI_METHODS = ("delong", "bootstrap")


def default_Cs(n_c: int, n_rows: int, n_features: int) -> np.ndarray:
    """Default C grid: ``n_c`` log-spaced values over 6 decades, scaled by ``1 / min(n, D)``.

    With standardised features the squared row norm is about ``D``, so ``C * min(n, D)`` is the
    dimensionless strength; the grid spans ``1e-4 .. 1e2`` of it.

    Parameters
    ----------
    n_c : int
        Number of values (>= 2).
    n_rows : int
        Number of training rows ``n``.
    n_features : int
        Number of features ``D``.

    Returns
    -------
    numpy.ndarray
        ``n_c`` increasing C values (scikit-learn convention, larger = weaker regularisation).
    """
    if int(n_c) < 2:
        raise SchemaError(f"n_c must be >= 2; got {n_c!r}.")
    return np.logspace(-4.0, 2.0, int(n_c)) / max(1, min(n_rows, n_features))


# ------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class DecodeData:
    """Aligned inputs: rows (patients or slides), features, labels and exclusions."""

    X: np.ndarray
    row_patient: np.ndarray  # patient id of each row
    feature_names: np.ndarray
    labels: pd.DataFrame  # patients x targets, float 1/0/NaN (patients with rows + clinical)
    clinical: pd.DataFrame  # indexed by patient_id
    exclusions: pd.DataFrame


def _to_binary(values: pd.Series, column: str) -> pd.Series:
    from ..cohort import normalise_binary

    out = normalise_binary(values, column=column)
    out.index = values.index
    return out


def prepare_data(representations: Any, cohort: Any, targets: list[str]) -> DecodeData:
    """Align representations with the clinical labels; log every exclusion (see :func:`decode`)."""
    # ---- representations
    if isinstance(representations, pd.DataFrame):
        X = representations.to_numpy()
        obs_names = representations.index.astype(str).to_numpy()
        feature_names = representations.columns.astype(str).to_numpy()
        obs = pd.DataFrame(index=obs_names)
    elif hasattr(representations, "X") and hasattr(representations, "obs_names"):
        X = representations.X
        if hasattr(X, "toarray"):
            X = X.toarray()
        X = np.asarray(X)
        obs_names = np.asarray(representations.obs_names).astype(str)
        feature_names = np.asarray(representations.var_names).astype(str)
        obs = representations.obs
    else:
        raise SchemaError(
            f"representations must be an AnnData (patients or slides x features) or a DataFrame; "
            f"got {type(representations).__name__}."
        )
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise SchemaError(f"representations must be a non-empty 2-D matrix; got shape {X.shape}.")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if pd.Index(obs_names).has_duplicates:
        dup = pd.Index(obs_names)[pd.Index(obs_names).duplicated()].unique()[:5].tolist()
        raise SchemaError(f"representations: duplicate obs_names {dup}; ids must be unique.")
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = obs_names[~finite][:5].tolist()
        raise SchemaError(
            f"representations: {int((~finite).sum())} rows hold NaN or infinite values, e.g. {bad}; "
            "fix or drop them before decoding."
        )
    if "patient_id" in obs.columns:
        row_patient = obs["patient_id"].astype(str).to_numpy()
    else:
        row_patient = obs_names

    # ---- clinical labels
    if hasattr(cohort, "label") and hasattr(cohort, "clinical"):
        clinical = cohort.clinical.copy()
        clinical["patient_id"] = clinical["patient_id"].astype(str)
        clinical = clinical.set_index("patient_id", drop=False)
        lab = {}
        for t in targets:
            s = cohort.label(t)
            s.index = s.index.astype(str)
            lab[t] = s
        labels = pd.DataFrame(lab).reindex(clinical.index)
    elif isinstance(cohort, pd.DataFrame):
        if "patient_id" not in cohort.columns:
            raise SchemaError(
                f"clinical table has no 'patient_id' column; columns: {list(cohort.columns)[:20]}"
            )
        clinical = cohort.copy()
        clinical["patient_id"] = clinical["patient_id"].astype(str)
        if clinical["patient_id"].duplicated().any():
            dup = (
                clinical.loc[clinical["patient_id"].duplicated(), "patient_id"]
                .unique()[:5]
                .tolist()
            )
            raise SchemaError(f"clinical table: duplicate patient_id {dup}.")
        clinical = clinical.set_index("patient_id", drop=False)
        missing = [t for t in targets if t not in clinical.columns]
        if missing:
            raise CohortError(
                f"targets {missing} are not columns of the clinical table; available: "
                f"{list(clinical.columns)[:30]}"
            )
        labels = pd.DataFrame({t: _to_binary(clinical[t], t) for t in targets})
    else:
        raise SchemaError(
            f"cohort must be a Cohort or a DataFrame with patient_id; got {type(cohort).__name__}."
        )

    # ---- exclusions (never silent)
    rows = []
    rep_patients = pd.Index(pd.unique(row_patient))
    no_clin = rep_patients.difference(clinical.index)
    no_rep = clinical.index.difference(rep_patients)
    for t in targets:
        for p in no_clin:
            rows.append((p, t, "representation without clinical row"))
        for p in no_rep:
            if not np.isnan(labels.at[p, t]):
                rows.append((p, t, "no representation"))
        have = labels.index.intersection(rep_patients)
        for p in have[labels.loc[have, t].isna().to_numpy()]:
            rows.append((p, t, f"missing label {t}"))
        for p in no_rep:
            if np.isnan(labels.at[p, t]):
                rows.append((p, t, f"no representation and missing label {t}"))
    exclusions = pd.DataFrame(rows, columns=["patient_id", "target", "reason"])
    keep_rows = np.isin(row_patient, clinical.index.to_numpy())
    X = X[keep_rows]
    row_patient = row_patient[keep_rows]
    patients = pd.Index(pd.unique(row_patient))
    labels = labels.reindex(patients)
    return DecodeData(
        X=X,
        row_patient=row_patient,
        feature_names=feature_names,
        labels=labels,
        clinical=clinical.reindex(patients),
        exclusions=exclusions,
    )


def _log_exclusions(cohort: Any, exclusions: pd.DataFrame) -> None:
    if not len(exclusions):
        return
    for (t, reason), d in exclusions.groupby(["target", "reason"]):
        logger.info("decode %s: excluded %d patients (%s)", t, len(d), reason)
        if hasattr(cohort, "exclude"):
            cohort.exclude(d["patient_id"].tolist(), reason=reason, analysis=f"decode:{t}")


# ------------------------------------------------------------------------------ engines
def _inner_folds(
    Ypat: np.ndarray, codes: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Inner folds of training rows (stratified jointly, patient-level)."""
    n_pat = Ypat.shape[0]
    if n_pat < k:
        raise AnalysisError(f"a training fold has {n_pat} patients; cannot make {k} inner folds.")
    return assign_folds(Ypat, k, rng)[codes]


def _patient_codes(row_patient: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, codes = np.unique(row_patient, return_inverse=True)
    return uniq, codes


def _fit_sklearn_fold(
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


# -------------------------------------------------------------------------------- API
def decode(
    representations: Any,
    cohort: Any,
    *,
    targets: list[str],
    cv: int | PatientStratifiedGroupKFold | LeaveOneGroupOut | None = None,
    n_splits: int = 5,
    n_repeats: int = 5,
    n_inner_splits: int = 5,
    n_c: int = 10,
    Cs: Any = None,
    penalty: Literal["l2", "elasticnet"] = "l2",
    l1_ratio: float = 0.5,
    pca: int | None = None,
    class_weight: Literal["balanced"] | None = None,
    group_by: str | None = None,
    stratify_jointly: bool = True,
    ci_method: Literal["delong", "bootstrap"] = "delong",
    level: float = 0.95,
    engine: Literal["auto", "fast", "sklearn"] = "auto",
    inner_scoring: Literal["neg_log_loss", "roc_auc"] = "neg_log_loss",
    n_permutations: int = 1000,
    seed: int = 0,
) -> DecodeResult:
    """Decode binary targets from representations with nested, patient-level cross-validation.

    Parameters
    ----------
    representations : AnnData or DataFrame
        Rows are patients (``obs_names`` = patient ids) or slides (``obs["patient_id"]``);
        slides of one patient never fall in different folds and their scores are averaged.
    cohort : Cohort or DataFrame
        A :class:`~tario_clinical.cohort.Cohort` (labels via ``cohort.label``; exclusions
        are appended to ``cohort.exclusions``) or a DataFrame with ``patient_id`` and the
        target columns (0/1 or genotype spellings).
    targets : list of str
        Binary columns to decode (genotypes, ``responder`` ...).
    cv : int, PatientStratifiedGroupKFold or LeaveOneGroupOut, optional
        Outer CV; an int sets ``n_splits``. Default: stratified group K-fold by patient,
        ``n_splits`` x ``n_repeats``.
    n_splits, n_repeats : int, default 5, 5
    n_inner_splits : int, default 5
        Inner folds (inside every outer training fold) that choose C.
    n_c : int, default 10
        Size of the default C path (:func:`default_Cs`); ignored when ``Cs`` is given.
    Cs : array-like, optional
        Explicit C path (scikit-learn convention, larger = weaker regularisation).
    penalty : {"l2", "elasticnet"}
    l1_ratio : float
        Elastic-net mixing.
    pca : int, optional
        Principal components kept after standardisation (fitted inside each training fold).
    class_weight : {"balanced"} or None
    group_by : str, optional
        Clinical column (e.g. ``site``, ``cancer_type``): leave-one-group-out outer CV to
        measure transfer (``n_repeats`` is then 1).
    stratify_jointly : bool, default True
        Stratify folds on all targets at once (multi-label); otherwise on the first target.
    ci_method : {"delong", "bootstrap"}
        Stored in ``params`` and used by :meth:`DecodeResult.auroc_ci` (summary uses DeLong).
    level : float, default 0.95
    engine : {"auto", "fast", "sklearn"}
        ``fast``: Gram/eigen-space batched solver (L2 only); ``sklearn``: reference
        ``Pipeline(StandardScaler, [PCA], LogisticRegressionCV)`` per outer fold and target;
        ``auto``: fast for L2, sklearn otherwise.
    inner_scoring : {"neg_log_loss", "roc_auc"}
        Inner-CV criterion choosing C (mean over inner folds). Log-loss (a proper scoring rule)
        is the default: with AUROC, flat inner curves tie-break to the strongest
        regularisation (a centroid classifier).
    n_permutations : int, default 1000
    seed : int, default 0
        Seeds folds (outer, inner) and permutations via ``SeedSequence(seed).spawn``.

    Returns
    -------
    DecodeResult

    Raises
    ------
    SchemaError, CohortError
        Malformed inputs (message names ids / columns).
    AnalysisError
        Too few patients for the requested folds.

    Notes
    -----
    Standardisation (and PCA) are fitted on each outer training fold's rows only; inner folds
    reuse the outer training fold's standardisation (like ``Pipeline(StandardScaler(),
    LogisticRegressionCV())``), so nothing from the outer test fold reaches any fit. Rows
    without a label for one target still enter the (label-free) standardisation of training
    folds. C is chosen by the mean inner-fold AUROC; the outer test fold is never used to
    tune anything.
    """
    if engine not in _ENGINES:
        raise SchemaError(f"engine must be one of {list(_ENGINES)}; got {engine!r}.")
    if penalty not in _PENALTIES:
        raise SchemaError(f"penalty must be one of {list(_PENALTIES)}; got {penalty!r}.")
    if ci_method not in _CI_METHODS:
        raise SchemaError(f"ci_method must be one of {list(_CI_METHODS)}; got {ci_method!r}.")
    if inner_scoring not in ("neg_log_loss", "roc_auc"):
        raise SchemaError(
            f"inner_scoring must be one of ['neg_log_loss', 'roc_auc']; got {inner_scoring!r}."
        )
    if class_weight not in (None, "balanced"):
        raise SchemaError(f"class_weight must be None or 'balanced'; got {class_weight!r}.")
    if isinstance(targets, str):
        targets = [targets]
    targets = list(targets)
    if not targets:
        raise SchemaError("targets must name at least one binary column.")
    if len(set(targets)) != len(targets):
        raise SchemaError(f"targets has duplicates: {targets}")
    use_fast = engine == "fast" or (engine == "auto" and penalty == "l2")
    if use_fast and penalty != "l2":
        raise SchemaError("engine='fast' supports penalty='l2' only; use engine='sklearn'.")

    data = prepare_data(representations, cohort, targets)
    _log_exclusions(cohort, data.exclusions)
    X = data.X
    uniq, codes = _patient_codes(data.row_patient)
    Ypat = data.labels.reindex(uniq).to_numpy(dtype=float)  # patients (sorted) x T
    Yrow = Ypat[codes]
    for j, t in enumerate(targets):
        col = Ypat[:, j][~np.isnan(Ypat[:, j])]
        if col.size == 0 or col.min() == col.max():
            raise AnalysisError(
                f"target {t!r} has {int(col.sum())} positives among {col.size} labelled patients "
                "with representations; decoding needs both classes."
            )
        if min(col.sum(), col.size - col.sum()) < 10:
            logger.warning("target %s has fewer than 10 patients in its minority class", t)
    Cs_arr = (
        default_Cs(n_c, uniq.size, X.shape[1]) if Cs is None else np.sort(np.asarray(Cs, float))
    )
    if np.any(Cs_arr <= 0):
        raise SchemaError("Cs must be positive.")

    # ---- outer CV design
    seeds = np.random.SeedSequence(seed).spawn(3)
    strat = Ypat if stratify_jointly else Ypat[:, :1]
    if isinstance(cv, int):
        n_splits = cv
        cv = None
    if group_by is not None:
        if group_by not in data.clinical.columns:
            raise CohortError(
                f"group_by column {group_by!r} is not in the clinical table; available: "
                f"{list(data.clinical.columns)[:30]}"
            )
        grp = data.clinical[group_by].reindex(uniq)
        if grp.isna().any():
            miss = grp.index[grp.isna()][:5].tolist()
            raise CohortError(f"group_by column {group_by!r} is missing for patients {miss}.")
        cv = LeaveOneGroupOut()
        designs = [
            (0, k, tr, te)
            for k, (tr, te) in enumerate(cv.split(X, groups=grp.astype(str).to_numpy()[codes]))
        ]
        cv_desc = f"leave-one-{group_by}-out"
    else:
        if cv is None:
            cv = PatientStratifiedGroupKFold(
                n_splits, n_repeats=n_repeats, seed=int(seeds[0].generate_state(1)[0])
            )
        if isinstance(cv, LeaveOneGroupOut):
            raise SchemaError("pass group_by=<column> to use leave-one-group-out.")
        if not isinstance(cv, PatientStratifiedGroupKFold):
            raise SchemaError(
                f"cv must be an int, PatientStratifiedGroupKFold or None; got {type(cv).__name__}."
            )
        if uniq.size < cv.n_splits:
            raise AnalysisError(f"{uniq.size} patients cannot fill {cv.n_splits} folds.")
        pf = cv.patient_folds(uniq, strat, None)  # patient-level folds
        designs = []
        for r in range(cv.n_repeats):
            for k in range(cv.n_splits):
                designs.append(
                    (r, k, np.flatnonzero(pf[r][codes] != k), np.flatnonzero(pf[r][codes] == k))
                )
        cv_desc = f"{cv.n_splits}-fold x {cv.n_repeats} patient-level stratified group K-fold"
    inner_rngs = [np.random.default_rng(s) for s in seeds[1].spawn(len(designs) + 1)]

    # ---- outer loop
    oof_parts, fold_rows, inner_parts = [], [], []
    for i, (r, k, train, test) in enumerate(designs):
        tr_pat, tr_codes = np.unique(codes[train], return_inverse=True)
        inner = _inner_folds(
            Ypat[tr_pat] if stratify_jointly else Ypat[tr_pat, :1],
            tr_codes,
            n_inner_splits,
            inner_rngs[i],
        )
        if use_fast:
            basis = _engine.fold_basis(X, train, test, n_components=pca)
            ff = _engine.nested_fold(
                basis, Yrow[train], inner, Cs_arr, class_weight=class_weight, scoring=inner_scoring
            )
            best, scores, std, inner_oof = ff.best_C, ff.test_scores, ff.test_std, ff.inner_oof
        else:
            best, scores, std, inner_oof = _fit_sklearn_fold(
                X,
                Yrow[train],
                inner,
                train,
                test,
                Cs_arr,
                penalty=penalty,
                l1_ratio=l1_ratio,
                pca=pca,
                class_weight=class_weight,
                seed=seed,
                scoring=inner_scoring,
            )
        for j, t in enumerate(targets):
            yt = Yrow[test, j]
            ok = ~np.isnan(yt)
            oof_parts.append(
                pd.DataFrame(
                    {
                        "patient_id": data.row_patient[test][ok],
                        "target": t,
                        "repeat": r,
                        "fold": k,
                        "score": std[ok, j],
                        "probability": 1.0 / (1.0 + np.exp(-scores[ok, j])),
                        "y_true": yt[ok].astype(int),
                    }
                )
            )
            fold_rows.append(
                {
                    "target": t,
                    "repeat": r,
                    "fold": k,
                    "C": best[j],
                    "n_train": int((~np.isnan(Yrow[train, j])).sum()),
                    "n_test": int(ok.sum()),
                }
            )
            yi = Yrow[train, j]
            oki = ~np.isnan(yi) & ~np.isnan(inner_oof[:, j])
            if oki.any():
                inner_parts.append(
                    pd.DataFrame(
                        {
                            "target": t,
                            "repeat": r,
                            "fold": k,
                            "score": inner_oof[oki, j],
                            "y_true": yi[oki].astype(int),
                        }
                    )
                )
        logger.debug("outer fold repeat=%d fold=%d done (C=%s)", r, k, best)
    oof = pd.concat(oof_parts, ignore_index=True)
    # slides -> patients: mean score per patient, repeat and target
    oof = oof.groupby(["patient_id", "target", "repeat", "fold"], sort=False, as_index=False).agg(
        score=("score", "mean"), probability=("probability", "mean"), y_true=("y_true", "first")
    )
    oof = oof[["patient_id", "target", "repeat", "fold", "score", "probability", "y_true"]]
    oof = oof.sort_values(["target", "repeat", "patient_id"], kind="mergesort").reset_index(
        drop=True
    )

    # ---- final models on all labelled patients
    final = _final_models(
        X,
        Yrow,
        codes,
        Ypat,
        targets,
        Cs_arr,
        data.feature_names,
        inner_rngs[-1],
        n_inner_splits=n_inner_splits,
        use_fast=use_fast,
        penalty=penalty,
        l1_ratio=l1_ratio,
        pca=pca,
        class_weight=class_weight,
        seed=seed,
        scoring=inner_scoring,
    )
    params = {
        "cv": cv_desc,
        "n_splits": len({d[1] for d in designs}),
        "n_repeats": len({d[0] for d in designs}),
        "n_inner_splits": n_inner_splits,
        "Cs": Cs_arr.tolist(),
        "penalty": penalty,
        "l1_ratio": l1_ratio if penalty == "elasticnet" else None,
        "pca": pca,
        "class_weight": class_weight,
        "group_by": group_by,
        "stratify_jointly": stratify_jointly,
        "engine": "fast" if use_fast else "sklearn",
        "ci_method": ci_method,
        "inner_scoring": inner_scoring,
        "level": level,
        "n_permutations": n_permutations,
        "seed": seed,
        "n_rows": int(X.shape[0]),
        "n_patients": int(uniq.size),
        "n_features": int(X.shape[1]),
    }
    return DecodeResult(
        oof=oof,
        exclusions=data.exclusions,
        final_models=final,
        folds=pd.DataFrame(fold_rows),
        inner_oof=pd.concat(inner_parts, ignore_index=True)
        if inner_parts
        else pd.DataFrame(columns=["target", "repeat", "fold", "score", "y_true"]),
        params=params,
        targets=targets,
    )


def _final_models(
    X: np.ndarray,
    Yrow: np.ndarray,
    codes: np.ndarray,
    Ypat: np.ndarray,
    targets: list[str],
    Cs: np.ndarray,
    feature_names: np.ndarray,
    rng: np.random.Generator,
    *,
    n_inner_splits: int,
    use_fast: bool,
    penalty: str,
    l1_ratio: float,
    pca: int | None,
    class_weight: str | None,
    seed: int,
    scoring: str,
) -> dict[str, LinearDecoder]:
    """One decoder per target on all its labelled rows; C chosen by inner CV on them."""
    out: dict[str, LinearDecoder] = {}
    params = {
        "penalty": penalty,
        "l1_ratio": l1_ratio,
        "n_components": pca,
        "class_weight": class_weight,
        "seed": seed,
    }
    # group targets sharing the same labelled rows so they share one factorisation
    groups: dict[bytes, list[int]] = {}
    for j in range(len(targets)):
        groups.setdefault(np.packbits(~np.isnan(Yrow[:, j])).tobytes(), []).append(j)
    for js in groups.values():
        rows = np.flatnonzero(~np.isnan(Yrow[:, js[0]]))
        pat, pc = np.unique(codes[rows], return_inverse=True)
        inner = assign_folds(Ypat[pat][:, js], n_inner_splits, rng)[pc]
        if use_fast and pca is None:
            basis = _engine.fold_basis(X, rows, None, with_feature_map=True)
            ff = _engine.nested_fold(
                basis, Yrow[rows][:, js], inner, Cs, class_weight=class_weight, scoring=scoring
            )
            for q, j in enumerate(js):
                w = basis.feature_map @ ff.coef[:, q]
                out[targets[j]] = LinearDecoder._from_solution(
                    {"C": float(ff.best_C[q]), **params},
                    mean=basis.mean,
                    scale=basis.scale,
                    coef_std=w,
                    intercept=float(ff.intercept[q]),
                    classes=np.array([0, 1]),
                    feature_names=feature_names,
                )
        else:
            if use_fast:
                basis = _engine.fold_basis(X, rows, None, n_components=pca)
                best = _engine.nested_fold(
                    basis, Yrow[rows][:, js], inner, Cs, class_weight=class_weight, scoring=scoring
                ).best_C
            else:
                best, _, _, _ = _fit_sklearn_fold(
                    X,
                    Yrow[rows][:, js],
                    inner,
                    rows,
                    rows[:0],
                    Cs,
                    penalty=penalty,
                    l1_ratio=l1_ratio,
                    pca=pca,
                    class_weight=class_weight,
                    seed=seed,
                    scoring=scoring,
                )
            for q, j in enumerate(js):
                Xdf = (
                    pd.DataFrame(X[rows], columns=feature_names) if feature_names.size else X[rows]
                )
                out[targets[j]] = LinearDecoder(C=float(best[q]), **params).fit(
                    Xdf, Yrow[rows, j].astype(int)
                )
    return out
