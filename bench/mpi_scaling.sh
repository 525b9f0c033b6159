#!/usr/bin/env bash
# Data-parallel throughput, 1 process vs N ranks (1 thread each), measured
# alternately in the same run (the machine is shared: compare ratios, not
# absolute numbers), and the communication share of a step from the
# ranks' own report (WEFT_DIST_PROFILE=1 separates waiting for the slowest
# rank from the reduction itself).  docs/performance.md quotes it.
#   bench/mpi_scaling.sh WEFT [RANKS=2] [REPEATS=3]
set -euo pipefail
weft=${1:?usage: $0 path/to/weft [ranks] [repeats]}
ranks=${2:-2}
reps=${3:-3}
export OMP_NUM_THREADS=1 BLIS_NUM_THREADS=1 WEFT_DIST_PROFILE=1
mpi=(mpirun --oversubscribe --allow-run-as-root --bind-to none
     -x WEFT_DIST_PROFILE -x OMP_NUM_THREADS
     -x BLIS_NUM_THREADS)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Also one process on half the batch (what each of 2 ranks computes): the
# step time t(B) = fixed + per_row * B separates the work that data
# parallelism splits (per row) from the work every rank repeats (the
# optimizer and dense gradients over all parameters), for the scaling model
# in docs/performance.md.
# the throughput ("N unit/s") of a progress output's last line before the
# end of the epoch (the final line's time includes the evaluation)
rate() { tr '\r' '\n' < "$1" | grep -oE '[0-9]+ (char|seq)/s' | tail -2 | head -1 | cut -d' ' -f1; }
run() { # name global-batch args...
    local name=$1 batch=$2; shift 2
    echo "$name: throughput of 1 process (batch $batch), $ranks ranks (batch $batch), 1 process (batch $((batch / 2)), per row units)"
    for r in $(seq "$reps"); do
        "$weft" train "$@" --batch "$batch" > "$tmp/one.txt" 2>&1
        "${mpi[@]}" -np "$ranks" "$weft" train "$@" --batch "$batch" > "$tmp/many.txt" 2> "$tmp/many.err"
        "$weft" train "$@" --batch $((batch / 2)) > "$tmp/half.txt" 2>&1
        echo "  $(rate "$tmp/one.txt") $(rate "$tmp/many.txt") $(rate "$tmp/half.txt")"
        echo "    $(grep '^distributed:' "$tmp/many.err")"
    done
}
run charlm 128 --task charlm --max-steps 60 --steps-per-epoch 60 --epochs 1 --eval-windows 128
run topic 32 --task topic --max-steps 60 --epochs 1
