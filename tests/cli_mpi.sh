#!/usr/bin/env bash
# weft train under mpirun, 2 (and 3) ranks on loopback: the same global batch
# and seed give the same parameters and optimizer state as one process
# (within f32 rounding: the batch is summed in another order), also with
# weighted losses, filler rows and shards of unequal size (topic); a
# 2-rank run resumes from its checkpoint; ranks given different options
# refuse to start; a killed rank and a hanging rank end the job with a clear
# error within a deadline.  Skips (exit 0) without mpirun or without MPI in
# weft.
set -euo pipefail
. "${2:?source dir}/tests/support/corpora.sh"
weft=$1
if ! command -v mpirun > /dev/null; then
    echo "SKIP: no mpirun (apt-get install openmpi-bin libopenmpi-dev)"
    exit 0
fi
if ! "$weft" --version | grep -q "MPI: "; then
    echo "SKIP: $("$weft" --version)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export OMP_NUM_THREADS=1
# Sanitizer builds (.ci/sanitize.sh): Open MPI's plugins leak at
# MPI_Finalize (ompi_op_base_op_select, unloaded modules LSan cannot even
# name), which weft cannot free; memory errors are still checked here, and
# weft's own leaks by the single-process tests.
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=0"
# vader's single-copy mode needs ptrace rights that containers often lack
mpi=(mpirun --oversubscribe --allow-run-as-root --bind-to none
     --mca btl_vader_single_copy_mechanism none)

# max |a - b| / (1 + |a|) over every tensor of two checkpoints (parameters
# and optimizer state), which must have the same tensors and step
cat > "$tmp/cmp.py" <<'EOF'
import json, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    out = {}
    for k, v in h.items():
        s, e = v["data_offsets"]
        raw = b[8 + n + s:8 + n + e]
        f = {"F32": "f", "F64": "d", "I32": "i"}[v["dtype"]]
        out[k] = struct.unpack("<%d%s" % (len(raw) // struct.calcsize(f), f), raw)
    return out, meta
(a, ma), (b, mb) = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys(), sorted(a.keys() ^ b.keys())
assert ma["step"] == mb["step"], (ma["step"], mb["step"])
print(max(abs(x - y) / (1 + abs(x)) for k in a for x, y in zip(a[k], b[k])))
EOF
# same A B: within f32 rounding; differ A B: far apart (so `same` can fail)
TOL=1e-4
diff_of() { python3 "$tmp/cmp.py" "$1" "$2"; }
same() {
    local d; d=$(diff_of "$1" "$2")
    python3 -c "import sys; sys.exit(0 if $d < $TOL else 1)" || fail "$3: $1 vs $2 differ by $d"
}
differ() {
    local d; d=$(diff_of "$1" "$2")
    python3 -c "import sys; sys.exit(0 if $d > 100 * $TOL else 1)" || fail "$3: only $d apart"
}

tiny_text "$tmp/text.txt"
lm=(train --task charlm --data "$tmp/text.txt" --hidden-size 32 --steps-per-epoch 6
    --epochs 2 --eval-windows 64 --lr 0.01 --seed 3)

# ---- charlm: 1 process = 2 ranks (global batch 16 = 2 x 8)
"$weft" "${lm[@]}" --batch 16 --checkpoint "$tmp/lm1.ck" --json > "$tmp/lm1.txt"
"${mpi[@]}" -np 2 "$weft" "${lm[@]}" --batch 16 --checkpoint "$tmp/lm2.ck" --json \
    > "$tmp/lm2.txt" 2> "$tmp/lm2.err" || fail "2 ranks: $(cat "$tmp/lm2.err")"
same "$tmp/lm1.ck" "$tmp/lm2.ck" "charlm, 1 process vs 2 ranks"
grep -q "^distributed: 2 ranks" "$tmp/lm2.txt" || fail "no 'distributed:' line from rank 0"
grep -qE "^distributed: 2 ranks, 12 steps: .* averaging gradients" "$tmp/lm2.err" ||
    fail "no communication report: $(cat "$tmp/lm2.err")"
# rank 0 alone prints: one JSON line, one summary
[ "$(grep -c '^{"task"' "$tmp/lm2.txt")" = 1 ] || fail "the JSON line is not printed once"
python3 - "$tmp/lm1.txt" "$tmp/lm2.txt" <<'EOF' || fail "held-out bpc differs"
import json, sys
a, b = (json.loads(open(p).read().splitlines()[-1]) for p in sys.argv[1:])
assert abs(a["bpc"] - b["bpc"]) < 1e-4 and a["steps"] == b["steps"] == 12, (a, b)
EOF
# another global batch is another run: the comparison can fail
"${mpi[@]}" -np 2 "$weft" "${lm[@]}" --batch 8 --checkpoint "$tmp/lm2b8.ck" --quiet
differ "$tmp/lm1.ck" "$tmp/lm2b8.ck" "charlm, batch 16 vs batch 8"

# ---- resume: 2 ranks stop after 6 steps, 2 ranks resume to 12 = 12 in one go
"${mpi[@]}" -np 2 "$weft" "${lm[@]}" --batch 16 --max-steps 6 --checkpoint "$tmp/half.ck" --quiet
"${mpi[@]}" -np 2 "$weft" "${lm[@]}" --batch 16 --resume "$tmp/half.ck" \
    --checkpoint "$tmp/resumed.ck" --quiet
same "$tmp/lm2.ck" "$tmp/resumed.ck" "charlm, 2 ranks resumed vs uninterrupted"

# ---- topic: weighted loss, a last batch of 4 cookies (rank 1 of 2 holds only
# filler rows), buckets, and 3 ranks with shards of 5, 5 and 6 rows
tp=(train --task topic --limit 100 --batch 16 --max-len 16 --hidden-size 8 --embed 8
    --epochs 2 --seed 5 --quiet)
"$weft" "${tp[@]}" --checkpoint "$tmp/tp1.ck"
"${mpi[@]}" -np 2 "$weft" "${tp[@]}" --checkpoint "$tmp/tp2.ck"
same "$tmp/tp1.ck" "$tmp/tp2.ck" "topic, 1 process vs 2 ranks"
"${mpi[@]}" -np 3 "$weft" "${tp[@]}" --checkpoint "$tmp/tp3.ck"
same "$tmp/tp1.ck" "$tmp/tp3.ck" "topic, 1 process vs 3 ranks"
"$weft" "${tp[@]}" --buckets 3 --checkpoint "$tmp/tb1.ck"
"${mpi[@]}" -np 2 "$weft" "${tp[@]}" --buckets 3 --checkpoint "$tmp/tb2.ck"
same "$tmp/tb1.ck" "$tmp/tb2.ck" "topic with buckets, 1 process vs 2 ranks"

small=(train --task charlm --data "$tmp/text.txt" --hidden-size 16 --batch 8 --max-steps 6
       --steps-per-epoch 6 --epochs 1 --eval-windows 16 --quiet)
# expect_fail SECONDS "stderr regex" command...: fails (any non-zero code), in time
expect_fail() {
    local limit=$1 want=$2 rc=0
    shift 2
    timeout "$limit" "$@" > "$tmp/out.txt" 2> "$tmp/err.txt" || rc=$?
    [ "$rc" != 0 ] || fail "succeeded: $*"
    [ "$rc" != 124 ] || fail "still running after $limit s: $*"
    grep -qE "$want" "$tmp/err.txt" || fail "no '$want' in: $(cat "$tmp/err.txt")"
}

# ---- ranks started with different options refuse to start
expect_fail 30 "ranks disagree on the training options.*: rank 1 differs from rank 0" \
    "${mpi[@]}" -np 1 "$weft" "${small[@]}" --seed 1 : -np 1 "$weft" "${small[@]}" --seed 2
# ---- a killed rank ends the job (mpirun sees it die)
expect_fail 30 "rank 1.*(signal 9|Killed)" \
    env WEFT_DIST_FAULT=die:1:3 "${mpi[@]}" -np 2 -x WEFT_DIST_FAULT "$weft" "${small[@]}"
# ---- a hanging rank: rank 0 gives up after WEFT_DIST_TIMEOUT and ends the job
expect_fail 30 "averaging the gradients of step 3: no answer from the other ranks for 2 s" \
    env WEFT_DIST_FAULT=hang:1:3 WEFT_DIST_TIMEOUT=2 "${mpi[@]}" -np 2 -x WEFT_DIST_FAULT \
    -x WEFT_DIST_TIMEOUT "$weft" "${small[@]}"
grep -q "aborting every rank" "$tmp/err.txt" || fail "no abort message: $(cat "$tmp/err.txt")"
# ---- binary-addition does not split: a clear refusal
expect_fail 30 "binary-addition .* is not distributed" \
    "${mpi[@]}" -np 2 "$weft" train --task binary-addition --quiet
echo "cli_mpi: ok"
