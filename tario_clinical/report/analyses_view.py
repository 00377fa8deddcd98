"""Tables for a person of the decoder analyses and of the treatment effect along the score.

Like :mod:`.views`, every function reads the report's results dictionary and returns display
tables (:mod:`._tables`) with rounded cell text and human column names; nothing is estimated.
Every table names the interval method of its rows (the ``ci_method`` the decoder analyses
record: grouped jackknife of the whole analysis for pooled out-of-fold AUROCs and paired
differences, DeLong for a held-out group independent of the training patients).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import _format as fmt
from ._tables import Table, cell, humanize, records_table, table
from .findings import CHANCE

__all__ = ["analyses_view", "effect_curve_view", "analyses_alt_texts"]


def _methods(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(r["ci_method"]) for r in rows if r.get("ci_method")))


def _method_note(rows: Sequence[Mapping[str, Any]]) -> str:
    m = _methods(rows)
    if not m:
        return "Interval method not recorded by the analysis."
    return "95 % intervals: " + "; ".join(m) + "."


def _auc(r: Mapping[str, Any] | None) -> str:
    if not r:
        return fmt.DASH
    return fmt.est_ci(r.get("auroc"), r.get("low"), r.get("high"), ref=CHANCE)


def _learning_curve(item: Mapping[str, Any]) -> Table:
    rows = item.get("table") or []
    out = [
        [
            str(r.get("target")),
            fmt.pct(r.get("fraction")),
            cell(r.get("n_train"), "n"),
            cell(r.get("n"), "n"),
            cell(r.get("n_positive"), "n"),
            _auc(r),
        ]
        for r in rows
    ]
    return table(
        "Pooled out-of-fold AUROC when each training fold keeps a fraction of its patients "
        "(the held-out patients are the same at every fraction)",
        ["Target", "Fraction of training patients", "Training patients per fold", "Patients"]
        + ["Positives", "AUROC (95 % CI)"],
        out,
        num=range(1, 6),
        note=_method_note(rows),
    )


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _paired(item: Mapping[str, Any], label: str, names: Sequence[str], what: str) -> Table:
    rows = item.get("table") or []
    out = []
    for target in dict.fromkeys(str(r.get("target")) for r in rows):
        by = {str(r.get(label)): r for r in rows if str(r.get("target")) == target}
        diff = by.get("difference") or {}
        first = next(iter(by.values()))
        out.append(
            [
                target,
                cell(first.get("n"), "n"),
                cell(first.get("n_positive"), "n"),
                _auc(by.get(names[0])),
                _auc(by.get(names[1])),
                fmt.est_ci(diff.get("estimate"), diff.get("low"), diff.get("high"), ref=0.0),
                fmt.pval(diff.get("p_value")),
            ]
        )
    return table(
        what,
        ["Target", "Patients", "Positives", f"{_cap(names[0])} AUROC (95 % CI)"]
        + [f"{_cap(names[1])} AUROC (95 % CI)", f"Difference {names[0]} − {names[1]} (95 % CI)"]
        + ["p"],
        out,
        num=range(1, 7),
        note=_method_note(rows) + " p: jackknife t-test of the paired difference (two-sided).",
    )


def _leave_one_out(item: Mapping[str, Any]) -> Table:
    rows = item.get("table") or []
    col = humanize(str((item.get("parameters") or {}).get("group_column", "group")))
    several = len(_methods(rows)) > 1
    out = []
    for r in rows:
        g = str(r.get("group"))
        line = [
            str(r.get("target")),
            "all groups pooled" if g == "pooled" else g,
            cell(r.get("n"), "n"),
            cell(r.get("n_positive"), "n"),
            _auc(r),
        ]
        out.append(line + ([str(r.get("ci_method") or "")] if several else []))
    return table(
        f"AUROC in each {col.lower()} left out of training (decoder trained on the others) and "
        "pooled over the left-out groups",
        ["Target", f"Left-out {col.lower()}", "Patients", "Positives", "AUROC (95 % CI)"]
        + (["Interval method"] if several else []),
        out,
        num=range(2, 5),
        note="" if several else _method_note(rows),
    )


def analyses_view(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One block per decoder analysis: ``kind, title, table, parameters`` (a line of text)."""
    blocks = []
    for item in (results.get("analyses") or {}).get("analyses") or []:
        kind = str(item.get("kind"))
        p = item.get("parameters") or {}
        title = str(item.get("title") or humanize(kind))
        if kind == "learning_curve":
            t = _learning_curve(item)
        elif kind == "generalist_vs_specialist":
            ct = p.get("cancer_type")
            title = f"{title}: {ct} patients"
            t = _paired(
                item,
                "model",
                ("generalist", "specialist"),
                f"Generalist (trained on every cancer type) vs specialist (trained on {ct} only), "
                f"both scored on the same held-out {ct} patients",
            )
        elif kind == "representation_comparison":
            names = [str(n) for n in (p.get("names") or ["a", "b"])][:2]
            title = f"{title}: {names[0]} vs {names[1]}"
            t = _paired(
                item,
                "representation",
                names,
                f"The same decoders, folds and patients on the {names[0]} and the {names[1]} "
                "representation",
            )
        elif kind == "leave_one_group_out":
            col = str(p.get("group_column", "group")).replace("_", " ")
            title = f"Transfer: each {col} left out of training in turn"
            t = _leave_one_out(item)
        else:
            t = records_table(item.get("table") or [], humanize(kind))
        shown = {
            k: v
            for k, v in p.items()
            if k not in ("cancer_type", "names", "group_column", "fractions") and v is not None
        }
        params = "; ".join(f"{humanize(k).lower()} {cell(v, k)}" for k, v in shown.items())
        blocks.append({"kind": kind, "title": title, "table": t, "parameters": params})
    return blocks


def effect_curve_view(results: Mapping[str, Any], score: str) -> dict[str, Any] | None:
    """The treatment HR at score percentiles (spline model), the interaction tests, the STEPP
    windows and the exploratory-cut-off statement."""
    curve = (results.get("survival") or {}).get("effect_curve")
    if not isinstance(curve, Mapping):
        return None
    exp, ctl = curve.get("experimental"), curve.get("control")
    spline, st = curve.get("spline") or {}, curve.get("stepp") or {}
    tests = []
    at_q = None
    if spline:
        t = next(iter(spline.get("test") or []), {})
        knots = ", ".join(f"{fmt.pct(k.get('quantile'))}" for k in spline.get("knots") or [])
        tests.append(
            f"spline interaction model: likelihood-ratio {fmt.p_text(t.get('p_value'))} "
            f"(χ² {fmt.est(t.get('statistic'))}, {cell(t.get('df'), 'df')} df; natural cubic "
            f"spline with knots at the {knots} percentiles of the score)"
        )
        at_q = table(
            f"Treatment HR ({exp} vs {ctl}) at percentiles of the {score}, from the Cox model "
            "with an arm × spline(score) interaction (pointwise 95 % CI, delta method)",
            ["Percentile of the score", "Score", "HR (95 % CI)"],
            [
                [
                    fmt.pct(r.get("quantile")),
                    fmt.est(r.get("score"), 3),
                    fmt.est_ci(r.get("hr"), r.get("hr_low"), r.get("hr_high"), ref=1.0),
                ]
                for r in spline.get("at_quantiles") or []
            ],
            num=(0, 1, 2),
        )
    windows = None
    if st:
        t = next(iter(st.get("test") or []), {})
        tests.append(
            f"STEPP: permutation {fmt.p_text(t.get('p_value'))} ({cell(t.get('n_permutations'))} "
            f"permutations of the score, supremum over windows of |log HR(window) − log HR(all)| "
            f"= {fmt.est(t.get('statistic'))}; windows of about {st.get('r2')} patients, "
            f"consecutive windows sharing about {st.get('r1')})"
        )
        windows = table(
            f"STEPP windows: treatment HR ({exp} vs {ctl}) of the patients in each range of the "
            "score (arm-only Cox fit, 95 % CI)",
            ["Window", "Scores", "Median score", "Patients", "Events", "HR (95 % CI)", "p"],
            [
                [
                    str(r.get("window")),
                    f"{fmt.est(r.get('score_low'), 3)} to {fmt.est(r.get('score_high'), 3)}",
                    fmt.est(r.get("score_median"), 3),
                    cell(r.get("n"), "n"),
                    cell(r.get("events"), "events"),
                    fmt.est_ci(r.get("hr"), r.get("hr_low"), r.get("hr_high"), ref=1.0),
                    fmt.pval(r.get("p_value")),
                ]
                for r in st.get("windows") or []
            ],
            num=range(0, 7),
        )
    overall = st.get("overall") or {}
    line = f"Does the treatment effect change along the continuous {score}? " + "; ".join(tests)
    if overall:
        line += (
            f". All {overall.get('n')} patients: HR "
            f"{fmt.est_ci(overall.get('hr'), overall.get('hr_low'), overall.get('hr_high'), ref=1.0)}"
        )
    return {
        "line": line + ".",
        "at_quantiles": at_q,
        "windows": windows,
        "caution": str(curve.get("exploratory_cutoff") or ""),
        "notes": [n for n in curve.get("notes") or [] if n != curve.get("exploratory_cutoff")],
    }


def analyses_alt_texts(results: Mapping[str, Any], score: str) -> dict[str, str]:
    """Text alternatives (with the numbers shown) of the analyses and effect-curve figures."""
    out = {}
    for item in (results.get("analyses") or {}).get("analyses") or []:
        kind, rows = str(item.get("kind")), item.get("table") or []
        label = {"learning_curve": "fraction", "leave_one_group_out": "group"}.get(kind)
        label = label or ("model" if kind == "generalist_vs_specialist" else "representation")
        pts = [
            f"{r.get('target')} {fmt.pct(r.get(label)) if label == 'fraction' else r.get(label)}"
            f" AUROC {fmt.est(r.get('auroc'))}"
            for r in rows
            if r.get(label) != "difference"
        ]
        out[f"analyses_{kind}"] = f"{item.get('title')}: " + "; ".join(pts) + "."
    curve = (results.get("survival") or {}).get("effect_curve")
    if isinstance(curve, Mapping):
        parts = []
        sp = curve.get("spline") or {}
        if sp:
            q = sp.get("at_quantiles") or []
            parts.append(
                "spline curve: "
                + "; ".join(
                    f"HR {fmt.est(r.get('hr'))} at the {fmt.pct(r.get('quantile'))} percentile"
                    for r in q
                )
            )
        st = curve.get("stepp") or {}
        if st:
            w = st.get("windows") or []
            parts.append(
                f"{len(w)} STEPP windows from HR {fmt.est(w[0].get('hr'))} (lowest scores) to "
                f"{fmt.est(w[-1].get('hr'))} (highest)"
                if w
                else "no STEPP windows"
            )
        out["survival_effect_curve"] = (
            f"Treatment hazard ratio along the {score}: " + "; ".join(parts) + "."
        )
    return out
