"""``encode``: H&E slides through a frozen model into patient representations (resumable).

Runs :func:`~tario_clinical.encode.encode_slides` (``--engine local``, the default) or
:func:`~tario_clinical.encode.ray_runner.encode_slides_ray` (``--engine ray``: many GPUs or
nodes, same presets, resume and outputs). The options, the model card and the slide manifest are
checked first; then the output folder's advisory lock is held while the run writes into it (a
second ``encode`` into the same folder stops with exit 2, naming the folder and the holder).
Errors of the toolkit become exit code 2 with a one-line message, no traceback.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from .app import cli, handle_errors, writing_into

__all__ = ["encode"]

# Process-level setting of the command-line entry point (library code never touches the
# environment): OpenMP threads that sleep instead of spinning while they wait. With DataLoader
# workers sharing the CPU cores, spinning threads steal the workers' time; on a 2-core machine
# passive waiting doubled end-to-end CPU throughput (benchmarks/bench_encode.py). Only effective
# if torch has not been imported yet; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@cli.command("encode")
@click.option(
    "--slides",
    "slides",
    required=True,
    type=click.Path(dir_okay=False),
    help="Slide manifest (slides.csv: slide_id, patient_id, path[, mpp]).",
)
@click.option(
    "--model",
    "model",
    required=True,
    help="Model card (.json), a preset (uni, uni2-h, virchow2, h-optimus-0, h-optimus-1, "
    "prov-gigapath, phikon-v2; needs --weights) or 'demo' (a small demo model, not a "
    "pathology model).",
)
@click.option(
    "--weights",
    "weights",
    default=None,
    type=click.Path(),
    help="Local weights for a preset: the Hugging Face snapshot folder or the weight file "
    "(nothing is downloaded). With a model card: replaces its 'weights'.",
)
@click.option(
    "--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder."
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Tiles per batch.")
@click.option(
    "--jobs",
    "--workers",
    "workers",
    type=click.IntRange(min=0),
    default=None,
    help="DataLoader worker processes reading tiles (default: 0 on CPU, up to 8 on CUDA); "
    "--workers is its earlier name, still accepted.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--fusion",
    type=click.Choice(["early", "late"]),
    default="late",
    show_default=True,
    help="Slide -> patient pooling.",
)
@click.option("--tile-output", is_flag=True, help="Also write tile-level h5ad per slide.")
@click.option(
    "--allow-outside",
    is_flag=True,
    help="Allow manifest paths outside the manifest's folder (refused by default).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: one machine (PyTorch DataLoader); ray: Ray Data over a Ray cluster (many GPUs "
    "or nodes; same outputs, and either engine resumes the other's --out).",
)
@click.option(
    "--ray-address",
    default=None,
    help="With --engine ray: address of a running Ray cluster ('auto', 'HOST:6379' or "
    "'ray://HOST:10001'); default: start Ray on this machine for this run.",
)
@click.option(
    "--ray-actors",
    type=click.IntRange(min=1),
    default=None,
    help="With --engine ray: model actors (default: one per GPU of the cluster, else 1).",
)
@click.option(
    "--ray-readers",
    type=click.IntRange(min=1),
    default=None,
    help="With --engine ray: tile-reading actors (default: the cluster's CPUs left, 1-16).",
)
@click.option(
    "--gpu-decode",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Decode the slides' JPEG tiles in batches on the model's device (torchvision "
    "decode_jpeg; auto: on CUDA when torchvision is installed). --engine local only.",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    default="auto",
    show_default=True,
    help="Model compute dtype (auto: bf16 autocast on CUDA, float32 on CPU). --engine local only.",
)
@click.option(
    "--compile",
    "compile_",
    is_flag=True,
    help="torch.compile the model (falls back to eager, recorded, where it fails). "
    "--engine local only.",
)
@click.option(
    "--grid-um",
    default="head",
    show_default=True,
    help="Prediction grid: tile centres every N µm (e.g. 18 or 35), 'head' (the spacing the "
    "model's ExpressionHead was fitted on; non-overlapping without one) or 'tile' "
    "(non-overlapping tiles).",
)
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@handle_errors
def encode(
    slides: str,
    model: str,
    weights: str | None,
    out: str,
    device: str,
    batch_size: int | None,
    workers: int | None,
    seed: int,
    fusion: str,
    tile_output: bool,
    allow_outside: bool,
    engine: str,
    ray_address: str | None,
    ray_actors: int | None,
    ray_readers: int | None,
    gpu_decode: str,
    precision: str,
    compile_: bool,
    grid_um: str,
    no_progress: bool,
) -> None:
    """Encode H&E slides with a frozen model into patient representations (resumable)."""
    from ..encode.engine import encode_slides
    from ..encode.loaders import load_encoder
    from ..encode.run_folder import check_manifest
    from ..errors import EncoderError
    from ..slides import read_slide_manifest

    ray_opts = {"--ray-address": ray_address, "--ray-actors": ray_actors,
                "--ray-readers": ray_readers}  # fmt: skip
    if engine != "ray" and any(v is not None for v in ray_opts.values()):
        given = ", ".join(k for k, v in ray_opts.items() if v is not None)
        raise click.UsageError(f"{given} needs --engine ray")
    local_only = {"--gpu-decode": gpu_decode != "auto", "--precision": precision != "auto",
                  "--compile": compile_}  # fmt: skip
    if engine == "ray" and any(local_only.values()):
        given = ", ".join(k for k, v in local_only.items() if v)
        raise click.UsageError(f"{given} applies to --engine local only")
    grid: Any = grid_um
    if grid_um not in ("head", "tile"):
        try:
            grid = float(grid_um)
        except ValueError:
            raise click.BadParameter(
                f"{grid_um!r}: give a number of µm, 'head' or 'tile'", param_hint="--grid-um"
            ) from None
    if engine == "ray" and workers is not None:
        raise click.UsageError(
            "--jobs (--workers) sets DataLoader workers of --engine local; with --engine ray use "
            "--ray-readers"
        )
    model_arg: Any = model
    if weights is not None or model.strip().lower() != "demo":
        from ..encode.model_card import load_model_card

        if weights is not None and model.strip().lower() == "demo":
            raise EncoderError("--weights cannot be used with --model demo")
        model_arg = load_model_card(model, weights=weights)
    # every input is checked before the folder is locked: the manifest (the run reads it again)
    # and the model with its weights (loaded here once and handed to the run)
    check_manifest(read_slide_manifest(slides, allow_outside=allow_outside))
    if engine == "ray":  # the driver's copy, on CPU (the actors load their own)
        encoder = load_encoder(model_arg, device="cpu")
    else:
        encoder = load_encoder(model_arg, device=device, precision=precision, compile=compile_)
    common: dict[str, Any] = {
        "device": device,
        "batch_size": batch_size,
        "seed": seed,
        "progress": not no_progress,
        "tile_output": tile_output,
        "fusion": fusion,
        "allow_outside": allow_outside,
        "grid_um": grid,
    }
    with writing_into(Path(out), "encode"):
        if engine == "ray":
            from ..encode.ray_runner import encode_slides_ray

            # Ray Data reports each stage at INFO; the progress bar says what a user needs
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            res = encode_slides_ray(
                slides,
                encoder,
                out,
                address=ray_address,
                concurrency=ray_actors,
                read_concurrency=ray_readers,
                **common,
            )
        else:
            res = encode_slides(slides, encoder, out, n_jobs=workers,
                                gpu_decode=gpu_decode, precision=precision, compile=compile_,
                                **common)  # fmt: skip
    n_p, n_f = res.representations.shape
    click.echo(
        f"wrote {res.out_dir / 'representations.h5ad'}: {n_p} patients x {n_f} features; "
        f"{res.slides.n_obs} slides, {len(res.exclusions)} excluded "
        f"(see exclusions.csv); {res.n_tiles} tiles encoded this run"
        + (f" at {res.tiles_per_second:.0f} tiles/s" if res.n_tiles else "")
    )
