"""``decode()``: nested, patient-level cross-validation of linear decoders over many targets.

Inputs are aligned by :mod:`.decode_data`; the scikit-learn reference engine of one fold lives in
:mod:`.sklearn_fold`, the fast engine in :mod:`.engine`, inference in :mod:`.inference`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from .._checks import check_choice
from ..errors import AnalysisError, CohortError, SchemaError
from ..progress import stage
from . import engine as _engine
from . import inference as _inference
from .decode_data import DecodeData, log_exclusions, prepare_data
from .estimator import LinearDecoder
from .result import DecodeResult
from .sklearn_fold import fit_sklearn_fold, patient_codes
from .splitters import LeaveOneGroupOut, PatientStratifiedGroupKFold, assign_folds

if TYPE_CHECKING:  # pragma: no cover
    from .endpoint_result import EndpointResults

__all__ = ["decode", "prepare_data", "DecodeData", "default_Cs"]
# names of the pre-split module, still imported from here
_fit_sklearn_fold = fit_sklearn_fold

logger = logging.getLogger(__name__)

_ENGINES = ("auto", "fast", "sklearn")
_PENALTIES = ("l2", "elasticnet")
_CI_METHODS = ("jackknife", "jackknife_logit", "jackknife2", "bootstrap", "delong")
# decode() arguments that are not the binary decoder's options
_DISPATCH_ONLY = (
    "representations",
    "cohort",
    "targets",
    "target_types",
    "multi_class",
    "merge_rare",
    "min_class_size",
)


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


# -------------------------------------------------------------------------------- API
def decode(
    representations: Any,
    cohort: Any,
    *,
    targets: list[str],
    target_types: dict[str, str] | None = None,
    multi_class: Literal["ovr", "multinomial"] = "ovr",
    merge_rare: bool = False,
    min_class_size: int = 10,
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
    ci_method: Literal[
        "jackknife", "jackknife_logit", "jackknife2", "bootstrap", "delong"
    ] = "jackknife",
    p_method: Literal["permutation", "jackknife", "delong"] = "permutation",
    alternative: Literal["greater", "two-sided"] = "greater",
    level: float = 0.95,
    engine: Literal["auto", "fast", "sklearn"] = "auto",
    inner_scoring: Literal["neg_log_loss", "roc_auc"] = "neg_log_loss",
    n_permutations: int = 99,
    n_jackknife: int = 10,
    n_bootstrap: int = 200,
    n_jobs: int | None = 1,
    progress: bool | None = None,
    seed: int = 0,
) -> DecodeResult | EndpointResults:
    """Decode targets from representations with nested, patient-level cross-validation.

    Binary targets (genotypes, response) use the decoder documented below. Targets of other
    kinds are recognised from the cohort (two distinct values -> binary; text with more levels
    -> categorical; integer codes with at most 10 levels -> categorical; other numbers ->
    continuous; :func:`~tario_clinical.decode.endpoint_data.infer_target_types`), overridable
    with ``target_types``; the choice is logged and kept in the result. Categorical targets go
    to :func:`~tario_clinical.decode.multiclass.decode_categorical`, continuous ones to
    :func:`~tario_clinical.decode.regression.decode_continuous`, with the shared options
    (folds, repeats, PCA, ``group_by``, inference; ``ci_method``/``p_method="delong"`` become
    their ``"oof"`` formulas). With only binary targets the result is the binary decoder's
    :class:`DecodeResult`, unchanged; with others it is an
    :class:`~tario_clinical.decode.endpoint_result.EndpointResults` (``.binary`` holds the
    binary targets' :class:`DecodeResult`, ``.summary()`` one tidy table of every target).

    Parameters
    ----------
    representations : AnnData or DataFrame
        Rows are patients (``obs_names`` = patient ids) or slides (``obs["patient_id"]``);
        slides of one patient never fall in different folds and their scores are averaged.
    cohort : Cohort or DataFrame
        A :class:`~tario_clinical.cohort.Cohort` (labels via ``cohort.label``; the cohort
        is not changed: the patients left out are in the result's ``exclusions``, recorded in
        the cohort's log with ``cohort.record_exclusions(res.exclusions)``) or a DataFrame
        with ``patient_id`` and the target columns (0/1 or genotype spellings).
    targets : list of str
        Columns to decode (genotypes, ``responder``, ``cancer_type``, a continuous score ...).
    target_types : dict, optional
        ``{target: "binary" | "categorical" | "continuous"}`` overriding the inferred kind.
        A two-level column other than 0/1 or the genotype spellings (e.g. ``F``/``M``) is coded
        0/1 with the second level in sorted order as 1 (logged).
    multi_class : {"ovr", "multinomial"}, default "ovr"
        Categorical targets: one-vs-rest or multinomial L2-logistic decoders.
    merge_rare : bool, default False
        Categorical targets: merge levels with fewer than ``min_class_size`` patients into one
        ``other`` level (default: keep and flag them).
    min_class_size : int, default 10
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
    ci_method : {"jackknife", "jackknife_logit", "jackknife2", "bootstrap", "delong"}, default "jackknife"
        Interval of the cross-validated AUROC (see :mod:`tario_clinical.decode.inference`):
        ``jackknife`` re-runs the whole CV ``n_jackknife`` times, each without one stratified
        group of patients (every other patient keeps its folds), and forms ``T -/+ t se`` on
        the AUROC scale; with the permutation test, whether it contains 0.5 is decided by the
        exact two-sided permutation test (columns ``p_chance``, ``excludes_chance``);
        ``jackknife_logit`` is the same on the logit scale (more conservative); ``jackknife2`` also deletes
        every pair of groups and subtracts the interaction variance (comparison only: it
        under-covers with signal in the validation study); ``bootstrap`` re-runs the whole
        procedure on ``n_bootstrap`` patient-level resamples; ``delong`` is DeLong on the OOF
        scores (treats them as independent: anti-conservative, for comparison only). The
        estimand is the expected AUROC on new patients of the decoders this procedure fits to
        ``n (k - 1) / k`` patients.
    p_method : {"permutation", "jackknife", "delong"}, default "permutation"
        ``permutation``: labels permuted at the patient level (within blocks of equal
        missing-label pattern and ``group_by`` group) and the whole nested CV re-run, fold
        assignment included, ``n_permutations`` times; ``p = (1 + #{T_b >= T}) / (1 + B)``
        (exact). ``jackknife``: Wald test on the AUROC scale with the jackknife SE and
        ``t_{G-1}`` (approximate; cheap at scale). ``delong``: DeLong's test on OOF scores
        (anti-conservative; comparison only).
    alternative : {"greater", "two-sided"}, default "greater"
        ``greater`` tests "better than chance" (AUROC > 0.5), the question a decoder answers.
    level : float, default 0.95
    engine : {"auto", "fast", "sklearn"}
        ``fast``: Gram/eigen-space batched solver (L2 only); ``sklearn``: reference
        ``Pipeline(StandardScaler, [PCA], LogisticRegressionCV)`` per outer fold and target;
        ``auto``: fast for L2, sklearn otherwise.
    inner_scoring : {"neg_log_loss", "roc_auc"}
        Inner-CV criterion choosing C (mean over inner folds). Log-loss (a proper scoring rule)
        is the default: with AUROC, flat inner curves tie-break to the strongest
        regularisation (a centroid classifier).
    n_permutations : int, default 99
        Permutations of the permutation test (p-value resolution ``1 / (1 + B)``).
    n_jackknife : int, default 10
        Patient groups of the jackknife (``ci_method`` or ``p_method`` "jackknife").
    n_bootstrap : int, default 200
        Resamples of ``ci_method="bootstrap"``.
    n_jobs : int or None, default 1
        Processes for the re-runs (``-1``: all cores); results are identical for any value.
    progress : bool or None
        Progress bar on stderr for the re-runs (None: only on a terminal, not in notebooks).
    seed : int, default 0
        Seeds folds (outer, inner), permutations, jackknife groups and bootstrap resamples via
        ``SeedSequence(seed).spawn``.

    Returns
    -------
    DecodeResult or EndpointResults
        ``DecodeResult`` when every target is binary.

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
    folds. C is chosen by the inner-fold criterion (log-loss by default); the outer test fold is never used to
    tune anything. C is chosen by the mean inner-fold log-loss by default (``inner_scoring``).
    The OOF ``score`` is each fold model's linear predictor standardised by its mean and SD over
    that fold's training rows (not log-odds; ``probability`` is the model's own probability).
    """
    options = {k: v for k, v in locals().items() if k not in _DISPATCH_ONLY}
    from .mixed_targets import decode_mixed, split_targets  # they import this module

    kinds, to_code = split_targets(cohort, targets, target_types)
    if all(k == "binary" for k, _ in kinds.values()) and not to_code:
        return _decode_binary(representations, cohort, targets=targets, **options)
    return decode_mixed(
        representations,
        cohort,
        kinds,
        to_code,
        _decode_binary,
        binary_kwargs=options,
        multi_class=multi_class,
        merge_rare=merge_rare,
        min_class_size=min_class_size,
    )


def _decode_binary(
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
    ci_method: Literal[
        "jackknife", "jackknife_logit", "jackknife2", "bootstrap", "delong"
    ] = "jackknife",
    p_method: Literal["permutation", "jackknife", "delong"] = "permutation",
    alternative: Literal["greater", "two-sided"] = "greater",
    level: float = 0.95,
    engine: Literal["auto", "fast", "sklearn"] = "auto",
    inner_scoring: Literal["neg_log_loss", "roc_auc"] = "neg_log_loss",
    n_permutations: int = 99,
    n_jackknife: int = 10,
    n_bootstrap: int = 200,
    n_jobs: int | None = 1,
    progress: bool | None = None,
    seed: int = 0,
) -> DecodeResult:
    """The binary decoder behind :func:`decode` (all targets binary; see its docstring)."""
    check_choice("engine", engine, _ENGINES)
    check_choice("penalty", penalty, _PENALTIES)
    check_choice("ci_method", ci_method, _CI_METHODS)
    check_choice("p_method", p_method, _inference.P_METHODS)
    if alternative not in ("greater", "two-sided"):
        raise SchemaError(f"alternative must be 'greater' or 'two-sided'; got {alternative!r}.")
    check_choice("inner_scoring", inner_scoring, ("neg_log_loss", "roc_auc"))
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
    log_exclusions(data.exclusions)
    X = data.X
    uniq, codes = patient_codes(data.row_patient)
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

    # ---- outer CV design (patient level; the same plan is re-used by the jackknife)
    user_seed = None
    if isinstance(cv, int):
        n_splits = cv
        cv = None
    groups_pat = None
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
        groups_pat = grp.astype(str).to_numpy()
        cv_desc = f"leave-one-{group_by}-out"
        n_rep_eff = 1
    else:
        if cv is None:
            cv = PatientStratifiedGroupKFold(n_splits, n_repeats=n_repeats)
        else:
            user_seed = cv.seed
        if isinstance(cv, LeaveOneGroupOut):
            raise SchemaError("pass group_by=<column> to use leave-one-group-out.")
        if not isinstance(cv, PatientStratifiedGroupKFold):
            raise SchemaError(
                f"cv must be an int, PatientStratifiedGroupKFold or None; got {type(cv).__name__}."
            )
        if uniq.size < cv.n_splits:
            raise AnalysisError(f"{uniq.size} patients cannot fill {cv.n_splits} folds.")
        n_splits, n_rep_eff = cv.n_splits, cv.n_repeats
        cv_desc = f"{cv.n_splits}-fold x {cv.n_repeats} patient-level stratified group K-fold"
    plan_kw: dict[str, Any] = {
        "n_splits": n_splits,
        "n_repeats": n_rep_eff,
        "n_inner_splits": n_inner_splits,
        "stratify_jointly": stratify_jointly,
        "groups": groups_pat,
    }
    plan = _inference.make_plan(
        Ypat, seed_seq=np.random.SeedSequence(seed), outer_seed=user_seed, **plan_kw
    )
    designs = []
    for r, k in plan.designs:
        designs.append(
            (
                r,
                k,
                np.flatnonzero(plan.outer[r][codes] != k),
                np.flatnonzero(plan.outer[r][codes] == k),
            )
        )
    final_rng = np.random.default_rng(
        np.random.SeedSequence(seed).spawn(3)[1].spawn(len(designs) + 1)[-1]
    )

    # ---- outer loop
    oof_parts, fold_rows, inner_parts = [], [], []
    fast_fits = (
        _engine.nested_folds(
            X,
            Yrow,
            [(tr, te, plan.inner[i][codes[tr]]) for i, (_, _, tr, te) in enumerate(designs)],
            Cs_arr,
            n_components=pca,
            class_weight=class_weight,
            scoring=inner_scoring,
        )
        if use_fast
        else None
    )
    for i, (r, k, train, test) in enumerate(designs):
        if fast_fits is not None:
            ff = fast_fits[i]
            best, scores, std, inner_oof = ff.best_C, ff.test_scores, ff.test_std, ff.inner_oof
        else:
            best, scores, std, inner_oof = fit_sklearn_fold(
                X,
                Yrow[train],
                plan.inner[i][codes[train]],
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
        final_rng,
        n_inner_splits=n_inner_splits,
        use_fast=use_fast,
        penalty=penalty,
        l1_ratio=l1_ratio,
        pca=pca,
        class_weight=class_weight,
        seed=seed,
        scoring=inner_scoring,
    )
    problem = _inference.CVProblem(
        X=X,
        codes=codes,
        Cs=Cs_arr,
        pca=pca,
        class_weight=class_weight,
        scoring=inner_scoring,
        engine="fast" if use_fast else "sklearn",
        penalty=penalty,
        l1_ratio=l1_ratio,
        seed=seed,
    )
    with stage("decode inference", targets=len(targets)):
        inference, resamples = _inference.infer(
            problem,
            Ypat,
            plan,
            plan_kw,
            targets,
            oof,
            ci_method=ci_method,
            p_method=p_method,
            alternative=alternative,
            level=level,
            n_permutations=n_permutations,
            n_jackknife=n_jackknife,
            n_bootstrap=n_bootstrap,
            seed=seed,
            n_jobs=n_jobs,
            progress=progress,
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
        "p_method": p_method,
        "alternative": alternative,
        "estimand": (
            "expected AUROC on new patients of the pooled out-of-fold decoders this procedure "
            f"fits to n(k-1)/k patients (mean over {n_rep_eff} repeat(s) of the pooled AUROC)"
        ),
        "inner_scoring": inner_scoring,
        "level": level,
        "n_permutations": n_permutations if p_method == "permutation" else None,
        "n_jackknife": n_jackknife if "jackknife" in (ci_method, p_method) else None,
        "n_bootstrap": n_bootstrap if ci_method == "bootstrap" else None,
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
        inference=inference,
        resamples=resamples,
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
                best, _, _, _ = fit_sklearn_fold(
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
