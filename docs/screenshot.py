"""The README's screenshot of the web page, taken from a running service:

    python -m train demo && bash scripts/serve.sh &   # the demo model: answers that mean something
    python docs/screenshot.py http://127.0.0.1:3000   # writes docs/ui.png

Sends two held-out shape drawings and a text file through the page in headless Chromium, as a
person would, and saves what it shows.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import launch, upload  # noqa: E402
from train.shapes import render  # noqa: E402


def png(shape: str, style: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    render(shape, style, 320, seed=seed).save(buffer, "PNG")
    return buffer.getvalue()


def main(url: str, output: Path = ROOT / "docs" / "ui.png") -> None:
    files = [
        ("star-sketch.png", "image/png", png("star", "sketch", 11)),
        ("circle-striped.png", "image/png", png("circle", "striped", 12)),
        ("notes.jpg", "image/jpeg", b"shopping list: milk, eggs"),
    ]
    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 900, "height": 1000})
        page.goto(f"{url}/ui/")
        expect(page.locator("#model")).to_contain_text("Model ")
        page.select_option("#top-k", "3")
        upload(page, *files)
        expect(page.locator("#status")).to_contain_text("Classified")
        page.screenshot(path=output, full_page=True)
        browser.close()
    print(f"wrote {output}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:3000")
