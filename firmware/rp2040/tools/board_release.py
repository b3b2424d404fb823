#!/usr/bin/env python3
"""Build the RP2040 board image against the pinned pico-sdk and record it as a release
artefact; check that the committed image still matches its sources.

    python3 tools/board_release.py build [--sdk DIR] [--picotool DIR] [--jobs N]
        (or: make -C firmware/rp2040 board PICO_SDK_PATH=DIR [PICOTOOL_DIR=DIR])
    python3 tools/board_release.py check     exit 1 if board/ or core/ changed since the build
    python3 tools/board_release.py hash      print the hash of the image's sources

`build` verifies the SDK copy against the pin below (pico-sdk commit, TinyUSB commit), builds
firmware/rp2040/board with CMake into build/board, and writes release/soundalert.uf2 and
release/manifest.json: the SHA-256 of the sources it was built from (board/, core/ and this
script), the firmware version sent in HELLO (SA_FW_VERSION from core/sa_core.h plus the first
8 hex digits of that hash), the SDK, TinyUSB, picotool and compiler versions, flash and RAM use
against the RP2040's 2 MB / 264 KB, and the addresses of the functions the cycle bench times.

CI has no pico-sdk: it runs `check` (tests/firmware/test_release.py), which fails as soon as a
source of the image changes without a rebuild, and runs the committed image in rp2040js.
Standard library only: runs with any python3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[1]
REPO = FIRMWARE.parents[1]
RELEASE = FIRMWARE / "release"
MANIFEST = RELEASE / "manifest.json"
IMAGE = "soundalert.uf2"
BUILD = FIRMWARE / "build" / "board"

# The pin. pico-sdk 2.2.0 with its TinyUSB submodule (0.18.0); picotool is a host tool of the
# SDK (it writes the UF2), 2.2.0 matches the SDK release.
PICO_SDK = {"version": "2.2.0", "commit": "a1438dff1d38bd9c65dbd693f0e5db4b9ae91779"}
TINYUSB = {"version": "0.18.0", "commit": "86ad6e56c1700e85f1c5678607a762cfe3aa2f47"}
PICOTOOL = {"version": "2.2.0", "commit": "a7eb3988f0645239185fadb4e25d8279478c2dbb"}
BOARD = "pico"

SOURCES = ("firmware/rp2040/board", "firmware/rp2040/core",
           "firmware/rp2040/tools/board_release.py")  # fmt: skip
"""Everything in the repository the image is built from."""
TIMED_SYMBOLS = ("sa_core_push", "sa_dsp_frame", "sa_fft256", "sa_patterns_step",
                 "sa_pdm_decimate")  # fmt: skip
FLASH_BASE, FLASH_TOTAL = 0x10000000, 2 * 1024 * 1024
RAM_BASE, RAM_TOTAL = 0x20000000, 264 * 1024
RAM_RESERVED = (".heap", ".stack_dummy", ".stack1_dummy")
REBUILD = "make -C firmware/rp2040 board PICO_SDK_PATH=<pico-sdk 2.2.0 copy>"


class ReleaseError(Exception):
    """A problem worded for the person building."""


def source_files() -> list[Path]:
    files: list[Path] = []
    for name in SOURCES:
        path = REPO / name
        if path.is_file():
            files.append(path)
            continue
        files += [p for p in path.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.parts)]  # fmt: skip
    return sorted(files, key=lambda p: p.relative_to(REPO).as_posix())


def sources_sha256() -> str:
    """SHA-256 over (path, content hash) of every source file: renames count, order does not."""
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode())
        digest.update(b"\n")
    return digest.hexdigest()


def fw_version(sources: str) -> str:
    header = (FIRMWARE / "core" / "sa_core.h").read_text()
    match = re.search(r'#define SA_FW_VERSION "([0-9A-Za-z._-]+)"', header)
    if match is None:
        raise ReleaseError("SA_FW_VERSION not found in core/sa_core.h")
    return f"{match.group(1)}-{sources[:8]}"


def say(text: str, *, error: bool = False) -> None:
    (sys.stderr if error else sys.stdout).write(text + "\n")
    (sys.stderr if error else sys.stdout).flush()


def run(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-30:])
        raise ReleaseError(f"{' '.join(args)} failed:\n{tail}")
    return done.stdout


def git_head(path: Path) -> str | None:
    if not (path / ".git").exists():
        return None
    return run("git", "-C", str(path), "rev-parse", "HEAD").strip()


def check_sdk(sdk: Path, allow_other: bool) -> dict[str, dict[str, str | None]]:
    """The SDK copy's pico-sdk and TinyUSB versions and commits, checked against the pin."""
    version_file = sdk / "pico_sdk_version.cmake"
    if not version_file.is_file():
        raise ReleaseError(f"{sdk} is not a pico-sdk copy (no pico_sdk_version.cmake)")
    text = version_file.read_text()
    parts = [re.search(rf"set\(PICO_SDK_VERSION_{k} (\d+)\)", text) for k in
             ("MAJOR", "MINOR", "REVISION")]  # fmt: skip
    sdk_version = ".".join(m.group(1) if m else "?" for m in parts)
    tinyusb = sdk / "lib" / "tinyusb"
    if not (tinyusb / "src" / "tusb.h").is_file():
        raise ReleaseError(f"{tinyusb} is empty: git -C {sdk} submodule update --init "
                           "lib/tinyusb (or put a TinyUSB 0.18.0 copy there)")  # fmt: skip
    option = (tinyusb / "src" / "tusb_option.h").read_text()
    tusb = [re.search(rf"#define TUSB_VERSION_{k}\s+(\d+)", option) for k in
            ("MAJOR", "MINOR", "REVISION")]  # fmt: skip
    found = {
        "pico_sdk": {"version": sdk_version, "commit": git_head(sdk)},
        "tinyusb": {
            "version": ".".join(m.group(1) if m else "?" for m in tusb),
            "commit": git_head(tinyusb),
        },
    }
    for name, pin in (("pico_sdk", PICO_SDK), ("tinyusb", TINYUSB)):
        got = found[name]
        mismatch = got["version"] != pin["version"] or got["commit"] not in (None, pin["commit"])
        if mismatch and not allow_other:
            raise ReleaseError(f"{name} is {got['version']} ({got['commit'] or 'no git'}), the pin "
                               f"is {pin['version']} ({pin['commit']}); --allow-other-sdk to "
                               "build anyway (the manifest records what was used)")  # fmt: skip
    return found


def section_sizes(elf: Path) -> dict[str, tuple[int, int]]:
    """name -> (size, address) from `arm-none-eabi-size -A`."""
    out: dict[str, tuple[int, int]] = {}
    for line in run("arm-none-eabi-size", "-A", str(elf)).splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0].startswith(".") and fields[1].isdigit():
            out[fields[0]] = (int(fields[1]), int(fields[2]))
    return out


def memory(elf: Path) -> dict[str, int]:
    sections = section_sizes(elf)
    flash = sum(size for size, addr in sections.values()
                if FLASH_BASE <= addr < FLASH_BASE + FLASH_TOTAL)  # fmt: skip
    flash += sections.get(".data", (0, 0))[0]  # initial values, copied from flash at boot
    in_ram = {name: size for name, (size, addr) in sections.items()
              if RAM_BASE <= addr < RAM_BASE + RAM_TOTAL}  # fmt: skip
    reserved = sum(size for name, size in in_ram.items() if name in RAM_RESERVED)
    return {
        "flash_bytes": flash,
        "flash_total": FLASH_TOTAL,
        "ram_static_bytes": sum(in_ram.values()) - reserved,
        "ram_stack_heap_reserved_bytes": reserved,
        "ram_total": RAM_TOTAL,
    }


def symbols(elf: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in run("arm-none-eabi-nm", str(elf)).splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2] in TIMED_SYMBOLS and fields[1] in "tT":
            found[fields[2]] = hex(int(fields[0], 16))
    missing = set(TIMED_SYMBOLS) - set(found)
    if missing:
        raise ReleaseError(f"symbols not in the image (inlined?): {', '.join(sorted(missing))}")
    return found


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def report(mem: dict[str, int]) -> str:
    used = mem["ram_static_bytes"] + mem["ram_stack_heap_reserved_bytes"]
    return (f"flash {mem['flash_bytes']} B ({100 * mem['flash_bytes'] / mem['flash_total']:.2f} % "
            f"of 2 MB); RAM {mem['ram_static_bytes']} B static + "
            f"{mem['ram_stack_heap_reserved_bytes']} B stack/heap reserve = {used} B "
            f"({100 * used / mem['ram_total']:.2f} % of 264 KB)")  # fmt: skip


def build(args: argparse.Namespace) -> None:
    sdk_arg = args.sdk or os.environ.get("PICO_SDK_PATH")
    if not sdk_arg:
        raise ReleaseError("give --sdk DIR or set PICO_SDK_PATH to a pico-sdk 2.2.0 copy")
    sdk = Path(sdk_arg).expanduser().resolve()
    found = check_sdk(sdk, args.allow_other_sdk)
    for tool in ("cmake", "arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-size"):
        if shutil.which(tool) is None:
            raise ReleaseError(f"{tool} not found (Debian: apt-get install cmake "
                               "gcc-arm-none-eabi libnewlib-arm-none-eabi "
                               "libstdc++-arm-none-eabi-newlib)")  # fmt: skip
    sources = sources_sha256()
    version = fw_version(sources)
    configure = ["cmake", "-S", str(FIRMWARE / "board"), "-B", str(BUILD),
                 "-DCMAKE_BUILD_TYPE=Release", f"-DPICO_SDK_PATH={sdk}", f"-DPICO_BOARD={BOARD}",
                 f"-DSA_FW_VERSION={version}"]  # fmt: skip
    picotool = args.picotool or os.environ.get("PICOTOOL_DIR")
    if picotool:
        configure.append(f"-Dpicotool_DIR={Path(picotool).expanduser().resolve()}")
    say(f"sources {sources[:16]}..., firmware version {version}")
    run(*configure)
    run("cmake", "--build", str(BUILD), "-j", str(args.jobs))
    elf, uf2 = BUILD / "soundalert.elf", BUILD / "soundalert.uf2"
    if sources_sha256() != sources:
        raise ReleaseError("the sources changed during the build; run it again")
    mem = memory(elf)
    RELEASE.mkdir(exist_ok=True)
    shutil.copyfile(uf2, RELEASE / IMAGE)
    picotool_line = "picotool (found by the SDK)"
    cache = (BUILD / "CMakeCache.txt").read_text()
    match = re.search(r"^picotool_DIR:[A-Z]+=(.+)$", cache, re.MULTILINE)
    if match and (Path(match.group(1)) / "picotool").is_file():
        picotool_line = run(str(Path(match.group(1)) / "picotool"), "version").splitlines()[0]
    manifest = {
        "image": IMAGE,
        "image_sha256": sha256_file(RELEASE / IMAGE),
        "fw_version": version,
        "sources_sha256": sources,
        "sources": list(SOURCES),
        "board": BOARD,
        "build_type": "Release",
        "pico_sdk": found["pico_sdk"],
        "tinyusb": found["tinyusb"],
        "picotool": picotool_line,
        "toolchain": run("arm-none-eabi-gcc", "--version").splitlines()[0],
        "memory": mem,
        "symbols": symbols(elf),
        "rebuild": REBUILD,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    say(f"{RELEASE / IMAGE}: {report(mem)}")
    say(f"wrote {MANIFEST.relative_to(REPO)}; commit release/ with the sources")


def check() -> int:
    if not MANIFEST.is_file():
        say(f"no {MANIFEST.relative_to(REPO)}: build the image with `{REBUILD}`")
        return 1
    manifest = json.loads(MANIFEST.read_text())
    problems = []
    sources = sources_sha256()
    if manifest["sources_sha256"] != sources:
        problems.append(f"the image's sources changed since it was built (now {sources[:12]}, "
                        f"built from {manifest['sources_sha256'][:12]})")  # fmt: skip
    if manifest["fw_version"] != fw_version(manifest["sources_sha256"]):
        problems.append(f"fw_version {manifest['fw_version']} does not match its sources")
    image = RELEASE / manifest["image"]
    if not image.is_file() or sha256_file(image) != manifest["image_sha256"]:
        problems.append(f"{image.relative_to(REPO)} is missing or not the image the manifest "
                        "describes")  # fmt: skip
    for problem in problems:
        say(problem)
    if problems:
        say(f"rebuild and commit firmware/rp2040/release/: {REBUILD}")
        return 1
    say(f"release/{manifest['image']} {manifest['fw_version']} matches its sources; "
          f"{report(manifest['memory'])}")  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the image and write release/")
    b.add_argument("--sdk", help="pico-sdk 2.2.0 copy (default: $PICO_SDK_PATH)")
    b.add_argument("--picotool", help="picotool 2.x install dir (default: $PICOTOOL_DIR, "
                   "else the SDK finds or fetches it)")  # fmt: skip
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    b.add_argument(
        "--allow-other-sdk",
        action="store_true",
        help="build with an SDK other than the pin (recorded in the manifest)",
    )
    sub.add_parser("check", help="exit 1 if the committed image is stale")
    sub.add_parser("hash", help="print the SHA-256 of the image's sources")
    args = parser.parse_args()
    try:
        if args.command == "build":
            build(args)
            return 0
        if args.command == "check":
            return check()
        say(sources_sha256())
    except ReleaseError as exc:
        say(f"error: {exc}", error=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
