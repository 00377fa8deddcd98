"""Exact (quadrature) truths for the simulation design, plus large-sample MC checks.

Design: S ~ N(0,1); T | S ~ Exp(rate h(S) = H0*exp(BETA*S)); censoring C = min(Exp(lam_c), A)
(A = inf for no administrative censoring), independent of (T, S).
"""

import numpy as np
from scipy import optimize, stats

H0, BETA = 0.1, 0.7

# fine grid for the two-dimensional normal integrals
_X = np.linspace(-8.5, 8.5, 3401)
_DX = _X[1] - _X[0]
_W = stats.norm.pdf(_X) * _DX
_W /= _W.sum()
_H = H0 * np.exp(BETA * _X)


def _pair_integral(f):
    """E[1(a>b) f(a,b)] and E[f(a,b)] with a, b iid N(0,1); diagonal counts 1/2 (trapezoid)."""
    num = den = 0.0
    for k in range(0, _X.size, 400):
        a = slice(k, k + 400)
        F = f(_H[a][:, None], _H[None, :]) * _W[a][:, None] * _W[None, :]
        ia = np.arange(_X.size)[a][:, None]
        jb = np.arange(_X.size)[None, :]
        ind = np.where(ia > jb, 1.0, np.where(ia == jb, 0.5, 0.0))
        num += (F * ind).sum()
        den += F.sum()
    return num, den


def c_trunc(tau=np.inf, lam2=0.0, A=np.inf):
    """P(S_i > S_j | pair comparable) where the pair (i event at t, T_j > t) is weighted by
    exp(-lam2 t) 1(t < min(tau, A)).  lam2 = 0: uncensored C truncated at tau (Uno's estimand);
    lam2 = 2*lam_c, A: the probability limit of Harrell's C under the censoring C = min(Exp(lam_c), A)."""
    end = min(tau, A)

    def f(ha, hb):
        r = ha + hb + lam2
        return ha / r * (1.0 - np.exp(-r * end)) if np.isfinite(end) else ha / r

    num, den = _pair_integral(f)
    return num / den


def auc_cd(t):
    """Cumulative/dynamic AUC: P(S_i > S_j | T_i <= t < T_j)."""
    num, den = _pair_integral(lambda ha, hb: (1 - np.exp(-ha * t)) * np.exp(-hb * t))
    return num / den


def censor_frac(lam_c, A=np.inf):
    """P(censored) = 1 - E[h/(h+lam_c) (1 - exp(-(h+lam_c) A))]."""
    r = _H + lam_c
    pe = _H / r * ((1 - np.exp(-r * A)) if np.isfinite(A) else 1.0)
    return 1.0 - float((pe * _W).sum())


def lam_for(frac, A=np.inf):
    lo = 0.0 if censor_frac(0.0, A) < frac else None
    if lo is None:
        raise ValueError("admin censoring alone exceeds target")
    return optimize.brentq(lambda lam: censor_frac(lam, A) - frac, 0.0, 10.0)


# ----------------------------------------------------------------- large-sample MC checks
def simulate(rng, n, lam_c, A=np.inf):
    s = rng.standard_normal(n)
    t = rng.exponential(1.0 / (H0 * np.exp(BETA * s)))
    c = rng.exponential(1.0 / lam_c, n) if lam_c > 0 else np.full(n, np.inf)
    c = np.minimum(c, A)
    x = np.minimum(t, c)
    e = t <= c
    return s, t, x, e


def mc_checks(
    rng, n=200_000, npairs=40_000_000, lam_c=0.05, A=15.0, tau=10.0, horizons=(4.0, 10.0)
):
    """Truths from one big sample of n: C by n*(n-1) pairs is too large, so use random pairs
    drawn from the n-sample; AUC(t) exactly as a Mann-Whitney statistic on the sample."""
    s, t, x, e = simulate(rng, n, lam_c, A)
    out = {}
    for h in horizons:
        case, ctrl = t <= h, t > h
        out[f"auc({h:g})"] = stats.mannwhitneyu(s[case], s[ctrl]).statistic / (
            case.sum() * ctrl.sum()
        )
    acc = {k: [0.0, 0.0] for k in ("C_inf", f"C_tau{tau:g}", f"C_A{A:g}", "harrell_lim")}
    for _ in range(npairs // 4_000_000):
        i = rng.integers(0, n, 4_000_000)
        j = rng.integers(0, n, 4_000_000)
        conc = (s[i] > s[j]).astype(float)
        base = t[i] < t[j]
        for key, m in (
            ("C_inf", base),
            (f"C_tau{tau:g}", base & (t[i] < tau)),
            (f"C_A{A:g}", base & (t[i] < A)),
            ("harrell_lim", e[i] & (x[j] > x[i])),
        ):
            acc[key][0] += conc[m].sum()
            acc[key][1] += m.sum()
    for k, (a, b) in acc.items():
        out[k] = a / b
    return out


if __name__ == "__main__":
    rng = np.random.default_rng(20240501)
    lam_c, A, tau = 0.05, 15.0, 10.0
    exact = {
        "C_inf": c_trunc(),
        f"C_tau{tau:g}": c_trunc(tau),
        f"C_A{A:g}": c_trunc(A=A),
        "harrell_lim": c_trunc(lam2=2 * lam_c, A=A),
        "auc(4)": auc_cd(4.0),
        "auc(10)": auc_cd(10.0),
    }
    mc = mc_checks(rng, lam_c=lam_c, A=A, tau=tau)
    for k in exact:
        print(f"{k:12s} quadrature {exact[k]:.5f}   n=200k MC {mc[k]:.5f}")
    for A_ in (15.0, np.inf):
        print(
            "A",
            A_,
            "admin-only censoring",
            round(censor_frac(0.0, A_), 3),
            "lam for 30%",
            lam_for(0.3, A_),
            "lam for 60%",
            lam_for(0.6, A_),
        )
