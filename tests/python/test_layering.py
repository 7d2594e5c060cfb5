#!/usr/bin/env python3
"""The engine's layers depend one way only (engine/CMakeLists.txt): server -> engine API (torch-free);
facade -> models -> runtime -> common; text/io/common torch-free. The CMake targets link that way; this
check keeps the #includes honest too, since every target shares the repository root as include path.
Exit status 1 naming each offending include."""

import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TORCH = ("torch/", "ATen/", "c10/", "caffe2/")

# folder -> include prefixes it must not use
RULES = {
    "engine/include": TORCH + ("engine/runtime/", "engine/facade/", "models/", "server/"),
    "engine/common": TORCH + ("engine/runtime/", "engine/facade/", "models/", "server/"),
    "engine/text": TORCH + ("engine/runtime/", "engine/facade/", "models/", "server/"),
    "engine/io": TORCH + ("engine/runtime/", "engine/facade/", "models/", "server/"),
    "engine/runtime": ("engine/facade/", "models/", "server/"),
    "models": ("engine/facade/", "server/"),
    "server": TORCH + ("engine/runtime/", "engine/facade/", "models/"),
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')


def main():
    bad = []
    checked = 0
    for folder, banned in RULES.items():
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if not name.endswith((".h", ".cc", ".cu", ".cuh")):
                    continue
                path = os.path.join(dirpath, name)
                checked += 1
                with open(path, encoding="utf-8") as f:
                    for lineno, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if m and m.group(1).startswith(banned):
                            bad.append(f"{os.path.relpath(path, ROOT)}:{lineno}: {folder}/ must not include {m.group(1)}")
    print(f"layering: {checked} files checked")
    for b in bad:
        print("FAIL", b)
    if checked < 50:
        print("FAIL: too few files found; is ROOT right?")
        return 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
