"""Intervals and p-values from the resampling replicates of :mod:`tario_clinical.decode.inference`.

Everything here is arithmetic on replicate statistics already computed (no model is fitted):
the delete-a-group jackknife (on the AUROC scale, the default, or the logit scale) and its
second-order correction, the bootstrap, the permutation p-values and the Wald test, and the rule
that lets the exact permutation test decide whether an interval contains chance level.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations

import numpy as np
from scipy import stats

__all__ = [
    "logit",
    "expit",
    "logit_interval",
    "jackknife_interval",
    "jackknife_interval_logit",
    "chance_pvalue",
    "chance_coherent",
    "jackknife_items",
    "jackknife2_weights",
    "jackknife2_variance",
    "jackknife2_interval",
    "bootstrap_interval",
    "resampling_interval",
    "jackknife_wald_pvalue",
    "permutation_pvalue",
    "wald_pvalue",
]


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def jackknife_interval(
    T: np.ndarray, reps: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, se) from delete-a-group jackknife replicates on the statistic's own scale.

    ``T -/+ t_{G-1, (1 + level) / 2} * se`` with the delete-a-group jackknife standard error
    ``se = sqrt((G - 1) / G * sum_g (T_(g) - mean)^2)``, clipped to [0, 1] (the coverage of an
    estimand inside [0, 1] is unchanged by the clip).
    """
    G = reps.shape[0]
    var = (G - 1) / G * np.sum((reps - reps.mean(axis=0)) ** 2, axis=0)
    se = np.sqrt(var)
    q = stats.t.ppf(0.5 + level / 2.0, G - 1)
    return np.clip(T - q * se, 0.0, 1.0), np.clip(T + q * se, 0.0, 1.0), se


def chance_pvalue(T: np.ndarray, null: np.ndarray, chance: float = 0.5) -> np.ndarray:
    """Two-sided permutation p-value of the distance from chance:
    ``(1 + #{|T_b - chance| >= |T - chance|}) / (1 + B)`` per target.

    Exact for the same null as :func:`permutation_pvalue` (observed and permuted data sets are
    exchangeable, and any statistic of them may be used); with ``B = 19`` it rejects at 0.05
    exactly when ``T`` is farther from chance than every permuted statistic.
    """
    B = null.shape[0]
    eps = 1e-12
    d = np.abs(np.asarray(T, dtype=np.float64) - chance)
    return (1 + np.sum(np.abs(null - chance) >= d - eps, axis=0)) / (1 + B)


def chance_coherent(
    T: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    p_chance: np.ndarray,
    level: float,
    chance: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Let the exact test decide whether the interval contains chance level.

    Where the two-sided permutation test (:func:`chance_pvalue`) rejects at ``1 - level`` the
    interval is cut at chance on the far side from ``T`` (it then *excludes* chance: the bound
    equals ``chance`` as an open bound); where it does not reject, the interval is widened to
    reach chance. Returns ``(low, high, excludes_chance)``. Coverage of any estimand on the
    same side of chance as ``T`` is unchanged by the cut; at chance level itself coverage is
    ``1 - `` the exact test's size. NaN ``p_chance`` (no permutations) leaves the interval as it is.
    """
    T = np.asarray(T, dtype=np.float64)
    low = np.array(low, dtype=np.float64)
    high = np.array(high, dtype=np.float64)
    p = np.asarray(p_chance, dtype=np.float64)
    alpha = 1.0 - level
    known = np.isfinite(p)
    reject = known & (p <= alpha + 1e-12)
    up = reject & (T > chance)
    down = reject & (T < chance)
    low = np.where(up, np.maximum(low, chance), low)
    high = np.where(down, np.minimum(high, chance), high)
    keep = known & ~reject
    low = np.where(keep, np.minimum(low, chance), low)
    high = np.where(keep, np.maximum(high, chance), high)
    excludes = np.where(known, reject, (low > chance) | (high < chance))
    return low, high, excludes.astype(bool)


def jackknife_interval_logit(
    T: np.ndarray, reps: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, se) from delete-a-group jackknife replicates (logit scale, t quantile).

    ``se`` is on the AUROC scale (delta method), for display; the interval is formed on the
    logit scale.
    """
    G = reps.shape[0]
    lr = logit(reps)
    var = (G - 1) / G * np.sum((lr - lr.mean(axis=0)) ** 2, axis=0)
    se_l = np.sqrt(var)
    q = stats.t.ppf(0.5 + level / 2.0, G - 1)
    return logit_interval(T, se_l, q)


def jackknife_items(G: int, *, pairs: bool = False) -> list[int | tuple[int, int]]:
    """Groups deleted by the jackknife re-runs, in the row order the intervals here expect:
    each group ``0..G-1``, then (``pairs``) each pair in ``itertools.combinations`` order."""
    items: list[int | tuple[int, int]] = list(range(int(G)))
    if pairs:
        items += list(combinations(range(int(G)), 2))
    return items


@lru_cache(maxsize=16)
def jackknife2_weights(G: int) -> tuple[float, float, float]:
    """``(lambda_1, lambda_2, b_1)`` of the second-order-corrected grouped jackknife.

    Model: the statistic on a set ``R`` of the ``G`` patient groups is
    ``mu + mean_{j in R} a_j + mean_{j<l in R} b_jl + ...`` (Hoeffding decomposition at the
    group level, first- and second-order terms, U-statistic scaling), with ``Var a = s1`` and
    ``Var b = s2``; ``Var T = s1 / G + s2 / C(G, 2)``. The delete-a-group jackknife ``v1``
    has expectation ``s1 / G + b_1 s2`` with ``b_1 = 4 / (G (G - 2))`` -- the interaction
    part counted ``2 (G - 1) / (G - 2)`` times (2.25 at G = 10; Efron & Stein 1981). The mean
    squared double difference ``I_gh = T - T_(g) - T_(h) + T_(gh)`` over all pairs isolates the
    interactions; ``v = lambda_1 v1 + lambda_2 mean(I^2)`` is unbiased for ``Var T`` under the
    model. The expectations are computed exactly by linear algebra for the given ``G``.
    """
    pairs = list(combinations(range(G), 2))
    P = len(pairs)
    pidx = {p: i for i, p in enumerate(pairs)}
    subsets = [tuple(range(G))]
    subsets += [tuple(j for j in range(G) if j != g) for g in range(G)]
    subsets += [tuple(j for j in range(G) if j not in p) for p in pairs]
    Ma = np.zeros((len(subsets), G))
    Mb = np.zeros((len(subsets), P))
    for s, R in enumerate(subsets):
        Ma[s, list(R)] = 1.0 / len(R)
        inside = [pidx[p] for p in combinations(R, 2)]
        Mb[s, inside] = 1.0 / len(inside)
    L1 = np.zeros((G, len(subsets)))
    L1[:, 1 : G + 1] = np.eye(G) - 1.0 / G
    L2 = np.zeros((P, len(subsets)))
    for i, (g, h) in enumerate(pairs):
        L2[i, 0] += 1.0
        L2[i, 1 + g] -= 1.0
        L2[i, 1 + h] -= 1.0
        L2[i, 1 + G + i] += 1.0
    c1, c2 = (G - 1) / G, 1.0 / P
    E = np.array(
        [
            [c1 * np.sum((L1 @ Ma) ** 2), c2 * np.sum((L2 @ Ma) ** 2)],
            [c1 * np.sum((L1 @ Mb) ** 2), c2 * np.sum((L2 @ Mb) ** 2)],
        ]
    )
    lam = np.linalg.solve(E, np.array([1.0 / G, 1.0 / P]))
    return float(lam[0]), float(lam[1]), float(E[1, 0])


def jackknife2_variance(T: np.ndarray, reps: np.ndarray, G: int) -> np.ndarray:
    """Second-order-corrected grouped-jackknife variance (on the scale of ``T`` and ``reps``).

    ``reps``: the ``G`` delete-one-group rows, then the ``C(G, 2)`` delete-pair rows (the
    output of ``jackknife_replicates(..., pairs=True)``). The estimate is kept inside
    ``[v1 / (b_1 C(G, 2)), v1]``: between "all of the jackknife's variance is interaction" and
    the uncorrected jackknife.
    """
    lam1, lam2, b1 = jackknife2_weights(int(G))
    one = reps[:G]
    two = reps[G:]
    pairs = list(combinations(range(G), 2))
    gi = np.array([p[0] for p in pairs])
    hi = np.array([p[1] for p in pairs])
    v1 = (G - 1) / G * np.sum((one - one.mean(axis=0)) ** 2, axis=0)
    inter = T[None, :] - one[gi] - one[hi] + two
    v = lam1 * v1 + lam2 * np.mean(inter**2, axis=0)
    floor = v1 / (b1 * len(pairs))
    return np.clip(v, floor, v1)


def jackknife2_interval(
    T: np.ndarray, reps: np.ndarray, level: float, G: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, se) of the second-order-corrected grouped jackknife (logit scale, t_{G-1})."""
    var = jackknife2_variance(logit(T), logit(reps), G)
    q = stats.t.ppf(0.5 + level / 2.0, G - 1)
    return logit_interval(T, np.sqrt(var), q)


def logit_interval(
    T: np.ndarray, se_l: np.ndarray, q: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``expit(logit T -/+ q se_l)``; a zero-variance estimate (e.g. 1.0 in every re-run) keeps
    a zero-width interval at ``T`` itself."""
    lt = logit(T)
    zero = se_l <= 1e-9
    low = np.where(zero, T, expit(lt - q * se_l))
    high = np.where(zero, T, expit(lt + q * se_l))
    return low, high, se_l * T * (1 - T)


def bootstrap_interval(
    T: np.ndarray, reps: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, se) from bootstrap replicates of the whole procedure (logit scale, z quantile)."""
    lr = logit(reps)
    se_l = np.nanstd(lr, axis=0, ddof=1)
    return logit_interval(T, se_l, stats.norm.ppf(0.5 + level / 2.0))


def permutation_pvalue(T: np.ndarray, null: np.ndarray, alternative: str) -> np.ndarray:
    """``(1 + #{T_b >= T}) / (1 + B)`` per target (``"greater"``), or the two-sided version."""
    B = null.shape[0]
    eps = 1e-12  # AUROC ties of the statistic are exact rationals; absorb float noise
    ge = (1 + np.sum(null >= T - eps, axis=0)) / (1 + B)
    if alternative == "greater":
        return ge
    le = (1 + np.sum(null <= T + eps, axis=0)) / (1 + B)
    return np.minimum(1.0, 2 * np.minimum(ge, le))


def wald_pvalue(T: np.ndarray, se: np.ndarray, alternative: str) -> np.ndarray:
    """Wald p-value of AUROC = 0.5 (``se`` on the AUROC scale)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (T - 0.5) / se
    if alternative == "greater":
        return stats.norm.sf(z)
    return 2 * stats.norm.sf(np.abs(z))


def resampling_interval(
    ci_method: str,
    T: np.ndarray,
    reps: dict[str, np.ndarray],
    level: float,
    *,
    n_jackknife: int,
    n_bootstrap: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``(low, high, se, description)`` of the binary decoder's ``ci_method`` from its
    replicates (``reps["jackknife"]``: the delete-one rows first, then pairs; ``reps["bootstrap"]``).

    ``"delong"`` returns NaN bounds (the caller has the DeLong interval of the OOF scores).
    """
    G = int(n_jackknife)
    if ci_method == "jackknife":
        low, high, se = jackknife_interval(T, reps["jackknife"][:G], level)
        return low, high, se, f"grouped jackknife of the whole nested CV (G={G}, AUROC scale, t)"
    if ci_method == "jackknife_logit":
        low, high, se = jackknife_interval_logit(T, reps["jackknife"][:G], level)
        return low, high, se, f"grouped jackknife of the whole nested CV (G={G}, logit scale, t)"
    if ci_method == "jackknife2":
        low, high, se = jackknife2_interval(T, reps["jackknife"], level, G)
        desc = (
            "second-order-corrected grouped jackknife of the whole nested CV "
            f"(G={G}, groups and pairs deleted, logit scale, t)"
        )
        return low, high, se, desc
    if ci_method == "bootstrap":
        low, high, se = bootstrap_interval(T, reps["bootstrap"], level)
        desc = f"patient bootstrap of the whole nested CV (B={n_bootstrap}, logit scale)"
        return low, high, se, desc
    nan = np.full(np.shape(T), np.nan)
    desc = "DeLong on out-of-fold scores (treats them as independent: anti-conservative)"
    return nan, nan, nan, desc


def jackknife_wald_pvalue(T: np.ndarray, reps: np.ndarray, alternative: str) -> np.ndarray:
    """Wald p-value of AUROC = 0.5 with the delete-a-group jackknife SE (AUROC scale,
    ``t_{G-1}``); ``reps`` are the ``G`` delete-one statistics."""
    G = reps.shape[0]
    se = np.sqrt((G - 1) / G * np.sum((reps - reps.mean(axis=0)) ** 2, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        tz = (T - 0.5) / se
    if alternative == "greater":
        return stats.t.sf(tz, G - 1)
    return 2 * stats.t.sf(np.abs(tz), G - 1)
