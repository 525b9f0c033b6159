/* weft summary --task NAME [model options of weft train]: builds the task's
 * model as `weft train` would and prints a parameter table like Keras's
 * model.summary() — each layer with its output shape and parameter count,
 * each parameter by name (so that what is counted is plain, e.g. the two
 * bias vectors of PyTorch-style cells), and the totals.  No training; the
 * topic task's table needs no data (its Embedding is max_tokens rows, as
 * Keras's). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "train_common.h"

int weft_cmd_summary(int argc, char **argv) {
    train_opts o;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: weft summary --task NAME [--cell CELL --hidden-size H --layers L\n"
                   "                    --bidirectional --embed E --max-tokens N --max-len N\n"
                   "                    --batch B ...]  (the model options of weft train)\n"
                   "\nKeras's lesson model: weft summary --task topic --cell simple_rnn\n");
            return 0;
        }
    int rc = train_parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (!o.task) {
        fprintf(stderr, "weft summary: --task is required (weft train --help lists the tasks)\n");
        return 2;
    }
    o.summary = 1;
    o.quiet = 1;
    train_summary sum;
    memset(&sum, 0, sizeof sum);
    return train_run_task(&o, &sum);
}
