"""The results model of a report (leaf module: imports nothing from the package).

A report is its ``results`` dictionary (every number the page shows: the content of
``results.json``), its figures as PNG ``data:`` URIs with captions, the decoders' out-of-fold
scores and two facts kept out of ``results.json`` for determinism (the creation time and the
upstream wall-clock times). :class:`ReportData` holds exactly that; the builders
(:mod:`.model`, :mod:`.sections`) fill it and the renderer (:mod:`.render`) reads it, so neither
needs the other's module and the report package has no import circle:

``results_model`` ← ``sections``, ``checklist``, ``render`` ← ``model`` (:class:`Report`, the
public face, adds ``to_html`` and ``write``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RESULTS_SCHEMA_VERSION", "SECTIONS", "ReportData"]

#: version of the results.json layout (``schema_version`` key)
RESULTS_SCHEMA_VERSION = 1

#: the sections a report may hold, in page order: ``(id, title)``
SECTIONS: tuple[tuple[str, str], ...] = (
    ("cohort", "Patients (Table 1)"),
    ("flow", "Patient flow"),
    ("decode", "What the slides predict (decoders)"),
    ("analyses", "How the decoders scale and transfer"),
    ("embedding", "Representation maps"),
    ("survival", "Survival by score group"),
    ("design", "Trial design"),
    ("expression_qc", "Predicted vs measured expression"),
    ("provenance", "Provenance"),
    ("checklist", "Reporting checklist"),
)


@dataclass(frozen=True, eq=False)
class ReportData:
    """A built report's content: the results dictionary, its figures and out-of-fold scores.

    Attributes
    ----------
    results : dict
        Every number the report shows (the content of ``results.json``).
    figures : dict
        Figure id -> ``data:image/png;base64,...`` URI.
    captions : dict
        Figure id -> caption.
    oof : DataFrame or None
        Out-of-fold decoder scores (``oof_scores.csv``; holds patient ids).
    created_utc : str
        Creation time, shown in the HTML footer only (never in ``results.json``).
    html_only : dict
        Non-numeric facts shown in the HTML but kept out of ``results.json`` for determinism
        (times recorded by upstream provenance).
    """

    results: dict[str, Any]
    figures: dict[str, str] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    oof: Any = None
    created_utc: str = ""
    html_only: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the results (what ``results.json`` holds)."""
        return copy.deepcopy(self.results)

    def __repr__(self) -> str:
        present = [s["id"] for s in self.results.get("sections", []) if s["present"]]
        return f"{type(self).__name__}({self.results.get('title', '')!r}, sections={present})"
