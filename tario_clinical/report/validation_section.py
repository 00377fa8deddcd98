"""The report section "External validation": a locked biomarker applied to another trial.

Reads ``results["validation"]`` (the dictionary of
:meth:`tario_clinical.biomarker.ValidationResult.to_dict` that the pipeline stores) and shows
it; nothing is fitted or tested here. The figures (calibration plot, locked-score
distributions) are drawn from the stored numbers (binned and lowess calibration, score
quantiles) and embedded as PNG ``data:`` URIs with alt text and a caption. The one sentence
that reads the numbers ("failed validation" vs "site effect") follows fixed rules, as
:mod:`.findings` does for the other claims: discrimination counts as replicated only when the
lower bound of the validation AUROC interval is above chance and each class has at least
``MIN_CLASS`` patients; a site effect is named only when the shift diagnostics flag the
cohorts' representations as distinguishable (membership AUROC lower bound above its flag).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from . import _format as fmt
from ._figures import figure_style, figure_to_data_uri, new_figure
from ._tables import cell, humanize
from .findings import CHANCE, MIN_CLASS

__all__ = ["SECTION_ID", "SECTION_TITLE", "validation_verdict", "validation_html"]

SECTION_ID = "validation"
SECTION_TITLE = "External validation"

_E = html.escape


def _by(recs: Any, key: str = "metric") -> dict[str, Mapping[str, Any]]:
    return {str(r.get(key)): r for r in recs or [] if isinstance(r, Mapping)}


def _table(caption: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    head = "".join(f'<th scope="col">{_E(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_E(str(c))}</td>" for c in r) + "</tr>\n" for r in rows)
    return (
        f'<div class="scroll"><table><caption>{_E(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table></div>\n"
    )


_METRICS = {
    "n": "Labelled patients",
    "prevalence": "Prevalence of the target",
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "auroc_apparent": "AUROC (apparent)",
    "brier": "Brier score",
}


def _metric(m: str) -> str:
    """A metric key in words: ``hr[biomarker[positive]]`` -> ``HR of biomarker[positive]``."""
    if m in _METRICS:
        return _METRICS[m]
    head, _, rest = m.partition("[")
    if rest:
        word = {"hr": "HR of", "events": "Events,", "fraction_positive": "Fraction positive at"}
        return f"{word.get(head, humanize(head))} {rest[:-1].upper() if head == 'events' else rest[:-1]}"
    return humanize(m)


def _ci(
    r: Mapping[str, Any], k: str = "estimate", lo: str = "low", hi: str = "high", **kw: Any
) -> str:
    if r.get(lo) is None or r.get(hi) is None:
        v = r.get(k)
        if fmt.is_number(v) and v == int(v) and abs(v) >= 2:
            return fmt.count(v)
        return fmt.est(v, kw.get("digits", 2))
    return fmt.est_ci(r.get(k), r.get(lo), r.get(hi), kw.get("digits", 2), ref=kw.get("ref"))


# =============================================================================== verdict
def validation_verdict(val: Mapping[str, Any]) -> dict[str, str]:
    """``{"verdict", "text"}``: the guard-railed reading of discrimination and shift.

    Verdicts: ``validated``, ``validated_despite_shift``, ``failed_validation`` (no detected
    shift), ``failed_or_site_effect`` (interval includes chance and the cohorts are told apart:
    the data cannot separate the two), ``not_estimable`` (too few patients per class) and
    ``failed_shift_not_assessed``.
    """
    auc = _by(val.get("discrimination")).get("auroc") or {}
    n, npos = auc.get("n"), auc.get("n_positive")
    shift = val.get("shift") or None
    memb = ((shift or {}).get("membership") or [{}])[0] if shift else {}
    flag = ((shift or {}).get("params") or {}).get("membership_flag")
    distinguishable = bool(
        ((shift or {}).get("flags") or {}).get("representations_distinguishable")
    )
    a_txt = f"AUROC {_ci(auc, ref=CHANCE)}"
    m_txt = f"membership AUROC {_ci(memb, 'auroc', ref=CHANCE)}" if memb else ""
    if not fmt.is_number(auc.get("low")) or not fmt.is_number(n) or not fmt.is_number(npos):
        return {"verdict": "not_estimable", "text": "The validation AUROC could not be estimated."}
    if min(npos, n - npos) < MIN_CLASS:
        return {
            "verdict": "not_estimable",
            "text": f"Too few patients per class to judge the validation ({fmt.count(npos)} "
            f"positives of {fmt.count(n)}; at least {MIN_CLASS} of each are needed); {a_txt}.",
        }
    replicated = auc["low"] > CHANCE
    if replicated:
        if distinguishable:
            return {
                "verdict": "validated_despite_shift",
                "text": f"The locked biomarker discriminates in the validation trial ({a_txt}, "
                f"interval above {CHANCE}) although the cohorts' representations are told apart "
                f"({m_txt}): it transfers across this site effect.",
            }
        return {
            "verdict": "validated",
            "text": f"The locked biomarker discriminates in the validation trial ({a_txt}, "
            f"interval above {CHANCE}).",
        }
    if shift is None:
        return {
            "verdict": "failed_shift_not_assessed",
            "text": f"Discrimination was not shown in the validation trial ({a_txt}, interval "
            f"includes {CHANCE}); without shift diagnostics a site effect cannot be told from a "
            "failed validation.",
        }
    if distinguishable:
        return {
            "verdict": "failed_or_site_effect",
            "text": f"Discrimination was not shown in the validation trial ({a_txt}, interval "
            f"includes {CHANCE}), and the cohorts' representations are easily told apart "
            f"({m_txt}, flag: lower bound above {fmt.est(flag)}): the drop may be a site or "
            "scanner effect rather than a failed biomarker; these data cannot separate the two.",
        }
    return {
        "verdict": "failed_validation",
        "text": f"Discrimination was not shown in the validation trial ({a_txt}, interval "
        f"includes {CHANCE}) and no shift between the cohorts' representations was detected "
        f"({m_txt}): a failed validation, not a site effect.",
    }


# =============================================================================== figures
def _calibration_figure(val: Mapping[str, Any]) -> str | None:
    curve = [r for r in val.get("calibration_curve") or [] if fmt.is_number(r.get("observed"))]
    if not curve:
        return None
    with figure_style():
        fig = new_figure(4.6, 4.2)
        ax = fig.add_subplot(1, 1, 1)
        x = [r["mean_predicted"] for r in curve]
        y = [r["observed"] for r in curve]
        err = [
            [max(r["observed"] - r["low"], 0.0) for r in curve],
            [max(r["high"] - r["observed"], 0.0) for r in curve],
        ]
        ax.errorbar(x, y, yerr=err, fmt="o", ms=3, label="deciles of predicted risk")
        sm = val.get("calibration_smooth") or []
        if sm:
            ax.plot([r["predicted"] for r in sm], [r["observed"] for r in sm], label="lowess")
        top = max([0.05] + x + [r["high"] for r in curve])
        ax.plot([0, top], [0, top], ls="--", color="grey", lw=0.8)
        ax.set_xlabel("predicted probability (locked)")
        ax.set_ylabel("observed fraction")
        ax.legend(loc="upper left")
        fig.tight_layout()
        return figure_to_data_uri(fig)


def _score_figure(val: Mapping[str, Any]) -> str | None:
    dist = [r for r in ((val.get("shift") or {}).get("score_distribution") or [])]
    dist = [
        r for r in dist if all(fmt.is_number(r.get(k)) for k in ("p05", "p25", "p50", "p75", "p95"))
    ]
    if not dist:
        return None
    with figure_style():
        fig = new_figure(5.0, 0.6 * len(dist) + 1.6)
        ax = fig.add_subplot(1, 1, 1)
        stats = [
            {
                "label": str(r.get("cohort")),
                "whislo": r["p05"],
                "q1": r["p25"],
                "med": r["p50"],
                "q3": r["p75"],
                "whishi": r["p95"],
                "fliers": [],
            }
            for r in dist
        ]
        try:
            ax.bxp(stats, orientation="horizontal", showfliers=False)
        except TypeError:  # matplotlib < 3.10
            ax.bxp(stats, vert=False, showfliers=False)
        for c in (val.get("artefact") or {}).get("cutoffs") or []:
            if fmt.is_number(c.get("score")):
                ax.axvline(c["score"], color="grey", lw=0.8, ls=":")
        ax.set_xlabel("locked score (log-odds)")
        fig.tight_layout()
        return figure_to_data_uri(fig)


def _figure(uri: str | None, alt: str, caption: str) -> str:
    if not uri:
        return ""
    return (
        f'<figure><img src="{_E(uri)}" alt="{_E(alt)}">'
        f"<figcaption>{_E(caption)}</figcaption></figure>\n"
    )


# =============================================================================== section
def validation_html(results: Mapping[str, Any]) -> str:
    """HTML of the "External validation" section from ``results["validation"]`` ('' if absent).

    Every string is escaped; figures are ``data:`` URIs. Returns a ``markupsafe.Markup``.
    """
    from markupsafe import Markup

    val = results.get("validation")
    if not isinstance(val, Mapping):
        return Markup("")
    art = val.get("artefact") or {}
    dev = art.get("development") or {}
    cohort = dev.get("cohort") or {}
    parts = [f'<section id="{SECTION_ID}">\n<h2>{_E(SECTION_TITLE)}</h2>\n']
    verdict = validation_verdict(val)
    parts.append(
        f'<p class="validation-verdict"><span class="chip v-{_E(verdict["verdict"])}">'
        f"{_E(humanize(verdict['verdict']))}</span> {_E(verdict['text'])}</p>\n"
    )

    # ---- the locked artefact
    cuts = "; ".join(
        f"{c.get('name')}: score > {fmt.est(c.get('score'))} (probability "
        f"{fmt.est(c.get('probability'))}, {fmt.pct(c.get('fraction_positive_development'))} "
        "positive in development)"
        for c in art.get("cutoffs") or []
    )
    studies = ", ".join(map(str, cohort.get("study_id") or [])) or fmt.DASH
    ident = [
        ["SHA-256", str(val.get("artefact_sha256", ""))],
        ["Name", str(art.get("name", ""))],
        ["Target", str(val.get("target", ""))],
        ["Cut-off", cuts or fmt.DASH],
        ["Cut-off rule", str(art.get("cutoff_rule", fmt.DASH))],
        [
            "Development cohort",
            f"study {studies}: {fmt.count(cohort.get('n'))} labelled patients, "
            f"{fmt.count(cohort.get('n_positive'))} positive, {fmt.count(cohort.get('n_sites'))} sites",
        ],
        ["Features", f"{fmt.count((val.get('features') or {}).get('n_required'))} required"],
    ]
    parts.append(_table("Locked biomarker", ["Item", "Value"], ident))

    # ---- encoder / tiling
    check = val.get("representation_check") or []
    mism = [r for r in check if not r.get("match")]
    if val.get("encoder_overridden"):
        parts.append(
            '<p class="warning"><strong>Warning: encoder or tiling mismatch overridden</strong> '
            "(allow_encoder_mismatch): the validation representations were not made like the "
            "development ones; "
            + _E(", ".join(str(r.get("field")) for r in mism if r.get("must_match")))
            + ".</p>\n"
        )
    elif check:
        parts.append(
            f"<p>Encoder and tiling: the validation representations match the locked "
            f"artefact on all {sum(1 for r in check if r.get('must_match'))} required fields.</p>\n"
        )
    parts.append(
        _table(
            "Representation check (required vs found)",
            ["Field", "Required", "Found", "Match", "Must match"],
            [
                [
                    str(r.get("field")),
                    str(r.get("required")),
                    str(r.get("found")),
                    cell(r.get("match")),
                    cell(r.get("must_match")),
                ]
                for r in check
            ],
        )
    )

    # ---- flow and exclusions
    parts.append(
        _table(
            "Patient flow of the validation cohort",
            ["Step", "Patients", "Excluded", "Reason"],
            [
                [
                    str(r.get("step")),
                    fmt.count(r.get("n")),
                    fmt.count(r.get("n_excluded")),
                    str(r.get("reason") or "") if r.get("n_excluded") else "",
                ]
                for r in val.get("flow") or []
            ],
        )
    )
    parts.append(
        _table(
            "Exclusions of the validation cohort by analysis and reason",
            ["Analysis", "Reason", "Patients"],
            [
                [str(r.get("analysis")), str(r.get("reason")), fmt.count(r.get("n"))]
                for r in val.get("exclusions") or []
            ],
        )
    )

    # ---- development vs validation
    parts.append(
        _table(
            "Development vs validation (difference = development - validation, the optimism)",
            ["Metric", "Development", "Development basis", "Validation", "Difference"],
            [
                [
                    _metric(str(r.get("metric"))),
                    _ci(r, "development", "development_low", "development_high"),
                    str(r.get("development_basis") or ""),
                    _ci(r, "validation", "validation_low", "validation_high"),
                    _ci(r, "difference"),
                ]
                for r in val.get("comparison") or []
            ],
        )
    )

    # ---- discrimination
    parts.append(
        _table(
            "Discrimination of the locked model in the validation cohort",
            ["Metric", "Estimate (95 % CI)", "Method", "Patients", "Positives"],
            [
                [
                    _metric(str(r.get("metric"))),
                    _ci(r, ref=CHANCE if r.get("metric") == "auroc" else None),
                    str(r.get("method") or ""),
                    fmt.count(r.get("n")),
                    fmt.count(r.get("n_positive")),
                ]
                for r in val.get("discrimination") or []
            ],
        )
    )

    # ---- calibration and recalibration
    cal = val.get("calibration") or []
    parts.append(
        _table(
            "Calibration of the locked model (in the large, slope, Brier)",
            ["Metric", "Estimate (95 % CI)", "p-value", "Method"],
            [
                [
                    humanize(str(r.get("metric"))),
                    _ci(r),
                    fmt.pval(r.get("p_value")),
                    str(r.get("method") or ""),
                ]
                for r in cal
            ],
        )
    )
    calm = _by(cal)
    ci_, cs_ = calm.get("calibration_intercept", {}), calm.get("calibration_slope", {})
    uri = _calibration_figure(val)
    parts.append(
        _figure(
            uri,
            f"Calibration plot of the locked {val.get('target')} model in the validation "
            f"cohort: calibration in the large {_ci(ci_)}, slope {_ci(cs_)}, Brier "
            f"{fmt.est(calm.get('brier', {}).get('estimate'))}.",
            "Observed fraction of positives against the mean locked predicted probability in "
            "deciles of validation patients (Wilson 95 % intervals), with a lowess curve; "
            "points on the dashed diagonal are perfectly calibrated.",
        )
    )
    parts.append(
        _table(
            "Recalibration, fitted on the validation cohort and reported separately (apparent; "
            "not the locked performance)",
            ["Method", "Intercept (95 % CI)", "Slope (95 % CI)", "Brier", "Basis"],
            [
                [
                    str(r.get("method")),
                    _ci(r, "intercept", "intercept_low", "intercept_high"),
                    _ci(r, "slope", "slope_low", "slope_high"),
                    fmt.est(r.get("brier")),
                    str(r.get("basis") or ""),
                ]
                for r in val.get("recalibration") or []
            ],
        )
    )

    # ---- survival by the locked cut-off
    surv = val.get("survival")
    if isinstance(surv, Mapping):
        unit = str(surv.get("time_unit") or "")
        ep = str(surv.get("endpoint") or "").upper()
        parts.append(f"<h3>{_E(ep)} by the locked cut-off</h3>\n")
        parts.append(
            _table(
                f"Kaplan-Meier {ep} by locked group",
                ["Group", "Patients", "Events", f"Median {ep}, {unit} (95 % CI)"],
                [
                    [
                        str(r.get("group")),
                        fmt.count(r.get("n")),
                        fmt.count(r.get("events")),
                        _ci(r, "median", "median_low", "median_high", digits=1),
                    ]
                    for r in surv.get("km") or []
                ],
            )
        )
        rows = [
            [
                f"{r.get('test')}",
                fmt.est(r.get("statistic")),
                fmt.count(r.get("df")),
                fmt.pval(r.get("p_value")),
            ]
            for r in surv.get("logrank") or []
        ]
        parts.append(_table("Log-rank test", ["Test", "Statistic", "df", "p-value"], rows))
        cox_rows = []
        for label, key in (("unadjusted", "cox_unadjusted"), ("adjusted", "cox_adjusted")):
            for r in surv.get(key) or []:
                if label == "adjusted" and not str(r.get("term", "")).startswith("biomarker"):
                    continue
                cox_rows.append(
                    [
                        str(r.get("term")),
                        label,
                        _ci(r, "hr", "hr_low", "hr_high", ref=1.0),
                        fmt.pval(r.get("p_value")),
                    ]
                )
        covs = ", ".join(map(str, surv.get("covariates") or [])) or "none"
        parts.append(
            _table(
                f"Cox hazard ratio by locked group (adjusted for {covs})",
                ["Term", "Model", "HR (95 % CI)", "p-value"],
                cox_rows,
            )
        )
        inter = surv.get("interaction")
        if isinstance(inter, Mapping):
            parts.append(
                _table(
                    f"Treatment effect by locked group (arm x biomarker interaction p = "
                    f"{fmt.pval(inter.get('interaction_p_value'))})",
                    [
                        "Group",
                        "Patients",
                        "Events",
                        "HR experimental vs control (95 % CI)",
                        "p-value",
                    ],
                    [
                        [
                            str(r.get("level"))
                            if r.get("variable") != "All patients"
                            else "All patients",
                            fmt.count(r.get("n")),
                            fmt.count(r.get("events")),
                            _ci(r, "hr", "hr_low", "hr_high", ref=1.0),
                            fmt.pval(r.get("p_value")),
                        ]
                        for r in inter.get("forest") or []
                    ],
                )
            )

    # ---- shift diagnostics
    shift = val.get("shift")
    if isinstance(shift, Mapping):
        parts.append("<h3>Shift between the cohorts</h3>\n")
        memb = (shift.get("membership") or [{}])[0]
        parts.append(
            _table(
                "Cohort membership decoder (can the representations tell the trials apart?)",
                ["Membership AUROC (95 % CI)", "Development", "Validation", "Method"],
                [
                    [
                        _ci(memb, "auroc", ref=CHANCE),
                        fmt.count(memb.get("n_development")),
                        fmt.count(memb.get("n_validation")),
                        str(memb.get("method") or ""),
                    ]
                ]
                if memb
                else [],
            )
        )
        parts.append(
            _table(
                "Largest standardised differences (validation - development)",
                ["Feature", "Standardised difference", "Development mean", "Validation mean"],
                [
                    [
                        str(r.get("feature")),
                        fmt.est(r.get("smd")),
                        fmt.est(r.get("mean_development")),
                        fmt.est(r.get("mean_validation")),
                    ]
                    for r in (shift.get("top_features") or [])[:10]
                ],
            )
        )
        dist = shift.get("score_distribution") or []
        test = _by(shift.get("score_test"), "test").get("ks", {})
        alt = (
            "Locked score distributions: "
            + "; ".join(
                f"{r.get('cohort')} median {fmt.est(r.get('p50'))} (n={fmt.count(r.get('n'))})"
                for r in dist
            )
            + (f"; Kolmogorov-Smirnov {fmt.p_text(test.get('p_value'))}." if test else ".")
        )
        parts.append(
            _figure(
                _score_figure(val),
                alt,
                "Locked score (log-odds) in the development and validation cohorts: boxes "
                "span the 25th-75th percentiles, whiskers the 5th-95th, the line is the "
                "median; dotted lines are the locked cut-offs.",
            )
        )

    notes = list(val.get("notes") or [])
    if notes:
        parts.append(
            '<ul class="notes">' + "".join(f"<li>{_E(str(n))}</li>" for n in notes) + "</ul>\n"
        )
    parts.append("</section>\n")
    return Markup("".join(parts))
