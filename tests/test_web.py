"""The operator's web view in a real headless Chromium (Debian's chromium and
chromium-driver, driven by selenium; nothing downloaded), against a live
controller on BMv2 with traffic through one slice: the page loads without
console errors, the flowing slice's counters move while the idle slice's
stay, a filter written through the REST API appears, and the switches show
up. Screenshots go to logs/web-*.png."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, needs_bmv2
from test_metrics import Operator, _traffic_setup

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
LOGS = ROOT / "logs"

pytestmark = [
    needs_bmv2,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="Chromium is not installed (Debian: apt-get install chromium "
                              "chromium-driver)"),
]


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed "
                                    "(pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="spp-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1280,1600"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_for(what, timeout=20.0, every=0.3):
    deadline = time.monotonic() + timeout
    while True:
        got = what()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what.__doc__ or what}")
        time.sleep(every)


def test_web_view_live(controller, slices, live_node, browser):
    ctl = controller.ctl
    a, b = slices
    fpid, frame = _traffic_setup(controller, slices)
    op = Operator(ctl)
    LOGS.mkdir(exist_ok=True)
    try:
        browser.get(op.url + "/")
        assert browser.title == "SPP testbed"

        def text(selector):
            """an element's text, read at once (the page redraws every poll)"""
            return browser.execute_script(
                "const e = document.querySelector(arguments[0]); return e && e.textContent;",
                selector)

        def cell(slice_name, col):
            """the stats cell of a slice's fastpath, index 1"""
            return text(f'tr[data-stats="node1/{slice_name}/{fpid}/1"] td.{col}')

        def ready():
            """both slices' stats rows, the switches and the picture on the page"""
            return (cell("a", "pre_packets") is not None and cell("b", "pre_packets") is not None
                    and text("#topology svg") is not None
                    and text('[data-switch="npe"].up') is not None
                    and text('[data-switch="lc"].up') is not None)
        wait_for(ready)
        assert cell("a", "pre_packets") == "0" and cell("b", "pre_packets") == "0"
        browser.save_screenshot(str(LOGS / "web-idle.png"))

        # Traffic through slice a, for a few seconds, while the page polls.
        stop = threading.Event()

        def send():
            while not stop.is_set():
                live_node.send_and_capture("ext0t", [frame] * 20, "ext0t", wait=0.2)
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            first = int(wait_for(lambda: (cell("a", "pre_packets") or "0") != "0"
                                 and cell("a", "pre_packets")))
            wait_for(lambda: int(cell("a", "pre_packets")) > first)   # and moves on
            wait_for(lambda: text(f'tr[data-stats="node1/a/{fpid}/1"] td.moving'))
            assert cell("b", "pre_packets") == "0"                    # the idle slice stays
            # A filter written through the REST API appears.
            a.write_fltr(fpid, 20, key={"dst_addr": "10.7.0.0"},
                         mask={"dst_addr": "255.255.0.0"}, result={"action": "drop"})
            row = wait_for(lambda: text(f'tr[data-filter="node1/a/{fpid}/20"]'))
            assert "10.7.0.0" in row and "drop" in row
            time.sleep(2)                                             # a few plot points
            browser.save_screenshot(str(LOGS / "web-traffic.png"))
        finally:
            stop.set()
            sender.join(timeout=30)
        assert cell("b", "pre_packets") == "0"
        # The API table counted the write.
        assert "write_fltr" in text("#api")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
        # The screenshot files are real PNGs.
        for name in ("web-idle.png", "web-traffic.png"):
            assert Path(LOGS / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        op.stop()

