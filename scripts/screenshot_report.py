"""A screenshot of a run's report for the docs, in headless Chromium:

python scripts/screenshot_report.py runs/demo-cpu/report.html docs/report.png
"""

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

page_file, picture = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1280, "height": 1800})
    page.goto(page_file.as_uri())
    page.screenshot(path=str(picture), full_page=False)
    browser.close()
