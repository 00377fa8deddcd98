"""Targets of several kinds in one :func:`tario_clinical.decode` call.

:func:`split_targets` infers (or takes from ``target_types``) the kind of every target and says
whether the binary decoder can read every binary target as it is; :func:`decode_mixed` runs the
binary targets through the binary decoder and the others through
:func:`~tario_clinical.decode.multiclass.decode_categorical` and
:func:`~tario_clinical.decode.regression.decode_continuous`, and returns one
:class:`~tario_clinical.decode.endpoint_result.EndpointResults`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from ..errors import SchemaError
from .endpoint_data import (
    binary_codes,
    clinical_frame,
    infer_target_types,
)
from .endpoint_result import EndpointResults
from .multiclass import decode_categorical
from .regression import decode_continuous

__all__ = ["split_targets", "decode_mixed"]

logger = logging.getLogger(__name__)


def _reads_as_binary(cohort: Any, target: str) -> bool:
    from ..cohort import normalise_binary

    try:
        if hasattr(cohort, "label") and hasattr(cohort, "clinical"):
            cohort.label(target)
        else:
            normalise_binary(cohort[target], column=target)
    except SchemaError:
        return False
    return True


def split_targets(
    cohort: Any, targets: Any, target_types: Mapping[str, str] | None
) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """Kind of every target and the binary targets whose two levels need coding as 0/1.

    Targets that are not clinical columns count as binary here (the binary decoder names them
    in its error).

    Parameters
    ----------
    cohort : Cohort or DataFrame
    targets : str or list of str
    target_types : mapping or None
        Overrides, ``{target: "binary" | "categorical" | "continuous"}``.

    Returns
    -------
    (kinds, to_code)
        ``kinds[target] = (kind, reason)``; ``to_code`` lists binary targets with two levels
        other than the 0/1 and genotype spellings (e.g. ``F``/``M``).
    """
    tl = [targets] if isinstance(targets, str) else list(targets)
    clin = clinical_frame(cohort)
    present = [t for t in dict.fromkeys(tl) if t in clin.columns or t in (target_types or {})]
    kinds = infer_target_types(cohort, present, target_types=target_types)
    for t in tl:
        kinds.setdefault(t, ("binary", "not a clinical column"))
    to_code = [
        t
        for t, (k, _) in kinds.items()
        if k == "binary" and t in clin.columns and not _reads_as_binary(cohort, t)
    ]
    return kinds, to_code


def coded_clinical(cohort: Any, to_code: list[str]) -> pd.DataFrame:
    """The clinical table with the ``to_code`` columns as 0/1 (second level in sorted order = 1)."""
    clin = clinical_frame(cohort).reset_index(drop=True)
    for t in to_code:
        coded, mapping = binary_codes(clin[t], t)
        logger.info("decode: binary target %s coded %s", t, mapping)
        clin[t] = coded.to_numpy()
    return clin


def decode_mixed(
    representations: Any,
    cohort: Any,
    kinds: dict[str, tuple[str, str]],
    to_code: list[str],
    binary_decoder: Callable[..., Any],
    *,
    binary_kwargs: dict[str, Any],
    multi_class: str,
    merge_rare: bool,
    min_class_size: int,
) -> Any:
    """Decode targets of several kinds (see the module docstring).

    Parameters
    ----------
    representations, cohort
        As in :func:`tario_clinical.decode`.
    kinds : dict
        From :func:`split_targets`.
    to_code : list of str
        Binary targets to code as 0/1 first.
    binary_decoder : callable
        The binary decoder (called with ``targets=`` and ``binary_kwargs``).
    binary_kwargs : dict
        The keyword arguments of :func:`tario_clinical.decode` (shared options are passed on).
    multi_class, merge_rare, min_class_size
        Options of the categorical decoder.

    Returns
    -------
    DecodeResult or EndpointResults
        A ``DecodeResult`` when every target is binary; else ``EndpointResults``.
    """
    kw = dict(binary_kwargs)
    binary = [t for t, (k, _) in kinds.items() if k == "binary"]
    categorical = [t for t, (k, _) in kinds.items() if k == "categorical"]
    continuous = [t for t, (k, _) in kinds.items() if k == "continuous"]
    bin_res = None
    if binary:
        data_cohort = coded_clinical(cohort, to_code) if to_code else cohort
        bin_res = binary_decoder(representations, data_cohort, targets=binary, **kw)
        if not categorical and not continuous:
            return bin_res
    if kw.get("alternative", "greater") != "greater":
        logger.info("decode: categorical/continuous targets are tested one-sided (signal > chance)")
    shared = {
        k: kw[k]
        for k in (
            "cv",
            "n_splits",
            "n_repeats",
            "n_inner_splits",
            "pca",
            "group_by",
            "level",
            "n_permutations",
            "n_jackknife",
            "n_bootstrap",
            "n_jobs",
            "progress",
            "seed",
        )
        if k in kw
    }
    shared["ci_method"] = (
        "oof" if kw.get("ci_method") == "delong" else kw.get("ci_method", "jackknife")
    )
    shared["p_method"] = (
        "oof" if kw.get("p_method") == "delong" else kw.get("p_method", "permutation")
    )
    results = {}
    if categorical:
        if kw.get("penalty", "l2") != "l2":
            raise SchemaError(
                f"categorical targets {categorical} are decoded with an L2 penalty only; got "
                f"penalty={kw.get('penalty')!r}."
            )
        res = decode_categorical(
            representations,
            cohort,
            targets=categorical,
            multi_class=multi_class,
            merge_rare=merge_rare,
            min_class_size=min_class_size,
            Cs=kw.get("Cs"),
            n_c=kw.get("n_c", 10),
            class_weight=kw.get("class_weight"),
            **shared,
        )
        results.update(res.results)
    if continuous:
        res = decode_continuous(
            representations,
            cohort,
            targets=continuous,
            penalty=kw.get("penalty", "l2"),
            l1_ratio=kw.get("l1_ratio", 0.5),
            **shared,
        )
        results.update(res.results)
    ordered = {t: results[t] for t in kinds if t in results}
    return EndpointResults(results=ordered, binary=bin_res, target_types=dict(kinds))
