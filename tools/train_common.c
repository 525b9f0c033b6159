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
