"""The dashboard in a real headless Chromium: it loads, draws its charts from the API's data,
logs nothing to the console, loads nothing from elsewhere, and asks for a token when needed.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; skipped with
the reason when one is missing. A screenshot is saved as ``test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_llm.alerts import Evaluator, Rule
from otel_llm.gateway.receiver_http import HttpServer
from otel_llm.server import create_app
from otel_llm.store import CallStore
from tests.store.call_factory import make_record, workload

webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
JAEGER = "http://jaeger.test:16686"
TOKEN = "dashboard-token"

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="headless Chromium not installed: apt-get install chromium chromium-driver",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="otel-llm-chromium-")
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                 "--window-size=1400,1900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[CallStore, Evaluator, str]]:
    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}", flush_interval_s=0.05)
    store.start()
    now_ms = int(time.time() * 1000)
    for record in workload(11, 400, now_ms - 7 * 86_400_000, now_ms):
        store.observe(record)
    assert store.flush(20)
    rule = Rule.model_validate({"name": "HighErrorRate", "metric": "error_rate",
                                "threshold": "5%", "window": "1h", "severity": "critical"})
    evaluator = Evaluator([rule], jaeger_url=JAEGER)
    rng = random.Random(12)
    for i in range(20):
        evaluator.observe(make_record(now_ms - 1000, trace_id=f"{rng.getrandbits(128):032x}",
                                      error_type="timeout" if i % 2 else None))
    evaluator.tick()
    server = HttpServer(create_app(store, alerts=evaluator, jaeger_url=JAEGER), port=0)
    server.start()
    yield store, evaluator, f"http://{server.address}/"
    server.shutdown()
    store.shutdown()


def wait_for_state(driver: Any, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    state = "loading"
    while time.monotonic() < deadline:
        state = driver.execute_script("return document.body && document.body.dataset.state")
        if state in ("ready", "error"):
            return str(state)
        time.sleep(0.05)
    return str(state)


def console_problems(driver: Any) -> list[str]:
    return [f"{e['level']}: {e['message']}" for e in driver.get_log("browser")
            if e["level"] in ("SEVERE", "WARNING")]


def test_the_dashboard_renders_the_api_data(browser: Any,
                                            served: tuple[CallStore, Evaluator, str]) -> None:
    from selenium.webdriver.common.by import By

    store, _evaluator, url = served
    browser.get(url)
    assert wait_for_state(browser) == "ready", browser.find_element(By.ID, "status").text
    assert console_problems(browser) == []

    # Every chart drew SVG marks from the data.
    for chart, mark in (("chart-cost", "rect.bar"), ("chart-model-cost", "rect.bar"),
                        ("chart-model-tokens", "rect.bar"), ("chart-errors", "rect.bar"),
                        ("chart-latency", "path.line")):
        marks = browser.find_elements(By.CSS_SELECTOR, f"#{chart} svg {mark}")
        assert marks, f"{chart} drew nothing"
    # Cost over 7 days is drawn per day: 8 buckets (today's partial one included).
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-cost svg rect.bar")) == 8
    models = {e.text for e in browser.find_elements(By.CSS_SELECTOR,
                                                     "#chart-model-cost svg text.label")}
    assert "openai / gpt-4o" in models and "anthropic / claude-3-5-haiku" in models

    # The summary cards show the API's figures.
    import httpx

    summary = httpx.get(url + "api/v1/metrics/summary?days=7").json()
    cards = {c.find_element(By.CLASS_NAME, "label").text: c.find_element(By.CLASS_NAME,
                                                                        "value").text
             for c in browser.find_elements(By.CSS_SELECTOR, "#cards .card")}
    assert cards["Calls"] == f"{summary['total_calls']:,}"
    assert cards["Success rate"] == f"{summary['success_rate']:.1f}%"

    # Active alerts and recent calls, with links to the traces in Jaeger.
    alerts = browser.find_element(By.ID, "alerts").text
    assert "HighErrorRate" in alerts and "firing" in alerts
    links = [a.get_attribute("href") for a in
             browser.find_elements(By.CSS_SELECTOR, "#calls tbody a")]
    assert len(links) == 25 and all(link.startswith(JAEGER + "/trace/") for link in links)
    assert browser.find_elements(By.CSS_SELECTOR, f"#alerts a[href^='{JAEGER}/trace/']")

    # Nothing came from anywhere but the server itself (works offline).
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(r.startswith(url) for r in resources)

    # Choosing a window redraws from the API: 24 hours are drawn per hour.
    browser.execute_script("""
        const s = document.getElementById('days'); s.value = '1';
        document.body.dataset.state = 'loading';
        s.dispatchEvent(new Event('change'));""")
    assert wait_for_state(browser) == "ready"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-cost svg rect.bar")) in (24, 25)
    browser.execute_script("""
        const s = document.getElementById('days'); s.value = '7';
        document.body.dataset.state = 'loading';
        s.dispatchEvent(new Event('change'));""")
    assert wait_for_state(browser) == "ready"

    ARTIFACTS.mkdir(exist_ok=True)
    browser.set_window_size(1400, 1900)
    assert browser.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    assert console_problems(browser) == []
    assert store.written == 400


def test_the_dashboard_asks_for_the_token(browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    store = CallStore(f"sqlite:///{tmp_path / 'calls.db'}")
    store.start()
    server = HttpServer(create_app(store, token=TOKEN), port=0)
    server.start()
    try:
        browser.get(f"http://{server.address}/")
        assert wait_for_state(browser) == "error"
        assert browser.find_element(By.ID, "login").is_displayed()
        browser.execute_script("document.body.dataset.state = 'loading'")
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        assert wait_for_state(browser) == "ready"
        assert not browser.find_element(By.ID, "login").is_displayed()
        # The 401s before signing in are the expected console entries; nothing else.
        problems = [p for p in console_problems(browser) if "401" not in p]
        assert problems == []
    finally:
        server.shutdown()
        store.shutdown()
