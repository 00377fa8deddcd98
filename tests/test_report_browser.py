"""The HTML report opened in a real headless browser (Debian's chromium).

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``, no port
opened): the page is loaded from a ``file://`` URL while console messages, log entries
(Content-Security-Policy violations land there), uncaught exceptions and every network request
are recorded. The report is checked at 1400 and 1000 px (no element wider than the viewport;
tables scroll inside their box if they must), screenshots of the top of the report and of each
section are saved under ``test-artifacts/report/`` (gitignored), and the page is printed to
``test-artifacts/report.pdf`` with its print stylesheet.

Skipped, with the reason, when no chromium binary is installed (``apt-get install chromium``;
``.ci/run`` installs it).
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import tario_clinical as tc  # noqa: E402

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _chromium() -> str | None:
    for name in (os.environ.get("TARIO_CHROMIUM"), "/usr/bin/chromium", "chromium"):
        if name and (path := shutil.which(name)):
            return path
    return None


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless browser test skipped: no chromium binary (/usr/bin/chromium); install it "
    "with `apt-get install -y chromium` (CI does this in .ci/run) or set TARIO_CHROMIUM",
)


class _Browser:
    """Minimal DevTools-protocol client over chromium's debugging pipe (fds 3 and 4)."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome_r, self._to_chrome_w = os.pipe()
        self._from_chrome_r, from_chrome_w = os.pipe()

        def wire() -> None:  # in the child: fd 3 = commands in, fd 4 = messages out
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--disable-extensions",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--mute-audio",
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "--window-size=1280,900",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(3, 4),
            preexec_fn=wire,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._cond = threading.Condition()
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(
            target=lambda: self._stderr.extend(iter(self.proc.stderr.readline, b"")),
            daemon=True,
        ).start()

    def _read(self) -> None:
        buf = b""
        with os.fdopen(self._from_chrome_r, "rb", buffering=0) as fh:
            while chunk := fh.read(1 << 16):
                buf += chunk
                while b"\0" in buf:
                    raw, buf = buf.split(b"\0", 1)
                    msg = json.loads(raw)
                    if "id" in msg:
                        with self._cond:
                            self._replies[msg["id"]] = msg
                            self._cond.notify_all()
                    else:
                        self._events.put(msg)

    def send(
        self, method: str, params: dict | None = None, session: str | None = None, timeout=30.0
    ) -> dict[str, Any]:
        self._next_id += 1
        mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(
                        f"chromium did not answer {method}; stderr: "
                        + b"".join(self._stderr[-20:]).decode(errors="replace")
                    )
                self._cond.wait(min(left, 0.5))
            reply = self._replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def events(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        os.close(self._to_chrome_w)


#: viewport widths the report must fit (a laptop and a narrow window)
WIDTHS = (1400, 1000)
#: A4 at 96 px/in less the 12 mm side margins of the print stylesheet
PRINT_WIDTH = round((210 - 2 * 12) / 25.4 * 96)
#: 17,007 px was the demo report at 1400 px before the page was rewritten (issue 16)
MAX_HEIGHT_1400 = 17_007 // 2

_LAYOUT_JS = r"""
(() => {
  const W = document.documentElement.clientWidth;
  const clips = e => {
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll' || o === 'hidden') return true;
    }
    return false;
  };
  // closed <details> are not laid out; in print those marked print-open are
  const printing = matchMedia('print').matches;
  const closed = e => !!e.closest(printing ? 'details:not([open]):not(.print-open)' : 'details:not([open])');
  const wide = [];
  for (const e of document.querySelectorAll('body *')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || closed(e)) continue;
    if (r.right > W + 0.5 && !clips(e)) wide.push(`${e.tagName}.${e.className} right=${Math.round(r.right)}`);
  }
  const boxes = Array.from(document.querySelectorAll('.scroll')).filter(b => !closed(b));
  const overflowing = boxes.filter(b => b.scrollWidth > b.clientWidth + 1)
    .map(b => (b.querySelector('caption') || {textContent: '?'}).textContent.slice(0, 60));
  const boxWide = boxes.filter(b => b.getBoundingClientRect().right > W + 0.5).length;
  const dec = document.querySelector('table.decoders');
  const rowHeights = dec ? Array.from(dec.tBodies[0].rows).map(r => r.getBoundingClientRect().height) : [];
  const sections = Array.from(document.querySelectorAll('section')).map(s => {
    const r = s.getBoundingClientRect();
    return {id: s.id, y: r.top + window.scrollY, height: r.height};
  });
  return JSON.stringify({
    clientWidth: W, scrollWidth: document.documentElement.scrollWidth,
    height: document.documentElement.scrollHeight, wide: wide.slice(0, 20),
    overflowing, boxWide, rowHeights, sections,
  });
})()
"""


def open_page(
    html_path: Path,
    profile: Path,
    *,
    width: int = 1280,
    screenshots: Path | None = None,
    pdf: Path | None = None,
    print_layout: bool = False,
) -> dict:
    """Load ``html_path`` in headless chromium at ``width`` px; return what happened.

    Parameters
    ----------
    screenshots : Path, optional
        Folder for ``top.png`` (the first screen) and ``section-<id>.png`` (each section).
    pdf : Path, optional
        Print the page to this PDF (A4, the page size of the print stylesheet).
    print_layout : bool
        Also lay the page out with the print stylesheet at the A4 content width and measure it.

    Returns
    -------
    dict
        ``errors`` (console errors/warnings, log errors such as CSP violations, uncaught
        exceptions), ``requests`` (URLs of every network request other than the page itself
        and ``data:`` URIs), ``images`` (``[total, decoded]``), ``title``, ``layout`` (widths,
        elements wider than the viewport, table boxes that scroll, decoder row heights,
        sections), ``print_layout`` and ``pdf_pages``.
    """
    url = html_path.resolve().as_uri()
    b = _Browser(CHROMIUM, profile)
    out: dict[str, Any] = {}
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            b.send(f"{domain}.enable", session=sid)
        b.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=sid,
        )
        b.send("Page.navigate", {"url": url}, session=sid)
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            if time.monotonic() > deadline:
                raise RuntimeError("page did not finish loading in 30 s")
            time.sleep(0.05)
            events += b.events()
        time.sleep(0.5)  # late console / network events

        def evaluate(expression: str) -> Any:
            res = b.send(
                "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=sid
            )
            return json.loads(res["result"]["value"])

        n_img, n_ok, title = evaluate(
            "JSON.stringify([document.images.length, "
            "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
            ".length, document.title])"
        )
        out.update(images=[n_img, n_ok], title=title, layout=evaluate(_LAYOUT_JS))
        if screenshots is not None:
            screenshots.mkdir(parents=True, exist_ok=True)

            def shot(name: str, y: float, height: float) -> None:
                clip = {"x": 0, "y": y, "width": width, "height": min(height, 6000), "scale": 1}
                data = b.send(
                    "Page.captureScreenshot",
                    {"format": "png", "clip": clip, "captureBeyondViewport": True},
                    session=sid,
                    timeout=60,
                )["data"]
                (screenshots / name).write_bytes(base64.b64decode(data))

            shot("top.png", 0, 900)
            for s in out["layout"]["sections"]:
                if s["height"] > 0:
                    shot(f"section-{s['id']}.png", s["y"], s["height"])
        if pdf is not None:
            data = b.send(
                "Page.printToPDF",
                {"preferCSSPageSize": True, "printBackground": True},
                session=sid,
                timeout=120,
            )["data"]
            raw = base64.b64decode(data)
            pdf.parent.mkdir(parents=True, exist_ok=True)
            pdf.write_bytes(raw)
            out["pdf_pages"] = pdf_page_count(raw)
        if print_layout:
            b.send("Emulation.setEmulatedMedia", {"media": "print"}, session=sid)
            b.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": PRINT_WIDTH, "height": 1100, "deviceScaleFactor": 1, "mobile": False},
                session=sid,
            )
            time.sleep(0.3)
            out["print_layout"] = evaluate(_LAYOUT_JS)
        events += b.events()
    finally:
        b.close()
    errors, requests = [], []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            errors.append(f"console.{p['type']}: {p.get('args')}")
        elif m == "Runtime.exceptionThrown":
            errors.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
            errors.append(f"log {p['entry'].get('source')}: {p['entry'].get('text')}")
        elif m == "Network.requestWillBeSent":
            req = p.get("request", {}).get("url", "")
            if req != url and not req.startswith("data:"):
                requests.append(req)
    out.update(errors=errors, requests=requests)
    return out


def pdf_page_count(raw: bytes) -> int:
    """Pages of a PDF: the page objects, checked against the page tree's ``/Count``."""
    import re

    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", raw))
    counts = [int(c) for c in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", raw)]
    counts += [int(c) for c in re.findall(rb"/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", raw)]
    if counts and pages and max(counts) != pages:
        raise AssertionError(f"PDF page objects ({pages}) disagree with /Count {counts}")
    return pages or max(counts, default=0)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    """A report like the demo's: decoders (PTEN with few positives), survival by the responder
    score with an arm and covariates, a trial design from the stratification's estimates."""
    from tario_clinical.pipeline import design_inputs_from_stratification

    trial = tc.simulate_trial(120, seed=0, n_genes=50, compute_attainable=False)
    cohort = trial.cohort()
    dec = tc.decode(
        trial.representations,
        cohort,
        targets=["EGFR", "PTEN", "responder"],
        n_repeats=1,
        n_permutations=19,  # the default inference, fewer permutations to stay fast
        seed=0,
    )
    strat = tc.survival.stratify(
        cohort, dec.oof_scores("responder"), arm="arm", covariates=["age", "ecog"], seed=0
    )
    # the cohort's owner records the results' exclusions (the analyses leave it unchanged)
    cohort.record_exclusions(dec.exclusions)
    cohort.record_exclusions(strat.exclusions, patients_only=True)
    guess = design_inputs_from_stratification(strat, cohort)
    # as the pipeline does: estimates from the stratification unless the configuration sets a
    # value (here the HR when the estimate shows no benefit in the high-score group)
    hr_set = None if guess["hr_positive"] < 1 else 0.7
    design = tc.design.compare_designs(
        prevalence=guess["prevalence"],
        hr_positive=guess["hr_positive"] if hr_set is None else hr_set,
        hr_negative=guess["hr_negative"],
        median_control=guess["median_control"],
        accrual=24,
        follow_up=12,
    )
    config = {
        "seed": 0,
        "survival": {"endpoint": "os", "score_target": "responder"},
        "design": {"hr_positive": hr_set, "prevalence": None, "hr_negative": None},
    }
    rep = tc.report.build_report(
        cohort=cohort,
        decode=dec,
        stratification=strat,
        design=design,
        representations=trial.representations,
        embedding=tc.embedding_maps.representation_maps(trial.representations, cohort, seed=0),
        config=config,
        title="Browser test <script>alert(1)</script>",
        seed=0,
    )
    return rep.write(tmp_path_factory.mktemp("browser"))["report"]


def _layout_ok(layout: dict, width: int) -> None:
    assert layout["clientWidth"] == width
    assert layout["scrollWidth"] <= width, layout  # no horizontal scroll bar on the page
    assert layout["wide"] == [], layout["wide"]  # no element wider than the viewport
    assert layout["boxWide"] == 0  # table boxes scroll inside the page, never past it


@needs_chromium
def test_report_in_headless_chromium(report_html, tmp_path):
    """At 1400 px: nothing wider than the viewport, no table needs scrolling, decoder rows one
    line high, no console error, no request; screenshots of the top and every section."""
    shots = ARTIFACTS / "report"
    shutil.rmtree(shots, ignore_errors=True)
    seen = open_page(report_html, tmp_path / "profile", width=1400, screenshots=shots)
    assert seen["errors"] == []
    assert seen["requests"] == []
    n_img, n_ok = seen["images"]
    assert n_img >= 7 and n_ok == n_img  # every embedded figure decoded
    assert seen["title"] == "Browser test <script>alert(1)</script>"  # shown as text
    layout = seen["layout"]
    _layout_ok(layout, 1400)
    assert layout["overflowing"] == []  # at 1400 px every table fits its box
    rows = layout["rowHeights"]
    assert len(rows) == 3 and max(rows) <= 1.5 * min(rows), rows  # no row several lines tall
    assert layout["height"] <= MAX_HEIGHT_1400, layout["height"]
    ids = [s["id"] for s in layout["sections"]]
    assert ids[:2] == ["summary", "plan"]
    for name in ["top", *(f"section-{i}" for i in ids)]:
        png = shots / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (shots / "top.png").stat().st_size > 20_000


@pytest.mark.slow
@needs_chromium
def test_demo_report_is_at_most_half_its_old_height(tmp_path):
    """The demo as a new user runs it (``tario-clinical demo``, 120 patients, seed 0): at most
    half the 17,007 px it was at 1400 px, every section still on the page, nothing wider than
    the viewport (``benchmarks/bench_report_height.py`` records the numbers)."""
    from click.testing import CliRunner

    from tario_clinical.cli import cli

    out = tmp_path / "demo"
    r = CliRunner().invoke(cli, ["demo", "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    seen = open_page(out / "report.html", tmp_path / "profile", width=1400)
    assert seen["errors"] == [] and seen["requests"] == []
    layout = seen["layout"]
    _layout_ok(layout, 1400)
    assert layout["overflowing"] == []
    assert layout["height"] <= MAX_HEIGHT_1400, layout["height"]
    shown = {s["id"] for s in layout["sections"] if s["height"] > 100}
    expected = {"summary", "plan", "cohort", "flow", "decode", "embedding", "survival", "design"}
    assert expected | {"provenance"} <= shown, shown
    n_img, n_ok = seen["images"]
    assert n_img >= 9 and n_ok == n_img  # ROC, calibration, PCA, t-SNE, co-occurrence, KM ...


@needs_chromium
def test_report_at_1000_px(report_html, tmp_path):
    seen = open_page(report_html, tmp_path / "profile", width=1000)
    assert seen["errors"] == [] and seen["requests"] == []
    _layout_ok(seen["layout"], 1000)


@needs_chromium
def test_report_prints_to_pdf(report_html, tmp_path):
    """The print stylesheet: each section on a new A4 page, no table cut at the page edge."""
    pdf = ARTIFACTS / "report.pdf"
    pdf.unlink(missing_ok=True)
    seen = open_page(report_html, tmp_path / "profile", width=1400, pdf=pdf, print_layout=True)
    assert seen["errors"] == [] and seen["requests"] == []
    assert pdf.read_bytes()[:5] == b"%PDF-"
    sections = [s for s in seen["layout"]["sections"] if s["height"] > 0]
    # one page per section at least (the summary shares the first page with the title), and
    # no runaway layout: a page of Table 1, two of decoders, three of survival ...
    assert len(sections) - 1 <= seen["pdf_pages"] <= 3 * len(sections), seen["pdf_pages"]
    printed = seen["print_layout"]
    assert printed["wide"] == [], printed["wide"]
    assert printed["overflowing"] == []  # tables wrap to the page width, none is cut
    assert printed["scrollWidth"] <= PRINT_WIDTH
    # the checklists, collapsed on screen, are printed (their <details> are print-open)
    checklist = next(s for s in printed["sections"] if s["id"] == "checklist")
    on_screen = next(s for s in seen["layout"]["sections"] if s["id"] == "checklist")
    assert checklist["height"] > 400 > on_screen["height"], (checklist, on_screen)


@needs_chromium
def test_harness_detects_blocked_and_sent_requests(tmp_path):
    """Negative controls: the same harness reports a CSP-blocked image and, without the CSP,
    the request itself (port 9 on localhost: nothing leaves the machine)."""
    from tario_clinical.report import CSP

    blocked = tmp_path / "blocked.html"
    blocked.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        f'content="{CSP}"><title>t</title></head><body>'
        '<img src="http://127.0.0.1:9/x.png"></body></html>'
    )
    seen = open_page(blocked, tmp_path / "p1")
    assert any("Content Security Policy" in e for e in seen["errors"]), seen
    sent = tmp_path / "sent.html"
    sent.write_text(
        "<!DOCTYPE html><html><head><title>t</title></head><body>"
        '<img src="http://127.0.0.1:9/x.png"></body></html>'
    )
    seen = open_page(sent, tmp_path / "p2")
    assert seen["requests"] == ["http://127.0.0.1:9/x.png"], seen
