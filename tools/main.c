/* weft command-line tool: dispatches to the subcommands in tools/cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "weft/dist.h"
#include "weft/weft.h"

static const struct {
    const char *name;
    weft_cmd_fn fn;
    const char *help;
} commands[] = {
    {"bench", weft_cmd_bench, "time compiled training steps of a recurrent model"},
    {"gradcheck", weft_cmd_gradcheck, "check a cell's gradients against finite differences (f64)"},
    {"demo", weft_cmd_demo, "build a 3-step RNN, compute its gradients, write its graph"},
    {"run", weft_cmd_run, "run a recurrent model on safetensors inputs (PyTorch parity)"},
    {"train", weft_cmd_train, "train a seed task: binary-addition, charlm, topic (progress, JSON)"},
    {"generate", weft_cmd_generate, "sample text from a charlm checkpoint"},
    {"summary", weft_cmd_summary, "a task's model as a Keras-style parameter table (no training)"},
    {"compare", weft_cmd_compare, "train several cells on one task, same budget and seeds: one table"},
    {"dot", weft_cmd_dot, "draw a recurrent model's graph: unrolled, rolled, collapsed, profiled"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: weft [--help] [--version] <command> [args]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n'weft <command> --help' describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("weft %s (%s%s)\n", WEFT_VERSION_STRING, weft_dist_compiled() ? "MPI: " : "", weft_dist_library());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "weft: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
