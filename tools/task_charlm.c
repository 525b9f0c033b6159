/* weft train --task charlm: a character language model like the lesson's
 * (Keras: SEQLEN 10, BATCH 128, GRU/SimpleRNN 128, Dense softmax, RMSprop):
 * from a window of SEQLEN characters, one-hot encoded, predict the next one
 * (many-to-one).  The text is Debian's fortune cookies (every tenth cookie
 * of each file held out) or any text file (--data; its last tenth held
 * out).  Reports bits per character on held-out windows and prints a
 * sample after each epoch; the checkpoint carries what `weft generate`
 * needs to rebuild the model (cell, sizes, vocabulary). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "charlm.h"
#include "data.h"
#include "dist_cli.h"
#include "train_common.h"

static weft_node logits_of(charlm_model *m, weft_node tokens) {
    weft_graph *g = m->g;
    weft_node x = weft_one_hot(g, tokens, m->vocab, WEFT_F32); /* [B, T, V] */
    weft_rnn_inputs in = {x, NULL, WEFT_NONE, WEFT_NONE};
    weft_rnn_result r;
    if (weft_rnn_apply(g, m->rnn, &in, &r)) return WEFT_NONE;
    return weft_linear_apply(g, &m->out, r.last); /* [B, V] */
}

weft_status charlm_build(charlm_model *m, const charlm_spec *sp, int batch, weft_rng *rng) {
    memset(m, 0, sizeof *m);
    m->spec = *sp;
    m->vocab = sp->vocab;
    m->tokens = m->targets = m->loss = m->bpc = WEFT_NONE;
    weft_graph *g = m->g = weft_graph_new();
    if (!g) return weft_error(WEFT_ERR_NOMEM, "out of memory");
    if (!(m->cell = train_cell_get(sp->cell))) return WEFT_ERR_NOT_FOUND;
    weft_rnn_config cfg = weft_rnn_config_default(sp->vocab, sp->hidden);
    cfg.num_layers = sp->layers;
    cfg.bidirectional = sp->bidirectional;
    cfg.batch_first = 1;
    cfg.prefix = "rnn.";
    weft_status s = weft_rnn_new(g, m->cell, &cfg, &m->rnn);
    if (!s) s = weft_rnn_init(g, m->rnn, rng);
    if (!s) s = weft_linear_new(g, "out", sp->hidden * m->rnn->dirs, sp->vocab, 1, WEFT_F32, rng,
                                &m->out);
    if (s) return s;
    if (batch > 0) {
        m->tokens = weft_input(g, "tokens", WEFT_I32, WEFT_SHAPE(batch, sp->seqlen));
        m->targets = weft_input(g, "targets", WEFT_I32, WEFT_SHAPE(batch));
        weft_node logits = logits_of(m, m->tokens);
        m->loss = weft_loss_cross_entropy(g, logits, m->targets);
        m->bpc = weft_mul(g, m->loss, weft_scalar_like(g, m->loss, 1.0 / log(2.0)));
    }
    /* one window at a time, for sampling */
    m->gen_tokens = weft_input(g, "gen_tokens", WEFT_I32, WEFT_SHAPE(1, sp->seqlen));
    m->gen_logits = logits_of(m, m->gen_tokens);
    if ((s = weft_graph_status(g))) return weft_error(s, "%s", weft_graph_error(g));
    if (!(m->gen = weft_exec_new(g, &m->gen_logits, 1))) return WEFT_ERR_GRAPH;
    return WEFT_OK;
}

void charlm_free(charlm_model *m) {
    weft_exec_free(m->gen);
    weft_rnn_free(m->rnn);
    weft_cell_free(m->cell);
    weft_graph_free(m->g);
    memset(m, 0, sizeof *m);
}

weft_status charlm_sample(charlm_model *m, const char_corpus *v, const char *prime, int length,
                          double temperature, weft_rng *rng, FILE *out) {
    int T = m->spec.seqlen;
    size_t np = strlen(prime);
    int32_t *ctx = malloc(sizeof *ctx * ((size_t)T + np + (size_t)length + 1));
    if (!ctx) return weft_error(WEFT_ERR_NOMEM, "out of memory");
    /* a short prime is left-padded with newlines: the start of a cookie */
    int32_t pad = v->id['\n'] >= 0 ? v->id['\n'] : 0;
    size_t n = 0;
    for (int i = 0; i < T; i++) ctx[n++] = pad;
    for (size_t i = 0; i < np; i++) {
        int id = v->id[(unsigned char)prime[i]];
        if (id < 0) {
            free(ctx);
            return weft_error(WEFT_ERR_ARG, "prime: the character '%c' (byte %d) is not in the "
                              "model's vocabulary", prime[i], (unsigned char)prime[i]);
        }
        ctx[n++] = id;
    }
    weft_status s = WEFT_OK;
    for (int k = 0; k < length && !s; k++) {
        weft_tensor row;
        s = weft_exec_feed(m->gen, m->gen_tokens, ctx + n - T, sizeof *ctx * (size_t)T);
        if (!s) s = weft_exec_run(m->gen);
        if (!s) s = weft_exec_value(m->gen, m->gen_logits, &row);
        if (s) break;
        int64_t c = weft_sample_logits(&row, temperature, rng);
        ctx[n++] = (int32_t)c;
        fputc(v->chars[c], out);
    }
    fflush(out);
    free(ctx);
    return s;
}

/* ---------------------------------------------------------------- task */

static void window(const int32_t *text, int64_t start, int T, int32_t *tok, int32_t *target) {
    memcpy(tok, text + start, sizeof *tok * (size_t)T);
    *target = text[start + T];
}

/* Mean loss and bpc over held-out windows evenly spaced through the test
 * text, nb batches of B (deterministic). */
static weft_status evaluate(weft_trainer *t, const charlm_model *m, const char_corpus *c, int B,
                            int64_t nb, int32_t *tok, int32_t *tgt, double *loss, double *bpc) {
    int T = m->spec.seqlen;
    int64_t span = c->ntest - T - 1, total = nb * B;
    *loss = *bpc = 0;
    for (int64_t k = 0; k < nb; k++) {
        for (int b = 0; b < B; b++) {
            int64_t i = k * B + b;
            window(c->test, i * span / total, T, tok + (size_t)b * T, tgt + b);
        }
        weft_feed f[2] = {{m->tokens, tok, sizeof *tok * (size_t)B * T},
                          {m->targets, tgt, sizeof *tgt * (size_t)B}};
        weft_train_result r;
        weft_status s = dist_eval(t, 0, f, 2, B, -1, &r); /* this rank's rows (mpirun) */
        if (s) return s;
        *loss += r.loss / (double)nb;
        *bpc += r.metrics[0] / (double)nb;
    }
    return WEFT_OK;
}

static weft_status set_meta(weft_trainer *t, const charlm_spec *sp, const char_corpus *c) {
    char buf[64];
    char *vocab = char_vocab_string(c);
    if (!vocab) return weft_error(WEFT_ERR_NOMEM, "out of memory");
    weft_status s = weft_trainer_set_meta(t, "task", "charlm");
    if (!s) s = weft_trainer_set_meta(t, "cell", sp->cell);
#define META_INT(key, v) \
    if (!s) s = (snprintf(buf, sizeof buf, "%lld", (long long)(v)), weft_trainer_set_meta(t, key, buf))
    META_INT("hidden_size", sp->hidden);
    META_INT("layers", sp->layers);
    META_INT("bidirectional", sp->bidirectional);
    META_INT("seqlen", sp->seqlen);
#undef META_INT
    if (!s) s = weft_trainer_set_meta(t, "vocab", vocab);
    free(vocab);
    return s;
}

int task_charlm(const train_opts *o, train_summary *sum) {
    const char *path = o->data ? o->data : FORTUNES_DIR;
    char_corpus c;
    if (char_corpus_read(path, &c)) return train_fail("data");
    charlm_spec sp = {o->cell ? o->cell : "gru", c.vocab, o->hidden > 0 ? o->hidden : 128,
                      o->layers > 0 ? o->layers : 1, o->bidirectional,
                      o->seqlen > 0 ? o->seqlen : 10};
    int B = o->batch > 0 ? o->batch : 128, T = sp.seqlen;
    sum->metric = "bpc";
    if (c.ntest < T + 2 || c.ntrain < T + 2) {
        char_corpus_free(&c);
        weft_error(WEFT_ERR_FORMAT, "%s: too little text for windows of %d", path, T);
        return train_fail("data");
    }
    weft_rng init = weft_rng_make(o->seed);
    charlm_model m;
    weft_trainer *t = NULL;
    int epochs = o->epochs > 0 ? o->epochs : 5;
    /* B is the global batch; under mpirun each rank's model takes its rows */
    int rc = charlm_build(&m, &sp, dist_local_rows(B), &init) ? train_fail("model") : 0;
    if (!rc && o->summary) {
        char rs[48], os[48];
        snprintf(rs, sizeof rs, "(%d, %lld)", B, (long long)(sp.hidden * m.rnn->dirs));
        snprintf(os, sizeof os, "(%d, %lld)", B, (long long)sp.vocab);
        train_print_rnn_summary("charlm", m.g, m.cell, m.rnn, "rnn.", rs, "out.", os);
        charlm_free(&m);
        char_corpus_free(&c);
        return 0;
    }
    if (!rc) {
        weft_train_config tc = train_config(o, m.loss, &m.bpc, WEFT_OPTIM_RMSPROP, 0.002, 5.0, epochs, 0xc4a7ull);
        if (weft_trainer_new(m.g, &tc, &t)) rc = train_fail("trainer");
        else if (set_meta(t, &sp, &c)) rc = train_fail("checkpoint metadata");
        else if (o->resume && weft_trainer_load(t, o->resume)) rc = train_fail("resume");
    }
    int64_t per = o->steps_per_epoch > 0 ? o->steps_per_epoch : 300;
    int64_t nwin = o->eval_windows > 0 ? o->eval_windows : 4096;
    if (nwin > c.ntest - T - 1) nwin = c.ntest - T - 1;
    int64_t nb = (nwin + B - 1) / B;
    int32_t *tok = malloc(sizeof *tok * (size_t)B * T), *tgt = malloc(sizeof *tgt * (size_t)B);
    if (!rc && (!tok || !tgt)) rc = train_fail("out of memory");
    if (!rc) sum->params = train_param_count(m.g);
    if (!rc && !o->quiet)
        printf("charlm: %s, %lld characters to train on, %lld held out, %d distinct; %s %lld x "
               "%d layer(s)%s, windows of %d, batch %d, %s lr %g; %lld parameters\n",
               path, (long long)c.ntrain, (long long)c.ntest, c.vocab, m.cell->name,
               (long long)sp.hidden, sp.layers, sp.bidirectional ? " bidirectional" : "", T, B,
               weft_optim_kind_name(weft_optim_config_of(weft_trainer_optim(t))->kind),
               weft_trainer_lr(t), (long long)sum->params);
    double vloss = 0, vbpc = 0;
    train_stopper stop = {0};
    for (int ep = rc ? epochs : (int)weft_trainer_epoch(t); ep < epochs && !rc; ep++) {
        progress pr;
        progress_begin(&pr, o, ep + 1, epochs, per, "bpc", "char");
        int64_t s;
        for (s = 0; s < per && !rc; s++) {
            for (int b = 0; b < B; b++)
                window(c.train, weft_rng_below(weft_trainer_rng(t), c.ntrain - T - 1), T,
                       tok + (size_t)b * T, tgt + b);
            weft_feed f[2] = {{m.tokens, tok, sizeof *tok * (size_t)B * T},
                              {m.targets, tgt, sizeof *tgt * (size_t)B}};
            weft_train_result r;
            if (dist_step(t, 0, f, 2, B, -1, &r)) {
                rc = train_fail("step");
                break;
            }
            if (train_after_step(t, o, &pr, s + 1, &r, (int64_t)B * T, &rc)) {
                s++;
                break;
            }
        }
        if (rc) break;
        pr.total = s;
        weft_trainer_end_epoch(t);
        if (evaluate(t, &m, &c, B, nb, tok, tgt, &vloss, &vbpc)) {
            rc = train_fail("evaluation");
            break;
        }
        char extra[128];
        snprintf(extra, sizeof extra, "held-out: loss %.4f, %.4f bits per character (%lld "
                 "windows)", vloss, vbpc, (long long)(nb * B));
        progress_end(&pr, extra);
        train_epoch_row(t, o, ep + 1, &pr, vloss, "bpc", vbpc, sum);
        if (!o->quiet) {
            weft_rng sr = weft_rng_make(o->seed + (uint64_t)ep);
            const char *prime = c.id['T'] >= 0 && c.id['h'] >= 0 && c.id['e'] >= 0 &&
                                c.id[' '] >= 0 ? "The " : "";
            printf("  sample: %s", prime);
            if (charlm_sample(&m, &c, prime, 80, 0.5, &sr, stdout)) rc = train_fail("sample");
            printf("\n");
        }
        if (rc || train_epoch_stop(t, o, &stop, ep + 1, vloss)) break;
    }
    rc = train_finish(t, o, rc, vloss, vbpc, sum);
    free(tok);
    free(tgt);
    weft_trainer_free(t);
    charlm_free(&m);
    char_corpus_free(&c);
    return rc;
}
