"""The ``analyses:`` block's decoder analyses and the treatment-effect curve along the score."""

from __future__ import annotations

import logging
from typing import Any

from ..config import StudyConfig

__all__ = ["decode_analyses", "effect_curve"]

log = logging.getLogger("tario_clinical")


def decode_analyses(cfg: StudyConfig, cohort: Any, adata: Any, other: Any) -> dict[str, Any]:
    """The configured decoder analyses (decode settings, top-level seed). The analyses leave
    ``cohort`` unchanged; the patients one left out that are not in the log yet are recorded
    in ``cohort.exclusions`` under the analysis' name."""
    from ..decode import analyses as da

    a, d = cfg.analyses, cfg.decode
    common = {"n_inner_splits": d.n_inner_splits, "n_c": d.n_c, "pca": d.pca}
    common.update(class_weight=d.class_weight, n_jackknife=d.n_jackknife, seed=cfg.seed)
    jobs: dict[str, Any] = {}
    if a.learning_curve is not None:
        lc = a.learning_curve
        jobs["learning_curve"] = lambda c: da.learning_curve(
            adata,
            c,
            targets=list(lc.targets),
            fractions=tuple(lc.fractions),
            n_splits=d.n_splits,
            **common,
        )
    if a.generalist_vs_specialist is not None:
        gs = a.generalist_vs_specialist
        jobs["generalist_vs_specialist"] = lambda c: da.generalist_vs_specialist(
            adata,
            c,
            targets=list(gs.targets),
            cancer_type=gs.cancer_type,
            group_column=gs.group_column,
            n_splits=d.n_splits,
            **common,
        )
    if a.leave_one_group_out is not None:
        lo = a.leave_one_group_out
        jobs["leave_one_group_out"] = lambda c: da.leave_one_group_out(
            adata, c, targets=list(lo.targets), group_column=lo.group_column, **common
        )
    if a.representation_comparison is not None:
        rc = a.representation_comparison
        jobs["representation_comparison"] = lambda c: da.representation_comparison(
            adata,
            other,
            c,
            targets=list(rc.targets),
            names=tuple(rc.names),
            n_splits=d.n_splits,
            **common,
        )
    out = {}
    for kind, job in jobs.items():
        log.info("decoder analysis %s", kind)
        out[kind] = job(cohort)
        work = cohort.copy()  # what the result adds to the log, found on a scratch copy
        before = len(work.exclusions)
        work.record_exclusions(out[kind].exclusions)
        new = work.exclusions.iloc[before:]
        for reason, rows in new.groupby("reason", sort=True):
            cohort.exclude(sorted(set(rows["patient_id"].dropna())), reason=reason, analysis=kind)
    return out


def effect_curve(cfg: StudyConfig, strat: Any) -> Any:
    """The treatment HR along the continuous score, when the stratification has an arm and
    the score is continuous (the same patients as the stratification)."""
    from .. import survival
    from ..errors import AnalysisError

    e = cfg.analyses.effect_curve
    if e is None or strat is None or getattr(strat, "interaction", None) is None:
        return None
    a = strat.assignments
    if a["score"].nunique() < 10:
        log.info("effect curve skipped: the score has fewer than 10 distinct values")
        return None
    try:
        return survival.treatment_effect_curve(
            a,
            "score",
            time="time",
            event="event",
            arm=strat.interaction.arm,
            reference_arm=strat.interaction.control,
            r1=e.r1,
            r2=e.r2,
            n_permutations=e.n_permutations,
            knots=tuple(e.knots),
            seed=cfg.seed,
        )
    except AnalysisError as err:
        log.warning("treatment effect curve not computed: %s", err)
        return None
