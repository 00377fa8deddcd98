"""Reporting checklists: where the report answers REMARK and TRIPOD+AI items.

Items are short paraphrases of the topics of the REMARK guideline for tumour-marker prognostic
studies (McShane et al., 2005) and the TRIPOD+AI statement for clinical prediction models using
machine learning (Collins et al., BMJ 2024); they are a map into this report, not the guidelines'
wording, and authors should check their manuscript against the published checklists. Items the
report cannot answer (objectives, funding, interpretation) are marked "author to report".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .results_model import SECTIONS

__all__ = ["checklist", "REMARK_ITEMS", "TRIPOD_AI_ITEMS"]

Pred = Callable[[Mapping[str, Any]], bool]


def _has(path: str) -> Pred:
    """True when ``results[a][b]...`` exists and is not empty."""

    def check(results: Mapping[str, Any]) -> bool:
        node: Any = results
        for key in path.split("."):
            if not isinstance(node, Mapping) or node.get(key) in (None, [], {}):
                return False
            node = node[key]
        return True

    return check


# (topic, paraphrase, sections that answer it, optional extra condition on the results)
Item = tuple[str, str, tuple[str, ...], Pred | None]

REMARK_ITEMS: tuple[Item, ...] = (
    ("objectives", "marker examined, study objectives and prespecified hypotheses", (), None),
    ("patients", "source of patients, inclusion and exclusion criteria", ("cohort", "flow"), None),
    ("treatment", "treatments the patients received", ("cohort",), None),
    ("specimens", "type of specimen and how it was prepared and stored", ("provenance",), None),
    (
        "assay",
        "how the marker was measured: method, model, version and quality control",
        ("provenance", "expression_qc"),
        None,
    ),
    ("design", "how cases were selected; follow-up period and its completeness", ("flow",), None),
    ("endpoints", "definition of every clinical endpoint", ("survival",), None),
    ("variables", "all candidate variables examined", ("cohort", "decode"), None),
    ("sample size", "rationale for the sample size and power", ("design",), None),
    (
        "statistics",
        "statistical methods: model building, missing data, how cut-offs were chosen",
        ("decode", "survival"),
        None,
    ),
    ("flow", "patients included and excluded at each stage, with reasons", ("flow",), None),
    ("characteristics", "demographic and standard prognostic variables", ("cohort",), None),
    (
        "marker relations",
        "relation of the marker to standard prognostic variables",
        ("embedding",),
        None,
    ),
    (
        "univariable",
        "marker-outcome association with effect size, confidence interval and p-value",
        ("survival",),
        None,
    ),
    (
        "multivariable",
        "association adjusted for standard prognostic variables",
        ("survival",),
        _has("survival.details.cox_adjusted"),
    ),
    (
        "interaction",
        "marker by treatment interaction and subgroup effects",
        ("survival",),
        _has("survival.details.interaction"),
    ),
    ("validation", "internal validation of any model or cut-off", ("decode", "survival"), None),
    ("discussion", "interpretation, limitations and implications", (), None),
)

TRIPOD_AI_ITEMS: tuple[Item, ...] = (
    ("title and objectives", "purpose of the model and the target population", (), None),
    ("data sources", "sources of data, study dates and setting", ("cohort", "provenance"), None),
    ("participants", "eligibility criteria and participant characteristics", ("cohort",), None),
    (
        "data preparation",
        "pre-processing of inputs (slides, tiling, feature extraction) and its parameters",
        ("provenance",),
        None,
    ),
    ("outcome", "definition of the predicted outcome(s)", ("decode",), None),
    (
        "predictors",
        "predictors used: the representation, the model that produced it and its version",
        ("provenance", "embedding"),
        None,
    ),
    ("sample size", "how the study size was arrived at", ("design",), None),
    ("missing data", "how missing data were handled and how many", ("flow",), None),
    (
        "model and tuning",
        "model type, hyper-parameter tuning and internal validation (cross-validation)",
        ("decode",),
        None,
    ),
    (
        "class imbalance",
        "prevalence of each outcome and any method for class imbalance",
        ("decode",),
        None,
    ),
    (
        "performance",
        "discrimination and calibration with confidence intervals",
        ("decode",),
        None,
    ),
    (
        "heterogeneity",
        "performance or effect across subgroups (e.g. cancer type)",
        ("survival",),
        _has("survival.details.interaction"),
    ),
    ("participant flow", "flow of participants and numbers with outcome", ("flow",), None),
    ("clinical utility", "use of the model in trial design or decision-making", ("design",), None),
    (
        "open science",
        "code, software versions, seeds and configuration to reproduce the analysis",
        ("provenance",),
        None,
    ),
    ("fairness", "methods to assess and address unfairness between groups", (), None),
    ("limitations", "interpretation, limitations and implications", (), None),
)

_GUIDELINES = {
    "remark": ("REMARK (tumour-marker prognostic studies)", REMARK_ITEMS),
    "tripod_ai": ("TRIPOD+AI (prediction models using machine learning)", TRIPOD_AI_ITEMS),
}


def checklist(
    present: Mapping[str, bool], results: Mapping[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """Checklist rows for the sections present in a report.

    Parameters
    ----------
    present : mapping
        Section id -> whether the report has it.
    results : mapping
        The report results (for items needing a specific analysis, e.g. an adjusted model).

    Returns
    -------
    dict
        ``{"remark": [...], "tripod_ai": [...]}``; each row ``guideline, item, topic, text,
        section, section_title, status`` with status ``answered`` (every listed section
        present), ``partly`` (some), ``not in report`` or ``author to report``.
    """
    titles = dict(SECTIONS)
    out: dict[str, list[dict[str, Any]]] = {}
    for key, (name, items) in _GUIDELINES.items():
        rows = []
        for i, (topic, text, sections, cond) in enumerate(items, start=1):
            have = [s for s in sections if present.get(s)]
            if not sections:
                status = "author to report"
            elif cond is not None and not cond(results):
                status = "partly" if have else "not in report"
            elif len(have) == len(sections):
                status = "answered"
            elif have:
                status = "partly"
            else:
                status = "not in report"
            first = (have or list(sections) or [None])[0]
            rows.append(
                {
                    "guideline": name,
                    "item": f"{key}-{i}",
                    "topic": topic,
                    "text": text,
                    "section": first if first and present.get(first) else None,
                    "section_title": titles.get(first, "") if first else "",
                    "sections": list(sections),
                    "status": status,
                }
            )
        out[key] = rows
    return out
