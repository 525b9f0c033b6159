/* A character corpus with a held-out split (see data.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data.h"

void char_corpus_free(char_corpus *c) {
    free(c->train);
    free(c->test);
    c->train = c->test = NULL;
    c->ntrain = c->ntest = 0;
}

static weft_status slurp(const char *path, unsigned char **out, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return weft_error(WEFT_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 > cap) {
            cap = 2 * cap + 65536;
            unsigned char *b = realloc(buf, cap);
            if (!b) {
                free(buf);
                fclose(f);
                return weft_error(WEFT_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = b;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return weft_error(WEFT_ERR_IO, "%s: read error", path);
    }
    *out = buf;
    *n = len;
    return WEFT_OK;
}

/* Appends s (n bytes) to buf. */
static int append(unsigned char **buf, size_t *len, size_t *cap, const void *s, size_t n) {
    if (*len + n > *cap) {
        size_t nc = 2 * (*len + n) + 4096;
        unsigned char *b = realloc(*buf, nc);
        if (!b) return -1;
        *buf = b;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    return 0;
}

static weft_status to_ids(char_corpus *c, const unsigned char *tr, size_t ntr,
                          const unsigned char *te, size_t nte) {
    memset(c->id, -1, sizeof c->id);
    int seen[256] = {0};
    for (size_t i = 0; i < ntr; i++) seen[tr[i]] = 1;
    for (size_t i = 0; i < nte; i++) seen[te[i]] = 1;
    c->vocab = 0;
    for (int b = 0; b < 256; b++)
        if (seen[b]) {
            c->id[b] = (int16_t)c->vocab;
            c->chars[c->vocab++] = (unsigned char)b;
        }
    c->train = malloc(sizeof *c->train * (ntr + 1));
    c->test = malloc(sizeof *c->test * (nte + 1));
    if (!c->train || !c->test) {
        char_corpus_free(c);
        return weft_error(WEFT_ERR_NOMEM, "corpus: out of memory");
    }
    for (size_t i = 0; i < ntr; i++) c->train[i] = c->id[tr[i]];
    for (size_t i = 0; i < nte; i++) c->test[i] = c->id[te[i]];
    c->ntrain = (int64_t)ntr;
    c->ntest = (int64_t)nte;
    return WEFT_OK;
}

weft_status char_corpus_read(const char *path, char_corpus *c) {
    memset(c, 0, sizeof *c);
    struct stat st;
    if (stat(path, &st)) return weft_error(WEFT_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char *tr = NULL, *te = NULL;
    size_t ntr = 0, nte = 0, ctr = 0, cte = 0;
    weft_status s = WEFT_OK;
    if (S_ISDIR(st.st_mode)) {
        fortune_set fs;
        if ((s = fortunes_read(path, NULL, 0, &fs, NULL, NULL))) return s;
        for (int i = 0; i < fs.n && !s; i++) {
            int held = fs.index[i] % 10 == 9;
            if (append(held ? &te : &tr, held ? &nte : &ntr, held ? &cte : &ctr, fs.text[i],
                       strlen(fs.text[i])) ||
                append(held ? &te : &tr, held ? &nte : &ntr, held ? &cte : &ctr, "\n", 1))
                s = weft_error(WEFT_ERR_NOMEM, "corpus: out of memory");
        }
        fortunes_free(&fs);
    } else {
        unsigned char *all = NULL;
        size_t n = 0;
        if ((s = slurp(path, &all, &n))) return s;
        ntr = n - n / 10;
        nte = n - ntr;
        tr = all;
        te = all + ntr;
        s = to_ids(c, tr, ntr, te, nte);
        free(all);
        if (!s && (c->ntrain < 100 || c->ntest < 20)) {
            char_corpus_free(c);
            s = weft_error(WEFT_ERR_FORMAT, "%s: %zu bytes is too little text (at least 120 "
                           "are needed: 100 to train on, a tenth held out)", path, n);
        }
        return s;
    }
    if (!s) s = to_ids(c, tr, ntr, te, nte);
    free(tr);
    free(te);
    return s;
}

char *char_vocab_string(const char_corpus *c) {
    char *s = malloc((size_t)c->vocab * 4 + 1), *p = s;
    if (!s) return NULL;
    *p = 0;
    for (int i = 0; i < c->vocab; i++) p += sprintf(p, "%s%d", i ? "," : "", c->chars[i]);
    return s;
}

weft_status char_vocab_parse(const char *s, char_corpus *c) {
    memset(c, 0, sizeof *c);
    memset(c->id, -1, sizeof c->id);
    const char *p = s;
    while (p && *p) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || b < 0 || b > 255 || c->id[b] >= 0 || (*end && *end != ','))
            return weft_error(WEFT_ERR_FORMAT, "vocabulary: bad entry at '%.20s'", p);
        c->id[b] = (int16_t)c->vocab;
        c->chars[c->vocab++] = (unsigned char)b;
        p = *end ? end + 1 : end;
    }
    if (c->vocab < 2) return weft_error(WEFT_ERR_FORMAT, "vocabulary: fewer than 2 characters");
    return WEFT_OK;
}
