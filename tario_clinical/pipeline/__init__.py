"""The whole study run: cohort -> (encode) -> decode -> endpoint decoders -> stratify -> design
-> report.

:func:`prepare` loads and validates *everything* (configuration, clinical table, slide manifest,
representations, targets and their kinds, covariates) before any output is written, so bad
input never leaves partial files behind. :func:`run_study` then runs the analyses and writes the
report.

Modules: :mod:`.inputs` (:func:`prepare`, :class:`PreparedStudy`, representation alignment),
:mod:`.endpoints` (the categorical / continuous / survival / benefit decoders of the ``decode:``
block: checks, run, ``results["endpoints"]``), :mod:`.decoder_analyses` (the ``analyses:``
block, the treatment-effect curve), :mod:`.design_inputs` (trial-design numbers),
:mod:`.validation` (the ``validation:`` block), :mod:`.spatial` (spatial samples of
``expression_qc:``) and :mod:`.run` (:func:`run_study`).
"""

from __future__ import annotations

from .decoder_analyses import decode_analyses, effect_curve
from .design_inputs import design_inputs_from_stratification, design_table
from .inputs import PreparedStudy, align_representations, prepare
from .run import run_study
from .spatial import iter_spatial_samples, read_spatial_samples
from .validation import ValidationInputs

__all__ = [
    "PreparedStudy",
    "ValidationInputs",
    "prepare",
    "run_study",
    "align_representations",
    "design_inputs_from_stratification",
    "read_spatial_samples",
    "iter_spatial_samples",
]

# the names these helpers had when the pipeline was one module (kept for existing callers)
_decode_analyses = decode_analyses
_design_table = design_table
_effect_curve = effect_curve
