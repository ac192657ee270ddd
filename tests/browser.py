"""Debian's Chromium, headless, driven by Playwright (its own browser downloads fail here)."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# what runs it headless as root on these machines (../shared/ENVIRONMENT.md)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright):
    """A headless Chromium browser: scripts/test.sh installs Debian's package if missing."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def upload(page, *files: tuple[str, str, bytes]) -> None:
    """Choose (name, media type, bytes) files in the web page's file field, as a person would."""
    page.set_input_files(
        "#files", [{"name": n, "mimeType": t, "buffer": data} for n, t, data in files]
    )
