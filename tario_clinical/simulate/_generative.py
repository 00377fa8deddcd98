"""Generative core of the simulator: the shared biology, the population, one trial's draws.

Private module (imported by :mod:`tario_clinical.simulate`). The *biology* (programme loadings,
gene baselines and scales, genotype and cancer-type shifts) is what two trials simulated "from
the same biology" share; the *population* (cancer-type mix, genotype probabilities, arm
allocation, a site/scanner shift of the representation) is what may differ between them.
The first trial's draws are unchanged from the original single-trial simulator (same seed, same
bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logsumexp, ndtr

GENOTYPES = ("EGFR", "KRAS", "STK11", "PTEN")
CANCER_TYPES = ("LUAD", "LUSC", "COAD", "PAAD")
TYPE_P = np.array([0.50, 0.20, 0.20, 0.10])
HISTOLOGY = {
    "LUAD": (
        ("acinar adenocarcinoma", 0.45),
        ("papillary adenocarcinoma", 0.2),
        ("solid adenocarcinoma", 0.25),
        ("lepidic adenocarcinoma", 0.1),
    ),
    "LUSC": (("keratinising squamous", 0.6), ("non-keratinising squamous", 0.4)),
    "COAD": (("adenocarcinoma NOS", 0.85), ("mucinous adenocarcinoma", 0.15)),
    "PAAD": (("ductal adenocarcinoma", 1.0),),
}
P_EGFR = np.array([0.25, 0.05, 0.03, 0.02])
P_KRAS_WT = np.array([0.33, 0.08, 0.42, 0.85])
P_STK11 = (0.07, 0.32)  # KRAS wild-type, mutant
P_PTEN = 0.05
#: prognostic survival terms (log-HR in both arms; through the genotypes, i.e. programs P00-P02)
PROGNOSTIC_LOG_HR = {"STK11": 0.45, "KRAS": 0.15, "EGFR": -0.3}

# ---- planted quantities added after the original simulator (drawn from their own stream)
#: continuous target ``signature_score = 10 + sum_j a_j Z_j + SIGNATURE_NOISE * e``
SIGNATURE_COEF = {"P04": 0.6, "P07": 0.5, "P01": -0.4, "P03": 0.3}
SIGNATURE_INTERCEPT = 10.0
SIGNATURE_NOISE = 0.8
#: programs whose within-cancer-type variation sets the histological subtype
SUBTYPE_PROGRAMS = ("P05", "P06")
#: multinomial-logit coefficients of the subtype on (P05, P06) minus their cancer-type means,
#: per level of :data:`HISTOLOGY` (first level: reference); intercepts log(base probability)
SUBTYPE_COEF = {
    "LUAD": ((0.0, 0.0), (1.5, 0.0), (-1.0, 1.5), (0.0, -1.5)),
    "LUSC": ((0.0, 0.0), (1.5, -1.0)),
    "COAD": ((0.0, 0.0), (0.0, 1.5)),
    "PAAD": ((0.0, 0.0),),
}

FAMILIES = (
    "ZNF",
    "SLC",
    "KRT",
    "COL",
    "CD",
    "IL",
    "CCL",
    "CXCL",
    "TMEM",
    "FAM",
    "ADAM",
    "ABC",
    "ANK",
    "ARHGAP",
    "ATP",
    "CDH",
    "CYP",
    "DNAJ",
    "GPR",
    "HOX",
    "KCN",
    "KIF",
    "LRRC",
    "MAP",
    "MYO",
    "NDUF",
    "OR",
    "PCDH",
    "PLEKH",
    "PPP",
    "RAB",
    "RBM",
    "RNF",
    "SCN",
    "SEMA",
    "SH3",
    "SOX",
    "SPATA",
    "TBC1D",
    "TRIM",
    "UBE2",
    "USP",
    "WDR",
    "ZBTB",
    "CCDC",
    "C1QTNF",
    "FBXO",
    "GOLGA",
    "HSPA",
    "LAMA",
    "MMP",
    "NOTCH",
    "PRSS",
    "RPL",
    "RPS",
    "S100A",
    "SERPINA",
    "SLC25A",
    "TNFRSF",
    "TRPM",
    "WNT",
    "ZFP",
)
ANCHORS = (
    "EGFR",
    "KRAS",
    "STK11",
    "PTEN",
    "TP53",
    "KEAP1",
    "NKX2-1",
    "NAPSA",
    "SFTPC",
    "SFTPB",
    "KRT5",
    "KRT6A",
    "TP63",
    "SOX2",
    "CDX2",
    "VIL1",
    "LGR5",
    "MUC2",
    "KRT7",
    "KRT20",
    "MUC5AC",
    "PDX1",
    "CD3E",
    "CD8A",
    "GZMB",
    "PRF1",
    "CXCL9",
    "CXCL10",
    "IFNG",
    "CD274",
    "PDCD1",
    "LAG3",
    "FOXP3",
    "MS4A1",
    "CD68",
    "CD163",
    "COL1A1",
    "COL3A1",
    "ACTA2",
    "FAP",
    "PECAM1",
    "VWF",
    "MKI67",
    "TOP2A",
    "CCNB1",
    "EPCAM",
    "CDH1",
    "VIM",
    "DUSP6",
    "ETV4",
    "ETV5",
    "SPRY4",
    "AREG",
    "EREG",
    "ALDH1A1",
    "NQO1",
    "GPX2",
    "AKR1C1",
    "PIK3CA",
    "AKT1",
)


def gene_symbols(n: int) -> list[str]:
    """``n`` unique, real-looking gene symbols (anchor genes first, then family-numbered names).

    Examples
    --------
    >>> gene_symbols(3)
    ['EGFR', 'KRAS', 'STK11']
    """
    if n <= len(ANCHORS):
        return list(ANCHORS[:n])
    names = list(ANCHORS)
    seen = set(names)
    i = 1
    while len(names) < n:
        for fam in FAMILIES:
            name = f"{fam}{i}"
            if name not in seen:
                names.append(name)
                seen.add(name)
                if len(names) == n:
                    break
        i += 1
    return names


# --------------------------------------------------------------------------------- biology
@dataclass(frozen=True)
class Model:
    """Programme structure shared by every trial of one biology."""

    k: int
    genotype_shift: dict[str, float]
    type_shift: np.ndarray  # (4, k)
    stk11_immune: float
    loadings: np.ndarray  # (k, g)
    resp: dict[str, float]
    #: predictive survival term: log-HR experimental vs control changes by this much per unit of
    #: P04 (0: no planted treatment-effect heterogeneity; the overall arm effect stays)
    benefit_effect: float = -0.5


@dataclass(frozen=True)
class Biology:
    """Everything two trials "from the same biology" share (drawn from the model seed)."""

    model: Model
    base: np.ndarray  # (g,) gene baselines
    scale: np.ndarray  # (g,) gene scales
    seed: int
    params: dict[str, Any]

    def identity(self) -> dict[str, Any]:
        """JSON-safe description of the biology (what a representation's provenance records)."""
        return {"biology_seed": int(self.seed), **self.params}


def make_biology(
    rng_model: np.random.Generator,
    *,
    seed: int,
    n_genes: int,
    n_programs: int,
    snr: float,
    genotype_effect: float,
    benefit_effect: float = -0.5,
) -> Biology:
    """Draw loadings, shifts, baselines and scales (the original simulator's draw order).

    ``benefit_effect`` draws nothing (the planted predictive log-HR per unit of P04).
    """
    k, g = n_programs, n_genes
    assign = rng_model.permutation(g) % (2 * k)  # half of the genes are noise (assign >= k)
    w = np.zeros((k, g))
    for j in range(k):
        idx = np.flatnonzero(assign == j)
        if len(idx) == 0:
            idx = rng_model.choice(g, size=1)
        v = rng_model.standard_normal(len(idx))
        w[j, idx] = v / np.linalg.norm(v) * snr
    type_shift = np.zeros((len(CANCER_TYPES), k))
    type_shift[:, 5:8] = rng_model.normal(0, 1.2, size=(len(CANCER_TYPES), 3))
    shift = {"EGFR": 2.0, "KRAS": 1.5, "STK11": 1.3, "PTEN": 1.6}
    model = Model(
        k=k,
        genotype_shift={key: v * genotype_effect for key, v in shift.items()},
        type_shift=type_shift,
        stk11_immune=0.5,
        loadings=w,
        resp={"intercept": -0.6, "arm": 0.3, "z04": 0.3, "arm_x_z04": 0.7},
        benefit_effect=float(benefit_effect),
    )
    base = rng_model.normal(4.0, 1.5, size=g)
    scale = rng_model.gamma(4.0, 0.25, size=g)
    params = {
        "n_genes": int(g),
        "n_programs": int(k),
        "snr": float(snr),
        "genotype_effect": float(genotype_effect),
    }
    return Biology(model=model, base=base, scale=scale, seed=int(seed), params=params)


# ------------------------------------------------------------------------------ population
@dataclass(frozen=True)
class Probabilities:
    """Cancer-type mix and genotype probabilities of a population."""

    type_p: np.ndarray = field(default_factory=lambda: TYPE_P.copy())
    egfr: np.ndarray = field(default_factory=lambda: P_EGFR.copy())  # per cancer type
    kras_wt: np.ndarray = field(default_factory=lambda: P_KRAS_WT.copy())  # among EGFR wt
    stk11: tuple[float, float] = P_STK11  # KRAS wild-type, mutant
    pten: float = P_PTEN


@dataclass(frozen=True)
class Shift:
    """Site/scanner shift of the representation, in units of each gene's noise SD.

    ``x = base + scale * (offset + gain * (Z W + E) + noise * E2)``, ``E2 ~ N(0, 1)``.
    """

    offset: np.ndarray  # (g,)
    gain: np.ndarray  # (g,)
    noise: float
    spec: dict[str, float]

    def noise_var(self) -> np.ndarray:
        """Noise variance per gene after undoing offset and gain (1 without extra noise)."""
        return 1.0 + (self.noise / self.gain) ** 2


@dataclass(frozen=True)
class Population:
    """What may differ between two trials of one biology."""

    probs: Probabilities = field(default_factory=Probabilities)
    shift: Shift | None = None
    allocation: float = 0.5
    control_median_os: float = 12.0
    dropout_rate: float = 0.01
    n_sites: int = 8
    missing_genotype_rate: float = 0.03
    study_id: str = "SIM-001"
    id_prefix: str = "P"
    site_prefix: str = "S"


def make_shift(rng: np.random.Generator, n_genes: int, spec: dict[str, float]) -> Shift:
    """Draw one site/scanner realisation: per-gene offsets and log-gains, extra noise."""
    offset = float(spec["offset"]) * rng.standard_normal(n_genes)
    gain = np.exp(float(spec["gain"]) * rng.standard_normal(n_genes))
    return Shift(offset=offset, gain=gain, noise=float(spec["noise"]), spec=dict(spec))


def draw_discrete(
    rng: np.random.Generator, n: int, probs: Probabilities | None = None
) -> dict[str, np.ndarray]:
    """Cancer type and genotypes of ``n`` patients."""
    p = probs or Probabilities()
    ctype = rng.choice(len(CANCER_TYPES), size=n, p=p.type_p)
    egfr = rng.random(n) < p.egfr[ctype]
    kras = ~egfr & (rng.random(n) < p.kras_wt[ctype])
    stk11 = rng.random(n) < np.where(kras, p.stk11[1], p.stk11[0])
    pten = rng.random(n) < p.pten
    return {"type": ctype, "EGFR": egfr, "KRAS": kras, "STK11": stk11, "PTEN": pten}


def latent_mean(model: Model, d: dict[str, np.ndarray]) -> np.ndarray:
    """Mean of the latent programmes given cancer type and genotypes."""
    n = len(d["type"])
    mu = np.zeros((n, model.k))
    for j, g in enumerate(GENOTYPES):
        mu[:, j] += model.genotype_shift[g] * d[g]
    mu[:, 4] -= model.stk11_immune * d["STK11"]
    mu += model.type_shift[d["type"]]
    return mu


def configs(probs: Probabilities | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All 4 x 16 discrete configurations with their prior log-probabilities."""
    pr = probs or Probabilities()
    grid = (
        np.array(np.meshgrid(range(4), [0, 1], [0, 1], [0, 1], [0, 1], indexing="ij"))
        .reshape(5, -1)
        .T
    )
    t, e, k, s, p = (grid[:, i] for i in range(5))
    pe = np.where(e == 1, pr.egfr[t], 1 - pr.egfr[t])
    pk_mut = np.where(e == 1, 0.0, pr.kras_wt[t])
    pk = np.where(k == 1, pk_mut, 1 - pk_mut)
    ps_mut = np.where(k == 1, pr.stk11[1], pr.stk11[0])
    ps = np.where(s == 1, ps_mut, 1 - ps_mut)
    pp = np.where(p == 1, pr.pten, 1 - pr.pten)
    prior = pr.type_p[t] * pe * pk * ps * pp
    keep = prior > 0
    d = {
        "type": t[keep],
        "EGFR": e[keep].astype(bool),
        "KRAS": k[keep].astype(bool),
        "STK11": s[keep].astype(bool),
        "PTEN": p[keep].astype(bool),
    }
    return d, np.log(prior[keep])


def prevalences(probs: Probabilities) -> dict[str, float]:
    """Expected overall prevalence of each genotype in a population."""
    cfg, log_prior = configs(probs)
    prior = np.exp(log_prior)
    return {g: float(prior @ cfg[g].astype(float)) for g in GENOTYPES}


def _odds_scaled(p: Any, theta: float) -> Any:
    p = np.asarray(p, dtype=float)
    return theta * p / (1.0 - p + theta * p)


def adjust_probabilities(
    base: Probabilities,
    *,
    type_mix: dict[str, float] | None = None,
    prevalence: dict[str, float] | None = None,
) -> Probabilities:
    """A population with another cancer-type mix and/or overall genotype prevalences.

    A target prevalence is reached by multiplying the odds of that genotype's conditional
    probabilities (per cancer type) by one factor, solved numerically, in the order EGFR, KRAS,
    STK11, PTEN (later genotypes depend on earlier ones); the dependence structure (EGFR/KRAS
    exclusive, STK11 enriched in KRAS-mutant) is kept.
    """
    from scipy.optimize import brentq

    probs = base
    if type_mix is not None:
        w = np.array([float(type_mix.get(t, 0.0)) for t in CANCER_TYPES])
        probs = replace(probs, type_p=w / w.sum())
    for gname in GENOTYPES:
        if not prevalence or gname not in prevalence:
            continue
        target = float(prevalence[gname])

        def make(theta: float, g: str = gname, pr: Probabilities = probs) -> Probabilities:
            if g == "EGFR":
                return replace(pr, egfr=_odds_scaled(pr.egfr, theta))
            if g == "KRAS":
                return replace(pr, kras_wt=_odds_scaled(pr.kras_wt, theta))
            if g == "STK11":
                return replace(pr, stk11=tuple(float(v) for v in _odds_scaled(pr.stk11, theta)))
            return replace(pr, pten=float(_odds_scaled(pr.pten, theta)))

        def gap(log_theta: float, g: str = gname, mk: Any = make, goal: float = target) -> float:
            return prevalences(mk(float(np.exp(log_theta))))[g] - goal

        lo, hi = gap(-12.0), gap(12.0)
        if not lo < 0 < hi:
            raise ValueError(
                f"prevalence of {gname} = {target:g} cannot be reached in this population "
                f"(reachable range {lo + target:.4f} to {hi + target:.4f})"
            )
        probs = make(float(np.exp(brentq(gap, -12.0, 12.0, xtol=1e-12))))
    return probs


def auroc(y: np.ndarray, score: np.ndarray) -> float:
    """AUROC by mid-ranks (ties count one half)."""
    from scipy.stats import rankdata

    r = rankdata(score)
    n1 = y.sum()
    n0 = len(y) - n1
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def attainable(
    model: Model,
    rng: np.random.Generator,
    n_mc: int = 40_000,
    *,
    probs: Probabilities | None = None,
    noise_var: np.ndarray | None = None,
    allocation: float = 0.5,
) -> tuple[dict[str, float], dict[str, float]]:
    """Bayes-optimal and best-linear AUROC per target from the representation's sufficient statistic.

    ``noise_var`` (per gene, after undoing a site shift's offset and gain) and ``probs`` describe
    a shifted population; the result is what an analysis *fitted in that population* can reach.
    """
    k = model.k
    w = model.loadings
    # sufficient statistic of Z in X (noise sd 1): zhat = Z + N(0, (W W^T)^-1)
    s_cov = np.linalg.inv(w @ w.T) if noise_var is None else np.linalg.inv((w / noise_var) @ w.T)
    d = draw_discrete(rng, n_mc, probs)
    z = latent_mean(model, d) + rng.standard_normal((n_mc, k))
    zhat = z + rng.multivariate_normal(np.zeros(k), s_cov, size=n_mc, method="cholesky")
    cfg, log_prior = configs(probs)
    mu = latent_mean(model, cfg)  # (c, k)
    cov = np.eye(k) + s_cov
    cov_inv = np.linalg.inv(cov)
    # log N(zhat | mu_c, cov) up to a constant shared by all configs
    a = zhat @ cov_inv @ mu.T  # (n, c)
    b = 0.5 * np.einsum("ck,kl,cl->c", mu, cov_inv, mu)
    log_post = a - b + log_prior
    log_post -= logsumexp(log_post, axis=1, keepdims=True)
    post = np.exp(log_post)
    out = {}
    for g in GENOTYPES:
        score = post @ cfg[g].astype(float)
        out[g] = auroc(d[g].astype(int), score)
    # responder: integrate the probit over Z | zhat, config and over the arm allocation
    gain = np.eye(k) @ np.linalg.inv(np.eye(k) + s_cov)  # E[Z|zhat,c] = mu + gain (zhat - mu)
    post_var = (np.eye(k) - gain)[4, 4]
    r = model.resp
    p_resp = np.zeros(n_mc)
    for arm in (0, 1):
        weight = allocation if arm else 1.0 - allocation
        slope = r["z04"] + r["arm_x_z04"] * arm
        cond_mean = mu[None, :, 4] + (zhat @ gain.T)[:, 4:5] - (mu @ gain.T)[None, :, 4]
        lin = (r["intercept"] + r["arm"] * arm + slope * cond_mean) / np.sqrt(
            1 + slope**2 * post_var
        )
        p_resp += weight * (post * ndtr(lin)).sum(axis=1)
    arm = rng.random(n_mc) < allocation
    lin_true = r["intercept"] + r["arm"] * arm + (r["z04"] + r["arm_x_z04"] * arm) * z[:, 4]
    responder = rng.random(n_mc) < ndtr(lin_true)
    out["responder"] = auroc(responder.astype(int), p_resp)
    # best *linear* score of the representation: logistic fit on one half of the Monte Carlo
    # sample, AUROC on the other (a linear decoder's ceiling)
    from sklearn.linear_model import LogisticRegression

    half = n_mc // 2
    linear = {}
    labels = {g: d[g].astype(int) for g in GENOTYPES} | {"responder": responder.astype(int)}
    for key, y in labels.items():
        fit = LogisticRegression(C=100.0, max_iter=1000).fit(zhat[:half], y[:half])
        linear[key] = auroc(y[half:], zhat[half:] @ fit.coef_[0])
    return {key: round(val, 4) for key, val in out.items()}, {
        k: round(v, 4) for k, v in linear.items()
    }


# ---------------------------------------------------------------------------- one trial
def representation(
    bio: Biology, z: np.ndarray, noise: np.ndarray, shift: Shift | None, rng: np.random.Generator
) -> np.ndarray:
    """``X = b + s (Z W + E)``, with a site/scanner shift applied when given."""
    inner = z @ bio.model.loadings + noise
    if shift is not None:
        inner = shift.offset + shift.gain * inner
        if shift.noise > 0:
            inner = inner + shift.noise * rng.standard_normal(inner.shape)
    return bio.base + bio.scale * inner


def responder_probit(model: Model, arm: np.ndarray, z04: np.ndarray) -> np.ndarray:
    """Linear predictor of the response probit."""
    r = model.resp
    return r["intercept"] + r["arm"] * arm + (r["z04"] + r["arm_x_z04"] * arm) * z04


def draw_arm(rng: np.random.Generator, n: int, allocation: float) -> np.ndarray:
    """Randomised arm (True = experimental); 1:1 is the original permuted alternation."""
    if allocation == 0.5:
        return rng.permutation(np.arange(n) % 2).astype(bool)
    return rng.permutation(np.arange(n) < int(round(allocation * n)))


def draw_trial(
    bio: Biology,
    pop: Population,
    n: int,
    rng_pat: np.random.Generator,
    rng_x: np.random.Generator,
    rng_out: np.random.Generator,
) -> dict[str, Any]:
    """Patients, representation and outcomes of one trial (the original draw order)."""
    model = bio.model
    k, g = model.k, bio.base.size
    d = draw_discrete(rng_pat, n, pop.probs)
    z = latent_mean(model, d) + rng_pat.standard_normal((n, k))
    arm = draw_arm(rng_pat, n, pop.allocation)
    ids = [f"{pop.id_prefix}{i:04d}" for i in range(n)]
    ctype = np.array(CANCER_TYPES)[d["type"]]
    histology = np.empty(n, dtype=object)
    for t, name in enumerate(CANCER_TYPES):
        idx = np.flatnonzero(d["type"] == t)
        labels, probs = zip(*HISTOLOGY[name], strict=True)
        histology[idx] = rng_pat.choice(labels, size=len(idx), p=probs)

    # ---- representation
    noise = rng_x.standard_normal((n, g))
    x = representation(bio, z, noise, pop.shift, rng_x)

    # ---- outcomes
    lin = responder_probit(model, arm, z[:, 4])
    responder = rng_out.standard_normal(n) < lin
    u = rng_out.random(n)
    best = np.where(
        responder, np.where(u < 0.15, "CR", "PR"), np.where(u < 0.55, "SD", "PD")
    ).astype(object)
    best[rng_out.random(n) < 0.05] = "NE"
    eff = {"arm": -0.2, "arm_x_z04": model.benefit_effect, **PROGNOSTIC_LOG_HR}
    benefit = eff["arm"] + eff["arm_x_z04"] * z[:, 4]
    loghaz = (
        arm * benefit
        + eff["STK11"] * d["STK11"]
        + eff["KRAS"] * d["KRAS"]
        + eff["EGFR"] * d["EGFR"]
    )
    lam0 = np.log(2) / pop.control_median_os
    os_true = rng_out.exponential(1.0 / (lam0 * np.exp(loghaz)))
    pfs_true = np.minimum(rng_out.exponential(1.0 / (2 * lam0 * np.exp(loghaz))), os_true)
    entry = rng_out.uniform(0, 24, n)
    admin = 36.0 - entry
    dropout = (
        rng_out.exponential(1.0 / pop.dropout_rate, n)
        if pop.dropout_rate > 0
        else np.full(n, np.inf)
    )
    cens = np.minimum(admin, dropout)
    os_time = np.minimum(os_true, cens)
    pfs_time = np.minimum(pfs_true, cens)

    # ---- covariates
    age = np.clip(rng_out.normal(64, 9, n), 30, 90).round(0)
    sex = rng_out.choice(["F", "M"], size=n, p=[0.45, 0.55])
    p_never = np.where(d["EGFR"], 0.6, 0.12)
    smoking = np.where(
        rng_out.random(n) < p_never,
        "never",
        rng_out.choice(["former", "current"], size=n, p=[0.6, 0.4]),
    )
    stage = rng_out.choice(["IIIB", "IV"], size=n, p=[0.25, 0.75])
    ecog = rng_out.choice([0, 1, 2], size=n, p=[0.4, 0.5, 0.1])
    sites = np.array([f"{pop.site_prefix}{i + 1:02d}" for i in range(pop.n_sites)])
    site = sites[rng_out.integers(0, pop.n_sites, n)]

    clinical = pd.DataFrame(
        {
            "patient_id": ids,
            "study_id": pop.study_id,
            "site": site,
            "arm": np.where(arm, "experimental", "control"),
            "cancer_type": ctype,
            "histology": histology,
        }
    )
    for gname in GENOTYPES:
        calls = np.where(d[gname], "mutant", "wild-type").astype(object)
        calls[rng_out.random(n) < pop.missing_genotype_rate] = None
        clinical[gname] = calls
    clinical["best_response"] = best
    clinical["os_time"] = os_time.round(3)
    clinical["os_event"] = (os_true <= cens).astype(int)
    clinical["pfs_time"] = pfs_time.round(3)
    clinical["pfs_event"] = (pfs_true <= cens).astype(int)
    clinical["age"] = age
    clinical["sex"] = sex
    clinical["stage"] = stage
    clinical["ecog"] = ecog
    clinical["smoking"] = smoking
    return {
        "clinical": clinical,
        "x": x,
        "z": z,
        "d": d,
        "ids": ids,
        "ctype": ctype,
        "benefit": benefit,
        "eff": eff,
    }


def sample_patients(
    bio: Biology, pop: Population, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fresh patients of a population: float32 representation and true 0/1 labels.

    Labels: the genotypes and ``responder`` (response probit under the population's arm
    allocation). Used for Monte Carlo truths; not the draw order of :func:`draw_trial`.
    """
    model = bio.model
    d = draw_discrete(rng, n, pop.probs)
    z = latent_mean(model, d) + rng.standard_normal((n, model.k))
    arm = rng.random(n) < pop.allocation
    noise = rng.standard_normal((n, bio.base.size))
    x = representation(bio, z, noise, pop.shift, rng).astype(np.float32)
    responder = rng.standard_normal(n) < responder_probit(model, arm, z[:, 4])
    labels = {g: d[g].astype(int) for g in GENOTYPES}
    labels["responder"] = responder.astype(int)
    return x, labels


# ------------------------------------------------------------------ planted, own stream
def _signature_vector(k: int) -> np.ndarray:
    a = np.zeros(k)
    for name, v in SIGNATURE_COEF.items():
        a[int(name[1:])] = v
    return a


def draw_planted(
    model: Model, d: dict[str, np.ndarray], z: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The continuous target and the histological subtype of one trial's patients.

    Drawn from their own stream after the original simulator's draws (which they leave
    unchanged): ``signature_score = 10 + Z a + 0.8 e`` (:data:`SIGNATURE_COEF`; 4 decimals), and within
    each cancer type a subtype among that type's :data:`HISTOLOGY` levels with multinomial-logit
    probabilities ``log p_l + (Z_P05, Z_P06 minus their cancer-type means) b_l``
    (:data:`SUBTYPE_COEF`).
    """
    n = z.shape[0]
    e = rng.standard_normal(n)
    score = (SIGNATURE_INTERCEPT + z @ _signature_vector(model.k) + SIGNATURE_NOISE * e).round(4)
    cols = [int(p[1:]) for p in SUBTYPE_PROGRAMS]
    dev = z[:, cols] - latent_mean(model, d)[:, cols]
    u = rng.random(n)
    subtype = np.empty(n, dtype=object)
    for t, name in enumerate(CANCER_TYPES):
        idx = np.flatnonzero(d["type"] == t)
        labels, probs = zip(*HISTOLOGY[name], strict=True)
        logit = np.log(np.asarray(probs)) + dev[idx] @ np.asarray(SUBTYPE_COEF[name]).T
        p = np.exp(logit - logsumexp(logit, axis=1, keepdims=True))
        pick = (u[idx, None] > np.cumsum(p, axis=1)[:, :-1]).sum(axis=1)
        subtype[idx] = np.asarray(labels, dtype=object)[pick]
    return {"signature_score": score, "histology_subtype": subtype}


def planted_truth(
    model: Model,
    *,
    probs: Probabilities | None = None,
    noise_var: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    n_mc: int = 40_000,
) -> dict[str, Any]:
    """Population R^2 ceilings of ``signature_score`` (exact, plus a Monte Carlo Bayes value).

    ``r2_latent``: from the true programmes (``Var(Z a) / Var(y)``); ``r2_linear``: the best
    linear function of the representation, ``a' S (I + A S)^-1 A S a / Var(y)`` with ``S =
    Var(Z)`` (mixture over cancer type and genotypes, exact) and ``A = W diag(1/noise) W'``;
    ``r2_bayes`` (only with ``rng``): ``1 - E[(y - E[y|X])^2] / Var(y)`` by Monte Carlo over
    ``n_mc`` fresh patients through the programmes' sufficient statistic (needs ``n_genes >=
    n_programs``). The Pearson r ceilings are their square roots.
    """
    k = model.k
    a = _signature_vector(k)
    cfg, log_prior = configs(probs)
    prior = np.exp(log_prior)
    mu = latent_mean(model, cfg)
    mbar = prior @ mu
    s_z = np.eye(k) + (mu - mbar).T @ ((mu - mbar) * prior[:, None])
    w = model.loadings
    A = (w @ w.T) if noise_var is None else (w / noise_var) @ w.T
    var_signal = float(a @ s_z @ a)
    var_y = var_signal + SIGNATURE_NOISE**2
    lin = float(a @ s_z @ np.linalg.solve(np.eye(k) + A @ s_z, A @ s_z @ a))
    out: dict[str, Any] = {
        "coefficients": dict(SIGNATURE_COEF),
        "intercept": SIGNATURE_INTERCEPT,
        "noise_sd": SIGNATURE_NOISE,
        "mean": float(SIGNATURE_INTERCEPT + a @ mbar),
        "variance": var_y,
        "r2_latent": round(var_signal / var_y, 6),
        "r2_linear": round(lin / var_y, 6),
        "pearson_r_latent": round(float(np.sqrt(var_signal / var_y)), 6),
        "pearson_r_linear": round(float(np.sqrt(lin / var_y)), 6),
    }
    if rng is not None:
        s_cov = np.linalg.inv(A)
        d = draw_discrete(rng, n_mc, probs)
        z = latent_mean(model, d) + rng.standard_normal((n_mc, k))
        zhat = z + rng.multivariate_normal(np.zeros(k), s_cov, size=n_mc, method="cholesky")
        cov_inv = np.linalg.inv(np.eye(k) + s_cov)
        log_post = zhat @ cov_inv @ mu.T - 0.5 * np.einsum("ck,kl,cl->c", mu, cov_inv, mu)
        log_post += log_prior
        log_post -= logsumexp(log_post, axis=1, keepdims=True)
        post = np.exp(log_post)
        gain = cov_inv  # E[Z | zhat, c] = mu_c + (I + S)^-1 (zhat - mu_c), symmetric
        cond = post @ (mu @ a) + (zhat @ gain @ a) - post @ (mu @ gain @ a)
        mse = float(np.mean((z @ a - cond) ** 2)) + SIGNATURE_NOISE**2
        out["r2_bayes"] = round(1.0 - mse / var_y, 4)
        out["pearson_r_bayes"] = round(float(np.sqrt(max(1.0 - mse / var_y, 0.0))), 4)
    return out
