"""Discrimination, calibration and decision metrics for binary and multiclass decoders.

One module per job: :mod:`.auroc` (AUROC, DeLong / bootstrap intervals, paired DeLong test,
AUPRC, permutation p-value, multiclass one-vs-rest), :mod:`.calibration` (Brier score, logistic
recalibration, net benefit), :mod:`.triage` (Wilson interval, rule-out threshold and its
summary), :mod:`.multiple_testing` (Benjamini–Hochberg q-values), :mod:`.results` (result types)
and :mod:`.inputs` (the label / score checks).

Everything here takes plain arrays (``y_true`` 0/1, ``y_score`` real) and returns floats, small
frozen dataclasses or tidy DataFrames. AUROC confidence intervals use the fast O(n log n) DeLong
variance (Sun & Xu, 2014) or a seeded stratified bootstrap; correlated AUROCs are compared with the
paired DeLong test (DeLong, DeLong & Clarke-Pearson, 1988).

Examples
--------
>>> import numpy as np
>>> from tario_clinical.metrics import auroc_ci
>>> y = np.array([0, 0, 1, 1, 0, 1])
>>> s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
>>> r = auroc_ci(y, s)
>>> round(r.auroc, 4)
0.8889
"""

from __future__ import annotations

from .auroc import auprc, auroc, auroc_ci, delong_test, multiclass_auroc, permutation_pvalue
from .calibration import brier, calibration, net_benefit
from .multiple_testing import bh_qvalues
from .results import AUROCResult, CalibrationResult, DeLongTestResult
from .triage import triage_summary, triage_threshold, wilson_ci

__all__ = [
    "AUROCResult",
    "DeLongTestResult",
    "CalibrationResult",
    "auroc",
    "auroc_ci",
    "delong_test",
    "auprc",
    "brier",
    "calibration",
    "net_benefit",
    "permutation_pvalue",
    "multiclass_auroc",
    "triage_threshold",
    "triage_summary",
    "wilson_ci",
    "bh_qvalues",
]
