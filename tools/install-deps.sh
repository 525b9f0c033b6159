#!/usr/bin/env bash
# Installs weft's build and test dependencies from Debian 12's archive.
# (python3 only runs small helpers inside the shell tests.)
#   --checks   also the tools of CI's extra stages (.ci/run): clang and its
#              libFuzzer runtime for the fuzz targets, valgrind for memcheck.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
EXTRA=()
for arg in "$@"; do
  case $arg in
    --checks) EXTRA+=(clang libclang-rt-14-dev valgrind) ;;
    *) echo "usage: $0 [--checks]" >&2; exit 2 ;;
  esac
done
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config \
  libblis-dev libomp-dev libcriterion-dev libgraphviz-dev graphviz libcjson-dev libcairo2-dev \
  fortunes fortunes-min libopenmpi-dev openmpi-bin python3 "${EXTRA[@]}" >/dev/null
