"""The summary of findings: sentences read off the results, with the statistical guard-rails.

:func:`summarize` reads a report's results dictionary (the content of ``results.json``) and
says what was found: which targets the slides decode, whether the score is prognostic, whether
it is predictive, what an enriched trial would need, and the cautions that apply. It compares
reported numbers with the thresholds below; it estimates nothing, so every number in a sentence
is a number of ``results.json`` (rounded for reading).

The guard-rails are rules on the wording, not on the analyses:

- a target is called **decodable** only when the lower bound of its AUROC interval is above
  0.5 (:data:`CHANCE`), its q-value (Benjamini–Hochberg across targets; the p-value when there
  is no q-value) is below :data:`ALPHA`, and both classes have at least :data:`MIN_CLASS`
  patients. An interval that includes 0.5 is never called decodable;
- the score is called **prognostic** only when the Cox hazard ratio of the top against the
  bottom score group has p < :data:`ALPHA` and an interval that excludes 1;
- the score is called **predictive** only when the treatment-by-score-group interaction test
  (likelihood ratio) has p < :data:`ALPHA`; treatment hazard ratios within a score group are
  described, and flagged when their interval includes 1;
- a trial design built from point estimates is flagged, with the interval of the treatment
  hazard ratio it assumed and, when given, the designs recomputed at its bounds;
- proportional hazards rejected (global cox.zph p < :data:`ALPHA`), an exploratory cut-point,
  few positives and concordance intervals that include 0.5 are cautions;
- two decoders (generalist vs specialist, two representations) are said to **differ** only when
  the paired difference has p < :data:`ALPHA` and an interval that excludes 0; a decoder
  **transfers** to left-out groups only when the pooled AUROC interval is above 0.5;
- the treatment effect is said to **vary along the score** only when the spline interaction
  test (likelihood ratio; the STEPP permutation test without a spline model) has
  p < :data:`ALPHA`; a cut-off read off the curve is always flagged as exploratory.

:func:`findings_record` gives the summary as JSON-safe records (``results.json`` key
``findings``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import _format as fmt

__all__ = [
    "ALPHA",
    "CHANCE",
    "MIN_CLASS",
    "Caution",
    "Finding",
    "Summary",
    "summarize",
    "findings_record",
    "endpoint_name",
    "score_label",
]

#: two-sided significance level of every verdict
ALPHA = 0.05
#: AUROC (and C) of a score that ranks at random
CHANCE = 0.5
#: fewest patients in the smaller class for a decoder's interval to be trusted
MIN_CLASS = 10

_ENDPOINTS = {
    "os": ("overall survival", "OS", "death"),
    "pfs": ("progression-free survival", "PFS", "progression or death"),
    "dfs": ("disease-free survival", "DFS", "recurrence or death"),
    "efs": ("event-free survival", "EFS", "an event"),
    "rfs": ("relapse-free survival", "RFS", "relapse or death"),
    "ttp": ("time to progression", "TTP", "progression"),
}


def endpoint_name(time_column: str) -> tuple[str, str, str]:
    """``(name, abbreviation, event)`` of a survival time column: ``os_time`` -> ``("overall
    survival", "OS", "death")``; an unknown column is named by itself."""
    key = str(time_column).lower().removesuffix("_time").removesuffix("_months")
    return _ENDPOINTS.get(key, (str(time_column), str(time_column), "an event"))


@dataclass(frozen=True)
class Finding:
    """One statement of the summary.

    ``verdict`` is a fixed code (``decodable``, ``few_patients``, ``includes_chance``,
    ``not_significant``, ``below_chance``, ``not_estimable``; ``prognostic``,
    ``not_prognostic``; ``predictive``, ``not_predictive``; ``design``; ``learning_curve``,
    ``differs``, ``not_shown_to_differ``, ``transfers``, ``not_shown_to_transfer``;
    ``varies``, ``not_shown_to_vary``), ``label`` its words, ``text`` the sentence,
    ``subject`` the target (decoders, decoder analyses).
    """

    topic: str
    verdict: str
    label: str
    text: str
    subject: str = ""


@dataclass(frozen=True)
class Caution:
    """A caution that applies to a finding (``topic``: decode, prognostic, predictive, design)."""

    topic: str
    text: str


@dataclass(frozen=True)
class Summary:
    """The findings of a report, in reading order."""

    decode: tuple[Finding, ...] = ()
    decode_method: str = ""
    prognostic: Finding | None = None
    concordance: str = ""
    predictive: Finding | None = None
    design: Finding | None = None
    design_assumptions: str = ""
    sensitivity: tuple[str, ...] = ()
    cautions: tuple[Caution, ...] = field(default_factory=tuple)
    analyses: tuple[Finding, ...] = ()
    effect_curve: Finding | None = None

    @property
    def empty(self) -> bool:
        return not (
            self.decode
            or self.prognostic
            or self.predictive
            or self.design
            or self.analyses
            or self.effect_curve
        )


def _num(x: Any) -> float | None:
    return float(x) if fmt.is_number(x) else None


# =============================================================================== decoders
def _decode_verdict(row: Mapping[str, Any]) -> tuple[str, str]:
    """(verdict, label) of one decoder summary row."""
    auroc, low, high = _num(row.get("auroc")), _num(row.get("low")), _num(row.get("high"))
    if auroc is None or low is None or high is None:
        return "not_estimable", "not estimable"
    q = _num(row.get("q_value"))
    p = q if q is not None else _num(row.get("p_value"))
    # an exact test may decide chance level (open bound at 0.5): ``excludes_chance``
    excl = row.get("excludes_chance")
    excl = fmt.is_true(excl) if fmt.is_flag(excl) else None
    if high < CHANCE or (excl and high <= CHANCE):
        return "below_chance", "below chance"
    if (low <= CHANCE) if excl is None else not excl:
        return "includes_chance", "not shown: interval includes 0.5"
    if p is None or p >= ALPHA:
        return "not_significant", "not shown: not significant"
    n, n1 = row.get("n"), row.get("n_positive")
    if fmt.is_number(n) and fmt.is_number(n1) and min(n1, n - n1) < MIN_CLASS:
        return "few_patients", f"not established: few {'positives' if n1 < n - n1 else 'negatives'}"
    return "decodable", "decodable"


def _classes(row: Mapping[str, Any]) -> str:
    n, n1 = row.get("n"), row.get("n_positive")
    if fmt.is_number(n) and fmt.is_number(n1):
        return f"{fmt.count(n1)} positive of {fmt.count(n)}"
    return ""


def _decode_findings(decode: Mapping[str, Any]) -> tuple[list[Finding], str, list[Caution]]:
    rows = [r for r in decode.get("summary") or [] if isinstance(r, Mapping)]
    params = decode.get("parameters") or {}
    out, cautions = [], []
    for r in rows:
        target = str(r.get("target", ""))
        verdict, label = _decode_verdict(r)
        auc = fmt.est_ci(
            r.get("auroc"),
            r.get("low"),
            r.get("high"),
            ref=CHANCE,
            excludes_ref=fmt.is_true(r.get("excludes_chance")),
        )
        q = r.get("q_value") if fmt.is_number(r.get("q_value")) else r.get("p_value")
        qname = "q" if fmt.is_number(r.get("q_value")) else "p"
        if verdict == "not_estimable":
            note = str(r.get("note") or "").strip()
            text = f"{target}: not estimable" + (f" ({note})" if note else "")
        else:
            auc = auc.replace(" (", " (95 % CI ", 1)
            text = ", ".join(x for x in (f"{target}: AUROC {auc}", _classes(r)) if x)
            text += f", {fmt.p_text(q, qname)}"
        out.append(Finding("decode", verdict, label, text, subject=target))
        n, n1 = r.get("n"), r.get("n_positive")
        if fmt.is_number(n) and fmt.is_number(n1) and min(n1, n - n1) < MIN_CLASS:
            small = "positives" if n1 < n - n1 else "negatives"
            cautions.append(
                Caution(
                    "decode",
                    f"{target}: only {fmt.count(min(n1, n - n1))} {small}; its AUROC interval "
                    "is unreliable and the target is not called decodable.",
                )
            )
        elif verdict == "includes_chance":
            cautions.append(
                Caution(
                    "decode",
                    f"{target}: the AUROC interval ({fmt.ci(r.get('low'), r.get('high'))}) "
                    "includes 0.5, so the slides may not predict it at all.",
                )
            )
        elif verdict == "below_chance":
            cautions.append(
                Caution(
                    "decode",
                    f"{target}: AUROC below chance ({auc}); check how the label is coded.",
                )
            )
    # method: what the interval and the p-value are (as recorded by the decoder)
    ci_methods = sorted({str(r["ci_method"]) for r in rows if r.get("ci_method")})
    p_methods = sorted({str(r["p_method"]) for r in rows if r.get("p_method")})
    level = params.get("level")
    level_text = f"{fmt.pct(level)} " if fmt.is_number(level) else ""
    parts = []
    cv = params.get("cv")
    parts.append(f"Out-of-fold AUROC ({cv})" if cv else "Out-of-fold AUROC")
    if params.get("estimand"):
        parts.append(f"estimand: {params['estimand']}")
    parts.append(
        f"{level_text}intervals: "
        + ("; ".join(ci_methods) if ci_methods else "method not recorded by the decoder")
    )
    parts.append(
        "p-values: " + ("; ".join(p_methods) if p_methods else "method not recorded by the decoder")
    )
    if any(fmt.is_number(r.get("q_value")) for r in rows):
        parts.append(f"q-values: Benjamini–Hochberg across the {len(rows)} targets")
    return out, ". ".join(parts) + ".", cautions


# =============================================================================== survival
def _top_row(rows: Sequence[Mapping[str, Any]], top: str) -> Mapping[str, Any] | None:
    for r in rows or []:
        term = str(r.get("term", ""))
        if term.endswith(f"[{top}]") and ":" not in term:
            return r
    return None


def _group_rows(inter: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Forest rows of the score groups (separate Cox fits of the treatment in each group)."""
    biomarker = inter.get("biomarker")
    rows = [r for r in inter.get("forest") or [] if r.get("variable") == biomarker]
    return rows or list(inter.get("subgroups") or [])


def score_label(results: Mapping[str, Any]) -> str:
    """``"responder score"``: the decoded target the patients were stratified by (from the
    study configuration or the stratification parameters), else ``"score"``."""
    cfg = (results.get("provenance") or {}).get("config") or {}
    surv = cfg.get("survival") if isinstance(cfg, Mapping) else None
    if isinstance(surv, Mapping) and surv.get("score_target"):
        return f"{surv['score_target']} score"
    target = ((results.get("survival") or {}).get("details") or {}).get("parameters", {}) or {}
    return f"{target['target']} score" if target.get("target") else "score"


def _survival_findings(
    results: Mapping[str, Any],
) -> tuple[Finding | None, str, Finding | None, list[Caution]]:
    d = (results.get("survival") or {}).get("details") or {}
    cautions: list[Caution] = []
    groups = [str(g) for g in d.get("groups") or []]
    if len(groups) < 2:
        return None, "", None, cautions
    top, bottom = groups[-1], groups[0]
    score = score_label(results)
    name, abbr, event = endpoint_name(str(d.get("time", "")))
    # ---- prognostic
    prog = None
    row = _top_row(d.get("cox_unadjusted") or [], top)
    if row is not None and fmt.is_number(row.get("hr")):
        hr, lo, hi, p = (_num(row.get(k)) for k in ("hr", "hr_low", "hr_high", "p_value"))
        hrtext = fmt.est_ci(hr, lo, hi, ref=1.0)
        excludes_one = lo is not None and hi is not None and (hi < 1 or lo > 1)
        lr = next((r for r in d.get("logrank") or [] if fmt.is_number(r.get("p_value"))), None)
        lrtext = f"; log-rank {fmt.p_text(lr['p_value'])}" if lr else ""
        adj = _top_row(d.get("cox_adjusted") or [], top)
        covs = ((d.get("parameters") or {}).get("covariates")) or []
        adjtext = ""
        if adj is not None and fmt.is_number(adj.get("hr")):
            adjtext = (
                f"; adjusted for {', '.join(map(str, covs)) or 'covariates'}: HR "
                f"{fmt.est_ci(adj['hr'], adj.get('hr_low'), adj.get('hr_high'), ref=1.0)}, "
                f"{fmt.p_text(adj.get('p_value'))}"
            )
        compare = f"{top} vs {bottom} {score} group"
        if p is not None and p < ALPHA and excludes_one:
            way = "lower" if hr is not None and hr < 1 else "higher"
            prog = Finding(
                "prognostic",
                "prognostic",
                "prognostic",
                f"Prognostic for {name}: patients in the {top} {score} group had a {way} "
                f"hazard of {event} than those in the {bottom} group, HR {hrtext}, "
                f"{fmt.p_text(p)} (Cox, unadjusted{lrtext}){adjtext}.",
            )
        else:
            prog = Finding(
                "prognostic",
                "not_prognostic",
                "not shown to be prognostic",
                f"Not shown to be prognostic for {name}: HR {compare} {hrtext}, "
                f"{fmt.p_text(p)}"
                + (": the interval includes 1" if not excludes_one else "")
                + f" (Cox, unadjusted{lrtext}){adjtext}.",
            )
    # ---- concordance, read in the risk direction
    conc_text = ""
    oc = d.get("concordance_oriented") or {}
    harrell = next((r for r in oc.get("rows") or [] if r.get("method") == "harrell"), None)
    if harrell is not None and fmt.is_number(harrell.get("estimate")):
        c, lo, hi = harrell.get("estimate"), harrell.get("low"), harrell.get("high")
        conc_text = (
            f"Concordance of the continuous {score} with {abbr}: {oc.get('direction')}; "
            f"Harrell's C in that direction {fmt.est_ci(c, lo, hi, ref=CHANCE)}"
        )
        if oc.get("reflected"):
            conc_text += (
                f" (the survival module's C, computed with higher score = higher risk, is "
                f"{fmt.est(harrell.get('estimate_as_computed'))})"
            )
        conc_text += "."
        if fmt.is_number(lo) and lo <= CHANCE:
            cautions.append(
                Caution(
                    "prognostic",
                    f"The concordance interval of the continuous {score} "
                    f"({fmt.ci(lo, hi, ref=CHANCE)}) includes 0.5: beyond the two groups, the "
                    "score's ranking of patients by risk is not established.",
                )
            )
    if d.get("exploratory"):
        cautions.append(
            Caution(
                "prognostic",
                "EXPLORATORY cut-point: it was chosen on the same patients it is evaluated on, "
                "so the group hazard ratios are biased away from 1; only the corrected p-value "
                "of the maximally selected statistic is valid.",
            )
        )
    for r in d.get("ph_test") or []:
        if r.get("term") == "GLOBAL" and fmt.is_number(r.get("p_value")) and r["p_value"] < ALPHA:
            cautions.append(
                Caution(
                    "prognostic",
                    f"Proportional hazards rejected for the {r.get('model')} Cox model (global "
                    f"cox.zph {fmt.p_text(r['p_value'])}): its hazard ratio averages an effect "
                    "that changes over time; the RMST difference does not assume proportional "
                    "hazards.",
                )
            )
    for note in d.get("notes") or []:
        cautions.append(Caution("prognostic", str(note)))
    # ---- predictive
    pred = None
    inter = d.get("interaction")
    if isinstance(inter, Mapping):
        p = _num(inter.get("interaction_p_value"))
        exp, ctl = inter.get("experimental"), inter.get("control")
        per_group, not_sig = [], []
        for r in reversed(_group_rows(inter)):  # top group first
            if fmt.is_number(r.get("hr")):
                hrtext = fmt.est_ci(r["hr"], r.get("hr_low"), r.get("hr_high"), ref=1.0)
                per_group.append(f"{r.get('level')} {score} group {hrtext}")
                lo, hi = _num(r.get("hr_low")), _num(r.get("hr_high"))
                if lo is not None and hi is not None and lo <= 1 <= hi:
                    not_sig.append(f"{r.get('level')} {hrtext}, {fmt.p_text(r.get('p_value'))}")
        if not_sig:
            cautions.append(
                Caution(
                    "predictive",
                    f"Treatment HRs within {score} groups that are not significant ("
                    + "; ".join(not_sig)
                    + "): a subgroup HR describes, it does not show benefit within the group.",
                )
            )
        groups_text = (
            f" Treatment HR ({exp} vs {ctl}) by separate Cox fits: " + "; ".join(per_group) + "."
            if per_group
            else ""
        )
        test = f"treatment × {score} group interaction {fmt.p_text(p)} (likelihood ratio)"
        if p is not None and p < ALPHA:
            pred = Finding(
                "predictive",
                "predictive",
                "predictive",
                f"Predictive: the treatment effect differs between {score} groups, {test}."
                + groups_text,
            )
            cautions.append(
                Caution(
                    "predictive",
                    "One interaction test in one cohort: confirm the predictive effect in an "
                    "independent trial before using it to select patients.",
                )
            )
        else:
            pred = Finding(
                "predictive",
                "not_predictive",
                "not shown to be predictive",
                f"Not shown to be predictive: {test}." + groups_text,
            )
    return prog, conc_text, pred, cautions


# =============================================================================== design
def _design_params(design: Mapping[str, Any]) -> dict[str, Any]:
    params = dict(design.get("parameters") or {})
    inner = params.get("parameters")
    return dict(inner) if isinstance(inner, Mapping) else params


def _estimated(results: Mapping[str, Any], key: str) -> bool | None:
    """Whether a design input was estimated from the cohort (config value null), if known."""
    cfg = (results.get("provenance") or {}).get("config")
    d = cfg.get("design") if isinstance(cfg, Mapping) else None
    if not isinstance(d, Mapping) or key not in d:
        return None
    return d[key] is None


def _matching_group(results: Mapping[str, Any], hr: float, level: str) -> Mapping[str, Any] | None:
    """The forest row of a score group whose treatment HR is the design's HR (same fit)."""
    inter = ((results.get("survival") or {}).get("details") or {}).get("interaction")
    if not isinstance(inter, Mapping):
        return None
    for r in _group_rows(inter):
        v = _num(r.get("hr"))
        if str(r.get("level")) == level and v is not None and abs(v - hr) <= 1e-9 * max(1, hr):
            return r
    return None


def _design_findings(
    results: Mapping[str, Any],
) -> tuple[Finding | None, str, list[str], list[Caution]]:
    design = results.get("design") or {}
    tables = design.get("tables") or {}
    rows = tables.get("designs") or tables.get("design") or []
    by = {str(r.get("design")): r for r in rows if isinstance(r, Mapping)}
    cautions: list[Caution] = []
    enr = by.get("enriched")
    if enr is None:
        return None, "", [], cautions
    params = _design_params(design)
    unit = str((results.get("cohort") or {}).get("time_unit") or "months")
    d = (results.get("survival") or {}).get("details") or {}
    groups = [str(g) for g in d.get("groups") or []]
    top = groups[-1] if groups else "biomarker-positive"
    score = score_label(results)
    who = f"{top} {score} patients" if groups else "biomarker-positive patients"
    alpha, power = params.get("alpha"), params.get("power")
    prev = params.get("prevalence")
    setting = []
    if fmt.is_number(power):
        setting.append(f"{fmt.pct(power)} power")
    if fmt.is_number(alpha):
        setting.append(f"two-sided α = {fmt.est(alpha)}")
    if fmt.is_number(params.get("accrual")) and fmt.is_number(params.get("follow_up")):
        setting.append(
            f"{fmt.time(params['accrual'])} {unit} accrual and "
            f"{fmt.time(params['follow_up'])} {unit} further follow-up"
        )
    text = (
        f"An enriched trial of {who}"
        + (f" ({fmt.pct(prev)} of those screened)" if fmt.is_number(prev) else "")
        + f" would need {fmt.count(enr.get('events'))} events: {fmt.count(enr.get('n_patients'))} "
        f"patients randomised from {fmt.count(enr.get('n_screened'))} screened"
    )
    allc = by.get("all-comers")
    if allc is not None:
        if fmt.is_number(allc.get("n_patients")):
            text += (
                f", against {fmt.count(allc['n_patients'])} patients "
                f"({fmt.count(allc.get('events'))} events) for an all-comers trial tested overall"
            )
        else:
            text += "; an all-comers trial cannot be powered (overall hazard ratio about 1)"
    text += (" — for " + ", ".join(setting) if setting else "") + "."
    finding = Finding("design", "design", "trial design", text)
    assumptions = []
    pos, neg = params.get("hr_positive"), params.get("hr_negative")
    if fmt.is_number(pos):
        assumptions.append(
            f"treatment HR {fmt.est(pos)} in biomarker-positive ({who})"
            + (f" and {fmt.est(neg)} in biomarker-negative patients" if fmt.is_number(neg) else "")
        )
    if fmt.is_number(params.get("median_control")):
        assumptions.append(f"control median {fmt.time(params['median_control'])} {unit}")
    assumed = ("Assumed: " + ", ".join(assumptions) + ".") if assumptions else ""
    # ---- point estimates and their intervals
    hr_pos = _num(params.get("hr_positive"))
    estimated = _estimated(results, "hr_positive")
    match = _matching_group(results, hr_pos, top) if hr_pos is not None else None
    if match is not None or estimated:
        where = (
            f" (95 % CI {fmt.ci(match.get('hr_low'), match.get('hr_high'), ref=1.0)})"
            if match is not None
            else ""
        )
        msg = (
            f"The design is computed from point estimates of this cohort: the treatment HR "
            f"{fmt.est(hr_pos)} in {who}{where}"
        )
        hi = _num(match.get("hr_high")) if match is not None else None
        if hi is not None and hi >= 1:
            msg += (
                "; its interval includes 1 (no benefit), so the enriched trial may need far "
                "more patients, or may not be worth running"
            )
        cautions.append(Caution("design", msg + "."))
    elif estimated is None:
        cautions.append(
            Caution(
                "design",
                "The report does not record where the design's hazard ratios come from; if they "
                "are estimates, the sample sizes inherit their uncertainty.",
            )
        )
    # ---- sensitivity at the interval's bounds (computed upstream, shown here)
    sens_lines = []
    for r in tables.get("sensitivity") or []:
        if str(r.get("design", "enriched")) != "enriched":
            continue
        hr = next((r[k] for k in ("hr_positive", "hr") if fmt.is_number(r.get(k))), None)
        label = str(r.get("scenario") or "")
        head = f"{label}: HR {fmt.est(hr)}" if label else f"HR {fmt.est(hr)}"
        if fmt.is_number(r.get("n_patients")):
            sens_lines.append(
                f"{head} — {fmt.count(r.get('events'))} events, {fmt.count(r['n_patients'])} "
                f"patients, {fmt.count(r.get('n_screened'))} screened"
            )
        else:
            note = str(r.get("note") or "no trial can be powered at this hazard ratio")
            sens_lines.append(f"{head} — {note}")
    if (match is not None or estimated) and not sens_lines:
        cautions.append(
            Caution(
                "design",
                "No sample sizes at the bounds of that interval were computed for this report; "
                "read the numbers above as the sizes if the point estimate were the truth.",
            )
        )
    return finding, assumed, sens_lines, cautions


# =============================================================================== decoder analyses
def _paired(
    kind: str, rows: Sequence[Mapping[str, Any]], label: str, params: Mapping[str, Any]
) -> list[Finding]:
    """One finding per target from the ``difference`` rows of a paired analysis."""
    if kind == "generalist_vs_specialist":
        a, b, where = "generalist", "specialist", f" ({params.get('cancer_type')} patients)"
    else:
        a, b = (list(params.get("names") or []) + ["a", "b"])[:2]
        where = ""
    out = []
    for r in rows:
        if r.get(label) != "difference":
            continue
        target = str(r.get("target", ""))
        est, lo, hi, p = (_num(r.get(k)) for k in ("estimate", "low", "high", "p_value"))
        aucs = {
            str(x.get(label)): fmt.est(x.get("auroc"))
            for x in rows
            if x.get("target") == r.get("target") and x.get(label) in (a, b)
        }
        text = (
            f"{target}{where}: AUROC {a} {aucs.get(a, fmt.DASH)}, {b} {aucs.get(b, fmt.DASH)}; "
            f"difference {a} − {b} {fmt.est_ci(est, lo, hi, ref=0.0)}, {fmt.p_text(p)}"
        )
        if est is not None and lo is not None and hi is not None and p is not None:
            differs = p < ALPHA and (lo > 0 or hi < 0)
        else:
            differs = False
        if differs:
            better = a if est is not None and est > 0 else b
            out.append(Finding("analyses", "differs", f"{better} better", text, subject=target))
        else:
            out.append(
                Finding("analyses", "not_shown_to_differ", "no difference shown", text, target)
            )
    return out


def _analysis_findings(analyses: Mapping[str, Any]) -> list[Finding]:
    out: list[Finding] = []
    for item in analyses.get("analyses") or []:
        kind, rows = str(item.get("kind")), item.get("table") or []
        params = item.get("parameters") or {}
        if kind == "learning_curve":
            targets = list(dict.fromkeys(str(r.get("target")) for r in rows))
            for t in targets:
                pts = sorted(
                    (r for r in rows if str(r.get("target")) == t),
                    key=lambda r: _num(r.get("fraction")) or 0.0,
                )
                if len(pts) < 2:
                    continue
                ends = [
                    f"{fmt.est_ci(r.get('auroc'), r.get('low'), r.get('high'), ref=CHANCE)} "
                    f"with {fmt.pct(r.get('fraction'))} of the training patients "
                    f"({fmt.count(r.get('n_train'))} per fold)"
                    for r in (pts[0], pts[-1])
                ]
                text = f"{t}: AUROC {ends[0]}, {ends[1]}"
                out.append(Finding("analyses", "learning_curve", "data scaling", text, t))
        elif kind in ("generalist_vs_specialist", "representation_comparison"):
            label = "model" if kind == "generalist_vs_specialist" else "representation"
            out += _paired(kind, rows, label, params)
        elif kind == "leave_one_group_out":
            col = str(params.get("group_column", "group")).replace("_", " ")
            for r in rows:
                if r.get("group") != "pooled":
                    continue
                t = str(r.get("target"))
                lo = _num(r.get("low"))
                per = "; ".join(
                    f"{x.get('group')} {fmt.est(x.get('auroc'))}"
                    for x in rows
                    if x.get("target") == r.get("target") and x.get("group") != "pooled"
                )
                text = (
                    f"{t} on a {col} left out of training: pooled AUROC "
                    f"{fmt.est_ci(r.get('auroc'), r.get('low'), r.get('high'), ref=CHANCE)}"
                    + (f" (per {col}: {per})" if per else "")
                )
                if lo is not None and lo > CHANCE:
                    out.append(Finding("analyses", "transfers", "transfers", text, t))
                else:
                    out.append(
                        Finding(
                            "analyses", "not_shown_to_transfer", "not shown to transfer", text, t
                        )
                    )
    return out


# =============================================================================== effect curve
def _effect_curve_finding(results: Mapping[str, Any]) -> tuple[Finding | None, list[Caution]]:
    curve = (results.get("survival") or {}).get("effect_curve")
    if not isinstance(curve, Mapping):
        return None, []
    score = score_label(results)
    exp, ctl = curve.get("experimental"), curve.get("control")
    spline, st = curve.get("spline") or {}, curve.get("stepp") or {}
    parts, p_main = [], None
    s_test = next(iter(spline.get("test") or []), None)
    if s_test is not None:
        p_main = _num(s_test.get("p_value"))
        q = {r.get("quantile"): r for r in spline.get("at_quantiles") or []}
        ends = [q.get(0.1), q.get(0.9)]
        hr_text = (
            f"; HR {fmt.est_ci(ends[0]['hr'], ends[0]['hr_low'], ends[0]['hr_high'], ref=1.0)} at "
            f"the 10th and {fmt.est_ci(ends[1]['hr'], ends[1]['hr_low'], ends[1]['hr_high'], ref=1.0)}"
            " at the 90th percentile of the score"
            if all(isinstance(e, Mapping) for e in ends)
            else ""
        )
        parts.append(
            f"spline interaction model {fmt.p_text(s_test.get('p_value'))} (likelihood ratio, "
            f"{fmt.count(s_test.get('df'))} df){hr_text}"
        )
    p_test = next(iter(st.get("test") or []), None)
    if p_test is not None:
        if p_main is None:
            p_main = _num(p_test.get("p_value"))
        parts.append(
            f"STEPP {fmt.p_text(p_test.get('p_value'))} ({fmt.count(p_test.get('n_permutations'))} "
            f"permutations, {len(st.get('windows') or [])} windows of about {st.get('r2')} patients)"
        )
    if p_main is None:
        return None, []
    head = f"Treatment effect ({exp} vs {ctl}) along the continuous {score}: "
    text = head + "; ".join(parts) + "."
    cautions = [Caution("predictive", str(curve.get("exploratory_cutoff") or ""))]
    s_p = _num((s_test or {}).get("p_value"))
    t_p = _num((p_test or {}).get("p_value"))
    if s_p is not None and t_p is not None and (s_p < ALPHA) != (t_p < ALPHA):
        cautions.append(
            Caution(
                "predictive",
                "The spline and STEPP interaction tests disagree at 0.05; the spline test is the "
                "one the summary reads (pre-specified), STEPP shows where the windows differ.",
            )
        )
    if p_main < ALPHA:
        return Finding("effect_curve", "varies", "varies with the score", text), cautions
    return (
        Finding("effect_curve", "not_shown_to_vary", "not shown to vary", text),
        cautions,
    )


# =============================================================================== summary
def findings_record(summary: Summary) -> dict[str, Any]:
    """The summary as JSON-safe records: what ``results.json`` stores under ``findings``.

    Parameters
    ----------
    summary : Summary
        Output of :func:`summarize`.

    Returns
    -------
    dict
        The :class:`Summary` fields; findings as ``topic, verdict, label, text, subject``,
        cautions as ``topic, text``.
    """
    import dataclasses

    return dataclasses.asdict(summary)


def summarize(results: Mapping[str, Any]) -> Summary:
    """The findings of a report from its results dictionary.

    Parameters
    ----------
    results : mapping
        ``Report.results`` (or ``results.json`` read back).

    Returns
    -------
    Summary
    """
    decode: list[Finding] = []
    method = ""
    cautions: list[Caution] = []
    if isinstance(results.get("decode"), Mapping):
        decode, method, c = _decode_findings(results["decode"])
        cautions += c
    prog = pred = None
    conc = ""
    if isinstance(results.get("survival"), Mapping):
        prog, conc, pred, c = _survival_findings(results)
        cautions += c
        target = score_label(results).removesuffix(" score")
        found = next((f for f in decode if f.subject == target), None)
        if found is not None and found.verdict != "decodable":
            cautions.append(
                Caution(
                    "prognostic",
                    f"The survival analyses group patients by the {target} score, but the slides "
                    f"are not shown to decode {target} ({found.label}): read the score as a "
                    "candidate marker, not as a measurement of the target.",
                )
            )
    curve, c = _effect_curve_finding(results)
    cautions += c
    extra = (
        _analysis_findings(results["analyses"])
        if isinstance(results.get("analyses"), Mapping)
        else []
    )
    des, assumed, sens, c = (None, "", [], [])
    if isinstance(results.get("design"), Mapping):
        des, assumed, sens, c = _design_findings(results)
        cautions += c
    seen: set[str] = set()
    unique = []
    for c in cautions:
        if c.text not in seen:
            seen.add(c.text)
            unique.append(c)
    return Summary(
        decode=tuple(decode),
        decode_method=method,
        prognostic=prog,
        concordance=conc,
        predictive=pred,
        design=des,
        design_assumptions=assumed,
        sensitivity=tuple(sens),
        cautions=tuple(unique),
        analyses=tuple(extra),
        effect_curve=curve,
    )
