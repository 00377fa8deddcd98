"""Render a report (:class:`~.results_model.ReportData`) as one self-contained HTML file.

The page opens with the summary of findings (:mod:`.findings`) and the analysis plan, then one
section per analysis, each made of display tables (:mod:`.views`): human titles and column
names, units, numbers rounded for reading (the exact values are in ``results.json``).
Provenance and long tables are collapsed in ``<details>``. The table of contents is read off
the rendered page (:func:`table_of_contents`), so every section on it is listed. A print stylesheet puts each section
on a new page and keeps tables within the page width.

jinja2 with autoescaping renders every string of the results (patient ids, column names,
cancer types, config values) as text. Figures are embedded as base64 PNG ``data:`` URIs with a
text alternative and a caption; the page has no script and a Content-Security-Policy that
forbids loading anything from elsewhere.
"""

from __future__ import annotations

import html
import math
import re
from functools import cache
from typing import TYPE_CHECKING, Any

from . import analyses_view, views
from ._figures import figure_to_data_uri
from .findings import ALPHA, CHANCE, MIN_CLASS, score_label, summarize
from .provenance_view import provenance_view
from .results_model import ReportData
from .validation_section import validation_html

if TYPE_CHECKING:  # pragma: no cover
    import jinja2

__all__ = ["CSP", "render_html", "figure_to_data_uri", "format_number", "table_of_contents"]

#: the page may show inline styles and data: images and load nothing else
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


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
    return env


#: where the table of contents goes in the rendered page
_TOC_MARK = "<!--tc:table-of-contents-->"
#: a section of the page: its id, its other attributes and its heading
_SECTION = re.compile(r'<section id="([^"]+)"([^>]*)>\s*<h2[^>]*>(.*?)</h2>', re.S)


def table_of_contents(page: str) -> str:
    """The page's table of contents: a link to every ``<section id=...>`` with its ``<h2>``,
    in page order ("(not in this report)" after the absent ones).

    It is read off the rendered page, so a section another module renders (the external
    validation, the endpoint decoders, ...) is listed as soon as it is on the page.

    Parameters
    ----------
    page : str
        Rendered HTML (section headings already escaped).

    Returns
    -------
    str
        ``<nav><ol>...</ol></nav>``.
    """
    items = []
    for sid, attrs, title in _SECTION.findall(page):
        absent = " (not in this report)" if "absent-section" in attrs else ""
        text = re.sub(r"<[^>]*>", "", title).strip()  # the heading's text, markup dropped
        items.append(f'<li><a href="#{html.escape(sid)}">{text}</a>{absent}</li>')
    return "<nav><ol>\n" + "\n".join(items) + "\n</ol></nav>"


def render_html(report: ReportData, *, fragment: bool = False) -> str:
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
    results = report.results
    sections = {s["id"]: s for s in results["sections"]}
    summary = summarize(results)
    score = score_label(results)
    v: dict[str, Any] = {
        "table1": views.table1_view(results),
        "flow": views.flow_view(results),
        "plan": views.plan_view(results, score),
        "provenance": provenance_view(results, report.html_only),
        "checklist": views.checklist_view(results),
    }
    if results.get("decode"):
        v["decode"] = views.decode_view(results, summary)
    if results.get("analyses"):
        v["analyses"] = analyses_view.analyses_view(results)
    if results.get("embedding"):
        v["embedding"] = views.embedding_view(results)
    if results.get("survival"):
        v["survival"] = views.survival_view(results, score)
        v["effect_curve"] = analyses_view.effect_curve_view(results, score)
    if results.get("design"):
        v["design"] = views.design_view(results)
    if results.get("expression_qc"):
        v["expression_qc"] = views.expression_qc_view(results)
    if results.get("validation"):
        v["validation"] = validation_html(results)
    if results.get("endpoints"):  # the endpoint decoders (pipeline.endpoints)
        from .endpoints_section import endpoints_html

        v["endpoints"] = endpoints_html(results)
    alts = views.alt_texts(results, report.captions, score)
    extra = analyses_view.analyses_alt_texts(results, score)
    alts.update({k: t for k, t in extra.items() if k in report.captions})
    template = _environment().get_template("report.html.j2")
    page = template.render(
        r=results,
        csp=CSP,
        sections=sections,
        summary=summary,
        v=v,
        score=score,
        figures=report.figures,
        captions=report.captions,
        alts=alts,
        rules={"alpha": ALPHA, "chance": CHANCE, "min_class": MIN_CLASS},
        created_utc=report.created_utc,
        html_only=report.html_only,
        fragment=fragment,
        toc_mark=_TOC_MARK,
    )
    return page.replace(_TOC_MARK, table_of_contents(page), 1)
