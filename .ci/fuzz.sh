#!/usr/bin/env bash
# CI stage: build the libFuzzer targets fuzz/fuzz_*.c with clang
# (-fsanitize=fuzzer,address,undefined) and run each for SECONDS (default
# 60), all at once (one core each).  New inputs go to a scratch directory;
# the committed seeds in fuzz/corpus/<target> are only read.  A crash,
# leak, timeout or out-of-memory fails the stage and leaves the input in
# $BUILD/findings.
#   .ci/fuzz.sh [SECONDS]      BUILD=dir (default build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
BUILD=${BUILD:-build-fuzz}
cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DWEFT_FUZZ=ON -DWEFT_TESTS=OFF >/dev/null
targets=()
for src in fuzz/fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
# clang's optimisation remarks about the kernels are noise here: the build
# log is shown only when the build fails.
mkdir -p "$BUILD"
if ! cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}" >"$BUILD/build.log" 2>&1; then
  grep -E "error|Error" "$BUILD/build.log" | head -40
  exit 1
fi

mkdir -p "$BUILD/findings"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
pids=()
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/${t#fuzz_}
  mkdir -p "$scratch/$t"
  # -max_len: the seeds' size class; -timeout: a slow input is a finding
  # (unbounded work); -rss_limit_mb: so is unbounded memory.
  "$BUILD/$t" -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$BUILD/findings/$t-" \
    "$scratch/$t" "$corpus" >"$BUILD/$t.log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!targets[@]}"; do
  t=${targets[$i]}
  if wait "${pids[$i]}"; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$BUILD/$t.log" | grep -o '[0-9]*$')
    echo "fuzz: $t: ${runs:-?} executions in ${SECONDS_EACH}s, no findings"
  else
    echo "fuzz: $t FAILED (log $BUILD/$t.log, inputs in $BUILD/findings):"
    grep -E 'ERROR|runtime error|SUMMARY|Test unit written' "$BUILD/$t.log" | head -20 || true
    status=1
  fi
done
exit $status
