"""WCAG AA contrast of every colour pair the display draws text or controls with."""

from __future__ import annotations

import re

import pytest

from services.aggregator.policy import load_policy
from services.web.app import STATIC_DIR
from services.web.palette import (
    AA_LARGE,
    AA_NORMAL,
    categories,
    contrast_ratio,
    relative_luminance,
    text_colour,
)

CSS = (STATIC_DIR / "style.css").read_text(encoding="utf-8")
ROOT_VARS = dict(re.findall(r"--([a-z0-9-]+):\s*(#[0-9a-fA-F]{6})\s*;", CSS.split("}")[0]))

# (foreground, background, minimum): text pairs need 4.5:1, focus rings and control
# borders 3:1 (WCAG 1.4.3 and 1.4.11).
PAIRS = [
    ("text", "bg", AA_NORMAL),
    ("text", "surface", AA_NORMAL),
    ("text", "surface-2", AA_NORMAL),
    ("muted", "bg", AA_NORMAL),
    ("muted", "surface", AA_NORMAL),
    ("muted", "surface-2", AA_NORMAL),
    ("ok", "surface", AA_NORMAL),
    ("ok", "surface-2", AA_NORMAL),
    ("ok", "bg", AA_NORMAL),
    ("bad", "surface", AA_NORMAL),
    ("bad", "surface-2", AA_NORMAL),
    ("focus", "surface-2", AA_NORMAL),
    ("warn-text", "warn-bg", AA_NORMAL),
    ("button-text", "button-bg", AA_NORMAL),
    ("alert-fg", "alert-bg", AA_NORMAL),
    ("focus", "bg", AA_LARGE),
    ("focus", "surface", AA_LARGE),
    ("control-border", "surface", AA_LARGE),
    ("control-border", "surface-2", AA_LARGE),
]


def test_luminance_and_ratio_match_the_wcag_reference_values() -> None:
    assert relative_luminance("#ffffff") == pytest.approx(1.0)
    assert relative_luminance("#000000") == pytest.approx(0.0)
    assert contrast_ratio("#ffffff", "#000000") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    with pytest.raises(ValueError, match="rrggbb"):
        relative_luminance("red")


@pytest.mark.parametrize(("fg", "bg", "minimum"), PAIRS)
def test_page_colour_pairs_meet_aa(fg: str, bg: str, minimum: float) -> None:
    ratio = contrast_ratio(ROOT_VARS[fg], ROOT_VARS[bg])
    assert ratio >= minimum, f"{fg} on {bg}: {ratio:.2f} < {minimum}"


@pytest.mark.parametrize("name", sorted(categories(load_policy())))
def test_every_alert_screen_meets_aa(name: str) -> None:
    """Text on the category colour (and, flashing, the inverse: the same ratio)."""
    cat = categories(load_policy())[name]
    ratio = contrast_ratio(cat["text"], cat["color"])
    assert ratio >= AA_NORMAL, f"{name}: {cat['text']} on {cat['color']} is {ratio:.2f}:1"


def test_text_colour_picks_the_better_of_black_and_white() -> None:
    assert text_colour("#c8a000") == "#000000"  # phone yellow
    assert text_colour("#d00000") == "#ffffff"  # smoke red
    for colour in ("#c8a000", "#d00000", "#007a1f", "#e07000"):
        chosen = text_colour(colour)
        other = "#ffffff" if chosen == "#000000" else "#000000"
        assert contrast_ratio(chosen, colour) >= contrast_ratio(other, colour)
