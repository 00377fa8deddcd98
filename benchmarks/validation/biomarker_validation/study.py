"""Validation study: a biomarker locked on one simulated trial, validated on another.

Each *development* simulates a trial (new biology, 300 patients, 40 genes), decodes EGFR with
the default nested CV (``n_repeats=1``, DeLong), and locks the final decoder at the development
median of its score (:func:`tario_clinical.lock_biomarker`). That locked biomarker is then
validated (:func:`tario_clinical.validate_biomarker`, development representations given, so the
shift diagnostics include the cohort-membership classifier) on independent validation cohorts
of 300 patients drawn from the same biology (``N_VAL`` per development in the no-shift cells,
the first ``N_VAL_SHIFT`` of them in the shift cells), in four cells:

* ``noshift`` -- the development population, no site/scanner shift;
* ``noshift_pop`` -- another population without a site shift: EGFR prevalence 0.30 (odds
  scaled within cancer types), 2:1 allocation;
* ``shift05``, ``shift10`` -- the development population seen through a site/scanner shift
  ``site_shift = 0.5`` / ``1.0`` (``simulate_trial``'s float spec: per-gene offsets
  ``N(0, s^2)``, log-gains ``N(0, (s/2)^2)``, extra noise of SD ``s``, in gene-noise-SD units).
  Each validation cohort is a new site (a new realisation of the shift), and holds the *same
  patients* as the ``noshift`` cohort of the same index (the simulator's seed fixes the
  patients; the shift only changes their representation), so the cells are paired.

Truth (the estimand) is conditional on the locked biomarker: what the locked score and the
locked cut-off achieve in the validation cohort's population.

* AUROC, calibration intercept and slope: ``SimulatedTrial.locked_truth`` on
  ``N_TRUTH_AUC`` fresh patients of the population (Monte Carlo SE of the AUROC about 0.0015;
  0.003 with the ``N_TRUTH_SHIFT`` patients of a shifted cohort).
* HR (Cox, unadjusted, Efron ties) of locked-positive (score > the locked cut-off) vs
  locked-negative for OS: the same Cox fit on a trial of ``N_TRUTH_HR`` fresh patients of the
  population (same genotype mix, arm allocation, accrual, administrative censoring and
  drop-out, and, in the shift cells, the same site realisation), i.e. the probability limit of
  the validation estimator. Its Monte Carlo SE (the Cox SE of the big fit: about 0.006 on the
  log scale with ``N_TRUTH_HR`` patients, 0.011 with the ``N_TRUTH_SHIFT`` of a shifted cohort)
  is recorded; it is 4-8 % of a validation cohort's SE of the log HR (about 0.145). The simulator's
  ``locked_truth`` has no survival truth, so the big trial is drawn from the validation trial's
  own generator (``SimulatedTrial._generator`` and ``simulate._generative.draw_trial``: the
  same code that draws the validation cohort, with independent random streams).

Without a site shift the population -- hence the truth -- does not depend on the validation
seed, so the no-shift truths are computed once per development; in the shift cells once per
validation cohort (each has its own site realisation).

Recorded per validation cohort: the validation AUROC, its DeLong SE and the library's interval
(Wald on the logit scale; ``summarise.py`` also scores the Wald interval on the AUROC scale,
``AUROC -/+ 1.96 SE``, which the library used before this study showed its lopsided misses),
the unadjusted
Cox HR by the locked cut-off and its Wald interval, calibration intercept (sandwich SE) and
slope with intervals, and the shift diagnostics: the membership classifier's AUROC and interval,
the three flags (``representations_distinguishable``: membership lower bound > 0.6;
``features_shifted``: median |SMD| > 0.1; ``score_shifted``: KS p < 0.05) and the median |SMD|.

Seeds: ``SeedSequence([crc32("biomarker_validation"), dev])`` spawns the development's streams;
every seed handed to the simulator is drawn from them, so the run is a pure function of the
development index. One worker process, BLAS limited to one thread.

Usage (resumable; appends one block of rows per finished development to ``replicates.csv``)::

    python benchmarks/validation/biomarker_validation/study.py            # N_DEV developments
    python benchmarks/validation/biomarker_validation/study.py --devs 5   # smoke / partial run
    python benchmarks/validation/biomarker_validation/summarise.py        # -> table.md
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
import time
import warnings
import zlib
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "replicates.csv"

N_DEV = 120  # developments (each locked once)
N_VAL = 10  # validation cohorts per development in the no-shift cells
N_VAL_SHIFT = 5  # ... in the shift cells (the first N_VAL_SHIFT of the same cohorts)
N_PATIENTS_DEV = 300
N_PATIENTS_VAL = 300
N_GENES = 40
TARGET = "EGFR"
N_TRUTH_AUC = 200_000
N_TRUTH_HR = 200_000
N_TRUTH_SHIFT = 50_000  # per shifted cohort (its own site realisation)
CELLS = {
    "noshift": {},
    "noshift_pop": {"prevalence": {"EGFR": 0.30}, "allocation": 2.0 / 3.0},
    "shift05": {"site_shift": 0.5},
    "shift10": {"site_shift": 1.0},
}
ROOT_SEED = zlib.crc32(b"biomarker_validation")

FIELDS = [
    "cell",
    "dev",
    "val",
    "dev_seed",
    "val_seed",
    "dev_auroc_cv",
    "cutoff_score",
    "n",
    "n_pos",
    "events",
    "frac_positive",
    "auroc",
    "auroc_lo",
    "auroc_hi",
    "auroc_se",
    "truth_auroc",
    "hr",
    "hr_lo",
    "hr_hi",
    "truth_hr",
    "truth_log_hr_mc_se",
    "cal_intercept",
    "cal_intercept_lo",
    "cal_intercept_hi",
    "truth_cal_intercept",
    "cal_slope",
    "cal_slope_lo",
    "cal_slope_hi",
    "truth_cal_slope",
    "membership_auroc",
    "membership_lo",
    "membership_hi",
    "flag_distinguishable",
    "flag_features",
    "flag_score",
    "median_abs_smd",
    "seconds",
]


def _int_seed(ss: np.random.SeedSequence) -> int:
    return int(ss.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


def _hr_truth(trial, locked, n: int, ss: np.random.SeedSequence) -> tuple[float, float]:
    """Cox HR (positive vs negative at the locked cut-off) on ``n`` fresh patients of ``trial``'s
    population: (HR, SE of log HR)."""
    import tario_clinical as tc
    from tario_clinical.simulate._generative import draw_trial

    bio, pop = trial._generator
    rngs = [np.random.default_rng(s) for s in ss.spawn(3)]
    drawn = draw_trial(bio, pop, n, *rngs)
    genes = list(map(str, trial.representations.var_names))
    x = pd.DataFrame(drawn["x"].astype(np.float32), columns=genes)
    groups = locked.assign_groups(locked.score(x))
    clin = drawn["clinical"]
    d = pd.DataFrame(
        {
            "os_time": clin["os_time"].to_numpy(),
            "os_event": clin["os_event"].to_numpy(),
            "biomarker": groups.to_numpy(),
        }
    )
    cx = tc.survival.cox(d, "os_time", "os_event", ["biomarker"])
    r = cx.loc["biomarker[positive]"]
    return float(r["hr"]), float(r["se"])


def _row(val, truth: dict, hr_truth: tuple[float, float]) -> dict:
    d = val.discrimination.set_index("metric").loc["auroc"]
    c = val.calibration.set_index("metric")
    row = {
        "n": int(d["n"]),
        "n_pos": int(d["n_positive"]),
        "frac_positive": float((val.scores["group"] == "positive").mean()),
        "auroc": d["estimate"],
        "auroc_lo": d["low"],
        "auroc_hi": d["high"],
        "auroc_se": d["se"],
        "truth_auroc": truth["auroc"],
        "cal_intercept": c.loc["calibration_intercept", "estimate"],
        "cal_intercept_lo": c.loc["calibration_intercept", "low"],
        "cal_intercept_hi": c.loc["calibration_intercept", "high"],
        "truth_cal_intercept": truth["calibration_intercept"],
        "cal_slope": c.loc["calibration_slope", "estimate"],
        "cal_slope_lo": c.loc["calibration_slope", "low"],
        "cal_slope_hi": c.loc["calibration_slope", "high"],
        "truth_cal_slope": truth["calibration_slope"],
        "truth_hr": hr_truth[0],
        "truth_log_hr_mc_se": hr_truth[1],
    }
    s = val.survival
    row["events"] = "" if s is None else s.events
    if s is not None and s.cox_unadjusted is not None:
        r = s.cox_unadjusted.loc["biomarker[positive]"]
        row.update(hr=r["hr"], hr_lo=r["hr_low"], hr_hi=r["hr_high"])
    sh = val.shift
    if sh is not None:
        if sh.membership is not None:
            m = sh.membership.iloc[0]
            row.update(membership_auroc=m["auroc"], membership_lo=m["low"], membership_hi=m["high"])
        row["flag_distinguishable"] = sh.flags["representations_distinguishable"]
        row["flag_features"] = sh.flags["features_shifted"]
        row["flag_score"] = sh.flags["score_shifted"]
        fs = sh.feature_summary.set_index("metric")["value"]
        row["median_abs_smd"] = fs["median_abs_smd"]
    return row


def one_development(dev: int, n_val: int = N_VAL, cells: dict | None = None) -> list[dict]:
    """Develop and lock once; validate on ``n_val`` cohorts in every cell (of ``cells``)."""
    cells = CELLS if cells is None else cells
    from threadpoolctl import threadpool_limits

    import tario_clinical as tc

    ss = np.random.SeedSequence([ROOT_SEED, dev])
    s_dev, s_decode, s_truth, s_vals = ss.spawn(4)
    dev_seed = _int_seed(s_dev)
    rows: list[dict] = []
    with threadpool_limits(1):
        trial = tc.simulate_trial(
            N_PATIENTS_DEV, seed=dev_seed, n_genes=N_GENES, compute_attainable=False
        )
        cohort = trial.cohort()
        res = tc.decode(
            trial.representations,
            cohort,
            targets=[TARGET],
            n_repeats=1,
            ci_method="delong",
            p_method="delong",
            seed=_int_seed(s_decode),
            progress=False,
        )
        locked = tc.lock_biomarker(
            res,
            TARGET,
            representations=trial.representations,
            cohort=cohort,
            cutoff="median",
            include_time=False,
        )
        dev_auc = float(locked.development["performance"]["auroc"])
        cut = float(locked.document["cutoffs"][0]["score"])
        # no-shift populations: truth once per development (the population has no seed)
        st = s_truth.spawn(2 * len(CELLS))
        fixed_truth: dict[str, tuple[dict, tuple[float, float]]] = {}
        for i, (cell, opts) in enumerate(CELLS.items()):
            if "site_shift" in opts or cell not in cells:
                continue
            pop = trial.draw_second_trial(20, seed=0, compute_attainable=False, **opts)
            auc = pop.locked_truth(
                locked.predict_proba, TARGET, n=N_TRUTH_AUC, seed=_int_seed(st[2 * i])
            )
            fixed_truth[cell] = (auc, _hr_truth(pop, locked, N_TRUTH_HR, st[2 * i + 1]))
        for j, s_val in enumerate(s_vals.spawn(n_val)):
            s_cohort, s_shift_truth, s_membership = s_val.spawn(3)
            val_seed = _int_seed(s_cohort)
            s_cell = dict(zip(CELLS, s_shift_truth.spawn(len(CELLS)), strict=True))
            for cell, opts in cells.items():
                if "site_shift" in opts and j >= N_VAL_SHIFT:
                    continue
                t0 = time.perf_counter()
                v = trial.draw_second_trial(
                    N_PATIENTS_VAL, seed=val_seed, compute_attainable=False, **opts
                )
                out = tc.validate_biomarker(
                    locked,
                    v.representations,
                    v.cohort(),
                    endpoint="os",
                    arm=None,
                    recalibrate=False,
                    development=trial.representations,
                    seed=_int_seed(s_membership),
                )
                if cell in fixed_truth:
                    truth, hr_truth = fixed_truth[cell]
                else:
                    sa, sh = s_cell[cell].spawn(2)
                    truth = v.locked_truth(
                        locked.predict_proba, TARGET, n=N_TRUTH_SHIFT, seed=_int_seed(sa)
                    )
                    hr_truth = _hr_truth(v, locked, N_TRUTH_SHIFT, sh)
                row = {f: "" for f in FIELDS}
                row.update(
                    cell=cell,
                    dev=dev,
                    val=j,
                    dev_seed=dev_seed,
                    val_seed=val_seed,
                    dev_auroc_cv=dev_auc,
                    cutoff_score=cut,
                )
                row.update(_row(out, truth, hr_truth))
                row["seconds"] = round(time.perf_counter() - t0, 3)
                rows.append(row)
    return rows


def _rows_per_development() -> int:
    return sum(N_VAL_SHIFT if "site_shift" in o else N_VAL for o in CELLS.values())


def _complete_devs(path: Path) -> set[int]:
    """Developments with every row present; a partial block (interrupted write) is dropped."""
    if not path.exists():
        return set()
    d = pd.read_csv(path, keep_default_na=False, na_values=[""])
    counts = d.groupby("dev").size()
    full = set(int(k) for k, v in counts.items() if v == _rows_per_development())
    if len(full) != len(counts):
        keep = d[d["dev"].isin(full)]
        tmp = path.with_suffix(".tmp")
        keep.to_csv(tmp, index=False)
        os.replace(tmp, path)
        print(f"dropped {len(counts) - len(full)} incomplete development(s)", file=sys.stderr)
    return full


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devs", type=int, default=N_DEV, help="developments to reach (default all)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    logging.getLogger("tario_clinical").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    out = Path(args.out)
    done = _complete_devs(out)
    todo = [k for k in range(args.devs) if k not in done]
    print(f"{len(todo)} developments to run ({len(done)} done)", file=sys.stderr, flush=True)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        if new:
            csv.DictWriter(fh, fieldnames=FIELDS).writeheader()
            fh.flush()
        for i, dev in enumerate(todo, 1):
            t0 = time.perf_counter()
            rows = one_development(dev)
            buf = io.StringIO()
            csv.DictWriter(buf, fieldnames=FIELDS).writerows(rows)
            fh.write(buf.getvalue())  # one block per development
            fh.flush()
            os.fsync(fh.fileno())
            print(
                f"dev {dev} done ({i}/{len(todo)}, {time.perf_counter() - t0:.1f}s)",
                file=sys.stderr,
                flush=True,
            )


if __name__ == "__main__":
    main()
