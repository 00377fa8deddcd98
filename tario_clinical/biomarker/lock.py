"""Locked biomarkers: a development decoder frozen into a versioned, pickle-free artefact.

:func:`lock_biomarker` takes the final model of a :func:`tario_clinical.decode` run for one
target and writes everything needed to apply it elsewhere without refitting: the standardiser,
(PCA,) coefficients and intercept with the feature names; the score scale and the cut-off(s) on
it (as a development quantile *and* as a raw score); the provenance of the representation it
requires (model card, weights SHA-256, tiling, feature-list hash); the development cohort's
summary (n, prevalence, follow-up) and the development performance with its interval.

The artefact itself (format, reader, scoring) is :mod:`tario_clinical.biomarker.artefact`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import AnalysisError, CohortError, SchemaError
from ..provenance import sha256_bytes
from ._common import align_features, as_matrix, json_safe, patient_means, sigmoid
from .artefact import (
    ARTEFACT_FORMAT,
    ARTEFACT_VERSION,
    LockedBiomarker,
    artefact_from_document,
    artefact_in_memory,
    assign_groups,
    encode_array,
    load_locked_biomarker,
    validate_document,
)
from .identity import representation_identity

__all__ = ["lock_biomarker"]

_CUTOFF_SCALES = ("quantile", "score", "probability")
_ARRAYS = ("json", "npz")


# ------------------------------------------------------------------------------ lock
def _cutoff_quantiles(
    cutoff: Any, cutoff_scale: str, scores: np.ndarray, prevalence: float
) -> list[dict[str, Any]]:
    if cutoff_scale not in _CUTOFF_SCALES:
        raise SchemaError(
            f"cutoff_scale must be one of {list(_CUTOFF_SCALES)}; got {cutoff_scale!r}"
        )
    if isinstance(cutoff, str):
        if cutoff == "median":
            spec = [("median", 0.5)]
        elif cutoff == "tertiles":
            spec = [("tertile_1", 1.0 / 3.0), ("tertile_2", 2.0 / 3.0)]
        elif cutoff == "prevalence":
            spec = [("prevalence", 1.0 - prevalence)]
        else:
            raise SchemaError(
                f"cutoff must be 'median', 'tertiles', 'prevalence', a number or a list of "
                f"numbers; got {cutoff!r}"
            )
        raw = [(name, q, float(np.quantile(scores, q))) for name, q in spec]
    else:
        values = [cutoff] if np.isscalar(cutoff) else list(cutoff)
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            raise SchemaError(f"cutoff must be numbers; got {cutoff!r}") from None
        if not values or not all(np.isfinite(values)):
            raise SchemaError(f"cutoff must be finite numbers; got {cutoff!r}")
        raw = []
        for v in values:
            if cutoff_scale == "quantile":
                if not 0.0 < v < 1.0:
                    raise SchemaError(f"a quantile cut-off must lie in (0, 1); got {v!r}")
                raw.append((f"q{v:g}", v, float(np.quantile(scores, v))))
            elif cutoff_scale == "probability":
                if not 0.0 < v < 1.0:
                    raise SchemaError(f"a probability cut-off must lie in (0, 1); got {v!r}")
                s = float(np.log(v) - np.log1p(-v))
                raw.append((f"p{v:g}", float(np.mean(scores <= s)), s))
            else:
                raw.append((f"score{v:g}", float(np.mean(scores <= v)), v))
    raw.sort(key=lambda r: r[2])
    vals = [r[2] for r in raw]
    if len(set(vals)) != len(vals):
        raise SchemaError(f"cut-offs must be distinct on the score scale; got {vals}")
    return [
        {
            "name": name,
            "quantile": float(q),
            "score": float(s),
            "probability": float(sigmoid(np.array([s]))[0]),
            "fraction_positive_development": float(np.mean(scores > s)),
        }
        for name, q, s in raw
    ]


def _development_survival(
    cohort: Any, scores: pd.Series, groups: pd.Series, endpoint: str | None
) -> dict[str, Any] | None:
    """Follow-up of the scored development patients and the (apparent) HR by the locked groups."""
    if cohort is None or endpoint is None:
        return None
    clinical = cohort.clinical if hasattr(cohort, "clinical") else cohort
    if not isinstance(clinical, pd.DataFrame) or "patient_id" not in clinical.columns:
        raise CohortError("cohort must be a Cohort or a clinical DataFrame with patient_id")
    t, e = f"{endpoint}_time", f"{endpoint}_event"
    if t not in clinical.columns or e not in clinical.columns:
        return {"endpoint": endpoint, "available": False, "note": f"no columns {t}, {e}"}
    from .. import survival

    d = clinical.assign(patient_id=clinical["patient_id"].astype(str)).set_index("patient_id")
    d = d.reindex(scores.index)[[t, e]].apply(pd.to_numeric, errors="coerce")
    d = d.assign(biomarker=groups.to_numpy(), score=scores.to_numpy()).dropna(subset=[t, e])
    out: dict[str, Any] = {
        "endpoint": endpoint,
        "available": True,
        "time_unit": str(getattr(cohort, "time_unit", "months")),
        "n": len(d),
        "events": int(d[e].sum()),
        "basis": "apparent (the final model scored on the development patients it was fitted on)",
    }
    if len(d) < 4 or d[e].sum() == 0:
        out["note"] = "too few patients or no events"
        return out
    fu = survival.km(d.assign(_cens=1 - d[e]), time=t, event="_cens").summary
    out["median_follow_up"] = json_safe(fu["median"].iloc[0])
    out["median_survival"] = json_safe(survival.km(d, time=t, event=e).summary["median"].iloc[0])
    try:
        cx = survival.cox(d, time=t, event=e, covariates=["biomarker"])
        lr = survival.logrank(d, time=t, event=e, group="biomarker")
        out["cox"] = json_safe(cx.reset_index())
        out["logrank_p_value"] = json_safe(lr.loc["log-rank", "p_value"])
    except AnalysisError as err:
        out["note"] = f"survival by the locked cut-off not estimable: {err}"
    return out


def lock_biomarker(
    decode_result: Any,
    target: str,
    *,
    representations: Any,
    cohort: Any = None,
    cutoff: Literal["median", "tertiles", "prevalence"] | float | Sequence[float] = "median",
    cutoff_scale: Literal["quantile", "score", "probability"] = "quantile",
    endpoint: str | None = "os",
    name: str | None = None,
    path: str | Path | None = None,
    arrays: Literal["json", "npz"] = "json",
    include_time: bool = True,
) -> LockedBiomarker:
    """Lock the final decoder of one target into a versioned, pickle-free artefact.

    Parameters
    ----------
    decode_result : DecodeResult
        A :func:`tario_clinical.decode` run; its ``final_models[target]`` (fitted on all
        labelled development patients, C chosen by CV on them) is what gets locked, and its
        cross-validated AUROC with interval is the development performance.
    target : str
        One of ``decode_result.targets``.
    representations : AnnData or DataFrame
        The development representations the decoder was fitted on: they give the score
        distribution (cut-offs), the feature summary (shift diagnostics) and the provenance the
        biomarker will require (``uns["tario_clinical"]``).
    cohort : Cohort or DataFrame, optional
        Development clinical table: follow-up and the (apparent) survival split by the cut-off.
    cutoff : {"median", "tertiles", "prevalence"}, float or sequence of float, default "median"
        Cut-off(s) on the locked score. Names are development quantiles (``"prevalence"``: the
        top development-prevalence fraction is positive); numbers are read on ``cutoff_scale``.
        Each is stored as a development quantile and as a raw score; ``score > cut-off`` is
        positive (``tario_clinical.survival.stratify``'s rule). Quantiles are R's type 7.
    cutoff_scale : {"quantile", "score", "probability"}, default "quantile"
    endpoint : str or None, default "os"
        Survival endpoint (``<endpoint>_time``/``_event``) summarised with ``cohort``.
    name : str, optional
        Human name (default ``"<target> locked biomarker"``).
    path : str or Path, optional
        Also write the artefact there (see :meth:`LockedBiomarker.save`).
    arrays : {"json", "npz"}, default "json"
    include_time : bool, default True
        Record the UTC time of locking (off: the same inputs give byte-identical artefacts).

    Returns
    -------
    LockedBiomarker

    Raises
    ------
    SchemaError
        Not a DecodeResult, unknown target, representations lacking the model's features,
        invalid cut-offs.
    AnalysisError
        The final model is not a binary linear decoder, or the locked scorer does not reproduce
        it.

    Examples
    --------
    >>> import tario_clinical as tc  # doctest: +SKIP
    >>> trial = tc.simulate_trial(300, seed=0, n_genes=200)  # doctest: +SKIP
    >>> res = tc.decode(trial.representations, trial.cohort(), targets=["EGFR"],
    ...                 p_method="delong", ci_method="delong")  # doctest: +SKIP
    >>> locked = tc.lock_biomarker(res, "EGFR", representations=trial.representations,
    ...                            cohort=trial.cohort(), path="egfr.json")  # doctest: +SKIP
    """
    from ..decode import DecodeResult
    from ..provenance import provenance_record

    if not isinstance(decode_result, DecodeResult):
        raise SchemaError(
            f"decode_result must be the DecodeResult of tario_clinical.decode(); got "
            f"{type(decode_result).__name__}"
        )
    if target not in decode_result.targets:
        raise SchemaError(
            f"target {target!r} was not decoded; decoded targets: {decode_result.targets}"
        )
    if arrays not in _ARRAYS:
        raise SchemaError(f"arrays must be one of {list(_ARRAYS)}; got {arrays!r}")
    fm = decode_result.final_models[target]
    classes = np.asarray(getattr(fm, "classes_", []))
    coef = np.atleast_2d(np.asarray(getattr(fm, "coef_", np.empty((0, 0)))))
    if classes.size != 2 or coef.shape[0] != 1:
        raise AnalysisError(
            f"the final model of {target!r} is not a binary linear decoder (classes "
            f"{classes.tolist()}, coef shape {coef.shape}); only binary targets can be locked"
        )
    m = as_matrix(representations, what="development representations")
    names = getattr(fm, "feature_names_in_", None)
    if names is None:
        if m.feature_names.size != fm.n_features_in_:
            raise SchemaError(
                f"the final model has {fm.n_features_in_} unnamed features; the development "
                f"representations have {m.feature_names.size}"
            )
        names = m.feature_names
    names = [str(n) for n in names]
    X = align_features(m, names, what="development representations", context="of the final model")

    pca = getattr(fm, "pca_", None)
    doc_model: dict[str, Any] = {
        "kind": "linear_logistic",
        "estimator": "tario_clinical.decode.LinearDecoder",
        "classes": [json_safe(c) for c in classes.tolist()],
        "feature_names": names,
        "n_features": len(names),
        "feature_list_sha256": sha256_bytes("\n".join(names).encode("utf-8")),
        "scaler_mean": encode_array(fm.scaler_.mean_),
        "scaler_scale": encode_array(fm.scaler_.scale_),
        "pca_mean": None if pca is None else encode_array(pca.mean_),
        "pca_components": None if pca is None else encode_array(pca.components_),
        "coef": encode_array(coef),
        "intercept": encode_array(np.asarray(fm.intercept_).reshape(1)),
        "hyperparameters": json_safe(fm.get_params()),
        "development_input_dtype": str(X.dtype),
    }
    probe = artefact_in_memory(
        {
            "model": doc_model,
            "target": target,
            "name": "probe",
            "cutoffs": [],
            "representation": {},
            "development": {},
        }
    )
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = m.row_ids[~finite][:5].tolist()
        raise SchemaError(
            f"development representations: {int((~finite).sum())} rows hold NaN or infinite "
            f"values, e.g. {bad}"
        )
    row_scores = probe._linear_predictor(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fitted with feature names
        reference = np.asarray(fm.decision_function(X), dtype=float).reshape(-1)
    gap = float(np.max(np.abs(row_scores - reference))) if reference.size else 0.0
    if not gap <= 1e-9 * max(1.0, float(np.max(np.abs(reference)))):
        raise AnalysisError(
            f"the locked scorer does not reproduce the final model of {target!r} (max |diff| "
            f"{gap:.3g}); this estimator cannot be locked"
        )
    ids, scores = patient_means(row_scores, m.patient_ids)
    s = pd.Series(scores, index=pd.Index(ids, name="patient_id"))

    # ---- development labels, performance (from the decode run)
    oof = decode_result.oof[decode_result.oof["target"] == target]
    lab = oof.groupby("patient_id", sort=True)["y_true"].first()
    lab.index = lab.index.astype(str)
    n, n_pos = int(lab.size), int(lab.sum())
    prevalence = n_pos / n if n else float("nan")
    summ = decode_result.summary().set_index("target").loc[target]
    params = decode_result.params
    perf = {
        "auroc": summ["auroc"],
        "low": summ["low"],
        "high": summ["high"],
        "se": summ["se"],
        "level": params.get("level", 0.95),
        "ci_method": summ["ci_method"],
        "p_value": summ["p_value"],
        "p_method": summ["p_method"],
        "auprc": summ["auprc"],
        "brier": summ["brier"],
        "calibration_intercept": summ["calibration_intercept"],
        "calibration_slope": summ["calibration_slope"],
        "n": summ["n"],
        "n_positive": summ["n_positive"],
        "note": summ["note"],
        "basis": "cross-validated (out-of-fold decoders of the same procedure)",
        "estimand": params.get("estimand"),
        "cv": params.get("cv"),
    }
    from .. import metrics

    labelled = lab.index.intersection(s.index)
    y_lab = lab.loc[labelled].to_numpy(int)
    s_lab = s.loc[labelled].to_numpy()
    apparent: dict[str, Any] = {"n": int(labelled.size), "basis": "apparent (in-sample)"}
    if 0 < y_lab.sum() < y_lab.size:
        a = metrics.auroc_ci(y_lab, s_lab, level=float(params.get("level", 0.95)))
        apparent.update(auroc=a.auroc, low=a.low, high=a.high, method=a.method)
        apparent["brier"] = metrics.brier(y_lab, sigmoid(s_lab))
    cutoffs = _cutoff_quantiles(cutoff, cutoff_scale, scores, prevalence)
    groups = assign_groups(s, [c["score"] for c in cutoffs])

    excl = decode_result.exclusions
    excl = excl[excl["target"] == target]
    _, fsum = patient_means(X.astype(np.float64), m.patient_ids)
    development = {
        "cohort": {
            "n": n,
            "n_positive": n_pos,
            "prevalence": prevalence,
            "n_scored": int(s.size),
            "n_excluded": int(len(excl)),
            "exclusions": json_safe(excl.groupby("reason").size().to_dict()),
            "study_id": _distinct(cohort, "study_id"),
            "n_sites": _n_distinct(cohort, "site"),
        },
        "performance": perf,
        "apparent": apparent,
        "survival": _development_survival(cohort, s, groups, endpoint),
        "score_distribution": {
            "n": int(s.size),
            "mean": float(np.mean(scores)),
            "sd": float(np.std(scores, ddof=1)) if s.size > 1 else None,
            "percentiles": [float(v) for v in np.quantile(scores, np.linspace(0, 1, 101))],
        },
        "feature_mean": encode_array(fsum.mean(axis=0)),
        "feature_sd": encode_array(
            fsum.std(axis=0, ddof=1) if fsum.shape[0] > 1 else np.zeros(len(names))
        ),
        "decode_params": json_safe({k: v for k, v in params.items() if k != "Cs"}),
    }
    identity = representation_identity(representations)
    identity["feature_list_sha256"] = doc_model["feature_list_sha256"]
    identity["n_features"] = len(names)
    prov = provenance_record(
        kind="locked_biomarker",
        seed=params.get("seed"),
        parameters={
            "target": target,
            "cutoff": json_safe(cutoff),
            "cutoff_scale": cutoff_scale,
            "endpoint": endpoint,
        },
        include_time=include_time,
        reproduces_final_model_max_abs_diff=gap,
    )
    prov.pop("schema_version", None)
    doc = json_safe(
        {
            "format": ARTEFACT_FORMAT,
            "schema_version": ARTEFACT_VERSION,
            "name": name or f"{target} locked biomarker",
            "target": target,
            "model": doc_model,
            "score": {
                "scale": "log-odds",
                "definition": (
                    f"linear predictor of the locked logistic model: logit P({target} = 1); "
                    "probability = 1 / (1 + exp(-score)); higher = more likely positive"
                ),
                "patient_level": "mean of the rows' scores when a patient has several rows",
            },
            "cutoffs": cutoffs,
            "cutoff_rule": "positive (above) when score > cut-off",
            "representation": identity,
            "development": development,
            "provenance": prov,
        }
    )
    validate_document(doc, "lock_biomarker")
    locked = artefact_in_memory(doc)
    if path is not None:
        saved = locked.save(path, arrays=arrays)
        if arrays == "npz":
            return load_locked_biomarker(saved)
        locked = artefact_from_document(doc, sha256=locked.sha256, source=str(saved))
    return locked


def _distinct(cohort: Any, column: str) -> list[str] | None:
    clinical = getattr(cohort, "clinical", cohort)
    if not isinstance(clinical, pd.DataFrame) or column not in clinical.columns:
        return None
    return sorted(map(str, clinical[column].dropna().unique()))[:20]


def _n_distinct(cohort: Any, column: str) -> int | None:
    clinical = getattr(cohort, "clinical", cohort)
    if not isinstance(clinical, pd.DataFrame) or column not in clinical.columns:
        return None
    return int(clinical[column].nunique())
