/* weft train --task NAME: the seed workloads on real data (binary addition,
 * a character language model, topic classification), with progress, JSON
 * summary, checkpoints and resume.  The options are parsed here; each task
 * lives in tools/task_*.c and its data reader in tools/data_*.c. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "dist_cli.h"
#include "train_common.h"

static const struct {
    const char *name;
    int (*fn)(const train_opts *, train_summary *);
    const char *what;
} tasks[] = {
    {"binary-addition", task_binary_addition,
     "add two 8-bit numbers bit by bit: 2 inputs, 16 sigmoid units, BPTT + SGD"},
    {"charlm", task_charlm, "character language model (GRU 128, windows of 10, RMSprop)"},
    {"topic", task_topic, "fortune cookie topic: Embedding + RNN + Dense, 4 classes"},
};
#define NTASKS ((int)(sizeof tasks / sizeof tasks[0]))

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: weft train --task NAME [options]\n"
            "\n"
            "tasks:\n");
    for (int i = 0; i < NTASKS; i++) fprintf(f, "  %-16s %s\n", tasks[i].name, tasks[i].what);
    fprintf(f,
            "\n"
            "model:    --cell CELL (built-in name, cells/NAME, or FILE.cell) --hidden-size H\n"
            "          --layers L --bidirectional --embed E (topic)\n"
            "training: --epochs N --steps-per-epoch N --max-steps N --batch B\n"
            "          --optimizer sgd|adam|adamw|rmsprop --lr X --clip NORM --seed S\n"
            "          --lr-schedule step|cosine [--lr-step N (epochs, 1) --lr-gamma G (0.1)]\n"
            "          (cosine: to 0 over --epochs) --patience N (stop when the held-out\n"
            "          loss has not improved for N epochs)\n"
            "data:     --data PATH (charlm: a text file or a fortunes directory; topic: a\n"
            "          fortunes directory) --seqlen N --eval-windows N (charlm)\n"
            "          --max-tokens N --max-len N --no-mask --buckets K (topic)\n"
            "          --limit N (use only N training examples)\n"
            "files:    --checkpoint PATH [--save-every N] --resume PATH --csv PATH\n"
            "          --plot FILE.png|FILE.svg (loss and metric per epoch)\n"
            "output:   --json (last line: one JSON object) --quiet\n"
            "\n"
            "docs/workloads.md lists each task's defaults and measured results.\n");
}

static int parse_int(const char *opt, const char *v, long long min, long long *out) {
    char *end;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < min) {
        fprintf(stderr, "weft train: %s needs an integer >= %lld, not '%s'\n", opt, min, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_double(const char *opt, const char *v, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= 0)) {
        fprintf(stderr, "weft train: %s needs a number >= 0, not '%s'\n", opt, v);
        return -1;
    }
    *out = x;
    return 0;
}

int train_parse(int argc, char **argv, train_opts *o) {
    memset(o, 0, sizeof *o);
    o->optimizer = -1;
    o->lr = o->clip = o->lr_gamma = -1;
    o->masking = 1;
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            return -1;
        }
        int *flag = !strcmp(a, "--bidirectional") ? &o->bidirectional
                    : !strcmp(a, "--json")        ? &o->json
                    : !strcmp(a, "--quiet")       ? &o->quiet
                                                  : NULL;
        if (flag) {
            *flag = 1;
            continue;
        }
        if (!strcmp(a, "--no-mask")) {
            o->masking = 0;
            continue;
        }
        if (i + 1 >= argc || strncmp(a, "--", 2)) {
            fprintf(stderr, "weft train: unknown option or missing value: '%s'\n", a);
            return 2;
        }
        const char *v = argv[++i];
        const char **str = !strcmp(a, "--task")         ? &o->task
                           : !strcmp(a, "--cell")       ? &o->cell
                           : !strcmp(a, "--data")       ? &o->data
                           : !strcmp(a, "--checkpoint") ? &o->checkpoint
                           : !strcmp(a, "--resume")     ? &o->resume
                           : !strcmp(a, "--csv")        ? &o->csv
                           : !strcmp(a, "--plot")       ? &o->plot
                                                        : NULL;
        if (str) {
            *str = v;
            continue;
        }
        static const struct {
            const char *name;
            long long min;
            size_t off;
            int size;
        } ints[] = {
#define I(n, m, f) {n, m, offsetof(train_opts, f), (int)sizeof(((train_opts *)0)->f)}
            I("--hidden-size", 1, hidden), I("--layers", 1, layers), I("--epochs", 1, epochs),
            I("--steps-per-epoch", 1, steps_per_epoch), I("--max-steps", 1, max_steps),
            I("--batch", 1, batch), I("--seed", 0, seed), I("--save-every", 1, save_every),
            I("--seqlen", 1, seqlen), I("--eval-windows", 1, eval_windows),
            I("--max-tokens", 3, max_tokens), I("--max-len", 1, max_len), I("--embed", 1, embed),
            I("--buckets", 1, buckets), I("--limit", 1, limit), I("--patience", 1, patience),
            I("--lr-step", 1, lr_step),
#undef I
        };
        int done = 0;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !done; k++) {
            if (strcmp(a, ints[k].name)) continue;
            long long x;
            if (parse_int(a, v, ints[k].min, &x)) return 2;
            char *field = (char *)o + ints[k].off;
            if (ints[k].size == 8)
                *(int64_t *)field = x;
            else if (x > 1000000000) {
                fprintf(stderr, "weft train: %s %s is too large\n", a, v);
                return 2;
            } else
                *(int *)field = (int)x;
            done = 1;
        }
        if (done) continue;
        if (!strcmp(a, "--lr-gamma")) {
            if (parse_double(a, v, &o->lr_gamma)) return 2;
        } else if (!strcmp(a, "--lr-schedule")) {
            o->lr_schedule = !strcmp(v, "step")     ? WEFT_SCHED_STEP
                             : !strcmp(v, "cosine") ? WEFT_SCHED_COSINE
                             : !strcmp(v, "none")   ? WEFT_SCHED_CONSTANT
                                                    : -1;
            if (o->lr_schedule < 0) {
                fprintf(stderr, "weft train: --lr-schedule is step, cosine or none, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--lr") || !strcmp(a, "--clip")) {
            if (parse_double(a, v, a[2] == 'l' ? &o->lr : &o->clip)) return 2;
            if (a[2] == 'l' && o->lr <= 0) {
                fprintf(stderr, "weft train: --lr must be > 0\n");
                return 2;
            }
        } else if (!strcmp(a, "--optimizer")) {
            if ((o->optimizer = weft_optim_kind_parse(v)) < 0) {
                fprintf(stderr, "weft train: --optimizer is sgd, adam, adamw or rmsprop, not "
                                "'%s'\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "weft train: unknown option '%s'\n", a);
            return 2;
        }
    }
    return 0;
}

int train_run_task(const train_opts *o, train_summary *sum) {
    for (int i = 0; i < NTASKS; i++)
        if (!strcmp(o->task, tasks[i].name)) return tasks[i].fn(o, sum);
    fprintf(stderr, "weft train: unknown task '%s'\n", o->task);
    train_usage(stderr);
    return 2;
}

int weft_cmd_train(int argc, char **argv) {
    train_opts o;
    int rc = train_parse(argc, argv, &o);
    if (rc < 0) return 0;
    if (rc) {
        fprintf(stderr, "(weft train --help lists the options)\n");
        return rc;
    }
    if (!o.task) {
        fprintf(stderr, "weft train: --task is required\n");
        train_usage(stderr);
        return 2;
    }
    if (o.plot && plot_check(o.plot)) { /* before hours of training, not after */
        fprintf(stderr, "weft train: --plot: %s\n", weft_last_error());
        return 2;
    }
    /* under mpirun: MPI, same options on every rank, output on rank 0 */
    if ((rc = dist_begin(&o))) return rc;
    train_summary sum;
    memset(&sum, 0, sizeof sum);
    double t0 = train_now();
    if ((rc = train_run_task(&o, &sum))) return dist_end(rc);
    sum.seconds = train_now() - t0;
    if ((rc = train_plot_finish(&o))) return dist_end(rc);
    if (!o.quiet)
        printf("%s: held-out loss %.4f, %s %.4f, %lld steps in %.1f s\n", o.task, sum.loss,
               sum.metric, sum.value, (long long)sum.steps, sum.seconds);
    if (o.json)
        printf("{\"task\": \"%s\", \"loss\": %.6g, \"%s\": %.6g, \"train_loss\": %.6g, "
               "\"seconds\": %.3f, \"steps\": %lld, \"params\": %lld}\n",
               o.task, sum.loss, sum.metric, sum.value, sum.train_loss, sum.seconds,
               (long long)sum.steps, (long long)sum.params);
    fflush(stdout);
    return dist_end(0);
}
