#!/usr/bin/env bash
# Installs weft's build and test dependencies from Debian 12's archive.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config \
  libblis-dev libomp-dev libcriterion-dev libgraphviz-dev graphviz libcjson-dev \
  fortunes fortunes-min >/dev/null
