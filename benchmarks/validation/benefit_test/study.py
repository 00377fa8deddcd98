"""Validation study: size and power of the benefit decoder's permutation test.

The benefit analysis (:func:`tario_clinical.decode_benefit`) tests "no benefit" -- the
treatment effect does not vary with the representation -- by three one-sided statistics of the
cross-fitted benefit score: C-for-benefit > 0.5, the arm x score interaction of a Cox model and
the high-vs-low-group log-HR difference. Its jackknife Wald tests are conservative at that null
(0.005-0.034 at nominal 0.05 in ``../endpoints`` and ``../endpoints_simtrial``) and the OOF
model-based tests anti-conservative (0.056-0.110). This study measures the permutation test of
the decoder, which re-runs the *whole* cross-fitting (fold assignment included) on ``B``
permuted cohorts, under two permutation schemes:

``arm``
    the arm labels are re-randomised among the patients, representation and outcome kept
    (exact under "the treatment has no effect on anyone"; under "no benefit" with an overall
    arm effect the permuted cohorts lose the arm effect, so it is approximate there);
``rows``
    the (arm, outcome) pairs are permuted against the representation (exact under "the
    representation carries neither prognosis nor benefit"; it keeps the arm effect but loses
    the prognostic signal).

Cells (the replicates of the two sibling studies, same seeds, same data, same folds: ``T``
reproduces their ``replicates.csv``): the Gaussian design of ``../endpoints`` (n = 200, D = 20,
prognostic log-HR SD 0.7, arm log-HR -0.3; ``ben_null``: no predictive term, ``ben_planted``:
predictive SD 1.0) and ``simulate_trial`` cohorts of ``../endpoints_simtrial`` (50 genes,
prognostic genotype terms, overall arm effect -0.2, predictive arm x P04 term -0.5, -1.0
(``ben_strong``) or none; n = 200 and 500); and this study's own binary-response cells
(``benbin_*``: the Gaussian design with a logistic response, n = 300).

Every replicate records, per scheme and metric, the statistic ``T``, the one-sided permutation
p-value ``(1 + #{T_b >= T}) / (1 + B)`` (in the direction of benefit) and the ``B`` permuted
statistics (JSON). With ``B = 19`` a test that rejects at ``p <= 0.05`` has exact size 0.05
when the permutation is exact.

Usage (resumable; appends to ``replicates.csv``; one worker; ``--cells`` to split work)::

    python benchmarks/validation/benefit_test/study.py
    python benchmarks/validation/benefit_test/study.py --truth   # -> truth.csv (estimands)
    python benchmarks/validation/benefit_test/summarise.py      # -> table.md, summary.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import importlib.util
import json
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "replicates.csv"
B = 19
SCHEMES = ("arm", "rows")


def _load(name: str, path: Path):  # noqa: ANN202 - a sibling study's module
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


gauss = _load("endpoints_study", HERE.parent / "endpoints" / "study.py")
simtrial = _load("endpoints_simtrial_study", HERE.parent / "endpoints_simtrial" / "study.py")


@dataclass(frozen=True)
class Cell:
    name: str  # the sibling study's cell name (gauss_binary: this study's own)
    design: str  # gauss | simtrial | gauss_binary
    reps: int
    signal: float = 0.0  # gauss_binary: SD of the predictive log-OR term


CELLS = [
    Cell("ben_null_n200_d20", "gauss", 400),
    Cell("ben_null_n200_g50", "simtrial", 400),
    Cell("ben_null_n500_g50", "simtrial", 400),
    Cell("ben_planted_n200_d20", "gauss", 200),
    Cell("ben_planted_n200_g50", "simtrial", 200),
    Cell("ben_planted_n500_g50", "simtrial", 200),
    Cell("ben_strong_n500_g50", "simtrial", 200),
    # binary response (this study's own cells): the Gaussian design of ../endpoints, logistic
    # logit P(response) = -0.2 + x'beta + arm (0.5 + x'beta_pred), prognostic SD 0.7
    Cell("benbin_null_n300_d20", "gauss_binary", 400, 0.0),
    Cell("benbin_planted_n300_d20", "gauss_binary", 200, 1.0),
]

FIELDS = ["cell", "rep", "scheme", "metric", "T", "p_perm", "perm", "seconds"]


def _sibling_cell(cell: Cell):  # noqa: ANN202 - the sibling study's Cell
    if cell.design == "gauss_binary":
        return gauss.Cell(cell.name, "benefit", 300, 20, cell.signal, cell.reps)
    sib = gauss if cell.design == "gauss" else simtrial
    return next(c for c in sib.CELLS if c.name == cell.name)


def _binary_sample(pop, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Representation and ``(response, 1, arm)`` of the binary-response cells."""
    X = pop.x(rng, n)
    arm = rng.permutation(np.arange(n) % 2).astype(float)
    lp = -0.2 + X @ pop.beta + arm * (0.5 + X @ pop.beta_pred)
    resp = (rng.random(n) < 1.0 / (1.0 + np.exp(-lp))).astype(float)
    return X, np.column_stack([resp, np.ones(n), arm])


def data(cell: Cell, rep: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A replicate: representation, ``(outcome, event, arm)`` and the plan seed (the sibling
    study's for its cells)."""
    sc = _sibling_cell(cell)
    ss = np.random.SeedSequence([zlib.crc32(sc.name.encode()), rep])
    s_data, s_plan, _ = ss.spawn(3)
    seed = int(s_plan.generate_state(1)[0])
    if cell.design == "gauss_binary":
        X, y = _binary_sample(gauss.Population(sc), np.random.default_rng(s_data), sc.n)
    elif cell.design == "gauss":
        X, y = gauss.Population(sc).benefit(np.random.default_rng(s_data), sc.n)
    else:
        X, y = simtrial.outcome(sc, simtrial.draw(sc, sc.n, int(s_data.generate_state(1)[0])))
    return X, y, seed


def _design(problem, y: np.ndarray, seed: int):  # noqa: ANN001, ANN202 - CVDesign
    """The sibling studies' CV design of a replicate: 5 x 5 outer, 5 inner folds."""
    from tario_clinical.decode.endpoint_inference import cv_design

    return cv_design(
        problem.strata(y),
        pd.DataFrame(index=np.arange(y.shape[0])),
        cv=None,
        n_splits=5,
        n_repeats=5,
        n_inner_splits=5,
        group_by=None,
        seed=seed,
    )


def one(cell: Cell, rep: int, schemes: tuple[str, ...] = SCHEMES, n_perm: int = B) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from tario_clinical.decode import benefit as ben
    from tario_clinical.decode import survival_decoder
    from tario_clinical.decode.cross_validation import default_Cs
    from tario_clinical.decode.endpoint_inference import (
        cross_validate_plan,
        endpoint_inference,
    )

    X, y, seed = data(cell, rep)
    n, D = X.shape
    survival = cell.design != "gauss_binary"
    rows = []
    with threadpool_limits(1):
        if survival:
            pen = survival_decoder.default_lambdas(10, n, D, int(y[:, 1].sum())) / 4.0
        else:  # decode_benefit's defaults
            pen = default_Cs(10, n, D) * 4.0
        problem = ben._BenefitProblem(X=X, penalties=pen, survival=survival)
        design = _design(problem, y, seed)
        T = problem.statistics(y, cross_validate_plan(problem, y, design.plan))
        M = len(problem.metrics)
        nan4 = tuple(np.full(M, np.nan) for _ in range(4))
        for scheme in schemes:
            t0 = time.perf_counter()
            problem.permutation = scheme
            table, reps = endpoint_inference(
                problem,
                y,
                design,
                T,
                ci_method="oof",
                p_method="permutation",
                level=0.95,
                n_jackknife=10,
                n_bootstrap=2,
                n_permutations=n_perm,
                seed=seed,
                n_jobs=1,
                progress=False,
                oof_inference=lambda: nan4,
            )
            secs = round(time.perf_counter() - t0, 3)
            for j, m in enumerate(problem.metrics):
                if m.null is None:
                    continue
                col = reps["permutation"][m.name].to_numpy()
                rows.append(
                    {
                        "cell": cell.name,
                        "rep": rep,
                        "scheme": scheme,
                        "metric": m.name,
                        "T": float(T[j]),
                        "p_perm": float(table["p_value"].iloc[j]),
                        "perm": json.dumps([float(f"{v:.8g}") for v in col]),
                        "seconds": secs,
                    }
                )
    return rows


# ------------------------------------------------------------------------------ truth pass
#: ``--truth``: the estimand of the benefit metrics (for the coverage of the sibling studies'
#: jackknife intervals, which their replicates.csv already hold): each outer fold model of the
#: replicate's cross-fitting also scores ``M_TRUTH`` fresh patients of the same population
#: (standardised on its training patients, as the OOF scores); per repeat the fold models'
#: fresh scores are pooled (the fresh patients once per fold model, as OOF scores pool the
#: folds), benefit groups cut each fold model's block at the median of the other fold models'
#: fresh scores (the cross-fitted rule), and the metrics are computed there; truth = the mean
#: over repeats.
M_TRUTH = 4000
TRUTH_OUT = HERE / "truth.csv"
TRUTH_FIELDS = ["cell", "rep", "metric", "T", "truth", "seconds"]


def truth_rows(cell: Cell, rep: int) -> list[dict]:
    from threadpoolctl import threadpool_limits

    from tario_clinical.decode import benefit as ben
    from tario_clinical.decode import survival_decoder
    from tario_clinical.decode.benefit_metrics import benefit_metrics
    from tario_clinical.decode.cross_validation import default_Cs
    from tario_clinical.decode.endpoint_inference import cross_validate_plan

    t0 = time.perf_counter()
    X, y, seed = data(cell, rep)
    sc = _sibling_cell(cell)
    survival = cell.design != "gauss_binary"
    s_truth = np.random.SeedSequence([zlib.crc32(sc.name.encode()), rep]).spawn(3)[2]
    if cell.design == "gauss_binary":
        Xn, yn = _binary_sample(gauss.Population(sc), np.random.default_rng(s_truth), M_TRUTH)
    elif cell.design == "gauss":
        Xn, yn = gauss.Population(sc).benefit(np.random.default_rng(s_truth), M_TRUTH)
    else:
        Xn, yn = simtrial.outcome(sc, simtrial.draw(sc, M_TRUTH, int(s_truth.generate_state(1)[0])))
    n, D = X.shape
    extra = np.arange(n, n + M_TRUTH)
    stash: list = []

    class Truth(ben._BenefitProblem):
        def fit_fold(self, train, test, yy, inner):  # noqa: ANN001, ANN202
            pen, tr, te = super().fit_fold(train, np.concatenate([test, extra]), yy, inner)
            stash.append((tr, te[test.size :]))
            return pen, tr, te[: test.size]

    with threadpool_limits(1):
        if survival:
            pen = survival_decoder.default_lambdas(10, n, D, int(y[:, 1].sum())) / 4.0
        else:
            pen = default_Cs(10, n, D) * 4.0
        problem = Truth(X=np.vstack([X, Xn]), penalties=pen, survival=survival)
        design = _design(problem, y, seed)
        T = problem.statistics(y, cross_validate_plan(problem, y, design.plan))
        R = design.plan.outer.shape[0]
        nK = len(stash) // R
        per = []
        for r in range(R):
            blocks = []
            for tr, te in stash[r * nK : (r + 1) * nK]:
                sd = tr.std()
                blocks.append((te - tr.mean()) / (sd if sd > 0 else 1.0))
            high = [
                b > np.median(np.concatenate([o for j, o in enumerate(blocks) if j != k]))
                for k, b in enumerate(blocks)
            ]
            per.append(
                benefit_metrics(
                    np.concatenate(blocks),
                    np.concatenate(high),
                    np.tile(yn[:, 2], nK),
                    np.tile(yn[:, 0], nK),
                    np.tile(yn[:, 1], nK),
                    survival,
                )
            )
        truth = np.nanmean(np.array(per), axis=0)
    secs = round(time.perf_counter() - t0, 3)
    return [
        {
            "cell": cell.name,
            "rep": rep,
            "metric": m.name,
            "T": float(T[j]),
            "truth": float(truth[j]),
            "seconds": secs,
        }
        for j, m in enumerate(problem.metrics)
    ]


def truth_main(cells: list[Cell], max_reps: int, stop) -> None:  # noqa: ANN001
    # the replicates the sibling studies ran (their jackknife intervals are in their CSVs);
    # this study's own binary cells: its replicates
    have: dict[str, list[int]] = {
        c.name: list(range(c.reps)) for c in cells if c.design == "gauss_binary"
    }
    for path in (gauss.OUT, simtrial.OUT):
        with path.open() as fh:
            for r in csv.DictReader(fh):
                have.setdefault(r["cell"], [])
                if int(r["rep"]) not in have[r["cell"]]:
                    have[r["cell"]].append(int(r["rep"]))
    done = set()
    if TRUTH_OUT.exists():
        with TRUTH_OUT.open() as fh:
            done = {(r["cell"], int(r["rep"])) for r in csv.DictReader(fh)}
    tasks = [
        (c, rep)
        for c in cells
        for rep in sorted(have.get(c.name, []))[: max_reps or None]
        if (c.name, rep) not in done
    ]
    tasks.sort(key=lambda t: (t[1], t[0].name))
    print(f"{len(tasks)} truth replicates to run", file=sys.stderr, flush=True)
    new = not TRUTH_OUT.exists()
    with TRUTH_OUT.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=TRUTH_FIELDS)
        if new:
            w.writeheader()
        for i, (c, rep) in enumerate(tasks, 1):
            if stop is not None and _dt.datetime.now(_dt.UTC) >= stop:
                print(f"stopped at {stop.isoformat()} ({i - 1} run)", file=sys.stderr)
                break
            rows = truth_rows(c, rep)
            w.writerows(rows)
            fh.flush()
            print(f"{i}/{len(tasks)} {c.name} rep {rep} {rows[0]['seconds']}s", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    ap.add_argument("--max-reps", type=int, default=0, help="cap replicates per cell")
    ap.add_argument("--schemes", default=",".join(SCHEMES), help="permutation schemes")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument(
        "--stop-at", default="", help="UTC time (ISO) after which no new replicate starts"
    )
    ap.add_argument(
        "--truth",
        action="store_true",
        help="truth pass (estimands of the benefit metrics, into truth.csv) over the sibling "
        "studies' benefit replicates",
    )
    args = ap.parse_args()
    schemes = tuple(s for s in args.schemes.split(",") if s)
    stop = (
        _dt.datetime.fromisoformat(args.stop_at).replace(tzinfo=_dt.UTC) if args.stop_at else None
    )
    cells = [c for c in CELLS if not args.cells or c.name in args.cells.split(",")]
    if args.truth:
        truth_main(cells, args.max_reps, stop)
        return
    out = Path(args.out)
    done = set()
    if out.exists():
        with out.open() as fh:
            for r in csv.DictReader(fh):
                done.add((r["cell"], int(r["rep"]), r["scheme"]))
    tasks = []
    for c in cells:
        cap = c.reps if not args.max_reps else min(c.reps, args.max_reps)
        for rep in range(cap):
            todo = tuple(s for s in schemes if (c.name, rep, s) not in done)
            if todo:
                tasks.append((c, rep, todo))
    order = {c.name: i for i, c in enumerate(cells)}
    tasks.sort(key=lambda t: (t[1], order[t[0].name]))
    print(f"{len(tasks)} replicates to run", file=sys.stderr, flush=True)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            w.writeheader()
        for i, (c, rep, todo) in enumerate(tasks, 1):
            if stop is not None and _dt.datetime.now(_dt.UTC) >= stop:
                print(f"stopped at {stop.isoformat()} ({i - 1} run)", file=sys.stderr)
                break
            rows = one(c, rep, todo)
            w.writerows(rows)
            fh.flush()
            print(f"{i}/{len(tasks)} {c.name} rep {rep} {rows[0]['seconds']}s", file=sys.stderr)


if __name__ == "__main__":
    main()
