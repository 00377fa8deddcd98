"""Height of the demo report in headless Chromium (issue 16: "at most half its current height
with the same numbers in results.json").

Runs the embedded demo (``tario-clinical demo``, the default study of ``bash scripts/demo.sh``)
into a temporary folder, opens ``report.html`` in headless Chromium with the browser test's
harness (``tests/test_report_browser.py``: DevTools over a pipe, no network) at 1400 and
1000 px, and prints one JSON line: the full-page height (``document.documentElement.
scrollHeight``), the height of each section, whether anything is wider than the viewport, and,
with ``--baseline OLD/results.json``, whether every number of the new ``results.json`` equals
the old one's (provenance paths, versions and configuration keys aside). ``--out FILE`` also
writes the line as JSON (``benchmarks/results/report_height.json``).

Usage::

    python benchmarks/bench_report_height.py [--baseline OLD/results.json] \
        [--out benchmarks/results/report_height.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE_HEIGHT = 17_007  # px at 1400 px, the demo report before issue 16
SKIP = ("provenance",)  # paths, versions, hashes of this run: not results


def _numbers(obj: Any, path: str = "") -> dict[str, float]:
    """Every numeric leaf of a results dictionary by its JSON path."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not path and k in SKIP:
                continue
            out.update(_numbers(v, f"{path}.{k}"))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(_numbers(v, f"{path}[{i}]"))
    elif isinstance(obj, bool):
        pass
    elif isinstance(obj, int | float):
        out[path] = float(obj)
    return out


def compare(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """Numeric leaves of ``new`` against ``old``: counts and the paths that differ."""
    a, b = _numbers(new), _numbers(old)
    differ = sorted(
        p for p in set(a) & set(b) if not math.isclose(a[p], b[p], rel_tol=0, abs_tol=0)
    )
    return {
        "n_numbers": len(a),
        "n_numbers_baseline": len(b),
        "only_new": sorted(set(a) - set(b))[:20],
        "only_baseline": sorted(set(b) - set(a))[:20],
        "differ": differ[:20],
        "same_numbers": not differ and set(a) == set(b),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, help="results.json of the report before")
    ap.add_argument("--out", type=Path, help="also write the measurement here")
    args = ap.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import test_report_browser as tb  # the browser test's harness

    if tb.CHROMIUM is None:
        raise SystemExit("no chromium binary (apt-get install chromium or set TARIO_CHROMIUM)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "demo"
        cmd = [sys.executable, "-m", "tario_clinical.cli", "demo", "--out", str(out)]
        subprocess.run([*cmd, "--no-progress"], check=True, cwd=ROOT, capture_output=True)
        pages = {}
        for width in (1400, 1000):
            seen = tb.open_page(out / "report.html", Path(tmp) / f"profile{width}", width=width)
            lay = seen["layout"]
            pages[str(width)] = {
                "height_px": lay["height"],
                "scroll_width_px": lay["scrollWidth"],
                "elements_wider_than_viewport": len(lay["wide"]),
                "tables_scrolling_in_their_box": lay["overflowing"],
                "console_errors": len(seen["errors"]),
                "network_requests": len(seen["requests"]),
                "sections_px": {s["id"]: round(s["height"]) for s in lay["sections"]},
            }
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))
        numbers = None
        if args.baseline:
            numbers = compare(results, json.loads(args.baseline.read_text(encoding="utf-8")))
    chromium = subprocess.run([tb.CHROMIUM, "--version"], capture_output=True, text=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "tario_clinical"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.strip()
    h = pages["1400"]["height_px"]
    rec = {
        "benchmark": "report_height",
        "command": "python benchmarks/bench_report_height.py"
        + (" --baseline OLD/results.json" if args.baseline else "")
        + (f" --out {args.out}" if args.out else ""),
        "report_of": "tario-clinical demo --out DIR (defaults: 120 patients, seed 0)",
        "measured": "document.documentElement.scrollHeight in headless Chromium, viewport "
        "1400 x 900 px (and 1000 px), device scale 1",
        "baseline_height_1400_px": BASELINE_HEIGHT,
        "limit_1400_px": BASELINE_HEIGHT // 2,
        "height_1400_px": h,
        "fraction_of_baseline": round(h / BASELINE_HEIGHT, 3),
        "pages": pages,
        "results_json_numbers": numbers,
        "chromium": chromium.stdout.strip(),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
        "commit": commit,
        "working_tree_dirty": bool(dirty),
        "date_utc": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    line = json.dumps(rec, sort_keys=True)
    print(line)
    if args.out:
        args.out.write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
