"""tario_clinical — from H&E-derived expression representations to trial-ready evidence.

Encode whole-slide images with a frozen model, decode genotypes and response with honest
patient-level cross-validation, stratify survival, and report.

``import tario_clinical`` is light: heavy modules (pandas-based analyses, torch encoders) load
on first use of the attribute that needs them.

Module map
----------
Data flows one way, left to right: slides → ``encode`` → representations (AnnData) →
``decode`` / ``survival`` / ``expression_qc`` → ``design`` → ``report``; ``pipeline`` runs a
study and ``cli`` is its command line. Each module has one job and imports only the modules
upstream of it.

Shared helpers (leaves, imported by everything else)
    ``errors`` exception types (all derive from :class:`TarioClinicalError`; bad input is exit
    code 2) · ``_checks`` the one option / confidence-level checker and the deprecation of
    renamed or positional parameters · ``_json`` the one JSON-safe converter · ``tables`` the
    one table reader (CSV / TSV / Parquet / Excel, one error type :class:`~.errors.TableError`)
    · ``provenance`` provenance records, SHA-256 hashes, atomic writes · ``_lock`` one writer
    per output folder and a run's files landing as one set · ``progress``, ``palette``.
Data
    ``schemas`` data contracts (``data_schemas/*.json``) · ``cohort`` :class:`Cohort`: clinical
    table, slide manifest, labels, exclusion log · ``simulate/`` synthetic trials, slides and
    paired spatial transcriptomics with known truth.
Slides and encoding
    ``slides/`` WSI readers (OpenSlide, tiffslide, DICOM, images), tissue mask, tiling grid,
    slide manifest · ``encode/`` model cards and presets, loaders, the DataLoader engine and the
    Ray runner over shared run-folder outputs, pooling to patients.
Analyses (return DataFrames, result objects and matplotlib figures; never print, never change
their inputs)
    ``metrics/`` AUROC with DeLong / bootstrap intervals, calibration, decision curves,
    triage, Benjamini–Hochberg q-values · ``decode/`` linear decoders (scikit-learn
    estimators) for binary, categorical, continuous, survival and benefit targets, patient-level
    splitters, the fast CV engine, inference, the decoding analyses · ``survival/`` KM,
    log-rank, RMST, Cox, concordance, treatment interaction and effect curve, stratification,
    plots · ``design/`` events, sample sizes, design comparison, power · ``expression_qc/``
    predicted vs measured spatial expression (grid, binning, Moran's I, comparison, plots) ·
    ``embedding_maps`` PCA / t-SNE / UMAP maps, genotype co-occurrence · ``biomarker/`` locked
    biomarkers and their external validation.
Study and output
    ``config`` the study YAML (pydantic) · ``pipeline/`` validates every input first, then runs
    the study and computes everything the report shows · ``report/`` results model, sections,
    HTML render, checklist (shows computed results, computes nothing) · ``cli/`` the
    ``tario-clinical`` commands.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AnalysisError,
    CohortError,
    ConfigError,
    EncoderError,
    OutputError,
    SchemaError,
    SlideError,
    TarioClinicalError,
)

# attribute -> (module, attribute in module or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "load_cohort": ("tario_clinical.cohort", "load_cohort"),
    "Cohort": ("tario_clinical.cohort", "Cohort"),
    "simulate_trial": ("tario_clinical.simulate", "simulate_trial"),
    "SimulatedTrial": ("tario_clinical.simulate", "SimulatedTrial"),
    "validate_table": ("tario_clinical.schemas", "validate_table"),
    "schemas": ("tario_clinical.schemas", None),
    "cohort": ("tario_clinical.cohort", None),
    "simulate": ("tario_clinical.simulate", None),
    "metrics": ("tario_clinical.metrics", None),
    "decode": ("tario_clinical.decode", None),
    "decode_survival": ("tario_clinical.decode", "decode_survival"),
    "decode_benefit": ("tario_clinical.decode", "decode_benefit"),
    "decode_categorical": ("tario_clinical.decode", "decode_categorical"),
    "decode_continuous": ("tario_clinical.decode", "decode_continuous"),
    "survival": ("tario_clinical.survival", None),
    "design": ("tario_clinical.design", None),
    "expression_qc": ("tario_clinical.expression_qc", None),
    "embedding_maps": ("tario_clinical.embedding_maps", None),
    "slides": ("tario_clinical.slides", None),
    "encode": ("tario_clinical.encode", None),
    "report": ("tario_clinical.report", None),
    "provenance": ("tario_clinical.provenance", None),
    "pipeline": ("tario_clinical.pipeline", None),
    "config": ("tario_clinical.config", None),
    "load_config": ("tario_clinical.config", "load_config"),
    "encode_slides": ("tario_clinical.encode", "encode_slides"),
    "load_encoder": ("tario_clinical.encode", "load_encoder"),
    "ExpressionHead": ("tario_clinical.encode", "ExpressionHead"),
    "open_slide": ("tario_clinical.slides", "open_slide"),
    "biomarker": ("tario_clinical.biomarker", None),
    "lock_biomarker": ("tario_clinical.biomarker", "lock_biomarker"),
    "validate_biomarker": ("tario_clinical.biomarker", "validate_biomarker"),
}

__all__ = [
    "__version__",
    "TarioClinicalError",
    "SchemaError",
    "CohortError",
    "SlideError",
    "EncoderError",
    "ConfigError",
    "AnalysisError",
    "OutputError",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'tario_clinical' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from . import (  # noqa: F401
        biomarker,
        cohort,
        decode,
        design,
        encode,
        expression_qc,
        metrics,
        schemas,
        simulate,
        slides,
        survival,
    )
    from .biomarker import lock_biomarker, validate_biomarker  # noqa: F401
    from .cohort import Cohort, load_cohort  # noqa: F401
    from .simulate import SimulatedTrial, simulate_trial  # noqa: F401
