"""Progress bars and stage timing for long analyses (tqdm to stderr; never to stdout).

``progress=None`` (the default everywhere) shows a bar only when stderr is a terminal and we are
not inside a Jupyter kernel; ``True`` forces it (also in notebooks), ``False`` silences it. The
CLI's ``--no-progress`` sets ``False``. Every finished stage is logged once with its wall time.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["progress_iter", "stage", "progress_enabled", "set_default_progress"]

logger = logging.getLogger("tario_clinical")

T = TypeVar("T")
_DEFAULT: bool | None = None


def set_default_progress(enabled: bool | None) -> None:
    """Set the process-wide default used when a function gets ``progress=None``."""
    global _DEFAULT
    _DEFAULT = enabled


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def progress_enabled(enabled: bool | None) -> bool:
    """Resolve ``enabled`` (None = the default: a terminal on stderr, not a notebook)."""
    if enabled is not None:
        return bool(enabled)
    if _DEFAULT is not None:
        return _DEFAULT
    isatty = getattr(sys.stderr, "isatty", lambda: False)
    return bool(isatty()) and not _in_notebook()


def progress_iter(
    iterable: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool | None = None
) -> Iterator[T]:
    """Iterate with a tqdm bar (ETA) on stderr when enabled; plain iteration otherwise."""
    if not progress_enabled(enabled):
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False, mininterval=0.5)


@contextlib.contextmanager
def stage(name: str, **fields: Any) -> Iterator[None]:
    """Log ``"<name> done in X s"`` (INFO, logger ``tario_clinical``) when the block finishes."""
    t0 = time.perf_counter()
    yield
    extra = "".join(f", {k}={v}" for k, v in fields.items())
    logger.info("%s done in %.1f s%s", name, time.perf_counter() - t0, extra)
