"""Survival analysis: building blocks, predictive-biomarker interaction and stratification.

Building blocks take a DataFrame and column names and return tidy DataFrames (or small frozen
results holding them):

- :func:`km` — Kaplan–Meier per group (median by the first time S(t) <= 0.5, CI as R ``survfit``),
- :func:`logrank` — k-group and trend log-rank tests (R ``survdiff`` chi-square),
- :func:`cox` / :func:`cox_fit` — Cox model with Efron ties and strata; :meth:`CoxModel.ph_test`
  gives the proportional-hazards test of R ``survival`` >= 3 ``cox.zph`` (score test of
  ``x * g(t)``, one row per term) or the older Grambsch–Therneau approximation,
- :func:`rmst` — restricted mean survival time per group and differences with CIs,
- :func:`concordance` — Harrell's and Uno's C with CIs,
- :func:`time_dependent_auc` — cumulative/dynamic AUC with IPCW at chosen horizons.

On top of them, :func:`treatment_interaction` (arm x biomarker Cox model, subgroup HRs, forest
plot) and :func:`stratify` (risk groups from decoder scores at cross-fitted cut-offs, KM plot
with number-at-risk table, all numbers JSON-ready).

Where each lives (one module, one job): :mod:`.nonparametric` (KM, log-rank, RMST),
:mod:`.cox_model` (Cox fits, PH test), :mod:`.discrimination` (C, time-dependent AUC),
:mod:`.interaction`, :mod:`.cutpoint` (optimal cut-point), :mod:`.stratification`,
:mod:`.plots`; :mod:`.kernels` holds the array-level numerical kernels (public, for callers
that loop over many small arrays, e.g. :mod:`tario_clinical.design`), :mod:`.validation` and
:mod:`.formatting` the input checks and result formatting the modules share.

Conventions: ``event`` is 1 for an event and 0 for censoring; a higher score means higher
risk for concordance and AUC; every function raises :class:`~tario_clinical.errors.SchemaError`
on missing or invalid values instead of dropping rows (``stratify`` excludes such patients
explicitly and lists them).
"""

from __future__ import annotations

from .cox_model import CoxModel, cox, cox_fit
from .cox_model import Transform as Transform  # option type, for annotations
from .cutpoint import maxstat_cutpoint
from .discrimination import concordance, time_dependent_auc
from .effect_curve import treatment_effect_curve
from .interaction import InteractionResult, treatment_interaction
from .nonparametric import ConfType as ConfType  # option type, for annotations
from .nonparametric import KaplanMeier, km, logrank, logrank_table, rmst
from .stratification import CutoffKind as CutoffKind  # option type, for annotations
from .stratification import StratificationResult, stratify

__all__ = [
    "KaplanMeier",
    "CoxModel",
    "InteractionResult",
    "StratificationResult",
    "km",
    "logrank",
    "cox",
    "cox_fit",
    "rmst",
    "concordance",
    "time_dependent_auc",
    "treatment_interaction",
    "treatment_effect_curve",
    "stratify",
    "maxstat_cutpoint",
    "logrank_table",
]
