#!/usr/bin/env bash
# weft --help/--version and the demo: gradients check out and the dot renders.
set -euo pipefail
weft=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$weft" --help | grep -q "usage: weft"
"$weft" --version | grep -q "^weft [0-9]"
if "$weft" no-such-command 2>/dev/null; then echo "unknown command must fail"; exit 1; fi
"$weft" demo -o "$tmp/rnn.dot" > "$tmp/out.txt"
grep -q "gradient check vs finite differences: .* ok" "$tmp/out.txt"
dot -Tsvg "$tmp/rnn.dot" -o "$tmp/rnn.svg"
grep -q "<svg" "$tmp/rnn.svg"
"$weft" demo -o "$tmp/rnn.svg" > /dev/null
grep -q "weight_hh" "$tmp/rnn.svg"
echo ok
