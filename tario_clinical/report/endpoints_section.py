"""The report section "Endpoint decoders": categorical, continuous, time-to-event and
treatment-benefit decoders next to the binary ones.

Reads ``results["endpoints"]`` (stored by the pipeline, see
:func:`tario_clinical.pipeline.endpoints.endpoints_record`) and shows it; nothing is fitted or
tested here. The section says how each target's kind was chosen (given, inferred from the
cohort, or the binary default), gives one headline line per decoder, one table of every metric
in the columns all kinds share (binary rows included), and per decoder its own tables
(confusion matrix and class sizes, calibration at the horizon, benefit groups, interaction
model, outer folds, parameters) with figures drawn from the stored numbers (confusion matrix,
calibration of predicted risk, treatment effect along the benefit score), embedded as PNG
``data:`` URIs with alt text and a caption.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from . import _format as fmt
from ._figures import figure_to_data_uri, new_figure
from ._tables import cell, humanize

__all__ = ["SECTION_ID", "SECTION_TITLE", "HEADLINE_METRICS", "headline", "endpoints_html"]

SECTION_ID = "endpoints"
SECTION_TITLE = "Endpoint decoders"

_E = html.escape

#: the metric each kind of decoder is summarised by, and its chance value
HEADLINE_METRICS: dict[str, tuple[str, float | None]] = {
    "binary": ("auroc", 0.5),
    "categorical": ("macro_auroc", 0.5),
    "continuous": ("r2", 0.0),
    "survival": ("harrell_c", 0.5),
    "benefit": ("c_for_benefit", 0.5),
}

_METRIC_WORDS = {
    "auroc": "AUROC",
    "macro_auroc": "macro AUROC",
    "balanced_accuracy": "balanced accuracy",
    "r2": "R²",
    "pearson_r": "Pearson r",
    "spearman_rho": "Spearman ρ",
    "harrell_c": "Harrell's C",
    "uno_c": "Uno's C",
    "c_for_benefit": "C-for-benefit",
    "interaction_log_hr_per_sd": "arm × score interaction (log HR per SD)",
    "log_hr_difference_high_vs_low": "log HR difference, high vs low benefit",
}

_TABLE_TITLES = {
    "confusion": "Out-of-fold confusion matrix (rows true, columns predicted; patient-repeats)",
    "per_class": "Patients per class",
    "calibration": "Calibration at the horizon (per fifth of predicted risk)",
    "td_auc": "Time-dependent AUC",
    "benefit_groups": "Outcome by arm within predicted-benefit groups",
    "interaction_model": "Interaction model on the cross-fitted benefit score",
    "effect_curve": "Treatment effect along the benefit score",
}


def _metric(m: str) -> str:
    if m in _METRIC_WORDS:
        return _METRIC_WORDS[m]
    head, _, rest = m.partition("@")
    if rest:
        return f"{_METRIC_WORDS.get(head, humanize(head))} at {rest}"
    head, _, rest = m.partition("[")
    if rest:
        return f"{_METRIC_WORDS.get(head, humanize(head))} of {rest[:-1]}"
    return humanize(m)


def _table(caption: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    head = "".join(f'<th scope="col">{_E(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_E(str(c))}</td>" for c in r) + "</tr>\n" for r in rows)
    return (
        f'<div class="scroll"><table><caption>{_E(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table></div>\n"
    )


def _records_table(caption: str, recs: Sequence[Mapping[str, Any]], limit: int = 40) -> str:
    recs = [r for r in recs or [] if isinstance(r, Mapping)]
    if not recs:
        return ""
    cols = list(dict.fromkeys(k for r in recs for k in r))
    rows = [[cell(r.get(c), c) for c in cols] for r in recs[:limit]]
    if len(recs) > limit:
        caption += f" (first {limit} of {len(recs)} rows; all in results.json)"
    return _table(caption, [humanize(c) for c in cols], rows)


def _estimate(r: Mapping[str, Any], ref: float | None) -> str:
    return fmt.est_ci(r.get("estimate"), r.get("low"), r.get("high"), 2, ref=ref)


def headline(row: Mapping[str, Any] | None, kind: str) -> str:
    """One sentence with a decoder's headline metric, interval and p-value ('' without one)."""
    if not row:
        return ""
    metric, ref = HEADLINE_METRICS.get(kind, (str(row.get("metric")), None))
    text = f"{_metric(metric)} {_estimate(row, ref)}"
    if fmt.is_number(row.get("p_value")):
        text += f", {fmt.p_text(row.get('p_value'))} (one-sided, better than chance)"
    return text


def _figure(uri: str | None, alt: str, caption: str) -> str:
    if not uri:
        return ""
    return (
        f'<figure><img src="{_E(uri)}" alt="{_E(alt)}">'
        f"<figcaption>{_E(caption)}</figcaption></figure>\n"
    )


def _confusion_figure(res: Mapping[str, Any]) -> str:
    recs = (res.get("tables") or {}).get("confusion") or []
    if not recs:
        return ""
    first = next(iter(recs[0]))
    classes = [k for k in recs[0] if k != first]
    vals = [[float(r.get(c) or 0.0) for c in classes] for r in recs]
    rows = [str(r.get(first)) for r in recs]
    norm = [[v / max(sum(row), 1e-12) for v in row] for row in vals]
    fig = new_figure(1.4 + 0.7 * len(classes), 1.1 + 0.6 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i, row in enumerate(norm):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    target = str(res.get("target"))
    return _figure(
        figure_to_data_uri(fig),
        f"Confusion matrix of {target}: share of each true class (rows) predicted as each "
        f"class (columns); the diagonal is correct.",
        f"{target}: out-of-fold confusion matrix, row fractions (all repeats).",
    )


def _calibration_figure(res: Mapping[str, Any]) -> str:
    recs = [
        r
        for r in (res.get("tables") or {}).get("calibration") or []
        if fmt.is_number(r.get("predicted_risk")) and fmt.is_number(r.get("observed_risk"))
    ]
    if not recs:
        return ""
    fig = new_figure(4.2, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    x = [r["predicted_risk"] for r in recs]
    y = [r["observed_risk"] for r in recs]
    lo = [max(r["observed_risk"] - (r.get("low") or r["observed_risk"]), 0.0) for r in recs]
    hi = [max((r.get("high") or r["observed_risk"]) - r["observed_risk"], 0.0) for r in recs]
    ax.errorbar(x, y, yerr=[lo, hi], fmt="o-", ms=3)
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    horizon = (res.get("params") or {}).get("horizon")
    ax.set_xlabel(f"predicted risk by {cell(horizon, 'time')}")
    ax.set_ylabel("observed risk (Kaplan-Meier)")
    fig.tight_layout()
    target = str(res.get("target"))
    return _figure(
        figure_to_data_uri(fig),
        f"Calibration of the {target} risk score: Kaplan-Meier risk against mean predicted risk "
        "at the horizon in fifths of predicted risk; points on the diagonal are calibrated.",
        f"{target}: calibration at the horizon (out-of-fold; 95 % Kaplan-Meier intervals).",
    )


def _effect_figure(res: Mapping[str, Any]) -> str:
    recs = [
        r
        for r in (res.get("tables") or {}).get("effect_curve") or []
        if fmt.is_number(r.get("score")) and fmt.is_number(r.get("estimate"))
    ]
    if not recs:
        return ""
    fig = new_figure(5.0, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    x = [r["score"] for r in recs]
    ax.plot(x, [r["estimate"] for r in recs], color="#0072B2")
    if all(fmt.is_number(r.get("low")) and fmt.is_number(r.get("high")) for r in recs):
        ax.fill_between(
            x, [r["low"] for r in recs], [r["high"] for r in recs], color="#0072B2", alpha=0.2
        )
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    effect = str(recs[0].get("effect") or "treatment effect")
    ax.set_xlabel("benefit score (cross-fitted, SD units)")
    ax.set_ylabel(effect)
    fig.tight_layout()
    target = str(res.get("target"))
    return _figure(
        figure_to_data_uri(fig),
        f"{effect} against the cross-fitted benefit score of {target}, with a 95 % band; "
        "below the dashed line the experimental arm does better.",
        f"{target}: treatment effect along the benefit score (interaction model, score fixed).",
    )


def _decoder_block(res: Mapping[str, Any]) -> str:
    kind = str(res.get("kind"))
    target = str(res.get("target"))
    summary = [r for r in res.get("summary") or [] if isinstance(r, Mapping)]
    metric = HEADLINE_METRICS.get(kind, ("", None))[0]
    head = next((r for r in summary if r.get("metric") == metric), None)
    parts = [f"<h3>{_E(target)} ({_E(kind)})</h3>\n"]
    line = headline(head, kind)
    n = res.get("n")
    parts.append(f"<p>{_E(fmt.count(n))} patients. {_E(line)}.</p>\n" if line else "")
    figs = {"categorical": _confusion_figure, "survival": _calibration_figure}
    figs["benefit"] = _effect_figure
    if kind in figs:
        parts.append(figs[kind](res))
    tables = res.get("tables") or {}
    inner = [
        _records_table(_TABLE_TITLES.get(k, humanize(k)), v)
        for k, v in tables.items()
        if k != "effect_curve"
    ]
    params = res.get("params") or {}
    shown = [[humanize(k), cell(v, k)] for k, v in params.items() if not isinstance(v, dict)]
    inner.append(_table(f"{target}: decoder settings", ["Setting", "Value"], shown))
    inner.append(_records_table(f"{target}: outer folds", res.get("folds") or []))
    inner.append(_records_table(f"{target}: patients left out", res.get("exclusions") or []))
    parts.append(
        "<details><summary>Tables, settings, folds and exclusions of "
        f"{_E(target)}</summary>\n{''.join(inner)}</details>\n"
    )
    notes = [str(x) for x in res.get("notes") or []]
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_E(x)}</li>" for x in notes) + "</ul>")
    return "".join(parts)


def endpoints_html(results: Mapping[str, Any]) -> str:
    """HTML of the "Endpoint decoders" section from ``results["endpoints"]`` ('' if absent).

    Every string is escaped; figures are ``data:`` URIs. Returns a ``markupsafe.Markup``.
    """
    from markupsafe import Markup

    ep = results.get("endpoints")
    if not isinstance(ep, Mapping):
        return Markup("")
    parts = [f'<section id="{SECTION_ID}">\n<h2>{_E(SECTION_TITLE)}</h2>\n']
    types = [t for t in ep.get("target_types") or [] if isinstance(t, Mapping)]
    results_list = [r for r in ep.get("results") or [] if isinstance(r, Mapping)]
    kinds = sorted({str(r.get("kind")) for r in results_list})
    parts.append(
        f"<p>{len(results_list)} decoder(s) beyond the binary targets ({_E(', '.join(kinds))}), "
        "each with the same patient-level nested cross-validation as the binary decoders; "
        "intervals and tests re-run the whole procedure where the table says so. One table "
        "below holds every decoder's metrics in the same columns.</p>\n"
    )
    parts.append(
        _table(
            "How each target's kind was chosen",
            ["Target", "Kind", "Reason"],
            [[str(t.get("target")), str(t.get("kind")), str(t.get("reason"))] for t in types],
        )
    )
    rows = []
    for r in ep.get("summary") or []:
        if not isinstance(r, Mapping):
            continue
        ref = HEADLINE_METRICS.get(str(r.get("kind")), ("", None))[1]
        rows.append(
            [
                str(r.get("target")),
                str(r.get("kind")),
                fmt.count(r.get("n")),
                _metric(str(r.get("metric"))),
                _estimate(r, ref if str(r.get("metric")).endswith(("auroc", "_c")) else None),
                fmt.pval(r.get("p_value")),
                str(r.get("ci_method") or fmt.DASH),
                str(r.get("note") or ""),
            ]
        )
    parts.append(
        _table(
            "Every decoder's metrics (estimate with 95 % interval; p one-sided, better than "
            "chance)",
            ["Target", "Kind", "Patients", "Metric", "Estimate (95 % CI)", "p", "Interval", "Note"],
            rows,
        )
    )
    for res in results_list:
        parts.append(_decoder_block(res))
    notes = [str(x) for x in ep.get("notes") or []]
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_E(x)}</li>" for x in notes) + "</ul>")
    parts.append("</section>\n")
    return Markup("".join(parts))
