#!/usr/bin/env bash
# The test command (README and CI): configure with warnings as errors, build,
# and run every test.  Fails when any test fails.
#   BUILD=dir   build directory (default: build)
#   extra arguments go to cmake, e.g. -DWEFT_SANITIZE=ON (.ci/sanitize.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DWEFT_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j"$(nproc)"
