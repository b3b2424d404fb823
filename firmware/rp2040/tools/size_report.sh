#!/bin/sh
# Usage: size_report.sh SIZE_TOOL IMAGE.elf CORE_OBJECTS...
# Prints the core's own flash/RAM and the linked test image's, against the RP2040's
# 2 MB flash (W25Q16 on the Pico) and 264 KB SRAM.
set -eu
size_tool=$1
image=$2
shift 2
flash_total=$((2 * 1024 * 1024))
ram_total=$((264 * 1024))
echo "== core objects (Cortex-M0+, -Os) =="
"$size_tool" -t "$@"
report() {
    # $1 label, $2 text, $3 data, $4 bss
    flash=$(($2 + $3))
    ram=$(($3 + $4))
    awk -v l="$1" -v f="$flash" -v ft="$flash_total" -v r="$ram" -v rt="$ram_total" 'BEGIN {
        printf "%-28s flash %7d B (%5.2f %% of 2 MB)   RAM %6d B (%5.2f %% of 264 KB)\n",
               l, f, 100 * f / ft, r, 100 * r / rt }'
}
set -- $("$size_tool" -t "$@" | tail -n 1)
report "core (objects):" "$1" "$2" "$3"
set -- $("$size_tool" "$image" | tail -n 1)
echo "== linked image (core + newlib-nano + libgcc, static sa_core_t) =="
"$size_tool" "$image"
report "image:" "$1" "$2" "$3"
