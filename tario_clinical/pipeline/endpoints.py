"""The endpoint decoders of the ``decode:`` block: categorical, continuous, time to event and
treatment benefit, next to the binary decoders.

:func:`target_kinds` says which kind every target is (binary unless ``decode.target_types``
names it, or inferred from the cohort with ``decode.infer_target_types``), with the reason;
:func:`check_endpoints` checks every endpoint against the clinical table before anything runs
(a categorical target with one level, a continuous target holding text, negative or missing
survival times, a benefit analysis on a one-arm cohort: each a :class:`SchemaError` naming the
file, row, column and value); :func:`run_endpoints` runs the decoders and
:func:`endpoints_record` turns them into ``results["endpoints"]`` (validated by
``data_schemas/results.schema.json``): the target kinds, one summary table with the same
columns for every kind (binary rows included) and each decoder's tables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..config import StudyConfig
from ..errors import ConfigError, SchemaError

__all__ = [
    "target_kinds",
    "log_kinds",
    "has_endpoints",
    "check_endpoints",
    "run_endpoints",
    "endpoints_record",
    "endpoints_summary",
]

log = logging.getLogger("tario_clinical")

#: reason recorded for a target that no override or inference made non-binary
DEFAULT_REASON = "binary: decode.targets are binary unless decode.target_types says otherwise"

_MISSING = frozenset(["", "na", "n/a", "nan", "none", "null", "unknown", "not tested", "nd", "."])


def target_kinds(config: StudyConfig, cohort: Any) -> dict[str, tuple[str, str]]:
    """``target -> (kind, reason)`` of every ``decode.targets`` entry (see :func:`log_kinds`).

    Binary unless ``decode.target_types`` gives the kind; with ``decode.infer_target_types``
    the others are inferred from the cohort
    (:func:`tario_clinical.decode.infer_target_types`: two levels -> binary, text with more
    -> categorical, integer codes with few levels -> categorical, other numbers ->
    continuous).
    """
    from ..decode import infer_target_types

    d = config.decode
    given = dict(d.target_types)
    columns = set(cohort.clinical.columns)
    to_infer = [t for t in d.targets if t not in given and t in columns]
    inferred = infer_target_types(cohort, to_infer) if d.infer_target_types and to_infer else {}
    out: dict[str, tuple[str, str]] = {}
    for t in d.targets:
        if t in given:
            out[t] = (given[t], "given in decode.target_types")
        elif t in inferred:
            kind, why = inferred[t]
            out[t] = (kind, f"inferred from the cohort: {why}")
        else:
            out[t] = ("binary", DEFAULT_REASON)
    return out


def log_kinds(kinds: Mapping[str, tuple[str, str]]) -> None:
    """Log every target's kind and the reason (when the study runs, after the checks)."""
    for t, (kind, why) in kinds.items():
        log.info("target %s is %s (%s)", t, kind, why)


def has_endpoints(config: StudyConfig, kinds: Mapping[str, tuple[str, str]]) -> bool:
    """Whether the study decodes anything beyond binary targets."""
    d = config.decode
    return bool(
        d.survival_decoders or d.benefit_decoders or any(k != "binary" for k, _ in kinds.values())
    )


# ------------------------------------------------------------------------------ checks
def _missing(values: pd.Series) -> np.ndarray:
    text = values.astype(str).str.strip().str.lower()
    return values.isna().to_numpy(dtype=bool) | text.isin(_MISSING).to_numpy()


def _violation(source: str, rows: np.ndarray, column: str, values: pd.Series, rule: str) -> str:
    from ..schemas import format_violations

    v = pd.DataFrame(
        {
            "file": source,
            "row": rows + 1,
            "column": column,
            "value": values.iloc[rows].astype(str).to_numpy(),
            "rule": rule,
        }
    )
    return format_violations(v, limit=10)


def _levels(values: pd.Series) -> list[str]:
    return sorted(set(values[~_missing(values)].astype(str).str.strip()))


def _check_categorical(clin: pd.DataFrame, t: str, source: str) -> None:
    levels = _levels(clin[t])
    if len(levels) < 2:
        shown = f"only the value {levels[0]!r}" if levels else "no value"
        raise SchemaError(
            f"{source}: column {t!r} (a categorical target) has {shown} in its "
            f"{int((~_missing(clin[t])).sum())} non-missing rows; a categorical target needs at "
            "least two levels (remove it from decode.targets or fix the column)"
        )


def _check_continuous(clin: pd.DataFrame, t: str, source: str) -> None:
    col = clin[t]
    miss = _missing(col)
    num = pd.to_numeric(col.where(~miss), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~miss & ~np.isfinite(num))
    if bad.size:
        raise SchemaError(
            f"{source}: column {t!r} is a continuous target but {bad.size} row(s) hold text "
            "(declare it categorical in decode.target_types or fix the values):\n"
            + _violation(source, bad, t, col, "a continuous target must be a number")
        )
    if np.unique(num[np.isfinite(num)]).size < 3:
        raise SchemaError(
            f"{source}: column {t!r} (a continuous target) has fewer than three distinct "
            "numbers; declare it binary or categorical"
        )


def _check_survival(clin: pd.DataFrame, time: str, event: str, key: str, source: str) -> None:
    absent = [c for c in (time, event) if c not in clin.columns]
    if absent:
        raise ConfigError(f"key '{key}': column(s) {', '.join(map(repr, absent))} not in {source}")
    tcol, ecol = clin[time], clin[event]
    tmiss = _missing(tcol)
    t = pd.to_numeric(tcol.where(~tmiss), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~tmiss & ~(np.isfinite(t) & (t >= 0)))
    if bad.size:
        raise SchemaError(
            f"{source}: column {time!r} ({key}) holds {bad.size} negative, infinite or "
            "non-numeric time(s):\n"
            + _violation(source, bad, time, tcol, "a time must be a number >= 0")
        )
    emiss = _missing(ecol)
    text = ecol.astype(str).str.strip().str.lower()
    ok = text.isin(["0", "1", "0.0", "1.0", "true", "false"]).to_numpy()
    bad = np.flatnonzero(~emiss & ~ok)
    if bad.size:
        raise SchemaError(
            f"{source}: column {event!r} ({key}) is not an event indicator in {bad.size} "
            "row(s):\n" + _violation(source, bad, event, ecol, "allowed: 1 (event), 0 (censored)")
        )


def check_endpoints(config: StudyConfig, cohort: Any, kinds: Mapping[str, tuple[str, str]]) -> None:
    """Check every endpoint of the ``decode:`` block against the clinical table.

    Raises
    ------
    SchemaError
        A categorical target with fewer than two levels, a continuous target with text, a
        binary target that is not a binary label, negative / non-numeric survival times or
        event values other than 0/1, a benefit arm column without exactly two arms, a benefit
        response that is not binary (each naming the file, column and, where there are any,
        the rows and values).
    ConfigError
        A survival / benefit column that is not in the clinical table, an experimental arm
        that is not an arm.
    """
    d = config.decode
    clin = cohort.clinical.reset_index(drop=True)
    source = config.cohort.clinical.name
    if d.penalty != "l2" and any(k == "categorical" for k, _ in kinds.values()):
        raise ConfigError(
            "key 'decode.penalty': categorical targets are decoded with an L2 penalty only "
            f"(got {d.penalty!r})"
        )
    for t, (kind, _) in kinds.items():
        if kind == "categorical":
            _check_categorical(clin, t, source)
        elif kind == "continuous":
            _check_continuous(clin, t, source)
        else:
            try:
                cohort.label(t)
            except SchemaError as err:
                if not d.target_types and not d.infer_target_types:
                    hint = (
                        "\n(a target that is not binary: declare its kind in "
                        f"decode.target_types, e.g. {{{t}: categorical}} or {{{t}: continuous}}, "
                        "or set decode.infer_target_types: true)"
                    )
                    raise SchemaError(str(err) + hint, violations=err.violations) from None
                raise
    for i, s in enumerate(d.survival_decoders):
        key = "decode.survival" + (f"[{i}]" if isinstance(d.survival, list) else "")
        _check_survival(clin, s.time_column, s.event_column, key, source)
    for i, b in enumerate(d.benefit_decoders):
        key = "decode.benefit" + (f"[{i}]" if isinstance(d.benefit, list) else "")
        if b.arm not in clin.columns:
            raise ConfigError(f"key '{key}.arm': column {b.arm!r} is not in {source}")
        arms = _levels(clin[b.arm])
        if len(arms) != 2:
            raise SchemaError(
                f"{source}: column {b.arm!r} ({key}.arm) holds {len(arms)} arm(s) "
                f"({', '.join(map(repr, arms)) or 'none'}); a treatment-benefit analysis "
                "needs a two-arm trial"
            )
        if b.experimental is not None and str(b.experimental) not in arms:
            raise ConfigError(
                f"key '{key}.experimental': {b.experimental!r} is not an arm of column "
                f"{b.arm!r} in {source} (arms: {', '.join(arms)})"
            )
        for col in b.strata or []:
            if col not in clin.columns:
                raise ConfigError(f"key '{key}.strata': column {col!r} is not in {source}")
        if b.response is not None:
            if b.response not in clin.columns:
                raise ConfigError(f"key '{key}.response': column {b.response!r} is not in {source}")
            cohort.label(b.response)  # raises SchemaError naming rows if not binary
        else:
            _check_survival(clin, str(b.time_column), str(b.event_column), key, source)


# ------------------------------------------------------------------------------ run
def _shared_options(config: StudyConfig, progress: bool) -> dict[str, Any]:
    d = config.decode
    return {
        "n_splits": d.n_splits,
        "n_repeats": d.n_repeats,
        "n_inner_splits": d.n_inner_splits,
        "pca": d.pca,
        "n_jackknife": d.n_jackknife,
        "n_bootstrap": d.n_bootstrap,
        "n_jobs": -1 if d.n_jobs is None else d.n_jobs,
        "progress": None if progress else False,
        "seed": config.seed,
        "ci_method": "oof" if d.ci_method == "delong" else d.ci_method,
    }


def run_endpoints(
    config: StudyConfig,
    cohort: Any,
    adata: Any,
    kinds: Mapping[str, tuple[str, str]],
    *,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the categorical, continuous, survival and benefit decoders of the ``decode:`` block.

    Settings (folds, repeats, inner folds, PCA, interval and test methods, ``n_*``, jobs) and
    the seed come from ``decode`` and the top level; ``delong`` maps to the decoders' ``oof``
    (model-based) intervals and tests; benefit decoders' permutation test re-randomises the arm
    (within the decoder's ``strata``).
    The decoders leave ``cohort`` unchanged; the patients each one left out are recorded here
    in ``cohort.exclusions`` under ``decode:<name>``.

    Returns
    -------
    dict
        ``name -> EndpointResult`` in the order: decode.targets, survival, benefit decoders.
    """
    from ..decode import decode_benefit, decode_categorical, decode_continuous, decode_survival
    from ..progress import stage

    d = config.decode
    shared = _shared_options(config, progress)
    p_method = "oof" if d.p_method == "delong" else d.p_method
    common = dict(shared, p_method=p_method, n_permutations=d.n_permutations)
    common["group_by"] = d.group_by
    out: dict[str, Any] = {}
    categorical = [t for t, (k, _) in kinds.items() if k == "categorical"]
    continuous = [t for t, (k, _) in kinds.items() if k == "continuous"]
    if categorical:
        log.info("decoding categorical targets %s", ", ".join(categorical))
        with stage("categorical decoders", targets=len(categorical)):
            res = decode_categorical(
                adata,
                cohort,
                targets=categorical,
                multi_class=d.multi_class,
                merge_rare=d.merge_rare,
                min_class_size=d.min_class_size,
                n_c=d.n_c,
                class_weight=d.class_weight,
                **common,
            )
        _record(cohort, res.results.values())
        out.update(res.results)
    if continuous:
        log.info("decoding continuous targets %s", ", ".join(continuous))
        with stage("continuous decoders", targets=len(continuous)):
            res = decode_continuous(adata, cohort, targets=continuous, penalty=d.penalty, **common)
        _record(cohort, res.results.values())
        out.update(res.results)
    for s in d.survival_decoders:
        name = s.result_name
        log.info("decoding time to event %s (%s, %s)", name, s.time_column, s.event_column)
        with stage(f"survival decoder {name}"):
            out[name] = decode_survival(
                adata,
                cohort,
                time=s.time_column,
                event=s.event_column,
                target=name,
                penalty=s.penalty,
                l1_ratio=s.l1_ratio,
                horizon=s.horizon,
                times=s.times,
                **common,
            )
        _record(cohort, [out[name]])
    for b in d.benefit_decoders:
        name = b.result_name
        log.info("decoding treatment benefit %s (arm %s)", name, b.arm)
        outcome = (
            {"response": b.response}
            if b.response is not None
            else {"time": b.time_column, "event": b.event_column}
        )
        with stage(f"benefit decoder {name}"):
            out[name] = decode_benefit(
                adata,
                cohort,
                arm=b.arm,
                experimental=b.experimental,
                target=name,
                cutoff=b.cutoff,
                strata=b.strata,
                p_method=p_method,
                n_permutations=d.n_permutations,
                **outcome,
                **dict(shared, ci_method=_benefit_ci(b.ci_method, d)),
            )
        _record(cohort, [out[name]])
    ordered = [t for t in kinds if t in out]
    ordered += [n for n in out if n not in ordered]
    return {n: out[n] for n in ordered}


def _benefit_ci(own: str | None, d: Any) -> str:
    """A benefit decoder's interval method: its own, else an explicitly set study-wide one,
    else the benefit decoder's default (``randomisation``); ``delong`` is the model-based one."""
    ci = own or (d.ci_method if "ci_method" in d.model_fields_set else "randomisation")
    return "oof" if ci == "delong" else ci


def _record(cohort: Any, results: Any) -> None:
    """Record each decoder result's exclusions in the cohort's log, in the order given."""
    for res in results:
        cohort.record_exclusions(res.exclusions)


# ------------------------------------------------------------------------------ results
def endpoints_summary(binary: Any, endpoints: Mapping[str, Any]) -> pd.DataFrame:
    """One tidy table of every decoder (binary rows first), in the columns
    :data:`tario_clinical.decode.endpoint_result.SUMMARY_COLUMNS`."""
    from ..decode import EndpointResults

    return EndpointResults(results=dict(endpoints), binary=binary).summary()


def endpoints_record(
    config: StudyConfig,
    kinds: Mapping[str, tuple[str, str]],
    binary: Any,
    endpoints: Mapping[str, Any],
) -> dict[str, Any]:
    """``results["endpoints"]``: target kinds, the stacked summary and each decoder's tables.

    Holds no patient identifiers (summaries, tables, folds and exclusion counts only).
    """
    from .._json import json_safe

    d = config.decode
    types = [{"target": t, "kind": k, "reason": why} for t, (k, why) in kinds.items()]
    for s in d.survival_decoders:
        types.append(
            {
                "target": s.result_name,
                "kind": "survival",
                "reason": f"decode.survival: time {s.time_column}, event {s.event_column}",
            }
        )
    for b in d.benefit_decoders:
        outcome = b.response or f"{b.time_column}/{b.event_column}"
        types.append(
            {
                "target": b.result_name,
                "kind": "benefit",
                "reason": f"decode.benefit: arm {b.arm}, outcome {outcome}",
            }
        )
    results = []
    for name, res in endpoints.items():
        rec = res.to_dict()
        results.append(
            {
                "target": name,
                "kind": rec["kind"],
                "n": res.n,
                "summary": rec["summary"],
                "tables": rec["tables"],
                "folds": rec["folds"],
                "exclusions": rec["exclusions"],
                "params": rec["params"],
                "notes": rec["notes"],
            }
        )
    summary = endpoints_summary(binary, endpoints)
    return json_safe(
        {
            "target_types": types,
            "columns": list(summary.columns),
            "summary": summary,
            "results": results,
            "notes": [],
        }
    )
