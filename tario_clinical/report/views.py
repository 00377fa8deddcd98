"""Tables for a person: what the HTML shows of each section, read off the results dictionary.

Every function here takes the report's results (``results.json``) and returns display tables
(:mod:`._tables`) with cell text already rounded for reading (:mod:`._format`), human column
names and units. Nothing is estimated: a cell is a value of the results, rounded, or two of
them side by side (an estimate and its interval).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from . import _format as fmt
from ._tables import Table, cell, flatten, humanize, kv_table, records_table, table
from .findings import CHANCE, Summary, endpoint_name

__all__ = [
    "table1_view",
    "flow_view",
    "decode_view",
    "embedding_view",
    "survival_view",
    "design_view",
    "expression_qc_view",
    "checklist_view",
    "plan_view",
    "alt_texts",
]


# =============================================================================== cohort, flow
_VARIABLES = {
    "patients": "Patients",
    "age": "Age",
    "sex": "Sex",
    "stage": "Stage",
    "ecog": "ECOG performance status",
    "smoking": "Smoking",
    "cancer_type": "Cancer type",
    "histology": "Histology",
    "best_response": "Best response (RECIST)",
}


def table1_view(results: Mapping[str, Any]) -> dict[str, Any]:
    """Table 1 records pivoted to rows (variable, level) x groups with display text."""
    cohort = results["cohort"]
    groups = cohort["groups"]
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for r in cohort["table1"]:
        key = (r["variable"], r["level"])
        if r["level"] == "median [IQR]":
            text = (
                fmt.DASH
                if r["median"] is None
                else f"{cell(r['median'])} [{cell(r['q1'])}–{cell(r['q3'])}]"
            )
        elif r["variable"] == "patients":
            text = str(r["n"])
        else:
            pct = r.get("percent")
            text = f"{r['n']} ({pct:.0f} %)" if fmt.is_number(pct) else str(r["n"])
        rows.setdefault(key, {})[r["group"]] = text
    out = []
    last = None
    for (var, level), cells in rows.items():
        out.append(
            {
                "variable": _VARIABLES.get(var, var) if var != last else "",
                "level": "" if var == "patients" else level,
                "cells": [cells.get(g, "") for g in groups],
                "first": var != last,
            }
        )
        last = var
    return {"groups": groups, "rows": out}


def _analysis_name(name: str) -> str:
    """``decode:EGFR`` -> ``Decoder EGFR``; ``survival.stratify(os_time)`` -> ``Survival (OS)``."""
    n = str(name)
    if n.startswith("decode:"):
        return f"Decoder {n.split(':', 1)[1]}"
    m = re.fullmatch(r"survival\.stratify\(([^)]*)\)(?::(.*))?", n)
    if m:
        rest = m.group(2) or ""
        rest = {"cox_adjusted": "adjusted Cox model"}.get(rest, rest.replace("_", " "))
        return f"Survival ({endpoint_name(m.group(1))[1]})" + (f", {rest}" if rest else "")
    return humanize(n)


def flow_view(results: Mapping[str, Any]) -> Table | None:
    """Patients analysed and excluded per analysis, with the reasons."""
    analyses = results["flow"].get("analyses") or []
    if not analyses:
        return None
    rows = []
    for a in analyses:
        reasons = "; ".join(f"{r['reason']} ({r['n']})" for r in a.get("reasons") or [])
        rows.append(
            [_analysis_name(a["analysis"]), str(a["n_analysed"]), str(a["n_excluded"]), reasons]
        )
    return table(
        "Patients analysed and excluded in each analysis (reasons with the number of patients)",
        ["Analysis", "Analysed", "Excluded", "Reasons"],
        rows,
        num=(1, 2),
    )


# =============================================================================== decoders
_DECODE_MAIN = ("target", "n", "n_positive", "auroc", "low", "high", "p_value", "q_value", "note")


def decode_view(results: Mapping[str, Any], summary: Summary) -> dict[str, Any]:
    """The decoders' main table (one short row per target), further metrics and CV details."""
    dec = results["decode"]
    rows = dec.get("summary") or []
    verdicts = {f.subject: f.label for f in summary.decode}
    main = []
    for r in rows:
        t = str(r.get("target", ""))
        main.append(
            [
                t,
                cell(r.get("n"), "n"),
                cell(r.get("n_positive"), "n_positive"),
                fmt.est_ci(
                    r.get("auroc"),
                    r.get("low"),
                    r.get("high"),
                    ref=CHANCE,
                    excludes_ref=fmt.is_true(r.get("excludes_chance")),
                ),
                fmt.pval(r.get("p_value")),
                fmt.pval(r.get("q_value")),
                verdicts.get(t, ""),
                str(r.get("note") or ""),
            ]
        )
    level = (dec.get("parameters") or {}).get("level")
    lv = fmt.pct(level) if fmt.is_number(level) else "95 %"
    main_table = table(
        f"Out-of-fold discrimination of each target: AUROC with {lv} CI, p-value of AUROC = 0.5 "
        "and Benjamini–Hochberg q-value across targets",
        ["Target", "Patients", "Positives", f"AUROC ({lv} CI)", "p", "q", "Reading", "Note"],
        main,
        num=(1, 2, 3, 4, 5),
    )
    shown = set(_DECODE_MAIN)
    same = {}
    for k in ("ci_method", "p_method"):
        vals = {str(r.get(k)) for r in rows if r.get(k)}
        if len(vals) == 1:
            same[k] = vals.pop()
            shown.add(k)
    extra = records_table(
        [{k: v for k, v in r.items() if k not in shown or k == "target"} for r in rows],
        "Further out-of-fold metrics per target (AUPRC and Brier score of the mean predicted "
        "probability; calibration intercept 0 and slope 1 are perfect)",
    )
    details = dec.get("details") or {}
    folds = records_table(
        details.get("folds") or [],
        "Regularisation C chosen in each outer training fold (inner cross-validation)",
    )
    excl = records_table(details.get("exclusions") or [], "Patients left out per target")
    return {
        "table": main_table,
        "methods": same,
        "extra": extra,
        "folds": folds,
        "exclusions": excl,
    }


# =============================================================================== embedding
def embedding_view(results: Mapping[str, Any]) -> dict[str, Any]:
    emb = results["embedding"]
    lines = {}
    for method, m in (emb.get("maps") or {}).items():
        name = "PCA" if method == "pca" else "t-SNE" if method == "tsne" else method.upper()
        text = (
            f"{name}: {m['n_patients']} patients × {m['n_features']} {m['feature_kind']} features"
        )
        evr = m.get("explained_variance_ratio")
        if evr and len(evr) >= 2:
            text += f"; PC1 and PC2 explain {fmt.pct(evr[0])} and {fmt.pct(evr[1])} of the variance"
        params = m.get("parameters") or {}
        if params:
            text += "; " + ", ".join(
                f"{k.replace('_', ' ')} {cell(v, k)}" for k, v in sorted(params.items())
            )
        if m.get("exclusions"):
            text += "; left out: " + ", ".join(f"{e['reason']} ({e['n']})" for e in m["exclusions"])
        lines[method] = text + "."
    rows = []
    for r in emb.get("cooccurrence") or []:
        rows.append(
            [
                f"{r.get('gene_a')} – {r.get('gene_b')}",
                cell(r.get("n_tested"), "n"),
                cell(r.get("both"), "n"),
                cell(r.get("a_only"), "n"),
                cell(r.get("b_only"), "n"),
                cell(r.get("neither"), "n"),
                fmt.est(r.get("odds_ratio_corrected")),
                fmt.pval(r.get("p_value")),
                fmt.pval(r.get("q_value")),
                str(r.get("relation") or ""),
            ]
        )
    cooc = (
        table(
            "Genotype co-occurrence of each gene pair A – B: patients tested for both, mutated "
            "in both / A only / B only / neither, odds ratio (Haldane corrected), Fisher exact p "
            "and Benjamini–Hochberg q across pairs",
            ["Genes", "Tested", "Both", "A only", "B only", "Neither", "OR", "p", "q", "Relation"],
            rows,
            num=range(1, 9),
        )
        if rows
        else None
    )
    return {"lines": lines, "cooccurrence": cooc}


# =============================================================================== survival
def _term(term: str, score: str, inter: Mapping[str, Any] | None, groups: Sequence[str]) -> str:
    """``risk_group[high]`` -> ``high vs low responder score group``."""
    t = str(term)
    bottom = groups[0] if groups else "lowest"
    arm = inter.get("arm") if inter else None
    ctl = inter.get("control") if inter else None

    def one(x: str) -> str:
        if x.startswith("risk_group[") and x.endswith("]"):
            return f"{x[11:-1]} vs {bottom} {score} group"
        if arm and x.startswith(f"{arm}[") and x.endswith("]"):
            return f"{x[len(arm) + 1 : -1]} vs {ctl} arm"
        if x == "risk_group":
            return f"{score} group"
        if arm and x == arm:
            return "arm"
        return humanize(x)

    if ":" in t:
        return "interaction: " + " × ".join(one(x) for x in t.split(":"))
    return one(t)


def survival_view(results: Mapping[str, Any], score: str) -> dict[str, Any]:
    """KM table, prognostic associations, treatment effect by subgroup, PH check, details."""
    d = results["survival"]["details"]
    unit = str(results["cohort"].get("time_unit") or "")
    u = f", {unit}" if unit else ""
    name, abbr, _ = endpoint_name(str(d.get("time", "")))
    groups = [str(g) for g in d.get("groups") or []]
    inter = d.get("interaction") if isinstance(d.get("interaction"), Mapping) else None
    rmst = {str(r.get("term")): r for r in d.get("rmst") or []}
    tau = next((r.get("tau") for r in rmst.values() if fmt.is_number(r.get("tau"))), None)
    km_rows = []
    for r in d.get("km") or []:
        g = str(r.get("group"))
        rm = rmst.get(f"rmst[{g}]")
        km_rows.append(
            [
                f"{g} {score}",
                cell(r.get("n"), "n"),
                cell(r.get("events"), "events"),
                fmt.est_ci(r.get("median"), r.get("median_low"), r.get("median_high"), 1),
            ]
            + (
                [fmt.est_ci(rm.get("estimate"), rm.get("low"), rm.get("high"), 1)]
                if rm
                else ([fmt.DASH] if rmst else [])
            )
        )
    cols = ["Score group", "Patients", "Events", f"Median {abbr}{u} (95 % CI)"]
    if rmst:
        cols.append(f"Mean {abbr} to {fmt.time(tau)}{u} (RMST, 95 % CI)")
    cut = str(d.get("cutoff_method", ""))
    how = (
        "EXPLORATORY optimal cut-point"
        if d.get("exploratory")
        else f"{cut} cut-off, cross-fitted"
        if cut in ("median", "tertiles", "quantile", "prevalence")
        else f"{cut} cut-off"
    )
    km = table(
        f"{name[:1].upper()}{name[1:]} ({abbr}) by {score} group ({how}; {d.get('n')} patients, {d.get('events')} events)",
        cols,
        km_rows,
        num=range(1, len(cols)),
    )
    # ---- prognostic associations
    assoc = []
    for r in d.get("logrank") or []:
        assoc.append(
            [
                f"Log-rank test ({cell(r.get('df'), 'df')} df)",
                f"χ² {fmt.est(r.get('statistic'))}",
                fmt.pval(r.get("p_value")),
            ]
        )
    for key, what in (("cox_unadjusted", "unadjusted"), ("cox_adjusted", "adjusted")):
        for r in d.get(key) or []:
            term = str(r.get("term", ""))
            if not term.startswith("risk_group["):
                continue
            covs = (d.get("parameters") or {}).get("covariates") or []
            label = f"Cox HR, {_term(term, score, inter, groups)}"
            label += (
                f", adjusted for {', '.join(map(str, covs))}"
                if what == "adjusted"
                else ", unadjusted"
            )
            assoc.append(
                [
                    label,
                    fmt.est_ci(r.get("hr"), r.get("hr_low"), r.get("hr_high"), ref=1.0),
                    fmt.pval(r.get("p_value")),
                ]
            )
    for t, r in rmst.items():
        if t.startswith("difference["):
            diff = t[len("difference[") : -1].replace(" - ", " − ")
            assoc.append(
                [
                    f"Difference in mean {abbr} to {fmt.time(r.get('tau'))}{u} (RMST, {diff})",
                    fmt.est_ci(r.get("estimate"), r.get("low"), r.get("high"), 1, ref=0.0),
                    fmt.pval(r.get("p_value")),
                ]
            )
    oc = d.get("concordance_oriented") or {}
    for r in oc.get("rows") or []:
        m = {"harrell": "Harrell's C", "uno": "Uno's C"}.get(
            str(r.get("method")), str(r.get("method"))
        )
        assoc.append(
            [
                f"{m} of the continuous score ({oc.get('direction')})",
                fmt.est_ci(r.get("estimate"), r.get("low"), r.get("high"), ref=CHANCE),
                fmt.DASH,
            ]
        )
    prognostic = table(
        f"Is the {score} prognostic? Association with {abbr}",
        ["Analysis", "Estimate (95 % CI)", "p"],
        assoc,
        num=(1, 2),
        note=(
            "C is given in the direction in which the score orders risk (higher score = lower "
            "risk here: 1 − C as computed with higher score = higher risk, interval reflected; "
            "the value as computed is in results.json)."
            if oc.get("reflected")
            else ""
        ),
    )
    # ---- predictive: treatment effect by subgroup
    treatment = interaction_line = None
    if inter:
        exp, ctl = inter.get("experimental"), inter.get("control")
        rows = []
        last = None
        for r in inter.get("forest") or []:
            var = str(r.get("variable"))
            label = (
                f"{score} group"
                if var == inter.get("biomarker")
                else _VARIABLES.get(var, humanize(var))
            )
            rows.append(
                [
                    label if var != last else "",
                    "" if str(r.get("level")) == "all" else str(r.get("level")),
                    cell(r.get("n"), "n"),
                    cell(r.get("events"), "events"),
                    fmt.est_ci(r.get("hr"), r.get("hr_low"), r.get("hr_high"), ref=1.0),
                    fmt.pval(r.get("p_value")),
                    str(r.get("note") or ""),
                ]
            )
            last = var
        treatment = table(
            f"Treatment effect on {abbr} ({exp} vs {ctl}) by subgroup: HR from separate Cox fits "
            "(HR < 1 favours " + str(exp) + ")",
            ["Subgroup", "Level", "Patients", "Events", "HR (95 % CI)", "p", "Note"],
            rows,
            num=(2, 3, 4, 5),
        )
        tests = {str(r.get("test")): r for r in inter.get("interaction_test") or []}
        parts = [
            f"{humanize(t)} {fmt.p_text(r.get('p_value'))} ({cell(r.get('df'), 'df')} df)"
            for t, r in tests.items()
        ]
        interaction_line = (
            f"Treatment × {score} group interaction (is the score predictive?): "
            + "; ".join(parts)
            + f"; {inter.get('n')} patients, {inter.get('events')} events."
        )
    # ---- proportional hazards
    ph = [r for r in d.get("ph_test") or [] if r.get("term") == "GLOBAL"]
    ph_line = ""
    if ph:
        rejected = [r for r in ph if fmt.is_number(r.get("p_value")) and r["p_value"] < 0.05]
        ph_line = (
            "Proportional hazards (cox.zph global test): "
            + "; ".join(f"{r.get('model')} model {fmt.p_text(r.get('p_value'))}" for r in ph)
            + (
                " — rejected for " + ", ".join(str(r.get("model")) for r in rejected)
                if rejected
                else " — not rejected at 0.05"
            )
            + "."
        )
    # ---- details (collapsed)
    details = [
        records_table(
            [
                {**r, "term": _term(str(r.get("term")), score, inter, groups)}
                for r in d.get("cox_adjusted") or []
            ],
            "Adjusted Cox model, every term",
            drop=("coef", "z"),
        ),
        records_table(
            [
                {**r, "term": _term(str(r.get("term")), score, inter, groups)}
                for r in (inter or {}).get("table") or []
            ],
            "Interaction Cox model, every term",
            drop=("coef", "z"),
        ),
        records_table(
            (inter or {}).get("subgroups") or [],
            "Treatment HR within each score group from the interaction model",
        ),
        records_table(
            d.get("ph_test") or [], "Proportional-hazards test (cox.zph, transform km), every term"
        ),
        records_table(
            d.get("cutoffs") or [],
            "Cut-off applied to each cross-fitting fold (computed from the other folds' scores)",
        ),
        records_table(d.get("optimal") or [], "Optimal cut-point search (EXPLORATORY)"),
        records_table(d.get("exclusions") or [], "Patients left out of the survival analysis"),
    ]
    return {
        "km": km,
        "prognostic": prognostic,
        "treatment": treatment,
        "interaction_line": interaction_line,
        "ph_line": ph_line,
        "details": [t for t in details if t],
    }


# =============================================================================== design
_DESIGNS = {
    "enriched": "Enriched: biomarker-positive patients only",
    "all-comers": "All-comers, tested overall",
    "all-comers (biomarker-positive test)": "All-comers, powered for the biomarker-positive subgroup",
}


def _design_rows(
    rows: Sequence[Mapping[str, Any]], unit: str, scenario: bool = False
) -> Table | None:
    if not rows:
        return None
    u = f" ({unit})" if unit else ""
    cols = (["Scenario"] if scenario else []) + [
        "Design",
        "HR assumed",
        "Events",
        "Patients",
        "Screened",
        "Power",
        f"Duration{u}",
    ]
    out = []
    for r in rows:
        hr = r.get("hr") if fmt.is_number(r.get("hr")) else r.get("hr_positive")
        line = [
            _DESIGNS.get(str(r.get("design")), str(r.get("design", ""))),
            fmt.est(hr),
            cell(r.get("events"), "events"),
            cell(r.get("n_patients"), "n_patients"),
            cell(r.get("n_screened"), "n_screened"),
            fmt.pct(r.get("power")),
            fmt.time(r.get("duration")),
        ]
        if scenario:  # the note in its own column: a number column does not wrap
            line = [str(r.get("scenario", ""))] + line + [str(r.get("note") or "")]
        out.append(line)
    first = 1 if scenario else 0
    num = range(first + 1, len(cols))
    return table("", cols + (["Note"] if scenario else []), out, num=num)


def design_view(results: Mapping[str, Any]) -> dict[str, Any]:
    des = results["design"]
    unit = str(results["cohort"].get("time_unit") or "")
    tables = dict(des.get("tables") or {})
    designs = tables.pop("designs", None) or tables.pop("design", None) or []
    main = _design_rows(designs, unit)
    if main:
        main["caption"] = (
            "Events, patients randomised and patients screened for each design (events, patients "
            "and screened rounded up; power achieved at the rounded events)"
        )
    sens = _design_rows(tables.pop("sensitivity", None) or [], unit, scenario=True)
    if sens:
        sens["caption"] = (
            "Sensitivity: the designs recomputed at the bounds of the interval of the assumed "
            "hazard ratio"
        )
    params = des.get("parameters") or {}
    inner = params.get("parameters") if isinstance(params.get("parameters"), Mapping) else params
    scen = []
    words = {
        "prevalence": "biomarker-positive fraction",
        "hr_positive": "HR in biomarker-positive",
        "hr_negative": "HR in biomarker-negative",
        "median_control": "control median",
        "median_control_negative": "control median in biomarker-negative",
        "accrual": "accrual",
        "follow_up": "further follow-up",
        "allocation": "randomised to experimental",
        "alpha": "two-sided α",
        "power": "power",
        "assay_success": "assay success",
    }
    for k, v in (inner or {}).items():
        if v is None:
            continue
        w = words.get(k, humanize(k))
        if k in ("accrual", "follow_up", "median_control", "median_control_negative"):
            scen.append(f"{w} {fmt.time(v)}{' ' + unit if unit else ''}")
        elif k in ("prevalence", "power", "allocation", "assay_success"):
            scen.append(f"{w} {fmt.pct(v)}")
        elif fmt.is_number(v):
            scen.append(f"{w} {fmt.est(v, 3)}")
        else:
            scen.append(f"{w} {cell(v, k)}")
    others = [records_table(v, humanize(k)) for k, v in sorted(tables.items())]
    return {
        "table": main,
        "sensitivity": sens,
        "scenario": "Scenario: " + "; ".join(scen) + "." if scen else "",
        "others": [t for t in others if t],
    }


# =============================================================================== expression QC
_CURVES = ("spatial_curve", "bulk_curve")


def expression_qc_view(results: Mapping[str, Any]) -> dict[str, Any]:
    qc = results["expression_qc"]
    shown, hidden = [], []
    for name, rows in sorted((qc.get("tables") or {}).items()):
        t = records_table(rows, humanize(name))
        if t:
            (hidden if name in _CURVES else shown).append(t)
    params = kv_table("Parameters", flatten(qc.get("parameters") or {}))
    return {"tables": shown, "curves": hidden, "parameters": params}


# =============================================================================== checklist
def checklist_view(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, items in sorted((results.get("checklist") or {}).items()):
        counts: dict[str, int] = {}
        for it in items:
            counts[it["status"]] = counts.get(it["status"], 0) + 1
        out.append(
            {
                "key": key,
                "name": items[0]["guideline"] if items else key,
                "counts": ", ".join(f"{n} {s}" for s, n in counts.items()),
                "items": items,
            }
        )
    return out


# =============================================================================== analysis plan
def plan_view(results: Mapping[str, Any], score: str) -> list[dict[str, Any]]:
    """The pre-specified parameters of each analysis, once, as short ``(item, value)`` lists."""
    blocks = []
    dec = results.get("decode")
    if isinstance(dec, Mapping):
        p = dec.get("parameters") or {}
        targets = [str(r.get("target")) for r in dec.get("summary") or []]
        items = [("Targets", ", ".join(targets))]
        if p.get("cv"):
            items.append(("Cross-validation", str(p["cv"])))
        if p.get("estimand"):
            items.append(("Estimand", str(p["estimand"])))
        if p.get("n_inner_splits"):
            cs = p.get("Cs") or []
            grid = f"{len(cs)} values {cell(min(cs))}–{cell(max(cs))}" if cs else "default"
            items.append(
                (
                    "Tuning",
                    f"C by {p['n_inner_splits']}-fold inner CV ({p.get('inner_scoring', '')}); grid {grid}",
                )
            )
        model = ", ".join(
            f"{k.replace('_', ' ')} {'none' if p.get(k) is None else cell(p.get(k))}"
            for k in ("penalty", "pca", "class_weight", "group_by")
            if k in p
        )
        if model:
            items.append(("Model", f"logistic regression; {model}"))
        inf = []
        if fmt.is_number(p.get("level")):
            inf.append(f"{fmt.pct(p['level'])} intervals")
        if p.get("n_permutations"):
            inf.append(f"{p['n_permutations']} label permutations")
        if "seed" in p:
            inf.append(f"seed {p['seed']}")
        if inf:
            items.append(("Inference", "; ".join(inf)))
        blocks.append({"title": "Decoders", "items": items})
    surv = results.get("survival")
    if isinstance(surv, Mapping):
        d = surv.get("details") or {}
        p = d.get("parameters") or {}
        name, abbr, _ = endpoint_name(str(d.get("time", "")))
        items = [
            ("Endpoint", f"{name} ({abbr}): {d.get('time')}, {d.get('event')}"),
            ("Score", f"out-of-fold {score}"),
        ]
        cut = str(d.get("cutoff_method", ""))
        if d.get("exploratory"):
            items.append(("Cut-off", "EXPLORATORY optimal cut-point (chosen on these patients)"))
        elif cut in ("median", "tertiles", "quantile", "prevalence"):
            items.append(
                (
                    "Cut-off",
                    f"{cut}, cross-fitted in {p.get('n_folds')} folds (each patient's cut-off "
                    "from the other folds' scores)",
                )
            )
        else:
            items.append(("Cut-off", cut))
        if p.get("arm"):
            inter = d.get("interaction") or {}
            items.append(
                (
                    "Treatment",
                    f"{p['arm']}: {inter.get('experimental', '?')} vs {inter.get('control', '?')}",
                )
            )
        if p.get("covariates"):
            items.append(("Adjusted for", ", ".join(map(str, p["covariates"]))))
        tau = p.get("tau")
        items.append(
            (
                "RMST horizon",
                fmt.time(tau) if fmt.is_number(tau) else "largest time all groups reach",
            )
        )
        level = p.get("level", p.get("conf_level"))  # "conf_level": results of earlier releases
        if fmt.is_number(level):
            items.append(("Inference", f"{fmt.pct(level)} intervals; seed {p.get('seed')}"))
        blocks.append({"title": "Survival", "items": items})
    des = results.get("design")
    if isinstance(des, Mapping):
        params = des.get("parameters") or {}
        inner = (
            params.get("parameters") if isinstance(params.get("parameters"), Mapping) else params
        )
        cfg = (results.get("provenance") or {}).get("config") or {}
        dcfg = cfg.get("design") if isinstance(cfg, Mapping) else None
        unit = str(results["cohort"].get("time_unit") or "")
        items = []
        if fmt.is_number(inner.get("alpha")) and fmt.is_number(inner.get("power")):
            items.append(
                ("Test", f"two-sided α {fmt.est(inner['alpha'])}, power {fmt.pct(inner['power'])}")
            )
        if fmt.is_number(inner.get("accrual")):
            items.append(
                (
                    "Timeline",
                    f"accrual {fmt.time(inner['accrual'])} {unit}, further follow-up "
                    f"{fmt.time(inner.get('follow_up'))} {unit}",
                )
            )
        if fmt.is_number(inner.get("allocation")):
            items.append(("Allocation", f"{fmt.pct(inner['allocation'])} to experimental"))
        if isinstance(dcfg, Mapping):
            keys = {
                "prevalence": "biomarker-positive fraction",
                "hr_positive": "HR in biomarker-positive",
                "hr_negative": "HR in biomarker-negative",
                "control_median_months": "control median",
            }
            est = [v for k, v in keys.items() if k in dcfg and dcfg[k] is None]
            given = [v for k, v in keys.items() if dcfg.get(k) is not None]
            if est:
                items.append(("Estimated from this cohort", ", ".join(est)))
            if given:
                items.append(("Set in the configuration", ", ".join(given)))
        blocks.append({"title": "Trial design", "items": items})
    return blocks


# =============================================================================== figures
def alt_texts(
    results: Mapping[str, Any], captions: Mapping[str, str], score: str
) -> dict[str, str]:
    """A text alternative for each figure, with the numbers the figure shows."""
    out = {k: str(v) for k, v in captions.items()}
    dec = results.get("decode")
    if isinstance(dec, Mapping):
        rows = dec.get("summary") or []
        out["decode_roc"] = (
            "ROC curves of the out-of-fold scores: "
            + "; ".join(f"{r.get('target')} AUROC {fmt.est(r.get('auroc'))}" for r in rows)
            + "."
        )
        out["decode_calibration"] = (
            "Calibration curves: "
            + "; ".join(
                f"{r.get('target')} slope {fmt.est(r.get('calibration_slope'))}"
                for r in rows
                if "calibration_slope" in r
            )
            + "."
        )
    emb = results.get("embedding")
    if isinstance(emb, Mapping):
        by = ", ".join(emb.get("color_by") or []) or "nothing"
        for method, m in (emb.get("maps") or {}).items():
            name = "PCA" if method == "pca" else "t-SNE"
            text = f"{name} scatter plots of {m.get('n_patients')} patients coloured by {by}"
            evr = m.get("explained_variance_ratio")
            if evr and len(evr) >= 2:
                text += f"; PC1 explains {fmt.pct(evr[0])}, PC2 {fmt.pct(evr[1])} of the variance"
            out[f"embedding_{method}"] = text + "."
        pairs = [
            f"{r.get('gene_a')}–{r.get('gene_b')} {r.get('relation')} ({fmt.p_text(r.get('q_value'), 'q')})"
            for r in emb.get("cooccurrence") or []
            if r.get("relation") and r.get("relation") != "not significant"
        ]
        out["genotype_cooccurrence"] = (
            "Heatmap of log2 odds ratios of gene pairs; "
            + ("; ".join(pairs) if pairs else "no pair significant")
            + "."
        )
    surv = results.get("survival")
    if isinstance(surv, Mapping):
        d = surv.get("details") or {}
        abbr = endpoint_name(str(d.get("time", "")))[1]
        unit = str(results["cohort"].get("time_unit") or "")
        groups = "; ".join(
            f"{r.get('group')} {score} group median {fmt.time(r.get('median'))} {unit} "
            f"({r.get('n')} patients, {r.get('events')} events)"
            for r in d.get("km") or []
        )
        lr = next((r for r in d.get("logrank") or []), None)
        out["survival_km"] = (
            f"Kaplan–Meier curves of {abbr}: {groups}"
            + (f"; log-rank {fmt.p_text(lr.get('p_value'))}" if lr else "")
            + "."
        )
        inter = d.get("interaction")
        if isinstance(inter, Mapping):
            out["survival_forest"] = (
                "Forest plot of the treatment hazard ratio: "
                + "; ".join(
                    f"{'all patients' if r.get('level') == 'all' else r.get('level')} "
                    f"{fmt.est_ci(r.get('hr'), r.get('hr_low'), r.get('hr_high'), ref=1.0)}"
                    for r in inter.get("forest") or []
                )
                + "."
            )
    des = results.get("design")
    if isinstance(des, Mapping):
        rows = (des.get("tables") or {}).get("designs") or []
        out["design_power"] = (
            "Power curves against patients screened; at the target power: "
            + "; ".join(
                f"{_DESIGNS.get(str(r.get('design')), r.get('design'))} {cell(r.get('n_screened'), 'n')} screened"
                for r in rows
            )
            + "."
        )
    return {k: v for k, v in out.items() if k in captions}
