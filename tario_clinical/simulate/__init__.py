"""Synthetic retrospective trials with planted, known truth.

:func:`simulate_trial` draws a two-arm trial whose patients carry NSCLC-like genotypes, a latent
gene-program state, expression-derived representations generated from that state, RECIST
response and OS/PFS that depend on genotype and on a planted *predictive* program (treatment
benefit grows with program ``P04``). Everything is returned with the truth that generated it, so
tests and demos can check that an analysis recovers what was planted.

Generative model (all draws from one ``seed``)
-----------------------------------------------
* cancer type ~ Categorical(LUAD .50, LUSC .20, COAD .20, PAAD .10); histology within type.
* EGFR | type ~ Bernoulli(.25, .05, .03, .02); KRAS | EGFR wild-type, type ~ Bernoulli(.33, .08,
  .42, .85) (EGFR and KRAS mutually exclusive); STK11 ~ Bernoulli(.32 if KRAS-mutant else .07);
  PTEN ~ Bernoulli(.05). Overall prevalences ~15 %, ~30 %, ~15 %, ~5 %.
* latent programs ``Z = N(0, I_K) + shifts``: P00..P03 shift by EGFR, KRAS, STK11, PTEN
  mutation (``genotype_effects``), P04 (immune / drug-sensitivity) is lowered by STK11, P05..P07
  carry cancer-type identity.
* representation ``X = b + s * (Z W + E)``, ``E ~ N(0, 1)``, each program's loading vector has
  squared norm ``snr**2`` spread over its genes (half of the genes are pure noise), so the
  information about ``Z`` in ``X`` is set by ``snr`` whatever the width.
* response: probit ``r* = -0.6 + 0.3 arm + (0.3 + 0.7 arm) Z04 + e``; CR/PR if ``r* > 0``
  (5 % NE). OS: exponential, control median 12 months, log-HR ``-0.2 arm - 0.5 arm Z04 + 0.45
  STK11 + 0.15 KRAS - 0.3 EGFR``; PFS shares the linear predictor with twice the hazard, capped at
  OS. Accrual uniform over 24 months, analysis at 36 months, plus exponential drop-out.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import logsumexp, ndtr

from ..errors import TarioClinicalError

__all__ = ["simulate_trial", "SimulatedTrial", "TrialTruth", "gene_symbols", "GENOTYPES"]

GENOTYPES = ("EGFR", "KRAS", "STK11", "PTEN")
CANCER_TYPES = ("LUAD", "LUSC", "COAD", "PAAD")
_TYPE_P = np.array([0.50, 0.20, 0.20, 0.10])
_HISTOLOGY = {
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
_P_EGFR = np.array([0.25, 0.05, 0.03, 0.02])
_P_KRAS_WT = np.array([0.33, 0.08, 0.42, 0.85])
_P_STK11 = (0.07, 0.32)  # KRAS wild-type, mutant
_P_PTEN = 0.05

_FAMILIES = (
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
_ANCHORS = (
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
    if n <= len(_ANCHORS):
        return list(_ANCHORS[:n])
    names = list(_ANCHORS)
    seen = set(names)
    i = 1
    while len(names) < n:
        for fam in _FAMILIES:
            name = f"{fam}{i}"
            if name not in seen:
                names.append(name)
                seen.add(name)
                if len(names) == n:
                    break
        i += 1
    return names


@dataclass(frozen=True)
class TrialTruth:
    """What generated a :class:`SimulatedTrial`.

    Attributes
    ----------
    latent : DataFrame
        Patients x programs (``P00``...), index ``patient_id``.
    loadings : DataFrame
        Programs x genes (the ``W`` of ``X = b + s (Z W + E)``).
    genotypes : DataFrame
        True 0/1 genotype of every patient (before calls were set missing).
    attainable_auroc : dict
        Target -> AUROC of the Bayes-optimal score computed from the representation alone (Monte
        Carlo over 40,000 fresh patients from the same model; standard error about 0.003).
    attainable_auroc_linear : dict
        Target -> AUROC of the best *linear* score of the representation (what a linear decoder
        with unlimited training data reaches; at most ``attainable_auroc``).
    effects : dict
        Planted coefficients: ``genotype_shift``, response probit and survival log-hazard terms.
    benefit : Series
        Each patient's true log-HR of experimental vs control (``-0.2 - 0.5 Z04``).
    """

    latent: pd.DataFrame
    loadings: pd.DataFrame
    genotypes: pd.DataFrame
    attainable_auroc: dict[str, float]
    effects: dict[str, Any]
    benefit: pd.Series
    attainable_auroc_linear: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimulatedTrial:
    """A synthetic trial: ``clinical`` table, ``representations`` AnnData and ``truth``."""

    clinical: pd.DataFrame
    representations: Any  # anndata.AnnData (imported lazily)
    truth: TrialTruth
    seed: int

    def cohort(self, **kwargs: Any):  # noqa: ANN201 - Cohort, avoid import cycle at type level
        """The clinical table as a validated :class:`~tario_clinical.cohort.Cohort`."""
        from ..cohort import load_cohort

        return load_cohort(self.clinical, **kwargs)

    def __repr__(self) -> str:
        n, d = self.representations.shape
        return f"SimulatedTrial({n} patients x {d} features, seed={self.seed})"

    def write(self, out_dir: Any) -> dict[str, str]:
        """Write ``clinical.csv`` and ``representations.h5ad`` atomically into ``out_dir``."""
        from ..provenance import atomic_write, atomic_write_h5ad, ensure_output_dir

        out = ensure_output_dir(out_dir)
        paths = {
            "clinical": str(out / "clinical.csv"),
            "representations": str(out / "representations.h5ad"),
        }
        atomic_write(out / "clinical.csv", lambda p: self.clinical.to_csv(p, index=False))
        atomic_write_h5ad(out / "representations.h5ad", self.representations)
        return paths


# --------------------------------------------------------------------------------------------
# generative pieces


@dataclass(frozen=True)
class _Model:
    k: int
    genotype_shift: dict[str, float]
    type_shift: np.ndarray  # (4, k)
    stk11_immune: float
    loadings: np.ndarray  # (k, g)
    resp: dict[str, float]


def _draw_discrete(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    ctype = rng.choice(len(CANCER_TYPES), size=n, p=_TYPE_P)
    egfr = rng.random(n) < _P_EGFR[ctype]
    kras = ~egfr & (rng.random(n) < _P_KRAS_WT[ctype])
    stk11 = rng.random(n) < np.where(kras, _P_STK11[1], _P_STK11[0])
    pten = rng.random(n) < _P_PTEN
    return {"type": ctype, "EGFR": egfr, "KRAS": kras, "STK11": stk11, "PTEN": pten}


def _latent_mean(model: _Model, d: dict[str, np.ndarray]) -> np.ndarray:
    n = len(d["type"])
    mu = np.zeros((n, model.k))
    for j, g in enumerate(GENOTYPES):
        mu[:, j] += model.genotype_shift[g] * d[g]
    mu[:, 4] -= model.stk11_immune * d["STK11"]
    mu += model.type_shift[d["type"]]
    return mu


def _configs() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All 4 x 16 discrete configurations with their prior log-probabilities."""
    grid = (
        np.array(np.meshgrid(range(4), [0, 1], [0, 1], [0, 1], [0, 1], indexing="ij"))
        .reshape(5, -1)
        .T
    )
    t, e, k, s, p = (grid[:, i] for i in range(5))
    pe = np.where(e == 1, _P_EGFR[t], 1 - _P_EGFR[t])
    pk_mut = np.where(e == 1, 0.0, _P_KRAS_WT[t])
    pk = np.where(k == 1, pk_mut, 1 - pk_mut)
    ps_mut = np.where(k == 1, _P_STK11[1], _P_STK11[0])
    ps = np.where(s == 1, ps_mut, 1 - ps_mut)
    pp = np.where(p == 1, _P_PTEN, 1 - _P_PTEN)
    prior = _TYPE_P[t] * pe * pk * ps * pp
    keep = prior > 0
    d = {
        "type": t[keep],
        "EGFR": e[keep].astype(bool),
        "KRAS": k[keep].astype(bool),
        "STK11": s[keep].astype(bool),
        "PTEN": p[keep].astype(bool),
    }
    return d, np.log(prior[keep])


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(score)
    n1 = y.sum()
    n0 = len(y) - n1
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _attainable(model: _Model, rng: np.random.Generator, n_mc: int = 40_000) -> dict[str, float]:
    """Bayes-optimal AUROC per target from the representation's sufficient statistic."""
    k = model.k
    w = model.loadings
    # sufficient statistic of Z in X (noise sd 1): zhat = Z + N(0, (W W^T)^-1)
    s_cov = np.linalg.inv(w @ w.T)
    d = _draw_discrete(rng, n_mc)
    z = _latent_mean(model, d) + rng.standard_normal((n_mc, k))
    zhat = z + rng.multivariate_normal(np.zeros(k), s_cov, size=n_mc, method="cholesky")
    cfg, log_prior = _configs()
    mu = _latent_mean(model, cfg)  # (c, k)
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
        out[g] = _auroc(d[g].astype(int), score)
    # responder: integrate the probit over Z | zhat, config and over the 1:1 arm
    gain = np.eye(k) @ np.linalg.inv(np.eye(k) + s_cov)  # E[Z|zhat,c] = mu + gain (zhat - mu)
    post_var = (np.eye(k) - gain)[4, 4]
    r = model.resp
    p_resp = np.zeros(n_mc)
    for arm in (0, 1):
        slope = r["z04"] + r["arm_x_z04"] * arm
        cond_mean = mu[None, :, 4] + (zhat @ gain.T)[:, 4:5] - (mu @ gain.T)[None, :, 4]
        lin = (r["intercept"] + r["arm"] * arm + slope * cond_mean) / np.sqrt(
            1 + slope**2 * post_var
        )
        p_resp += 0.5 * (post * ndtr(lin)).sum(axis=1)
    arm = rng.random(n_mc) < 0.5
    lin_true = r["intercept"] + r["arm"] * arm + (r["z04"] + r["arm_x_z04"] * arm) * z[:, 4]
    responder = rng.random(n_mc) < ndtr(lin_true)
    out["responder"] = _auroc(responder.astype(int), p_resp)
    # best *linear* score of the representation: logistic fit on one half of the Monte Carlo
    # sample, AUROC on the other (a linear decoder's ceiling)
    from sklearn.linear_model import LogisticRegression

    half = n_mc // 2
    linear = {}
    labels = {g: d[g].astype(int) for g in GENOTYPES} | {"responder": responder.astype(int)}
    for key, y in labels.items():
        fit = LogisticRegression(C=100.0, max_iter=1000).fit(zhat[:half], y[:half])
        linear[key] = _auroc(y[half:], zhat[half:] @ fit.coef_[0])
    return {key: round(val, 4) for key, val in out.items()}, {
        k: round(v, 4) for k, v in linear.items()
    }


def simulate_trial(
    n_patients: int = 500,
    *,
    seed: int = 0,
    n_genes: int = 2000,
    n_programs: int = 12,
    snr: float = 1.0,
    genotype_effect: float = 1.0,
    missing_genotype_rate: float = 0.03,
    control_median_os: float = 12.0,
    dropout_rate: float = 0.01,
    n_sites: int = 8,
    compute_attainable: bool = True,
) -> SimulatedTrial:
    """Simulate a two-arm retrospective trial with planted, known truth.

    Parameters
    ----------
    n_patients
        Number of patients (>= 10).
    seed
        Seed of every random draw; the same seed gives the same trial, byte for byte.
    n_genes
        Width of the expression-derived representation (8 ... 25,000).
    n_programs
        Number of latent gene programs (>= 8).
    snr
        Signal-to-noise of the representation: each program's loading vector has squared norm
        ``snr**2`` against unit gene noise. Larger is easier to decode.
    genotype_effect
        Multiplier of the genotype -> program shifts (0 plants no genotype signal at all).
    missing_genotype_rate
        Fraction of genotype calls set missing (not tested).
    control_median_os
        Median OS (months) of a reference control patient.
    dropout_rate
        Monthly hazard of loss to follow-up.
    n_sites
        Number of recruiting sites.
    compute_attainable
        Compute ``truth.attainable_auroc`` (about 0.5 s).

    Returns
    -------
    SimulatedTrial

    Examples
    --------
    >>> trial = simulate_trial(200, seed=1, n_genes=100)
    >>> trial.representations.shape
    (200, 100)
    >>> sorted(trial.truth.attainable_auroc)
    ['EGFR', 'KRAS', 'PTEN', 'STK11', 'responder']
    """
    if not isinstance(n_patients, int | np.integer) or n_patients < 10:
        raise TarioClinicalError(f"n_patients must be an integer >= 10, got {n_patients!r}")
    if not 8 <= n_genes <= 25_000:
        raise TarioClinicalError(f"n_genes must be between 8 and 25,000, got {n_genes!r}")
    if n_programs < 8:
        raise TarioClinicalError(f"n_programs must be >= 8, got {n_programs!r}")
    if snr <= 0:
        raise TarioClinicalError(f"snr must be > 0, got {snr!r}")

    ss = np.random.SeedSequence(seed)
    rng_model, rng_pat, rng_x, rng_out, rng_mc = (np.random.default_rng(s) for s in ss.spawn(5))
    k, g = n_programs, n_genes

    # ---- model: loadings and shifts
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
    model = _Model(
        k=k,
        genotype_shift={key: v * genotype_effect for key, v in shift.items()},
        type_shift=type_shift,
        stk11_immune=0.5,
        loadings=w,
        resp={"intercept": -0.6, "arm": 0.3, "z04": 0.3, "arm_x_z04": 0.7},
    )
    base = rng_model.normal(4.0, 1.5, size=g)
    scale = rng_model.gamma(4.0, 0.25, size=g)

    # ---- patients
    n = int(n_patients)
    d = _draw_discrete(rng_pat, n)
    z = _latent_mean(model, d) + rng_pat.standard_normal((n, k))
    arm = rng_pat.permutation(np.arange(n) % 2).astype(bool)  # 1:1 allocation
    ids = [f"P{i:04d}" for i in range(n)]
    ctype = np.array(CANCER_TYPES)[d["type"]]
    histology = np.empty(n, dtype=object)
    for t, name in enumerate(CANCER_TYPES):
        idx = np.flatnonzero(d["type"] == t)
        labels, probs = zip(*_HISTOLOGY[name], strict=True)
        histology[idx] = rng_pat.choice(labels, size=len(idx), p=probs)

    # ---- representation
    noise = rng_x.standard_normal((n, g))
    x = base + scale * (z @ w + noise)

    # ---- outcomes
    r = model.resp
    lin = r["intercept"] + r["arm"] * arm + (r["z04"] + r["arm_x_z04"] * arm) * z[:, 4]
    responder = rng_out.standard_normal(n) < lin
    u = rng_out.random(n)
    best = np.where(
        responder, np.where(u < 0.15, "CR", "PR"), np.where(u < 0.55, "SD", "PD")
    ).astype(object)
    best[rng_out.random(n) < 0.05] = "NE"
    eff = {"arm": -0.2, "arm_x_z04": -0.5, "STK11": 0.45, "KRAS": 0.15, "EGFR": -0.3}
    benefit = eff["arm"] + eff["arm_x_z04"] * z[:, 4]
    loghaz = (
        arm * benefit
        + eff["STK11"] * d["STK11"]
        + eff["KRAS"] * d["KRAS"]
        + eff["EGFR"] * d["EGFR"]
    )
    lam0 = np.log(2) / control_median_os
    os_true = rng_out.exponential(1.0 / (lam0 * np.exp(loghaz)))
    pfs_true = np.minimum(rng_out.exponential(1.0 / (2 * lam0 * np.exp(loghaz))), os_true)
    entry = rng_out.uniform(0, 24, n)
    admin = 36.0 - entry
    dropout = rng_out.exponential(1.0 / dropout_rate, n) if dropout_rate > 0 else np.full(n, np.inf)
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
    site = np.array([f"S{i + 1:02d}" for i in range(n_sites)])[rng_out.integers(0, n_sites, n)]

    clinical = pd.DataFrame(
        {
            "patient_id": ids,
            "study_id": "SIM-001",
            "site": site,
            "arm": np.where(arm, "experimental", "control"),
            "cancer_type": ctype,
            "histology": histology,
        }
    )
    for gname in GENOTYPES:
        calls = np.where(d[gname], "mutant", "wild-type").astype(object)
        calls[rng_out.random(n) < missing_genotype_rate] = None
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

    genes = gene_symbols(g)
    programs = [f"P{j:02d}" for j in range(k)]
    latent = pd.DataFrame(z, index=pd.Index(ids, name="patient_id"), columns=programs)
    attainable, attainable_linear = _attainable(model, rng_mc) if compute_attainable else ({}, {})

    import anndata as ad

    from .. import __version__

    obs = pd.DataFrame(index=pd.Index(ids, name="patient_id"))
    obs["cancer_type"] = pd.Categorical(ctype, categories=list(CANCER_TYPES))
    adata = ad.AnnData(
        X=x.astype(np.float32), obs=obs, var=pd.DataFrame(index=pd.Index(genes, name="gene"))
    )
    params = {
        "n_patients": n,
        "seed": int(seed),
        "n_genes": g,
        "n_programs": k,
        "snr": float(snr),
        "genotype_effect": float(genotype_effect),
        "missing_genotype_rate": float(missing_genotype_rate),
        "control_median_os": float(control_median_os),
        "dropout_rate": float(dropout_rate),
        "n_sites": int(n_sites),
    }
    adata.uns["tario_clinical"] = {
        "schema_version": 1,
        "package_version": __version__,
        "created_utc": _dt.datetime(
            2000, 1, 1, tzinfo=_dt.UTC
        ).isoformat(),  # fixed: simulated data are a pure function of the seed
        "kind": "simulated",
        "level": "patient",
        "seed": int(seed),
        "simulator": params,
        "feature_kind": "expression",
    }
    truth = TrialTruth(
        latent=latent,
        loadings=pd.DataFrame(w, index=programs, columns=genes),
        genotypes=pd.DataFrame(
            {gname: d[gname].astype(int) for gname in GENOTYPES}, index=latent.index
        ),
        attainable_auroc=attainable,
        attainable_auroc_linear=attainable_linear,
        effects={
            "genotype_shift": dict(model.genotype_shift),
            "stk11_on_P04": -model.stk11_immune,
            "response_probit": dict(model.resp),
            "log_hr": eff,
            "control_median_os": control_median_os,
            "predictive_program": "P04",
        },
        benefit=pd.Series(benefit, index=latent.index, name="log_hr_experimental_vs_control"),
        params=params,
    )
    return SimulatedTrial(clinical=clinical, representations=adata, truth=truth, seed=int(seed))
