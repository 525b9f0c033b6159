/* The character language model of `weft train --task charlm`, shared with
 * `weft generate` (which rebuilds it from a checkpoint's metadata). */
#ifndef WEFT_TOOLS_CHARLM_H
#define WEFT_TOOLS_CHARLM_H

#include <stdio.h>

#include "data.h"
#include "weft/rnn.h"

typedef struct charlm_spec {
    const char *cell;
    int64_t vocab, hidden;
    int layers, bidirectional, seqlen;
} charlm_spec;

typedef struct charlm_model {
    charlm_spec spec;
    int64_t vocab;
    weft_graph *g;
    weft_cell *cell;
    weft_rnn *rnn;          /* parameters rnn.weight_ih_l0, ... */
    weft_linear out;        /* out.weight, out.bias */
    weft_node tokens, targets, loss, bpc;   /* training: [B, T], [B] (batch > 0) */
    weft_node gen_tokens, gen_logits;       /* sampling: [1, T] -> [1, V] */
    weft_exec *gen;
} charlm_model;

/* One-hot window -> recurrent model -> last state -> Linear -> next char.
 * batch 0 builds only the sampling head.  Parameters initialised from rng. */
weft_status charlm_build(charlm_model *m, const charlm_spec *sp, int batch, weft_rng *rng);
void charlm_free(charlm_model *m);
/* Feeds prime (left-padded with newlines to a full window), then writes
 * `length` characters sampled at `temperature` (<= 0: argmax) to out. */
weft_status charlm_sample(charlm_model *m, const char_corpus *vocab, const char *prime,
                          int length, double temperature, weft_rng *rng, FILE *out);

#endif
