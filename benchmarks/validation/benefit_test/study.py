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

``--ci`` (2026-12-02) runs the decoder's default inference end to end
(``ci_method="randomisation"``: the benefit statistics' SE from the B arm re-randomisations,
the within-group effects' from the grouped jackknife) and keeps both sets of re-runs, on three
stress cells of the interval: a benefit twice the planted one (``benvs_n200_d20``, time to
event; ``benbinvs_n300_d20``, response) and no benefit under a strong overall effect
(``benarm_null_n200_d20``, arm log-HR -1).

Usage (resumable; appends to ``replicates.csv``; one worker; ``--cells`` to split work)::

    python benchmarks/validation/benefit_test/study.py
    python benchmarks/validation/benefit_test/study.py --truth   # -> truth.csv (estimands)
    python benchmarks/validation/benefit_test/study.py --ci --cells benvs_n200_d20,benarm_null_n200_d20,benbinvs_n300_d20
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
    signal: float = 0.0  # gauss_binary / gauss_own: SD of the predictive log-OR / log-HR term
    arm: float = -0.3  # gauss_own: the overall arm log-HR


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
    # stress cells of the benefit interval (--ci, 2026-12-02): a benefit twice the planted one
    # (time to event and response), and no benefit under a strong overall arm effect (log-HR -1)
    Cell("benvs_n200_d20", "gauss_own", 150, 2.0, -0.3),
    Cell("benarm_null_n200_d20", "gauss_own", 150, 0.0, -1.0),
    Cell("benbinvs_n300_d20", "gauss_binary", 300, 2.0),
]
#: cells whose replicates are this study's own (not a sibling study's)
OWN = ("gauss_binary", "gauss_own")

FIELDS = ["cell", "rep", "scheme", "metric", "T", "p_perm", "perm", "seconds"]


def _sibling_cell(cell: Cell):  # noqa: ANN202 - the sibling study's Cell
    if cell.design == "gauss_binary":
        return gauss.Cell(cell.name, "benefit", 300, 20, cell.signal, cell.reps)
    if cell.design == "gauss_own":
        return gauss.Cell(cell.name, "benefit", 200, 20, cell.signal, cell.reps)
    sib = gauss if cell.design == "gauss" else simtrial
    return next(c for c in sib.CELLS if c.name == cell.name)


def _binary_sample(pop, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Representation and ``(response, 1, arm)`` of the binary-response cells."""
    X = pop.x(rng, n)
    arm = rng.permutation(np.arange(n) % 2).astype(float)
    lp = -0.2 + X @ pop.beta + arm * (0.5 + X @ pop.beta_pred)
    resp = (rng.random(n) < 1.0 / (1.0 + np.exp(-lp))).astype(float)
    return X, np.column_stack([resp, np.ones(n), arm])


def _own_survival(
    cell: Cell, pop, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """The Gaussian time-to-event design with the cell's own arm effect."""
    X = pop.x(rng, n)
    arm = rng.permutation(np.arange(n) % 2).astype(float)
    t, e = pop._times(rng, X @ pop.beta + arm * (cell.arm + X @ pop.beta_pred))
    return X, np.column_stack([t, e, arm])


def _sample(cell: Cell, sc, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    if cell.design == "gauss_binary":
        return _binary_sample(gauss.Population(sc), rng, n)
    if cell.design == "gauss_own":
        return _own_survival(cell, gauss.Population(sc), rng, n)
    return gauss.Population(sc).benefit(rng, n)


def data(cell: Cell, rep: int) -> tuple[np.ndarray, np.ndarray, int]:
    """A replicate: representation, ``(outcome, event, arm)`` and the plan seed (the sibling
    study's for its cells)."""
    sc = _sibling_cell(cell)
    ss = np.random.SeedSequence([zlib.crc32(sc.name.encode()), rep])
    s_data, s_plan, _ = ss.spawn(3)
    seed = int(s_plan.generate_state(1)[0])
    if cell.design != "simtrial":
        X, y = _sample(cell, sc, np.random.default_rng(s_data), sc.n)
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


def _penalties(X: np.ndarray, y: np.ndarray, survival: bool) -> np.ndarray:
    """decode_benefit's default penalty path."""
    from tario_clinical.decode import survival_decoder
    from tario_clinical.decode.cross_validation import default_Cs

    n, D = X.shape
    if survival:
        return survival_decoder.default_lambdas(10, n, D, int(y[:, 1].sum())) / 4.0
    return default_Cs(10, n, D) * 4.0


def _observed(cell: Cell, rep: int):  # noqa: ANN202 - (problem, y, design, T, seed)
    """A replicate's benefit problem, CV design and observed statistics (one BLAS thread)."""
    from tario_clinical.decode import benefit as ben
    from tario_clinical.decode.endpoint_inference import cross_validate_plan

    X, y, seed = data(cell, rep)
    survival = cell.design != "gauss_binary"
    problem = ben._BenefitProblem(X=X, penalties=_penalties(X, y, survival), survival=survival)
    design = _design(problem, y, seed)
    T = problem.statistics(y, cross_validate_plan(problem, y, design.plan))
    return problem, y, design, T, seed


def _infer(problem, y, design, T, seed: int, ci_method: str, n_perm: int, **kw):  # noqa: ANN001, ANN003, ANN202
    """The decoder's inference with the study's settings (B = n_perm, G = 10, one worker)."""
    from tario_clinical.decode.endpoint_inference import endpoint_inference

    return endpoint_inference(
        problem,
        y,
        design,
        T,
        ci_method=ci_method,
        p_method="permutation",
        level=0.95,
        n_jackknife=10,
        n_bootstrap=2,
        n_permutations=n_perm,
        seed=seed,
        n_jobs=1,
        progress=False,
        **kw,
    )


def one(cell: Cell, rep: int, schemes: tuple[str, ...] = SCHEMES, n_perm: int = B) -> list[dict]:
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(1):
        problem, y, design, T, seed = _observed(cell, rep)
        M = len(problem.metrics)
        nan4 = tuple(np.full(M, np.nan) for _ in range(4))
        for scheme in schemes:
            t0 = time.perf_counter()
            problem.permutation = scheme
            table, reps = _infer(
                problem, y, design, T, seed, "oof", n_perm, oof_inference=lambda: nan4
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


def _append(out: Path, fields: list[str], tasks: list[tuple], run, stop) -> None:  # noqa: ANN001
    """Run ``tasks`` (``(cell, rep, ...)``) in order, appending each one's rows to ``out`` as
    it finishes (resumable; header on a new file); no new task starts after ``stop``."""
    new = not out.exists()
    with out.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        if new:
            w.writeheader()
        for i, task in enumerate(tasks, 1):
            if stop is not None and _dt.datetime.now(_dt.UTC) >= stop:
                print(f"stopped at {stop.isoformat()} ({i - 1} run)", file=sys.stderr)
                break
            rows = run(task)
            w.writerows(rows)
            fh.flush()
            c, rep = task[0], task[1]
            print(f"{i}/{len(tasks)} {c.name} rep {rep} {rows[0]['seconds']}s", file=sys.stderr)


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
    from tario_clinical.decode.benefit_metrics import benefit_metrics
    from tario_clinical.decode.endpoint_inference import cross_validate_plan

    t0 = time.perf_counter()
    X, y, seed = data(cell, rep)
    sc = _sibling_cell(cell)
    survival = cell.design != "gauss_binary"
    s_truth = np.random.SeedSequence([zlib.crc32(sc.name.encode()), rep]).spawn(3)[2]
    if cell.design != "simtrial":
        Xn, yn = _sample(cell, sc, np.random.default_rng(s_truth), M_TRUTH)
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
        pen = _penalties(X, y, survival)
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
    have: dict[str, list[int]] = {c.name: list(range(c.reps)) for c in cells if c.design in OWN}
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
    _append(TRUTH_OUT, TRUTH_FIELDS, tasks, lambda t: truth_rows(t[0], t[1]), stop)


# ------------------------------------------------------------------------------ interval pass
#: ``--ci``: the decoder's default inference end to end (``ci_method="randomisation"``: the
#: benefit statistics' SE from the B arm re-randomisations, the within-group effects' from the
#: grouped jackknife, G = 10) on the replicates of the given cells; the permutation and
#: jackknife re-runs are kept (JSON) so that every other interval can be formed from them.
CI_OUT = HERE / "intervals.csv"
CI_FIELDS = ["cell", "rep", "metric", "T", "low", "high", "p", "perm", "jack", "seconds"]


def ci_rows(cell: Cell, rep: int, n_perm: int = B) -> list[dict]:
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    with threadpool_limits(1):
        problem, y, design, T, seed = _observed(cell, rep)
        table, reps = _infer(problem, y, design, T, seed, "randomisation", n_perm)
    secs = round(time.perf_counter() - t0, 3)

    def js(col) -> str:  # noqa: ANN001
        return json.dumps([float(f"{v:.8g}") for v in col])

    return [
        {
            "cell": cell.name,
            "rep": rep,
            "metric": m.name,
            "T": float(T[j]),
            "low": float(table["low"].iloc[j]),
            "high": float(table["high"].iloc[j]),
            "p": float(table["p_value"].iloc[j]),
            "perm": js(reps["permutation"][m.name]),
            "jack": js(reps["jackknife"][m.name]),
            "seconds": secs,
        }
        for j, m in enumerate(problem.metrics)
    ]


def ci_main(cells: list[Cell], max_reps: int, stop, out: Path = CI_OUT) -> None:  # noqa: ANN001
    done = set()
    if out.exists():
        with out.open() as fh:
            done = {(r["cell"], int(r["rep"])) for r in csv.DictReader(fh)}
    tasks = [
        (c, rep)
        for c in cells
        for rep in range(c.reps if not max_reps else min(c.reps, max_reps))
        if (c.name, rep) not in done
    ]
    tasks.sort(key=lambda t: (t[1], t[0].name))
    print(f"{len(tasks)} interval replicates to run", file=sys.stderr, flush=True)
    _append(out, CI_FIELDS, tasks, lambda t: ci_rows(t[0], t[1]), stop)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    ap.add_argument("--max-reps", type=int, default=0, help="cap replicates per cell")
    ap.add_argument("--schemes", default=",".join(SCHEMES), help="permutation schemes")
    ap.add_argument("--out", default=str(OUT), help="output file (--ci: default intervals.csv)")
    ap.add_argument(
        "--stop-at", default="", help="UTC time (ISO) after which no new replicate starts"
    )
    ap.add_argument(
        "--truth",
        action="store_true",
        help="truth pass (estimands of the benefit metrics, into truth.csv) over the sibling "
        "studies' benefit replicates",
    )
    ap.add_argument(
        "--ci",
        action="store_true",
        help="interval pass (the decoder's default intervals, into intervals.csv)",
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
    if args.ci:
        ci_main(cells, args.max_reps, stop, CI_OUT if args.out == str(OUT) else Path(args.out))
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
    _append(out, FIELDS, tasks, lambda t: one(*t), stop)


if __name__ == "__main__":
    main()
