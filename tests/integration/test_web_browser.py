"""The web page in headless Chromium (Debian `chromium` + `chromedriver`, via Selenium):
search, open a hit, toggle raw OCR text / cleaning edits, and save screenshots.

Screenshots go to pytest's tmp dir, or to $PIAOXI_SCREENSHOT_DIR when set.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api import sample_data as sample
from piaoxi.settings import Settings
from tests.integration.apiserver import sample_api_server

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def api_server(stack: Settings) -> Iterator[sample.ApiServer]:
    with sample_api_server(stack) as server:
        yield server


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"headless browser test needs Debian chromium + chromedriver ({CHROMIUM})")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--lang=zh-CN",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def assert_no_policy_violations(browser: Any) -> None:
    """The page works under its Content-Security-Policy: nothing was refused."""
    refused = [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"]
    ]
    assert not refused, refused


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PIAOXI_SCREENSHOT_DIR", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_search_open_and_toggle_raw_text(
    api_server: sample.ApiServer, browser: Any, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    browser.get(api_server.base_url + "/")
    box = wait.until(ec.presence_of_element_located((By.ID, "q")))
    box.send_keys("舉頭望明月")
    browser.find_element(By.ID, "search-button").click()
    hit = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "a.hit-link")))
    marks = browser.find_elements(By.CSS_SELECTOR, ".hit mark")
    assert "舉頭望明月" in [m.text for m in marks]
    facets = browser.find_element(By.CSS_SELECTOR, ".facets").text
    assert "唐" in facets and "李白" in facets
    browser.save_screenshot(str(shots / "search.png"))

    hit.click()
    clean = wait.until(ec.visibility_of_element_located((By.ID, "pane-clean")))
    assert clean.text.startswith("床前明月光")
    # the query stays marked in the reading view
    assert "舉頭望明月" in [
        m.text for m in browser.find_elements(By.CSS_SELECTOR, "#pane-clean mark")
    ]
    people = browser.find_elements(By.CSS_SELECTOR, "#pane-clean .ent-PERSON")
    assert [p.text for p in people] == ["李白"]
    assert browser.find_elements(By.CSS_SELECTOR, "#pane-clean .ent-ERA_DATE")
    raw = browser.find_element(By.ID, "pane-raw")
    assert not raw.is_displayed()
    browser.save_screenshot(str(shots / "reading-clean.png"))

    browser.find_element(By.ID, "show-raw").click()
    wait.until(ec.visibility_of(raw))
    assert not clean.is_displayed()
    assert raw.text.startswith("牀前明月光,")
    edits = browser.find_elements(By.CSS_SELECTOR, "#pane-raw .edit")
    assert [e.text for e in edits] == ["牀", ","]
    browser.save_screenshot(str(shots / "reading-raw.png"))

    browser.find_element(By.ID, "show-edits").click()
    table = wait.until(ec.visibility_of_element_located((By.ID, "pane-edits")))
    assert "variant" in table.text
    browser.find_element(By.ID, "show-clean").click()
    wait.until(ec.visibility_of(clean))
    assert (shots / "reading-raw.png").stat().st_size > 0
    assert_no_policy_violations(browser)


def test_reading_view_with_image_on_a_narrow_screen(
    api_server: sample.ApiServer, browser: Any, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(390, 844)
    browser.get(f"{api_server.base_url}/web/documents/{sample.PUBLIC_MEMORIAL}/pages/1")
    wait = WebDriverWait(browser, 20)
    image = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".scan img")))
    wait.until(lambda d: d.execute_script("return arguments[0].naturalWidth", image) > 0)
    text = browser.find_element(By.ID, "pane-clean")
    # one column: the text sits below the image and both fit the screen's width
    assert text.location["y"] > image.location["y"]
    assert image.size["width"] <= 390 and text.size["width"] <= 390
    browser.save_screenshot(str(shots / "reading-narrow.png"))
    browser.get(f"{api_server.base_url}/web/status")
    assert "处理状态" in browser.find_element(By.TAG_NAME, "h1").text


def test_openapi_docs_render_offline(
    api_server: sample.ApiServer, browser: Any, shots: Path
) -> None:
    pytest.importorskip("fastapi_offline", reason="docs assets come from fastapi-offline")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(api_server.base_url + "/docs")
    title = WebDriverWait(browser, 30).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, ".swagger-ui .info .title"))
    )
    assert "piaoxi" in title.text
    operations = browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    assert any("/search" in op.text for op in operations)
    browser.save_screenshot(str(shots / "docs.png"))
    assert_no_policy_violations(browser)


MIRADOR = "mirador@4.0.0"  # npm; its dist/mirador.min.js is a self-contained bundle


@pytest.fixture(scope="module")
def mirador(stack: Settings) -> Path:
    """Mirador's browser bundle, unpacked once from its npm tarball into PIAOXI_HOME."""
    folder = stack.home / "viewer" / MIRADOR.replace("@", "-")
    bundle = folder / "package" / "dist" / "mirador.min.js"
    if not bundle.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("the IIIF viewer check needs npm (to fetch Mirador)")
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "pack", MIRADOR, "--silent", "--pack-destination", str(folder)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        (tarball,) = folder.glob("mirador-*.tgz")
        with tarfile.open(tarball) as archive:
            archive.extract("package/dist/mirador.min.js", folder, filter="data")
        tarball.unlink()
    return bundle


def test_the_iiif_manifest_opens_in_mirador(
    api_server: sample.ApiServer, browser: Any, shots: Path, mirador: Path, tmp_path: Path
) -> None:
    """A real IIIF viewer loads the manifest from the API: title, the page image."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    manifest = f"{api_server.base_url}/documents/{sample.PUBLIC_MEMORIAL}/manifest.json"
    shutil.copy(mirador, tmp_path / "mirador.min.js")
    (tmp_path / "index.html").write_text(
        '<!doctype html><meta charset="utf-8"><title>viewer</title>'
        '<div id="viewer" style="position:absolute;inset:0"></div>'
        '<script src="mirador.min.js"></script>'
        f'<script>Mirador.viewer({{id: "viewer", windows: [{{manifestId: "{manifest}"}}],'
        " window: {sideBarOpen: true, defaultSideBarPanel: 'annotations'}});</script>",
        encoding="utf-8",
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as viewer_server:
        thread = threading.Thread(target=viewer_server.serve_forever, daemon=True)
        thread.start()
        try:
            browser.get(f"http://127.0.0.1:{viewer_server.server_address[1]}/index.html")
            wait = WebDriverWait(browser, 60)
            wait.until(
                ec.presence_of_element_located((By.XPATH, "//*[contains(text(), '出師表')]"))
            )
            wait.until(
                ec.presence_of_element_located((By.CSS_SELECTOR, ".openseadragon-canvas canvas"))
            )
            # the entity annotations of the page, in the viewer's annotation panel
            wait.until(ec.presence_of_element_located((By.XPATH, "//*[text()='PLACE: 益州']")))
            browser.save_screenshot(str(shots / "mirador.png"))
            # nothing failed to load (Mirador's own React deprecation notices aside)
            errors = [
                e["message"]
                for e in browser.get_log("browser")
                if e["level"] == "SEVERE"
                and "favicon" not in e["message"]
                and "/mirador.min.js " not in e["message"]
            ]
            assert not errors, errors
        finally:
            viewer_server.shutdown()
