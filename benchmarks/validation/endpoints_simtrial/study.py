"""Validation study: the endpoint decoders on ``simulate_trial`` cohorts with planted truth.

The sibling study ``benchmarks/validation/endpoints`` checks the endpoint decoders on Gaussian
designs. This one runs the same decoders, the same way, on cohorts of the package's own trial
simulator (:func:`tario_clinical.simulate.simulate_trial`), whose planted signals are not
Gaussian (mixtures over cancer type and genotype, censored exponential survival, a
representation with half of its genes pure noise):

* ``signature_score`` -- continuous, ``10 + Z a + 0.8 e`` (``truth.planted["signature_score"]``);
* ``histology_subtype`` -- 4 levels within LUAD, multinomial logit on the programs P05, P06
  (the cohort is LUAD only, so nothing of it is cancer type);
* OS -- prognostic genotype terms, the arm and the predictive arm x P04 term;
* benefit on OS -- planted predictive term (``benefit_effect = -0.5``: the log-HR changes by
  -0.5 per SD of P04) and none (``benefit_effect = 0``; the prognostic terms stay).

Every replicate draws a cohort of ``n`` patients (a trial of the cell's fixed biology), runs the
endpoint's default nested CV (5-fold x 5 repeats, 5 inner folds, the decoder's default penalty
path) through the decoder's own problem class and
:func:`tario_clinical.decode.endpoint_inference.endpoint_inference` (grouped jackknife of the
whole nested CV, G = 10, the default interval and Wald p-value), and records one row per metric
in ``replicates.csv`` (the columns of the sibling study).

Truth (``truth``) of a replicate: the metric of its *fitted fold models* on ``M`` fresh patients
of the same population (another trial of the same biology and population, drawn by
:meth:`SimulatedTrial.draw_second_trial`), the fold models' predictions of a repeat pooled as the
OOF predictions are, averaged over the 5 repeats; the estimand is the mean of ``truth`` over the
cell's replicates. The truth machinery (fold models predicting appended rows, the pooled
categorical and survival metrics) is imported from the sibling study. For the continuous target
the truth is Monte Carlo too (the representation is a mixture, not Gaussian).

Seeds: ``SeedSequence([crc32(cell name), rep])`` spawns the cohort seed, the CV plan (and
jackknife groups) seed and the truth sample's seed. A cell's biology is ``simulate_trial(seed=
crc32(cell name) % 2**31, n_genes=D, benefit_effect=...)``; cohorts and truth samples are its
second trials (ids ``V...``, 4 sites), seeds from the spawned children.

Usage (resumable; appends to ``replicates.csv``; one worker)::

    python benchmarks/validation/endpoints_simtrial/study.py
    python benchmarks/validation/endpoints_simtrial/summarise.py
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def _sibling():  # noqa: ANN202 - the sibling study's module (problem classes with a truth hook)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "endpoints_study", HERE.parent / "endpoints" / "study.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


base = _sibling()

OUT = HERE / "replicates.csv"
G = base.G
FIELDS = base.FIELDS
M_CONT = 20_000
M_CAT = 20_000
M_SURV = 4_000
LUAD_ONLY = {"LUAD": 1.0}
SUBTYPES = {  # histology_subtype within LUAD -> class name of the decoder
    "acinar adenocarcinoma": "acinar",
    "lepidic adenocarcinoma": "lepidic",
    "papillary adenocarcinoma": "papillary",
    "solid adenocarcinoma": "solid",
}


@dataclass(frozen=True)
class Cell:
    name: str
    endpoint: str  # continuous | categorical | survival | benefit
    n: int
    D: int
    benefit_effect: float
    mix: tuple[tuple[str, float], ...] | None
    reps: int


CELLS = [
    Cell("signature_n200_g50", "continuous", 200, 50, -0.5, None, 400),
    Cell("subtype_luad_n200_g50", "categorical", 200, 50, -0.5, tuple(LUAD_ONLY.items()), 400),
    Cell("os_n200_g50", "survival", 200, 50, -0.5, None, 400),
    Cell("ben_planted_n200_g50", "benefit", 200, 50, -0.5, None, 400),
    Cell("ben_null_n200_g50", "benefit", 200, 50, 0.0, None, 400),
    # larger cohorts: a stronger OS signal and the benefit test's power at n = 500
    Cell("os_n500_g50", "survival", 500, 50, -0.5, None, 400),
    Cell("ben_planted_n500_g50", "benefit", 500, 50, -0.5, None, 400),
    Cell("ben_null_n500_g50", "benefit", 500, 50, 0.0, None, 400),
    # twice the simulator's default predictive term
    Cell("ben_strong_n500_g50", "benefit", 500, 50, -1.0, None, 400),
]

#: scheduling only: replicate r of a cell runs at "time" r x COST (a few seconds each, n = 500
#: about as fast as n = 200): every cell fills at the same pace
COST = {"continuous": 1.0, "categorical": 1.0, "survival": 1.0, "benefit": 1.0}

_BIOLOGY: dict[str, object] = {}


def biology(cell: Cell):  # noqa: ANN201 - SimulatedTrial (its generator is the cell's biology)
    from tario_clinical.simulate import simulate_trial

    if cell.name not in _BIOLOGY:
        _BIOLOGY[cell.name] = simulate_trial(
            20,
            seed=zlib.crc32(cell.name.encode()) % 2**31,
            n_genes=cell.D,
            compute_attainable=False,
            benefit_effect=cell.benefit_effect,
        )
    return _BIOLOGY[cell.name]


def draw(cell: Cell, n: int, seed: int):  # noqa: ANN201 - SimulatedTrial
    return biology(cell).draw_second_trial(
        n,
        seed=seed,
        cancer_type_mix=None if cell.mix is None else dict(cell.mix),
        compute_attainable=False,
    )


def outcome(cell: Cell, trial) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Representation (float64) and the endpoint's ``y`` as the decoder's problem takes it."""
    X = np.asarray(trial.representations.X, dtype=float)
    c = trial.clinical
    if cell.endpoint == "continuous":
        return X, c["signature_score"].to_numpy(float)
    if cell.endpoint == "categorical":
        names = sorted(SUBTYPES.values())
        code = c["histology_subtype"].map(SUBTYPES).map({k: i for i, k in enumerate(names)})
        return X, code.to_numpy(float)
    t, e = c["os_time"].to_numpy(float), c["os_event"].to_numpy(float)
    if cell.endpoint == "survival":
        return X, np.column_stack([t, e])
    arm = (c["arm"] == "experimental").to_numpy(float)
    return X, np.column_stack([t, e, arm])


def _truth_continuous(y_new: np.ndarray, stash: list, R: int) -> dict:
    from tario_clinical.decode.regression import continuous_metrics

    nK = len(stash) // R
    per = [
        continuous_metrics(np.tile(y_new, nK), np.concatenate(stash[r * nK : (r + 1) * nK]))
        for r in range(R)
    ]
    m = np.nanmean(np.array(per), axis=0)
    return {"r2": float(m[0]), "pearson_r": float(m[1])}


# ------------------------------------------------------------------------------ one replicate
def one(cell: Cell, rep: int) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from tario_clinical.decode import benefit as ben
    from tario_clinical.decode import multiclass, regression, survival_decoder
    from tario_clinical.decode.cross_validation import default_Cs
    from tario_clinical.decode.endpoint_inference import (
        cross_validate_plan,
        cv_design,
    )

    RegTruth, SurvTruth, CatTruth = base._problems()
    t0 = time.perf_counter()
    ss = np.random.SeedSequence([zlib.crc32(cell.name.encode()), rep])
    s_data, s_plan, s_truth = ss.spawn(3)
    seed = int(s_plan.generate_state(1)[0])
    n, D = cell.n, cell.D
    X, y = outcome(cell, draw(cell, n, int(s_data.generate_state(1)[0])))
    t_seed = int(s_truth.generate_state(1)[0])
    truth: dict[str, float] = {}
    with threadpool_limits(1):
        if cell.endpoint == "continuous":
            Xn, yn = outcome(cell, draw(cell, M_CONT, t_seed))
            problem = RegTruth(X=np.vstack([X, Xn]), alphas=regression.default_alphas(13, n, D))
            problem.extra = np.arange(n, n + M_CONT)
            oof = lambda run: regression._oof_formulas(  # noqa: E731
                y, np.nanmean(run.pred[:, :, 0], axis=0), 0.95
            )
        elif cell.endpoint == "categorical":
            Xn, yn = outcome(cell, draw(cell, M_CAT, t_seed))
            K = len(SUBTYPES)
            problem = CatTruth(
                X=np.vstack([X, Xn]), Cs=default_Cs(10, n, D), classes=sorted(SUBTYPES.values())
            )
            problem.extra = np.arange(n, n + M_CAT)
            oof = lambda run: multiclass._oof_formulas(  # noqa: E731
                y, np.nanmean(run.pred, axis=0), K, 0.95
            )
        elif cell.endpoint == "survival":
            Xn, yn = outcome(cell, draw(cell, M_SURV, t_seed))
            ev = y[y[:, 1] == 1, 0]
            problem = SurvTruth(
                X=np.vstack([X, Xn]),
                lambdas=survival_decoder.default_lambdas(10, n, D, int(y[:, 1].sum())),
                horizon=float(np.median(ev)),
                times=np.quantile(ev, [0.25, 0.5, 0.75]),
            )
            problem.extra = np.arange(n, n + M_SURV)
            oof = lambda run: survival_decoder._oof_formulas(  # noqa: E731
                y, np.nanmean(run.pred[:, :, 0], axis=0), len(problem.metrics), 0.95
            )
        else:
            pen = survival_decoder.default_lambdas(10, n, D, int(y[:, 1].sum())) / 4.0
            problem = ben._BenefitProblem(X=X, penalties=pen, survival=True)
            oof = lambda run: ben._oof_formulas(  # noqa: E731
                np.nanmean(run.pred[:, :, 0], axis=0), run, y, True, "median", 0.95
            )
        if hasattr(problem, "extra"):
            problem.stash = []
        design = cv_design(
            problem.strata(y),
            pd.DataFrame(index=np.arange(n)),
            cv=None,
            n_splits=5,
            n_repeats=5,
            n_inner_splits=5,
            group_by=None,
            seed=seed,
        )
        run = cross_validate_plan(problem, y, design.plan)
        T = problem.statistics(y, run)
        names = [m.name for m in problem.metrics]
        if cell.endpoint == "continuous":
            truth = _truth_continuous(yn, problem.stash, 5)
        elif cell.endpoint == "categorical":
            vals = base._truth_categorical(problem, yn, problem.stash, 5)
            truth = dict(zip(names, vals, strict=True))
        elif cell.endpoint == "survival":
            truth = base._truth_survival(problem, yn, problem.stash, 5)
        if hasattr(problem, "extra"):
            problem.extra, problem.stash = None, None
    return base.infer_rows(cell, rep, n, D, problem, y, design, run, T, truth, oof, seed, t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    ap.add_argument("--max-reps", type=int, default=0, help="cap replicates per cell (smoke)")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument(
        "--stop-at",
        default="",
        help="UTC time (ISO, e.g. 2026-12-01T16:40) after which no new replicate starts",
    )
    args = ap.parse_args()
    stop = (
        _dt.datetime.fromisoformat(args.stop_at).replace(tzinfo=_dt.UTC) if args.stop_at else None
    )
    cells = [c for c in CELLS if not args.cells or c.name in args.cells.split(",")]
    out = Path(args.out)
    done = set()
    if out.exists():
        with out.open() as fh:
            for r in csv.DictReader(fh):
                done.add((r["cell"], int(r["rep"])))
    tasks = []
    for c in cells:
        cap = c.reps if not args.max_reps else min(c.reps, args.max_reps)
        tasks += [(c, rep) for rep in range(cap) if (c.name, rep) not in done]
    order = {c.name: i for i, c in enumerate(cells)}
    tasks.sort(key=lambda cr: (cr[1] * COST[cr[0].endpoint], order[cr[0].name]))
    print(f"{len(tasks)} replicates to run ({len(done)} done)", file=sys.stderr, flush=True)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            w.writeheader()
        for i, (c, rep) in enumerate(tasks, 1):
            if stop is not None and _dt.datetime.now(_dt.UTC) >= stop:
                print(f"stopped at {stop.isoformat()} ({i - 1} run)", file=sys.stderr)
                break
            rows = one(c, rep)
            w.writerows(rows)
            fh.flush()
            print(
                f"{i}/{len(tasks)} {c.name} rep {rep} {rows[0]['seconds']}s",
                file=sys.stderr,
                flush=True,
            )


if __name__ == "__main__":
    main()
