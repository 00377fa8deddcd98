"""Locked biomarkers: lock a decoder on one trial, validate it on another.

- :func:`lock_biomarker` freezes the final decoder of a :func:`tario_clinical.decode` run into a
  versioned, pickle-free artefact (:class:`LockedBiomarker`, JSON + optional ``.npz``) with its
  cut-offs, the representation provenance it requires, and the development record;
- :func:`validate_biomarker` applies it to another trial without refitting anything;
- :func:`shift_diagnostics` measures how far the validation representations are from the
  development ones, so a failed validation can be told apart from a site effect.
"""

from __future__ import annotations

from .artefact import ARTEFACT_FORMAT, ARTEFACT_VERSION, LockedBiomarker, load_locked_biomarker
from .identity import EncoderMismatchWarning, compare_representations, representation_identity
from .lock import lock_biomarker
from .result import BiomarkerSurvival, ValidationResult
from .shift import ShiftResult, shift_diagnostics
from .validate import validate_biomarker

__all__ = [
    "ARTEFACT_FORMAT",
    "ARTEFACT_VERSION",
    "LockedBiomarker",
    "EncoderMismatchWarning",
    "lock_biomarker",
    "load_locked_biomarker",
    "representation_identity",
    "compare_representations",
    "validate_biomarker",
    "ValidationResult",
    "BiomarkerSurvival",
    "shift_diagnostics",
    "ShiftResult",
]
