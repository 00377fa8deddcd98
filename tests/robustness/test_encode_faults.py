"""Robustness: encoding killed with SIGKILL at random points resumes to identical outputs;
unwritable or full output folders give a clear error and leave inputs untouched."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tario_clinical.encode import encode_slides, load_encoder
from tario_clinical.errors import OutputError
from tario_clinical.simulate.slides import write_synthetic_slides

N_SLIDES = 10


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("faults")
    z = np.random.default_rng(7).normal(size=(N_SLIDES // 2, 5))
    lat = pd.DataFrame(z, index=[f"P{i}" for i in range(len(z))],
                       columns=[f"P{i:02d}" for i in range(5)])  # fmt: skip
    write_synthetic_slides(lat, d, seed=7, slides_per_patient=2, size_px=512)
    return d / "slides.csv"


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _cli(manifest: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tario_clinical.cli", "encode", "--slides", str(manifest),
           "--model", "demo", "--out", str(out), "--device", "cpu", "--batch-size", "8",
           "--workers", "1", "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)


def _slide_arrays(out: Path) -> dict[str, dict[str, np.ndarray]]:
    res = {}
    for f in sorted((out / "slides").glob("*.npz")):
        with np.load(f, allow_pickle=False) as z:
            res[f.name] = {k: z[k] for k in z.files}
    return res


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_is_identical(slides: Path, tmp_path: Path) -> None:
    import anndata as ad

    inputs_before = _hashes(slides.parent)
    # reference: one uninterrupted run with the same command, device and thread count
    # (CPU kernels may round differently with another thread count)
    t0 = time.monotonic()
    proc = _cli(slides, tmp_path / "ref")
    assert proc.wait(timeout=180) == 0
    ref_seconds = time.monotonic() - t0
    ref = ad.read_h5ad(tmp_path / "ref" / "representations.h5ad")
    out = tmp_path / "killed"
    rng = np.random.default_rng(2024)
    mid_run_kills = 0
    for _attempt in range(3):
        n_before = len(list((out / "slides").glob("*.npz"))) if out.exists() else 0
        target = n_before + int(rng.integers(1, 3))  # kill after 1-2 more slides ...
        delay = float(rng.uniform(0.0, 0.08))  # ... plus a random delay into the next one
        proc = _cli(slides, out)
        deadline = time.monotonic() + 2 * ref_seconds + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if out.exists() and len(list((out / "slides").glob("*.npz"))) >= target:
                time.sleep(delay)
                break
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if len(list((out / "slides").glob("*.npz"))) < N_SLIDES:
                mid_run_kills += 1
        else:
            proc.communicate()
        # whatever exists under a final name is complete and readable
        for f in (out / "slides").glob("*.npz"):
            with np.load(f, allow_pickle=False) as z:
                assert int(z["n_tiles"]) > 0
        assert not (out / "representations.h5ad").exists() or proc.returncode == 0
    assert mid_run_kills >= 1, "no kill landed mid-run; the test did not exercise resuming"
    proc = _cli(slides, out)
    stdout, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, stdout.decode()
    assert b"Traceback" not in stdout
    got = ad.read_h5ad(out / "representations.h5ad")
    np.testing.assert_array_equal(got.X, ref.X)
    np.testing.assert_array_equal(got.layers["sd"], ref.layers["sd"])
    pd.testing.assert_frame_equal(got.obs, ref.obs)
    assert list(got.var_names) == list(ref.var_names)
    a, b = _slide_arrays(out), _slide_arrays(tmp_path / "ref")
    assert a.keys() == b.keys() and len(a) == N_SLIDES
    for name in a:
        for key in a[name]:
            np.testing.assert_array_equal(a[name][key], b[name][key], err_msg=f"{name}:{key}")
    assert not list(out.rglob(".*.tmp"))  # temporaries of killed runs are cleaned up
    assert _hashes(slides.parent) == inputs_before  # inputs untouched


def test_unwritable_output_folder(slides: Path, tmp_path: Path) -> None:
    inputs_before = _hashes(slides.parent)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="not a folder"):
        encode_slides(slides, "demo", blocker, device="cpu", progress=False)
    with pytest.raises(OutputError, match="cannot create output folder"):
        encode_slides(slides, "demo", blocker / "sub", device="cpu", progress=False)
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = False
    if os.geteuid() == 0:
        # root ignores mode bits: use a real read-only filesystem where mounting is allowed
        import subprocess

        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(ro)], capture_output=True
            ).returncode
            == 0
        )
        if not mounted:
            pytest.skip("running as root without permission to mount a read-only filesystem")
    else:
        ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable|Read-only"):
            encode_slides(slides, "demo", ro, device="cpu", progress=False)
        assert list(ro.iterdir()) == []
    finally:
        if mounted:
            import subprocess

            subprocess.run(["umount", str(ro)], check=False)
        else:
            ro.chmod(0o755)
    assert _hashes(slides.parent) == inputs_before


def test_full_disk_gives_output_error(
    slides: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs_before = _hashes(slides.parent)
    enc = load_encoder("demo", device="cpu")

    def full_disk(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    # per-slide results are written through provenance.atomic_write with Path.write_bytes
    monkeypatch.setattr(Path, "write_bytes", full_disk)
    out = tmp_path / "full"
    with pytest.raises(OutputError, match="no space left"):
        encode_slides(slides, enc, out, device="cpu", progress=False, num_workers=0)
    monkeypatch.undo()
    assert not list((out / "slides").glob("*")) if (out / "slides").exists() else True
    assert not (out / "representations.h5ad").exists()
    assert _hashes(slides.parent) == inputs_before
