"""Render a :class:`~tario_clinical.report.model.Report` as one self-contained HTML file.

jinja2 with autoescaping renders every string of the results (patient ids, column names,
cancer types, config values) as text. Figures are embedded as base64 PNG ``data:`` URIs; the page
has no script and a Content-Security-Policy that forbids loading anything from elsewhere.
"""

from __future__ import annotations

import base64
import io
import math
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import jinja2

    from .model import Report

__all__ = ["CSP", "render_html", "figure_to_data_uri", "format_number"]

#: the page may show inline styles and data: images and load nothing else
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

#: records tables longer than this show their first rows only (all rows are in results.json)
MAX_TABLE_ROWS = 60


def figure_to_data_uri(fig: Any, *, dpi: int = 96) -> str:
    """Encode a matplotlib Figure as a ``data:image/png;base64`` URI and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # pragma: no cover - a Figure not managed by pyplot
        pass
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _is_p(key: str) -> bool:
    k = key.lower()
    return k in ("p", "q") or k.startswith(("p_", "q_")) or k.endswith(("_p", "p_value", "_q"))


def format_number(value: Any, key: str = "") -> str:
    """Display text of a results value: integers as is, floats to 3 significant digits
    (p- and q-values to 2), ``None`` as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if _is_p(key):
            return "<0.0001" if 0 <= value < 1e-4 else f"{value:.2g}"
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        return f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(format_number(v, key) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_number(v, k)}" for k, v in value.items())
    return str(value)


def _records_columns(records: list[dict[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for r in records:
        for k in r:
            cols.setdefault(k, None)
    return list(cols)


def _is_records(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(r, dict) for r in value)
        and all(not isinstance(v, dict | list) for r in value for v in r.values())
    )


def _table1_view(results: dict[str, Any]) -> dict[str, Any]:
    """Table 1 records pivoted to rows (variable, level) x groups with display text."""
    cohort = results["cohort"]
    groups = cohort["groups"]
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for r in cohort["table1"]:
        key = (r["variable"], r["level"])
        if r["level"] == "median [IQR]":
            text = (
                "–"
                if r["median"] is None
                else f"{format_number(r['median'])} [{format_number(r['q1'])}–"
                f"{format_number(r['q3'])}]"
            )
        elif r["variable"] == "patients":
            text = str(r["n"])
        else:
            pct = r.get("percent")
            text = f"{r['n']} ({pct:.1f} %)" if isinstance(pct, int | float) else str(r["n"])
        rows.setdefault(key, {})[r["group"]] = text
    out = []
    last = None
    for (var, level), cells in rows.items():
        out.append(
            {
                "variable": var if var != last else "",
                "level": level,
                "cells": [cells.get(g, "") for g in groups],
            }
        )
        last = var
    return {"groups": groups, "rows": out}


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("tario_clinical.report", "templates"),
        autoescape=True,  # every string is escaped, whatever the file extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.tests["records"] = _is_records
    env.globals["records_columns"] = _records_columns
    env.globals["MAX_TABLE_ROWS"] = MAX_TABLE_ROWS
    env.globals["without"] = lambda d, keys: {k: v for k, v in d.items() if k not in keys}
    return env


def render_html(report: Report, *, fragment: bool = False) -> str:
    """The report as HTML text; ``fragment=True`` gives the body only (for notebooks).

    Parameters
    ----------
    report : Report
        Output of :func:`build_report`.
    fragment : bool, default False
        Return the body only instead of a whole HTML document.

    Returns
    -------
    str
    """
    from .model import _flatten

    results = report.results
    prov = results["provenance"]
    provenance_rows = {
        name: _flatten(prov.get(name))
        for name in ("report", "run", "representations", "cohort_sources", "config")
        if prov.get(name)
    }
    sections = {s["id"]: s for s in results["sections"]}
    template = _environment().get_template("report.html.j2")
    return template.render(
        r=results,
        csp=CSP,
        table1=_table1_view(results),
        sections=sections,
        figures=report.figures,
        captions=report.captions,
        provenance_rows=provenance_rows,
        created_utc=report.created_utc,
        html_only=report.html_only,
        fragment=fragment,
    )
