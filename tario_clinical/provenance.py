"""Provenance records and atomic, resumable file output.

Every artefact (h5ad, results.json, report) records what produced it: package and dependency
versions, code version, input hashes, parameters, seed, device and a UTC time. Files are written
through :func:`atomic_write`: to a temporary file in the same folder, flushed, then renamed, so a
crash never leaves a half-written output under the final name.
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import OutputError

__all__ = [
    "SCHEMA_VERSION",
    "sha256_file",
    "sha256_bytes",
    "dependency_versions",
    "code_version",
    "provenance_record",
    "atomic_write",
    "atomic_write_text",
    "atomic_write_h5ad",
    "ensure_output_dir",
    "check_schema_version",
]

#: version of the artefact layouts written by this package; readers refuse newer ones
SCHEMA_VERSION = 1

_KEY_DEPENDENCIES = (
    "numpy",
    "scipy",
    "pandas",
    "polars",
    "anndata",
    "scikit-learn",
    "lifelines",
    "statsmodels",
    "matplotlib",
    "torch",
    "onnxruntime",
    "openslide-python",
    "tiffslide",
    "ray",
)


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file, read in chunks.

    Parameters
    ----------
    path : str or Path
        File to hash.
    chunk : int, default 1 << 20
        Bytes read at a time (1 MiB).

    Returns
    -------
    str
        64 lowercase hex characters.
    """
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def dependency_versions(names: Iterable[str] = _KEY_DEPENDENCIES) -> dict[str, str]:
    """Installed versions of key dependencies (``"not installed"`` where absent)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def code_version() -> str:
    """Package version plus the git commit of the source tree when it is a checkout."""
    from ._version import __version__

    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def provenance_record(
    *,
    kind: str,
    seed: int | None = None,
    parameters: dict[str, Any] | None = None,
    inputs: dict[str, str | Path] | None = None,
    include_time: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A provenance dictionary for an artefact.

    Parameters
    ----------
    kind
        What the artefact is (``"patient"``, ``"slide"``, ``"tile"``, ``"results"`` ...).
    seed
        The seed the artefact was made with.
    parameters
        Parameters of the step (JSON-serialisable).
    inputs
        Name -> file path; each file's SHA-256 is recorded.
    include_time
        Record ``created_utc``. Turn off for artefacts that must be byte-identical across runs.
    extra
        Further keys (model card, weights_sha256, device, dtype ...).
    """
    from ._version import __version__

    rec: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "package_version": __version__,
        "code_version": code_version(),
        "kind": kind,
        "seed": seed,
        "parameters": parameters or {},
        "input_hashes": {k: sha256_file(v) for k, v in (inputs or {}).items()},
        "dependencies": dependency_versions(),
    }
    rec["created_utc"] = (
        _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()
        if include_time
        else "not recorded"
    )
    rec.update(extra)
    return rec


def check_schema_version(record: dict[str, Any], *, what: str) -> None:
    """Refuse an artefact written by a newer tario_clinical layout.

    Parameters
    ----------
    record : dict
        Provenance record; its ``schema_version`` (1 when absent) must be an int no larger than
        this package's ``SCHEMA_VERSION``.
    what : str
        Name of the artefact used in the error message.

    Raises
    ------
    SchemaError
        If the version is newer or not an integer.
    """
    version = record.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        from .errors import SchemaError

        raise SchemaError(
            f"{what}: written with artefact schema version {version}, this tario_clinical reads up to "
            f"{SCHEMA_VERSION}; upgrade with `pip install -U tario-clinical`"
        )


def ensure_output_dir(path: str | Path) -> Path:
    """Create ``path`` (and parents) and check it is a writable directory.

    Raises
    ------
    OutputError
        Naming the folder and the reason (exists as a file, read-only, no space).
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"output folder {p} exists and is not a folder; choose another --out")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create output folder {p}: {err.strerror or err}") from err
    try:
        with tempfile.NamedTemporaryFile(dir=p, prefix=".tc-write-test-", delete=True):
            pass
    except OSError as err:
        reason = (
            "no space left on the device"
            if err.errno == errno.ENOSPC
            else (err.strerror or str(err))
        )
        raise OutputError(f"output folder {p} is not writable: {reason}") from err
    return p


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, writer: Callable[[Path], Any], *, fsync: bool = True) -> Path:
    """Write a file atomically: ``writer(tmp_path)`` then fsync and rename onto ``path``.

    ``fsync=False`` skips the flush to disk: the rename still makes the file appear whole or
    not at all after a process crash or SIGKILL (only a power loss could lose it), which is
    enough for cheap, re-computable per-item outputs such as per-slide encoder results.

    Parameters
    ----------
    path : str or Path
        Target file; missing parent folders are created.
    writer : callable
        ``writer(tmp_path)`` writes the content to a temporary :class:`~pathlib.Path` in the
        target's folder; its return value is ignored.
    fsync : bool, default True
        Flush the temporary file to disk before the rename.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputError
        If the folder is not writable or the disk is full; no partial file is left behind.
    """
    target = Path(path)
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise OutputError(f"cannot write {target}: {err.strerror or err}") from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        if fsync:
            with tmp.open("rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        reason = (
            "no space left on the device"
            if err.errno == errno.ENOSPC
            else (err.strerror or str(err))
        )
        raise OutputError(f"cannot write {target}: {reason}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``path``.

    Parameters
    ----------
    path : str or Path
        Target file; missing parent folders are created.
    text : str
        Content.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputError
        If the folder is not writable or the disk is full.
    """
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def _object_strings(df: Any) -> Any:
    """A copy of ``df`` whose string-dtype columns and index are object dtype."""
    import pandas as pd

    def is_str(dtype: Any) -> bool:
        return isinstance(dtype, pd.StringDtype) or (
            not pd.api.types.is_object_dtype(dtype)
            and not isinstance(dtype, pd.CategoricalDtype)
            and pd.api.types.is_string_dtype(dtype)
        )

    cols = [c for c in df.columns if is_str(df[c].dtype)]
    if not cols and not is_str(df.index.dtype):
        return df
    out = df.copy()
    for c in cols:
        out[c] = out[c].astype(object)
    if is_str(out.index.dtype):
        out.index = out.index.astype(object)
    return out


def atomic_write_h5ad(path: str | Path, adata: Any, *, fsync: bool = True, **kwargs: Any) -> Path:
    """Write an AnnData to ``.h5ad`` atomically (see :func:`atomic_write`).

    pandas >= 3 holds text in a string dtype that anndata 0.12 refuses to write unless a global
    opt-in is set (and anndata < 0.11 could not read back); text columns and indexes of ``obs``
    and ``var`` are written as object strings instead, readable by every anndata version.
    ``adata`` itself is not changed.

    Parameters
    ----------
    path : str or Path
        Destination ``.h5ad``.
    adata : anndata.AnnData
        The object to write.
    fsync : bool, default True
        Flush to disk before the rename.
    **kwargs
        Passed to :meth:`anndata.AnnData.write_h5ad` (e.g. ``compression="gzip"``).

    Returns
    -------
    pathlib.Path
    """
    obs, var = _object_strings(adata.obs), _object_strings(adata.var)
    if obs is not adata.obs or var is not adata.var:
        adata = adata.copy()
        adata.obs, adata.var = obs, var
    return atomic_write(path, lambda p: adata.write_h5ad(p, **kwargs), fsync=fsync)
