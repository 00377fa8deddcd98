"""The HTML report opened in a real headless browser (Debian's chromium).

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``, no port
opened): the page is loaded from a ``file://`` URL while console messages, log entries
(Content-Security-Policy violations land there), uncaught exceptions and every network request
are recorded; then a full-page screenshot is saved as ``test-artifacts/report.png``.

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


def open_page(html_path: Path, profile: Path, *, screenshot: Path | None = None) -> dict:
    """Load ``html_path`` in headless chromium; return what happened.

    Returns
    -------
    dict
        ``errors`` (console errors/warnings, log errors such as CSP violations, uncaught
        exceptions), ``requests`` (URLs of every network request other than the page itself
        and ``data:`` URIs), ``images`` (``[total, decoded]``), ``title``.
    """
    url = html_path.resolve().as_uri()
    b = _Browser(CHROMIUM, profile)
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            b.send(f"{domain}.enable", session=sid)
        b.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False},
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
        state = b.send(
            "Runtime.evaluate",
            {
                "expression": "JSON.stringify([document.images.length, "
                "Array.from(document.images).filter(i => i.complete && i.naturalWidth > 0)"
                ".length, document.title])",
                "returnByValue": True,
            },
            session=sid,
        )
        n_img, n_ok, title = json.loads(state["result"]["value"])
        if screenshot is not None:
            shot = b.send(
                "Page.captureScreenshot",
                {"format": "png", "captureBeyondViewport": True},
                session=sid,
                timeout=60,
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
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
    return {"errors": errors, "requests": requests, "images": [n_img, n_ok], "title": title}


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    trial = tc.simulate_trial(120, seed=0, n_genes=50, compute_attainable=False)
    cohort = trial.cohort()
    dec = tc.decode(trial.representations, cohort, targets=["KRAS"], n_repeats=1, seed=0)
    strat = tc.survival.stratify(cohort, dec.oof_scores("KRAS"), arm="arm", seed=0)
    rep = tc.report.build_report(
        cohort=cohort,
        decode=dec,
        stratification=strat,
        representations=trial.representations,
        title="Browser test <script>alert(1)</script>",
        seed=0,
    )
    return rep.write(tmp_path_factory.mktemp("browser"))["report"]


@needs_chromium
def test_report_in_headless_chromium(report_html, tmp_path):
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    seen = open_page(report_html, tmp_path / "profile", screenshot=shot)
    assert seen["errors"] == []
    assert seen["requests"] == []
    n_img, n_ok = seen["images"]
    assert n_img >= 5 and n_ok == n_img  # every embedded figure decoded
    assert seen["title"] == "Browser test <script>alert(1)</script>"  # shown as text
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000


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
