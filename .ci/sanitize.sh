#!/usr/bin/env bash
# CI stage: the whole test suite built with AddressSanitizer + UBSan
# (-DWEFT_SANITIZE=ON: every UBSan finding aborts) in its own build
# directory.  Leak checking is on; .ci/lsan.supp lists the leaks of
# Graphviz's own libraries (fontconfig, pango), which weft cannot free.
set -euo pipefail
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/.ci/lsan.supp:print_suppressions=0
# Warnings are the plain build's job: instrumented code makes GCC's
# flow-based warnings (-Wformat-truncation, -Wstringop-*) report paths that
# do not exist, so -Werror is off here.
BUILD=${BUILD:-build-asan} ./tools/test.sh -DWEFT_SANITIZE=ON -DWEFT_WERROR=OFF
