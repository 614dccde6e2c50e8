"""A self-contained HTML page: every image inlined as a data URI, style inline, nothing fetched.

The page carries a small self-check: once loaded it records on ``<html>`` how many images it has, how
many decoded (``data-images`` / ``data-images-loaded``) and any script or resource error
(``data-errors``). Browsers ignore it; the tests read it from a headless browser's DOM.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { padding: 3px 6px; text-align: center; vertical-align: middle; font-size: 0.85em; }
table.values td, table.values th { border: 1px solid #ddd; text-align: right; }
table.values th:first-child, table.values td:first-child { text-align: left; }
img.tile { image-rendering: pixelated; display: block; border: 1px solid #bbb; }
img:not(.tile) { max-width: 100%; height: auto; }
.note { background: #fff6d6; border-left: 4px solid #e0b000; padding: 0.5em 1em; }
.real { color: #176b2c; } .fake { color: #9b2226; } .wrong { background: #fde2e2; }
.caption { color: #555; font-size: 0.9em; }
"""

SELF_CHECK = """
(function () {
  var errors = [];
  var root = document.documentElement;
  window.addEventListener('error', function (event) {
    var target = event.target;
    errors.push(target && target.tagName ? 'failed to load ' + target.tagName : String(event.message));
    root.dataset.errors = errors.join(' | ');
  }, true);
  window.addEventListener('load', function () {
    var images = Array.prototype.slice.call(document.images);
    var loaded = images.filter(function (image) { return image.complete && image.naturalWidth > 0; });
    root.dataset.images = String(images.length);
    root.dataset.imagesLoaded = String(loaded.length);
    root.dataset.errorCount = String(errors.length);
  });
})();
"""


def text(value: object) -> str:
    return html.escape(str(value))


def image(png: bytes, alt: str, width: int | None = None, tile: bool = False) -> str:
    """An inlined PNG; ``tile`` keeps small images sharp when enlarged (one network pixel stays one block)."""
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    size = f' width="{width}"' if width else ""
    klass = ' class="tile"' if tile else ""
    return f'<img src="{uri}" alt="{text(alt)}"{size}{klass}>'


def table(header: Sequence[str], rows: Sequence[Sequence[str]], klass: str = "values") -> str:
    """``header`` is plain text; the cells of ``rows`` are HTML (escape text with ``text``)."""
    head = "".join(f"<th>{text(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{klass}"><tr>{head}</tr>{body}</table>'


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{text(title)}</title>\n<style>{STYLE}</style>\n<script>{SELF_CHECK}</script>\n</head>\n"
        f"<body>\n<h1>{text(title)}</h1>\n{body}\n</body>\n</html>\n"
    )
