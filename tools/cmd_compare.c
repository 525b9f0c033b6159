/* weft compare --cells A,B,... --task NAME [train options] [--seeds K]:
 * trains each cell on the same task with the same data, budget and seeds
 * (1..K) and prints one table — parameters, ms per step, final held-out
 * loss and accuracy / bpc as mean ± spread (half the range) over the seeds.
 * --csv PATH also writes each run's per-epoch learning curve (the cell and
 * seed in the first columns); --plot PATH draws the held-out loss and metric
 * per epoch, one line per cell (mean over the seeds).  Every other option is
 * weft train's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "train_common.h"

enum { MAX_EPOCHS = 256 }; /* plotted per cell */

static void compare_usage(FILE *f) {
    fprintf(f, "usage: weft compare --cells CELL,CELL,... --task NAME [--seeds K] [--csv PATH]\n"
               "                    [--plot FILE.png|FILE.svg] [any weft train option]\n"
               "\n"
               "CELL: a built-in (rnn_tanh, lstm, gru, ...), a name in cells/, or a .cell file.\n"
               "Each cell is trained with seeds 1..K (default 1) on the same data and budget.\n");
}

typedef struct row {
    char cell[256];
    int ncurve;                          /* epochs seen; curves are sums over seeds */
    double curve_x[MAX_EPOCHS], curve_loss[MAX_EPOCHS], curve_metric[MAX_EPOCHS];
    int curve_n[MAX_EPOCHS];
    int64_t params, steps;
    double ms, loss[2], value[2]; /* min, max */
    double loss_sum, value_sum;
    int runs;
} row;

/* Held-out loss and metric per epoch, one line per cell (mean over seeds). */
static int write_plot(const char *path, const char *task, const char *metric, row *rows,
                      int nrows, int seeds) {
    plot_series *ls = calloc((size_t)nrows * 2 + 1, sizeof *ls), *ms = ls + nrows;
    if (!ls) return 1;
    for (int i = 0; i < nrows; i++) {
        row *r = &rows[i];
        for (int e = 0; e < r->ncurve; e++) {
            double n = r->curve_n[e] ? r->curve_n[e] : 1;
            if (!r->curve_n[e]) r->curve_loss[e] = r->curve_metric[e] = NAN;
            r->curve_loss[e] /= n, r->curve_metric[e] /= n;
        }
        ls[i] = (plot_series){r->cell, r->ncurve, r->curve_x, r->curve_loss};
        ms[i] = (plot_series){r->cell, r->ncurve, r->curve_x, r->curve_metric};
    }
    char t0[96], t1[96];
    snprintf(t0, sizeof t0, "%s: held-out loss (mean of %d seed%s)", task, seeds,
             seeds > 1 ? "s" : "");
    snprintf(t1, sizeof t1, "held-out %s", metric);
    plot_panel p[2] = {{t0, "epoch", ls, nrows}, {t1, "epoch", ms, nrows}};
    int rc = 0;
    if (plot_write(path, p, 2)) {
        fprintf(stderr, "weft compare: --plot: %s\n", weft_last_error());
        rc = 1;
    } else
        printf("plot: %s\n", path);
    free(ls);
    return rc;
}

int weft_cmd_compare(int argc, char **argv) {
    const char *cells = NULL, *csv = NULL;
    int seeds = 1;
    /* take out the compare options; the rest goes to weft train's parser */
    char **rest = malloc(sizeof *rest * (size_t)(argc + 1));
    int n = 0;
    if (!rest) return 1;
    rest[n++] = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            compare_usage(stdout);
            free(rest);
            return 0;
        }
        if (i + 1 < argc && !strcmp(argv[i], "--cells")) cells = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--csv")) csv = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--seeds")) {
            seeds = atoi(argv[++i]);
            if (seeds < 1 || seeds > 100) {
                fprintf(stderr, "weft compare: --seeds is 1..100\n");
                free(rest);
                return 2;
            }
        } else rest[n++] = argv[i];
    }
    train_opts o;
    int rc = train_parse(n, rest, &o);
    free(rest);
    if (rc) return rc < 0 ? 0 : rc;
    if (!cells || !o.task) {
        fprintf(stderr, "weft compare: --cells and --task are required\n");
        compare_usage(stderr);
        return 2;
    }
    const char *plot = o.plot;
    o.plot = NULL;
    if (plot && plot_check(plot)) {
        fprintf(stderr, "weft compare: --plot: %s\n", weft_last_error());
        return 2;
    }
    if (o.checkpoint || o.resume) {
        fprintf(stderr, "weft compare: --checkpoint and --resume are per run; not here\n");
        return 2;
    }
    char *list = strdup(cells);
    row *rows = calloc(strlen(cells) + 1, sizeof *rows);
    int nrows = 0, header = 0;
    if (!list || !rows) {
        free(list);
        free(rows);
        return 1;
    }
    for (char *tok = strtok(list, ","); tok && !rc; tok = strtok(NULL, ",")) {
        row *r = &rows[nrows++];
        snprintf(r->cell, sizeof r->cell, "%s", tok);
        for (int s = 1; s <= seeds && !rc; s++) {
            train_opts run = o;
            run.cell = tok;
            run.seed = (uint64_t)s;
            run.quiet = 1;
            run.json = 0;
            run.csv = NULL;
            char path[4096];
            if (csv || plot) {
                snprintf(path, sizeof path, "%s.run%d.tmp", csv ? csv : plot, s);
                remove(path);
                run.csv = path;
            }
            fprintf(stderr, "weft compare: %s, seed %d ...\n", tok, s);
            train_summary sum;
            memset(&sum, 0, sizeof sum);
            double t0 = train_now();
            if ((rc = train_run_task(&run, &sum))) break;
            double sec = train_now() - t0;
            r->params = sum.params;
            r->steps = sum.steps;
            r->ms += 1000 * sec / (double)(sum.steps ? sum.steps : 1) / seeds;
            if (!r->runs || sum.loss < r->loss[0]) r->loss[0] = sum.loss;
            if (!r->runs || sum.loss > r->loss[1]) r->loss[1] = sum.loss;
            if (!r->runs || sum.value < r->value[0]) r->value[0] = sum.value;
            if (!r->runs || sum.value > r->value[1]) r->value[1] = sum.value;
            r->loss_sum += sum.loss;
            r->value_sum += sum.value;
            r->runs++;
            if (csv || plot) { /* append this run's curve, labelled with cell and seed */
                FILE *in = fopen(path, "r"), *out = csv ? fopen(csv, header ? "a" : "w") : NULL;
                char line[512];
                for (int k = 0; in && fgets(line, sizeof line, in); k++) {
                    int ep;
                    long long st;
                    double tl, vl, vm;
                    if (k > 0 && sscanf(line, "%d,%lld,%lf,%lf,%lf", &ep, &st, &tl, &vl, &vm) == 5 &&
                        ep >= 1 && ep <= MAX_EPOCHS) {
                        r->curve_x[ep - 1] = ep;
                        r->curve_loss[ep - 1] += vl;
                        r->curve_metric[ep - 1] += vm;
                        r->curve_n[ep - 1]++;
                        if (ep > r->ncurve) r->ncurve = ep;
                    }
                    if (!out) continue;
                    if (k > 0) fprintf(out, "%s,%d,%s", tok, s, line);
                    else if (!header) fprintf(out, "cell,seed,%s", line), header = 1;
                }
                if (in) fclose(in);
                if (out) fclose(out);
                remove(path);
            }
        }
    }
    if (!rc) {
        const char *metric = !strcmp(o.task, "charlm") ? "bpc" : "accuracy";
        printf("%s, %d seed(s), same data and budget:\n", o.task, seeds);
        printf("%-28s %10s %8s %10s %20s %20s\n", "cell", "params", "steps", "ms/step",
               "held-out loss", metric);
        for (int i = 0; i < nrows; i++) {
            row *r = &rows[i];
            printf("%-28s %10lld %8lld %10.2f %12.4f ± %-6.4f %12.4f ± %-6.4f\n", r->cell,
                   (long long)r->params, (long long)r->steps, r->ms, r->loss_sum / r->runs,
                   (r->loss[1] - r->loss[0]) / 2, r->value_sum / r->runs,
                   (r->value[1] - r->value[0]) / 2);
        }
        if (csv) printf("learning curves: %s\n", csv);
        if (plot) rc = write_plot(plot, o.task, metric, rows, nrows, seeds);
    }
    free(list);
    free(rows);
    return rc;
}
