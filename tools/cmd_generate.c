/* weft generate: sample text from a character language model checkpoint
 * written by `weft train --task charlm --checkpoint CK`.  The checkpoint's
 * metadata says how to rebuild the model (cell, sizes, window, vocabulary);
 * its parameters are loaded by name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charlm.h"
#include "commands.h"
#include "weft/safetensors.h"

static void gen_usage(FILE *f) {
    fprintf(f,
            "usage: weft generate --checkpoint CK [--prime TEXT] [--length N]\n"
            "                     [--temperature T] [--seed S]\n"
            "\n"
            "CK: a checkpoint of `weft train --task charlm`.  Prints TEXT and then N\n"
            "(default 200) characters, each drawn from softmax(logits / T) given the\n"
            "window of characters before it (T <= 0: the most likely one; default 0.5).\n");
}

/* Metadata key as an integer in [lo, hi]. */
static weft_status meta_int(const weft_st_file *f, const char *path, const char *key, long lo,
                            long hi, long *out) {
    const char *v = weft_st_metadata(f, key);
    char *end = NULL;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > hi)
        return weft_error(WEFT_ERR_FORMAT, "%s: metadata '%s' is missing or not an integer in "
                          "[%ld, %ld]", path, key, lo, hi);
    *out = x;
    return WEFT_OK;
}

int weft_cmd_generate(int argc, char **argv) {
    const char *ck = NULL, *prime = "";
    long length = 200;
    double temperature = 0.5;
    unsigned long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            gen_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "weft generate: unknown option or missing value: '%s'\n", a);
            gen_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(a, "--checkpoint")) ck = v;
        else if (!strcmp(a, "--prime")) prime = v;
        else if (!strcmp(a, "--length")) length = strtol(v, &end, 10);
        else if (!strcmp(a, "--temperature")) temperature = strtod(v, &end);
        else if (!strcmp(a, "--seed")) seed = strtoull(v, &end, 10);
        else {
            fprintf(stderr, "weft generate: unknown option '%s'\n", a);
            gen_usage(stderr);
            return 2;
        }
        if (end && (*end || !*v || length < 0 || length > 100000000)) {
            fprintf(stderr, "weft generate: bad value for %s: '%s'\n", a, v);
            return 2;
        }
    }
    if (!ck) {
        fprintf(stderr, "weft generate: --checkpoint is required\n");
        gen_usage(stderr);
        return 2;
    }

    weft_st_file *f = NULL;
    charlm_model m = {0};
    char_corpus vocab;
    weft_status s = weft_st_read(ck, &f);
    const char *task = s ? NULL : weft_st_metadata(f, "task");
    if (!s && (!task || strcmp(task, "charlm")))
        s = weft_error(WEFT_ERR_FORMAT, "%s: not a charlm checkpoint (its task is '%s'; write "
                       "one with weft train --task charlm --checkpoint %s)", ck,
                       task ? task : "none", ck);
    long hidden = 0, layers = 0, bidir = 0, seqlen = 0;
    if (!s) s = meta_int(f, ck, "hidden_size", 1, 1 << 20, &hidden);
    if (!s) s = meta_int(f, ck, "layers", 1, 64, &layers);
    if (!s) s = meta_int(f, ck, "bidirectional", 0, 1, &bidir);
    if (!s) s = meta_int(f, ck, "seqlen", 1, 1 << 16, &seqlen);
    const char *cell = s ? NULL : weft_st_metadata(f, "cell");
    const char *vs = s ? NULL : weft_st_metadata(f, "vocab");
    if (!s && (!cell || !vs))
        s = weft_error(WEFT_ERR_FORMAT, "%s: metadata 'cell' or 'vocab' is missing", ck);
    if (!s) s = char_vocab_parse(vs, &vocab);
    if (!s) {
        charlm_spec sp = {cell, vocab.vocab, hidden, (int)layers, (int)bidir, (int)seqlen};
        weft_rng init = weft_rng_make(0);
        s = charlm_build(&m, &sp, 0, &init);
    }
    if (!s) s = weft_params_load(m.g, f, ck, 0);
    for (const char *p = prime; !s && *p; p++)
        if (vocab.id[(unsigned char)*p] < 0)
            s = weft_error(WEFT_ERR_ARG, "--prime: the character '%c' (byte %d) is not in the "
                           "model's vocabulary", *p, (unsigned char)*p);
    if (!s) {
        weft_rng rng = weft_rng_make(seed);
        fputs(prime, stdout);
        s = charlm_sample(&m, &vocab, prime, (int)length, temperature, &rng, stdout);
        putchar('\n');
    }
    if (s) fprintf(stderr, "weft generate: %s\n", weft_last_error());
    charlm_free(&m);
    weft_st_free(f);
    return s ? 1 : 0;
}
