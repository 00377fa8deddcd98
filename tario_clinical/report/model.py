"""The report model: every number of the report as one JSON-safe dictionary, plus figures.

:func:`build_report` turns analysis results into a :class:`Report`. The report's ``results``
dictionary is the single source of what the HTML shows: the template renders tables from it, so
every number on the page is also in ``results.json``. Inputs are duck-typed: each section takes
the object if given and is omitted, with a note, if not.

``results.json`` is deterministic: keys sorted, floats rounded to 12 significant digits,
no wall-clock time (the creation time appears only in the HTML footer).
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import OutputError, SchemaError

__all__ = [
    "Report",
    "build_report",
    "table_one",
    "consort_flow",
    "canonical_json",
    "jsonable",
    "RESULTS_SCHEMA_VERSION",
]

logger = logging.getLogger("tario_clinical.report")

#: version of the results.json layout (``schema_version`` key)
RESULTS_SCHEMA_VERSION = 1

_FLOAT_DIGITS = 12
_ID_KEYS = frozenset({"patient_id", "slide_id", "patient_ids", "slide_ids"})
_REDACTED = "[redacted]"
_RECIST = ("CR", "PR", "SD", "PD", "NE")

SECTIONS: tuple[tuple[str, str], ...] = (
    ("cohort", "Cohort (Table 1)"),
    ("flow", "Patient flow"),
    ("decode", "Decoders"),
    ("embedding", "Representation maps"),
    ("survival", "Survival stratification"),
    ("design", "Trial design"),
    ("expression_qc", "Predicted vs measured expression"),
    ("provenance", "Provenance"),
    ("checklist", "Reporting checklist"),
)


# =============================================================================== JSON
def jsonable(obj: Any) -> Any:
    """JSON-safe copy of ``obj`` with canonical numbers.

    numpy / pandas scalars become Python numbers; NaN, inf and missing values become ``None``;
    floats are rounded to 12 significant digits (so last-bit differences of summation order do
    not change the file); DataFrames become lists of records; paths and other objects strings.
    """
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, pd.DataFrame):
        return [jsonable(r) for r in obj.to_dict(orient="records")]
    if isinstance(obj, pd.Series):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, set | frozenset):
        return [jsonable(v) for v in sorted(obj, key=str)]
    if obj is None or obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        if not math.isfinite(v):
            return None
        r = float(f"{v:.{_FLOAT_DIGITS}g}")
        return 0.0 if r == 0 else r  # no "-0.0"
    if isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, _dt.datetime | _dt.date | pd.Timestamp):
        return obj.isoformat()
    if hasattr(obj, "model_dump"):  # pydantic models (configs)
        return jsonable(obj.model_dump(mode="json"))
    return str(obj)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, UTF-8, trailing newline."""
    return (
        json.dumps(jsonable(obj), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
        + "\n"
    )


def _hide_slide_ids(rep_prov: dict[str, Any]) -> dict[str, Any]:
    """Per-slide provenance keyed by slide id (slide ids often embed patient ids) folded into
    id-free summaries: one combined hash of all slide files, and the distinct tiling settings
    with how many slides used each."""
    out = dict(rep_prov)
    hashes = out.get("input_hashes")
    if isinstance(hashes, dict):
        slide_hashes = sorted(v for k, v in hashes.items() if str(k).startswith("slide:"))
        kept = {k: v for k, v in hashes.items() if not str(k).startswith("slide:")}
        if slide_hashes:
            digest = hashlib.sha256("\n".join(map(str, slide_hashes)).encode()).hexdigest()
            kept["slides"] = {"n_files": len(slide_hashes), "sha256_of_sorted_file_hashes": digest}
        out["input_hashes"] = kept
    tiling = out.get("slide_tiling")
    if isinstance(tiling, str):
        try:
            tiling = json.loads(tiling)
        except ValueError:
            tiling = None
    if isinstance(tiling, dict):
        counts: dict[str, int] = {}
        for params in tiling.values():
            if isinstance(params, dict):
                params = {
                    k: v for k, v in params.items() if k not in ("slide_id", "patient_id", "path")
                }
            key = json.dumps(params, sort_keys=True, default=str)
            counts[key] = counts.get(key, 0) + 1
        out["slide_tiling"] = [
            {"n_slides": n, "settings": json.loads(k)} for k, n in sorted(counts.items())
        ]
    return out


def _redact(obj: Any, ids: frozenset[str]) -> Any:
    """Remove patient/slide ids: id keys dropped, id-valued strings replaced, and lists of
    records that differed only by id collapsed into counts (``n``)."""
    if isinstance(obj, dict):
        return {k: _redact(v, ids) for k, v in obj.items() if k not in _ID_KEYS}
    if isinstance(obj, list):
        had_ids = any(isinstance(v, dict) and _ID_KEYS & set(v) for v in obj)
        out = [_redact(v, ids) for v in obj]
        if had_ids and all(isinstance(v, dict) for v in out):
            counts: dict[str, list[Any]] = {}
            for rec in out:
                key = json.dumps(rec, sort_keys=True, default=str)
                if key in counts:
                    counts[key][1] += 1
                else:
                    counts[key] = [rec, 1]
            return [{**rec, "n": n} if "n" not in rec else rec for rec, n in counts.values()]
        return out
    if isinstance(obj, str) and obj in ids:
        return _REDACTED
    return obj


# =============================================================================== Table 1
def _clinical_table(cohort: Any) -> pd.DataFrame:
    table = cohort.clinical if hasattr(cohort, "clinical") else cohort
    if hasattr(table, "to_pandas") and not isinstance(table, pd.DataFrame):
        table = table.to_pandas()
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"cohort must be a Cohort or a DataFrame; got {type(cohort).__name__}")
    if "patient_id" not in table.columns:
        raise SchemaError(
            f"cohort: clinical table needs a 'patient_id' column; got {list(table.columns)}"
        )
    return table


def _is_missing(s: pd.Series) -> pd.Series:
    return s.isna() | s.astype(object).map(lambda v: isinstance(v, str) and not v.strip())


def _level_order(variable: str, values: pd.Series) -> list[Any]:
    levels = list(pd.unique(values[~_is_missing(values)]))
    if variable == "best_response":
        return [lv for lv in _RECIST if lv in levels] + sorted(
            (lv for lv in levels if lv not in _RECIST), key=str
        )
    if set(map(str, levels)) <= {"mutant", "wild-type"}:
        return [lv for lv in ("mutant", "wild-type") if lv in levels]
    try:
        return sorted(levels)
    except TypeError:
        return sorted(levels, key=str)


def table_one(
    cohort: Any,
    *,
    by: str | None = "arm",
    columns: Sequence[str] | None = None,
    extra_columns: Sequence[str] = (),
    max_levels: int = 20,
) -> pd.DataFrame:
    """Table 1 of a cohort by arm, as a tidy DataFrame.

    Parameters
    ----------
    cohort : Cohort or DataFrame
    by : str or None
        Grouping column (default ``arm``; ignored when absent). An ``All`` group is always added.
    columns : sequence of str, optional
        Variables (default: age, sex, stage, ECOG, smoking, cancer type, histology, the genotype
        columns and best response; those absent are skipped).
    extra_columns : sequence of str
        Further clinical columns to add to the default variables.
    max_levels : int
        Categorical variables with more levels keep the most frequent ``max_levels - 1`` and
        pool the rest as ``other``.

    Returns
    -------
    DataFrame
        ``variable, level, group, n, percent, median, q1, q3``. Continuous variables (numeric
        with more than 12 distinct values) have a ``median [IQR]`` row (``n`` = patients with a
        value); categorical variables one row per level with ``percent`` of the group; every
        variable with a missing value anywhere has a ``missing`` row. The first rows
        (``variable = "patients"``) give the group sizes.

    Raises
    ------
    SchemaError
        A requested column is not in the clinical table.
    """
    table = _clinical_table(cohort)
    genes = [g for g in getattr(cohort, "genotype_columns", []) or [] if g in table.columns]
    if columns is None:
        wanted = [
            c
            for c in ("age", "sex", "stage", "ecog", "smoking", "cancer_type", "histology")
            if c in table.columns
        ]
        wanted += genes + [c for c in ("best_response",) if c in table.columns]
    else:
        wanted = list(columns)
    wanted += [c for c in extra_columns if c not in wanted]
    absent = [c for c in wanted if c not in table.columns]
    if absent:
        raise SchemaError(
            f"Table 1: column(s) {absent} not in the clinical table; available: "
            f"{list(map(str, table.columns))}"
        )
    if by is not None and by in table.columns:
        gcol = table[by].astype(object).where(~_is_missing(table[by]), "missing")
        groups = [(str(g), (gcol == g).to_numpy()) for g in _level_order(by, gcol.map(str))]
        groups = [(g, m) for g, m in groups if m.any()]
    else:
        groups = []
    groups.append(("All", np.ones(len(table), dtype=bool)))
    rows: list[dict[str, Any]] = []

    def add(variable: str, level: str, group: str, **vals: Any) -> None:
        rows.append({"variable": variable, "level": level, "group": group, **vals})

    for g, m in groups:
        add("patients", "n", g, n=int(m.sum()))
    for var in wanted:
        col = table[var]
        miss = _is_missing(col).to_numpy()
        num = pd.to_numeric(col.where(~miss), errors="coerce")
        numeric = bool(num.notna().sum() == (~miss).sum()) and (~miss).any()
        continuous = numeric and num.nunique() > 12
        if continuous:
            for g, m in groups:
                v = num[m & ~miss].to_numpy(dtype=float)
                if len(v):
                    q1, med, q3 = np.percentile(v, [25, 50, 75])
                else:
                    q1 = med = q3 = math.nan
                add(var, "median [IQR]", g, n=int(len(v)), median=med, q1=q1, q3=q3)
        else:
            values = col.astype(object).where(~miss, None)
            if numeric:  # small integer-like codes (ECOG 0/1/2): show as integers
                values = num.map(lambda v: None if pd.isna(v) else (int(v) if v == int(v) else v))
            levels = _level_order(var, values.dropna())
            labels = values.map(lambda v: None if v is None else str(v))
            if len(levels) > max_levels:
                counts = labels.value_counts()
                keep = set(counts.index[: max_levels - 1])
                labels = labels.map(lambda v, keep=keep: v if v is None or v in keep else "other")
                levels = [lv for lv in levels if str(lv) in keep] + ["other"]
            for lv in levels:
                for g, m in groups:
                    k = int(((labels == str(lv)).to_numpy() & m).sum())
                    add(var, str(lv), g, n=k, percent=100.0 * k / max(int(m.sum()), 1))
        if miss.any():
            for g, m in groups:
                k = int((miss & m).sum())
                add(var, "missing", g, n=k, percent=100.0 * k / max(int(m.sum()), 1))
    out = pd.DataFrame(
        rows, columns=["variable", "level", "group", "n", "percent", "median", "q1", "q3"]
    )
    out["n"] = out["n"].astype(int)
    return out


# =============================================================================== flow
def consort_flow(cohort: Any, representations: Any = None) -> dict[str, Any]:
    """CONSORT-style patient flow from the cohort's exclusion log.

    Parameters
    ----------
    cohort : Cohort or DataFrame
        ``cohort.exclusions`` (``patient_id, slide_id, analysis, reason``) is grouped by
        analysis and reason.
    representations : AnnData or DataFrame, optional
        Patients with a representation (matched to the clinical table by id).

    Returns
    -------
    dict
        ``n_clinical``; ``representations`` (``n``, ``matched``, ``clinical_without`` ,
        ``without_clinical``) or None; ``analyses``: one entry per analysis with
        ``n_excluded`` (distinct patients), ``n_analysed`` (clinical patients not excluded)
        and ``reasons`` (``reason, n``); ``excluded_ids``: analysis -> reason -> patient ids.
    """
    table = _clinical_table(cohort)
    ids = set(table["patient_id"].astype(str))
    out: dict[str, Any] = {"n_clinical": len(table), "representations": None, "analyses": []}
    if representations is not None:
        if hasattr(representations, "obs_names"):
            rep_ids = set(map(str, representations.obs_names))
        elif isinstance(representations, pd.DataFrame):
            rep_ids = set(
                map(
                    str,
                    representations["patient_id"]
                    if "patient_id" in representations.columns
                    else representations.index,
                )
            )
        else:
            rep_ids = set()
        out["representations"] = {
            "n": len(rep_ids),
            "matched": len(rep_ids & ids),
            "clinical_without": len(ids - rep_ids),
            "without_clinical": len(rep_ids - ids),
        }
    excl = getattr(cohort, "exclusions", None)
    excluded_ids: dict[str, dict[str, list[str]]] = {}
    if isinstance(excl, pd.DataFrame) and len(excl):
        e = excl.copy()
        e["analysis"] = e["analysis"].astype(str)
        e["reason"] = e["reason"].astype(str)
        e["patient_id"] = (
            e["patient_id"]
            .astype(object)
            .map(
                lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            )
        )
        for analysis, sub in e.groupby("analysis", sort=True):
            pids = set(sub["patient_id"].dropna())
            reasons = []
            excluded_ids[str(analysis)] = {}
            for reason, rs in sub.groupby("reason", sort=True):
                rp = sorted(set(rs["patient_id"].dropna()))
                reasons.append({"reason": str(reason), "n": len(rp) if rp else len(rs)})
                excluded_ids[str(analysis)][str(reason)] = rp
            reasons.sort(key=lambda r: (-r["n"], r["reason"]))
            out["analyses"].append(
                {
                    "analysis": str(analysis),
                    "n_excluded": len(pids),
                    "n_analysed": len(ids - pids),
                    "reasons": reasons,
                }
            )
    out["excluded_ids"] = excluded_ids
    return out


# =============================================================================== figures
def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _figure_of(obj: Any) -> Any:
    """The matplotlib Figure behind a Figure, Axes or display object (``figure_``)."""
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if isinstance(obj, Figure):
        return obj
    if isinstance(obj, Axes):
        return obj.figure
    for name in ("figure_", "figure", "fig"):
        f = getattr(obj, name, None)
        if isinstance(f, Figure):
            return f
    ax = getattr(obj, "ax_", None)
    if isinstance(ax, Axes):
        return ax.figure
    raise TypeError(f"not a matplotlib figure: {type(obj).__name__}")


class _Figures:
    """Collects figures as PNG data URIs, closing each after encoding."""

    def __init__(self) -> None:
        self.uris: dict[str, str] = {}
        self.captions: dict[str, str] = {}

    def add(self, key: str, obj: Any, caption: str) -> None:
        from .render import figure_to_data_uri

        fig = _figure_of(obj)
        self.uris[key] = figure_to_data_uri(fig)
        self.captions[key] = caption

    def attempt(self, key: str, caption: str, draw: Any, notes: list[str]) -> None:
        """Draw with ``draw()`` (returning a figure-like object); a failure becomes a note."""
        try:
            self.add(key, draw(), caption)
        except Exception as err:  # plotting code of other modules: report, do not crash
            logger.warning("report: figure %s failed: %s", key, err)
            notes.append(f"figure '{caption}' could not be drawn: {type(err).__name__}: {err}")


def _call_plot(obj: Any, names: Sequence[str], width: float, height: float) -> Any:
    """Call the first ``obj.<name>(ax=...)`` that exists on a fresh Figure."""
    for name in names:
        fn = getattr(obj, name, None)
        if callable(fn):
            fig = _new_figure(width, height)
            ax = fig.add_subplot(1, 1, 1)
            res = fn(ax=ax)
            try:
                fig2 = _figure_of(res)
            except TypeError:
                fig2 = fig
            if fig2 is not fig:
                return fig2
            fig.tight_layout()
            return fig
    raise AttributeError(f"{type(obj).__name__} has none of {list(names)}")


# =============================================================================== sections
def _records(df: Any) -> list[dict[str, Any]]:
    if df is None:
        return []
    if isinstance(df, pd.DataFrame):
        return jsonable(df.reset_index(drop=True))
    return jsonable(df)


def _decode_section(decode: Any, figs: _Figures) -> tuple[dict[str, Any], pd.DataFrame | None]:
    notes: list[str] = []
    summ = getattr(decode, "summary", None)
    summary = summ() if callable(summ) else summ
    if not isinstance(summary, pd.DataFrame):
        raise TypeError(
            f"decode: expected an object with a summary() DataFrame (DecodeResult); got "
            f"{type(decode).__name__}"
        )
    details: Any = None
    if callable(getattr(decode, "to_dict", None)):
        details = decode.to_dict()
        if isinstance(details, dict):
            details = {k: v for k, v in details.items() if k != "summary"}
    params = getattr(decode, "params", None)
    section = {
        "summary": _records(summary),
        "columns": [str(c) for c in summary.columns],
        "details": jsonable(details),
        "parameters": jsonable(params) if isinstance(params, Mapping) else None,
        "notes": notes,
    }
    figs.attempt(
        "decode_roc",
        "Out-of-fold ROC curves (patient level)",
        lambda: _call_plot(decode, ("plot_roc",), 5.0, 4.6),
        notes,
    )
    figs.attempt(
        "decode_calibration",
        "Calibration of out-of-fold probabilities",
        lambda: _call_plot(decode, ("plot_calibration",), 5.0, 4.6),
        notes,
    )
    oof = getattr(decode, "oof", None)
    if oof is not None and not isinstance(oof, pd.DataFrame):
        oof = pd.DataFrame(oof)
    section["n_oof_rows"] = None if oof is None else len(oof)
    return section, oof


def _embedding_section(
    representations: Any, cohort: Any, seed: int, figs: _Figures
) -> dict[str, Any]:
    from .. import embedding_maps as em

    notes: list[str] = []
    maps = {}
    color_by: list[str] = []
    for method in ("pca", "tsne"):
        coords = em.embedding_map(representations, cohort, method=method, seed=seed)
        meta = coords.attrs["tario_clinical"]
        if not color_by:
            color_by = [
                c
                for c in ("cancer_type", "histology", *getattr(cohort, "genotype_columns", []))
                if c in coords.columns
            ]
        maps[method] = {
            "n_patients": meta["n_patients"],
            "n_features": meta["n_features"],
            "feature_kind": meta["feature_kind"],
            "explained_variance_ratio": meta["explained_variance_ratio"][:2]
            if method == "pca"
            else None,
            "parameters": {k: v for k, v in meta["parameters"].items() if k != "kl_divergence"},
            "n_without_clinical_row": meta["n_without_clinical_row"],
            "exclusions": [
                {"reason": r, "n": n}
                for r, n in sorted(
                    pd.Series([e["reason"] for e in meta["exclusions"]], dtype=object)
                    .value_counts()
                    .items()
                )
            ],
        }

        def draw(
            coords: pd.DataFrame = coords, method: str = method, color_by: list[str] = color_by
        ) -> Any:
            panels: list[str | None] = list(color_by) or [None]
            ncol = min(3, len(panels))
            nrow = math.ceil(len(panels) / ncol)
            fig = _new_figure(5.0 * ncol, 3.6 * nrow)
            for i, c in enumerate(panels):
                ax = fig.add_subplot(nrow, ncol, i + 1)
                em.plot_embedding(coords, c, ax=ax, title=f"{method.upper()} by {c}")
            fig.tight_layout()
            return fig

        figs.attempt(
            f"embedding_{method}",
            f"{method.upper()} map of the representations coloured by "
            + (", ".join(color_by) if color_by else "nothing (no clinical annotations)"),
            draw,
            notes,
        )
    cooc = None
    if getattr(cohort, "genotype_columns", None) and len(cohort.genotype_columns) >= 2:
        table = em.genotype_cooccurrence(cohort)
        cooc = _records(table)
        figs.attempt(
            "genotype_cooccurrence",
            "Genotype co-occurrence: log2 odds ratio (Haldane), patients mutated in both, "
            "Fisher p (* q < 0.05)",
            lambda: em.plot_cooccurrence(table, ax=_new_figure(5.4, 4.4).add_subplot(1, 1, 1)),
            notes,
        )
    else:
        notes.append("genotype co-occurrence needs at least two genotype columns")
    return {"maps": maps, "color_by": color_by, "cooccurrence": cooc, "notes": notes}


def _survival_section(strat: Any, figs: _Figures) -> dict[str, Any]:
    notes: list[str] = []
    details = strat.to_dict() if callable(getattr(strat, "to_dict", None)) else None
    if not isinstance(details, Mapping):
        raise TypeError(
            f"stratification: expected an object with to_dict() (StratificationResult); got "
            f"{type(strat).__name__}"
        )

    def km() -> Any:
        for name in ("km_plot", "plot_km"):
            fn = getattr(strat, name, None)
            if callable(fn):
                return fn()
        raise AttributeError("no km_plot()")

    figs.attempt("survival_km", "Kaplan-Meier curves with numbers at risk", km, notes)
    if details.get("interaction") is not None or hasattr(strat, "plot_forest"):
        figs.attempt(
            "survival_forest",
            "Treatment hazard ratio by subgroup (forest plot)",
            lambda: _forest(strat),
            notes,
        )
    return {"details": jsonable(details), "notes": notes}


def _forest(strat: Any) -> Any:
    forest = getattr(getattr(strat, "interaction", None), "forest", None)
    rows = len(forest) if isinstance(forest, pd.DataFrame) else 6
    fig = _new_figure(7.5, 0.45 * rows + 1.6)
    res = strat.plot_forest(ax=fig.add_subplot(1, 1, 1))
    fig.tight_layout()
    return _figure_of(res)


def _tables_of(obj: Any) -> dict[str, Any]:
    """Design input as ``{"tables": {name: records}, "parameters": {...}}``."""
    if isinstance(obj, pd.DataFrame):
        return {"tables": {"design": _records(obj)}, "parameters": {}}
    if isinstance(obj, Mapping):
        tables, params = {}, {}
        for k, v in obj.items():
            if isinstance(v, pd.DataFrame):
                tables[str(k)] = _records(v)
            elif isinstance(v, list) and all(isinstance(r, Mapping) for r in v):
                tables[str(k)] = jsonable(v)
            else:
                params[str(k)] = jsonable(v)
        return {"tables": tables, "parameters": params}
    if callable(getattr(obj, "to_dict", None)):
        return _tables_of(obj.to_dict())
    for name in ("table", "summary"):
        t = getattr(obj, name, None)
        t = t() if callable(t) else t
        if isinstance(t, pd.DataFrame):
            params = getattr(obj, "parameters", {})
            return {
                "tables": {name: _records(t)},
                "parameters": jsonable(params) if isinstance(params, Mapping) else {},
            }
    raise TypeError(
        "design: expected a DataFrame, a mapping of DataFrames or an object with to_dict() / "
        f"table; got {type(obj).__name__}"
    )


def _design_section(design: Any, figs: _Figures) -> dict[str, Any]:
    notes: list[str] = []
    section = _tables_of(design)
    if callable(getattr(design, "plot_power", None)):
        figs.attempt(
            "design_power",
            "Power of the candidate designs",
            lambda: _call_plot(design, ("plot_power",), 6.0, 4.2),
            notes,
        )
    section["notes"] = notes
    return section


def _split_figures(obj: Any, prefix: str, figs: _Figures, notes: list[str]) -> Any:
    """Copy of a nested dict with matplotlib Figures moved into ``figs``."""
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if isinstance(obj, Figure | Axes):
        key = prefix.replace(".", "_")
        figs.attempt(key, prefix.split(".")[-1].replace("_", " "), lambda: obj, notes)
        return None
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if isinstance(v, Figure | Axes) or (
                isinstance(v, Mapping) and any(isinstance(x, Figure | Axes) for x in v.values())
            ):
                _split_figures(v, f"{prefix}.{k}", figs, notes)
            else:
                out[str(k)] = _split_figures(v, f"{prefix}.{k}", figs, notes)
        return out
    return obj


def _expression_qc_section(qc: Any, figs: _Figures) -> dict[str, Any]:
    notes: list[str] = []
    if isinstance(qc, Mapping):
        content = qc
    else:
        from .. import expression_qc as eq

        content = eq.report_section(qc)
    data = _split_figures(content, "expression_qc", figs, notes)
    tables = {
        str(k): jsonable(v)
        for k, v in (data.get("tables") or {}).items()
        if isinstance(v, list | pd.DataFrame)
    }
    return {
        "title": str(data.get("title", "Predicted vs measured expression")),
        "description": str(data.get("description", "")),
        "parameters": jsonable(data.get("parameters") or {}),
        "tables": tables,
        "notes": notes,
    }


def _representation_provenance(representations: Any) -> dict[str, Any] | None:
    uns = getattr(representations, "uns", None)
    if uns is None:
        return None
    rec = uns.get("tario_clinical")
    return jsonable(dict(rec)) if isinstance(rec, Mapping) else None


def _flatten(obj: Any, prefix: str = "") -> list[dict[str, Any]]:
    """Nested dict -> ``[{"key": "a.b", "value": scalar}]`` for key/value tables."""
    rows: list[dict[str, Any]] = []
    if isinstance(obj, Mapping):
        for k in sorted(obj, key=str):
            rows += _flatten(obj[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list) and any(isinstance(v, Mapping | list) for v in obj):
        for i, v in enumerate(obj):
            rows += _flatten(v, f"{prefix}[{i}]")
    else:
        if isinstance(obj, list):
            obj = ", ".join("" if v is None else str(v) for v in obj)
        rows.append({"key": prefix, "value": obj})
    return rows


# =============================================================================== Report
@dataclass(frozen=True, eq=False)
class Report:
    """A built report: the results dictionary, its figures and the out-of-fold scores.

    Attributes
    ----------
    results : dict
        Every number the report shows (the content of ``results.json``).
    figures : dict
        Figure id -> ``data:image/png;base64,...`` URI.
    captions : dict
        Figure id -> caption.
    oof : DataFrame or None
        Out-of-fold decoder scores (``oof_scores.csv``; holds patient ids).
    created_utc : str
        Creation time, shown in the HTML footer only (never in ``results.json``).
    html_only : dict
        Non-numeric facts shown in the HTML but kept out of ``results.json`` for determinism
        (times recorded by upstream provenance).
    """

    results: dict[str, Any]
    figures: dict[str, str] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    oof: pd.DataFrame | None = None
    created_utc: str = ""
    html_only: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the results (what ``results.json`` holds)."""
        return copy.deepcopy(self.results)

    def to_json(self) -> str:
        """``results.json`` text (deterministic)."""
        return canonical_json(self.results)

    def to_html(self) -> str:
        """The self-contained HTML page."""
        from .render import render_html

        return render_html(self)

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``report.html``, ``results.json`` and (with decoders) ``oof_scores.csv``.

        Files are written atomically into ``out_dir`` (created if needed); ``results.json`` is
        validated against ``data_schemas/results.schema.json`` first.

        Returns
        -------
        dict
            ``{"report": path, "results": path, "oof_scores": path}``.

        Raises
        ------
        OutputError
            The folder is not writable, the disk is full, or the results do not match the schema.
        """
        from ..provenance import atomic_write, atomic_write_text, ensure_output_dir

        validate_results(self.results)
        html_text = self.to_html()
        json_text = self.to_json()
        out = ensure_output_dir(out_dir)
        paths: dict[str, Path] = {}
        if self.oof is not None:
            oof = self.oof
            paths["oof_scores"] = atomic_write(
                out / "oof_scores.csv",
                lambda p: oof.to_csv(p, index=False, float_format="%.10g", lineterminator="\n"),
            )
        paths["results"] = atomic_write_text(out / "results.json", json_text)
        paths["report"] = atomic_write_text(out / "report.html", html_text)
        return paths

    def _repr_html_(self) -> str:
        from .render import render_html

        return render_html(self, fragment=True)

    def __repr__(self) -> str:
        present = [s["id"] for s in self.results.get("sections", []) if s["present"]]
        return f"Report({self.results.get('title', '')!r}, sections={present})"


def validate_results(results: Mapping[str, Any]) -> None:
    """Validate a results dictionary against ``data_schemas/results.schema.json``.

    Raises
    ------
    OutputError
        Naming the JSON path, the value and the rule of the first violations.
    """
    import jsonschema

    from ..schemas import load_schema

    schema = load_schema("results")
    validator = jsonschema.Draft202012Validator(schema)
    from jsonschema.exceptions import best_match

    errors = sorted(validator.iter_errors(jsonable(results)), key=lambda e: list(e.path))
    if errors:
        lines = []
        for err in errors[:10]:
            while err.context:  # oneOf/anyOf: descend to the most relevant inner error
                err = best_match(err.context)
            where = ".".join(map(str, err.absolute_path)) or "(root)"
            lines.append(f"  at $.{where}: {err.message[:200]}")
        raise OutputError(
            f"results do not match data_schemas/results.schema.json ({len(errors)} "
            "problem(s)); this is a tario_clinical bug, please report it:\n" + "\n".join(lines)
        )


def build_report(
    *,
    cohort: Any,
    decode: Any = None,
    stratification: Any = None,
    design: Any = None,
    expression_qc: Any = None,
    representations: Any = None,
    provenance: Mapping[str, Any] | None = None,
    config: Any = None,
    show_patient_ids: bool = False,
    seed: int = 0,
    title: str | None = None,
    table1_columns: Sequence[str] = (),
) -> Report:
    """Build a report from the analysis results that are given.

    Parameters
    ----------
    cohort : Cohort
        The validated cohort (Table 1; its exclusion log gives the patient flow).
    decode : DecodeResult, optional
        Needs ``summary()`` (table of AUROC, CI, q-values), ``oof`` (out-of-fold scores),
        ``plot_roc(ax=)``, ``plot_calibration(ax=)`` and ``to_dict()``.
    stratification : StratificationResult, optional
        Needs ``to_dict()``, ``km_plot()`` and (with an arm) ``plot_forest(ax=)``.
    design : DataFrame, mapping of DataFrames or DesignComparison, optional
        Trial-design tables.
    expression_qc : ExpressionQCResult or dict, optional
        A result of :func:`tario_clinical.expression_qc.evaluate_expression` or the dict of its
        ``report_section``.
    representations : AnnData or DataFrame, optional
        Patient representations: PCA / t-SNE maps and their provenance (``uns``).
    provenance : dict, optional
        Provenance of the run (e.g. :func:`tario_clinical.provenance.provenance_record`). A
        ``created_utc`` in it (or in the representations' ``uns``) is shown in the HTML but
        kept out of ``results.json``, so re-running a pipeline gives the same file.
    config : dict or pydantic model, optional
        The study configuration (shown in the provenance section).
    show_patient_ids : bool
        Show patient ids (excluded patients per reason). Off by default: ids are removed from
        ``results.json`` and the HTML.
    seed : int
        Seed of the stochastic parts of the report (t-SNE), recorded in the provenance.
    title : str, optional
        Report title (default from ``config["report"]["title"]`` or a generic one).
    table1_columns : sequence of str
        Extra clinical columns to summarise in Table 1.

    Returns
    -------
    Report
    """
    from ..provenance import provenance_record
    from .checklist import checklist

    if cohort is None:
        raise TypeError("build_report needs cohort= (a Cohort)")
    figs = _Figures()
    cfg = jsonable(config) if config is not None else None
    if title is None:
        rep_cfg = cfg.get("report") if isinstance(cfg, dict) else None
        title = (
            str(rep_cfg["title"])
            if isinstance(rep_cfg, dict) and rep_cfg.get("title")
            else "tario_clinical report"
        )
    clinical = _clinical_table(cohort)
    ids = frozenset(clinical["patient_id"].astype(str))
    if representations is not None:
        names = getattr(representations, "obs_names", None)
        if names is None and isinstance(representations, pd.DataFrame):
            names = representations.index
        if names is not None:
            ids = ids | frozenset(map(str, names))
    excl = getattr(cohort, "exclusions", None)
    if isinstance(excl, pd.DataFrame) and len(excl):
        for col in ("patient_id", "slide_id"):
            if col in excl:
                ids = ids | frozenset(excl[col].dropna().astype(str))
    slides = getattr(cohort, "slides", None)
    if isinstance(slides, pd.DataFrame) and "slide_id" in slides:
        ids = ids | frozenset(slides["slide_id"].dropna().astype(str))

    sections_present: dict[str, tuple[bool, str]] = {}
    results: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "kind": "tario_clinical.report",
        "title": title,
        "seed": int(seed),
        "show_patient_ids": bool(show_patient_ids),
    }

    # ---- cohort / Table 1
    t1 = table_one(cohort, extra_columns=list(table1_columns))
    results["cohort"] = {
        "n_patients": len(clinical),
        "groups": list(dict.fromkeys(t1["group"])),
        "group_by": "arm" if "arm" in clinical.columns else None,
        "genotype_columns": [str(g) for g in getattr(cohort, "genotype_columns", []) or []],
        "time_unit": str(getattr(cohort, "time_unit", "") or ""),
        "table1": _records(t1),
    }
    sections_present["cohort"] = (True, "")

    # ---- flow
    flow = consort_flow(cohort, representations)
    excluded_ids = flow.pop("excluded_ids")
    if show_patient_ids:
        flow["excluded_ids"] = excluded_ids
    results["flow"] = flow
    sections_present["flow"] = (True, "")

    # ---- decode
    oof = None
    if decode is not None:
        results["decode"], oof = _decode_section(decode, figs)
        sections_present["decode"] = (True, "")
    else:
        results["decode"] = None
        sections_present["decode"] = (False, "no decoder result given (decode=)")

    # ---- embedding maps
    if representations is not None:
        results["embedding"] = _embedding_section(representations, cohort, int(seed), figs)
        sections_present["embedding"] = (True, "")
    else:
        results["embedding"] = None
        sections_present["embedding"] = (False, "no representations given (representations=)")

    # ---- survival
    if stratification is not None:
        results["survival"] = _survival_section(stratification, figs)
        sections_present["survival"] = (True, "")
    else:
        results["survival"] = None
        sections_present["survival"] = (False, "no survival stratification given (stratification=)")

    # ---- design
    if design is not None:
        results["design"] = _design_section(design, figs)
        sections_present["design"] = (True, "")
    else:
        results["design"] = None
        sections_present["design"] = (False, "no trial-design table given (design=)")

    # ---- expression QC
    if expression_qc is not None:
        results["expression_qc"] = _expression_qc_section(expression_qc, figs)
        sections_present["expression_qc"] = (True, "")
    else:
        results["expression_qc"] = None
        sections_present["expression_qc"] = (
            False,
            "no spatial transcriptomics given (expression_qc=)",
        )

    # ---- provenance (no wall-clock time in results.json)
    html_only: dict[str, Any] = {}
    user_prov = jsonable(dict(provenance)) if provenance is not None else None
    if isinstance(user_prov, dict) and "created_utc" in user_prov:
        t = user_prov.pop("created_utc")
        if t not in (None, "not recorded"):
            html_only["run_created_utc"] = t
    rep_prov = _representation_provenance(representations)
    if isinstance(rep_prov, dict) and "created_utc" in rep_prov:
        t = rep_prov.pop("created_utc")
        if t not in (None, "not recorded"):
            html_only["representations_created_utc"] = t
    if not show_patient_ids and isinstance(rep_prov, dict):
        rep_prov = _hide_slide_ids(rep_prov)
    report_prov = provenance_record(
        kind="report", seed=int(seed), include_time=False, parameters={}
    )
    report_prov.pop("created_utc", None)
    report_prov.pop("parameters", None)
    report_prov.pop("input_hashes", None)
    cohort_sources = jsonable(getattr(cohort, "sources", {}) or {})
    results["provenance"] = {
        "report": jsonable(report_prov),
        "run": user_prov,
        "representations": rep_prov,
        "cohort_sources": cohort_sources,
        "config": cfg,
    }
    sections_present["provenance"] = (True, "")
    sections_present["checklist"] = (True, "")

    results["sections"] = [
        {
            "id": sid,
            "title": stitle,
            "present": sections_present[sid][0],
            "note": sections_present[sid][1],
        }
        for sid, stitle in SECTIONS
    ]
    results["checklist"] = checklist({s: p for s, (p, _) in sections_present.items()}, results)
    results["figures"] = [{"id": k, "caption": figs.captions[k]} for k in sorted(figs.uris)]

    results = jsonable(results)
    if not show_patient_ids:
        # other modules' outputs: id keys dropped and id-valued strings replaced; our own
        # sections hold no ids (a cancer type that happens to equal an id stays readable)
        for key in ("decode", "survival", "design", "expression_qc"):
            results[key] = _redact(results[key], ids)
        results = _redact(results, frozenset())
    validate_results(results)
    created = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
    return Report(
        results=results,
        figures=dict(figs.uris),
        captions=dict(figs.captions),
        oof=oof,
        created_utc=created,
        html_only=html_only,
    )
