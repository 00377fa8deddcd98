"""Where the null bias of the continuous decoder's pooled Pearson r comes from (diagnostic).

Under the null (y independent of X) the pooled OOF Pearson r of ``decode_continuous`` averages
about -0.05 (``table.md``: cont_null_n150_d50). Two candidate sources, separated here on 150
seeded null replicates (n = 100, D = 30, 5 outer folds, 4 inner folds, 8 ridge penalties):

* the fold intercepts: each fold's prediction is centred at its training mean, which moves
  against the test fold's own mean; removing it (``centred``: prediction minus the fold's
  training mean of y; ``score``: the OOF table's fold-standardised score) leaves a linear
  smoother whose cross-product with y has expectation 0 for a *fixed* penalty;
* the inner-CV choice of the penalty, which depends on the training labels.

Usage: ``python benchmarks/validation/endpoints/null_r_bias.py`` (about 3 s).
Result (2026-12-01): raw -0.063 +- 0.008, centred -0.059 +- 0.009, score -0.059 +- 0.009, score
with the penalty fixed at the path's middle value -0.004 +- 0.010 (mean +- MC SE): the bias is
the adaptive penalty choice's, not the intercepts'.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tario_clinical.decode.endpoint_inference import cross_validate_plan, cv_design
from tario_clinical.decode.regression import (
    _RegressionProblem,
    continuous_metrics,
    default_alphas,
)


def _scores(y: np.ndarray, pred: np.ndarray, fold: np.ndarray, scale: bool) -> np.ndarray:
    out = np.empty_like(pred)
    for k in np.unique(fold):
        te, tr = fold == k, fold != k
        sd = y[tr].std() if scale else 1.0
        out[te] = (pred[te] - y[tr].mean()) / sd
    return out


def main(reps: int = 150, n: int = 100, d: int = 30) -> None:
    rng = np.random.default_rng(11)
    res: dict[str, list[float]] = {"raw": [], "centred": [], "score": [], "score_fixed": []}
    for rep in range(reps):
        X = rng.normal(size=(n, d))
        y = rng.normal(size=n)
        path = default_alphas(8, n, d)
        for key, alphas in (("cv", path), ("fixed", path[4:5])):
            pb = _RegressionProblem(X=X, alphas=alphas)
            design = cv_design(
                pb.strata(y),
                pd.DataFrame(index=np.arange(n)),
                cv=None,
                n_splits=5,
                n_repeats=1,
                n_inner_splits=4,
                group_by=None,
                seed=rep,
            )
            run = cross_validate_plan(pb, y, design.plan)
            pred, fold = run.pred[0, :, 0], run.fold[0]
            if key == "cv":
                res["raw"].append(continuous_metrics(y, pred)[1])
                res["centred"].append(np.corrcoef(y, _scores(y, pred, fold, False))[0, 1])
                res["score"].append(np.corrcoef(y, _scores(y, pred, fold, True))[0, 1])
            else:
                res["score_fixed"].append(np.corrcoef(y, _scores(y, pred, fold, True))[0, 1])
    for k, v in res.items():
        a = np.array(v)
        print(f"{k:12s} mean r {a.mean():+.4f} +- {a.std(ddof=1) / np.sqrt(a.size):.4f}")


if __name__ == "__main__":
    main()
