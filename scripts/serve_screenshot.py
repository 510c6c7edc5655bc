"""The screenshot in docs/serve.md: `aigi serve` with the default detector, three README examples
and one file that is no image dropped on the page, the first card's expert scores unfolded,
taken by headless Chromium (apt-get install chromium chromium-driver; pip install selenium).

    python scripts/serve_screenshot.py docs/img/serve_page.png
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from aigi.serve.ready import wait_ready

ROOT = Path(__file__).resolve().parents[1]
FILES = ("examples/photos/fake_nanobanana_1.png", "examples/photos/real_kaivalya_1.jpg", "examples/cifake/real_02.jpg")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(out: Path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "aigi.cli", "serve", "--port", str(port)])
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, server, seconds=150)
        tmp = Path(tempfile.mkdtemp())
        (tmp / "notes.jpg").write_text("meeting notes, not a photo")
        paths = [str(ROOT / f) for f in FILES] + [str(tmp / "notes.jpg")]
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser") or ""
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1250"):
            opts.add_argument(arg)
        browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
        try:
            browser.get(base + "/")
            browser.find_element(By.ID, "files").send_keys("\n".join(paths))
            WebDriverWait(browser, 120).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, ".result")) == len(paths))
            folds = browser.find_elements(By.CSS_SELECTOR, ".experts-fold summary")
            if folds:
                folds[0].click()
            browser.save_screenshot(str(out))
        finally:
            browser.quit()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
