"""The report model: every number of the report as one JSON-safe dictionary, plus figures.

:func:`build_report` turns analysis results into a :class:`Report`. The report's ``results``
dictionary is the single source of what the HTML shows: the template renders tables from it, so
every number on the page is also in ``results.json``. Inputs are duck-typed: each section takes
the object if given and is omitted, with a note, if not.

``results.json`` is deterministic: keys sorted, floats rounded to 12 significant digits,
no wall-clock time (the creation time appears only in the HTML footer).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import OutputError, SchemaError
from ..provenance import (
    atomic_write,
    atomic_write_text,
    ensure_output_dir,
    provenance_record,
    sha256_bytes,
)
from ..schemas import load_schema
from . import sections as _sections
from ._figures import Figures
from ._jsonsafe import canonical_json, jsonable, records
from .checklist import checklist
from .findings import findings_record, summarize
from .render import render_html
from .results_model import RESULTS_SCHEMA_VERSION, SECTIONS, ReportData

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

_ID_KEYS = frozenset({"patient_id", "slide_id", "patient_ids", "slide_ids"})
_REDACTED = "[redacted]"
_RECIST = ("CR", "PR", "SD", "PD", "NE")


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
            digest = sha256_bytes("\n".join(map(str, slide_hashes)).encode())
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


# =============================================================================== Report
class Report(ReportData):
    """A built report (:class:`~.results_model.ReportData`) that renders and writes itself.

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

    def to_json(self) -> str:
        """``results.json`` text (deterministic)."""
        return canonical_json(self.results)

    def to_html(self) -> str:
        """The self-contained HTML page."""
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
        return render_html(self, fragment=True)


def _score_name(cfg: Any, stratification: Any) -> str:
    """Name of the score the patients were stratified by (the decoded target)."""
    surv = cfg.get("survival") if isinstance(cfg, dict) else None
    if isinstance(surv, dict) and surv.get("score_target"):
        return f"{surv['score_target']} score"
    target = (getattr(stratification, "parameters", None) or {}).get("target")
    return f"{target} score" if target else "score"


def validate_results(results: Mapping[str, Any]) -> None:
    """Validate a results dictionary against ``data_schemas/results.schema.json``.

    Raises
    ------
    OutputError
        Naming the JSON path, the value and the rule of the first violations.
    """
    import jsonschema  # third-party and slow to import: only when validating
    from jsonschema.exceptions import best_match

    schema = load_schema("results")
    validator = jsonschema.Draft202012Validator(schema)

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
    analyses: Mapping[str, Any] | None = None,
    stratification: Any = None,
    effect_curve: Any = None,
    design: Any = None,
    expression_qc: Any = None,
    representations: Any = None,
    embedding: Any = None,
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
    analyses : mapping, optional
        Decoder analyses of :mod:`tario_clinical.decode.analyses` by kind
        (``learning_curve``, ``generalist_vs_specialist``, ``leave_one_group_out``,
        ``representation_comparison``), each an ``AnalysisResult`` (tidy ``table`` with a
        ``ci_method`` column, ``params``, ``plot(ax=)``); shown in their own section (listed in
        ``sections`` only when given).
    stratification : StratificationResult, optional
        Needs ``to_dict()``, ``km_plot()`` and (with an arm) ``plot_forest(ax=)``.
    effect_curve : TreatmentEffectCurve, optional
        The treatment HR along the continuous score
        (:func:`tario_clinical.survival.treatment_effect_curve`: ``to_dict()``,
        ``plot(ax=, score_label=)``); shown in the survival section (needs
        ``stratification``).
    design : DesignComparison, DataFrame or mapping, optional
        Trial-design tables. A mapping may hold the comparison (``{"comparison":
        DesignComparison, ...}``, shown as the ``designs`` table), a ``sensitivity`` DataFrame
        (the same designs recomputed at the bounds of an input's confidence interval: one row
        per scenario and design with ``scenario``, the input varied, e.g. ``hr_positive``, and
        the design columns ``design, events, n_patients, n_screened, power``) and further
        DataFrames (shown as tables) or scalars (shown as parameters). The report shows these
        numbers; it computes no design itself.
    expression_qc : ExpressionQCResult or dict, optional
        A result of :func:`tario_clinical.expression_qc.evaluate_expression` or the dict of its
        ``report_section``.
    representations : AnnData or DataFrame, optional
        Patient representations: the patient flow (patients with a representation) and their
        provenance (``uns``).
    embedding : RepresentationMaps, optional
        The maps of the representations and the genotype co-occurrence, computed by
        :func:`tario_clinical.embedding_maps.representation_maps` (the pipeline does this);
        shown in the "Representation maps" section. The report computes no map itself.
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
        Seed of the run (recorded in the results and the provenance).
    title : str, optional
        Report title (default from ``config["report"]["title"]`` or a generic one).
    table1_columns : sequence of str
        Extra clinical columns to summarise in Table 1.

    Returns
    -------
    Report
    """
    if cohort is None:
        raise TypeError("build_report needs cohort= (a Cohort)")
    figs = Figures()
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

    time_unit = str(getattr(cohort, "time_unit", "") or "")

    # ---- cohort / Table 1
    t1 = table_one(cohort, extra_columns=list(table1_columns))
    results["cohort"] = {
        "n_patients": len(clinical),
        "groups": list(dict.fromkeys(t1["group"])),
        "group_by": "arm" if "arm" in clinical.columns else None,
        "genotype_columns": [str(g) for g in getattr(cohort, "genotype_columns", []) or []],
        "time_unit": time_unit,
        "table1": records(t1),
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
        results["decode"], oof = _sections.decode_section(decode, figs)
        sections_present["decode"] = (True, "")
    else:
        results["decode"] = None
        sections_present["decode"] = (False, "no decoder result given (decode=)")

    # ---- decoder analyses (a section only when given)
    if analyses:
        results["analyses"] = _sections.analyses_section(analyses, figs)
        sections_present["analyses"] = (True, "")

    # ---- embedding maps (computed by embedding_maps.representation_maps)
    if embedding is not None:
        results["embedding"] = _sections.embedding_section(embedding, figs)
        sections_present["embedding"] = (True, "")
    else:
        results["embedding"] = None
        sections_present["embedding"] = (
            False,
            "no representation maps given (embedding=, from "
            "tario_clinical.embedding_maps.representation_maps)",
        )

    # ---- survival
    if stratification is not None:
        score_name = _score_name(cfg, stratification)
        results["survival"] = _sections.survival_section(
            stratification, figs, score_name=score_name, time_unit=time_unit
        )
        if effect_curve is not None:
            results["survival"]["effect_curve"] = _sections.effect_curve_section(
                effect_curve, figs, score_name=score_name, notes=results["survival"]["notes"]
            )
        sections_present["survival"] = (True, "")
    else:
        if effect_curve is not None:
            raise ValueError("effect_curve= is shown in the survival section: give stratification=")
        results["survival"] = None
        sections_present["survival"] = (False, "no survival stratification given (stratification=)")

    # ---- design
    if design is not None:
        results["design"] = _sections.design_section(design, figs, time_unit=time_unit)
        sections_present["design"] = (True, "")
    else:
        results["design"] = None
        sections_present["design"] = (False, "no trial-design table given (design=)")

    # ---- expression QC
    if expression_qc is not None:
        results["expression_qc"] = _sections.expression_qc_section(expression_qc, figs)
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
    rep_prov = _sections.representation_provenance(representations)
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
        if sid in sections_present
    ]
    results["checklist"] = checklist({s: p for s, (p, _) in sections_present.items()}, results)
    results["figures"] = [{"id": k, "caption": figs.captions[k]} for k in sorted(figs.uris)]

    results = jsonable(results)
    if not show_patient_ids:
        # other modules' outputs: id keys dropped and id-valued strings replaced; our own
        # sections hold no ids (a cancer type that happens to equal an id stays readable)
        for key in ("decode", "analyses", "survival", "design", "expression_qc"):
            if key in results:
                results[key] = _redact(results[key], ids)
        results = _redact(results, frozenset())
    # the summary sentences, read off the numbers above (render shows the same ones)
    results["findings"] = jsonable(findings_record(summarize(results)))
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
