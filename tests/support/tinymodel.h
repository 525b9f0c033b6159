/* Test support: a small recurrent classifier and its trainer, for the
 * reliability tests (determinism, checkpoints that survive kills).
 * x [T, B, I] floats -> RNN of any cell (optionally 2 layers with dropout)
 * -> Linear on the last state -> cross-entropy.  Each batch is drawn from
 * the trainer's generator, so a restored checkpoint continues the batch
 * sequence exactly. */
#ifndef WEFT_TEST_TINYMODEL_H
#define WEFT_TEST_TINYMODEL_H

#include "weft/train.h"

typedef struct tm_config {
    const char *cell;       /* built-in name or path */
    int64_t T, B, I, H, C;
    int layers;
    double dropout;
    uint64_t init_seed;     /* initial parameters */
    weft_optim_kind optim;
} tm_config;

typedef struct tm_model {
    tm_config cfg;
    weft_graph *g;
    weft_cell *cell;
    weft_rnn *rnn;
    weft_node x, labels, train, loss;
    weft_trainer *trainer;
    float *xbuf;
    int32_t *lbuf;
} tm_model;

/* WEFT_OK or the first error (weft_last_error() says what). */
weft_status tm_build(tm_model *m, const tm_config *cfg);
void tm_free(tm_model *m);
/* One training step on a batch drawn from the trainer's generator. */
weft_status tm_step(tm_model *m, weft_train_result *r);
/* Number of parameter floats; tm_params copies them all (creation order). */
size_t tm_param_count(const tm_model *m);
void tm_params(const tm_model *m, float *out);

#endif
