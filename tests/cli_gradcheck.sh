#!/usr/bin/env bash
# weft gradcheck on every shipped cell (2 layers, bidirectional), and its errors.
set -euo pipefail
weft=$1 src=$2
for c in "$src"/cells/*.cell; do
  "$weft" gradcheck --cell "$c" --layers 2 --bidirectional | tail -1 | grep -qx ok || { echo "gradcheck failed for $c"; exit 1; }
done
for c in rnn_tanh rnn_relu lstm gru gru_reset_before; do
  "$weft" gradcheck --cell $c --input-size 5 --hidden-size 3 --seq-len 2 --batch 1 | tail -1 | grep -qx ok
done
if "$weft" gradcheck --cell no_such_cell 2> err.txt; then echo "unknown cell must fail"; exit 1; fi
grep -q "no_such_cell" err.txt
if "$weft" gradcheck 2>/dev/null; then echo "missing --cell must fail"; exit 1; fi
rm -f err.txt
echo ok
