/* weft — recurrent cells.
 *
 * A cell is the seam between the ways a recurrent step can be written (the
 * built-in C cells, the cell language) and everything that uses one
 * (unrolling, layers, training, parity checks, drawing).  A cell says which
 * parameters it has, in terms of the input size I and hidden size H, how many
 * states it carries, and emits one time step into a graph with the builder
 * API. */
#ifndef WEFT_CELL_H
#define WEFT_CELL_H

#include "weft.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WEFT_CELL_MAX_PARAMS 32
#define WEFT_CELL_MAX_STATES 4
#define WEFT_NAME_MAX 64

typedef enum weft_init_kind {
    WEFT_INIT_UNIFORM_INV_SQRT_H, /* U(-1/sqrt(H), 1/sqrt(H)), PyTorch's RNN init */
    WEFT_INIT_ZEROS,
    WEFT_INIT_ONES,
    WEFT_INIT_CONST               /* every element = value */
} weft_init_kind;

typedef struct weft_cell_param {
    char name[WEFT_NAME_MAX];     /* e.g. "weight_ih"; layers add "_l0", "_reverse" */
    weft_shape shape;             /* resolved for the I and H asked for */
    weft_init_kind init;
    double value;                 /* for WEFT_INIT_CONST */
    int is_bias;                  /* dropped when a layer is built without biases */
} weft_cell_param;

typedef struct weft_cell weft_cell;

typedef struct weft_cell_ops {
    /* Parameters for input size I and hidden size H; returns the count
     * (<= WEFT_CELL_MAX_PARAMS) or -1 with weft_last_error() set. */
    int (*params)(const weft_cell *c, int64_t I, int64_t H, weft_cell_param *out);
    /* One step.  x: [B, I]; params[i]: the node of params()[i], or WEFT_NONE
     * for a bias dropped by --no-bias; state[s]: [B, state_size(s)].
     * Writes the next states and the step's output ([B, output size]). */
    weft_status (*step)(const weft_cell *c, weft_graph *g, weft_node x,
                        const weft_node *params, const weft_node *state,
                        weft_node *next_state, weft_node *output);
    void (*free)(weft_cell *c);
} weft_cell_ops;

struct weft_cell {
    const weft_cell_ops *ops;
    char name[WEFT_NAME_MAX];     /* "lstm", "gru", "mgu", ... */
    int num_states;               /* h, or h and c, ... */
    char state_names[WEFT_CELL_MAX_STATES][WEFT_NAME_MAX];
    int gates;                    /* G in the [G*H, I] layout; informational */
    void *impl;                   /* owned by the implementation */
};

/* Built-in cells by name: "rnn_tanh", "rnn_relu", "lstm", "gru" (PyTorch's,
 * reset after the matmul), "gru_reset_before" (Keras reset_after=False).
 * A name containing '/' or ending in ".cell" is loaded as a cell file.
 * Returns NULL with weft_last_error() set. */
weft_cell *weft_cell_get(const char *name_or_path);
void weft_cell_free(weft_cell *c);

/* The cell language (frontends/cell_*.c): parse a .cell file or text.
 * Errors are "file:line:col: message" with the line and a caret, in
 * weft_last_error(). */
weft_cell *weft_cell_load(const char *path);
weft_cell *weft_cell_parse(const char *text, size_t n, const char *label);
/* Warnings from loading a cell file (a parameter or variable never used...),
 * as lines "file:line:col: warning: ..." each followed by the source line and
 * a caret; "" if none or if c is not a cell file. */
const char *weft_cell_warnings(const weft_cell *c);
/* A cell file's doc string (the string opening its body); "" if none. */
const char *weft_cell_doc(const weft_cell *c);

#ifdef __cplusplus
}
#endif
#endif
