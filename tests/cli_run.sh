#!/bin/bash
# weft run (the parity command) on one PyTorch fixture, and its errors.
# Usage: bash cli_run.sh <weft-binary> <source-dir>
# The numbers themselves are compared in test_rnn_parity; here: the command
# line, the output file's contents, exit codes, messages, no partial files.
set -u
WEFT=$1
SRC=$2
FX=$SRC/tests/fixtures/rnn
CASE=lstm_L2_bi_len_f64
ARGS="--cell lstm --input-size 3 --hidden-size 5 --num-layers 2 --bidirectional --dtype f64"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. a successful run writes every output and gradient
$WEFT run $ARGS --weights "$FX/$CASE.weights.safetensors" \
    --inputs "$FX/$CASE.io.safetensors" --out "$TMP/out.safetensors" 2>"$TMP/err" \
    || fail "run exited $?: $(cat "$TMP/err")"
[ -s "$TMP/out.safetensors" ] || fail "no output file"
for t in '"output"' '"h_n"' '"c_n"' '"grad.input"' '"grad.h0"' '"grad.c0"' \
         '"grad.weight_ih_l0"' '"grad.bias_hh_l1_reverse"'; do
    head -c 8192 "$TMP/out.safetensors" | grep -aq "$t" || fail "output lacks $t"
done
ls "$TMP" | grep -q tmp && fail "temporary file left behind"

# 1b. a cell given as a .cell file path
G=gru_L1_uni_f64
$WEFT run --cell "$SRC/cells/gru.cell" --input-size 3 --hidden-size 5 --dtype f64 \
    --weights "$FX/$G.weights.safetensors" --inputs "$FX/$G.io.safetensors" \
    --out "$TMP/gru.safetensors" 2>"$TMP/err" || fail "gru.cell: exit $?: $(cat "$TMP/err")"
head -c 4096 "$TMP/gru.safetensors" | grep -aq '"grad.weight_hh_l0"' || fail "gru.cell: no gradients"

# 2. weights of the wrong shape: exit 1, the message names the tensor, and an
#    existing OUT file is left exactly as it was
cp "$TMP/out.safetensors" "$TMP/before"
$WEFT run --cell lstm --input-size 3 --hidden-size 6 --num-layers 2 --bidirectional \
    --dtype f64 --weights "$FX/$CASE.weights.safetensors" \
    --inputs "$FX/$CASE.io.safetensors" --out "$TMP/out.safetensors" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] || fail "wrong weights: exit $rc, want 1"
grep -q "weight_ih_l0" "$TMP/err" || fail "message does not name the tensor: $(cat "$TMP/err")"
grep -q "$CASE.weights" "$TMP/err" || fail "message does not name the file: $(cat "$TMP/err")"
cmp -s "$TMP/before" "$TMP/out.safetensors" || fail "OUT was modified by a failed run"

# 3. a missing input file: exit 1, named, and no OUT created
$WEFT run $ARGS --weights "$FX/$CASE.weights.safetensors" --inputs "$TMP/nope.safetensors" \
    --out "$TMP/new.safetensors" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] || fail "missing inputs: exit $rc, want 1"
grep -q "nope.safetensors" "$TMP/err" || fail "message does not name the file: $(cat "$TMP/err")"
[ -e "$TMP/new.safetensors" ] && fail "partial OUT file written"

# 4. a NaN in the inputs: a clear error naming the tensor and element, no OUT
python3 - "$FX/$CASE.io.safetensors" "$TMP/nan.safetensors" <<'PY'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
raw = open(src, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
t = hdr['input']
width = 4 if t['dtype'] == 'F32' else 8
at = 8 + n + t['data_offsets'][0] + 3 * width  # element 3 of 'input'
nan = struct.pack('<f' if width == 4 else '<d', float('nan'))
open(dst, 'wb').write(raw[:at] + nan + raw[at + width:])
PY
$WEFT run $ARGS --weights "$FX/$CASE.weights.safetensors" --inputs "$TMP/nan.safetensors" \
    --out "$TMP/nanout.safetensors" 2>"$TMP/err"
rc=$?
[ $rc -eq 1 ] || fail "NaN input: exit $rc, want 1"
grep -q "tensor 'input' element 3 is NaN" "$TMP/err" || fail "NaN message: $(cat "$TMP/err")"
[ -e "$TMP/nanout.safetensors" ] && fail "OUT written despite a NaN input"
$WEFT run $ARGS --weights "$FX/$CASE.weights.safetensors" --inputs "$TMP/nan.safetensors" \
    --out "$TMP/nanout.safetensors" --allow-nonfinite 2>/dev/null || fail "--allow-nonfinite should run"

# 5. usage errors exit 2
$WEFT run --cell lstm --input-size 3 2>/dev/null
rc=$?
[ $rc -eq 2 ] || fail "missing options: exit $rc, want 2"
$WEFT run $ARGS --dtype f16 --weights a --inputs b --out c 2>/dev/null
rc=$?
[ $rc -eq 2 ] || fail "bad dtype: exit $rc, want 2"
echo "cli_run: ok"
