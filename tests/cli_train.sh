#!/usr/bin/env bash
# weft train / weft generate: the seed tasks on small data.  Binary addition
# must get every one of the 128 x 128 pairs right; charlm's held-out bits per
# character must fall; topic trains with masking and with length buckets;
# --json's last line parses; a resumed run equals an uninterrupted one;
# generate samples from a checkpoint; bad input fails with a clear message.
set -euo pipefail
. "${2:?source dir}/tests/support/corpora.sh"
weft=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# the value of key $2 in the JSON object on the last line of file $1
json() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]])' "$1" "$2"; }
fail() { echo "FAIL: $*"; exit 1; }
# expect_error "message regex" command...: exit code 1 and the message on stderr
expect_error() {
    local want=$1; shift
    local rc=0
    "$@" > "$tmp/err.out" 2> "$tmp/err.txt" || rc=$?
    [ "$rc" = 1 ] || fail "exit code $rc (want 1) from: $* ($(cat "$tmp/err.txt"))"
    grep -qE "$want" "$tmp/err.txt" || fail "no '$want' in: $(cat "$tmp/err.txt")"
}

# ---- binary addition: 100% of the pairs, the original's report, JSON
"$weft" train --task binary-addition --json > "$tmp/ba.txt"
grep -q "^Error:\[" "$tmp/ba.txt" || fail "no Error: line"
grep -qE "^Pred:\[[01] [01] [01] [01] [01] [01] [01] [01]\]" "$tmp/ba.txt" || fail "no Pred: line"
grep -qE "^[0-9]+ \+ [0-9]+ = [0-9]+$" "$tmp/ba.txt" || fail "no a + b = c line"
[ "$(json "$tmp/ba.txt" accuracy)" = 1 ] || fail "binary addition: accuracy $(json "$tmp/ba.txt" accuracy)"
[ "$(json "$tmp/ba.txt" params)" = 304 ] || fail "binary addition: $(json "$tmp/ba.txt" params) parameters, not 304"

# ---- charlm on a small text: held-out bpc falls, checkpoint, generate
tiny_text "$tmp/text.txt"
small=(--data "$tmp/text.txt" --hidden-size 32 --batch 16 --steps-per-epoch 15
       --eval-windows 64 --lr 0.01 --seed 3)
"$weft" train --task charlm "${small[@]}" --epochs 3 --csv "$tmp/lm.csv" \
    --checkpoint "$tmp/lm.ck" --json > "$tmp/lm.txt"
first=$(sed -n 2p "$tmp/lm.csv" | cut -d, -f5)
last=$(tail -1 "$tmp/lm.csv" | cut -d, -f5)
python3 -c "import sys; sys.exit(0 if $last < $first - 0.3 else 1)" \
    || fail "charlm: held-out bpc $first -> $last did not fall"
python3 -c "import sys; sys.exit(0 if abs($(json "$tmp/lm.txt" bpc) - $last) < 1e-4 else 1)" ||
    fail "charlm: JSON bpc is not the last epoch's"
[ "$(json "$tmp/lm.txt" steps)" = 45 ] || fail "charlm: $(json "$tmp/lm.txt" steps) steps"
"$weft" generate --checkpoint "$tmp/lm.ck" --prime "the cat" --length 40 --seed 5 > "$tmp/gen.txt"
python3 - "$tmp/gen.txt" <<'EOF' || fail "generate: $(cat "$tmp/gen.txt")"
import sys
s = open(sys.argv[1]).read()
assert s.startswith("the cat") and len(s) == len("the cat") + 40 + 1, repr(s)
EOF
# the same seed samples the same text; argmax ignores the seed
"$weft" generate --checkpoint "$tmp/lm.ck" --prime "the cat" --length 40 --seed 5 | cmp - "$tmp/gen.txt"
"$weft" generate --checkpoint "$tmp/lm.ck" --prime "the" --length 20 --temperature 0 --seed 1 > "$tmp/g1"
"$weft" generate --checkpoint "$tmp/lm.ck" --prime "the" --length 20 --temperature 0 --seed 2 | cmp - "$tmp/g1"

# resume: 2 epochs, then a third from the checkpoint, equals 3 in one go
"$weft" train --task charlm "${small[@]}" --epochs 2 --checkpoint "$tmp/lm2.ck" --quiet
"$weft" train --task charlm "${small[@]}" --epochs 3 --resume "$tmp/lm2.ck" --json > "$tmp/lm3.txt"
[ "$(json "$tmp/lm3.txt" bpc)" = "$(json "$tmp/lm.txt" bpc)" ] ||
    fail "charlm: resumed bpc $(json "$tmp/lm3.txt" bpc) != uninterrupted $(json "$tmp/lm.txt" bpc)"

# ---- topic on a tiny fortunes directory: masking, no masking, buckets, 2-layer bi-LSTM
tiny_fortunes "$tmp/fortunes"
tiny=(--data "$tmp/fortunes" --max-len 12 --embed 8 --hidden-size 8 --batch 8 --max-tokens 60)
"$weft" train --task topic "${tiny[@]}" --epochs 1 --json > "$tmp/t1.txt"
grep -q "128 training and 32 test cookies" "$tmp/t1.txt" || fail "topic split: $(head -1 "$tmp/t1.txt")"
[ "$(json "$tmp/t1.txt" steps)" = 16 ] || fail "topic: $(json "$tmp/t1.txt" steps) steps, not 16"
"$weft" train --task topic "${tiny[@]}" --epochs 6 --lr 0.02 --json > "$tmp/t2.txt"
python3 -c "import sys; sys.exit(0 if $(json "$tmp/t2.txt" accuracy) >= 0.6 else 1)" ||
    fail "topic: accuracy $(json "$tmp/t2.txt" accuracy) on an easy task"
"$weft" train --task topic "${tiny[@]}" --epochs 1 --no-mask --quiet --json > "$tmp/t3.txt"
json "$tmp/t3.txt" accuracy > /dev/null
"$weft" train --task topic "${tiny[@]}" --epochs 2 --buckets 3 --checkpoint "$tmp/tb.ck" \
    --json > "$tmp/t4.txt"
grep -qE "lengths: [0-9]+ \([0-9]+ cookies\), " "$tmp/t4.txt" || fail "no buckets: $(sed -n 2p "$tmp/t4.txt")"
"$weft" train --task topic "${tiny[@]}" --epochs 1 --buckets 3 --checkpoint "$tmp/tb1.ck" --quiet
"$weft" train --task topic "${tiny[@]}" --epochs 2 --buckets 3 --resume "$tmp/tb1.ck" \
    --json > "$tmp/t5.txt"
[ "$(json "$tmp/t5.txt" loss)" = "$(json "$tmp/t4.txt" loss)" ] ||
    fail "topic buckets: resumed loss $(json "$tmp/t5.txt" loss) != $(json "$tmp/t4.txt" loss)"
"$weft" train --task topic "${tiny[@]}" --epochs 1 --cell lstm --layers 2 --bidirectional \
    --quiet --json > "$tmp/t6.txt"
json "$tmp/t6.txt" accuracy > /dev/null

# ---- compare: one table row per cell, learning curves labelled by cell and seed
"$weft" compare --cells rnn_sigmoid,rnn_tanh --task binary-addition --epochs 1 \
    --steps-per-epoch 200 --seeds 2 --csv "$tmp/cmp.csv" > "$tmp/cmp.txt" 2> /dev/null
grep -qE "^rnn_sigmoid +304 +200 " "$tmp/cmp.txt" || fail "compare: $(cat "$tmp/cmp.txt")"
grep -qE "^rnn_tanh +304 +200 " "$tmp/cmp.txt" || fail "compare: $(cat "$tmp/cmp.txt")"
[ "$(grep -c '^rnn_tanh,2,1,200,' "$tmp/cmp.csv")" = 1 ] || fail "compare csv: $(cat "$tmp/cmp.csv")"

# ---- bad input
expect_error "no-such-file.*No such file" "$weft" train --task charlm --data "$tmp/no-such-file"
expect_error "too little text" "$weft" train --task charlm --data "$tmp/fortunes/science" --seqlen 2000
expect_error "no-such-dir" "$weft" train --task topic --data "$tmp/no-such-dir"
head -c 100 "$tmp/lm.ck" > "$tmp/bad.ck"
expect_error "bad.ck" "$weft" generate --checkpoint "$tmp/bad.ck"
expect_error "bad.ck" "$weft" train --task charlm "${small[@]}" --resume "$tmp/bad.ck"
expect_error "not a charlm checkpoint" "$weft" generate --checkpoint "$tmp/tb.ck"
expect_error "missing tensor|checkpoint|shape" "$weft" train --task charlm "${small[@]}" \
    --hidden-size 16 --resume "$tmp/lm.ck"
expect_error "not in the model's vocabulary" "$weft" generate --checkpoint "$tmp/lm.ck" --prime "QZ"
expect_error "no such built-in cell" "$weft" train --task topic "${tiny[@]}" --cell nope
rc=0; "$weft" train --task nope 2> "$tmp/err.txt" || rc=$?
[ "$rc" = 2 ] && grep -q "unknown task" "$tmp/err.txt" || fail "unknown task: rc $rc"
rc=0; "$weft" train --task charlm --batch 0 2> "$tmp/err.txt" || rc=$?
[ "$rc" = 2 ] && grep -q "batch" "$tmp/err.txt" || fail "--batch 0: rc $rc"
echo ok
