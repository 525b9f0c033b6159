#!/usr/bin/env bash
# weft summary, early stopping, learning-rate schedules and --plot: the
# lesson's Keras model has exactly Keras's parameter counts with
# --cell simple_rnn (one bias) and PyTorch's with rnn_tanh (two); --patience
# stops a run whose held-out loss stops falling; --lr-schedule step changes
# the rate as StepLR does; --plot writes a real PNG / SVG (or, in a build
# without cairo, fails saying so).
set -euo pipefail
. "${2:?source dir}/tests/support/corpora.sh"
weft=$1
export WEFT_CELL_DIR=$2/cells
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# the Param # column of the row starting with $2 in summary $1
count() { grep -E "^ $2 " "$1" | awk '{print $NF}'; }

# ---- summary: Embedding(20000, 64) + SimpleRNN(16) + Dense(4), Keras's numbers
"$weft" summary --task topic --max-tokens 20000 --embed 64 --cell simple_rnn --hidden-size 16 \
    > "$tmp/s1.txt"
[ "$(count "$tmp/s1.txt" 'embedding \(Embedding\)')" = 1,280,000 ] || fail "embedding: $(cat "$tmp/s1.txt")"
[ "$(count "$tmp/s1.txt" 'rnn \(SimpleRNN\)')" = 1,296 ] || fail "simple_rnn: $(cat "$tmp/s1.txt")"
[ "$(count "$tmp/s1.txt" 'dense \(Dense\)')" = 68 ] || fail "dense: $(cat "$tmp/s1.txt")"
grep -q "^Total params: 1,281,364$" "$tmp/s1.txt" || fail "total: $(cat "$tmp/s1.txt")"
grep -q "^Trainable params: 1,281,364$" "$tmp/s1.txt" || fail "trainable: $(cat "$tmp/s1.txt")"
grep -q "bias_hh" "$tmp/s1.txt" && fail "simple_rnn has one bias: $(cat "$tmp/s1.txt")"
# PyTorch-style rnn_tanh: two biases, counted and said
"$weft" summary --task topic --max-tokens 20000 --embed 64 --cell rnn_tanh --hidden-size 16 \
    > "$tmp/s2.txt"
[ "$(count "$tmp/s2.txt" 'rnn \(RNN\[rnn_tanh\]\)')" = 1,312 ] || fail "rnn_tanh: $(cat "$tmp/s2.txt")"
grep -q "^Total params: 1,281,380$" "$tmp/s2.txt" || fail "total: $(cat "$tmp/s2.txt")"
grep -q "two bias vectors" "$tmp/s2.txt" || fail "no note on biases: $(cat "$tmp/s2.txt")"
# the other tasks; the total is what training reports
"$weft" summary --task binary-addition > "$tmp/s3.txt"
grep -q "^Total params: 304$" "$tmp/s3.txt" || fail "binary-addition: $(cat "$tmp/s3.txt")"
"$weft" summary --task topic --cell lstm --layers 2 --bidirectional > "$tmp/s4.txt"
grep -q "Bidirectional(LSTM) x 2" "$tmp/s4.txt" || fail "bi-LSTM: $(cat "$tmp/s4.txt")"
rc=0; "$weft" summary 2> "$tmp/err.txt" || rc=$?
[ "$rc" = 2 ] && grep -q "task is required" "$tmp/err.txt" || fail "summary without --task: rc $rc"

# ---- a tiny topic corpus
tiny_fortunes "$tmp/fortunes"
tiny=(--data "$tmp/fortunes" --max-len 12 --embed 8 --hidden-size 8 --batch 8 --max-tokens 60)
# the summary's total is the trained model's parameter count
"$weft" summary --task topic "${tiny[@]}" > "$tmp/s5.txt"
"$weft" train --task topic "${tiny[@]}" --epochs 1 --quiet --json > "$tmp/t0.txt"
params=$(python3 -c 'import json,sys; print(format(json.loads(open(sys.argv[1]).read().splitlines()[-1])["params"], ","))' "$tmp/t0.txt")
grep -q "^Total params: $params$" "$tmp/s5.txt" || fail "summary vs train: $params; $(cat "$tmp/s5.txt")"

# ---- early stopping: with lr 0.05 the held-out loss of this run stops
# improving after epoch 7 (0.0814), so --patience 2 ends it after epoch 9
"$weft" train --task topic "${tiny[@]}" --epochs 30 --lr 0.05 --patience 2 --csv "$tmp/p.csv" \
    > "$tmp/p.txt"
grep -qE "^early stopping after epoch [0-9]+: held-out loss" "$tmp/p.txt" || fail "no early stop: $(tail -3 "$tmp/p.txt")"
rows=$(($(wc -l < "$tmp/p.csv") - 1))
[ "$rows" -lt 30 ] && [ "$rows" -ge 3 ] || fail "early stopping ran $rows epochs"
# it stopped exactly `patience` epochs after the best held-out loss
python3 - "$tmp/p.csv" <<'PY' || fail "stopped at the wrong epoch: $(cat "$tmp/p.csv")"
import csv, sys
r = list(csv.DictReader(open(sys.argv[1])))
v = [float(x["val_loss"]) for x in r]
best = v.index(min(v))
sys.exit(0 if len(v) == best + 1 + 2 else 1)
PY

# ---- StepLR(2, 0.5) over lr 0.04: the CSV's rate (the next epoch's) halves every 2 epochs
"$weft" train --task topic "${tiny[@]}" --epochs 4 --lr 0.04 --lr-schedule step --lr-step 2 \
    --lr-gamma 0.5 --quiet --csv "$tmp/lr.csv"
[ "$(cut -d, -f6 "$tmp/lr.csv" | tail -n +2 | tr '\n' ' ')" = "0.04 0.02 0.02 0.01 " ] ||
    fail "step schedule: $(cat "$tmp/lr.csv")"
"$weft" train --task topic "${tiny[@]}" --epochs 2 --lr 0.04 --lr-schedule cosine --quiet \
    --csv "$tmp/cos.csv"
[ "$(tail -1 "$tmp/cos.csv" | cut -d, -f6)" = 0 ] || fail "cosine schedule: $(cat "$tmp/cos.csv")"
rc=0; "$weft" train --task topic --lr-schedule linear 2> "$tmp/err.txt" || rc=$?
[ "$rc" = 2 ] && grep -q "step, cosine" "$tmp/err.txt" || fail "bad schedule: rc $rc"

# ---- plots: a PNG (its signature and size) and an SVG; compare's curves
rc=0
"$weft" train --task topic "${tiny[@]}" --epochs 3 --quiet --plot "$tmp/curves.png" \
    2> "$tmp/err.txt" || rc=$?
if [ "$rc" = 2 ] && grep -q "without cairo" "$tmp/err.txt"; then
    echo "(weft built without cairo: --plot refuses, as it should)"
else
    [ "$rc" = 0 ] || fail "--plot: rc $rc: $(cat "$tmp/err.txt")"
    python3 - "$tmp/curves.png" <<'PY' || fail "not a PNG of the expected size"
import struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", b[:8]
w, h = struct.unpack(">II", b[16:24])
assert (w, h) == (1040, 380), (w, h)
assert len(b) > 5000, len(b)   # lines and text, not a blank image
PY
    "$weft" train --task topic "${tiny[@]}" --epochs 2 --quiet --plot "$tmp/curves.svg"
    python3 -c 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); assert d.documentElement.tagName == "svg"' \
        "$tmp/curves.svg" || fail "not an SVG"
    "$weft" compare --cells rnn_tanh,gru --task topic "${tiny[@]}" --epochs 2 \
        --plot "$tmp/cmp.png" > "$tmp/cmp.txt" 2> /dev/null
    grep -q "^plot: $tmp/cmp.png" "$tmp/cmp.txt" || fail "compare plot: $(cat "$tmp/cmp.txt")"
    head -c 8 "$tmp/cmp.png" | od -c | grep -q "P   N   G" || fail "compare: not a PNG"
    rc=0; "$weft" train --task topic --plot "$tmp/x.jpg" 2> "$tmp/err.txt" || rc=$?
    [ "$rc" = 2 ] && grep -q "png or .svg" "$tmp/err.txt" || fail "--plot x.jpg: rc $rc"
fi
echo ok
