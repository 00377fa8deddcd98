"""Run a prepared study: (encode) -> decode -> endpoint decoders -> stratify -> design -> report."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from .decoder_analyses import decode_analyses, effect_curve
from .design_inputs import design_table
from .endpoints import (
    endpoints_record,
    endpoints_summary,
    has_endpoints,
    log_kinds,
    run_endpoints,
    target_kinds,
)
from .inputs import PreparedStudy, align_representations
from .spatial import expression_qc_result
from .validation import run_validation

__all__ = ["run_study"]

log = logging.getLogger("tario_clinical")


def run_study(
    prepared: PreparedStudy, out: str | Path, *, progress: bool = True
) -> dict[str, Path]:
    """Run the analyses of a prepared study and write the report into ``out``.

    Parameters
    ----------
    prepared : PreparedStudy
        Output of :func:`prepare` (configuration, cohort and, unless slides are to be encoded,
        representations).
    out : str or Path
        Output folder (created if needed); encoder outputs go to ``out/encode``.
    progress : bool, default True
        Show progress bars (encoding slides; the decoders' re-runs when stderr is a terminal).

    Returns
    -------
    dict
        Name -> path of every file written.
    """
    from ..provenance import ensure_output_dir

    cfg = prepared.config
    out_dir = ensure_output_dir(out)
    cohort = prepared.cohort
    adata = prepared.representations
    written: dict[str, Path] = {}

    if adata is None and cfg.encode is not None:
        enc = cfg.encode
        common: dict[str, Any] = {
            "weights": enc.weights,
            "device": enc.device,
            "batch_size": enc.batch_size,
            "fusion": enc.fusion,
            "tile_output": enc.save_tiles,
            "seed": cfg.seed,
            "progress": progress,
            "allow_outside": True,  # manifest paths were already checked by load_cohort
        }
        if enc.engine == "ray":
            from ..encode.ray_runner import encode_slides_ray

            result = encode_slides_ray(
                cohort.slides,
                enc.model,
                out_dir / "encode",
                address=enc.ray_address,
                concurrency=enc.ray_actors,
                read_concurrency=enc.ray_readers,
                **common,
            )
        else:
            from ..encode import encode_slides

            result = encode_slides(
                cohort.slides, enc.model, out_dir / "encode", n_jobs=enc.workers, **common
            )
        for rec in result.exclusions.itertuples(index=False):
            cohort.exclude(
                [rec.patient_id], reason=rec.reason, analysis=rec.analysis, slide_ids=[rec.slide_id]
            )
        adata = result.representations
        written["representations"] = out_dir / "encode" / "representations.h5ad"
        align_representations(adata, cohort, source=str(written["representations"]))

    import tario_clinical.decode as decode_mod

    from ..progress import stage

    d = cfg.decode
    kinds = prepared.target_kinds or target_kinds(cfg, cohort)
    log_kinds(kinds)
    binary = [t for t, (k, _) in kinds.items() if k == "binary"]
    dec = None
    if binary:
        log.info(
            "decoding %d binary targets with %dx%d cross-validation",
            len(binary),
            d.n_splits,
            d.n_repeats,
        )
        with stage("decode", targets=len(binary)):
            dec = decode_mod.decode(
                adata,
                cohort,
                targets=binary,
                target_types=dict.fromkeys(binary, "binary"),
                n_splits=d.n_splits,
                n_repeats=d.n_repeats,
                n_inner_splits=d.n_inner_splits,
                n_c=d.n_c,
                penalty=d.penalty,
                pca=d.pca,
                class_weight=d.class_weight,
                group_by=d.group_by,
                ci_method=d.ci_method,
                p_method=d.p_method,
                alternative=d.alternative,
                n_permutations=d.n_permutations,
                n_jackknife=d.n_jackknife,
                n_bootstrap=d.n_bootstrap,
                n_jobs=-1 if d.n_jobs is None else d.n_jobs,
                progress=None if progress else False,
                seed=cfg.seed,
            )
        cohort.record_exclusions(dec.exclusions)
    endpoints: dict[str, Any] = {}
    if has_endpoints(cfg, kinds):
        endpoints = run_endpoints(cfg, cohort, adata, kinds, progress=progress)

    analyses: dict[str, Any] = {}
    if any(
        getattr(cfg.analyses, k) is not None
        for k in (
            "learning_curve",
            "generalist_vs_specialist",
            "leave_one_group_out",
            "representation_comparison",
        )
    ):
        with stage("decoder analyses"):
            analyses = decode_analyses(cfg, cohort, adata, prepared.other_representations)

    strat = None
    if cfg.survival is not None:
        from .. import survival

        s = cfg.survival
        cut: Any = s.cutoff_value if s.cutoff == "fixed" else s.cutoff
        kwargs: dict[str, Any] = {}
        if s.cutoff == "prevalence":
            kwargs["prevalence"] = s.cutoff_value
        if s.cutoff == "probability":
            kwargs["probability"] = s.cutoff_value
        if s.cutoff == "quantile":
            kwargs["quantile"] = s.cutoff_value
        log.info(
            "stratifying %s by the %s score (%s cut-off, cross-fitted)",
            s.endpoint,
            s.score_target,
            s.cutoff,
        )
        with stage("survival stratification"):
            strat = survival.stratify(
                cohort,
                (dec if s.score_target in binary else endpoints[s.score_target]).oof_scores(
                    s.score_target
                ),
                time=f"{s.endpoint}_time",
                event=f"{s.endpoint}_event",
                cutoff=cut,
                arm=s.arm,
                covariates=list(s.covariates),
                tau=s.tau,
                seed=cfg.seed,
                **kwargs,
            )
        cohort.record_exclusions(strat.exclusions, patients_only=True)

    curve = None
    if strat is not None:
        with stage("treatment effect curve"):
            curve = effect_curve(cfg, strat)

    design_result = None
    if cfg.design is not None:
        design_result = design_table(cfg, cohort, strat)

    qc = None
    if cfg.expression_qc is not None:
        qc = expression_qc_result(cfg)

    validation = None
    if cfg.validation is not None and prepared.validation is not None:
        validation = run_validation(prepared, dec, adata, out_dir, written)

    from .. import report as report_mod
    from ..provenance import provenance_record

    prov = provenance_record(
        kind="results",
        seed=cfg.seed,
        parameters=cfg.model_dump(mode="json"),
        inputs={k: v for k, v in prepared.input_files.items()},
        include_time=False,
    )
    # representation maps (PCA, t-SNE, genotype co-occurrence): computed here, the report shows them
    from ..embedding_maps import representation_maps

    with stage("representation maps"):
        maps = representation_maps(adata, cohort, seed=cfg.seed)

    with stage("report"):
        rep = report_mod.build_report(
            cohort=cohort,
            decode=dec,
            analyses=analyses or None,
            stratification=strat,
            effect_curve=curve,
            design=design_result,
            expression_qc=qc,
            representations=adata,
            embedding=maps,
            provenance=prov,
            config=cfg.model_dump(mode="json"),
            show_patient_ids=cfg.report.show_patient_ids,
            seed=cfg.seed,
        )
        extra: dict[str, Any] = {}
        if validation is not None:
            extra["validation"] = validation.to_dict(
                include_patient_ids=cfg.report.show_patient_ids
            )
        if endpoints:
            extra["endpoints"] = endpoints_record(cfg, kinds, dec, endpoints)
        if extra:
            import dataclasses

            rep = dataclasses.replace(rep, results={**rep.results, **extra})
        written.update(rep.write(out_dir))
    from ..provenance import atomic_write

    if endpoints:
        summary = endpoints_summary(dec, endpoints)
        written["endpoint_summary"] = atomic_write(
            out_dir / "endpoint_summary.csv", lambda p: summary.to_csv(p, index=False)
        )
        oof = pd.concat([r.oof for r in endpoints.values()], ignore_index=True, sort=False)
        written["endpoint_oof"] = atomic_write(
            out_dir / "endpoint_oof.csv",
            lambda p: oof.to_csv(p, index=False, float_format="%.10g", lineterminator="\n"),
        )
    atomic_write(out_dir / "exclusions.csv", lambda p: cohort.exclusions.to_csv(p, index=False))
    written["exclusions"] = out_dir / "exclusions.csv"
    return written
