"""Robustness: malformed slides and model cards give a clear error, exit code 2, no partial output.

Each bad slide is encoded alone through the ``encode`` CLI command: every slide is then
excluded, so the command must stop with exit code 2, a one-line message naming the slide and
what is wrong, no Python traceback, and no output files. Each bad model card must be refused
before anything is written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner
from PIL import Image

from tario_clinical.cli.encode_commands import encode
from tario_clinical.encode import encode_slides
from tario_clinical.encode.demo import demo_card_path
from tario_clinical.errors import SlideError
from tario_clinical.simulate.slides import synthesize_he, write_pyramidal_tiff
from tario_clinical.slides import open_slide

# ---- the slide corpus --------------------------------------------------------------------------


def _good_tiff(p: Path) -> None:
    write_pyramidal_tiff(p, synthesize_he([0] * 5, size_px=256, mpp=1.0, seed=0), mpp=1.0)


def _truncated(p: Path) -> None:
    _good_tiff(p.with_name("full.tiff"))
    data = p.with_name("full.tiff").read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _truncated_header(p: Path) -> None:
    _good_tiff(p.with_name("full2.tiff"))
    p.write_bytes(p.with_name("full2.tiff").read_bytes()[:64])


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _not_an_image(p: Path) -> None:
    p.write_text("patient_id,EGFR\nP1,mutant\n")


def _no_tissue(p: Path) -> None:
    rng = np.random.default_rng(0)
    blank = np.clip(242 + rng.normal(0, 2, (512, 512, 3)), 0, 255).astype(np.uint8)
    write_pyramidal_tiff(p, blank, mpp=1.0)


def _no_mpp_png(p: Path) -> None:
    Image.fromarray(synthesize_he([0] * 5, size_px=256, mpp=1.0, seed=1, islands=False)).save(p)


def _no_mpp_tiff(p: Path) -> None:
    img = synthesize_he([0] * 5, size_px=256, mpp=1.0, seed=1, islands=False)
    tifffile.imwrite(p, img, tile=(128, 128), photometric="rgb")


def _five_channels(p: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 255, (5, 256, 256), dtype=np.uint8)
    tifffile.imwrite(p, arr, photometric="minisblack", planarconfig="separate",
                     resolution=(1e4, 1e4), resolutionunit="CENTIMETER")  # fmt: skip


def _two_channel_png(p: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 255, (64, 64, 2), dtype=np.uint8)
    tifffile.imwrite(p, arr, photometric="minisblack", planarconfig="contig",
                     resolution=(1e4, 1e4), resolutionunit="CENTIMETER", extrasamples=[0])  # fmt: skip


BAD_SLIDES: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "truncated_tiff": ("trunc.tiff", _truncated, r"trunc|cannot|read"),
    "truncated_header": ("head.tiff", _truncated_header, r"cannot open"),
    "empty_file": ("empty.svs", _empty, r"cannot open"),
    "not_an_image": ("table.svs", _not_an_image, r"cannot open"),
    "no_tissue": ("blank.tiff", _no_tissue, r"no tissue"),
    "no_mpp_png": ("core.png", _no_mpp_png, r"column 'mpp'"),
    "no_mpp_tiff": ("plain.tiff", _no_mpp_tiff, r"column 'mpp'"),
    "five_channels": ("mif.tiff", _five_channels, r"5 channels"),
    "two_channels": ("ga.tiff", _two_channel_png, r"channels|cannot open|column 'mpp'"),
    "missing_file": ("gone.tiff", lambda p: None, r"not found"),
}


@pytest.mark.parametrize("case", sorted(BAD_SLIDES))
def test_bad_slide_cli_exit_2_no_output(case: str, tmp_path: Path) -> None:
    name, make, pattern = BAD_SLIDES[case]
    (tmp_path / "in").mkdir()
    make(tmp_path / "in" / name)
    pd.DataFrame({"slide_id": [f"S-{case}"], "patient_id": ["P1"], "path": [name]}).to_csv(
        tmp_path / "in" / "slides.csv", index=False
    )
    before = {p: p.read_bytes() for p in (tmp_path / "in").iterdir()}
    out = tmp_path / "out"
    res = CliRunner().invoke(encode, ["--slides", str(tmp_path / "in" / "slides.csv"),
                                      "--model", "demo", "--out", str(out), "--device", "cpu",
                                      "--workers", "0", "--no-progress"])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.output.startswith("error: ")
    assert f"S-{case}" in res.output
    import re

    assert re.search(pattern, res.output), res.output
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))
    assert {p: p.read_bytes() for p in (tmp_path / "in").iterdir()} == before  # inputs untouched


def test_bad_slide_among_good_ones_is_logged_and_run_continues(tmp_path: Path) -> None:
    rows = []
    for case in ("truncated_tiff", "no_tissue", "no_mpp_png", "five_channels"):
        name, make, _ = BAD_SLIDES[case]
        make(tmp_path / name)
        rows.append({"slide_id": case, "patient_id": "P1", "path": name})
    _good_tiff(tmp_path / "good.tiff")
    rows.append({"slide_id": "good", "patient_id": "P2", "path": "good.tiff"})
    pd.DataFrame(rows).to_csv(tmp_path / "slides.csv", index=False)
    res = encode_slides(tmp_path / "slides.csv", "demo", tmp_path / "out", device="cpu",
                        progress=False, num_workers=0)  # fmt: skip
    assert list(res.representations.obs_names) == ["P2"]
    ex = pd.read_csv(tmp_path / "out" / "exclusions.csv")
    assert sorted(ex["slide_id"]) == sorted(r["slide_id"] for r in rows[:-1])
    assert (ex["patient_id"] == "P1").all() and ex["reason"].str.len().gt(20).all()


@pytest.mark.parametrize("case", ["truncated_tiff", "no_mpp_tiff", "five_channels", "empty_file"])
def test_bad_slide_open_or_read_raises_slide_error(case: str, tmp_path: Path) -> None:
    name, make, _ = BAD_SLIDES[case]
    p = tmp_path / name
    make(p)
    with pytest.raises(SlideError) as ei:
        with open_slide(p, slide_id=case) as s:  # truncated files may open and fail on read
            s.read_region((0, 0), 0, s.dimensions)
    assert case in str(ei.value)


# ---- the model-card corpus -------------------------------------------------------------------


def _demo_card() -> dict:
    return json.loads(demo_card_path().read_text())


def _card_case(tmp: Path, case: str) -> Path:
    assets = demo_card_path().parent
    for f in ("demo_backbone.safetensors", "demo_head.safetensors"):
        shutil.copy(assets / f, tmp / f)
    c = _demo_card()
    p = tmp / "card.json"
    if case == "missing_name":
        del c["name"]
    elif case == "bad_format":
        c["format"] = "pickle"
    elif case == "tile_px_string":
        c["input"]["tile_px"] = "224"
    elif case == "negative_mpp":
        c["input"]["mpp"] = -0.5
    elif case == "std_zero":
        c["input"]["std"] = [0, 1, 1]
    elif case == "unknown_key":
        c["weights_url"] = "http://example.org/w"
    elif case == "no_architecture":
        del c["architecture"]
    elif case == "unknown_architecture":
        c["architecture"] = "vit_giant_unknown"
    elif case == "weights_missing":
        c["weights"] = "nowhere.safetensors"
    elif case == "sha_mismatch":
        c["sha256"] = "f" * 64
    elif case == "corrupt_weights":
        (tmp / "demo_backbone.safetensors").write_bytes(b"\x00garbage" * 10)
        del c["sha256"]
    elif case == "head_missing":
        c["head"]["weights"] = "nohead.safetensors"
    elif case == "wrong_width":
        del c["head"]
        c["output"]["width"] = 7
    elif case == "expression_without_genes":
        c["output"] = {"kind": "expression"}
    elif case == "not_json":
        p.write_text("{'single': 'quotes'}")
        return p
    elif case == "json_array":
        p.write_text("[1, 2]")
        return p
    elif case == "bad_transform":
        c["output"]["transform"] = "exp"
    elif case == "tile_px_too_small":
        c["input"]["tile_px"] = 4
    p.write_text(json.dumps(c))
    return p


BAD_CARDS = {
    "missing_name": "'name'",
    "bad_format": "key 'format'",
    "tile_px_string": "key 'input.tile_px'",
    "negative_mpp": "key 'input.mpp'",
    "std_zero": "key 'input.std.0'",
    "unknown_key": "weights_url",
    "no_architecture": "'architecture'",
    "unknown_architecture": "unknown architecture",
    "weights_missing": "key 'weights'",
    "sha_mismatch": "key 'sha256'",
    "corrupt_weights": "cannot load safetensors",
    "head_missing": "key 'head.weights'",
    "wrong_width": "output.width=7",
    "expression_without_genes": "'genes'",
    "not_json": "not valid JSON",
    "json_array": "JSON object",
    "bad_transform": "key 'output.transform'",
    "tile_px_too_small": "key 'input.tile_px'",
}


@pytest.fixture(scope="module")
def one_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("one")
    _good_tiff(d / "g.tiff")
    pd.DataFrame({"slide_id": ["g"], "patient_id": ["P1"], "path": ["g.tiff"]}).to_csv(
        d / "slides.csv", index=False
    )
    return d / "slides.csv"


@pytest.mark.parametrize("case", sorted(BAD_CARDS))
def test_bad_model_card_cli_exit_2(case: str, tmp_path: Path, one_slide: Path) -> None:
    card = _card_case(tmp_path, case)
    out = tmp_path / "out"
    res = CliRunner().invoke(encode, ["--slides", str(one_slide), "--model", str(card),
                                      "--out", str(out), "--device", "cpu", "--no-progress"])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.output.startswith("error: ")
    assert BAD_CARDS[case] in res.output, res.output
    assert "card.json" in res.output or "safetensors" in res.output
    assert not out.exists()  # refused before anything was written
