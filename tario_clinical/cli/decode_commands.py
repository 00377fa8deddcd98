"""``decode`` (decoders of the cohort's targets) and ``survival`` (risk groups of a score)."""

from __future__ import annotations

from pathlib import Path

import click

from .app import cli, handle_errors

__all__ = ["decode_cmd", "survival_cmd"]


# ------------------------------------------------------------------------------ decode
def parse_target_types(value: str | None) -> dict[str, str]:
    """``--target-types histology=categorical,tmb=continuous`` as a mapping."""
    out: dict[str, str] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        name, sep, kind = item.partition("=")
        kind = kind.strip()
        if not sep or not name.strip() or kind not in ("binary", "categorical", "continuous"):
            raise click.BadParameter(
                f"{item.strip()!r}: use TARGET=KIND with KIND binary, categorical or continuous, "
                "separated by commas",
                param_hint="--target-types",
            )
        out[name.strip()] = kind
    return out


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _benefit_blocks(
    outcomes: list[str], arm: str, columns: set[str], strata: list[str]
) -> list[dict[str, object]]:
    """``--benefit os,responder``: an endpoint (``os_time``/``os_event``) or a binary column."""
    blocks: list[dict[str, object]] = []
    for o in outcomes:
        if f"{o}_time" in columns and f"{o}_event" in columns:
            blocks.append({"arm": arm, "endpoint": o})
        else:
            blocks.append({"arm": arm, "response": o})
        if strata:
            blocks[-1]["strata"] = strata
    return blocks


@cli.command("decode")
@click.option("--clinical", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--representations", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--targets",
    default="EGFR,KRAS,STK11,PTEN,responder",
    show_default=True,
    help="Comma-separated columns to decode (binary unless --target-types or --infer-types "
    "says otherwise; '' for none).",
)
@click.option(
    "--target-types",
    default=None,
    help="Kinds of targets, e.g. histology=categorical,tmb=continuous (binary, categorical, "
    "continuous).",
)
@click.option(
    "--infer-types",
    is_flag=True,
    help="Infer the kinds of the other targets from the cohort (two levels: binary; text: "
    "categorical; numbers: continuous); the choice is logged and written.",
)
@click.option(
    "--survival",
    "survival_endpoints",
    default=None,
    help="Comma-separated endpoints decoded with penalised Cox (os uses os_time, os_event).",
)
@click.option(
    "--benefit",
    "benefit_outcomes",
    default=None,
    help="Comma-separated outcomes of treatment-benefit decoders: an endpoint (os) or a binary "
    "response column.",
)
@click.option("--benefit-arm", default="arm", show_default=True, help="Arm column of --benefit.")
@click.option(
    "--benefit-strata",
    default=None,
    help="Comma-separated randomisation strata columns of --benefit (its permutation test "
    "re-randomises the arm within them).",
)
@click.option("--n-splits", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--n-repeats", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--group-by", type=click.Choice(["site", "cancer_type"]), default=None)
@click.option(
    "--ci-method",
    type=click.Choice(["jackknife", "jackknife2", "bootstrap", "delong"]),
    default=None,
    help="Interval: re-runs of the whole nested CV (jackknife, bootstrap; jackknife2 "
    "also deletes pairs of groups: comparison only) or DeLong on out-of-fold scores "
    "(anti-conservative, comparison only). [default: jackknife; --benefit decoders: the "
    "spread of their arm re-randomisations, unless this is given]",
)
@click.option(
    "--p-method",
    type=click.Choice(["permutation", "jackknife", "delong"]),
    default="permutation",
    show_default=True,
    help="p-value of AUROC > 0.5: exact permutation test re-running the whole nested CV, "
    "jackknife Wald test (cheap at scale) or DeLong (comparison only).",
)
@click.option("--n-permutations", type=click.IntRange(min=1), default=99, show_default=True)
@click.option("--jobs", type=int, default=-1, show_default=True, help="Processes (-1: all cores).")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def decode_cmd(
    clinical: Path,
    representations: Path,
    targets: str,
    target_types: str | None,
    infer_types: bool,
    survival_endpoints: str | None,
    benefit_outcomes: str | None,
    benefit_arm: str,
    benefit_strata: str | None,
    n_splits: int,
    n_repeats: int,
    group_by: str | None,
    ci_method: str | None,
    p_method: str,
    n_permutations: int,
    jobs: int,
    no_progress: bool,
    seed: int,
    out: Path,
) -> None:
    """Decode targets from representations with patient-level nested CV.

    Binary targets by default; categorical and continuous targets with --target-types (or
    --infer-types), time to event with --survival, treatment benefit with --benefit. Every
    input is checked before anything is written.
    """
    import json

    import pandas as pd

    from .._lock import staged_output
    from ..cohort import read_table
    from ..config import config_from_dict
    from ..pipeline import prepare
    from ..pipeline.endpoints import endpoints_record, endpoints_summary, log_kinds, run_endpoints
    from ..provenance import atomic_write, atomic_write_text, ensure_output_dir

    kinds_given = parse_target_types(target_types)
    benefit = _names(benefit_outcomes)
    columns = set(read_table(clinical).columns) if benefit else set()
    decode_block: dict[str, object] = {
        "targets": _names(targets),
        "target_types": kinds_given,
        "infer_target_types": infer_types,
        "n_splits": n_splits,
        "n_repeats": n_repeats,
        "group_by": group_by,
    }
    if _names(survival_endpoints):
        decode_block["survival"] = [{"endpoint": e} for e in _names(survival_endpoints)]
    if benefit:
        decode_block["benefit"] = _benefit_blocks(
            benefit, benefit_arm, columns, _names(benefit_strata)
        )
    cfg = config_from_dict(
        {
            "seed": seed,
            "cohort": {"clinical": str(clinical)},
            "representations": str(representations),
            "decode": decode_block,
            "survival": None,
            "design": None,
        },
        source="command line",
    )
    # the test settings as given (the CLI allows fewer permutations than the YAML)
    cfg = cfg.model_copy(
        update={
            "decode": cfg.decode.model_copy(
                update={
                    **({"ci_method": ci_method} if ci_method is not None else {}),
                    "p_method": p_method,
                    "n_permutations": n_permutations,
                    "n_jobs": jobs,
                }
            )
        }
    )
    prepared = prepare(cfg)
    kinds = prepared.target_kinds
    log_kinds(kinds)
    binary = [t for t, (k, _) in kinds.items() if k == "binary"]
    import tario_clinical.decode as decode_mod

    res = None
    if binary:
        res = decode_mod.decode(
            prepared.representations,
            prepared.cohort,
            targets=binary,
            target_types=dict.fromkeys(binary, "binary"),
            n_splits=n_splits,
            n_repeats=n_repeats,
            group_by=group_by,
            ci_method=ci_method or "jackknife",  # type: ignore[arg-type]
            p_method=p_method,  # type: ignore[arg-type]
            n_permutations=n_permutations,
            n_jobs=jobs,
            progress=False if no_progress else None,
            seed=seed,
        )
        prepared.cohort.record_exclusions(res.exclusions)
    endpoints = {}
    if len(binary) < len(kinds) or cfg.decode.survival_decoders or cfg.decode.benefit_decoders:
        endpoints = run_endpoints(
            cfg, prepared.cohort, prepared.representations, kinds, progress=not no_progress
        )
    ensure_output_dir(out)
    with staged_output(out, purpose="tario-clinical decode") as stage:
        if res is not None:
            summary = res.summary()
            atomic_write(stage / "decode_summary.csv", lambda p: summary.to_csv(p, index=False))
            atomic_write(stage / "oof_scores.csv", lambda p: res.oof.to_csv(p, index=False))
            atomic_write_text(
                stage / "decode.json",
                json.dumps(res.to_dict(), indent=1, sort_keys=True, default=str),
            )
        if endpoints:
            table = endpoints_summary(res, endpoints)
            oof = pd.concat([r.oof for r in endpoints.values()], ignore_index=True, sort=False)
            record = endpoints_record(cfg, kinds, res, endpoints)
            atomic_write(stage / "endpoint_summary.csv", lambda p: table.to_csv(p, index=False))
            atomic_write(stage / "endpoint_oof.csv", lambda p: oof.to_csv(p, index=False))
            atomic_write_text(
                stage / "endpoints.json", json.dumps(record, indent=1, sort_keys=True) + "\n"
            )
        atomic_write(
            stage / "exclusions.csv", lambda p: prepared.cohort.exclusions.to_csv(p, index=False)
        )
    if endpoints:
        shown = endpoints_summary(res, endpoints)
        cols = ["target", "kind", "n", "metric", "estimate", "low", "high", "p_value"]
        click.echo(shown[cols].to_string(index=False))
    else:
        click.echo(summary.to_string(index=False))


# ------------------------------------------------------------------------------ survival
@cli.command("survival")
@click.option("--clinical", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--scores",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="oof_scores.csv from `decode` (patient_id, target, repeat, score) or a patient_id,score table.",
)
@click.option(
    "--target", default=None, help="Which decoded target's score to use (with a decode OOF table)."
)
@click.option(
    "--endpoint", default="os", show_default=True, help="Uses <endpoint>_time and <endpoint>_event."
)
@click.option(
    "--cutoff", type=click.Choice(["median", "tertiles"]), default="median", show_default=True
)
@click.option("--arm", default=None, help="Treatment arm column for the interaction analysis.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
@handle_errors
def survival_cmd(
    clinical: Path,
    scores: Path,
    target: str | None,
    endpoint: str,
    cutoff: str,
    arm: str | None,
    seed: int,
    out: Path,
) -> None:
    """Risk groups at cross-fitted cut-offs: KM, log-rank, Cox, RMST, C-index, interaction."""
    import json

    import numpy as np
    import pandas as pd

    from .. import survival
    from .._lock import staged_output
    from ..cohort import load_cohort, read_table
    from ..errors import SchemaError
    from ..provenance import atomic_write, atomic_write_text, ensure_output_dir

    cohort = load_cohort(clinical)
    sc = read_table(scores)
    if "target" in sc.columns:
        if target is None or target not in set(sc["target"]):
            raise SchemaError(
                f"{scores}: pass --target, one of {', '.join(sorted(set(sc['target'])))}"
            )
        sc = sc[sc["target"] == target]
    if "score" not in sc.columns or "patient_id" not in sc.columns:
        raise SchemaError(
            f"{scores}: needs columns patient_id and score (found {', '.join(sc.columns)})"
        )
    sc = sc.assign(score=pd.to_numeric(sc["score"], errors="coerce"))
    bad = sc["score"].isna()
    if bad.any():
        rows = ", ".join(str(i + 1) for i in np.flatnonzero(bad.to_numpy())[:5])
        raise SchemaError(f"{scores}: column score is not a number at row(s) {rows}")
    series = sc.groupby("patient_id")["score"].mean()
    res = survival.stratify(
        cohort,
        series,
        time=f"{endpoint}_time",
        event=f"{endpoint}_event",
        cutoff=cutoff,
        arm=arm,
        seed=seed,
    )
    cohort.record_exclusions(res.exclusions, patients_only=True)
    ensure_output_dir(out)
    with staged_output(out, purpose="tario-clinical survival") as stage:
        atomic_write_text(
            stage / "survival.json",
            json.dumps(res.to_dict(), indent=1, sort_keys=True, default=str),
        )
        display = res.km_plot()
        fig = getattr(display, "figure_", None) or getattr(display, "figure", None)
        if fig is not None:
            atomic_write(stage / "km.png", lambda p: fig.savefig(p, format="png", dpi=120))
        atomic_write(stage / "exclusions.csv", lambda p: cohort.exclusions.to_csv(p, index=False))
    click.echo(f"wrote {out / 'survival.json'}")
