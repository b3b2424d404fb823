"""Category colours for the display, with text colours chosen for WCAG contrast.

The alert screen draws text in ``text`` on the category ``color`` and, while it flashes, the
inverse; the ratio is the same both ways, so one check covers both phases.
"""

from __future__ import annotations

import re
from typing import Any

from services.aggregator.policy import Policy

__all__ = [
    "AA_LARGE",
    "AA_NORMAL",
    "BUILTIN_CATEGORIES",
    "categories",
    "contrast_ratio",
    "relative_luminance",
    "text_colour",
]

AA_NORMAL = 4.5
AA_LARGE = 3.0
DARK = "#000000"
LIGHT = "#ffffff"
_HEX = re.compile(r"^#([0-9a-fA-F]{6})$")

BUILTIN_CATEGORIES: dict[str, dict[str, str]] = {
    # Raised by the aggregator itself, not by the policy.
    "node_offline": {"title": "Sensor stopped listening", "priority": "high",
                     "color": "#37474f", "icon": "sensor"},
    "node_online": {"title": "Sensor listening again", "priority": "normal",
                    "color": "#37474f", "icon": "sensor"},
    "node_stopped": {"title": "Sensor stopped", "priority": "normal",
                     "color": "#37474f", "icon": "sensor"},
    "storage_trouble": {"title": "soundalert cannot save its state", "priority": "high",
                        "color": "#37474f", "icon": "sensor"},
}  # fmt: skip


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of a ``#rrggbb`` colour."""
    match = _HEX.match(colour)
    if match is None:
        raise ValueError(f"colour {colour!r} is not #rrggbb")
    digits = match.group(1)
    r, g, b = (_channel(int(digits[i : i + 2], 16)) for i in (0, 2, 4))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    la, lb = relative_luminance(a), relative_luminance(b)
    hi, lo = max(la, lb), min(la, lb)
    return (hi + 0.05) / (lo + 0.05)


def text_colour(background: str) -> str:
    """Black or white, whichever contrasts more with ``background``."""
    if contrast_ratio(background, DARK) >= contrast_ratio(background, LIGHT):
        return DARK
    return LIGHT


def categories(policy: Policy) -> dict[str, dict[str, Any]]:
    """Display metadata per category: title, priority, colour, text colour, icon."""
    out: dict[str, dict[str, Any]] = {}
    for name, meta in BUILTIN_CATEGORIES.items():
        out[name] = {**meta, "text": text_colour(meta["color"])}
    for name, cat in policy.categories.items():
        out[name] = {
            "title": cat.title,
            "priority": cat.priority,
            "color": cat.color.lower(),
            "text": text_colour(cat.color),
            "icon": cat.icon,
        }
    return out
