"""A person's journey through the site, in Chromium at phone width (issue 17, point 9).

`Journey` watches the page for console errors and uncaught exceptions; at every `step` it checks that nothing is
wider than the 390 px screen and saves a full-page screenshot under `var/screenshots/<role>/NN-<step>.png`
(the folder CI keeps; README, "Browser screenshots"). With RIGSHIFT_README_SCREENSHOTS=1 the journeys also retake
the README's pictures (docs/img/*.png) at desktop width.
"""

import os
import re
import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
README_IMAGES = ROOT / "docs" / "img"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Elements sticking out of the screen, for the failure message (those inside a scrolling box are fine).
_OVERFLOW_JS = """
() => {
  const width = window.innerWidth;
  const scrolls = (el) => { for (let p = el.parentElement; p; p = p.parentElement) {
      const s = getComputedStyle(p); if (s.overflowX === 'auto' || s.overflowX === 'scroll') return true; }
    return false; };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width && r.right > width + 1 && !scrolls(el)) {
      out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string'
        ? '.' + el.className.trim().split(/\\s+/).join('.') : '') + ' right=' + Math.round(r.right));
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, width, offenders: out.slice(0, 8)};
}
"""


class Journey:
    def __init__(self, page: Any, *, role: str) -> None:
        self.page = page
        self.role = role
        self.errors: list[str] = []
        self.steps = 0
        self.folder = SCREENSHOTS / role
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size(PHONE)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console error on {self.page.url}: {message.text}")

    def step(self, name: str, *, status: int | None = None) -> Path:
        """Check the page as it is now (no console errors, no horizontal overflow) and screenshot it.

        `status`: the page is an expected error page (403, 404), whose "Failed to load resource" line is no error.
        """
        self.page.wait_for_load_state("networkidle")
        if status is not None:
            self.errors = [e for e in self.errors if f"status of {status}" not in e]
        self.steps += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.folder / f"{self.steps:02d}-{slug}.png"
        self.page.screenshot(path=str(path), full_page=True)
        layout = self.page.evaluate(_OVERFLOW_JS)
        assert layout["scrollWidth"] <= PHONE["width"], f"{self.role}/{name}: wider than the screen: {layout}"
        assert not self.errors, f"{self.role}/{name}: {self.errors}"
        return path

    def follow(self, selector: str, *, name: str, url: str | None = None, status: int | None = None) -> Path:
        """Click a link or button as a person would, wait for the page (and `url`, a regex), then `step`."""
        self.page.click(selector)
        if url:
            self.page.wait_for_url(re.compile(url))
        return self.step(name, status=status)

    def readme_image(self, filename: str) -> None:
        """With RIGSHIFT_README_SCREENSHOTS=1: this page at desktop width as docs/img/<filename>."""
        if os.environ.get("RIGSHIFT_README_SCREENSHOTS") != "1":
            return
        self.page.set_viewport_size(DESKTOP)
        self.page.wait_for_load_state("networkidle")
        self.page.screenshot(path=str(README_IMAGES / filename), full_page=False)
        self.page.set_viewport_size(PHONE)
