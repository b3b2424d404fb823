#!/usr/bin/env bash
# Home Assistant core 2024.1 in its own virtual environment, outside the repository, for
# tests/homeassistant/test_real_home_assistant.py (which skips, saying so, without it).
#   tests/homeassistant/install_home_assistant.sh [VENV]   (default: $SOUNDALERT_HA_VENV or
#                                                          ~/.cache/soundalert/ha-venv)
# Home Assistant 2024.1 runs on Python 3.11 or 3.12.
set -euo pipefail
venv="${1:-${SOUNDALERT_HA_VENV:-$HOME/.cache/soundalert/ha-venv}}"
if [ -x "$venv/bin/hass" ] && "$venv/bin/hass" --version 2>/dev/null | grep -q '^2024\.1\.'; then
  exit 0
fi
python=""
for candidate in "${HA_PYTHON:-}" python3.12 python3.11; do
  [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 || continue
  if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))'; then
    python="$candidate"; break
  fi
done
[ -n "$python" ] || { echo "Home Assistant 2024.1 needs Python 3.11 or 3.12 (HA_PYTHON=...)" >&2; exit 1; }
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# paho-mqtt is what the MQTT integration would otherwise install when it is first set up.
"$venv/bin/python" -m pip install --quiet 'homeassistant==2024.1.6' 'paho-mqtt==1.6.1'
"$venv/bin/hass" --version
