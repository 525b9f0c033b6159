/* weft train: progress display, option helpers, checkpoints and CSV rows
 * shared by the tasks (see train_common.h). */
#include "train_common.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double train_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ----------------------------------------------------------- progress */

void progress_begin(progress *p, const train_opts *o, int epoch, int epochs, int64_t total,
                    const char *metric, const char *unit) {
    memset(p, 0, sizeof *p);
    p->out = stdout;
    p->tty = isatty(fileno(stdout)) && !o->json;
    p->quiet = o->quiet;
    p->epoch = epoch;
    p->epochs = epochs;
    p->total = total;
    p->every = total >= 10 ? total / 5 : 1;
    p->metric = metric;
    p->unit = unit;
    p->t0 = train_now();
}

static void fmt_time(double s, char *buf, size_t n) {
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static void draw(progress *p, int64_t step, int final) {
    double el = train_now() - p->t0;
    double rate = el > 0 ? (double)p->items / el : 0;
    char eta[32], bar[32];
    fmt_time(final ? el : (step > 0 ? el / (double)step * (double)(p->total - step) : 0), eta,
             sizeof eta);
    int w = 20, fill = p->total > 0 ? (int)(w * step / p->total) : w;
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : '.';
    bar[w] = 0;
    if (p->tty)
        fprintf(p->out, "\r\033[K");
    fprintf(p->out, "epoch %d/%d %*lld/%lld", p->epoch, p->epochs,
            (int)snprintf(NULL, 0, "%lld", (long long)p->total), (long long)step,
            (long long)p->total);
    if (p->tty) fprintf(p->out, " [%s]", bar);
    fprintf(p->out, " loss %.4f %s %.4f %s %s %.0f %s/s", progress_loss(p), p->metric,
            progress_metric(p), final ? "took" : "ETA", eta, rate, p->unit);
    if (!p->tty) fputc('\n', p->out);
    fflush(p->out);
}

void progress_step(progress *p, int64_t step, double loss, double metric, int64_t items) {
    p->items += items;
    p->loss_sum += loss;
    p->metric_sum += metric;
    p->n++;
    if (p->quiet) return;
    double now = train_now();
    if (p->tty) {
        if (now - p->last_draw > 0.1 || step == p->total) {
            p->last_draw = now;
            draw(p, step, 0);
        }
    } else if (step % p->every == 0 && step != p->total) {
        draw(p, step, 0);
    }
}

void progress_end(progress *p, const char *extra) {
    if (p->quiet) return;
    draw(p, p->total, 1);
    if (p->tty) fputc('\n', p->out);
    if (extra && *extra) fprintf(p->out, "  %s\n", extra);
    fflush(p->out);
}

double progress_loss(const progress *p) { return p->n ? p->loss_sum / (double)p->n : 0; }
double progress_metric(const progress *p) { return p->n ? p->metric_sum / (double)p->n : 0; }

/* --------------------------------------------------------------- helpers */

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

weft_cell *train_cell_get(const char *name) {
    weft_cell *c = weft_cell_get(name);
    if (c || strchr(name, '/') || strstr(name, ".cell")) return c;
    /* a plain name that is no built-in: look for cells/<name>.cell */
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", weft_last_error());
    char exe[PATH_MAX], path[PATH_MAX + 64];
    const char *env = getenv("WEFT_CELL_DIR");
    const char *dirs[3] = {env, NULL, "cells"};
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            strcpy(slash, "/../cells");
            dirs[1] = exe;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (!dirs[i]) continue;
        snprintf(path, sizeof path, "%s/%s.cell", dirs[i], name);
        if (is_file(path)) return weft_cell_load(path);
    }
    weft_error(WEFT_ERR_NOT_FOUND, "%s", saved);
    return NULL;
}

weft_optim_config train_optim(const train_opts *o, weft_optim_kind def_kind, double def_lr) {
    weft_optim_kind k = o->optimizer >= 0 ? (weft_optim_kind)o->optimizer : def_kind;
    weft_optim_config c = weft_optim_defaults(k);
    if (o->lr > 0)
        c.lr = o->lr;
    else if (k == def_kind)
        c.lr = def_lr;
    return c;
}

int64_t train_param_count(weft_graph *g) {
    int n = weft_graph_params(g, NULL, 0);
    weft_node *ps = malloc(sizeof *ps * (size_t)(n + 1));
    int64_t total = 0;
    if (!ps) return 0;
    weft_graph_params(g, ps, n);
    for (int i = 0; i < n; i++) total += weft_shape_numel(weft_node_shape(g, ps[i]));
    free(ps);
    return total;
}

int train_maybe_save(weft_trainer *t, const train_opts *o, int final) {
    if (!o->checkpoint) return 0;
    int64_t s = weft_trainer_steps(t);
    if (!final && (o->save_every <= 0 || s % o->save_every != 0)) return 0;
    if (weft_trainer_save(t, o->checkpoint)) return train_fail("checkpoint");
    if (final && !o->quiet) printf("checkpoint: %s (step %lld)\n", o->checkpoint, (long long)s);
    return 0;
}

void train_csv_row(const train_opts *o, int epoch, int64_t steps, double train_loss,
                   double val_loss, const char *metric, double val_metric, double lr) {
    train_plot_add(o, epoch, train_loss, val_loss, metric, val_metric);
    if (!o->csv) return;
    int fresh = !is_file(o->csv);
    FILE *f = fopen(o->csv, "a");
    if (!f) {
        fprintf(stderr, "weft train: %s: %s (metrics not written)\n", o->csv, strerror(errno));
        return;
    }
    if (fresh) fprintf(f, "epoch,steps,train_loss,val_loss,val_%s,lr\n", metric);
    fprintf(f, "%d,%lld,%.6f,%.6f,%.6f,%.6g\n", epoch, (long long)steps, train_loss, val_loss,
            val_metric, lr);
    fclose(f);
}

int train_fail(const char *what) {
    fprintf(stderr, "weft train: %s: %s\n", what, weft_last_error());
    return 1;
}

/* ------------------------------------------------------------ summary */

void train_rnn_kind(const char *cell, int layers, int bidirectional, char *buf, size_t n) {
    const char *base = strrchr(cell, '/') ? strrchr(cell, '/') + 1 : cell;
    char k[48];
    size_t len = strcspn(base, ".");
    if (!strncmp(base, "simple_rnn", len) && len == 10) snprintf(k, sizeof k, "SimpleRNN");
    else if (!strncmp(base, "lstm", len) && len == 4) snprintf(k, sizeof k, "LSTM");
    else if (!strncmp(base, "gru", len) && len == 3) snprintf(k, sizeof k, "GRU");
    else snprintf(k, sizeof k, "RNN[%.*s]", (int)(len < 30 ? len : 30), base);
    char x[16] = "";
    if (layers > 1) snprintf(x, sizeof x, " x %d", layers);
    if (bidirectional) snprintf(buf, n, "Bidirectional(%s)%s", k, x);
    else snprintf(buf, n, "%s%s", k, x);
}

/* 1281364 -> "1,281,364" */
static const char *thousands(int64_t v, char *buf) {
    char d[32];
    int n = snprintf(d, sizeof d, "%lld", (long long)v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = d[i];
    }
    buf[o] = 0;
    return buf;
}

void train_print_summary(const char *title, weft_graph *g, const train_layer *l, int n) {
    int np = weft_graph_params(g, NULL, 0);
    weft_node *ps = malloc(sizeof *ps * (size_t)(np + 1));
    int *owner = malloc(sizeof *owner * (size_t)(np + 1));
    if (!ps || !owner) {
        free(ps), free(owner);
        fprintf(stderr, "weft summary: out of memory\n");
        return;
    }
    weft_graph_params(g, ps, np);
    for (int i = 0; i < np; i++) {
        const char *name = weft_node_name(g, ps[i]);
        size_t best = 0;
        owner[i] = -1;
        for (int k = 0; k < n; k++) {
            size_t pl = strlen(l[k].prefix);
            if (!strncmp(name, l[k].prefix, pl) && (owner[i] < 0 || pl > best)) owner[i] = k, best = pl;
        }
    }
    const char *rule = "_________________________________________________________________________";
    const char *dbl = "=========================================================================";
    char num[32], sh[64], col[96];
    int two_biases = 0;
    int64_t total = 0;
    printf("Model: \"%s\"\n%s\n %-34s %-24s %12s\n%s\n", title, rule, "Layer (type)",
           "Output Shape", "Param #", dbl);
    for (int k = 0; k < n; k++) {
        int64_t cnt = 0;
        for (int i = 0; i < np; i++)
            if (owner[i] == k) cnt += weft_shape_numel(weft_node_shape(g, ps[i]));
        snprintf(col, sizeof col, "%s (%s)", l[k].name, l[k].kind);
        printf(" %-34s %-24s %12s\n", col, l[k].shape, thousands(cnt, num));
        /* each parameter, so that what is counted is plain (bias_ih and
         * bias_hh, say) */
        for (int i = 0; i < np; i++) {
            if (owner[i] != k) continue;
            const char *name = weft_node_name(g, ps[i]);
            weft_shape s = weft_node_shape(g, ps[i]);
            weft_shape_str(s, sh, sizeof sh);
            printf("   %-32s %-24s %12s\n", name, sh, thousands(weft_shape_numel(s), num));
            if (strstr(name, "bias_hh")) two_biases = 1;
        }
        total += cnt;
        printf("%s\n", k + 1 < n ? "" : dbl);
    }
    printf("Total params: %s\n", thousands(total, num));
    printf("Trainable params: %s\n", thousands(total, num));
    printf("Non-trainable params: 0\n%s\n", rule);
    if (two_biases)
        printf("note: this cell has two bias vectors (bias_ih and bias_hh, as PyTorch's);\n"
               "Keras's SimpleRNN / LSTM have one (--cell simple_rnn is Keras's SimpleRNN).\n");
    free(ps);
    free(owner);
}

/* ------------------------------------- schedule, early stopping, plot */

weft_sched train_sched(const train_opts *o, double lr, int epochs) {
    switch (o->lr_schedule) {
    case WEFT_SCHED_STEP:
        return weft_sched_step_lr(lr, o->lr_step > 0 ? o->lr_step : 1,
                                  o->lr_gamma >= 0 ? o->lr_gamma : 0.1);
    case WEFT_SCHED_COSINE: return weft_sched_cosine(lr, epochs > 0 ? epochs : 1, 0);
    default: return weft_sched_constant(lr);
    }
}

int train_should_stop(const train_opts *o, train_stopper *st, int epoch, double val_loss) {
    if (!st->seen || val_loss < st->best) {
        st->best = val_loss;
        st->bad = 0;
        st->seen = 1;
        return 0;
    }
    st->bad++;
    if (o->patience <= 0 || st->bad < o->patience) return 0;
    if (!o->quiet)
        printf("early stopping after epoch %d: held-out loss %.4f has not improved on %.4f "
               "for %d epoch(s)\n", epoch, val_loss, st->best, st->bad);
    return 1;
}

static int reached_max_steps(weft_trainer *t, const train_opts *o) {
    return o->max_steps && weft_trainer_steps(t) >= o->max_steps;
}

int train_after_step(weft_trainer *t, const train_opts *o, progress *pr, int64_t step,
                     const weft_train_result *r, int64_t items, int *rc) {
    progress_step(pr, step, r->loss, r->metrics[0], items);
    *rc = train_maybe_save(t, o, 0);
    return reached_max_steps(t, o);
}

void train_epoch_row(weft_trainer *t, const train_opts *o, int epoch, const progress *pr, double val_loss,
                     const char *metric, double val_metric, train_summary *sum) {
    sum->train_loss = progress_loss(pr);
    train_csv_row(o, epoch, weft_trainer_steps(t), sum->train_loss, val_loss, metric, val_metric,
                  weft_trainer_lr(t));
}

int train_epoch_stop(weft_trainer *t, const train_opts *o, train_stopper *st, int epoch, double val_loss) {
    return train_should_stop(o, st, epoch, val_loss) || reached_max_steps(t, o);
}

int train_finish(weft_trainer *t, const train_opts *o, int rc, double val_loss, double val_metric,
                 train_summary *sum) {
    if (!rc) rc = train_maybe_save(t, o, 1);
    sum->loss = val_loss;
    sum->value = val_metric;
    sum->steps = t ? weft_trainer_steps(t) : 0;
    return rc;
}

/* the curves of this run, for --plot */
static struct {
    int n, cap;
    double *x, *tl, *vl, *vm;
    char metric[16];
} curve;

void train_plot_add(const train_opts *o, int epoch, double train_loss, double val_loss,
                    const char *metric, double val_metric) {
    if (!o->plot) return;
    if (curve.n == curve.cap) {
        int cap = curve.cap ? 2 * curve.cap : 64;
        double *a[4] = {curve.x, curve.tl, curve.vl, curve.vm};
        for (int i = 0; i < 4; i++) {
            double *p = realloc(a[i], sizeof *p * (size_t)cap);
            if (!p) return;
            a[i] = p;
        }
        curve.x = a[0], curve.tl = a[1], curve.vl = a[2], curve.vm = a[3];
        curve.cap = cap;
    }
    curve.x[curve.n] = epoch;
    curve.tl[curve.n] = train_loss;
    curve.vl[curve.n] = val_loss;
    curve.vm[curve.n] = val_metric;
    curve.n++;
    snprintf(curve.metric, sizeof curve.metric, "%s", metric);
}

int train_plot_finish(const train_opts *o) {
    if (!o->plot) return 0;
    char title[64];
    snprintf(title, sizeof title, "held-out %s", curve.metric);
    plot_series loss[2] = {{"training loss", curve.n, curve.x, curve.tl},
                           {"held-out loss", curve.n, curve.x, curve.vl}};
    plot_series metric[1] = {{title, curve.n, curve.x, curve.vm}};
    plot_panel p[2] = {{"loss", "epoch", loss, 2}, {title, "epoch", metric, 1}};
    int rc = plot_write(o->plot, p, 2) ? train_fail("plot") : 0;
    if (!rc && !o->quiet) printf("plot: %s\n", o->plot);
    free(curve.x), free(curve.tl), free(curve.vl), free(curve.vm);
    memset(&curve, 0, sizeof curve);
    return rc;
}

void train_print_rnn_summary(const char *title, weft_graph *g, const weft_cell *cell,
                             const weft_rnn *rnn, const char *rnn_prefix, const char *rnn_shape,
                             const char *out_prefix, const char *out_shape) {
    train_layer l[2] = {{rnn_prefix, "rnn", "", ""}, {out_prefix, "dense", "Dense", ""}};
    train_rnn_kind(cell->name, rnn->cfg.num_layers, rnn->cfg.bidirectional, l[0].kind,
                   sizeof l[0].kind);
    snprintf(l[0].shape, sizeof l[0].shape, "%s", rnn_shape);
    snprintf(l[1].shape, sizeof l[1].shape, "%s", out_shape);
    train_print_summary(title, g, l, 2);
}

weft_train_config train_config(const train_opts *o, weft_node loss, weft_node *metric,
                               weft_optim_kind def_kind, double def_lr, double def_clip,
                               int epochs, uint64_t salt) {
    weft_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.loss = loss;
    tc.metrics = metric;
    tc.num_metrics = 1;
    tc.train_flag = WEFT_NONE;
    tc.optim = train_optim(o, def_kind, def_lr);
    tc.sched = train_sched(o, tc.optim.lr, epochs);
    tc.clip_norm = o->clip >= 0 ? o->clip : def_clip;
    tc.seed = o->seed ^ salt;
    return tc;
}

int train_model_built(weft_graph *g) {
    if (!weft_graph_status(g)) return 0;
    weft_error(weft_graph_status(g), "%s", weft_graph_error(g));
    return train_fail("model");
}
