"""The output-folder lock and the staged, all-at-once commit of a run's files (tario_clinical._lock)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tario_clinical import _lock
from tario_clinical._lock import (
    FILE_LIST_NAME,
    LOCK_NAME,
    lock_holder,
    output_lock,
    staged_output,
)
from tario_clinical.errors import OutputError, OutputLockedError, TarioClinicalError

HOLD = textwrap.dedent(
    """
    import sys, time
    from tario_clinical._lock import output_lock
    with output_lock(sys.argv[1], purpose="holder-under-test"):
        print("locked", flush=True)
        time.sleep(60)
    """
)


@pytest.fixture
def holder(tmp_path):
    """A child process that holds the lock on tmp_path/out until killed."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    yield out, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_lock_records_holder_and_is_removed_after(tmp_path):
    out = tmp_path / "new" / "out"
    with output_lock(out, purpose="unit") as folder:
        assert folder == out and out.is_dir()
        rec = json.loads((out / LOCK_NAME).read_text())
        assert rec["pid"] == os.getpid() and rec["host"] == socket.gethostname()
        assert rec["purpose"] == "unit" and rec["started_utc"].endswith("+00:00")
        assert lock_holder(out)["pid"] == os.getpid()
    assert not (out / LOCK_NAME).exists()
    assert lock_holder(out) is None


def test_second_run_gets_a_clear_error_naming_folder_and_holder(holder):
    out, proc = holder
    with pytest.raises(OutputLockedError) as info:
        with output_lock(out):
            pass
    err = info.value
    msg = str(err)
    assert str(out) in msg and f"pid {proc.pid}" in msg
    assert socket.gethostname() in msg and "holder-under-test" in msg and "since 20" in msg
    assert err.folder == out and err.holder["pid"] == proc.pid
    assert isinstance(err, OutputError) and isinstance(err, TarioClinicalError)
    assert err.exit_code == 2
    assert lock_holder(out)["pid"] == proc.pid


def test_wait_gives_up_after_the_timeout(holder):
    out, _ = holder
    t0 = time.monotonic()
    with pytest.raises(OutputLockedError, match=r"after waiting 0\.3 s"):
        with output_lock(out, wait=0.3):
            pass
    assert time.monotonic() - t0 >= 0.3


def test_lock_of_a_killed_holder_is_taken_over(holder):
    out, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / LOCK_NAME).exists()  # left behind: stale
    assert lock_holder(out) is None
    with output_lock(out, purpose="after"):
        assert lock_holder(out)["purpose"] == "after"


def test_stale_lock_file_from_dead_pid_is_taken(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "started_utc": "x"}
    (out / LOCK_NAME).write_text(json.dumps(stale))
    with output_lock(out):
        assert lock_holder(out)["pid"] == os.getpid()


def test_lock_is_reentrant_in_one_process(tmp_path):
    with output_lock(tmp_path, purpose="outer"):
        with output_lock(tmp_path, purpose="inner"):
            assert lock_holder(tmp_path)["purpose"] == "outer"
        assert (tmp_path / LOCK_NAME).exists()  # still held by the outer block
    assert not (tmp_path / LOCK_NAME).exists()


def test_without_flock_a_pid_file_is_used_and_stale_pids_are_broken(tmp_path, monkeypatch):
    monkeypatch.setattr(_lock, "_fcntl", None)
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(
        json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started_utc": "x"})
    )
    with output_lock(out):
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    # a live pid (ours, recorded by a "different" run) is respected
    (out / LOCK_NAME).write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_utc": "t"})
    )
    with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
        with output_lock(out):
            pass
    # another host's lock is never broken
    (out / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere"}))
    with pytest.raises(OutputLockedError, match="host elsewhere"):
        with output_lock(out):
            pass


def test_lock_on_a_file_is_an_output_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        with output_lock(f):
            pass
    with pytest.raises(OutputError, match="not a folder"):
        with staged_output(f):
            pass


def test_staged_files_land_together_and_replace_the_previous_set(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "user_notes.txt").write_text("mine")  # not from a staged set: kept
    with staged_output(out) as stage:
        assert stage.parent == out.resolve().parent and stage.name.startswith(".out.tc-stage-")
        (stage / "results.json").write_text("0")
        (stage / "figures").mkdir()
        (stage / "figures" / "roc.png").write_text("0")
        (stage / "figures" / "extra.png").write_text("0")
        assert not (out / "results.json").exists()  # nothing visible before the end
    assert not stage.exists()
    assert (out / "results.json").read_text() == "0"
    listing = json.loads((out / FILE_LIST_NAME).read_text())
    assert listing["files"] == ["figures/extra.png", "figures/roc.png", "results.json"]

    with staged_output(out) as stage:
        (stage / "results.json").write_text("1")
        (stage / "figures").mkdir()
        (stage / "figures" / "roc.png").write_text("1")
    assert (out / "results.json").read_text() == "1"
    assert (out / "figures" / "roc.png").read_text() == "1"
    assert not (out / "figures" / "extra.png").exists()  # left over from the earlier set
    assert (out / "user_notes.txt").read_text() == "mine"
    assert not (out / LOCK_NAME).exists()


def test_failed_run_leaves_the_folder_unchanged(tmp_path):
    out = tmp_path / "out"
    with staged_output(out) as stage:
        (stage / "a.txt").write_text("good")
    with pytest.raises(RuntimeError):
        with staged_output(out) as stage:
            (stage / "a.txt").write_text("bad")
            raise RuntimeError("analysis failed")
    assert (out / "a.txt").read_text() == "good"
    assert not stage.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_commit_waits_for_the_lock_then_fails_with_the_holder(holder):
    out, proc = holder
    with pytest.raises(OutputLockedError, match=f"pid {proc.pid}"):
        with staged_output(out, wait=0.2) as stage:
            (stage / "a.txt").write_text("x")
    assert not (out / "a.txt").exists()
    assert not stage.exists()


WRITER = textwrap.dedent(
    """
    import sys, time
    from tario_clinical._lock import staged_output
    out, seed = sys.argv[1], sys.argv[2]
    with staged_output(out, wait=30) as stage:
        for name in ("results.json", "scores.csv", "report.html"):
            (stage / name).write_text(seed)
            time.sleep(0.05)
    """
)


def test_concurrent_runs_both_succeed_and_the_folder_holds_one_set(tmp_path):
    out = tmp_path / "out"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(out), str(seed)]) for seed in (0, 1)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    contents = {(out / n).read_text() for n in ("results.json", "scores.csv", "report.html")}
    assert contents in ({"0"}, {"1"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left
    assert not (out / LOCK_NAME).exists()


def test_lock_holder_of_unlocked_or_unreadable_folder(tmp_path):
    assert lock_holder(tmp_path) is None
    (tmp_path / LOCK_NAME).write_text("not json")
    assert lock_holder(tmp_path) is None
    with output_lock(tmp_path):  # an unreadable lock file without a holder is taken
        pass
    assert not (tmp_path / LOCK_NAME).exists()


def _start_forking_holder(code: str, out, attempts: int = 3):  # noqa: ANN001, ANN202
    """Start the forking holder and wait for both of its lines (either order): the child's pid,
    and the child's own line, printed only after its at-fork hooks ran. The start is retried
    (at most ``attempts`` times) when the lines do not come within 60 s -- the setup, not the
    behaviour under test; a failure reports each attempt's exit code and stderr."""
    import threading

    failures = []
    for _ in range(attempts):
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # holder and forked child in one group: a failed start
        )  # is cleaned up as a whole (the child keeps the pipes open)
        lines: list[str] = []

        def read(p=proc, got=lines) -> None:  # noqa: ANN001
            for _ in range(2):
                got.append(p.stdout.readline().strip())

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(60)
        pids = [x for x in lines if x.isdigit()]
        if len(lines) == 2 and pids and "child running" in lines:
            return proc, int(pids[0])
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the holder and any forked child
        except ProcessLookupError:
            pass
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            err = "(stderr not readable within 30 s)"
        failures.append(f"lines={lines!r} returncode={proc.returncode} stderr={err[-2000:]!r}")
    pytest.fail("the forking holder did not start: " + " | ".join(failures))


def test_a_forked_child_outliving_a_killed_holder_does_not_keep_the_lock(tmp_path):
    """DataLoader workers are forked while the run holds the lock: when the run is killed, a
    worker still alive must not keep the folder locked (its copy of the descriptor is closed)."""
    out = tmp_path / "out"
    code = textwrap.dedent(
        """
        import os, sys, time
        from tario_clinical._lock import output_lock
        with output_lock(sys.argv[1], purpose="forking-holder"):
            child = os.fork()
            if child == 0:
                print("child running", flush=True)  # the after-fork hooks have run
                time.sleep(30)
                os._exit(0)
            print(child, flush=True)
            time.sleep(60)
        """
    )
    proc, child = _start_forking_holder(code, out)
    try:
        assert lock_holder(out)["purpose"] == "forking-holder"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.kill(child, 0)  # the forked child is still alive ...
        assert lock_holder(out) is None  # ... and does not hold the lock
        with output_lock(out, purpose="after"):
            assert lock_holder(out)["purpose"] == "after"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
