#!/usr/bin/env bash
# CI stage: the weft CLI's main paths under valgrind memcheck — no invalid
# access, no use of uninitialised memory, no leak (definite, indirect or
# possible; .ci/valgrind.supp lists BLIS's and Graphviz's own).  Error
# paths are run too: a failed command must not leak either.  Commands not
# built yet are skipped with a note.
#   .ci/memcheck.sh            BUILD=dir (default build, as tools/test.sh)
set -euo pipefail
. "$(dirname "$0")/../tests/support/corpora.sh"
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SRC=$PWD
[ -x "$BUILD/weft" ] || cmake --build "$BUILD" --target weft -j"$(nproc)"
WEFT=$PWD/$BUILD/weft
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
VG=(valgrind --quiet --error-exitcode=99 --leak-check=full
    --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible
    --track-origins=yes --suppressions="$SRC/.ci/valgrind.supp")
# One thread each for OpenMP and BLIS: the same code paths, less time.
export OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1
failed=0 ran=0

# check WANT_RC NAME ARGS...: run `weft ARGS` under memcheck in $tmp
check() {
  local want=$1 name=$2
  shift 2
  local rc=0
  (cd "$tmp" && "${VG[@]}" --log-file="$tmp/$name.vg" "$WEFT" "$@" >"$tmp/$name.out" 2>&1) || rc=$?
  ran=$((ran + 1))
  if [ "$rc" = 99 ] || [ -s "$tmp/$name.vg" ]; then
    echo "memcheck: $name: memory errors (weft $*):"; head -60 "$tmp/$name.vg"; failed=1
  elif [ "$rc" != "$want" ]; then
    echo "memcheck: $name: exit $rc, want $want:"; tail -5 "$tmp/$name.out"; failed=1
  else
    echo "memcheck: $name: clean"
  fi
}
has() { "$WEFT" --help | grep -q "^  $1 "; }

check 0 demo-dot demo -o rnn.dot
check 0 demo-svg demo -o rnn.svg

FX=$SRC/tests/fixtures/rnn
CASE=lstm_L2_bi_len_f64
RUN=(run --cell lstm --input-size 3 --hidden-size 5 --num-layers 2 --bidirectional --dtype f64
     --inputs "$FX/$CASE.io.safetensors")
check 0 run "${RUN[@]}" --weights "$FX/$CASE.weights.safetensors" --out out.safetensors
check 0 run-cell-file run --cell "$SRC/cells/gru.cell" --input-size 3 --hidden-size 5 --dtype f64 \
  --weights "$FX/gru_L1_uni_f64.weights.safetensors" --inputs "$FX/gru_L1_uni_f64.io.safetensors" \
  --out gru.safetensors
check 1 run-bad-weights "${RUN[@]}" --weights "$SRC/tests/safetensors/bad/offsets_overlap.safetensors" \
  --out bad.safetensors
check 1 run-wrong-shape "${RUN[@]}" --hidden-size 6 \
  --weights "$FX/$CASE.weights.safetensors" --out bad.safetensors

if has dot; then
  check 0 dot-training dot --cell lstm --stage training --format dot -o lstm.dot
  check 0 dot-rolled-svg dot --cell "$SRC/cells/gru.cell" --stage backward --rolled -o gru.svg
  check 0 dot-collapsed dot --cell gru --seq-len 6 --collapse 2 --stage forward -o gru.svg
else
  echo "memcheck: weft dot not built: skipped"
fi
if has gradcheck; then
  check 0 gradcheck gradcheck --cell lstm --seq-len 2 --hidden-size 3 --input-size 2
  check 0 gradcheck-cell-file gradcheck --cell "$SRC/cells/mgu.cell" --seq-len 2 --hidden-size 3 \
    --input-size 2
else
  echo "memcheck: weft gradcheck not built: skipped"
fi
if has train; then
  check 0 train-binary-addition train --task binary-addition --max-steps 30 --checkpoint ba.ck \
    --quiet
  check 0 train-resume train --task binary-addition --max-steps 40 --resume ba.ck --quiet
  tiny_text "$tmp/text.txt" 200
  check 0 train-charlm train --task charlm --data text.txt --hidden-size 16 --batch 8 \
    --steps-per-epoch 5 --epochs 1 --eval-windows 16 --checkpoint lm.ck --quiet
  head -c 300 "$tmp/lm.ck" > "$tmp/bad.ck"
  check 1 train-bad-checkpoint train --task charlm --data text.txt --hidden-size 16 --batch 8 \
    --resume bad.ck --quiet
  if has generate; then
    check 0 generate generate --checkpoint lm.ck --prime "the cat" --length 20 --seed 5
  fi
else
  echo "memcheck: weft train not built: skipped"
fi

[ $failed = 0 ] && echo "memcheck: $ran runs clean" || echo "memcheck: FAILED"
exit $failed
