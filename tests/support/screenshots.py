"""Where browser tests write their screenshots.

Into the test's own temporary folder, so running the tests never rewrites the committed
pictures; ``SOUNDALERT_SCREENSHOTS=docs/screenshots pytest ...`` refreshes the README's.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["screenshot_dir"]


def screenshot_dir(tmp_path: Path) -> Path:
    """``$SOUNDALERT_SCREENSHOTS`` when set, else ``tmp_path/screenshots``."""
    wanted = os.environ.get("SOUNDALERT_SCREENSHOTS")
    directory = (Path(wanted) if wanted else tmp_path / "screenshots").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return directory
