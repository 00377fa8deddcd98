"""``decode`` (decoders of the cohort's targets) and ``survival`` (risk groups of a score)."""

from __future__ import annotations

from pathlib import Path

import click

from .app import cli, handle_errors

__all__ = ["decode_cmd", "survival_cmd"]


# ------------------------------------------------------------------------------ decode
@cli.command("decode")
@click.option("--clinical", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--representations", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--targets",
    default="EGFR,KRAS,STK11,PTEN,responder",
    show_default=True,
    help="Comma-separated binary columns to decode.",
)
@click.option("--n-splits", type=click.IntRange(2, 20), default=5, show_default=True)
@click.option("--n-repeats", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--group-by", type=click.Choice(["site", "cancer_type"]), default=None)
@click.option(
    "--ci-method",
    type=click.Choice(["jackknife", "bootstrap", "delong"]),
    default="jackknife",
    show_default=True,
    help="AUROC interval: re-runs of the whole nested CV (jackknife, bootstrap) or DeLong on "
    "out-of-fold scores (anti-conservative, comparison only).",
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
    n_splits: int,
    n_repeats: int,
    group_by: str | None,
    ci_method: str,
    p_method: str,
    n_permutations: int,
    jobs: int,
    no_progress: bool,
    seed: int,
    out: Path,
) -> None:
    """Decode binary targets from representations with patient-level nested CV."""
    import json

    from ..config import config_from_dict
    from ..pipeline import prepare
    from ..provenance import atomic_write, atomic_write_text, ensure_output_dir

    cfg = config_from_dict(
        {
            "seed": seed,
            "cohort": {"clinical": str(clinical)},
            "representations": str(representations),
            "decode": {
                "targets": [t.strip() for t in targets.split(",") if t.strip()],
                "n_splits": n_splits,
                "n_repeats": n_repeats,
                "group_by": group_by,
            },
            "survival": None,
            "design": None,
        },
        source="command line",
    )
    prepared = prepare(cfg)
    import tario_clinical.decode as decode_mod

    res = decode_mod.decode(
        prepared.representations,
        prepared.cohort,
        targets=list(cfg.decode.targets),
        n_splits=n_splits,
        n_repeats=n_repeats,
        group_by=group_by,
        ci_method=ci_method,  # type: ignore[arg-type]
        p_method=p_method,  # type: ignore[arg-type]
        n_permutations=n_permutations,
        n_jobs=jobs,
        progress=False if no_progress else None,
        seed=seed,
    )
    ensure_output_dir(out)
    summary = res.summary()
    atomic_write(out / "decode_summary.csv", lambda p: summary.to_csv(p, index=False))
    atomic_write(out / "oof_scores.csv", lambda p: res.oof.to_csv(p, index=False))
    atomic_write(
        out / "exclusions.csv", lambda p: prepared.cohort.exclusions.to_csv(p, index=False)
    )
    atomic_write_text(
        out / "decode.json", json.dumps(res.to_dict(), indent=1, sort_keys=True, default=str)
    )
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
        cohort, series, f"{endpoint}_time", f"{endpoint}_event", cutoff=cutoff, arm=arm, seed=seed
    )
    ensure_output_dir(out)
    atomic_write_text(
        out / "survival.json", json.dumps(res.to_dict(), indent=1, sort_keys=True, default=str)
    )
    display = res.km_plot()
    fig = getattr(display, "figure_", None) or getattr(display, "figure", None)
    if fig is not None:
        atomic_write(out / "km.png", lambda p: fig.savefig(p, format="png", dpi=120))
    atomic_write(out / "exclusions.csv", lambda p: cohort.exclusions.to_csv(p, index=False))
    click.echo(f"wrote {out / 'survival.json'}")
