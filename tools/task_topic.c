/* weft train --task topic: text classification like the lessons' AG News
 * task, on a corpus that is on every Debian machine: fortune cookies
 * labelled by their category file (computers, politics, science,
 * songs-poems: 1050 / 703 / 625 / 720 cookies).  The split is fixed: the
 * cookie at position i of its file is a test cookie when i % 5 == 4 (a
 * fifth of each class), a training cookie otherwise.
 *
 * Words as Keras's TextVectorization (max_tokens ids, 0 = padding, 1 =
 * unknown), each cookie cut to max_len tokens and right-padded; the model is
 * Embedding(max_tokens, E) + a recurrent model (any cell, layers,
 * bidirectional) + Dense(4) on its last state.  Two ways to deal with the
 * padding: masking (the recurrence skips padded steps and the last state is
 * each cookie's own), and, separately, length bucketing: cookies of similar
 * length are batched together and padded only to their bucket's length.
 * Each bucket length is its own application of the same model in one graph
 * (shapes are static), trained through the trainer's heads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "dist_cli.h"
#include "train_common.h"

static const char *const CLASSES[] = {"computers", "politics", "science", "songs-poems"};
enum { NCLASS = 4, MAX_BUCKETS = 16 };

typedef struct example {
    int32_t *ids;   /* max_len, right-padded with 0 */
    int len;        /* tokens kept (>= 1: an empty cookie gets one [UNK]) */
    int label;
} example;

typedef struct head {
    int T;
    weft_node tokens, labels, weights, loss, acc;
} head;

typedef struct model {
    weft_graph *g;
    weft_cell *cell;
    weft_rnn *rnn;
    weft_embedding emb;
    weft_linear out;
    head heads[MAX_BUCKETS];
    int nheads;
} model;

/* Per-example weights w [B] (0 for the rows that only fill a batch):
 * loss = sum(w * nll) / sum(w), accuracy likewise. */
static void add_head(model *m, head *h, int B, int masking) {
    weft_graph *g = m->g;
    char name[32];
    snprintf(name, sizeof name, "tokens_%d", h->T);
    h->tokens = weft_input(g, name, WEFT_I32, WEFT_SHAPE(B, h->T));
    snprintf(name, sizeof name, "labels_%d", h->T);
    h->labels = weft_input(g, name, WEFT_I32, WEFT_SHAPE(B));
    snprintf(name, sizeof name, "weights_%d", h->T);
    h->weights = weft_input(g, name, WEFT_F32, WEFT_SHAPE(B));
    weft_node x = weft_embedding_apply(g, &m->emb, h->tokens); /* [B, T, E] */
    weft_rnn_inputs in = {x, NULL,
                          masking ? weft_mask_from_padding(g, h->tokens, 0, WEFT_F32) : WEFT_NONE,
                          WEFT_NONE};
    weft_rnn_result r;
    if (weft_rnn_apply(g, m->rnn, &in, &r)) return;
    weft_node logits = weft_linear_apply(g, &m->out, r.last); /* [B, C] */
    int ax = 1;
    weft_node oh = weft_one_hot(g, h->labels, NCLASS, WEFT_F32);
    weft_node nll = weft_neg(g, weft_sum(g, weft_mul(g, oh, weft_log_softmax(g, logits, 1)),
                                         &ax, 1, 0)); /* [B] */
    weft_node wsum = weft_sum(g, h->weights, NULL, 0, 0);
    h->loss = weft_div(g, weft_sum(g, weft_mul(g, nll, h->weights), NULL, 0, 0), wsum);
    /* right: the label's logit is the largest (ties count as right) */
    weft_node lg = weft_stop_gradient(g, logits);
    weft_node picked = weft_sum(g, weft_mul(g, oh, lg), &ax, 1, 0);
    weft_node wrong = weft_greater(g, weft_reduce_max(g, lg, &ax, 1, 0), picked);
    weft_node right = weft_sub(g, weft_scalar_like(g, wrong, 1.0), wrong);
    h->acc = weft_div(g, weft_sum(g, weft_mul(g, right, h->weights), NULL, 0, 0), wsum);
}

static int build(model *m, const train_opts *o, int V, const int *lens, int nlens, int B,
                 weft_rng *rng) {
    memset(m, 0, sizeof *m);
    weft_graph *g = m->g = weft_graph_new();
    if (!g) return train_fail("out of memory");
    if (!(m->cell = train_cell_get(o->cell ? o->cell : "rnn_tanh"))) return train_fail("cell");
    int64_t E = o->embed > 0 ? o->embed : 64, H = o->hidden > 0 ? o->hidden : 16;
    weft_rnn_config cfg = weft_rnn_config_default(E, H);
    cfg.num_layers = o->layers > 0 ? o->layers : 1;
    cfg.bidirectional = o->bidirectional;
    cfg.batch_first = 1;
    cfg.prefix = "rnn.";
    if (weft_embedding_new(g, "embedding", V, E, 0, WEFT_F32, rng, &m->emb) ||
        weft_rnn_new(g, m->cell, &cfg, &m->rnn) || weft_rnn_init(g, m->rnn, rng) ||
        weft_linear_new(g, "dense", H * m->rnn->dirs, NCLASS, 1, WEFT_F32, rng, &m->out))
        return train_fail("model");
    m->nheads = nlens;
    for (int k = 0; k < nlens; k++) {
        m->heads[k].T = lens[k];
        add_head(m, &m->heads[k], B, o->masking);
    }
    return train_model_built(g);
}

static void drop(model *m) {
    weft_rnn_free(m->rnn);
    weft_cell_free(m->cell);
    weft_graph_free(m->g);
}

/* ---------------------------------------------------------------- data */

typedef struct dataset {
    example *ex;
    int n;
} dataset;

static int cmp_int(const void *a, const void *b) {
    return *(const int *)a - *(const int *)b;
}

/* Bucket lengths: the largest length of each of k equal-count slices of
 * the sorted training lengths (Keras's bucket_by_sequence_length with
 * boundaries at quantiles); fewer when lengths repeat. */
static int bucket_lengths(const dataset *d, int k, int max_len, int *lens) {
    int *l = malloc(sizeof *l * (size_t)d->n);
    if (!l) return 0;
    for (int i = 0; i < d->n; i++) l[i] = d->ex[i].len;
    qsort(l, (size_t)d->n, sizeof *l, cmp_int);
    int n = 0;
    for (int b = 1; b <= k; b++) {
        int v = b == k ? max_len : l[(int64_t)d->n * b / k - 1];
        if (n == 0 || v > lens[n - 1]) lens[n++] = v;
    }
    free(l);
    return n;
}

static int bucket_of(int len, const int *lens, int n) {
    int k = 0;
    while (k < n - 1 && lens[k] < len) k++;
    return k;
}

/* A batch: examples idx[0..cnt) in rows 0..cnt-1, rows after that repeat
 * row 0 with weight 0. */
static void fill_batch(const head *h, const dataset *d, const int *idx, int cnt, int B,
                       int32_t *tok, int32_t *lab, float *w, weft_feed f[3]) {
    for (int r = 0; r < B; r++) {
        const example *e = &d->ex[idx[r < cnt ? r : 0]];
        memcpy(tok + (size_t)r * h->T, e->ids, sizeof *tok * (size_t)h->T);
        lab[r] = e->label;
        w[r] = r < cnt ? 1.0f : 0.0f;
    }
    f[0] = (weft_feed){h->tokens, tok, sizeof *tok * (size_t)B * h->T};
    f[1] = (weft_feed){h->labels, lab, sizeof *lab * (size_t)B};
    f[2] = (weft_feed){h->weights, w, sizeof *w * (size_t)B};
}

/* The examples of each bucket, as index lists. */
typedef struct buckets {
    int *idx[MAX_BUCKETS];
    int n[MAX_BUCKETS];
} buckets;

static int split_buckets(const dataset *d, const model *m, buckets *bk) {
    int lens[MAX_BUCKETS];
    for (int k = 0; k < m->nheads; k++) {
        lens[k] = m->heads[k].T;
        bk->n[k] = 0;
        if (!(bk->idx[k] = malloc(sizeof(int) * (size_t)(d->n + 1)))) return -1;
    }
    for (int i = 0; i < d->n; i++) {
        int k = bucket_of(d->ex[i].len, lens, m->nheads);
        bk->idx[k][bk->n[k]++] = i;
    }
    return 0;
}

static void free_buckets(buckets *bk, int n) {
    for (int k = 0; k < n; k++) free(bk->idx[k]);
}

/* Loss and accuracy over a whole dataset (evaluation mode). */
static weft_status evaluate(weft_trainer *t, const model *m, const dataset *d, const buckets *bk,
                            int B, int32_t *tok, int32_t *lab, float *w, double *loss,
                            double *acc) {
    *loss = *acc = 0;
    for (int k = 0; k < m->nheads; k++)
        for (int i = 0; i < bk->n[k]; i += B) {
            int cnt = bk->n[k] - i < B ? bk->n[k] - i : B;
            weft_feed f[3];
            fill_batch(&m->heads[k], d, bk->idx[k] + i, cnt, B, tok, lab, w, f);
            weft_train_result r;
            weft_status s = dist_eval(t, k, f, 3, B, 2, &r); /* this rank's rows (mpirun) */
            if (s) return s;
            *loss += r.loss * cnt / d->n;
            *acc += r.metrics[0] * cnt / d->n;
        }
    return WEFT_OK;
}

static int read_data(const train_opts *o, dataset *train, dataset *test, vocab *v, int V,
                     int max_len) {
    const char *dir = o->data ? o->data : FORTUNES_DIR;
    fortune_set fs;
    if (fortunes_read(dir, CLASSES, NCLASS, &fs, NULL, NULL)) return train_fail("data");
    char **texts = malloc(sizeof *texts * (size_t)fs.n);
    int nt = 0;
    for (int i = 0; texts && i < fs.n; i++)
        if (fs.index[i] % 5 != 4 && (!o->limit || nt < o->limit)) texts[nt++] = fs.text[i];
    int rc = 0;
    if (!texts) rc = train_fail("out of memory");
    else if (vocab_build(texts, nt, V, v))
        rc = train_fail("vocabulary");
    free(texts);
    train->ex = calloc((size_t)fs.n, sizeof *train->ex);
    test->ex = calloc((size_t)fs.n, sizeof *test->ex);
    train->n = test->n = 0;
    if (!rc && (!train->ex || !test->ex)) rc = train_fail("out of memory");
    for (int i = 0; i < fs.n && !rc; i++) {
        dataset *d = fs.index[i] % 5 == 4 ? test : train;
        if (d == train && o->limit && train->n >= o->limit) continue;
        example *e = &d->ex[d->n];
        if (!(e->ids = calloc((size_t)max_len, sizeof *e->ids))) {
            rc = train_fail("out of memory");
            break;
        }
        e->len = vocab_encode(v, fs.text[i], e->ids, max_len);
        if (e->len == 0) e->ids[0] = 1, e->len = 1;
        e->label = fs.label[i];
        d->n++;
    }
    fortunes_free(&fs);
    return rc;
}

static void free_data(dataset *d) {
    for (int i = 0; d->ex && i < d->n; i++) free(d->ex[i].ids);
    free(d->ex);
}

int task_topic(const train_opts *o, train_summary *sum) {
    int max_len = o->max_len > 0 ? o->max_len : 64, B = o->batch > 0 ? o->batch : 32;
    dataset train = {0}, test = {0};
    vocab v = {0};
    model m = {0};
    buckets btr = {0}, bte = {0};
    weft_trainer *t = NULL;
    int epochs = o->epochs > 0 ? o->epochs : 5;
    sum->metric = "accuracy";
    /* the Embedding has max_tokens rows whatever the vocabulary found, as
     * Keras's Embedding(max_tokens, E) after TextVectorization(max_tokens) */
    int V = o->max_tokens > 0 ? o->max_tokens : 20000;
    int rc = o->summary ? 0 : read_data(o, &train, &test, &v, V, max_len);
    int lens[MAX_BUCKETS] = {max_len}, nlens = 1;
    if (!rc && o->buckets > 1)
        nlens = bucket_lengths(&train, o->buckets < MAX_BUCKETS ? o->buckets : MAX_BUCKETS,
                               max_len, lens);
    weft_rng init = weft_rng_make(o->seed);
    /* B is the global batch; under mpirun each rank's model takes its rows */
    if (!rc) rc = build(&m, o, V, lens, nlens, dist_local_rows(B), &init);
    if (!rc && o->summary) {
        int64_t E = m.emb.dim, H = m.rnn->cfg.hidden_size * m.rnn->dirs;
        train_layer l[3] = {{"embedding", "embedding", "Embedding", ""},
                            {"rnn.", "rnn", "", ""},
                            {"dense.", "dense", "Dense", ""}};
        train_rnn_kind(m.cell->name, m.rnn->cfg.num_layers, m.rnn->cfg.bidirectional, l[1].kind,
                       sizeof l[1].kind);
        snprintf(l[0].shape, sizeof l[0].shape, "(%d, %d, %lld)", B, max_len, (long long)E);
        snprintf(l[1].shape, sizeof l[1].shape, "(%d, %lld)", B, (long long)H);
        snprintf(l[2].shape, sizeof l[2].shape, "(%d, %d)", B, NCLASS);
        train_print_summary("topic", m.g, l, 3);
        drop(&m);
        return 0;
    }
    if (!rc) {
        weft_train_config tc = train_config(o, m.heads[0].loss, &m.heads[0].acc, WEFT_OPTIM_ADAM, 0.001, 0, epochs, 0x7091cull);
        if (weft_trainer_new(m.g, &tc, &t)) rc = train_fail("trainer");
        for (int k = 1; k < m.nheads && !rc; k++) {
            int id;
            if (weft_trainer_add_head(t, m.heads[k].loss, &m.heads[k].acc, 1, &id))
                rc = train_fail("trainer");
        }
        if (!rc && o->resume && weft_trainer_load(t, o->resume)) rc = train_fail("resume");
    }
    if (!rc && (split_buckets(&train, &m, &btr) || split_buckets(&test, &m, &bte)))
        rc = train_fail("out of memory");
    int32_t *tok = malloc(sizeof *tok * (size_t)B * max_len), *lab = malloc(sizeof *lab * (size_t)B);
    float *w = malloc(sizeof *w * (size_t)B);
    int64_t nbatches = 0;
    for (int k = 0; k < m.nheads; k++) nbatches += (btr.n[k] + B - 1) / B;
    /* the epoch's batches: (bucket, start) pairs, shuffled */
    int64_t *order = malloc(sizeof *order * (size_t)(nbatches + 1));
    if (!rc && (!tok || !lab || !w || !order)) rc = train_fail("out of memory");
    if (!rc) sum->params = train_param_count(m.g);
    if (!rc && !o->quiet) {
        printf("topic: %d training and %d test cookies (%s, %s, %s, %s); vocabulary %d; "
               "%s %lld x %d layer(s)%s, %s, batch %d, %s lr %g; %lld parameters\n",
               train.n, test.n, CLASSES[0], CLASSES[1], CLASSES[2], CLASSES[3], v.n,
               m.cell->name, (long long)m.rnn->cfg.hidden_size, m.rnn->cfg.num_layers,
               m.rnn->cfg.bidirectional ? " bidirectional" : "",
               o->masking ? "padding masked" : "padding not masked", B,
               weft_optim_kind_name(weft_optim_config_of(weft_trainer_optim(t))->kind),
               weft_trainer_lr(t), (long long)sum->params);
        printf("  lengths: ");
        for (int k = 0; k < m.nheads; k++)
            printf("%s%d (%d cookies)", k ? ", " : "", m.heads[k].T, btr.n[k]);
        printf("\n");
    }
    double vloss = 0, vacc = 0;
    train_stopper stop = {0};
    for (int ep = rc ? epochs : (int)weft_trainer_epoch(t); ep < epochs && !rc; ep++) {
        /* shuffle each bucket, then the batch order, with the trainer's
         * generator (restored by --resume) */
        weft_rng *rng = weft_trainer_rng(t);
        int64_t nb = 0;
        for (int k = 0; k < m.nheads; k++) {
            /* from the same order every epoch, so a resumed run shuffles alike */
            qsort(btr.idx[k], (size_t)btr.n[k], sizeof(int), cmp_int);
            for (int i = btr.n[k] - 1; i > 0; i--) {
                int j = (int)weft_rng_below(rng, i + 1), x = btr.idx[k][i];
                btr.idx[k][i] = btr.idx[k][j];
                btr.idx[k][j] = x;
            }
            for (int i = 0; i < btr.n[k]; i += B) order[nb++] = (int64_t)k << 32 | (uint32_t)i;
        }
        for (int64_t i = nb - 1; i > 0; i--) {
            int64_t j = weft_rng_below(rng, i + 1), x = order[i];
            order[i] = order[j];
            order[j] = x;
        }
        progress pr;
        progress_begin(&pr, o, ep + 1, epochs, nb, "acc", "seq");
        int64_t s;
        for (s = 0; s < nb && !rc; s++) {
            int k = (int)(order[s] >> 32), i = (int)(uint32_t)order[s];
            int cnt = btr.n[k] - i < B ? btr.n[k] - i : B;
            weft_feed f[3];
            fill_batch(&m.heads[k], &train, btr.idx[k] + i, cnt, B, tok, lab, w, f);
            weft_train_result r;
            if (dist_step(t, k, f, 3, B, 2, &r)) {
                rc = train_fail("step");
                break;
            }
            if (train_after_step(t, o, &pr, s + 1, &r, cnt, &rc)) {
                s++;
                break;
            }
        }
        if (rc) break;
        pr.total = s;
        weft_trainer_end_epoch(t);
        if (evaluate(t, &m, &test, &bte, B, tok, lab, w, &vloss, &vacc)) {
            rc = train_fail("evaluation");
            break;
        }
        char extra[128];
        snprintf(extra, sizeof extra, "test: loss %.4f, accuracy %.4f (%d cookies)", vloss,
                 vacc, test.n);
        progress_end(&pr, extra);
        train_epoch_row(t, o, ep + 1, &pr, vloss, "accuracy", vacc, sum);
        if (train_epoch_stop(t, o, &stop, ep + 1, vloss)) break;
    }
    rc = train_finish(t, o, rc, vloss, vacc, sum);
    free(tok), free(lab), free(w), free(order);
    free_buckets(&btr, m.nheads);
    free_buckets(&bte, m.nheads);
    weft_trainer_free(t);
    drop(&m);
    vocab_free(&v);
    free_data(&train);
    free_data(&test);
    return rc;
}
