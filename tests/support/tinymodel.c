#include "tinymodel.h"

#include <stdlib.h>
#include <string.h>

weft_status tm_build(tm_model *m, const tm_config *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    weft_rng rng = weft_rng_make(cfg->init_seed);
    weft_graph *g = m->g = weft_graph_new();
    m->cell = weft_cell_get(cfg->cell);
    if (!g || !m->cell) return weft_error(WEFT_ERR_ARG, "tinymodel: %s", weft_last_error());
    m->x = weft_input(g, "x", WEFT_F32, WEFT_SHAPE(cfg->T, cfg->B, cfg->I));
    m->labels = weft_input(g, "labels", WEFT_I32, WEFT_SHAPE(cfg->B));
    m->train = weft_input(g, "train", WEFT_F32, WEFT_SCALAR_SHAPE);
    weft_rnn_config rc = weft_rnn_config_default(cfg->I, cfg->H);
    rc.num_layers = cfg->layers > 0 ? cfg->layers : 1;
    rc.dropout = cfg->dropout;
    rc.dropout_seed = 77;
    weft_status s = weft_rnn_new(g, m->cell, &rc, &m->rnn);
    if (!s) s = weft_rnn_init(g, m->rnn, &rng);
    if (s) return s;
    weft_rnn_inputs in = {m->x, NULL, WEFT_NONE, m->train};
    weft_rnn_result res;
    if ((s = weft_rnn_apply(g, m->rnn, &in, &res))) return s;
    weft_linear head;
    if ((s = weft_linear_new(g, "head", cfg->H, cfg->C, 1, WEFT_F32, &rng, &head))) return s;
    m->loss = weft_loss_cross_entropy(g, weft_linear_apply(g, &head, res.last), m->labels);
    if ((s = weft_graph_status(g))) return weft_error(s, "%s", weft_graph_error(g));

    weft_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.loss = m->loss;
    tc.train_flag = m->train;
    tc.optim = weft_optim_defaults(cfg->optim);
    tc.optim.lr = 0.01;
    tc.clip_norm = 1.0;
    tc.seed = 4321;
    if ((s = weft_trainer_new(g, &tc, &m->trainer))) return s;
    m->xbuf = malloc(sizeof *m->xbuf * (size_t)(cfg->T * cfg->B * cfg->I));
    m->lbuf = malloc(sizeof *m->lbuf * (size_t)cfg->B);
    if (!m->xbuf || !m->lbuf) return weft_error(WEFT_ERR_NOMEM, "tinymodel: out of memory");
    return WEFT_OK;
}

void tm_free(tm_model *m) {
    weft_trainer_free(m->trainer);
    weft_rnn_free(m->rnn);
    weft_cell_free(m->cell);
    weft_graph_free(m->g);
    free(m->xbuf);
    free(m->lbuf);
    memset(m, 0, sizeof *m);
}

weft_status tm_step(tm_model *m, weft_train_result *r) {
    const tm_config *c = &m->cfg;
    weft_rng *rng = weft_trainer_rng(m->trainer);
    int64_t nx = c->T * c->B * c->I;
    for (int64_t i = 0; i < nx; i++) m->xbuf[i] = (float)weft_rng_normal(rng);
    for (int64_t b = 0; b < c->B; b++) m->lbuf[b] = (int32_t)weft_rng_below(rng, c->C);
    weft_feed f[2] = {{m->x, m->xbuf, sizeof *m->xbuf * (size_t)nx},
                      {m->labels, m->lbuf, sizeof *m->lbuf * (size_t)c->B}};
    return weft_trainer_step(m->trainer, f, 2, r);
}

size_t tm_param_count(const tm_model *m) {
    weft_node ps[256];
    int np = weft_graph_params(m->g, ps, 256);
    size_t n = 0;
    for (int i = 0; i < np && i < 256; i++) n += (size_t)weft_shape_numel(weft_node_shape(m->g, ps[i]));
    return n;
}

void tm_params(const tm_model *m, float *out) {
    weft_node ps[256];
    int np = weft_graph_params(m->g, ps, 256);
    for (int i = 0; i < np && i < 256; i++) {
        size_t k = (size_t)weft_shape_numel(weft_node_shape(m->g, ps[i]));
        memcpy(out, weft_param_data(m->g, ps[i]), k * sizeof *out);
        out += k;
    }
}
