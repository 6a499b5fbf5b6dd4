"""The HTML report opened in a real headless browser (Debian's chromium), driven over the DevTools protocol.

Checks that each recorded run's report renders without console errors (a script error, a blocked fetch or a
Content-Security-Policy violation would all show up there), that the scaling charts are drawn, and saves a
screenshot into the test's tmp dir.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reports import history, render_html
from reports.model import RunRecord, load_record

RECORDED = Path(__file__).resolve().parents[1] / "fixtures_data" / "recorded_runs"
RUNS = ["01-pass", "02-fail", "03-flaky", "04-incomplete", "05-partial", "06-error"]
CHARTS = {"01-pass": 2, "03-flaky": 2}
"""Scaling timelines per run: both autoscaling checks of a full pgqueue run; none elsewhere (not selected, an
environment limitation before any observation, or nothing ran)."""
SPARKLINES = {"03-flaky": 16}
"""Checks with a duration trend: only 03-flaky has an earlier comparable run (01-pass: same cluster, profile
and selection); 02-fail and 05-partial are other selections, 04-incomplete another profile, and 06-error ran
nothing."""
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
    "--window-size=1280,900",
]
START_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed: `apt-get install -y chromium` (Debian) to run the browser self-test")


class DevTools:
    """A minimal DevTools-protocol client: one page, its console/log events collected."""

    def __init__(self, url: str) -> None:
        websocket = pytest.importorskip("websocket", reason="websocket-client drives the DevTools protocol")
        self._ws = websocket.create_connection(url, timeout=CALL_TIMEOUT, suppress_origin=True)
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + CALL_TIMEOUT
        while time.monotonic() < deadline:
            reply = json.loads(self._ws.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"DevTools {method} failed: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)
        raise TimeoutError(f"DevTools {method}: no reply within {CALL_TIMEOUT}s")

    def wait_for_event(self, method: str, timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = len(self.events)
        while time.monotonic() < deadline:
            for event in self.events[seen:]:
                if event["method"] == method:
                    return event
            seen = len(self.events)
            self._ws.settimeout(max(0.1, deadline - time.monotonic()))
            reply = json.loads(self._ws.recv())
            if "method" in reply:
                self.events.append(reply)
        raise TimeoutError(f"DevTools: no {method} event within {timeout}s")

    def close(self) -> None:
        self._ws.close()

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP violations, failed loads)."""
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif event["method"] == "Runtime.exceptionThrown":
                errors.append(str(params.get("exceptionDetails", {}).get("text")))
            elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(str(params["entry"].get("text")))
        return errors


@pytest.fixture(scope="module")
def browser_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A headless chromium for the module; yields its DevTools browser websocket URL."""
    executable = _chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = tmp_path_factory.mktemp("chromium-log") / "stderr.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + START_TIMEOUT
            while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
                if process.poll() is not None:
                    pytest.fail(f"chromium exited with {process.returncode}:\n{log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"chromium wrote no DevToolsActivePort within {START_TIMEOUT}s:\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.1)
            port, path = port_file.read_text().splitlines()[:2]
            yield f"ws://127.0.0.1:{port}{path}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def page(browser_ws: str) -> Iterator[DevTools]:
    """A fresh tab with console, log and page events enabled."""
    client = DevTools(browser_ws)
    target = client.call("Target.createTarget", url="about:blank")["targetId"]
    try:
        client.session = client.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            client.call(f"{domain}.enable")
        yield client
    finally:
        client.session = None
        client.call("Target.closeTarget", targetId=target)
        client.close()


def open_page(page: DevTools, html_file: Path) -> None:
    page.call("Page.navigate", url=html_file.as_uri())
    page.wait_for_event("Page.loadEventFired")
    page.call("Runtime.evaluate", expression="0", returnByValue=True)  # drain events queued during load


def evaluate(page: DevTools, expression: str) -> Any:
    return page.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


def screenshot(page: DevTools, target: Path) -> Path:
    metrics = page.call("Page.getLayoutMetrics")
    height = min(int(metrics["cssContentSize"]["height"]) + 20, 8000)
    page.call("Emulation.setDeviceMetricsOverride", width=1280, height=height, deviceScaleFactor=1, mobile=False)
    data = page.call("Page.captureScreenshot", format="png")["data"]
    target.write_bytes(base64.b64decode(data))
    return target


def test_console_error_detection_works(page: DevTools, tmp_path: Path) -> None:
    """Control: the checks below would see a script error and a blocked external fetch."""
    html = tmp_path / "broken.html"
    html.write_text(
        '<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
        '<script>console.error("deliberate error")</script><img src="https://cdn.example.invalid/x.png">'
        "</body></html>"
    )
    open_page(page, html)
    errors = page.console_errors()
    assert any("deliberate error" in e for e in errors), errors
    assert any("Content Security Policy" in e for e in errors), errors


def replayed(name: str) -> RunRecord:
    return load_record(RECORDED / f"{name}.json")


@pytest.mark.parametrize("name", RUNS)
def test_report_renders_without_console_errors_and_draws_the_charts(page: DevTools, tmp_path: Path, name: str) -> None:
    # Replay the recorded runs up to this one, so the page also shows the history and duration trend.
    for earlier in RUNS[: RUNS.index(name)]:
        history.update(tmp_path, replayed(earlier))
    record = replayed(name)
    record.history = history.update(tmp_path, record)
    html = tmp_path / "report.html"
    html.write_text(render_html.render(record), encoding="utf-8")
    open_page(page, html)

    assert page.console_errors() == []
    assert evaluate(page, "document.title").startswith(f"Geocube acceptance run {record.run_id}")
    assert evaluate(page, "document.querySelector('#verdict h2').textContent") == record.verdict.label
    charts = evaluate(
        page,
        """Array.from(document.querySelectorAll('svg.timeline-chart')).map(svg => {
             const box = svg.getBoundingClientRect();
             return {width: box.width, height: box.height,
                     pods: svg.querySelectorAll('.series-pods').length,
                     backlog: svg.querySelectorAll('.series-backlog').length};
           })""",
    )
    assert len(charts) == CHARTS.get(name, 0), charts
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 100
        assert chart["pods"] >= 1 and chart["backlog"] >= 1  # both series observed by the pgqueue runs
    if not charts:
        timelines = evaluate(page, "document.getElementById('timelines').nextElementSibling.textContent")
        assert timelines == "No timeline was recorded in this run."
    rows = evaluate(page, "document.querySelectorAll('tr.req').length")
    assert rows == len(record.tests)
    sparklines = evaluate(page, "document.querySelectorAll('svg.sparkline').length")
    assert sparklines == SPARKLINES.get(name, 0)
    stopped = evaluate(page, "Array.from(document.querySelectorAll('section.session-error h2'), h => h.textContent)")
    assert stopped == (["The run stopped: render failed"] if name == "06-error" else [])

    png = screenshot(page, tmp_path / f"report-{name}.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000, "the screenshot looks blank"
    print(f"screenshot: {png}")
