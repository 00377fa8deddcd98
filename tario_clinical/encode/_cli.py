"""Click commands of the encoder stage, wired into ``tario-clinical`` by ``cli.py``.

``encode`` runs :func:`~tario_clinical.encode.encode_slides` (``--engine local``, the default) or
:func:`~tario_clinical.encode.ray_runner.encode_slides_ray` (``--engine ray``: many GPUs or
nodes, same presets, resume and outputs); :func:`slide_options` adds the
``--with-slides`` options to a ``simulate`` command and :func:`write_slides_from_options` acts
on them. Errors of the toolkit become exit code 2 with a one-line message, no traceback.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import EncoderError, TarioClinicalError

__all__ = ["encode", "slide_options", "write_slides_from_options"]

# Process-level setting of the command-line entry point (library code never touches the
# environment): OpenMP threads that sleep instead of spinning while they wait. With DataLoader
# workers sharing the CPU cores, spinning threads steal the workers' time; on a 2-core machine
# passive waiting doubled end-to-end CPU throughput (benchmarks/bench_encode.py). Only effective
# if torch has not been imported yet; an explicit user setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _fail(err: TarioClinicalError) -> None:
    click.echo(f"error: {err}", err=True)
    sys.exit(getattr(err, "exit_code", 2))


@click.command("encode")
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
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="DataLoader worker processes reading tiles (default: 0 on CPU, up to 8 on CUDA).",
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
    from .engine import encode_slides

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
            "--workers sets DataLoader workers of --engine local; with --engine ray use "
            "--ray-readers"
        )
    try:
        model_arg: Any = model
        if weights is not None or model.strip().lower() != "demo":
            from .model_card import load_model_card

            if weights is not None and model.strip().lower() == "demo":
                raise EncoderError("--weights cannot be used with --model demo")
            model_arg = load_model_card(model, weights=weights)
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
        if engine == "ray":
            from .ray_runner import encode_slides_ray

            # Ray Data reports each stage at INFO; the progress bar says what a user needs
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            res = encode_slides_ray(
                slides,
                model_arg,
                out,
                address=ray_address,
                concurrency=ray_actors,
                read_concurrency=ray_readers,
                **common,
            )
        else:
            res = encode_slides(slides, model_arg, out, num_workers=workers,
                                gpu_decode=gpu_decode, precision=precision, compile=compile_,
                                **common)  # fmt: skip
    except TarioClinicalError as err:
        _fail(err)
        return
    n_p, n_f = res.representations.shape
    click.echo(
        f"wrote {res.out_dir / 'representations.h5ad'}: {n_p} patients x {n_f} features; "
        f"{res.slides.n_obs} slides, {len(res.exclusions)} excluded "
        f"(see exclusions.csv); {res.n_tiles} tiles encoded this run"
        + (f" at {res.tiles_per_second:.0f} tiles/s" if res.n_tiles else "")
    )


def slide_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator adding ``--with-slides``, ``--slides-per-patient``, ``--slide-px``, ``--slide-mpp``."""

    @click.option(
        "--with-slides", is_flag=True, help="Also write synthetic H&E slides + slides.csv."
    )
    @click.option("--slides-per-patient", type=click.IntRange(min=1), default=1, show_default=True)
    @click.option(
        "--slide-px", type=click.IntRange(min=128), default=1024, show_default=True,
        help="Synthetic slide side in pixels.",
    )  # fmt: skip
    @click.option(
        "--slide-mpp", type=click.FloatRange(min=0.1, max=4.0), default=1.0, show_default=True,
        help="Synthetic slide resolution (µm/px).",
    )  # fmt: skip
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def write_slides_from_options(
    trial: Any,
    out: str,
    *,
    seed: int,
    with_slides: bool,
    slides_per_patient: int = 1,
    slide_px: int = 1024,
    slide_mpp: float = 1.0,
) -> Any:
    """Write synthetic slides when ``with_slides``; returns the manifest or None."""
    if not with_slides:
        return None
    from ..simulate.slides import write_synthetic_slides

    logging.getLogger(__name__).info("writing synthetic slides to %s", out)
    return write_synthetic_slides(
        trial,
        out,
        seed=seed,
        slides_per_patient=slides_per_patient,
        size_px=slide_px,
        mpp=slide_mpp,
    )


if __name__ == "__main__":  # pragma: no cover - `python -m tario_clinical.encode._cli ...`
    encode()
