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
  The genotype terms are *prognostic* (both arms); the arm x ``Z04`` term is *predictive*
  (``benefit_effect``, default -0.5; ``0`` simulates a trial with no planted benefit).

Planted endpoint signals (columns appended after the original ones, drawn from a sixth random
stream so that every original column and the representation are byte-identical to the
original simulator's for the same seed):

* ``signature_score`` (continuous): ``10 + 0.6 Z04 + 0.5 Z07 - 0.4 Z01 + 0.3 Z03 + 0.8 e``; its
  population R^2 from the programs and the representation's ceilings (linear, exact; Bayes,
  Monte Carlo) are in ``truth.planted["signature_score"]``.
* ``histology_subtype`` (multi-level): within each cancer type one of its histologies above,
  multinomial logit on ``Z05, Z06`` minus their cancer-type means (4 levels in LUAD, 2 in LUSC
  and COAD), so it is decodable beyond cancer type. The original ``histology`` column stays as
  it was: drawn within cancer type independently of the programs.

Second trial from the same biology
----------------------------------
``simulate_trial(..., second_trial={...})`` (or :meth:`SimulatedTrial.draw_second_trial`) draws
another trial that shares the biology (loadings, gene baselines and scales, genotype and
cancer-type shifts, outcome model) but may differ in cancer-type mix, genotype prevalences, arm
allocation and a *site/scanner shift* of the representation: ``X = b + s (o + g (Z W + E) +
sigma E2)`` with per-gene offsets ``o ~ N(0, offset^2)``, gains ``log g ~ N(0, gain^2)`` and
extra noise ``sigma`` (units of the gene noise SD). :meth:`SimulatedTrial.locked_truth` gives,
by Monte Carlo over fresh patients of a trial's population, what a *fixed* (locked) score
achieves there: AUROC, calibration intercept and slope, Brier score.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import TarioClinicalError
from ._generative import (
    CANCER_TYPES,
    GENOTYPES,
    HISTOLOGY,
    PROGNOSTIC_LOG_HR,
    SUBTYPE_COEF,
    SUBTYPE_PROGRAMS,
    Biology,
    Population,
    Probabilities,
    adjust_probabilities,
    attainable,
    draw_planted,
    draw_trial,
    gene_symbols,
    make_biology,
    make_shift,
    planted_truth,
    prevalences,
    sample_patients,
)

__all__ = ["simulate_trial", "SimulatedTrial", "TrialTruth", "gene_symbols", "GENOTYPES"]

#: options of a second trial (``simulate_trial(second_trial=...)``, ``draw_second_trial``)
SECOND_TRIAL_OPTIONS = (
    "n_patients",
    "seed",
    "site_shift",
    "prevalence",
    "cancer_type_mix",
    "allocation",
    "n_sites",
    "control_median_os",
    "dropout_rate",
    "missing_genotype_rate",
    "study_id",
    "compute_attainable",
)
_LOCKED_TARGETS = (*GENOTYPES, "responder")


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
        Carlo over 40,000 fresh patients from the same model; standard error about 0.003). For
        a shifted second trial: what an analysis *fitted in that trial* (knowing its shift) can
        reach; a locked score's truth is :meth:`SimulatedTrial.locked_truth`.
    attainable_auroc_linear : dict
        Target -> AUROC of the best *linear* score of the representation (what a linear decoder
        with unlimited training data reaches; at most ``attainable_auroc``).
    effects : dict
        Planted coefficients: ``genotype_shift``, response probit and survival log-hazard terms.
    benefit : Series
        Each patient's true log-HR of experimental vs control (``-0.2 - 0.5 Z04``).
    population : dict
        The population: cancer-type mix, expected genotype prevalences, arm allocation, the
        site/scanner shift settings (``offset, gain, noise``) and the biology's seed.
    planted : dict
        The planted signals added to the original simulator (their own random stream; every
        original column and the representation are unchanged by them):

        * ``signature_score``: the continuous target's ``coefficients`` (per program),
          ``intercept``, ``noise_sd``, population ``mean`` and ``variance``, and its
          population R^2 / Pearson r ceilings: ``r2_latent`` / ``pearson_r_latent`` (from the
          true programs, exact), ``r2_linear`` / ``pearson_r_linear`` (best linear function of
          the representation, exact) and, with ``compute_attainable``, ``r2_bayes`` /
          ``pearson_r_bayes`` (best function of the representation, Monte Carlo over 40,000
          fresh patients, SE about 0.003);
        * ``histology_subtype``: ``programs`` (P05, P06), ``coefficients`` (per cancer type and
          level, on the programs minus their cancer-type means; the first level is the
          reference) and ``base_probabilities``;
        * ``survival``: ``prognostic`` (log-HR of STK11, KRAS, EGFR in both arms),
          ``predictive`` (``{"program": "P04", "arm_x_program": benefit_effect}``),
          ``arm`` (-0.2: the overall effect at P04 = 0) and ``benefit_effect``.
    """

    latent: pd.DataFrame
    loadings: pd.DataFrame
    genotypes: pd.DataFrame
    attainable_auroc: dict[str, float]
    effects: dict[str, Any]
    benefit: pd.Series
    attainable_auroc_linear: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    population: dict[str, Any] = field(default_factory=dict)
    planted: dict[str, Any] = field(default_factory=dict)


@dataclass
class SimulatedTrial:
    """A synthetic trial: ``clinical`` table, ``representations`` AnnData and ``truth``.

    ``second_trial`` holds the trial drawn with ``simulate_trial(..., second_trial=...)``.
    """

    clinical: pd.DataFrame
    representations: Any  # anndata.AnnData (imported lazily)
    truth: TrialTruth
    seed: int
    second_trial: SimulatedTrial | None = None
    _generator: tuple[Biology, Population] | None = field(default=None, repr=False)

    def cohort(self, **kwargs: Any):  # noqa: ANN201 - Cohort, avoid import cycle at type level
        """The clinical table as a validated :class:`~tario_clinical.cohort.Cohort`."""
        from ..cohort import load_cohort

        return load_cohort(self.clinical, **kwargs)

    def __repr__(self) -> str:
        n, d = self.representations.shape
        extra = (
            ""
            if self.second_trial is None
            else f", second trial of {len(self.second_trial.clinical)}"
        )
        return f"SimulatedTrial({n} patients x {d} features, seed={self.seed}{extra})"

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

    # ------------------------------------------------------------------ second trial
    def draw_second_trial(
        self,
        n_patients: int = 500,
        *,
        seed: int = 1,
        site_shift: float | Mapping[str, float] = 0.0,
        prevalence: Mapping[str, float] | None = None,
        cancer_type_mix: Mapping[str, float] | None = None,
        allocation: float = 0.5,
        n_sites: int = 4,
        control_median_os: float | None = None,
        dropout_rate: float | None = None,
        missing_genotype_rate: float | None = None,
        study_id: str = "SIM-002",
        compute_attainable: bool = True,
    ) -> SimulatedTrial:
        """Another trial from this trial's biology, with its own population and site shift.

        Parameters
        ----------
        n_patients : int, default 500
            Patients of the second trial (>= 10); ids ``V0000``, ``V0001``, ...
        seed : int, default 1
            Seed of the second trial's draws (``SeedSequence([seed, 2])``, so it never repeats
            the first trial's patients even with the same number).
        site_shift : float or mapping, default 0.0
            Site/scanner shift of the representation in units of each gene's noise SD. A float
            ``s`` means ``{"offset": s, "gain": s / 2, "noise": s}``: per-gene offsets ``~ N(0,
            s^2)`` (a locked linear score moves by a constant: calibration changes,
            discrimination does not), per-gene gains ``log g ~ N(0, (s / 2)^2)`` and extra
            noise of SD ``s`` (both lower a locked score's discrimination). 0: no shift.
        prevalence : mapping, optional
            Target overall prevalence per genotype (``{"EGFR": 0.3}``), reached by scaling the
            odds of that genotype's per-cancer-type probabilities.
        cancer_type_mix : mapping, optional
            Weights of LUAD, LUSC, COAD, PAAD (normalised); default the first trial's mix.
        allocation : float, default 0.5
            Fraction randomised to the experimental arm; 0 or 1 gives a single-arm trial.
        n_sites : int, default 4
            Recruiting sites (``V01`` ...).
        control_median_os, dropout_rate, missing_genotype_rate : float, optional
            Default: the first trial's values.
        study_id : str, default "SIM-002"
        compute_attainable : bool, default True
            Compute ``truth.attainable_auroc`` for the second trial's population.

        Returns
        -------
        SimulatedTrial
            Its ``truth.population`` records the shift and the expected prevalences;
            :meth:`locked_truth` gives what a locked score achieves in it.

        Raises
        ------
        TarioClinicalError
            Invalid options (named, with the allowed range).

        Examples
        --------
        >>> dev = simulate_trial(60, seed=0, n_genes=20, compute_attainable=False)
        >>> val = dev.draw_second_trial(40, seed=5, site_shift=1.0, compute_attainable=False)
        >>> val.clinical["patient_id"].iloc[0], val.truth.population["shift"]["offset"]
        ('V0000', 1.0)
        """
        if self._generator is None:
            raise TarioClinicalError(
                "this SimulatedTrial carries no generator (built by hand or by an older version); "
                "simulate it again with simulate_trial()"
            )
        bio, first = self._generator
        n = _check_n_patients(n_patients)
        spec = _shift_spec(site_shift)
        if not 0.0 <= float(allocation) <= 1.0:
            raise TarioClinicalError(f"allocation must be between 0 and 1, got {allocation!r}")
        if not isinstance(n_sites, int | np.integer) or n_sites < 1:
            raise TarioClinicalError(f"n_sites must be an integer >= 1, got {n_sites!r}")
        probs = _population_probabilities(first.probs, prevalence, cancer_type_mix)
        ss = np.random.SeedSequence([int(seed), 2])
        # children are keyed by index: the first five are the original streams
        *children, ss_plant = ss.spawn(6)
        rng_pat, rng_x, rng_out, rng_mc, rng_site = (np.random.default_rng(s) for s in children)
        active = any(v > 0 for v in spec.values())
        shift = make_shift(rng_site, bio.base.size, spec) if active else None
        pop = Population(
            probs=probs,
            shift=shift,
            allocation=float(allocation),
            control_median_os=float(
                first.control_median_os if control_median_os is None else control_median_os
            ),
            dropout_rate=float(first.dropout_rate if dropout_rate is None else dropout_rate),
            n_sites=int(n_sites),
            missing_genotype_rate=float(
                first.missing_genotype_rate
                if missing_genotype_rate is None
                else missing_genotype_rate
            ),
            study_id=str(study_id),
            id_prefix="V",
            site_prefix="V",
        )
        params = {
            "n_patients": n,
            "seed": int(seed),
            **bio.params,
            "missing_genotype_rate": pop.missing_genotype_rate,
            "control_median_os": pop.control_median_os,
            "dropout_rate": pop.dropout_rate,
            "n_sites": pop.n_sites,
            "biology_seed": int(bio.seed),
            "second_trial": {
                "site_shift": spec,
                "prevalence": None if prevalence is None else dict(prevalence),
                "cancer_type_mix": None if cancer_type_mix is None else dict(cancer_type_mix),
                "allocation": pop.allocation,
                "study_id": pop.study_id,
            },
        }
        return _build_trial(
            bio,
            pop,
            n,
            (rng_pat, rng_x, rng_out, rng_mc),
            params,
            compute_attainable,
            int(seed),
            ss_plant,
        )

    def locked_truth(
        self,
        predict_proba: Callable[[pd.DataFrame], Any],
        target: str,
        *,
        n: int = 100_000,
        seed: int = 0,
        batch_size: int = 10_000,
    ) -> dict[str, float]:
        """What a fixed (locked) probability score achieves in this trial's population.

        Monte Carlo over ``n`` fresh patients of the same population (same site/scanner shift
        realisation, prevalences and arm allocation), scored by ``predict_proba``.

        Parameters
        ----------
        predict_proba : callable
            Takes a DataFrame (patients x genes, the representation's columns, float32) and
            returns ``P(target = 1)`` per row, e.g. ``LockedBiomarker.predict_proba``.
        target : {"EGFR", "KRAS", "STK11", "PTEN", "responder"}
        n : int, default 100,000
            Fresh patients (AUROC Monte Carlo SE about 0.002 at 15 % prevalence).
        seed : int, default 0
        batch_size : int, default 10,000
            Patients drawn and scored at a time (memory: ``batch_size x n_genes`` floats).

        Returns
        -------
        dict
            ``auroc, calibration_intercept`` (in the large, slope fixed at 1),
            ``calibration_slope, brier, prevalence, mean_predicted, n``.

        Raises
        ------
        TarioClinicalError
            Unknown target, or a ``predict_proba`` output of the wrong shape or outside [0, 1].
        """
        if target not in _LOCKED_TARGETS:
            raise TarioClinicalError(
                f"target must be one of {list(_LOCKED_TARGETS)}; got {target!r}"
            )
        if self._generator is None:
            raise TarioClinicalError("this SimulatedTrial carries no generator; simulate it again")
        bio, pop = self._generator
        genes = list(map(str, self.representations.var_names))
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 3]))
        probs, ys = [], []
        left = int(n)
        while left > 0:
            b = min(int(batch_size), left)
            x, labels = sample_patients(bio, pop, b, rng)
            p = np.asarray(predict_proba(pd.DataFrame(x, columns=genes)), dtype=float).ravel()
            if p.shape != (b,) or not np.all((p >= 0) & (p <= 1)):
                raise TarioClinicalError(
                    f"predict_proba must return {b} probabilities in [0, 1]; got shape {p.shape}"
                )
            probs.append(p)
            ys.append(labels[target])
            left -= b
        p_all, y_all = np.concatenate(probs), np.concatenate(ys)
        from ._generative import auroc

        lp = np.log(np.clip(p_all, 1e-12, 1 - 1e-12)) - np.log1p(-np.clip(p_all, 1e-12, 1 - 1e-12))
        intercept = _logistic_fit(np.ones((lp.size, 1)), y_all, lp)[0]
        slope = _logistic_fit(np.column_stack([np.ones(lp.size), lp]), y_all, np.zeros(lp.size))[1]
        return {
            "auroc": auroc(y_all, p_all),
            "calibration_intercept": float(intercept),
            "calibration_slope": float(slope),
            "brier": float(np.mean((p_all - y_all) ** 2)),
            "prevalence": float(y_all.mean()),
            "mean_predicted": float(p_all.mean()),
            "n": int(y_all.size),
        }


def _logistic_fit(x: np.ndarray, y: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Unpenalised logistic regression (Newton-Raphson with step halving) for the Monte Carlo
    calibration truth."""
    from scipy.special import expit

    beta = np.zeros(x.shape[1])

    def nll(b: np.ndarray) -> float:
        eta = offset + x @ b
        return float(np.sum(np.logaddexp(0.0, eta) - y * eta))

    cur = nll(beta)
    for _ in range(200):
        p = expit(offset + x @ beta)
        hess = x.T @ (x * (p * (1 - p))[:, None])
        step = np.linalg.lstsq(hess, x.T @ (y - p), rcond=None)[0]
        t = 1.0
        while True:
            new = beta + t * step
            val = nll(new)
            if val <= cur + 1e-12 or t < 1e-10:
                break
            t /= 2.0
        beta, cur = new, val
        if np.max(np.abs(t * step)) < 1e-12:
            break
    return beta


def _check_n_patients(n_patients: Any) -> int:
    if not isinstance(n_patients, int | np.integer) or n_patients < 10:
        raise TarioClinicalError(f"n_patients must be an integer >= 10, got {n_patients!r}")
    return int(n_patients)


def _shift_spec(site_shift: Any) -> dict[str, float]:
    if isinstance(site_shift, Mapping):
        unknown = sorted(set(site_shift) - {"offset", "gain", "noise"})
        if unknown:
            raise TarioClinicalError(
                f"site_shift has unknown key(s) {unknown}; allowed: offset, gain, noise"
            )
        spec = {k: float(site_shift.get(k, 0.0)) for k in ("offset", "gain", "noise")}
    else:
        try:
            s = float(site_shift)
        except (TypeError, ValueError):
            raise TarioClinicalError(
                f"site_shift must be a number or a mapping of offset/gain/noise; got {site_shift!r}"
            ) from None
        spec = {"offset": s, "gain": s / 2.0, "noise": s}
    bad = {k: v for k, v in spec.items() if not (math.isfinite(v) and v >= 0)}
    if bad:
        raise TarioClinicalError(f"site_shift values must be finite and >= 0; got {bad}")
    return spec


def _population_probabilities(
    base: Probabilities,
    prevalence: Mapping[str, float] | None,
    cancer_type_mix: Mapping[str, float] | None,
) -> Probabilities:
    if cancer_type_mix is not None:
        unknown = sorted(set(cancer_type_mix) - set(CANCER_TYPES))
        vals = [float(v) for v in cancer_type_mix.values()]
        if unknown or any(not (math.isfinite(v) and v >= 0) for v in vals) or sum(vals) <= 0:
            raise TarioClinicalError(
                f"cancer_type_mix must map cancer types {list(CANCER_TYPES)} to weights >= 0 "
                f"(not all 0); got {dict(cancer_type_mix)}"
            )
    if prevalence is not None:
        unknown = sorted(set(prevalence) - set(GENOTYPES))
        bad = {k: v for k, v in prevalence.items() if not (0 < float(v) < 1)}
        if unknown or bad:
            raise TarioClinicalError(
                f"prevalence must map genotypes {list(GENOTYPES)} to values in (0, 1); "
                f"got {dict(prevalence)}"
            )
    try:
        return adjust_probabilities(
            base,
            type_mix=None if cancer_type_mix is None else dict(cancer_type_mix),
            prevalence=None if prevalence is None else dict(prevalence),
        )
    except ValueError as err:
        raise TarioClinicalError(str(err)) from err


def _population_record(bio: Biology, pop: Population) -> dict[str, Any]:
    shift = pop.shift
    return {
        "biology_seed": int(bio.seed),
        "cancer_type_mix": {
            t: float(p) for t, p in zip(CANCER_TYPES, pop.probs.type_p, strict=True)
        },
        "expected_prevalence": {g: round(v, 6) for g, v in prevalences(pop.probs).items()},
        "allocation": float(pop.allocation),
        "shift": (
            {"offset": 0.0, "gain": 0.0, "noise": 0.0}
            if shift is None
            else {k: float(v) for k, v in shift.spec.items()}
        ),
        "study_id": pop.study_id,
    }


def _build_trial(
    bio: Biology,
    pop: Population,
    n: int,
    rngs: tuple[np.random.Generator, ...],
    params: dict[str, Any],
    compute_attainable: bool,
    seed: int,
    ss_plant: np.random.SeedSequence,
) -> SimulatedTrial:
    """Draw one trial of ``pop`` and wrap it with its truth and provenance.

    The original draws come from ``rngs``; the planted continuous target and histological
    subtype (new columns, appended) and their Monte Carlo truth from ``ss_plant``'s children.
    """
    rng_pat, rng_x, rng_out, rng_mc = rngs
    rng_plant, rng_plant_mc = (np.random.default_rng(s) for s in ss_plant.spawn(2))
    k = bio.model.k
    g = bio.base.size
    drawn = draw_trial(bio, pop, n, rng_pat, rng_x, rng_out)
    new = draw_planted(bio.model, drawn["d"], drawn["z"], rng_plant)
    for col, values in new.items():
        drawn["clinical"][col] = values
    ids, ctype = drawn["ids"], drawn["ctype"]
    genes = gene_symbols(g)
    programs = [f"P{j:02d}" for j in range(k)]
    latent = pd.DataFrame(drawn["z"], index=pd.Index(ids, name="patient_id"), columns=programs)
    if compute_attainable:
        att, att_linear = attainable(
            bio.model,
            rng_mc,
            probs=pop.probs,
            noise_var=None if pop.shift is None else pop.shift.noise_var(),
            allocation=pop.allocation,
        )
    else:
        att, att_linear = {}, {}
    noise_var = None if pop.shift is None else pop.shift.noise_var()
    planted = {
        "signature_score": planted_truth(
            bio.model,
            probs=pop.probs,
            noise_var=noise_var,
            rng=rng_plant_mc if compute_attainable else None,
        ),
        "histology_subtype": {
            "programs": list(SUBTYPE_PROGRAMS),
            "coefficients": {t: [list(b) for b in v] for t, v in SUBTYPE_COEF.items()},
            "base_probabilities": {t: dict(v) for t, v in HISTOLOGY.items()},
        },
        "survival": {
            "prognostic": dict(PROGNOSTIC_LOG_HR),
            "predictive": {"program": "P04", "arm_x_program": bio.model.benefit_effect},
            "arm": drawn["eff"]["arm"],
            "benefit_effect": bio.model.benefit_effect,
        },
    }

    import anndata as ad

    from .. import __version__

    obs = pd.DataFrame(index=pd.Index(ids, name="patient_id"))
    obs["cancer_type"] = pd.Categorical(ctype, categories=list(CANCER_TYPES))
    adata = ad.AnnData(
        X=drawn["x"].astype(np.float32),
        obs=obs,
        var=pd.DataFrame(index=pd.Index(genes, name="gene")),
    )
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
    d = drawn["d"]
    model = bio.model
    truth = TrialTruth(
        latent=latent,
        loadings=pd.DataFrame(model.loadings, index=programs, columns=genes),
        genotypes=pd.DataFrame(
            {gname: d[gname].astype(int) for gname in GENOTYPES}, index=latent.index
        ),
        attainable_auroc=att,
        attainable_auroc_linear=att_linear,
        effects={
            "genotype_shift": dict(model.genotype_shift),
            "stk11_on_P04": -model.stk11_immune,
            "response_probit": dict(model.resp),
            "log_hr": drawn["eff"],
            "control_median_os": pop.control_median_os,
            "predictive_program": "P04",
            "prognostic_log_hr": dict(PROGNOSTIC_LOG_HR),
            "benefit_effect": bio.model.benefit_effect,
        },
        benefit=pd.Series(
            drawn["benefit"], index=latent.index, name="log_hr_experimental_vs_control"
        ),
        params=params,
        population=_population_record(bio, pop),
        planted=planted,
    )
    return SimulatedTrial(
        clinical=drawn["clinical"],
        representations=adata,
        truth=truth,
        seed=int(seed),
        _generator=(bio, pop),
    )


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
    second_trial: Mapping[str, Any] | None = None,
    benefit_effect: float = -0.5,
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
    second_trial
        Options of a second trial from the same biology (see
        :meth:`SimulatedTrial.draw_second_trial`: ``n_patients, seed, site_shift, prevalence,
        cancer_type_mix, allocation, n_sites, control_median_os, dropout_rate,
        missing_genotype_rate, study_id, compute_attainable``), returned as
        ``trial.second_trial``. The first trial is the same with or without it.
    benefit_effect
        The planted *predictive* survival signal: change of the log-HR (experimental vs
        control) per unit of program P04 (default -0.5; ``0`` plants no treatment-effect
        heterogeneity, the overall arm effect -0.2 and the prognostic genotype terms stay).
        Part of the biology: a second trial inherits it. Affects OS/PFS only (the response
        probit keeps its arm x P04 term); draws nothing, so the representation and every other
        column are the same for any value.

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
    >>> pair = simulate_trial(60, seed=1, n_genes=20, compute_attainable=False,
    ...                       second_trial={"n_patients": 50, "site_shift": 0.5,
    ...                                     "prevalence": {"EGFR": 0.3}})
    >>> pair.second_trial.representations.shape
    (50, 20)
    """
    n = _check_n_patients(n_patients)
    if not 8 <= n_genes <= 25_000:
        raise TarioClinicalError(f"n_genes must be between 8 and 25,000, got {n_genes!r}")
    if n_programs < 8:
        raise TarioClinicalError(f"n_programs must be >= 8, got {n_programs!r}")
    if snr <= 0:
        raise TarioClinicalError(f"snr must be > 0, got {snr!r}")
    if not isinstance(benefit_effect, int | float | np.number) or not math.isfinite(
        float(benefit_effect)
    ):
        raise TarioClinicalError(f"benefit_effect must be a finite number, got {benefit_effect!r}")
    if second_trial is not None:
        if not isinstance(second_trial, Mapping):
            raise TarioClinicalError(
                f"second_trial must be a mapping of options; got {type(second_trial).__name__}"
            )
        unknown = sorted(set(second_trial) - set(SECOND_TRIAL_OPTIONS))
        if unknown:
            raise TarioClinicalError(
                f"second_trial has unknown option(s) {unknown}; allowed: "
                f"{', '.join(SECOND_TRIAL_OPTIONS)}"
            )
    if compute_attainable and n_genes < n_programs:
        raise TarioClinicalError(
            f"compute_attainable needs at least as many genes as programs (the programs' "
            f"sufficient statistic in the expression); got n_genes={n_genes!r} < "
            f"n_programs={n_programs!r}: raise n_genes or pass compute_attainable=False"
        )

    ss = np.random.SeedSequence(seed)
    # children are keyed by index: the first five are the original streams, the sixth draws
    # only what was planted later (signature_score, histology_subtype)
    *children, ss_plant = ss.spawn(6)
    rng_model, rng_pat, rng_x, rng_out, rng_mc = (np.random.default_rng(s) for s in children)
    bio = make_biology(
        rng_model,
        seed=int(seed),
        n_genes=int(n_genes),
        n_programs=int(n_programs),
        snr=float(snr),
        genotype_effect=float(genotype_effect),
        benefit_effect=float(benefit_effect),
    )
    pop = Population(
        control_median_os=control_median_os,
        dropout_rate=dropout_rate,
        n_sites=n_sites,
        missing_genotype_rate=missing_genotype_rate,
    )
    params = {
        "n_patients": n,
        "seed": int(seed),
        "n_genes": int(n_genes),
        "n_programs": int(n_programs),
        "snr": float(snr),
        "genotype_effect": float(genotype_effect),
        "missing_genotype_rate": float(missing_genotype_rate),
        "control_median_os": float(control_median_os),
        "dropout_rate": float(dropout_rate),
        "n_sites": int(n_sites),
    }
    trial = _build_trial(
        bio,
        pop,
        n,
        (rng_pat, rng_x, rng_out, rng_mc),
        params,
        compute_attainable,
        int(seed),
        ss_plant,
    )
    if second_trial is not None:
        trial.second_trial = trial.draw_second_trial(**dict(second_trial))
    return trial
