"""Read-only or full output folders give a clear error (exit 2), leave no partial file and
never touch the inputs. Uses real read-only and tiny tmpfs mounts where the machine allows
mounting (root in the sandbox and in CI); monkeypatched failures otherwise."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from tario_clinical import OutputError
from tario_clinical.cli import cli
from tario_clinical.provenance import atomic_write, atomic_write_text, ensure_output_dir


def _mount(tmp_path: Path, options: str) -> Path:
    point = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
    point.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({proc.stderr.strip() or 'not permitted'}); covered by the monkeypatched tests"
        )
    return point


@pytest.fixture
def readonly_dir(tmp_path):
    point = _mount(tmp_path, "size=1m,ro")
    yield point
    subprocess.run(["umount", str(point)], check=False)


@pytest.fixture
def tiny_dir(tmp_path):
    point = _mount(tmp_path, "size=64k")
    yield point
    subprocess.run(["umount", str(point)], check=False)


def test_simulate_into_readonly_folder(readonly_dir):
    r = CliRunner().invoke(
        cli,
        ["simulate", "--n-patients", "20", "--n-genes", "20", "--out", str(readonly_dir / "sim")],
    )
    assert r.exit_code == 2, r.output
    assert "cannot create output folder" in r.output and "Read-only" in r.output
    assert "Traceback" not in r.output
    assert list(readonly_dir.iterdir()) == []


def test_simulate_into_full_disk_leaves_no_partial_file(tiny_dir):
    r = CliRunner().invoke(
        cli, ["simulate", "--n-patients", "400", "--n-genes", "2000", "--out", str(tiny_dir)]
    )
    assert r.exit_code == 2, r.output
    assert "no space left" in r.output
    leftovers = [
        p.name
        for p in tiny_dir.iterdir()
        if p.name.endswith(".tmp") or p.name == "representations.h5ad"
    ]
    assert leftovers == []


def test_run_with_readonly_out_leaves_inputs_untouched(readonly_dir, tmp_path, small_trial):
    data = tmp_path / "data"
    small_trial.write(data)
    (data / "study.yaml").write_text(
        "cohort:\n  clinical: clinical.csv\nrepresentations: representations.h5ad\n"
        "decode:\n  targets: [EGFR]\n  n_repeats: 1\nsurvival: null\ndesign: null\n"
    )
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data.iterdir()}
    r = CliRunner().invoke(
        cli, ["run", "--config", str(data / "study.yaml"), "--out", str(readonly_dir / "out")]
    )
    assert r.exit_code == 2 and "Read-only" in r.output and "Traceback" not in r.output
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in data.iterdir()} == before


def test_out_is_a_file(tmp_path):
    f = tmp_path / "taken"
    f.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        ensure_output_dir(f)
    r = CliRunner().invoke(
        cli, ["simulate", "--n-patients", "20", "--n-genes", "20", "--out", str(f)]
    )
    assert r.exit_code == 2 and "is a file" in r.output and "Traceback" not in r.output


def test_atomic_write_failure_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_text(target, "old")

    def full_disk(path):
        Path(path).write_text("half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputError, match="no space left"):
        atomic_write(target, full_disk)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_atomic_write_interrupted_writer_cleans_up(tmp_path):
    def boom(path):
        Path(path).write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "x.csv", boom)
    assert list(tmp_path.iterdir()) == []
