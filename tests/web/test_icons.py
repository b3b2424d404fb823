"""The app icons and manifest: generated files match the generator; the page is installable."""

from __future__ import annotations

import json
import struct
import zlib

from services.web import make_icons
from services.web.app import PAGES_DIR, STATIC_DIR


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_committed_icons_match_the_generator() -> None:
    icons = make_icons.ICON_DIR
    assert (icons / "icon.svg").read_text() == make_icons.svg()
    assert (icons / "icon-192.png").read_bytes() == make_icons.png(make_icons.render(192))
    for name, size in (("icon-512.png", 512), ("icon-maskable-512.png", 512)):
        assert _png_size((icons / name).read_bytes()) == (size, size)


def test_png_encoder_round_trips_pixels() -> None:
    rows = make_icons.render(16)
    data = make_icons.png(rows)
    idat = data[data.index(b"IDAT") + 4 : data.index(b"IEND") - 8]
    raw = zlib.decompress(idat)
    assert raw == b"".join(b"\x00" + row for row in rows)
    # Rounded corners are transparent, the middle is the ink colour.
    assert rows[0][3] == 0
    assert rows[8][8 * 4 : 8 * 4 + 4] == bytes([*make_icons.INK, 255])


def test_manifest_is_installable() -> None:
    manifest = json.loads((STATIC_DIR / "manifest.webmanifest").read_text())
    assert manifest["display"] == "standalone"
    assert manifest["start_url"] == "/"
    sizes = {icon["sizes"] for icon in manifest["icons"] if icon["type"] == "image/png"}
    assert {"192x192", "512x512"} <= sizes
    for icon in manifest["icons"]:
        assert (STATIC_DIR / icon["src"].removeprefix("/static/")).is_file(), icon["src"]
    page = (PAGES_DIR / "index.html").read_text()
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert 'aria-live="assertive"' in page
