"""Benchmark of the encoder stage: end-to-end tiles/s vs pure forward, and peak RSS vs slide size.

Measurements (one JSON line each on stdout; all lines also saved to
``benchmarks/results/encode_<device>.json`` with a machine description):

* ``forward``: tiles/s of the frozen model alone on uint8 tiles already in memory (the same
  tiles the slides hold), same batch size and device;
* ``end_to_end``: tiles/s of :func:`tario_clinical.encode.encode_slides` on the same slides
  (tiles read and decoded in the main process or in DataLoader workers, host-to-device copies,
  pooling, per-slide atomic writes) for each worker count compared (``--workers``), counted
  over the tile loop (``loop``) and over the whole call including tissue detection and output
  files (``total``); ``ratio`` = end_to_end loop / forward (target on CPU >= 0.85);
* ``memory``: peak resident memory (VmHWM) of a fresh process encoding slides with ``t`` tiles
  per slide, for slides growing 10x in tile count (target: flat).

On a shared machine other processes disturb single runs heavily: forward and end-to-end runs
are interleaved, and both the median of the per-pair ratios and the best-of-n ratio (the
fastest run of each kind, timeit's convention) are reported.

Two models: ``demo`` (the tiny demo CNN at 64 px, so cheap that reading tiles dominates) and
``cnn224`` (the same architecture, wider, at 224 px: a per-tile cost closer to real pathology
backbones). Run ``python benchmarks/bench_encode.py [--device cpu|cuda] [--quick]``.

On CUDA the slide sets are listed ``--repeat-slides`` times (8 by default) under new slide ids,
so that a run lasts long enough to time on a fast GPU without writing more slide files.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os

# as the `encode` CLI does: OpenMP threads sleep while waiting (must precede importing torch)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def _emit(rec: dict, sink: list) -> None:
    sink.append(rec)
    print(json.dumps(rec), flush=True)


def _machine(device: str) -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", ""),
        "device": device,
    }
    try:
        info["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _slides(folder: Path, *, n: int, size_px: int, seed: int) -> Path:
    from tario_clinical.simulate.slides import write_synthetic_slides

    if (folder / "slides.csv").is_file():
        return folder / "slides.csv"
    z = np.random.default_rng(seed).normal(size=(n, 5))
    lat = pd.DataFrame(
        z, index=[f"B{i:03d}" for i in range(n)], columns=[f"P{i:02d}" for i in range(5)]
    )
    write_synthetic_slides(lat, folder, seed=seed, size_px=size_px, mpp=1.0)
    return folder / "slides.csv"


def _repeat(manifest: Path, k: int) -> Path:
    """The manifest with every slide listed ``k`` times (new slide ids, same files)."""
    if k <= 1:
        return manifest
    m = pd.read_csv(manifest)
    reps = [m.assign(slide_id=m["slide_id"] + f"_r{i}") for i in range(k)]
    out = manifest.with_name(f"slides_x{k}.csv")
    pd.concat(reps, ignore_index=True).to_csv(out, index=False)
    return out


def _wide_card(folder: Path) -> Path:
    """A wider tario_demo_cnn at 224 px (random weights; the cost, not the output, matters)."""
    import torch
    from safetensors.torch import save_file

    from tario_clinical.encode.architectures import build_architecture

    card = folder / "cnn224.json"
    if card.is_file():
        return card
    torch.manual_seed(0)  # benchmark script, not library code
    net = build_architecture("tario_demo_cnn", {"widths": [32, 64, 128, 256], "stride0": 2})
    save_file(
        {k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "cnn224.safetensors")
    )
    card.write_text(json.dumps({
        "schema_version": 1, "name": "bench-cnn224", "version": "1", "licence": "Apache-2.0",
        "format": "safetensors", "weights": "cnn224.safetensors", "architecture": "tario_demo_cnn",
        "architecture_kwargs": {"widths": [32, 64, 128, 256], "stride0": 2},
        "input": {"tile_px": 224, "mpp": 1.0, "mean": [0.8, 0.62, 0.8], "std": [0.15, 0.2, 0.12]},
        "output": {"kind": "embedding", "width": 960},
    }))  # fmt: skip
    return card


def _all_tiles(manifest: Path, encoder) -> np.ndarray:  # noqa: ANN001
    """Read every tile the engine would encode (for the in-memory forward baseline)."""
    from tario_clinical.slides import (
        detect_tissue,
        open_slide,
        read_slide_manifest,
        read_tile,
        tile_grid,
    )

    tiles = []
    for row in read_slide_manifest(manifest).itertuples():
        with open_slide(row.path) as s:
            g = tile_grid(
                s, tile_px=encoder.card.tile_px, mpp=encoder.card.mpp, mask=detect_tissue(s)
            )
            tiles.extend(read_tile(s, g, i) for i in range(len(g)))
    return np.stack(tiles)


def _forward(encoder, tiles: np.ndarray, batch_size: int, repeats: int) -> float:  # noqa: ANN001
    import torch

    t = torch.from_numpy(tiles)
    if encoder.device.startswith("cuda"):
        t = t.pin_memory()
    encoder(t[:batch_size])  # warm-up
    best = 0.0
    for _ in range(repeats):
        if encoder.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(0, len(t), batch_size):
            y = encoder(t[i : i + batch_size])
        if encoder.device.startswith("cuda"):
            torch.cuda.synchronize()
        del y
        best = max(best, len(t) / (time.perf_counter() - t0))
    return best


def _child_memory(manifest: str, model: str, device: str, batch_size: int, workers: int) -> None:
    """Entry point of the memory subprocess: encode, then print peak RSS (VmHWM) as JSON."""
    from tario_clinical.encode import encode_slides

    with tempfile.TemporaryDirectory() as out:
        res = encode_slides(manifest, model, out, device=device, batch_size=batch_size,
                            num_workers=workers, progress=False)  # fmt: skip
        n_tiles = int(res.slides.obs["n_tiles"].sum())
        n_slides = int(res.slides.n_obs)
    hwm = next(
        int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmHWM")
    )  # fmt: skip
    print(json.dumps({"peak_rss_mb": hwm / 1024, "n_tiles": n_tiles, "n_slides": n_slides}))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--workdir", default=None, help="folder for slides (cached between runs)")
    ap.add_argument(
        "--workers",
        default=None,
        help="comma-separated DataLoader worker counts to compare ('auto' = the engine's "
        "default_num_workers); default: 'auto,1' on CPU, 'auto' on CUDA",
    )
    ap.add_argument("--quick", action="store_true", help="fewer/smaller slides (smoke test)")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument(
        "--out", default=None, help="results file (default benchmarks/results/encode_<device>.json)"
    )
    ap.add_argument(
        "--repeat-slides", type=int, default=None,
        help="list each slide this many times (default 1 on CPU, 8 on CUDA)",
    )  # fmt: skip
    ap.add_argument("--_child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        m, model, dev, bs, w = args._child
        _child_memory(m, model, dev, int(bs), int(w))
        return

    from tario_clinical.encode import encode_slides, load_encoder

    work = Path(args.workdir or Path(tempfile.gettempdir()) / "tario_bench_encode")
    work.mkdir(parents=True, exist_ok=True)
    from tario_clinical.encode import default_num_workers

    spec = args.workers or ("auto,1" if args.device == "cpu" else "auto")
    worker_counts = list(dict.fromkeys(
        default_num_workers(args.device) if w.strip() == "auto" else int(w)
        for w in spec.split(",")
    ))  # fmt: skip
    workers = worker_counts[0]
    recs: list[dict] = []
    _emit({"kind": "machine", **_machine(args.device)}, recs)

    # ---- throughput: end-to-end vs pure forward, per model ------------------------------------
    # Forward and end-to-end runs are interleaved (fwd, e2e, fwd, e2e, ...) and the ratio is
    # taken per pair, so drifting load from other processes affects both sides alike.
    reps = 2 if args.quick else 6
    n_thr = 4 if args.quick else 12
    thr_slides = _slides(work / f"thr_{n_thr}_1536", n=n_thr, size_px=1536, seed=1)
    big = 3 if args.quick else 6
    big_slides = _slides(work / f"thr_{big}_3072", n=big, size_px=3072, seed=1)
    rep = args.repeat_slides or (1 if args.device == "cpu" else 8)
    thr_slides, big_slides = _repeat(thr_slides, rep), _repeat(big_slides, rep)
    models = {
        "demo": ("demo", 256, thr_slides),
        "cnn224": (str(_wide_card(work)), 64 if args.device == "cpu" else 256, big_slides),
    }
    for (name, (model, bs, manifest)), nw in itertools.product(models.items(), worker_counts):
        enc = load_encoder(model, device=args.device)
        tiles = _all_tiles(manifest, enc)
        fwds, loops, totals = [], [], []
        for _ in range(reps):
            fwds.append(_forward(enc, tiles, bs, repeats=1))
            with tempfile.TemporaryDirectory(dir=work) as out:
                t0 = time.perf_counter()
                res = encode_slides(
                    manifest, enc, out, batch_size=bs, num_workers=nw, progress=False
                )
                total = time.perf_counter() - t0
            if res.n_tiles != len(tiles):
                raise RuntimeError(f"engine encoded {res.n_tiles} tiles, baseline has {len(tiles)}")
            loops.append(res.n_tiles / res.seconds)
            totals.append(res.n_tiles / total)
        f, lp, tt = np.array(fwds), np.array(loops), np.array(totals)
        _emit({"kind": "throughput", "model": name, "device": enc.device, "dtype": enc.dtype,
               "tile_px": enc.card.tile_px, "batch_size": bs, "workers": nw,
               "engine_default_workers": nw == default_num_workers(args.device),
               "n_tiles": int(len(tiles)), "slide_repeats": rep, "repeats": reps,
               "forward_tiles_per_s": round(float(np.median(f)), 1),
               "end_to_end_loop_tiles_per_s": round(float(np.median(lp)), 1),
               "end_to_end_total_tiles_per_s": round(float(np.median(tt)), 1),
               "ratio_loop": round(float(np.median(lp / f)), 3),
               "ratio_total": round(float(np.median(tt / f)), 3),
               "ratio_loop_per_pair": [round(float(v), 3) for v in lp / f],
               # best-of-n (timeit's convention: the fastest run is the least disturbed one)
               "forward_best_tiles_per_s": round(float(f.max()), 1),
               "end_to_end_loop_best_tiles_per_s": round(float(lp.max()), 1),
               "ratio_loop_best": round(float(lp.max() / f.max()), 3),
               "ratio_total_best": round(float(tt.max() / f.max()), 3),
               "target_ratio": 0.85}, recs)  # fmt: skip

    # ---- memory: peak RSS as tiles per slide grow 10x -------------------------------------------
    sizes = [768, 2432] if args.quick else [768, 1536, 2432]
    for size in sizes:
        manifest = _slides(work / f"mem_{size}", n=3, size_px=size, seed=2)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", str(manifest), "demo",
               args.device, "256", str(workers)]  # fmt: skip
        out = (
            subprocess.run(cmd, capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        r = json.loads(out)
        _emit({"kind": "memory", "model": "demo", "device": args.device, "slide_px": size,
               "tiles_per_slide": round(r["n_tiles"] / r["n_slides"], 1),
               "peak_rss_mb": round(r["peak_rss_mb"], 1)}, recs)  # fmt: skip
    if not args.no_save:
        path = Path(args.out) if args.out else HERE / "results" / f"encode_{args.device}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(recs, indent=1) + "\n")
        print(json.dumps({"kind": "saved", "path": str(path)}), flush=True)


if __name__ == "__main__":
    main()
