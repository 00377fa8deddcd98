"""The demo model: a small fixed CNN backbone + an ExpressionHead fitted on synthetic paired data.

**This is a demonstration model, not a pathology model.** It runs the TARIO-2 workflow in
miniature: the backbone (``tario_demo_cnn``, random features drawn from a fixed seed) embeds
64 px tiles at 1 µm/px; the :class:`~tario_clinical.encode.ExpressionHead` is fitted on a
*synthetic* paired set — tiles rendered by :func:`tario_clinical.simulate.slides.synthesize_he`
from random program values, each paired with the expression of 40 demo genes that load on
programs P00..P04 — and predicts that expression from H&E alone. Because the synthetic slides of
:func:`~tario_clinical.simulate.slides.write_synthetic_slides` carry the same programs, the
demo's representations carry the planted genotype signal.

The assets (``demo_assets/``: backbone and head as safetensors, the model card) are committed
(about 120 kB) and reproducible with :func:`build_demo_assets`.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np

from ..errors import EncoderError

__all__ = ["DEMO_SEED", "DEMO_GENES", "demo_card_path", "build_demo_assets", "demo_loadings"]

DEMO_SEED = 20240601
#: names of the demo head's output "genes" (synthetic; 8 per program P00..P04)
DEMO_GENES = tuple(f"DEMO{i:03d}" for i in range(1, 41))
_ASSETS = Path(__file__).resolve().parent / "demo_assets"
_CARD = "demo_card.json"
_TILE_PX = 64
_MPP = 1.0
_RENDER_MPP = 1.0  # level-0 resolution of the default synthetic slides
_MEAN = (0.80, 0.62, 0.80)
_STD = (0.15, 0.20, 0.12)


def demo_card_path() -> Path:
    """Path of the committed demo model card.

    Raises
    ------
    EncoderError
        If the assets are missing from the installation.
    """
    p = _ASSETS / _CARD
    if not p.is_file():
        raise EncoderError(
            f"demo model assets missing ({p}); rebuild them with "
            "tario_clinical.encode.demo.build_demo_assets(<folder>) and pass that card"
        )
    return p


def demo_loadings(seed: int = DEMO_SEED) -> np.ndarray:
    """Programs x genes loadings (5 x 40) of the demo genes: 8 genes per program, signed."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])
    L = rng.normal(0.0, 0.15, size=(5, len(DEMO_GENES)))
    for k in range(5):
        sign = np.where(np.arange(8) % 3 == 2, -1.0, 1.0)
        L[k, 8 * k : 8 * k + 8] += sign * rng.uniform(0.7, 1.2, 8)
    return L


def _backbone_state(seed: int) -> dict[str, np.ndarray]:
    """He-normal weights and small biases for ``tario_demo_cnn`` from a numpy seed."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[0])
    widths, chans = (16, 32, 64), [3, 16, 32, 64]
    state: dict[str, np.ndarray] = {}
    for i in range(len(widths)):
        k = 5 if i == 0 else 3
        fan_in = chans[i] * k * k
        state[f"blocks.{i}.weight"] = (
            rng.standard_normal((chans[i + 1], chans[i], k, k)) * np.sqrt(2.0 / fan_in)
        ).astype(np.float32)
        state[f"blocks.{i}.bias"] = rng.normal(0.0, 0.1, chans[i + 1]).astype(np.float32)
    return state


def _paired_tiles(seed: int, n_tiles: int) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n_tiles`` tiles the way the encoder sees slide tiles, with their programs."""
    from PIL import Image

    from ..simulate.slides import synthesize_he

    ss = np.random.SeedSequence(seed).spawn(4)
    rng = np.random.default_rng(ss[1])
    z = rng.normal(0.0, 1.3, size=(n_tiles, 5))
    children = ss[2].spawn(n_tiles)
    side = int(round(_TILE_PX * _MPP / _RENDER_MPP))
    tiles = np.empty((n_tiles, _TILE_PX, _TILE_PX, 3), dtype=np.uint8)
    for i in range(n_tiles):
        img = synthesize_he(z[i], size_px=side, mpp=_RENDER_MPP, seed=children[i], islands=False)
        im = Image.fromarray(img)
        if side != _TILE_PX:
            im = im.reduce(side // _TILE_PX)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90)  # slides store JPEG tiles
        buf.seek(0)
        tiles[i] = np.asarray(Image.open(buf).convert("RGB"))
    return tiles, z


def build_demo_assets(
    out_dir: str | os.PathLike[str], *, seed: int = DEMO_SEED, n_tiles: int = 3000
) -> Path:
    """Build the demo model (backbone weights, fitted head, card) into ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Folder to write ``demo_backbone.safetensors``, ``demo_head.safetensors`` and
        ``demo_card.json``.
    seed : int
        Seed of the backbone weights, the paired set and the noise.
    n_tiles : int
        Size of the synthetic paired training set.

    Returns
    -------
    pathlib.Path
        The model card.
    """
    import torch
    from safetensors.numpy import save_file

    from ..provenance import sha256_file
    from .architectures import build_architecture
    from .head import ExpressionHead

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = _backbone_state(seed)
    save_file(state, str(out / "demo_backbone.safetensors"))
    model = build_architecture("tario_demo_cnn", {"widths": [16, 32, 64], "stride0": 2})
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    model.eval()
    tiles, z = _paired_tiles(seed, n_tiles)
    mean = torch.tensor(_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(_STD).view(1, 3, 1, 1)
    embs = []
    with torch.inference_mode():
        for i in range(0, n_tiles, 256):
            x = torch.from_numpy(tiles[i : i + 256]).permute(0, 3, 1, 2).float() / 255.0
            embs.append(model((x - mean) / std).numpy())
    emb = np.concatenate(embs)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3].spawn(1)[0])
    expr = z @ demo_loadings(seed) + rng.normal(0.0, 0.3, size=(n_tiles, len(DEMO_GENES)))
    head = ExpressionHead().fit(emb, expr, genes=list(DEMO_GENES))
    head.save(out / "demo_head.safetensors")
    card = {
        "schema_version": 1,
        "name": "tario-demo-cnn-expression",
        "version": "1",
        "description": (
            "DEMO MODEL, NOT A PATHOLOGY MODEL. A small fixed random-feature CNN "
            "(tario_demo_cnn) with an ExpressionHead fitted on synthetic paired H&E tiles and "
            "synthetic expression of 40 demo genes. For demonstrations and tests only."
        ),
        "intended_use": "Demonstration of the encode -> decode workflow on synthetic slides.",
        "licence": "Apache-2.0",
        "format": "safetensors",
        "weights": "demo_backbone.safetensors",
        "sha256": sha256_file(out / "demo_backbone.safetensors"),
        "architecture": "tario_demo_cnn",
        "architecture_kwargs": {"widths": [16, 32, 64], "stride0": 2},
        "input": {
            "tile_px": _TILE_PX,
            "mpp": _MPP,
            "mean": list(_MEAN),
            "std": list(_STD),
            "value_range": "0-1",
        },
        "output": {"kind": "embedding", "width": int(emb.shape[1])},
        "head": {
            "weights": "demo_head.safetensors",
            "sha256": sha256_file(out / "demo_head.safetensors"),
            "description": (
                f"ridge (alpha={head.alpha_:g}) fitted on {n_tiles} synthetic paired tiles, "
                f"seed {seed}"
            ),
        },
        "batch_size": 256,
    }
    path = out / _CARD
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover - maintainer tool: rebuild the committed assets
    print(build_demo_assets(_ASSETS))
