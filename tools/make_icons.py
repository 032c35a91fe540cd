#!/usr/bin/env python3
"""Draw the edgesql app icons (web/icons/*.png) from the SVG below.

    .venv/bin/python tools/make_icons.py

The mark is a database cylinder with a lightning bolt: local SQL, no waiting.
It is rendered by real Chromium through Playwright (already a dev dependency),
so no image library is needed. The PNGs are committed; run this only when the
mark changes.

Two kinds of icon, as the web app manifest wants them:

- ``any``: a rounded square on a transparent background (192 and 512 px);
- ``maskable``: the same mark on a full-bleed square, shrunk into the central
  safe zone (a circle of 80 % of the size), so any platform mask keeps it whole.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "web" / "icons"

# Blue from --accent in web/style.css (#2f6fde), as a soft vertical gradient.
GRADIENT = """
  <linearGradient id="bg" gradientUnits="userSpaceOnUse" x1="0" y1="16" x2="0" y2="496">
    <stop offset="0" stop-color="#3d7ff0"/>
    <stop offset="1" stop-color="#2456c4"/>
  </linearGradient>"""

# The glyph on a 512 x 512 canvas; its box is about x 93..412, y 95..446.
GLYPH = """
  <g fill="none" stroke="#fff" stroke-width="26" stroke-linecap="round" transform="translate(-14 0)">
    <ellipse cx="240" cy="150" rx="120" ry="42"/>
    <path d="M120 150v212c0 23 54 42 120 42s120-19 120-42V150"/>
    <path d="M120 221c0 23 54 42 120 42s120-19 120-42"/>
    <path d="M120 292c0 23 54 42 120 42s120-19 120-42"/>
  </g>
  <path d="M352 214 L286 330 h50 l-22 110 84-134 h-52 l36-92 z" fill="#ffcf3f"
        stroke="url(#bg)" stroke-width="18" stroke-linejoin="round" paint-order="stroke"/>"""


def svg(maskable: bool) -> str:
    if maskable:
        # Centre the glyph box (252, 270) and scale it into the safe zone.
        background = '<rect width="512" height="512" fill="url(#bg)"/>'
        glyph = f'<g transform="translate(256 256) scale(0.78) translate(-252 -270)">{GLYPH}</g>'
    else:
        background = '<rect x="16" y="16" width="480" height="480" rx="108" fill="url(#bg)"/>'
        glyph = GLYPH
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512" width="100%" height="100%">'
        f"<defs>{GRADIENT}</defs>{background}{glyph}</svg>"
    )


def main() -> None:
    from playwright.sync_api import sync_playwright

    exe = os.environ.get("EDGESQL_CHROMIUM", "/usr/bin/chromium")
    opts = {"args": ["--no-sandbox", "--disable-gpu"], "headless": True}
    if Path(exe).exists():
        opts["executable_path"] = exe
    ICONS.mkdir(parents=True, exist_ok=True)
    targets = [
        ("icon-192.png", 192, False),
        ("icon-512.png", 512, False),
        ("icon-maskable-192.png", 192, True),
        ("icon-maskable-512.png", 512, True),
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(**opts)
        for name, size, maskable in targets:
            page = browser.new_page(viewport={"width": size, "height": size})
            page.set_content(
                "<style>html,body{margin:0;width:100%;height:100%;background:transparent}</style>"
                + svg(maskable)
            )
            page.screenshot(path=str(ICONS / name), omit_background=True)
            page.close()
            print(f"wrote {ICONS / name}", file=sys.stderr)
        browser.close()


if __name__ == "__main__":
    main()
