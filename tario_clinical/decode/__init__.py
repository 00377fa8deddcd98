"""Linear decoders with honest, patient-level nested cross-validation.

The package is itself callable: ``tario_clinical.decode(representations, cohort, targets=[...])``
is :func:`tario_clinical.decode.cross_validation.decode`, and the building blocks stay reachable as
attributes (``tario_clinical.decode.LinearDecoder``, ``.PatientStratifiedGroupKFold`` ...).

Every endpoint a trial has: binary targets (:func:`decode`), categorical and continuous targets
(:func:`decode_categorical`, :func:`decode_continuous`, or :func:`decode` with the kind inferred
or given in ``target_types``), time to event (:func:`decode_survival`, penalised Cox) and
treatment benefit in a two-arm trial (:func:`decode_benefit`, modified-covariate method,
cross-fitted). Intervals of cross-validated metrics re-run the whole nested CV
(:mod:`.inference`, :mod:`.endpoint_inference`).

Examples
--------
>>> import numpy as np, pandas as pd
>>> import tario_clinical
>>> rng = np.random.default_rng(0)
>>> X = pd.DataFrame(rng.normal(size=(80, 30)), index=[f"P{i}" for i in range(80)])
>>> clin = pd.DataFrame({"patient_id": X.index, "EGFR": (X[0] + rng.normal(size=80) > 0).astype(int)})
>>> res = tario_clinical.decode(X, clin, targets=["EGFR"], n_repeats=1, seed=0)
>>> bool(res.summary().loc[0, "auroc"] > 0.6)
True
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .analyses import (
    generalist_vs_specialist,
    learning_curve,
    leave_one_group_out,
    representation_comparison,
)
from .benefit import c_for_benefit, decode_benefit
from .cross_validation import decode, default_Cs
from .endpoint_data import infer_target_types
from .endpoint_result import EndpointResult, EndpointResults, LinearModel
from .estimator import LinearDecoder
from .multiclass import decode_categorical
from .regression import decode_continuous
from .result import DecodeResult
from .splitters import LeaveOneGroupOut, PatientStratifiedGroupKFold
from .survival_decoder import decode_survival

__all__ = [
    "decode",
    "decode_categorical",
    "decode_continuous",
    "decode_survival",
    "decode_benefit",
    "infer_target_types",
    "c_for_benefit",
    "default_Cs",
    "DecodeResult",
    "EndpointResult",
    "EndpointResults",
    "LinearModel",
    "LinearDecoder",
    "PatientStratifiedGroupKFold",
    "LeaveOneGroupOut",
    "learning_curve",
    "generalist_vs_specialist",
    "leave_one_group_out",
    "representation_comparison",
]


class _CallableModule(types.ModuleType):
    """Module type whose instances forward calls to :func:`decode`."""

    def __call__(self, *args: Any, **kwargs: Any) -> DecodeResult:
        return decode(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
