#!/usr/bin/env bash
# weft dot: every stage and view renders in-process, the counts it reports
# match the model, and bad arguments are clear errors.
set -euo pipefail
weft=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$weft" dot --help | grep -q "usage: weft dot" || fail "help"

# unrolled forward LSTM, T=5: five step clusters, the four parameters once
"$weft" dot --cell lstm --seq-len 5 -o "$tmp/f.dot" > "$tmp/out"
grep -q "5 step clusters" "$tmp/out" || fail "step clusters: $(cat "$tmp/out")"
[ "$(grep -c 'subgraph cluster_l0_d0_t[0-9]* {' "$tmp/f.dot")" = 5 ] || fail "5 clusters in the dot"
[ "$(grep -c 'subgraph cluster_params' "$tmp/f.dot")" = 1 ] || fail "one params cluster"
[ "$(grep -c 'label="weight_ih_l0' "$tmp/f.dot")" = 1 ] || fail "weight_ih_l0 drawn once"
if command -v dot > /dev/null; then dot -Tsvg "$tmp/f.dot" -o /dev/null || fail "dot parses it"; fi

# every format renders through libgvc
for fmt in svg png pdf; do
    "$weft" dot --cell gru --stage backward -o "$tmp/g.$fmt" > /dev/null || fail "render $fmt"
    [ -s "$tmp/g.$fmt" ] || fail "empty $fmt"
done
grep -q "<svg" "$tmp/g.svg" || fail "svg"
head -c 4 "$tmp/g.png" | grep -q "PNG" || fail "png"
head -c 4 "$tmp/g.pdf" | grep -q "%PDF" || fail "pdf"
# --format overrides the extension
"$weft" dot --cell rnn_tanh --format svg -o "$tmp/x.out" > /dev/null
grep -q "<svg" "$tmp/x.out" || fail "--format svg"

# a cell file's variable names label the nodes; backward stage: a backward cluster per step
"$weft" dot --cell "$src/cells/lstm.cell" --stage backward --seq-len 3 -o "$tmp/b.dot" > /dev/null
grep -q "label=\"c'" "$tmp/b.dot" || fail "cell variable names"
[ "$(grep -c 'subgraph cluster_l0_d0_t[0-9]*_bwd {' "$tmp/b.dot")" = 3 ] || fail "3 backward clusters"
grep -q 'style=dashed, color="#c05000"' "$tmp/b.dot" || fail "dashed backward edges"
if grep -q 'style=dotted' "$tmp/b.dot"; then fail "grad links only on request"; fi
"$weft" dot --cell lstm --stage backward --grad-links -o "$tmp/gl.dot" > /dev/null
grep -q 'style=dotted' "$tmp/gl.dot" || fail "--grad-links"

# training: loss and head; 2-layer bidirectional nests steps in layer and direction
"$weft" dot --cell lstm --stage training --layers 2 --bidirectional -o "$tmp/t.dot" > "$tmp/out"
grep -q "12 step clusters" "$tmp/out" || fail "2 layers x 2 directions x 3 steps: $(cat "$tmp/out")"
grep -q 'subgraph cluster_l1_d1 {' "$tmp/t.dot" || fail "direction cluster"
grep -q 'label="loss' "$tmp/t.dot" || fail "loss node"
[ "$(grep -c 'label="weight_hh_l1_reverse' "$tmp/t.dot")" = 1 ] || fail "reverse params once"

# rolled: one step cluster, state edges drawn back
"$weft" dot --cell gru --rolled --seq-len 6 -o "$tmp/r.dot" > "$tmp/out"
grep -q "1 step clusters" "$tmp/out" || fail "rolled: $(cat "$tmp/out")"
grep -q 'constraint=false, label="t-1"' "$tmp/r.dot" || fail "recurrent edge"

# collapse: first K and the last step, one elision node
"$weft" dot --cell lstm --stage training --seq-len 40 --collapse 2 -o "$tmp/c.svg" > "$tmp/out"
grep -q "3 step clusters" "$tmp/out" || fail "collapse: $(cat "$tmp/out")"
grep -q "37 steps hidden" "$tmp/c.svg" || fail "elision label"

# both layouts render the same drawing; tiled keeps the step boxes
for layout in dot tiled; do
    "$weft" dot --cell lstm --stage backward --seq-len 4 --layout $layout -o "$tmp/$layout.svg" > /dev/null
    grep -q ">t=3 backward<" "$tmp/$layout.svg" || fail "layout $layout: step box labels"
    [ "$(grep -c 'class="node"' "$tmp/$layout.svg")" = "$(grep -c 'class="node"' "$tmp/dot.svg")" ] || fail "layout $layout: node count"
done

# errors: clear messages, exit codes 2 for usage and 1 for runtime
expect() {
    local code=$1 pattern=$2; shift 2
    set +e
    "$weft" dot "$@" > "$tmp/o" 2> "$tmp/e"
    local rc=$?
    set -e
    [ $rc = "$code" ] || fail "exit $rc (want $code) for: $*"
    grep -q -e "$pattern" "$tmp/e" || fail "message for $*: $(cat "$tmp/e")"
}
expect 2 "required" --cell lstm
expect 2 "positive integer" --cell lstm --seq-len 0 -o "$tmp/z.dot"
expect 2 "--stage is" --cell lstm --stage sideways -o "$tmp/z.dot"
expect 2 "--format is" --cell lstm --format gif -o "$tmp/z.dot"
expect 2 "--layout is" --cell lstm --layout grid -o "$tmp/z.dot"
expect 2 "do not go together" --cell lstm --rolled --collapse 2 -o "$tmp/z.dot"
expect 2 "needs --stage optimized" --cell lstm --dump-passes "$tmp" -o "$tmp/z.dot"
expect 1 "no such built-in cell" --cell nope -o "$tmp/z.dot"
# --profile: runs the step, then labels nodes with their time
"$weft" dot --cell lstm --stage training --seq-len 3 --profile -o "$tmp/prof.dot" > /dev/null
grep -q " ms" "$tmp/prof.dot" || { echo "FAIL: profile labels missing"; exit 1; }

# optimized: the compiler's graph, and the graph after every pass
"$weft" dot --cell lstm --stage optimized --dump-passes "$tmp/passes" -o "$tmp/o.svg" > "$tmp/out"
grep -q "3 step clusters" "$tmp/out" || fail "optimized keeps the steps: $(cat "$tmp/out")"
grep -q ">fused " "$tmp/o.svg" || fail "fused kernels drawn"
ls "$tmp/passes" | grep -q "fuse.dot" || fail "--dump-passes"
expect 1 "cannot open" --cell lstm -o "$tmp/no/such/dir/z.dot"
echo ok
