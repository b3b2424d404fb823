"""Draw the display's app icons (SVG and PNG) from one description, with no image library.

Run ``python -m services.web.make_icons`` after changing the design; a test fails when the
files in ``static/icons/`` drift from what this draws.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from pathlib import Path

__all__ = ["ICON_DIR", "png", "render", "svg", "write"]

ICON_DIR = Path(__file__).with_name("static") / "icons"
BACKGROUND = (0x10, 0x14, 0x18)
INK = (0xFF, 0xD5, 0x4A)
DOT_R = 0.095
RINGS = (0.2, 0.3, 0.4)
RING_W = 0.05
SPREAD = math.radians(42)  # arcs reach this far either side of the horizontal
CORNER = 0.22
SUPERSAMPLE = 3


def _inside_square(x: float, y: float, corner: float) -> bool:
    """Rounded square covering [0, 1]^2."""
    dx = max(corner - x, 0.0, x - (1 - corner))
    dy = max(corner - y, 0.0, y - (1 - corner))
    return dx * dx + dy * dy <= corner * corner


def _ink(x: float, y: float, scale: float) -> bool:
    """The glyph, centred, scaled by ``scale`` (smaller for maskable safe zones)."""
    u, v = (x - 0.5) / scale, (y - 0.5) / scale
    r = math.hypot(u, v)
    if r <= DOT_R:
        return True
    angle = math.atan2(v, abs(u))
    if abs(angle) > SPREAD:
        return False
    return any(abs(r - ring) <= RING_W / 2 for ring in RINGS)


def render(size: int, *, maskable: bool = False) -> list[bytes]:
    """Rows of RGBA pixels."""
    scale = 0.8 if maskable else 1.0
    corner = 0.0 if maskable else CORNER
    rows = []
    n = SUPERSAMPLE
    for py in range(size):
        row = bytearray()
        for px in range(size):
            bg = ink = 0
            for sy in range(n):
                for sx in range(n):
                    x = (px + (sx + 0.5) / n) / size
                    y = (py + (sy + 0.5) / n) / size
                    if _inside_square(x, y, corner):
                        bg += 1
                        ink += _ink(x, y, scale)
            total = n * n
            alpha = bg / total
            mix = ink / bg if bg else 0.0
            rgb = [round(b + (i - b) * mix) for b, i in zip(BACKGROUND, INK, strict=True)]
            row += bytes([*rgb, round(alpha * 255)])
        rows.append(bytes(row))
    return rows


def png(rows: list[bytes]) -> bytes:
    height, width = len(rows), len(rows[0]) // 4

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def svg() -> str:
    def hexc(c: tuple[int, int, int]) -> str:
        return "#{:02x}{:02x}{:02x}".format(*c)

    arcs = []
    for ring in RINGS:
        r = ring * 64
        dx, dy = r * math.cos(SPREAD), r * math.sin(SPREAD)
        for side in (1, -1):
            x0, x1 = 32 + side * dx, 32 + side * dx
            sweep = 1 if side == 1 else 0
            arcs.append(
                f'<path d="M{x0:.2f} {32 - dy:.2f}A{r:.2f} {r:.2f} 0 0 {sweep} {x1:.2f} '
                f'{32 + dy:.2f}"/>'
            )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64">'
        f'<rect width="64" height="64" rx="{CORNER * 64:.2f}" fill="{hexc(BACKGROUND)}"/>'
        f'<circle cx="32" cy="32" r="{DOT_R * 64:.2f}" fill="{hexc(INK)}"/>'
        f'<g fill="none" stroke="{hexc(INK)}" stroke-width="{RING_W * 64:.2f}">'
        + "".join(arcs)
        + "</g></svg>\n"
    )


def write(directory: Path = ICON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    out = {
        "icon.svg": svg().encode(),
        "icon-192.png": png(render(192)),
        "icon-512.png": png(render(512)),
        "icon-maskable-512.png": png(render(512, maskable=True)),
    }
    for name, data in out.items():
        (directory / name).write_bytes(data)
    return [directory / name for name in out]


if __name__ == "__main__":
    for path in write():
        sys.stdout.write(f"wrote {path}\n")
