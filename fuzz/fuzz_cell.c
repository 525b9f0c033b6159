/* libFuzzer target: the cell language on arbitrary bytes.
 *
 * A rejected input must come with a "label:line:col: " message.  An
 * accepted cell must report its parameters at a few sizes, emit a step
 * (with and without biases) into a graph without error, and print to a
 * text that parses again and prints the same (the round trip the tests
 * check on the shipped cells).
 *
 * Build (from the repository root; seeds in fuzz/corpus/cell):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fopenmp \
 *     -Iinclude -Icore -Iops -Ifrontends -I/usr/include/x86_64-linux-gnu/blis-openmp \
 *     fuzz/fuzz_cell.c $(find core ops frontends -name '[a-z]*.c') -lblis -lcjson -lm -o fuzz_cell
 *   ./fuzz_cell -max_len=4096 -timeout=5 fuzz/corpus/cell */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cell_lang.h"
#include "weft/cell.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void step_once(const weft_cell *c, int64_t I, int64_t H, int drop_bias) {
    weft_cell_param ps[WEFT_CELL_MAX_PARAMS];
    int n = c->ops->params(c, I, H, ps);
    if (n < 0) return;
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += weft_shape_numel(ps[i].shape);
    if (total > 100000) return; /* valid, but too big to build quickly */
    weft_graph *g = weft_graph_new();
    if (!g) return;
    weft_node p[WEFT_CELL_MAX_PARAMS], st[WEFT_CELL_MAX_STATES], nx[WEFT_CELL_MAX_STATES], out;
    for (int i = 0; i < n; i++)
        p[i] = drop_bias && ps[i].is_bias ? WEFT_NONE
                                          : weft_param(g, ps[i].name, WEFT_F32, ps[i].shape);
    for (int s = 0; s < c->num_states; s++)
        st[s] = weft_input(g, c->state_names[s], WEFT_F32, WEFT_SHAPE(2, H));
    weft_node x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(2, I));
    /* The checker proved the shapes for every size: the step must build. */
    if (c->ops->step(c, g, x, p, st, nx, &out) != WEFT_OK) {
        fprintf(stderr, "step failed on a checked cell: %s\n", weft_last_error());
        abort();
    }
    weft_graph_free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    weft_cell *c = weft_cell_parse((const char *)data, size, "fuzz");
    if (!c) {
        int line, col;
        if (sscanf(weft_last_error(), "fuzz:%d:%d: ", &line, &col) != 2 &&
            !strstr(weft_last_error(), "out of memory")) {
            fprintf(stderr, "message without a location: %s\n", weft_last_error());
            abort();
        }
        return 0;
    }
    step_once(c, 3, 5, 0);
    step_once(c, 7, 11, 1);
    step_once(c, 1, 1, 0);
    char *p1 = cl_print(cl_of(c));
    if (p1) {
        weft_cell *d = weft_cell_parse(p1, strlen(p1), "printed");
        if (!d) {
            fprintf(stderr, "printed form does not parse: %s\n%s", weft_last_error(), p1);
            abort();
        }
        char *p2 = cl_print(cl_of(d));
        if (!p2 || strcmp(p1, p2)) {
            fprintf(stderr, "print is not a fixed point:\n%s---\n%s", p1, p2 ? p2 : "(null)");
            abort();
        }
        free(p2);
        weft_cell_free(d);
        free(p1);
    }
    weft_cell_free(c);
    return 0;
}
