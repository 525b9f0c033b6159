#!/usr/bin/env bash
# One command for a newcomer: install dependencies, build, and run weft's
# main job (it prints what it did and where the pictures are).
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
mkdir -p out
./build/weft demo -o out/rnn3.svg
