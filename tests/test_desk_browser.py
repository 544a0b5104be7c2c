"""The review desk in a real browser (Debian's Chromium driven by Playwright): log in, work a threat from the queue
to confirmed with the keyboard, download its evidence pack and check its hashes; another reviewer cannot open it.

Screenshots go to a folder this test prints, and to var/screenshots/ when WEERBAAR_SCREENSHOTS is set.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import zipfile
from pathlib import Path

import pytest
import uvicorn

from monitor.db import open_db
from monitor.web import create_app
from tests.desk import PASSWORD, build_desk, cheap_password_hashing  # noqa: F401
from tests.test_evidence import verify_sums

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent

# CI installs chromium (.ci/run), so there a missing browser is a failure, not a skip.
pytestmark = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                reason="needs Debian's chromium (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(workdir):
    """Serve the desk with uvicorn on a free loopback port; yield (base URL, desk data)."""
    desk = build_desk(workdir)
    port = free_port()
    app = create_app(desk.settings, ("test-keywords", "1"), secret="browser-test-secret-" + "y" * 20)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", desk
    uv.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


@pytest.fixture
def shots(tmp_path):
    """Return a function that saves a screenshot of a page; print where they are at the end."""
    folder = tmp_path / "screenshots"
    folder.mkdir()

    def shoot(page, name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    yield shoot
    print(f"\nscreenshots: {folder}")
    if os.environ.get("WEERBAAR_SCREENSHOTS"):
        kept = REPO / "var" / "screenshots"
        kept.mkdir(parents=True, exist_ok=True)
        for picture in folder.iterdir():
            shutil.copy(picture, kept / picture.name)
        print(f"screenshots copied to {kept}")


def log_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/queue")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_a_reviewer_confirms_a_threat_and_downloads_its_evidence(server, browser, shots, tmp_path):
    base, desk = server
    threat = desk.mentions["threat_anneke"]
    context = browser.new_context(accept_downloads=True, locale="nl-NL")
    page = context.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))  # an XSS would open one
    page.goto(f"{base}/queue")
    shots(page, "01-login")
    log_in(page, base, "anna")
    page.wait_for_url(f"{base}/queue")
    first_row = page.locator("tr.queue-row").first
    assert "we weten waar je woont <script>" in first_row.inner_text()  # threats first, shown as text
    assert "selected" in first_row.get_attribute("class")
    shots(page, "02-queue")
    page.keyboard.press("o")  # open the selected (first) mention
    page.wait_for_url(f"{base}/mentions/{threat}")
    assert page.locator("a", has_text="javascript:").count() == 0
    shots(page, "03-mention")
    page.fill("textarea[name=note]", "Adres genoemd; met de burgemeester besproken")
    page.locator("textarea[name=note]").blur()  # leave the text field, so the shortcut is not typed into it
    page.keyboard.press("c")  # confirm with the model's labels (threat, aggression) checked
    page.wait_for_url(f"{base}/mentions/{threat}?saved=1")
    assert "bevestigd" in page.locator("h1 .status").inner_text()
    assert "Adres genoemd" in page.locator("ol.history").inner_text()
    shots(page, "04-confirmed")
    with page.expect_download() as download_info:
        page.click("a#evidence")
    download = download_info.value
    pack = tmp_path / download.suggested_filename
    download.save_as(pack)
    files = verify_sums(zipfile.ZipFile(pack))
    assert b'"status": "confirmed"' in files["record.json"]
    page.goto(f"{base}/officials/{desk.anneke}")
    assert page.locator("svg.chart rect.bar").count() == 90
    shots(page, "05-official")
    page.goto(f"{base}/queue")
    assert page.locator(f'a[href="/mentions/{threat}"]').count() == 0  # confirmed: off the open queue
    assert errors == []
    db = open_db(desk.db_path)
    assert db.execute("SELECT reviewer, status, labels FROM reviews WHERE mention_id = ?", [threat]).fetchall() == [
        ("anna", "confirmed", '["aggression", "threat"]')]

    other = browser.new_context().new_page()
    log_in(other, base, "rob")
    other.wait_for_url(f"{base}/queue")
    response = other.goto(f"{base}/mentions/{threat}")
    assert response.status == 404 and "we weten waar je woont" not in other.content()
    assert other.goto(f"{base}/mentions/{threat}/evidence").status == 404
    shots(other, "06-other-reviewer-404")

    researcher = browser.new_context().new_page()
    log_in(researcher, base, "onderzoek")
    researcher.wait_for_url(f"{base}/exports")
    assert researcher.goto(f"{base}/queue").status == 403
    shots(researcher, "07-researcher-403")
