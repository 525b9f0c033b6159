#!/usr/bin/env bash
# One command for a newcomer: install dependencies, build, and run weft's
# main job: train a small recurrent network for real (the classic
# binary-addition RNN, a few seconds) and draw its unrolled training graph.
# It prints what it did and where the pictures are.
set -euo pipefail
cd "$(dirname "$0")/.."
./tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
mkdir -p out
echo "== weft train --task binary-addition: 2 inputs, 16 sigmoid units, BPTT + SGD"
rm -f out/binary_addition.csv
./build/weft train --task binary-addition --checkpoint out/binary_addition.safetensors \
    --csv out/binary_addition.csv
echo "== the model's unrolled training graph (forward, backward, loss)"
if ./build/weft dot --cell cells/rnn_sigmoid.cell --input-size 2 --hidden-size 16 \
       --seq-len 8 --batch 1 --stage training --collapse 3 \
       --title "binary addition: rnn_sigmoid, 8 steps (steps 3..6 collapsed)" \
       -o out/binary_addition_training.svg; then
    echo "drawn: out/binary_addition_training.svg"
else
    echo "weft dot failed; drawing the basic demo graph instead"
    ./build/weft demo -o out/rnn3.svg
fi
echo "metrics per epoch: out/binary_addition.csv; weights: out/binary_addition.safetensors"
echo "next: ./build/weft train --task charlm   (docs/workloads.md lists every task)"
