#!/usr/bin/env bash
# Remakes the pictures of docs/visualization.md: bash docs/img/gallery.sh [path/to/weft]
set -euo pipefail
cd "$(dirname "$0")/../.."
weft=${1:-build/weft}
out=docs/img
small="--input-size 4 --hidden-size 8 --batch 1"

for cell in rnn_tanh lstm gru; do
    "$weft" dot --cell cells/$cell.cell $small --seq-len 3 -o $out/$cell-forward.png
    "$weft" dot --cell cells/$cell.cell $small --seq-len 3 --stage backward -o $out/$cell-backward.png
    "$weft" dot --cell cells/$cell.cell $small --seq-len 3 --rolled -o $out/$cell-rolled.png
done
"$weft" dot --cell cells/lstm.cell $small --seq-len 3 --stage backward --rolled -o $out/lstm-backward-rolled.png
"$weft" dot --cell cells/lstm.cell $small --seq-len 3 --layers 2 --bidirectional --layout tiled -o $out/lstm-2layer-bidir.png
"$weft" dot --cell cells/lstm.cell $small --seq-len 100 --stage training --collapse 2 -o $out/lstm-training-t100-collapsed.png
"$weft" dot --cell cells/lstm.cell $small --seq-len 3 --stage training -o $out/lstm-training.png
"$weft" dot --cell cells/lstm.cell $small --seq-len 3 --stage optimized -o $out/lstm-optimized.png
"$weft" dot --cell cells/lstm.cell --input-size 64 --hidden-size 64 --batch 16 --seq-len 3 --stage training --profile 20 -o $out/lstm-profile.png
