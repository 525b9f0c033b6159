/* weft train / generate: what the tasks share — the parsed options, the
 * progress display, the final summary, and small helpers for building and
 * feeding models.  The training step itself is the library's (weft_trainer);
 * the tasks here own their data and batching. */
#ifndef WEFT_TOOLS_TRAIN_COMMON_H
#define WEFT_TOOLS_TRAIN_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "plot.h"
#include "weft/train.h"

/* Every option of `weft train`; -1 / NULL / 0 = the task's default. */
typedef struct train_opts {
    const char *task;
    const char *cell;          /* cell name or .cell path */
    const char *data;          /* --data: a text file (charlm) or a directory of fortunes */
    const char *checkpoint;    /* written every --save-every steps and at the end */
    const char *resume;        /* read before training */
    const char *csv;           /* per-epoch metrics */
    int64_t hidden;
    int layers;
    int bidirectional;
    int epochs;
    int64_t steps_per_epoch;   /* charlm, binary-addition: an epoch is this many steps */
    int64_t max_steps;         /* stop after this many steps in all (0 = no limit) */
    int batch;
    int optimizer;             /* weft_optim_kind, -1 = the task's */
    double lr;                 /* < 0: the task's */
    double clip;               /* < 0: the task's; 0 = none */
    uint64_t seed;
    int json;
    int quiet;
    int64_t save_every;
    int seqlen;                /* charlm window */
    int64_t eval_windows;      /* charlm: held-out windows scored */
    int max_tokens;            /* topic vocabulary (Keras TextVectorization's) */
    int max_len;               /* topic: tokens kept per cookie */
    int embed;                 /* topic embedding size */
    int masking;               /* topic: mask the padding (default on) */
    int buckets;               /* topic: > 0 = length bucketing with this many buckets */
    int64_t limit;             /* use only this many training examples (tests, smoke runs) */
    int patience;              /* > 0: stop after this many epochs without a better held-out loss */
    int lr_schedule;           /* weft_sched_kind (WEFT_SCHED_CONSTANT = none) */
    int64_t lr_step;           /* StepLR step size in epochs (default 1) */
    double lr_gamma;           /* StepLR factor (< 0: 0.1) */
    const char *plot;          /* --plot: learning curves to PNG or SVG */
    int summary;               /* weft summary: build the model, print its table, no training */
} train_opts;

/* What a finished run reports (the --json line). */
typedef struct train_summary {
    const char *metric;        /* "accuracy" or "bpc" */
    double loss, value;        /* final held-out loss and metric */
    double train_loss;
    double seconds;
    int64_t steps;
    int64_t params;
} train_summary;

/* ----------------------------------------------------------- progress
 * A Keras-like bar redrawn in place on a terminal; plain lines every
 * `every` steps (and at the end of each epoch) otherwise. */
typedef struct progress {
    FILE *out;
    int tty, quiet;
    int epoch, epochs;
    int64_t total, every;
    const char *metric, *unit;  /* metric name; throughput unit ("seq", "char") */
    double t0, last_draw;
    int64_t items;              /* processed this epoch */
    double loss_sum, metric_sum;
    int64_t n;
} progress;

double train_now(void);
void progress_begin(progress *p, const train_opts *o, int epoch, int epochs, int64_t total,
                    const char *metric, const char *unit);
/* After step `step` (1-based, within the epoch) that processed `items`. */
void progress_step(progress *p, int64_t step, double loss, double metric, int64_t items);
/* Ends the epoch's line; `extra` (may be NULL) is appended, e.g. validation. */
void progress_end(progress *p, const char *extra);
/* Mean training loss / metric over the epoch so far. */
double progress_loss(const progress *p);
double progress_metric(const progress *p);

/* --------------------------------------------------------------- helpers */

/* A cell by built-in name, path, or the name of a file in weft's cells/
 * directory (next to the build directory, or $WEFT_CELL_DIR). */
weft_cell *train_cell_get(const char *name);
/* The optimizer configuration from the options, over a task default. */
weft_optim_config train_optim(const train_opts *o, weft_optim_kind def_kind, double def_lr);
/* Total number of parameter elements of g. */
int64_t train_param_count(weft_graph *g);
/* Checkpoint if asked and due (final = at the end); prints errors. */
int train_maybe_save(weft_trainer *t, const train_opts *o, int final);
/* Appends one CSV row (header first when the file is new) and records the
 * epoch for --plot. */
void train_csv_row(const train_opts *o, int epoch, int64_t steps, double train_loss,
                   double val_loss, const char *metric, double val_metric, double lr);
/* weft summary: one layer of the table; its parameters are those whose
 * names begin with `prefix` (the longest matching prefix wins; "" takes the
 * rest). */
typedef struct train_layer {
    const char *prefix;
    char name[32], kind[64], shape[48];
} train_layer;
/* Keras's name for the recurrent layer: SimpleRNN, LSTM, GRU, else
 * RNN[cell]; wrapped in Bidirectional(...), "x L" for L layers. */
void train_rnn_kind(const char *cell, int layers, int bidirectional, char *buf, size_t n);
/* Prints the table (layers, each parameter, totals) like Keras's
 * model.summary(), with a note on biases when the recurrent cell has two. */
void train_print_summary(const char *title, weft_graph *g, const train_layer *l, int n);
/* The common case: a recurrent model (parameters `rnn_prefix`...) whose
 * output goes through one Linear layer (`out_prefix`...); shapes as text. */
void train_print_rnn_summary(const char *title, weft_graph *g, const weft_cell *cell,
                             const weft_rnn *rnn, const char *rnn_prefix, const char *rnn_shape,
                             const char *out_prefix, const char *out_shape);

/* The learning-rate schedule from the options (constant when none). */
weft_sched train_sched(const train_opts *o, double lr, int epochs);
/* The trainer configuration every task starts from: one loss and one
 * metric, the task's default optimizer, learning rate and clipping (--clip
 * overrides; a negative --clip means "the default"), the schedule flags, and
 * a seed made task-specific by `salt`. */
weft_train_config train_config(const train_opts *o, weft_node loss, weft_node *metric,
                               weft_optim_kind def_kind, double def_lr, double def_clip,
                               int epochs, uint64_t salt);
/* After building a model: 0, or the graph's first error reported as a
 * "model" failure. */
int train_model_built(weft_graph *g);
/* Early stopping: call after each epoch's evaluation with the held-out
 * loss; returns 1 (and prints a line) when --patience epochs passed without
 * improvement.  `best` and `bad` start at 0. */
typedef struct train_stopper {
    double best;
    int bad, seen;
} train_stopper;
int train_should_stop(const train_opts *o, train_stopper *st, int epoch, double val_loss);

/* The pieces of every task's epoch loop.  After a step that succeeded:
 * its progress, the periodic checkpoint (a failure goes to *rc), and 1 when
 * --max-steps is reached. */
int train_after_step(weft_trainer *t, const train_opts *o, progress *pr, int64_t step,
                     const weft_train_result *r, int64_t items, int *rc);
/* After an epoch's evaluation: the epoch's training loss into sum, and its
 * CSV row and plot point. */
void train_epoch_row(weft_trainer *t, const train_opts *o, int epoch, const progress *pr, double val_loss,
                     const char *metric, double val_metric, train_summary *sum);
/* Then 1 when training should stop: early stopping, or --max-steps. */
int train_epoch_stop(weft_trainer *t, const train_opts *o, train_stopper *st, int epoch, double val_loss);
/* At the end: the final checkpoint when all went well, and the summary's
 * held-out figures and steps.  Returns the exit code. */
int train_finish(weft_trainer *t, const train_opts *o, int rc, double val_loss, double val_metric,
                 train_summary *sum);

/* Records one epoch for --plot; train_plot_write draws them (at the end). */
void train_plot_add(const train_opts *o, int epoch, double train_loss, double val_loss,
                    const char *metric, double val_metric);
int train_plot_finish(const train_opts *o);

/* Prints "weft train: <what>: <weft_last_error()>" and returns 1. */
int train_fail(const char *what);

/* weft train's option parser: 0, 2 (usage error, message printed), or -1
 * after --help.  Shared with weft compare. */
int train_parse(int argc, char **argv, train_opts *o);
/* Runs o->task (2 if there is no such task). */
int train_run_task(const train_opts *o, train_summary *sum);

/* The tasks: each fills *sum and returns an exit code (0 ok). */
int task_binary_addition(const train_opts *o, train_summary *sum);
int task_charlm(const train_opts *o, train_summary *sum);
int task_topic(const train_opts *o, train_summary *sum);

#endif
