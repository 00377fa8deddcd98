"""One writer at a time per output folder, and a run's files landing as one consistent set.

Two tools, both for the commands that write an output folder (``--out``):

:func:`output_lock`
    An advisory lock on a folder: a lock file ``<folder>/.tario-clinical.lock`` holding the
    holder's pid, host, start time and purpose, locked with ``flock`` for as long as the run
    holds it. The kernel drops the ``flock`` when the holder dies, so a lock file left behind by
    a killed run (a *stale* lock) is taken over without anyone deleting it. A second run gets
    :class:`~tario_clinical.errors.OutputLockedError` naming the folder and the holder, at once
    (``wait=0``) or after waiting up to ``wait`` seconds. On file systems without ``flock`` the
    lock file is created exclusively instead, and a lock whose pid is dead on this host is
    removed as stale. The lock is re-entrant within a process (a run that holds the lock may
    commit a staged set into the same folder). Forked children (DataLoader workers) close their
    copies of the lock's descriptor, so a worker outliving a killed run does not hold the lock.

:func:`staged_output`
    Yields a fresh temporary sibling folder to write a run's files into; when the block ends
    without an error, the files are moved into the folder under :func:`output_lock` (each by an
    atomic rename on the same file system), files that the previous staged set wrote and this
    one did not are removed, and the list of the set is recorded in
    ``<folder>/.tario-clinical-files.json``. Two concurrent runs into one folder therefore both
    succeed and the folder holds the files of whichever finished last, never a mix. On an error
    the staging folder is removed and the folder is left as it was.

Both write nothing but the lock file, the staging sibling and the file list.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OutputError, OutputLockedError
from .provenance import ensure_output_dir

try:  # POSIX
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows
    _fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_NAME",
    "FILE_LIST_NAME",
    "output_lock",
    "lock_holder",
    "staged_output",
    "OutputLockedError",
]

#: name of the lock file inside a locked folder
LOCK_NAME = ".tario-clinical.lock"
#: name of the file listing the last staged set committed into a folder
FILE_LIST_NAME = ".tario-clinical-files.json"

_POLL_S = 0.05
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}

# folder (resolved) -> [open fd or None, depth, owner pid]; re-entrancy within this process
_held: dict[Path, list[Any]] = {}
_held_guard = threading.Lock()


def _forget_locks_in_child() -> None:
    """After a ``fork`` (DataLoader workers, multiprocessing): the child closes its copies of
    the held lock files' descriptors, so that a child outliving a killed parent does not keep
    the ``flock`` (shared by every copy of the descriptor) and the folder locked. The parent
    keeps its lock; the child holds none."""
    global _held_guard
    for entry in _held.values():
        if entry[0] is not None:
            try:
                os.close(entry[0])
            except OSError:
                pass
            entry[0] = None
    _held.clear()
    _held_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


def _key(folder: Path) -> Path:
    return folder.resolve()


def _holder_record(purpose: str | None) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_utc": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "purpose": purpose or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


def _read_holder(path: Path) -> dict[str, Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        rec = json.loads(text)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def lock_holder(folder: str | Path) -> dict[str, Any] | None:
    """Who holds the lock on ``folder``, as recorded in its lock file.

    Parameters
    ----------
    folder : str or Path
        The output folder.

    Returns
    -------
    dict or None
        ``pid, host, started_utc, purpose`` of the current holder, or ``None`` when the folder is
        not locked (no lock file, or a stale one left by a run that has ended).
    """
    path = Path(folder) / LOCK_NAME
    rec = _read_holder(path)
    if rec is None:
        return None
    if _fcntl is not None:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return None
        try:
            _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in _NO_FLOCK:
                return None if _is_stale(rec) else rec
            return rec  # held
        else:
            _fcntl.flock(fd, _fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)
    return None if _is_stale(rec) else rec


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process (its details could not be read)"
    purpose = holder.get("purpose")
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
        f"since {holder.get('started_utc', '?')}" + (f" ({purpose})" if purpose else "")
    )


def _locked_error(folder: Path, holder: dict[str, Any] | None, wait: float) -> OutputLockedError:
    waited = f" after waiting {wait:g} s" if wait > 0 else ""
    return OutputLockedError(
        f"output folder {folder} is in use by another tario-clinical run: {_describe(holder)}"
        f"{waited}. Wait for it to finish or choose another output folder; if that run is gone, "
        f"delete {folder / LOCK_NAME}",
        folder=folder,
        holder=holder,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return True
    return True


def _is_stale(holder: dict[str, Any] | None) -> bool:
    """A lock record whose pid is dead on this host (unknown hosts are never stale)."""
    if not holder or holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    return isinstance(pid, int) and not _pid_alive(pid)


def _write_record(fd: int, record: dict[str, Any]) -> None:
    data = (json.dumps(record, indent=1) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)
    os.fsync(fd)


def _try_flock(path: Path, record: dict[str, Any]) -> int | None:
    """Open and ``flock`` the lock file; the fd when taken, ``None`` when held by another.

    Raises ``OSError`` with an errno in ``_NO_FLOCK`` when the file system has no ``flock``.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        # the holder before us may have unlinked the file between our open and flock: then we
        # locked an orphan inode, so start again on the file now at the path
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            _write_record(fd, record)
            return fd
        os.close(fd)


def _try_exclusive(path: Path, record: dict[str, Any]) -> bool:
    """Lock by creating the lock file exclusively (no ``flock``); stale files are removed."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if _is_stale(_read_holder(path)):
                path.unlink(missing_ok=True)
                continue
            return False
        try:
            _write_record(fd, record)
        finally:
            os.close(fd)
        return True
    return False


@contextmanager
def output_lock(
    folder: str | Path, *, wait: float = 0.0, purpose: str | None = None
) -> Iterator[Path]:
    """Hold the advisory lock on an output folder for the duration of the ``with`` block.

    Parameters
    ----------
    folder : str or Path
        The output folder; created (with parents) when missing.
    wait : float, default 0
        Seconds to wait for another holder to finish before giving up; 0 fails at once.
    purpose : str, optional
        What the holder is doing, shown to a second run (default: the command line).

    Yields
    ------
    Path
        The folder.

    Raises
    ------
    OutputLockedError
        The folder is locked by another run (message and attributes name the folder and the
        holder's pid, host, start time and purpose).
    OutputError
        The folder cannot be created or written, or the lock file cannot be written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with output_lock(d, purpose="doctest"):
    ...         lock_holder(d)["purpose"]
    'doctest'
    """
    folder = ensure_output_dir(folder)
    key = _key(folder)
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is not None:  # re-entrant: this process holds it already
        try:
            yield folder
        finally:
            with _held_guard:
                entry[1] -= 1
        return

    path = folder / LOCK_NAME
    record = _holder_record(purpose)
    deadline = time.monotonic() + max(0.0, float(wait))
    fd: int | None = None
    use_flock = _fcntl is not None
    while True:
        try:
            if use_flock:
                try:
                    fd = _try_flock(path, record)
                    taken = fd is not None
                except OSError as err:
                    if err.errno not in _NO_FLOCK:
                        raise
                    use_flock = False
                    continue
            else:
                taken = _try_exclusive(path, record)
        except OSError as err:
            raise OutputError(f"cannot lock output folder {folder}: {err.strerror or err}") from err
        if taken:
            break
        if time.monotonic() >= deadline:
            raise _locked_error(folder, _read_holder(path), wait)
        time.sleep(_POLL_S)

    owner = os.getpid()
    with _held_guard:
        entry = _held[key] = [fd, 1, owner]
    try:
        yield folder
    finally:
        with _held_guard:
            entry[1] -= 1
            last = entry[1] == 0
            if last and _held.get(key) is entry:
                del _held[key]
        if last and os.getpid() == owner:  # a forked child unwinding leaves the parent's lock
            path.unlink(missing_ok=True)  # before the unlock: see the inode check in _try_flock
            if fd is not None:
                os.close(fd)  # drops the flock


def _files_below(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()
    )


def _previous_set(folder: Path) -> list[str]:
    rec = _read_holder(folder / FILE_LIST_NAME)
    files = rec.get("files") if rec else None
    return [f for f in files if isinstance(f, str)] if isinstance(files, list) else []


def _commit(stage: Path, folder: Path, purpose: str | None) -> None:
    new = _files_below(stage)
    for rel in new:
        src, dst = stage / rel, folder / rel
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
    for rel in sorted(set(_previous_set(folder)) - set(new)):
        old = folder / rel
        if ".." in Path(rel).parts or not old.is_file():
            continue
        old.unlink(missing_ok=True)
        parent = old.parent  # remove folders the old set left empty
        while parent != folder and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    listing = {
        "files": new,
        "committed_utc": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "purpose": purpose,
    }
    tmp = folder / f"{FILE_LIST_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(listing, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, folder / FILE_LIST_NAME)


@contextmanager
def staged_output(
    folder: str | Path, *, wait: float = 600.0, purpose: str | None = None
) -> Iterator[Path]:
    """Write a run's files into a temporary sibling, then land them in ``folder`` as one set.

    Parameters
    ----------
    folder : str or Path
        The output folder; created when missing. Files in it that no staged set wrote are kept.
    wait : float, default 600
        Seconds to wait for the folder's lock at the commit (another run committing, or holding
        the folder) before raising :class:`~tario_clinical.errors.OutputLockedError`.
    purpose : str, optional
        Recorded in the lock and the file list (default: the command line).

    Yields
    ------
    Path
        An empty staging folder on the same file system; write every output file of the run
        into it, with the relative layout they should have in ``folder``.

    Raises
    ------
    OutputLockedError
        The folder stayed locked by another run for ``wait`` seconds (the staged files are
        discarded, ``folder`` is unchanged).
    OutputError
        The staging folder cannot be created or the files cannot be moved.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with staged_output(d) as stage:
    ...         _ = (stage / "results.json").write_text("{}")
    ...     sorted(p.name for p in Path(d).iterdir())
    ['.tario-clinical-files.json', 'results.json']
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output folder {folder} exists and is not a folder; choose another")
    parent = folder.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=parent, prefix=f".{folder.name}.tc-stage-"))
    except OSError as err:
        raise OutputError(f"cannot stage output for {folder}: {err.strerror or err}") from err
    try:
        yield stage
        with output_lock(folder, wait=wait, purpose=purpose):
            try:
                _commit(stage, folder, purpose)
            except OSError as err:
                raise OutputError(
                    f"cannot move the run's files into {folder}: {err.strerror or err}"
                ) from err
    finally:
        shutil.rmtree(stage, ignore_errors=True)
