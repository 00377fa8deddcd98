"""Tests of the synthetic H&E slides (tario_clinical.simulate.slides)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from tario_clinical.simulate.slides import (
    MORPHOLOGY_PROGRAMS,
    synthesize_he,
    write_synthetic_slides,
)
from tario_clinical.slides import open_slide, read_slide_manifest


def _latent(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))
    return pd.DataFrame(
        z, index=pd.Index([f"P{i:04d}" for i in range(n)], name="patient_id"),
        columns=[f"P{i:02d}" for i in range(6)],
    )  # fmt: skip


def _haematoxylin(rgb: np.ndarray) -> np.ndarray:
    od = -np.log(np.clip(rgb.astype(float), 1, 255) / 255.0)
    return od @ np.array([0.650, 0.704, 0.286]) - 0.5 * (od @ np.array([0.072, 0.990, 0.105]))


def _nuclei(rgb: np.ndarray) -> tuple[int, float]:
    """Count and mean area (px) of haematoxylin-rich blobs (OD threshold 0.3)."""
    dark = _haematoxylin(rgb) > 0.3
    lab, n = ndimage.label(dark)
    if n == 0:
        return 0, 0.0
    areas = np.bincount(lab.ravel())[1:]
    return n, float(areas.mean())


def test_write_and_read_with_both_backends(tmp_path: Path) -> None:
    lat = _latent(3)
    m = write_synthetic_slides(lat, tmp_path, seed=5, slides_per_patient=2, size_px=384, mpp=1.0)
    assert list(m.columns) == ["slide_id", "patient_id", "path", "stain", "timepoint", "specimen"]
    assert len(m) == 6 and m["slide_id"].is_unique
    assert (tmp_path / "slides.csv").is_file()
    man = read_slide_manifest(tmp_path / "slides.csv")
    for backend in ("openslide", "tiffslide"):
        with open_slide(man["path"].iloc[0], backend=backend) as s:
            assert s.mpp == pytest.approx(1.0) and s.mpp_source == "metadata"
            assert s.dimensions == (384, 384) and s.level_count == 4
    assert not list(tmp_path.glob("slides/.*tmp*"))  # no temporary files left


def test_same_seed_same_pixels_different_seed_differs(tmp_path: Path) -> None:
    lat = _latent(2)
    write_synthetic_slides(lat, tmp_path / "a", seed=1, size_px=256)
    write_synthetic_slides(lat, tmp_path / "b", seed=1, size_px=256)
    write_synthetic_slides(lat, tmp_path / "c", seed=2, size_px=256)
    read = lambda d: open_slide(d / "slides" / "P0000-S1.tiff").read_region((0, 0), 0, (256, 256))  # noqa: E731
    np.testing.assert_array_equal(read(tmp_path / "a"), read(tmp_path / "b"))
    assert not np.array_equal(read(tmp_path / "a"), read(tmp_path / "c"))


def test_programs_drive_morphology() -> None:
    """Nuclear density follows P00, nuclear size P01, haematoxylin intensity P02 (planted)."""

    def img(z: list[float], seed: int) -> np.ndarray:
        return synthesize_he(z, size_px=512, mpp=1.0, seed=seed, islands=False)

    lo_d = np.mean([_nuclei(img([-1.5, 0, 0, 0, 0], s))[0] for s in range(3)])
    hi_d = np.mean([_nuclei(img([1.5, 0, 0, 0, 0], s))[0] for s in range(3)])
    assert hi_d > 1.3 * lo_d  # exp(0.4 * 3) = 3.3x planted; touching nuclei merge into one blob
    lo_a = np.mean([_nuclei(img([0, -2, 0, 0, 0], s))[1] for s in range(3)])
    hi_a = np.mean([_nuclei(img([0, 2, 0, 0, 0], s))[1] for s in range(3)])
    assert hi_a > 2.0 * lo_a  # area ratio exp(2 * 0.16 * 4) = 3.6x planted
    lo_h = np.mean([_haematoxylin(img([0, 0, -2, 0, 0], s)).mean() for s in range(3)])
    hi_h = np.mean([_haematoxylin(img([0, 0, 2, 0, 0], s)).mean() for s in range(3)])
    assert hi_h > lo_h


def test_islands_leave_glass() -> None:
    rgb = synthesize_he([0] * 5, size_px=512, mpp=1.0, seed=0)
    glass = (rgb.min(axis=2) > 215).mean()
    assert 0.15 < glass < 0.7


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="P00"):
        write_synthetic_slides(_latent(2).drop(columns="P00"), tmp_path)
    with pytest.raises(ValueError, match="slides_per_patient"):
        write_synthetic_slides(_latent(2), tmp_path, slides_per_patient=0)
    with pytest.raises(ValueError, match="not in the trial"):
        write_synthetic_slides(_latent(2), tmp_path, patients=["nobody"])
    assert MORPHOLOGY_PROGRAMS == ("P00", "P01", "P02", "P03", "P04")


def test_accepts_simulated_trial(tmp_path: Path) -> None:
    from tario_clinical.simulate import simulate_trial

    trial = simulate_trial(10, seed=0, n_genes=50)
    m = write_synthetic_slides(trial, tmp_path, seed=0, size_px=128)
    assert list(m["patient_id"]) == list(trial.clinical["patient_id"])
