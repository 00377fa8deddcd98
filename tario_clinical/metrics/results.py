"""Result types of the metrics: AUROC with its interval, paired DeLong test, recalibration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["AUROCResult", "DeLongTestResult", "CalibrationResult"]


@dataclass(frozen=True)
class AUROCResult:
    """AUROC with a confidence interval.

    Attributes
    ----------
    auroc, low, high : float
        Point estimate and interval bounds (clipped to [0, 1]).
    level : float
        Confidence level.
    method : str
        ``"delong"`` or ``"bootstrap"``.
    se : float
        Standard error (DeLong) or bootstrap standard deviation.
    n, n_positive : int
        Number of patients and of positives.
    """

    auroc: float
    low: float
    high: float
    level: float
    method: str
    se: float
    n: int
    n_positive: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict of every field."""
        return {
            k: (float(v) if isinstance(v, float | np.floating) else v)
            for k, v in asdict(self).items()
        }

    def _repr_html_(self) -> str:
        return (
            f"<b>AUROC</b> {self.auroc:.3f} ({self.level:.0%} CI {self.low:.3f}–{self.high:.3f}, "
            f"{self.method}; n={self.n}, positives={self.n_positive})"
        )


@dataclass(frozen=True)
class DeLongTestResult:
    """Paired DeLong comparison of two correlated AUROCs (``a`` minus ``b``)."""

    auroc_a: float
    auroc_b: float
    estimate: float
    low: float
    high: float
    statistic: float
    p_value: float
    level: float

    def to_dict(self) -> dict[str, float]:
        """Return a JSON-safe dict of every field."""
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CalibrationResult:
    """Logistic recalibration: ``logit P(y=1) = intercept + slope * logit(p)``.

    ``intercept`` is calibration-in-the-large (fitted with the slope fixed at 1, i.e. with
    ``logit(p)`` as offset); ``slope`` comes from the two-parameter fit. Perfect calibration is
    intercept 0 and slope 1.
    """

    intercept: float
    slope: float
    n: int

    def to_dict(self) -> dict[str, float]:
        """Return a JSON-safe dict of every field."""
        return {"intercept": float(self.intercept), "slope": float(self.slope), "n": int(self.n)}
