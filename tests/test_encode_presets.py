"""Tests of the pathology presets (tario_clinical.encode.presets) and their ViT (encode.vit).

No real weights are available here (they are gated), so the proof is in three parts:

1. *Architecture = the reference implementation.* ``tests/data/encode_presets/layouts.json`` holds
   the parameter names and shapes of timm 1.0.31 ``create_model(...)`` (transformers 5.24
   ``Dinov2Model`` for Phikon-v2, in the 4.x key names of the released file) built with the kwargs
   each model card gives; ``tiny.safetensors`` holds narrow (width 48, 2 blocks) reference models
   of each architecture flavour with their outputs. Both were written by
   ``tests/data/encode_presets/make_reference.py``; the tests need neither timm nor transformers.
2. *Loading through the card = a direct forward.* Random weights of the exact architecture are
   saved in the released layout and file format, loaded by ``load_encoder(<preset>,
   weights=...)`` and the embedding compared with a direct forward of the same module.
3. *Failures are explicit.* Missing weights, wrong files and mismatched keys raise
   ``EncoderError`` naming what is wrong (the CLI exits 2 without a traceback).

Tolerances: 1e-5 absolute on embeddings of order 1 (float32 on CPU; same operations in the same
order, the difference is summation order inside BLAS calls, observed 0 to ~1e-6).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tario_clinical.encode import load_encoder, load_model_card
from tario_clinical.encode.presets import PRESETS, get_preset, list_presets, preset_card
from tario_clinical.encode.vit import VisionTransformer, count_parameters
from tario_clinical.errors import EncoderError

REF = Path(__file__).parent / "data" / "encode_presets"
GIANT = ("h-optimus-0", "h-optimus-1", "prov-gigapath")
TOL = 1e-5


def _kwargs(name: str, **over: object) -> dict:
    kw = dict(get_preset(name).card["architecture_kwargs"])
    kw.update(over)
    return kw


def _to_hf4(state: dict) -> dict:
    """Our keys -> transformers 4.x Dinov2Model keys (the layout of the released Phikon-v2 file)."""
    out: dict = {"embeddings.mask_token": torch.zeros(1, state["cls_token"].shape[-1])}
    top = {"cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings",
           "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
           "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
           "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}  # fmt: skip
    blk = {"attn.proj": "attention.output.dense", "ls1.gamma": "layer_scale1.lambda1",
           "ls2.gamma": "layer_scale2.lambda1"}  # fmt: skip
    for k, v in state.items():
        if k in top:
            out[top[k]] = v
            continue
        _, i, rest = k.split(".", 2)
        if rest.startswith("attn.qkv."):
            kind = rest.rsplit(".", 1)[1]
            for part, t in zip(("query", "key", "value"), v.chunk(3, dim=0)):
                out[f"encoder.layer.{i}.attention.attention.{part}.{kind}"] = t.clone()
            continue
        for ours, theirs in blk.items():
            rest = rest.replace(ours, theirs)
        out[f"encoder.layer.{i}.{rest}"] = v
    return out


def _tiles(n: int = 2) -> np.ndarray:
    from tario_clinical.simulate.slides import synthesize_he

    return np.stack([synthesize_he([i - 1, 0, 0, 0, 0], size_px=224, mpp=0.5, seed=i)
                     for i in range(n)])  # fmt: skip


def _direct(module: torch.nn.Module, tiles: np.ndarray, name: str) -> np.ndarray:
    inp = get_preset(name).card["input"]
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(inp["mean"]).view(1, 3, 1, 1)) / torch.tensor(inp["std"]).view(1, 3, 1, 1)
    with torch.inference_mode():
        return module(x).numpy()


def _save(module: torch.nn.Module, folder: Path, name: str, fmt: str) -> Path:
    """Write ``module`` as the released snapshot folder: config.json + weight file."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    if get_preset(name).card["architecture_kwargs"].get("layout") == "hf_dinov2":
        state = _to_hf4(state)
        (folder / "config.json").write_text(
            json.dumps({"model_type": "dinov2", **PRESETS[name].config})
        )
    else:
        (folder / "config.json").write_text(json.dumps({**PRESETS[name].config, "num_classes": 0}))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = folder / "model.safetensors"
        save_file(state, str(path))
    else:
        path = folder / "pytorch_model.bin"
        torch.save(state, path)
    return path


# ---- cards ------------------------------------------------------------------------------------


def test_presets_import_no_torch() -> None:
    """The presets are plain data: importing them (and tario_clinical) loads no torch."""
    code = ("import sys, tario_clinical, tario_clinical.encode.presets as p; "
            "assert 'torch' not in sys.modules, 'torch imported'; print(len(p.PRESETS))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(len(PRESETS))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_card_is_complete_and_cited(name: str, tmp_path: Path) -> None:
    """Each preset expands into a schema-valid card: 224 px, 0.5 µm/px, normalisation, width
    consistent with the pooling, a licence, sources, and the file the repository publishes."""
    p = get_preset(name)
    (tmp_path / p.files[0]).write_bytes(b"")
    card = load_model_card(name, weights=tmp_path)
    kw = card.data["architecture_kwargs"]
    assert card.preset == name and card.tile_px == 224 and card.mpp == 0.5
    assert card.data["architecture"] == "vit" and card.weights_path == tmp_path / p.files[0]
    factor = 2 if kw["pool"] == "token+patch_mean" else 1
    assert card.data["output"] == {"kind": "embedding", "width": factor * kw["embed_dim"]}
    assert len(card.mean) == 3 and len(card.std) == 3 and card.data["licence"]
    assert len(p.sources) >= 2 and any(s.startswith("https://") for s in p.sources)
    assert card.format == ("safetensors" if p.files[0].endswith(".safetensors") else "state_dict")


def test_documented_widths() -> None:
    """Widths and parameter counts stated by the model cards / papers."""
    widths = {n: PRESETS[n].card["output"]["width"] for n in PRESETS}
    assert widths == {"uni": 1024, "uni2-h": 1536, "virchow2": 2560, "h-optimus-0": 1536,
                      "h-optimus-1": 1536, "prov-gigapath": 1536, "phikon-v2": 1024}  # fmt: skip
    with torch.device("meta"):
        n = {k: count_parameters(VisionTransformer(**_kwargs(k))) for k in PRESETS}
    # UNI ViT-L 303M, UNI2-h 681M, Virchow2 632M ("632 million"), H-optimus / GigaPath 1.1B
    assert round(n["uni"] / 1e6) == 303 and round(n["uni2-h"] / 1e6) == 681
    assert round(n["virchow2"] / 1e6) == 631 and round(n["prov-gigapath"] / 1e9, 1) == 1.1
    assert round(n["h-optimus-0"] / 1e9, 1) == 1.1 and round(n["phikon-v2"] / 1e6) == 303


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_full_size_key_layout_equals_reference(name: str) -> None:
    """Full-size module on the meta device: same parameter names, shapes and count as the
    reference implementation built with the card's kwargs (timm / transformers, layouts.json),
    after the preset's key conversion (Phikon-v2: transformers names -> ours)."""
    ref = json.loads((REF / "layouts.json").read_text())[name]
    with torch.device("meta"):
        ours = VisionTransformer(**_kwargs(name))
        ref_state = {k: torch.empty(s) for k, s in ref["keys"].items()}
    converted = ours.convert_state_dict(ref_state)
    assert {k: list(v.shape) for k, v in converted.items()} == {
        k: list(v.shape) for k, v in ours.state_dict().items()
    }
    ref_n = ref["n_parameters"] - (ours.embed_dim if name == "phikon-v2" else 0)  # mask_token
    assert count_parameters(ours) == ref_n


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_numerics_equal_reference_on_narrow_models(name: str) -> None:
    """Narrow reference models (width 48, 2 blocks; same patch size, registers, MLP type,
    LayerScale, position-embedding scheme and pooling as the preset) loaded into our ViT give the
    reference's embedding; inputs of twice the native size exercise position-embedding
    resampling for the dynamic-size presets."""
    from safetensors.torch import load_file

    flavour = "h-optimus-0" if name == "h-optimus-1" else name
    allt = load_file(str(REF / "tiny.safetensors"))
    state = {k.split("/", 1)[1]: v.float() for k, v in allt.items() if k.startswith(flavour + "/")}
    x, y = state.pop("__input__"), state.pop("__output__")
    meta = json.loads((REF / "tiny.json").read_text())[flavour]
    img = meta["timm_kwargs"]["img_size"] if "timm_kwargs" in meta else meta["config"]["image_size"]
    m = VisionTransformer(**_kwargs(name, img_size=img, embed_dim=48, depth=2, num_heads=4)).eval()
    m.load_state_dict(m.convert_state_dict(state), strict=True)
    with torch.inference_mode():
        got = m(x)
    assert got.shape == y.shape
    assert torch.allclose(got, y, atol=TOL, rtol=0), (got - y).abs().max()


# ---- loading through the card ---------------------------------------------------------------


_FULL = pytest.mark.skipif(
    os.environ.get("TARIO_RUN_FULL") != "1",
    reason="full-size ViT-H / ViT-g round trip (50-60 s each for ViT-H on 2 cores; ViT-g needs "
    "~14 GB RAM); set TARIO_RUN_FULL=1",
)


@pytest.mark.parametrize(
    "name",
    ["uni", "phikon-v2", pytest.param("uni2-h", marks=[pytest.mark.slow, _FULL]),
     pytest.param("virchow2", marks=[pytest.mark.slow, _FULL])]
    + [pytest.param(g, marks=[pytest.mark.slow, _FULL]) for g in GIANT],
)  # fmt: skip
def test_full_size_round_trip(name: str, tmp_path: Path) -> None:
    """Exact full-size architecture with random weights, saved as the released snapshot (UNI,
    UNI2-h, Prov-GigaPath: pytorch_model.bin state dict; Virchow2, H-optimus: model.safetensors;
    Phikon-v2: model.safetensors in transformers key names) and loaded by ``load_encoder(name,
    weights=folder)``: embeddings equal a direct forward (<= 1e-5), provenance carries the file's
    SHA-256. ViT-L presets run by default; ViT-H and ViT-g ones are opt-in (time, memory): their
    layout is checked at full size on the meta device and their numerics at exact width above."""
    module = VisionTransformer(**_kwargs(name)).init_random(seed=1).eval()
    tiles = _tiles(1)
    expected = _direct(module, tiles, name)
    fmt = "safetensors" if PRESETS[name].files[0].endswith(".safetensors") else "bin"
    path = _save(module, tmp_path / name, name, fmt)
    del module
    enc = load_encoder(name, weights=tmp_path / name, device="cpu")
    got = enc.encode_array(tiles)
    assert got.shape == (1, PRESETS[name].card["output"]["width"])
    np.testing.assert_allclose(got, expected, atol=TOL, rtol=0)
    prov = enc.provenance()
    assert prov["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert prov["model_card"]["preset"] == name
    assert prov["model_card"]["weights"] == str(path)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_both_formats_at_exact_width(name: str, tmp_path: Path) -> None:
    """Every preset at its exact widths but 1 block, saved both as safetensors and as a
    torch.save state dict in the released key layout, loaded through a card naming the preset's
    architecture: same embedding as a direct forward in both formats. (The full 24-40 block depth
    only repeats the block; full-size round trips are in test_full_size_round_trip.)"""
    kw = _kwargs(name, depth=1)
    module = VisionTransformer(**kw).init_random(seed=2).eval()
    tiles = _tiles(1)
    expected = _direct(module, tiles, name)
    for fmt in ("safetensors", "bin"):
        path = _save(module, tmp_path / fmt, name, fmt)
        card = {**get_preset(name).card, "architecture_kwargs": kw, "weights": str(path),
                "format": "safetensors" if fmt == "safetensors" else "state_dict"}  # fmt: skip
        got = load_encoder(card, device="cpu").encode_array(tiles)
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=0, err_msg=fmt)


# ---- failures are explicit --------------------------------------------------------------------


def test_mismatched_keys_are_listed(tmp_path: Path) -> None:
    """A checkpoint with a missing and an extra key, or in the wrong layout, is refused with the
    keys named (never loaded leniently)."""
    kw = _kwargs("uni", depth=2, embed_dim=64, num_heads=4, img_size=32)
    m = VisionTransformer(**kw).init_random()
    state = dict(m.state_dict())
    state.pop("blocks.1.ls2.gamma")
    state["head.weight"] = torch.zeros(2, 64)
    torch.save(state, tmp_path / "w.bin")
    card = {**get_preset("uni").card, "architecture_kwargs": kw, "weights": str(tmp_path / "w.bin"),
            "format": "state_dict", "input": {"tile_px": 32, "mpp": 0.5}}  # fmt: skip
    with pytest.raises(EncoderError, match=r"1 missing key\(s\) \[blocks\.1\.ls2\.gamma\].*"
                                           r"1 unexpected key\(s\) \[head\.weight\]"):  # fmt: skip
        load_encoder(card, device="cpu")
    # timm-layout weights offered to the transformers-layout Phikon-v2 preset
    m = VisionTransformer(**_kwargs("phikon-v2", depth=1)).init_random()
    (tmp_path / "phikon").mkdir()
    from safetensors.torch import save_file

    save_file(m.state_dict(), str(tmp_path / "phikon" / "model.safetensors"))
    with pytest.raises(EncoderError, match=r"preset 'phikon-v2'.*missing key.*cls_token|"
                                           r"preset 'phikon-v2'.*missing key"):  # fmt: skip
        load_encoder("phikon-v2", weights=tmp_path / "phikon", device="cpu")


def test_missing_weights_say_where_to_get_them(tmp_path: Path) -> None:
    """No weights, a missing path, a folder without the file, or a config.json of another model."""
    with pytest.raises(EncoderError, match=r"needs local weights.*huggingface.co/MahmoodLab/UNI2-h"
                                           r".*pytorch_model\.bin"):  # fmt: skip
        load_encoder("uni2-h")
    with pytest.raises(EncoderError, match="do not exist.*huggingface.co/paige-ai/Virchow2"):
        load_model_card("virchow2", weights=tmp_path / "nope")
    with pytest.raises(EncoderError, match=r"holds none of model\.safetensors, pytorch_model\.bin"):
        load_model_card("h-optimus-0", weights=tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "vit_large_patch16_224"}))
    with pytest.raises(EncoderError, match="describes a different model: architecture="):
        load_model_card("virchow2", weights=tmp_path)
    with pytest.raises(EncoderError, match="unknown model preset 'uni3'; presets: h-optimus-0"):
        load_model_card({"schema_version": 1, "preset": "uni3", "weights": "x"})


def test_card_naming_a_preset(tmp_path: Path) -> None:
    """A card file names the preset and a relative snapshot folder; it may not redefine the
    architecture; the expanded card (as provenance records it) loads again unchanged."""
    (tmp_path / "UNI").mkdir()
    (tmp_path / "UNI" / "pytorch_model.bin").write_bytes(b"")
    (tmp_path / "card.json").write_text(json.dumps(
        {"schema_version": 1, "preset": "uni", "weights": "UNI", "batch_size": 32}))  # fmt: skip
    card = load_model_card(tmp_path / "card.json")
    assert card.weights_path == (tmp_path / "UNI" / "pytorch_model.bin").resolve()
    assert card.data["batch_size"] == 32 and card.data["architecture_kwargs"]["patch_size"] == 16
    assert load_model_card(card.to_dict(), base_dir=tmp_path).data == card.data
    bad = {
        "schema_version": 1,
        "preset": "uni",
        "weights": "UNI",
        "input": {"tile_px": 256, "mpp": 1},
    }
    with pytest.raises(EncoderError, match="also sets input, which come from the preset"):
        load_model_card(bad, base_dir=tmp_path)
    assert preset_card("uni", "UNI", base_dir=tmp_path)["weights"] == str(
        Path("UNI/pytorch_model.bin")
    )
    assert list_presets() == sorted(PRESETS)


def test_cli_preset(tmp_path: Path) -> None:
    """``tario-clinical encode --model <preset>``: without weights exit 2 with the download hint
    and no traceback; with local (random) UNI weights it encodes a slide offline."""
    import pandas as pd
    from click.testing import CliRunner

    from tario_clinical.cli.encode_commands import encode
    from tario_clinical.simulate.slides import write_synthetic_slides

    latent = pd.DataFrame(np.random.default_rng(0).normal(size=(1, 5)),
                          index=pd.Index(["P000"], name="patient_id"),
                          columns=[f"P{i:02d}" for i in range(5)])  # fmt: skip
    write_synthetic_slides(latent, tmp_path / "s", seed=11, slides_per_patient=1, size_px=384,
                           mpp=1.0)  # fmt: skip
    runner = CliRunner()
    base = ["--slides", str(tmp_path / "s" / "slides.csv"), "--device", "cpu", "--no-progress"]
    res = runner.invoke(encode, [*base, "--model", "uni2-h", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2, res.output
    assert "huggingface.co/MahmoodLab/UNI2-h" in res.output and "pytorch_model.bin" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "x").exists()
    m = VisionTransformer(**_kwargs("uni", depth=1)).init_random()
    torch.save(m.state_dict(), tmp_path / "uni.bin")
    res = runner.invoke(encode, [*base, "--model", "uni", "--weights", str(tmp_path / "uni.bin"),
                                 "--out", str(tmp_path / "y")])  # fmt: skip
    assert res.exit_code == 2, res.output  # a 1-block checkpoint offered as the 24-block UNI
    assert "322 missing key(s)" in res.output and "Traceback" not in res.output
    card = {**get_preset("uni").card, "architecture_kwargs": _kwargs("uni", depth=1),
            "weights": str(tmp_path / "uni.bin"), "format": "state_dict"}  # fmt: skip
    (tmp_path / "uni1.json").write_text(json.dumps(card))
    res = runner.invoke(encode, [*base, "--model", str(tmp_path / "uni1.json"),
                                 "--out", str(tmp_path / "z")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "1 patients x 1024 features" in res.output


# ---- install ------------------------------------------------------------------------------------


def test_cpu_torch_and_optional_timm() -> None:
    """On this CPU machine torch is the CPU build; timm is optional (the presets need none) and,
    when installed, must import. PyPI's torchvision wheels are CUDA builds: beside a CPU torch
    their import fails ('operator torchvision::nms does not exist') and with it timm's."""
    if torch.version.cuda is not None:
        pytest.skip(f"torch {torch.__version__} is a CUDA build (GPU machine)")
    assert torch.version.cuda is None
    import importlib.util

    if importlib.util.find_spec("timm") is None:
        pytest.skip("timm not installed (optional: pip install 'tario-clinical[timm]')")
    out = subprocess.run([sys.executable, "-c", "import timm"], capture_output=True, text=True)
    assert out.returncode == 0, (
        "timm is installed but does not import; a CPU torch needs the CPU torchvision build of "
        f"the same release: {out.stderr.strip().splitlines()[-1:]}"
    )
