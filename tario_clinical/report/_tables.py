"""Display tables: human names for results keys, cells rounded for reading.

A display table is ``{"caption", "columns", "rows", "num", "note"}``: ``rows`` hold the text of
each cell, ``num`` the indices of the numeric columns (right-aligned). :func:`records_table`
turns any list of result records into one; the section views (:mod:`.views`) build the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import _format as fmt

__all__ = [
    "MAX_TABLE_ROWS",
    "Table",
    "cell",
    "flatten",
    "humanize",
    "is_p",
    "is_time",
    "kv_table",
    "records_table",
    "table",
]

Table = dict[str, Any]

#: records tables longer than this show their first rows only (all rows are in results.json)
MAX_TABLE_ROWS = 60

_WORDS = {
    "n": "Patients",
    "n_patients": "Patients",
    "n_positive": "Positives",
    "n_excluded": "Excluded",
    "n_tested": "Patients tested",
    "n_pairs": "Comparable pairs",
    "n_train": "Training patients",
    "n_test": "Test patients",
    "n_screened": "Screened",
    "n_slides": "Slides",
    "events": "Events",
    "p_value": "p",
    "q_value": "q",
    "p_permutation": "p (label permutation)",
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "brier": "Brier score",
    "calibration_intercept": "Calibration intercept",
    "calibration_slope": "Calibration slope",
    "se": "Standard error",
    "C_median": "Median regularisation C over folds",
    "C": "Regularisation C",
    "hr": "HR",
    "ci_method": "Interval method",
    "p_method": "p-value method",
    "target": "Target",
    "reason": "Reason",
    "note": "Note",
    "fold": "Fold",
    "repeat": "Repeat",
    "cutoff": "Cut-off (score)",
    "quantile": "Quantile",
    "term": "Term",
    "model": "Model",
    "statistic": "Statistic",
    "df": "df",
    "test": "Test",
    "design": "Design",
    "power": "Power",
    "duration": "Duration",
    "event_probability": "Event probability",
    "gene_a": "Gene A",
    "gene_b": "Gene B",
    "both": "Mutated in both",
    "a_only": "A only",
    "b_only": "B only",
    "neither": "Neither",
    "odds_ratio": "Odds ratio",
    "odds_ratio_corrected": "Odds ratio (Haldane)",
    "log2_odds_ratio": "log2 odds ratio",
    "relation": "Relation",
    "cancer_type": "Cancer type",
    "best_response": "Best response (RECIST)",
    "ecog": "ECOG performance status",
    "sample_id": "Sample",
    "gene": "Gene",
    "rank": "Rank",
    "k": "Top k genes",
    "scenario": "Scenario",
    "hr_positive": "HR in biomarker-positive",
    "hr_negative": "HR in biomarker-negative",
    "prevalence": "Biomarker-positive fraction",
    "median_control": "Control median",
    "accrual": "Accrual",
    "follow_up": "Further follow-up",
    "allocation": "Fraction randomised to experimental",
    "alpha": "Two-sided α",
    "assay_success": "Assay success rate",
}

_UPPER = {"os": "OS", "pfs": "PFS", "hr": "HR", "ci": "CI", "sha256": "SHA-256", "id": "id"}


def humanize(key: str) -> str:
    """A column or parameter name in words: ``n_positive`` -> ``Positives``, ``median_control``
    -> ``Control median``; unknown snake_case names become sentence case."""
    k = str(key)
    if k in _WORDS:
        return _WORDS[k]
    words = [_UPPER.get(w.lower(), w) for w in k.replace(".", " ").split("_") if w]
    text = " ".join(words)
    return text[:1].upper() + text[1:] if text else k


def is_p(key: str) -> bool:
    k = key.lower()
    return k in ("p", "q") or k.startswith(("p_", "q_")) or k.endswith(("_p", "p_value", "_q"))


def is_time(key: str) -> bool:
    k = key.lower()
    return any(w in k for w in ("median", "time", "tau", "rmst", "duration", "accrual", "follow"))


def cell(value: Any, key: str = "") -> str:
    """Display text of one results value, rounded by what its key says it is."""
    if value is None:
        return fmt.DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return fmt.DASH
        if is_p(key):
            return fmt.pval(value)
        if is_time(key):
            return fmt.time(value)
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        if abs(value) >= 100:
            return f"{value:.0f}"
        return fmt.est(value, 3 if abs(value) < 1 else 2)
    if isinstance(value, list):
        return ", ".join(cell(v, key) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{humanize(k)}: {cell(v, k)}" for k, v in value.items())
    return str(value)


def table(
    caption: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    num: Iterable[int] = (),
    note: str = "",
    wide: bool = False,
) -> Table:
    rows = [list(r) for r in rows]
    return {
        "caption": caption,
        "columns": list(columns),
        "rows": rows,
        "num": sorted(set(num)),
        "note": note,
        "wide": wide,
    }


_TRIPLES = (
    ("hr", "hr_low", "hr_high"),
    ("estimate", "low", "high"),
    ("auroc", "low", "high"),
    ("median", "median_low", "median_high"),
    ("bulk_r", "bulk_r_low", "bulk_r_high"),
)


def records_table(
    records: Sequence[Mapping[str, Any]],
    caption: str = "",
    *,
    drop: Iterable[str] = (),
    labels: Mapping[str, str] | None = None,
    max_rows: int = MAX_TABLE_ROWS,
) -> Table | None:
    """Any list of records as a display table: human column names, an estimate and its
    interval in one cell (``hr, hr_low, hr_high`` -> ``HR (95 % CI)``), rounded numbers."""
    recs = [r for r in records or [] if isinstance(r, Mapping)]
    if not recs:
        return None
    labels = dict(labels or {})
    skip = set(drop)
    cols: list[str] = []
    for r in recs:
        for k in r:
            if k not in cols and k not in skip:
                cols.append(k)
    groups: list[tuple[str, ...]] = []
    used: set[str] = set()
    for c in cols:
        if c in used:
            continue
        triple = next((t for t in _TRIPLES if t[0] == c and all(x in cols for x in t)), None)
        if triple:
            groups.append(triple)
            used.update(triple)
        else:
            groups.append((c,))
            used.add(c)
    heads, num = [], []
    for i, g in enumerate(groups):
        head = labels.get(g[0], humanize(g[0]))
        heads.append(f"{head} (95 % CI)" if len(g) == 3 else head)
        if any(
            isinstance(r.get(g[0]), int | float) and not isinstance(r.get(g[0]), bool) for r in recs
        ):
            num.append(i)
    rows = []
    for r in recs[:max_rows]:
        row = []
        for g in groups:
            if len(g) == 3:
                digits = 1 if is_time(g[0]) else 2
                ref = 1.0 if g[0] == "hr" else None
                row.append(fmt.est_ci(r.get(g[0]), r.get(g[1]), r.get(g[2]), digits, ref=ref))
            else:
                row.append(cell(r.get(g[0]), g[0]))
        rows.append(row)
    if len(recs) > max_rows:
        caption += f" (first {max_rows} of {len(recs)} rows; all rows in results.json)"
    return table(caption, heads, rows, num=num)


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dict -> ``[("a.b", scalar)]`` for key/value tables (lists joined by commas)."""
    rows: list[tuple[str, Any]] = []
    if isinstance(obj, Mapping):
        for k in sorted(obj, key=str):
            rows += flatten(obj[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list) and any(isinstance(v, Mapping | list) for v in obj):
        for i, v in enumerate(obj):
            rows += flatten(v, f"{prefix}[{i}]")
    else:
        if isinstance(obj, list):
            obj = ", ".join("" if v is None else str(v) for v in obj)
        rows.append((prefix, obj))
    return rows


def kv_table(caption: str, pairs: Iterable[tuple[str, Any]]) -> Table | None:
    rows = [[humanize(k.split(".")[-1]) if "." not in k else k, cell(v, k)] for k, v in pairs]
    return table(caption, ["Item", "Value"], rows) if rows else None
