"""Reviewable reports: one self-contained HTML file, ``results.json`` and out-of-fold scores.

:func:`build_report` gathers whatever analyses were run (cohort, decoders, survival
stratification, trial design, expression QC, representations) into a :class:`Report`;
:meth:`Report.write` writes ``report.html`` (figures embedded, no scripts, a
Content-Security-Policy that forbids loading anything), ``results.json`` (every number the HTML
shows; validated by ``data_schemas/results.schema.json``; byte-identical for the same inputs and
seed) and ``oof_scores.csv``.

The page opens with a summary of findings read off the results with statistical guard-rails
(:func:`summarize`: which targets are decodable, whether the score is prognostic and predictive,
what an enriched trial would need, and the cautions that apply), then the analysis plan, then
one section per analysis with tables for a person (rounded numbers; the exact ones are in
``results.json``). It prints to a clean PDF (one section per page).

The decoder analyses (learning curve, generalist vs specialist, leave one group out,
representation comparison; ``analyses=``) get their own section, the treatment HR along the
continuous score (``effect_curve=``) is shown in the survival section, and the summary's
sentences are stored in ``results.json`` under ``findings``.

Modules: ``results_model`` (leaf: the results model every other module reads), ``sections``
(section builders over computed results; the report computes no analysis, e.g. the
representation maps come from :func:`tario_clinical.embedding_maps.representation_maps`),
``findings`` (the summary's rules), ``views`` and ``analyses_view`` (display tables),
``render`` (HTML; the table of contents lists every section on the page), ``checklist``
(REMARK / TRIPOD+AI map), ``model`` (:func:`build_report` and :class:`Report`, which renders
and writes itself).

Examples
--------
>>> import tario_clinical as tc
>>> trial = tc.simulate_trial(60, seed=0, n_genes=20, compute_attainable=False)
>>> rep = tc.report.build_report(cohort=trial.cohort())
>>> [s["id"] for s in rep.results["sections"] if s["present"]]
['cohort', 'flow', 'provenance', 'checklist']
"""

from __future__ import annotations

from .findings import summarize
from .model import (
    RESULTS_SCHEMA_VERSION,
    Report,
    build_report,
    canonical_json,
    consort_flow,
    jsonable,
    table_one,
    validate_results,
)
from .render import CSP, render_html

__all__ = [
    "build_report",
    "Report",
    "table_one",
    "consort_flow",
    "validate_results",
    "canonical_json",
    "jsonable",
    "render_html",
    "summarize",
    "CSP",
    "RESULTS_SCHEMA_VERSION",
]
